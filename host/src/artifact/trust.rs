//! The operator's trust store (`trust.toml`) and verification of a policy's bundle
//! against it.
//!
//! ```toml
//! threshold = 1              # distinct trusted keys that must sign (default 1)
//! clock_skew_secs = 60       # tolerance for not_before / expires / not_after (default 60)
//!
//! [[keys]]
//! id = "sha256:…"            # must equal the id computed from public_key
//! algorithm = "ed25519"
//! public_key = """
//! -----BEGIN PUBLIC KEY-----
//! …
//! -----END PUBLIC KEY-----
//! """
//! status = "active"          # active | retired | revoked
//! not_after = "2027-06-30T00:00:00Z"   # optional: no signature by this key counts after it
//! names = ["pii", "acme/*"]  # policy names (globs: * and ?) this key may sign
//! # max_sequence = 7         # required when retired: highest sequence it may still sign
//! [keys.ceiling]             # optional; absent numbers are unbounded
//! fuel = 200_000_000
//! memory_mb = 32
//! deadline_ms = 100
//! capabilities = []          # WASI grants the key may approve; absent = none
//!
//! [[thresholds]]             # per-name overrides; the first matching entry wins
//! names = "pii*"
//! threshold = 2
//! ```
//!
//! **Rotation.** Add the new key as `active` and co-sign (each `portcullis sign` adds
//! a signature to the same bundle); then mark the old key `retired` with
//! `max_sequence` set to the last sequence it signed and a `not_after` date. Artifacts
//! it already signed keep verifying until `not_after`; anything it signs with a higher
//! sequence is refused. `revoked` refuses every signature by the key at once.
//!
//! **Counting.** Signatures are matched to keys by their `keyid`. A signature by a
//! revoked key, or a trusted key's signature that does not verify, fails the whole
//! verification. Otherwise each distinct trusted key counts once if it qualifies (in
//! name scope, before `not_after`, under a retired key's cut-off, within its ceiling);
//! signatures by unknown or non-qualifying keys are ignored unless the threshold is then
//! not met, in which case the first non-qualifying key's reason is the error.
//!
//! Verification returns the verified [`Statement`] or exactly one [`VerifyError`],
//! one variant per check. A sequence high-water mark per name is kept in a small JSON
//! state file and only advanced after a fully successful verification.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::bundle::{Bundle, BundleError};
use super::dsse;
use super::keys;
use super::manifest::{format_utc, parse_utc};
use super::statement::{Statement, sha256_hex};
use crate::policy::Exports;

/// This host's version, compared with `min_host_version`.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors reading this file (shared by every TOML file Portcullis reads).
pub type TrustError = crate::toml_file::FileError;

/// A key's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Signs anything in scope.
    Active,
    /// Verifies signatures up to `max_sequence`, until `not_after`.
    Retired,
    /// Any signature by it fails verification.
    Revoked,
}

/// What a key may approve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceiling {
    /// Highest fuel.
    pub fuel: Option<u64>,
    /// Highest memory in MiB.
    pub memory_mb: Option<u64>,
    /// Highest deadline in milliseconds.
    pub deadline_ms: Option<u64>,
    /// WASI grants the key may approve.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: String,
    algorithm: String,
    public_key: String,
    status: KeyStatus,
    not_after: Option<String>,
    names: Vec<String>,
    max_sequence: Option<u64>,
    #[serde(default)]
    ceiling: Ceiling,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    names: String,
    threshold: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default = "one")]
    threshold: u32,
    #[serde(default = "sixty")]
    clock_skew_secs: u64,
    #[serde(default)]
    keys: Vec<KeyFile>,
    #[serde(default)]
    thresholds: Vec<ThresholdFile>,
}

fn one() -> u32 {
    1
}
fn sixty() -> u64 {
    60
}

/// A trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Canonical key id.
    pub id: String,
    /// The public key.
    pub key: VerifyingKey,
    /// Status.
    pub status: KeyStatus,
    /// No signature by this key counts after this instant.
    pub not_after: Option<OffsetDateTime>,
    /// Name globs.
    pub names: Vec<String>,
    /// Retired keys: highest sequence accepted.
    pub max_sequence: Option<u64>,
    /// What the key may approve.
    pub ceiling: Ceiling,
}

/// A parsed, validated trust store.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// Default threshold.
    pub threshold: u32,
    /// Clock-skew tolerance.
    pub clock_skew: time::Duration,
    /// Keys by id.
    pub keys: BTreeMap<String, TrustedKey>,
    /// Per-name overrides: (glob, threshold), first match wins.
    pub thresholds: Vec<(String, u32)>,
}

impl TrustStore {
    /// Read and validate a trust store file.
    pub fn load(path: &Path) -> Result<TrustStore, TrustError> {
        let text = crate::toml_file::read(path)?;
        TrustStore::parse(&text, path)
    }

    /// Parse and validate trust store text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<TrustStore, TrustError> {
        let file: TrustFile = crate::toml_file::parse(text, path)?;
        let invalid = |key: String, message: String| crate::toml_file::invalid(path, key, message);
        if file.threshold == 0 {
            return Err(invalid(
                "threshold".into(),
                "must be at least 1 (0 would accept unsigned policies)".into(),
            ));
        }
        let mut keys = BTreeMap::new();
        for (i, k) in file.keys.into_iter().enumerate() {
            let at = |field: &str| format!("keys[{i}].{field}");
            if k.algorithm != "ed25519" {
                return Err(invalid(
                    at("algorithm"),
                    format!("{:?} is not supported; use \"ed25519\"", k.algorithm),
                ));
            }
            let key = keys::parse_public(&k.public_key, &at("public_key"))
                .map_err(|e| invalid(at("public_key"), e.to_string()))?;
            let id = keys::key_id(&key);
            if k.id != id {
                return Err(invalid(
                    at("id"),
                    format!(
                        "{:?} does not match the public key, whose id is {id:?}",
                        k.id
                    ),
                ));
            }
            if k.names.is_empty() {
                return Err(invalid(
                    at("names"),
                    "is empty: list the policy names (globs) this key may sign".into(),
                ));
            }
            let not_after = k
                .not_after
                .as_deref()
                .map(parse_utc)
                .transpose()
                .map_err(|m| invalid(at("not_after"), m))?;
            if k.status == KeyStatus::Retired && k.max_sequence.is_none() {
                return Err(invalid(
                    at("max_sequence"),
                    "a retired key needs max_sequence: the highest sequence it may still sign"
                        .into(),
                ));
            }
            if keys.contains_key(&id) {
                return Err(invalid(at("id"), format!("{id} is listed twice")));
            }
            keys.insert(
                id.clone(),
                TrustedKey {
                    id,
                    key,
                    status: k.status,
                    not_after,
                    names: k.names,
                    max_sequence: k.max_sequence,
                    ceiling: k.ceiling,
                },
            );
        }
        if !keys.values().any(|k| k.status != KeyStatus::Revoked) {
            return Err(invalid(
                "keys".into(),
                "no usable key (every key is revoked, or none is listed): \
                 add an active key's [[keys]] entry"
                    .into(),
            ));
        }
        let mut thresholds = Vec::new();
        for (i, t) in file.thresholds.into_iter().enumerate() {
            if t.threshold == 0 {
                return Err(invalid(
                    format!("thresholds[{i}].threshold"),
                    "must be at least 1".into(),
                ));
            }
            thresholds.push((t.names, t.threshold));
        }
        Ok(TrustStore {
            threshold: file.threshold,
            clock_skew: time::Duration::seconds(file.clock_skew_secs.min(i64::MAX as u64) as i64),
            keys,
            thresholds,
        })
    }

    /// The number of distinct keys that must sign `name`.
    pub fn threshold_for(&self, name: &str) -> u32 {
        self.thresholds
            .iter()
            .find(|(glob, _)| glob_match(glob, name))
            .map_or(self.threshold, |(_, n)| *n)
    }
}

/// `*` matches any run of characters (including `/`), `?` any one character.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// A failed check: exactly one per verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The bundle is not valid JSON of the expected shape.
    #[error("malformed bundle: {0}")]
    MalformedBundle(String),
    /// The bundle is over the size cap.
    #[error("oversized bundle: {size} bytes, over the {max}-byte limit")]
    BundleTooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// A trusted key's signature does not match the payload (payload changed).
    #[error(
        "bad signature: the signature by {key_id} does not match the signed statement \
         (the bundle's payload was changed, or the signature is corrupt)"
    )]
    BadSignature {
        /// The key.
        key_id: String,
    },
    /// The signed payload is not a valid Portcullis policy statement.
    #[error("malformed statement: {0}")]
    MalformedStatement(String),
    /// The component's bytes are not the ones that were signed.
    #[error(
        "digest mismatch: the component's sha256 is {actual} but the signed statement is \
         for {signed} (the wasm file was changed after signing)"
    )]
    DigestMismatch {
        /// Signed digest.
        signed: String,
        /// Actual digest.
        actual: String,
    },
    /// No signature is by a key in the trust store.
    #[error("unknown key: no signature is by a key in the trust store (signed by {key_ids:?})")]
    UnknownKey {
        /// The keys that signed.
        key_ids: Vec<String>,
    },
    /// A signature is by a revoked key.
    #[error("revoked key: the policy is signed by {key_id}, which the trust store revokes")]
    RevokedKey {
        /// The key.
        key_id: String,
    },
    /// The statement is for another policy name than the one being loaded.
    #[error(
        "name mismatch: loading policy {expected:?} but the signed statement is for {signed:?}"
    )]
    NameMismatch {
        /// The name asked for.
        expected: String,
        /// The signed name.
        signed: String,
    },
    /// A trusted key signed a name outside its `names`.
    #[error("key out of scope: key {key_id} may not sign policy {name:?} (allowed: {allowed:?})")]
    OutOfScope {
        /// The key.
        key_id: String,
        /// The policy name.
        name: String,
        /// The key's globs.
        allowed: Vec<String>,
    },
    /// A key's `not_after` has passed.
    #[error("key expired: key {key_id} is not valid after {not_after}")]
    KeyExpired {
        /// The key.
        key_id: String,
        /// Its `not_after`.
        not_after: String,
    },
    /// A retired key signed a sequence above its cut-off.
    #[error(
        "retired key cut-off: retired key {key_id} may sign sequence up to {max_sequence}, \
         not {sequence}"
    )]
    RetiredKeyCutoff {
        /// The key.
        key_id: String,
        /// The statement's sequence.
        sequence: u64,
        /// The key's cut-off.
        max_sequence: u64,
    },
    /// The requested capabilities or limits exceed a signing key's ceiling.
    #[error("ceiling exceeded: key {key_id} may not approve {what}")]
    ExceedsCeiling {
        /// The key.
        key_id: String,
        /// What exceeds it.
        what: String,
    },
    /// Fewer distinct qualifying keys signed than required.
    #[error(
        "threshold not met: policy {name:?} needs {need} distinct trusted key(s), \
         {have} signed (a key counts once however often it signed)"
    )]
    ThresholdNotMet {
        /// Policy name.
        name: String,
        /// Distinct qualifying keys.
        have: u32,
        /// Required.
        need: u32,
    },
    /// `not_before` is in the future (beyond the skew tolerance).
    #[error("not yet valid: valid from {not_before}, now is {now}")]
    NotYetValid {
        /// `not_before`.
        not_before: String,
        /// Now.
        now: String,
    },
    /// `expires` has passed (beyond the skew tolerance).
    #[error("expired: the signature expired at {expires}, now is {now}")]
    Expired {
        /// `expires`.
        expires: String,
        /// Now.
        now: String,
    },
    /// The host is older than `min_host_version`.
    #[error("host too old: the policy needs portcullis {required} or later, this is {host}")]
    HostTooOld {
        /// Required.
        required: String,
        /// This host.
        host: String,
    },
    /// The component does not export what its kind says.
    #[error(
        "kind mismatch: the statement says {kind} (exports {expected}) but the component \
         exports {actual}"
    )]
    KindMismatch {
        /// The signed kind.
        kind: String,
        /// Contracts the kind implies.
        expected: String,
        /// Contracts the component exports.
        actual: String,
    },
    /// The signed world is not the one the component implements (e.g. another
    /// version of the contracts).
    #[error("the statement claims world {signed} but the component implements {actual}")]
    WorldMismatch {
        /// The signed world.
        signed: String,
        /// The world derived from the component's exports.
        actual: String,
    },
    /// The component could not be inspected.
    #[error("component invalid: {0}")]
    Component(String),
    /// The sequence is below the recorded high-water mark.
    #[error(
        "rollback: policy {name:?} sequence {sequence} is lower than the recorded \
         high-water mark {mark}"
    )]
    Rollback {
        /// Policy name.
        name: String,
        /// Statement's sequence.
        sequence: u64,
        /// Recorded mark.
        mark: u64,
    },
    /// The sequence equals the mark but the component differs.
    #[error(
        "sequence reused: policy {name:?} sequence {sequence} was recorded for a different \
         component; a new component needs a higher sequence"
    )]
    SequenceReused {
        /// Policy name.
        name: String,
        /// Sequence.
        sequence: u64,
    },
    /// The state file cannot be read or written.
    #[error("state file {path}: {message}")]
    State {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl From<BundleError> for VerifyError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::TooLarge { size } => VerifyError::BundleTooLarge {
                size,
                max: super::bundle::MAX_BUNDLE_BYTES,
            },
            other => VerifyError::MalformedBundle(other.to_string()),
        }
    }
}

/// The sequence high-water marks, persisted as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    names: BTreeMap<String, Mark>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    sequence: u64,
    digest: String,
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The verified statement.
    pub statement: Statement,
    /// Distinct trusted keys whose signatures counted.
    pub key_ids: Vec<String>,
}

/// Verifies bundles against a trust store (and a high-water-mark state file).
pub struct Verifier {
    store: TrustStore,
    state: Option<PathBuf>,
    now: Option<OffsetDateTime>,
    host_version: semver::Version,
}

impl Verifier {
    /// A verifier with the system clock and no state file.
    pub fn new(store: TrustStore) -> Verifier {
        Verifier {
            store,
            state: None,
            now: None,
            host_version: semver::Version::parse(HOST_VERSION)
                .expect("the crate version is semver"),
        }
    }

    /// Keep sequence high-water marks in `path` (created on first success).
    pub fn with_state(mut self, path: impl Into<PathBuf>) -> Verifier {
        self.state = Some(path.into());
        self
    }

    /// Use a fixed clock (tests).
    pub fn with_now(mut self, now: OffsetDateTime) -> Verifier {
        self.now = Some(now);
        self
    }

    /// Override the clock-skew tolerance.
    pub fn with_clock_skew(mut self, skew: time::Duration) -> Verifier {
        self.store.clock_skew = skew;
        self
    }

    /// The trust store.
    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// Like [`Verifier::verify`], and the signed policy name must be `name` (the name
    /// the operator configured): a key scoped to one name cannot vouch for a component
    /// loaded under another.
    pub fn verify_named(
        &self,
        name: &str,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
    ) -> Result<Verified, VerifyError> {
        let verified = self.verify_inner(Some(name), wasm, bundle, exports)?;
        self.record(&verified)?;
        Ok(verified)
    }

    /// Verify `bundle` (JSON bytes) for `wasm`. `exports` is called only after every
    /// signature and claim has been checked, to find what the component exports (see
    /// [`exports_via_engine`]); the high-water mark is advanced only on success.
    pub fn verify(
        &self,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
    ) -> Result<Verified, VerifyError> {
        let verified = self.verify_inner(None, wasm, bundle, exports)?;
        self.record(&verified)?;
        Ok(verified)
    }

    /// Every check of [`Verifier::verify_named`] (including that the sequence is not
    /// below the high-water mark), without advancing the mark: for a candidate that
    /// must still pass its self-tests. Call [`Verifier::record`] once it is activated.
    pub fn check_named(
        &self,
        name: &str,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
    ) -> Result<Verified, VerifyError> {
        self.verify_inner(Some(name), wasm, bundle, exports)
    }

    /// Every check of [`Verifier::check_named`] except the high-water mark: for a
    /// version the operator explicitly pinned (`portcullis rollback`), which is
    /// allowed to be older than the newest one seen. Never record its sequence.
    pub fn check_pinned(
        &self,
        name: &str,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
    ) -> Result<Verified, VerifyError> {
        self.verify_checked(Some(name), wasm, bundle, exports, false)
    }

    /// Advance the high-water mark to a verified statement's sequence (if higher),
    /// re-checking the mark under the state file's lock.
    pub fn record(&self, verified: &Verified) -> Result<(), VerifyError> {
        let p = &verified.statement.predicate;
        self.advance_mark(
            &p.name,
            p.sequence,
            format!("sha256:{}", verified.statement.digest()),
        )
    }

    fn verify_inner(
        &self,
        expected_name: Option<&str>,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
    ) -> Result<Verified, VerifyError> {
        self.verify_checked(expected_name, wasm, bundle, exports, true)
    }

    fn verify_checked(
        &self,
        expected_name: Option<&str>,
        wasm: &[u8],
        bundle: &[u8],
        exports: impl FnOnce() -> Result<Exports, String>,
        against_mark: bool,
    ) -> Result<Verified, VerifyError> {
        let (payload, signed_by) = self.authenticate(bundle)?;

        // Only authenticated bytes are parsed.
        let statement = Statement::parse(&payload).map_err(VerifyError::MalformedStatement)?;
        let actual = sha256_hex(wasm);
        if statement.digest() != actual {
            return Err(VerifyError::DigestMismatch {
                signed: statement.digest().to_string(),
                actual,
            });
        }
        let p = &statement.predicate;
        if let Some(expected) = expected_name
            && expected != p.name
        {
            return Err(VerifyError::NameMismatch {
                expected: expected.to_string(),
                signed: p.name.clone(),
            });
        }
        let now = self.now.unwrap_or_else(OffsetDateTime::now_utc);
        let skew = self.store.clock_skew;

        // Each signing key must qualify for this statement; a key counts once.
        let qualifying = self.threshold(&signed_by, &p.name, |key| qualify(key, p, now, skew))?;

        let not_before = p
            .not_before_time()
            .map_err(VerifyError::MalformedStatement)?;
        let expires = p.expires_time().map_err(VerifyError::MalformedStatement)?;
        if now + skew < not_before {
            return Err(VerifyError::NotYetValid {
                not_before: p.not_before.clone(),
                now: format_utc(now),
            });
        }
        if now - skew >= expires {
            return Err(VerifyError::Expired {
                expires: p.expires.clone(),
                now: format_utc(now),
            });
        }
        let required = semver::Version::parse(&p.min_host_version)
            .map_err(|e| VerifyError::MalformedStatement(e.to_string()))?;
        if self.host_version < required {
            return Err(VerifyError::HostTooOld {
                required: required.to_string(),
                host: self.host_version.to_string(),
            });
        }

        if against_mark {
            let digest = format!("sha256:{actual}");
            check_mark(&self.read_state()?, &p.name, p.sequence, &digest)?;
        }

        let actual_exports = exports().map_err(VerifyError::Component)?;
        let expected = p.kind.exports();
        if actual_exports != expected {
            return Err(VerifyError::KindMismatch {
                kind: p.kind.name().to_string(),
                expected: describe(expected),
                actual: describe(actual_exports),
            });
        }
        let world = super::component::implemented_world(wasm).map_err(VerifyError::Component)?;
        if !super::component::world_matches(&p.world, &world) {
            return Err(VerifyError::WorldMismatch {
                signed: p.world.clone(),
                actual: world,
            });
        }
        Ok(Verified {
            statement,
            key_ids: qualifying,
        })
    }

    /// Verify a bundle over a signed document other than a policy (a policy-set
    /// index). The signatures are checked as for a policy; `parse` reads the
    /// authenticated payload and returns the signed name and sequence with the
    /// document; enough signing keys (the store's threshold for that name) must be
    /// active or retired, unexpired and scoped to the name. The sequence must not be
    /// below the high-water mark kept under `mark` (with `digest` identifying the
    /// document), which then advances to it.
    pub fn verify_document<T>(
        &self,
        bundle: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<(String, u64, T), VerifyError>,
        mark: &str,
        digest: &str,
    ) -> Result<T, VerifyError> {
        let (payload, signed_by) = self.authenticate(bundle)?;
        let (name, sequence, document) = parse(&payload)?;
        let now = self.now.unwrap_or_else(OffsetDateTime::now_utc);
        self.threshold(&signed_by, &name, |key| {
            qualify_scope(key, &name, now, self.store.clock_skew)
        })?;
        self.advance_mark(mark, sequence, digest.to_string())?;
        Ok(document)
    }

    /// The keys of `signed_by` that `qualify` accepts for `name`, if they are at least
    /// the store's threshold for it; otherwise the first refusal (or the shortfall).
    fn threshold(
        &self,
        signed_by: &BTreeSet<String>,
        name: &str,
        qualify: impl Fn(&TrustedKey) -> Result<(), VerifyError>,
    ) -> Result<Vec<String>, VerifyError> {
        let need = self.store.threshold_for(name);
        let mut qualifying = Vec::new();
        let mut first_refusal = None;
        for id in signed_by {
            match qualify(&self.store.keys[id]) {
                Ok(()) => qualifying.push(id.clone()),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        if (qualifying.len() as u32) < need {
            return Err(first_refusal.unwrap_or(VerifyError::ThresholdNotMet {
                name: name.to_string(),
                have: qualifying.len() as u32,
                need,
            }));
        }
        Ok(qualifying)
    }

    /// Parse `bundle` and check every signature by a key in the store: the payload
    /// and the keys that signed it. Revoked or forged trusted signatures fail
    /// outright; signatures by unknown keys are ignored, but one trusted signature is
    /// required.
    fn authenticate(&self, bundle: &[u8]) -> Result<(Vec<u8>, BTreeSet<String>), VerifyError> {
        let bundle = Bundle::parse(bundle)?;
        let envelope = &bundle.dsse_envelope;
        let payload = envelope
            .payload_bytes()
            .map_err(|e| VerifyError::MalformedBundle(format!("dsseEnvelope.payload: {e}")))?;
        let pae = dsse::pae(&envelope.payload_type, &payload);
        let mut signed_by = BTreeSet::new();
        let mut unknown = Vec::new();
        for signature in &envelope.signatures {
            let Some(key) = self.store.keys.get(&signature.keyid) else {
                unknown.push(signature.keyid.clone());
                continue;
            };
            if key.status == KeyStatus::Revoked {
                return Err(VerifyError::RevokedKey {
                    key_id: key.id.clone(),
                });
            }
            let bad = || VerifyError::BadSignature {
                key_id: key.id.clone(),
            };
            let sig = dsse::unb64(&signature.sig).map_err(|_| bad())?;
            let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|_| bad())?;
            key.key.verify_strict(&pae, &sig).map_err(|_| bad())?;
            signed_by.insert(key.id.clone());
        }
        if signed_by.is_empty() {
            return Err(VerifyError::UnknownKey { key_ids: unknown });
        }
        Ok((payload, signed_by))
    }

    /// The recorded high-water mark for `name`, if any.
    pub fn high_water_mark(&self, name: &str) -> Result<Option<u64>, VerifyError> {
        Ok(self.read_state()?.names.get(name).map(|m| m.sequence))
    }

    fn state_error(&self, message: String) -> VerifyError {
        VerifyError::State {
            path: self
                .state
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            message,
        }
    }

    fn read_state(&self) -> Result<State, VerifyError> {
        let Some(path) = &self.state else {
            return Ok(State::default());
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.state_error(format!("corrupt (fix or remove it): {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(self.state_error(e.to_string())),
        }
    }

    /// Record `sequence` as the high-water mark for `name` if it is higher. The
    /// read-check-write runs under an exclusive lock on `<state>.lock`, so several
    /// verifiers (threads or processes) sharing one state file cannot lose a mark or
    /// both accept one sequence for different bytes.
    fn advance_mark(&self, name: &str, sequence: u64, digest: String) -> Result<(), VerifyError> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let io = |e: std::io::Error| self.state_error(e.to_string());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(with_suffix(path, ".lock"))
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut state = self.read_state()?;
        check_mark(&state, name, sequence, &digest)?;
        if state
            .names
            .get(name)
            .is_some_and(|m| m.sequence >= sequence)
        {
            return Ok(());
        }
        state
            .names
            .insert(name.to_string(), Mark { sequence, digest });
        let tmp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(&state).expect("state serialises");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(io)
        // The lock is released when `lock` is dropped.
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Anti-rollback: `sequence` must not be below `name`'s mark, and an equal sequence
/// must be for the same bytes.
fn check_mark(state: &State, name: &str, sequence: u64, digest: &str) -> Result<(), VerifyError> {
    if let Some(mark) = state.names.get(name) {
        if sequence < mark.sequence {
            return Err(VerifyError::Rollback {
                name: name.to_string(),
                sequence,
                mark: mark.sequence,
            });
        }
        if sequence == mark.sequence && mark.digest != digest {
            return Err(VerifyError::SequenceReused {
                name: name.to_string(),
                sequence,
            });
        }
    }
    Ok(())
}

/// Whether `key` may sign for `name` at `now`: in scope and not expired.
fn qualify_scope(
    key: &TrustedKey,
    name: &str,
    now: OffsetDateTime,
    skew: time::Duration,
) -> Result<(), VerifyError> {
    if !key.names.iter().any(|g| glob_match(g, name)) {
        return Err(VerifyError::OutOfScope {
            key_id: key.id.clone(),
            name: name.to_string(),
            allowed: key.names.clone(),
        });
    }
    if let Some(not_after) = key.not_after
        && now - skew > not_after
    {
        return Err(VerifyError::KeyExpired {
            key_id: key.id.clone(),
            not_after: format_utc(not_after),
        });
    }
    Ok(())
}

/// Whether `key` may count towards the threshold for predicate `p`.
fn qualify(
    key: &TrustedKey,
    p: &super::manifest::Predicate,
    now: OffsetDateTime,
    skew: time::Duration,
) -> Result<(), VerifyError> {
    qualify_scope(key, &p.name, now, skew)?;
    if key.status == KeyStatus::Retired
        && let Some(max) = key.max_sequence
        && p.sequence > max
    {
        return Err(VerifyError::RetiredKeyCutoff {
            key_id: key.id.clone(),
            sequence: p.sequence,
            max_sequence: max,
        });
    }
    let over = |what: String| VerifyError::ExceedsCeiling {
        key_id: key.id.clone(),
        what,
    };
    let c = &key.ceiling;
    for (name, asked, max) in [
        ("fuel", p.limits.fuel, c.fuel),
        ("memory_mb", p.limits.memory_mb, c.memory_mb),
        ("deadline_ms", p.limits.deadline_ms, c.deadline_ms),
    ] {
        if let (Some(asked), Some(max)) = (asked, max)
            && asked > max
        {
            return Err(over(format!("{name} = {asked} (ceiling {max})")));
        }
    }
    for grant in &p.capabilities.wasi {
        if !c.capabilities.contains(grant) {
            return Err(over(format!(
                "WASI grant {grant:?} (allowed: {:?})",
                c.capabilities
            )));
        }
    }
    Ok(())
}

fn describe(e: Exports) -> String {
    let mut names = Vec::new();
    if e.guardrail {
        names.push("request-checker");
    }
    if e.output_filter {
        names.push("response-filter");
    }
    if e.tool_sandbox {
        names.push("tool-authorizer");
    }
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(" + ")
    }
}

/// Find a component's exports by compiling and linking it with `engine` (nothing runs).
pub fn exports_via_engine(
    engine: &std::sync::Arc<crate::engine::Engine>,
    wasm: &[u8],
) -> Result<Exports, String> {
    engine
        .load(
            "verification",
            wasm,
            "{}".into(),
            crate::engine::Limits::default(),
        )
        .map(|p| p.exports())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("pii", "pii"));
        assert!(!glob_match("pii", "pii2"));
        assert!(glob_match("acme/*", "acme/pii"));
        assert!(glob_match("*", "anything/at/all"));
        assert!(glob_match("p?i*", "pii-v2"));
        assert!(!glob_match("acme/*", "evil/acme/x"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }
}
