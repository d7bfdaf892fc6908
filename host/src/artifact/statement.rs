//! The in-toto Statement v1 that is signed: the policy's digest as subject and the
//! Portcullis predicate.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::Predicate;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The Portcullis policy predicate type.
pub const PREDICATE_TYPE: &str = "https://portcullis.dev/policy/v1";

/// An in-toto Statement v1 about one policy component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// Exactly one subject: the policy name and its component's SHA-256.
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The signed claims.
    pub predicate: Predicate,
}

/// A subject: a name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The policy name.
    pub name: String,
    /// Digests; `sha256` (lowercase hex) is required.
    pub digest: SubjectDigest,
}

/// A subject's digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectDigest {
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`: the digest form components are named by (registries,
/// the compile cache, statuses).
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

impl Statement {
    /// The statement for `wasm` with `predicate`.
    pub fn new(wasm: &[u8], predicate: Predicate) -> Statement {
        Statement {
            type_: STATEMENT_TYPE.to_string(),
            subject: vec![Subject {
                name: predicate.name.clone(),
                digest: SubjectDigest {
                    sha256: sha256_hex(wasm),
                },
            }],
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate,
        }
    }

    /// The JSON bytes that become the DSSE payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serialises")
    }

    /// Parse and check the shape: statement and predicate types, one subject named like
    /// the predicate, a valid predicate. `Err` is a readable message.
    pub fn parse(bytes: &[u8]) -> Result<Statement, String> {
        let s: Statement =
            serde_json::from_slice(bytes).map_err(|e| format!("not a policy statement: {e}"))?;
        if s.type_ != STATEMENT_TYPE {
            return Err(format!(
                "_type is {:?}, expected {STATEMENT_TYPE:?}",
                s.type_
            ));
        }
        if s.predicate_type != PREDICATE_TYPE {
            return Err(format!(
                "predicateType is {:?}, expected {PREDICATE_TYPE:?}",
                s.predicate_type
            ));
        }
        let [subject] = s.subject.as_slice() else {
            return Err(format!(
                "expected exactly one subject, found {}",
                s.subject.len()
            ));
        };
        if subject.name != s.predicate.name {
            return Err(format!(
                "subject name {:?} differs from predicate name {:?}",
                subject.name, s.predicate.name
            ));
        }
        s.predicate
            .validate()
            .map_err(|(key, message)| format!("predicate.{key}: {message}"))?;
        Ok(s)
    }

    /// The subject's SHA-256 (lowercase hex).
    pub fn digest(&self) -> &str {
        &self.subject[0].digest.sha256
    }
}
