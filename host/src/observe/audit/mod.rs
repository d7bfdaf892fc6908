//! The audit log: append-only JSON lines, one per request (and per alert and
//! lifecycle event), hash-chained and signed at checkpoints.
//!
//! Every line starts with `seq` (0, 1, 2, ... across rotated files) and `prev`, the
//! hex SHA-256 of the previous line's bytes, then `type`:
//!
//! | type | written | carries |
//! |---|---|---|
//! | `open` | first line of a new log | `log_id`, `key_id` |
//! | `request` | after each request, before its response is released | [`RequestRecord`](super::record::RequestRecord) |
//! | `alert`, `lifecycle` | as they happen | the alert or the event |
//! | `checkpoint` | every `checkpoint_every` records or `checkpoint_ms`, at rotation and close | Ed25519 signature over `log_id`, `seq`, `prev`, `time` |
//! | `rotate` | last record of a rotated file (then a checkpoint) | why |
//! | `continue` | first line of the next file | the previous file's name |
//! | `resume` | first record after a restart | how the previous run ended; a torn last write's length and hash |
//! | `close` | on a clean stop (then a checkpoint) | |
//!
//! Editing, deleting or reordering any line breaks the chain at the next line;
//! truncation loses the closing checkpoint. A checkpoint's signature authenticates
//! everything before it, so only the records after the last checkpoint of a log that
//! is still open (or whose writer was killed) are not yet covered; `audit verify` says
//! how many.

mod chain;
pub mod verify;
mod writer;

use std::path::PathBuf;

use serde::Deserialize;

pub use writer::{AuditError, AuditLog};

/// The active file in the audit directory; rotated files are `audit.<first seq>.jsonl`.
pub const ACTIVE_FILE: &str = "audit.jsonl";

/// `[audit]`.
///
/// ```toml
/// [audit]
/// dir = "/var/lib/portcullis/audit"    # audit.jsonl + rotated files (created 0700)
/// key = "/etc/portcullis/audit-key.pem" # Ed25519 host key; created (0600, + .pub) if missing
/// durability = "every-record"           # or "interval" (fsync every interval_ms)
/// checkpoint_every = 1000
/// rotate_kb = 65536                    # and/or rotate_hours = 24
/// match_key_env = "PORTCULLIS_AUDIT_MATCH_KEY"  # keyed hashes of matched values
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// The audit directory; `None`: no audit log.
    pub dir: Option<PathBuf>,
    /// The host's Ed25519 checkpoint key (PKCS#8 PEM); the public key is `KEY.pub`.
    pub key: Option<PathBuf>,
    /// When a record must be on stable storage.
    pub durability: Durability,
    /// `durability = "interval"`: fsync at most this many ms after a write.
    pub interval_ms: u64,
    /// A signed checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ... or this many ms after the first record not yet covered.
    pub checkpoint_ms: u64,
    /// Rotate the active file past this many KiB (0: never by size).
    pub rotate_kb: u64,
    /// Rotate the active file after this many hours (0: never by age).
    pub rotate_hours: u64,
    /// Environment variable holding the key for keyed hashes (HMAC-SHA-256) of
    /// matched values; without it, findings carry spans only.
    pub match_key_env: Option<String>,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            dir: None,
            key: None,
            durability: Durability::EveryRecord,
            interval_ms: 1000,
            checkpoint_every: 1000,
            checkpoint_ms: 10_000,
            rotate_kb: 65536,
            rotate_hours: 0,
            match_key_env: None,
        }
    }
}

impl AuditSection {
    /// Check the section; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.dir.is_some() && self.key.is_none() {
            return Err((
                "key".into(),
                "an audit log needs a checkpoint key: set key = \"audit-key.pem\" (created if \
                 missing)"
                    .into(),
            ));
        }
        if self.checkpoint_every == 0 || self.checkpoint_ms == 0 {
            return Err((
                "checkpoint_every".into(),
                "checkpoint_every and checkpoint_ms must be at least 1".into(),
            ));
        }
        if self.durability == Durability::Interval && self.interval_ms == 0 {
            return Err((
                "interval_ms".into(),
                "must be at least 1 (or use durability = \"every-record\")".into(),
            ));
        }
        Ok(())
    }
}

/// `durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// fsync before a request's response is released: every answered request is in
    /// the log, even after a power cut. Concurrent requests share one fsync.
    EveryRecord,
    /// Written before the response is released (survives a crash of the process),
    /// fsync'd every `interval_ms` (a power cut may lose that much).
    Interval,
}
