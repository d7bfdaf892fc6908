//! The signed policy-set index: one small document listing the exact manifest digest
//! of every policy in a set, with its own sequence and a short expiry, signed like a
//! policy (in-toto Statement in a DSSE envelope in a Sigstore bundle). A host that
//! follows an index loads exactly those digests, so replicas cannot be served an old
//! set (freeze) or a mix of versions that were never published together.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::reference::is_sha256_digest;
use crate::artifact::bundle::Bundle;
use crate::artifact::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::artifact::keys::key_id;
use crate::artifact::manifest::format_utc;
use crate::artifact::statement::{STATEMENT_TYPE, Subject, SubjectDigest, sha256_hex};
use crate::artifact::trust::{Verifier, VerifyError};

/// The predicate type of a policy-set index statement.
pub const PREDICATE_TYPE: &str = "https://portcullis.dev/policy-set/v1";

/// The signed claims of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The set's name (e.g. an environment); trust-store keys are scoped to it.
    pub name: String,
    /// Increases with every published index; a host never goes back.
    pub sequence: u64,
    /// When it was signed (RFC 3339).
    pub issued: String,
    /// After this (RFC 3339) the index is refused and must be re-signed.
    pub expires: String,
    /// Policy name → manifest digest.
    pub policies: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: PolicySet,
}

impl PolicySet {
    /// When the index expires.
    pub fn expires_at(&self) -> Result<OffsetDateTime, String> {
        OffsetDateTime::parse(
            &self.expires,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| format!("expires {:?}: {e}", self.expires))
    }

    /// The digest listed for `policy`.
    pub fn digest_of(&self, policy: &str) -> Option<&str> {
        self.policies.get(policy).map(String::as_str)
    }

    /// Sign the index with `key` (a bundle; more keys can add signatures with
    /// [`Envelope::add_signature`] on its envelope).
    pub fn sign(&self, key: &SigningKey) -> Result<Bundle, String> {
        self.check()?;
        let statement = Statement {
            type_: STATEMENT_TYPE.to_string(),
            subject: vec![Subject {
                name: self.name.clone(),
                digest: SubjectDigest {
                    sha256: self.policies_digest(),
                },
            }],
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate: self.clone(),
        };
        let payload = serde_json::to_vec(&statement).expect("statements serialise");
        let mut envelope = Envelope::new(IN_TOTO_PAYLOAD_TYPE, &payload);
        envelope
            .add_signature(key, &key_id(&key.verifying_key()))
            .expect("a fresh envelope's payload decodes");
        Ok(Bundle::new(envelope))
    }

    /// The index a bundle carries, read WITHOUT checking any signature: only for
    /// choosing the next sequence when publishing.
    pub fn unverified(bundle: &[u8]) -> Option<PolicySet> {
        let payload = Bundle::parse(bundle)
            .ok()?
            .dsse_envelope
            .payload_bytes()
            .ok()?;
        serde_json::from_slice::<Statement>(&payload)
            .ok()
            .map(|s| s.predicate)
    }

    /// Verify an index bundle: signatures and key scope for the signed name (which
    /// must be `name`), not expired at `now`, sequence not below the last one seen
    /// (the verifier's state, under `policy-set:<name>`), which then advances.
    pub fn verify(
        verifier: &Verifier,
        name: &str,
        bundle: &[u8],
        digest: &str,
        now: OffsetDateTime,
    ) -> Result<PolicySet, VerifyError> {
        let parse = |payload: &[u8]| {
            let malformed = VerifyError::MalformedStatement;
            let s: Statement = serde_json::from_slice(payload)
                .map_err(|e| malformed(format!("not a policy-set statement: {e}")))?;
            if s.type_ != STATEMENT_TYPE || s.predicate_type != PREDICATE_TYPE {
                return Err(malformed(format!(
                    "predicateType is {:?}, expected {PREDICATE_TYPE:?}",
                    s.predicate_type
                )));
            }
            let set = s.predicate;
            set.check().map_err(malformed)?;
            let listed = set.policies_digest();
            if !matches!(s.subject.as_slice(), [one] if one.name == set.name && one.digest.sha256 == listed)
            {
                return Err(malformed(
                    "the subject does not match the listed policies".into(),
                ));
            }
            if set.name != name {
                return Err(VerifyError::NameMismatch {
                    expected: name.to_string(),
                    signed: set.name,
                });
            }
            if now >= set.expires_at().map_err(malformed)? {
                return Err(VerifyError::Expired {
                    expires: set.expires,
                    now: format_utc(now),
                });
            }
            Ok((set.name.clone(), set.sequence, set))
        };
        verifier.verify_document(bundle, parse, &format!("policy-set:{name}"), digest)
    }

    fn check(&self) -> Result<(), String> {
        self.expires_at()?;
        if let Some((policy, digest)) = self.policies.iter().find(|(_, d)| !is_sha256_digest(d)) {
            return Err(format!(
                "policy {policy}: {digest:?} is not a sha256 digest"
            ));
        }
        Ok(())
    }

    /// SHA-256 over the listed `name=digest` lines: the statement's subject.
    fn policies_digest(&self) -> String {
        let lines: String = self
            .policies
            .iter()
            .map(|(name, digest)| format!("{name}={digest}\n"))
            .collect();
        sha256_hex(lines.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::keys::public_pem;
    use crate::artifact::trust::TrustStore;

    fn store(key: &SigningKey, names: &str) -> Verifier {
        let text = format!(
            "[[keys]]\nid = \"{}\"\nalgorithm = \"ed25519\"\npublic_key = \"\"\"\n{}\"\"\"\nstatus = \"active\"\nnames = {names}\n",
            key_id(&key.verifying_key()),
            public_pem(&key.verifying_key())
        );
        Verifier::new(TrustStore::parse(&text, std::path::Path::new("t.toml")).unwrap())
    }

    fn set(expires: &str) -> PolicySet {
        PolicySet {
            name: "prod".into(),
            sequence: 3,
            issued: "2026-01-01T00:00:00Z".into(),
            expires: expires.into(),
            policies: [("pii".to_string(), format!("sha256:{}", "c".repeat(64)))].into(),
        }
    }

    #[test]
    fn an_index_verifies_only_for_its_set_before_expiry_and_unaltered() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let verifier = store(&key, "[\"prod\"]");
        let now = OffsetDateTime::now_utc();
        let bundle = set("2100-01-01T00:00:00Z").sign(&key).unwrap().to_json();
        let ok = PolicySet::verify(&verifier, "prod", bundle.as_bytes(), "sha256:x", now).unwrap();
        assert_eq!(
            ok.digest_of("pii"),
            set("2100-01-01T00:00:00Z").digest_of("pii")
        );

        let other = PolicySet::verify(&verifier, "staging", bundle.as_bytes(), "sha256:x", now);
        assert!(
            matches!(other, Err(VerifyError::NameMismatch { .. })),
            "{other:?}"
        );

        let old = set("2020-01-01T00:00:00Z").sign(&key).unwrap().to_json();
        let expired = PolicySet::verify(&verifier, "prod", old.as_bytes(), "sha256:x", now);
        assert!(
            matches!(expired, Err(VerifyError::Expired { .. })),
            "{expired:?}"
        );

        // Another digest in the payload, signature kept: refused.
        let mut tampered = set("2100-01-01T00:00:00Z").sign(&key).unwrap();
        let payload = String::from_utf8(tampered.dsse_envelope.payload_bytes().unwrap()).unwrap();
        let forged = payload.replace(&"c".repeat(64), &"d".repeat(64));
        tampered.dsse_envelope.payload = crate::artifact::dsse::b64(forged.as_bytes());
        let refused = PolicySet::verify(
            &verifier,
            "prod",
            tampered.to_json().as_bytes(),
            "sha256:x",
            now,
        );
        assert!(
            matches!(refused, Err(VerifyError::BadSignature { .. })),
            "{refused:?}"
        );

        let scoped = store(&key, "[\"pii\"]");
        let out = PolicySet::verify(&scoped, "prod", bundle.as_bytes(), "sha256:x", now);
        assert!(
            matches!(out, Err(VerifyError::OutOfScope { .. })),
            "{out:?}"
        );

        let mut bad = set("2100-01-01T00:00:00Z");
        bad.policies.insert("secrets".into(), "latest".into());
        assert!(bad.sign(&key).unwrap_err().contains("not a sha256 digest"));
    }
}
