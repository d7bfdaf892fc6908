//! The chain's line format and checkpoint signatures, shared by the writer and the
//! verifier.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// `prev` of the first line of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256 of a line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// A line: `{"seq":N,"prev":"...","type":"..."` followed by the members of `body`, a
/// serialized JSON object (`{}` for none).
pub fn compose(seq: u64, prev: &str, kind: &str, body: &str) -> String {
    let members = body
        .strip_prefix('{')
        .map(|rest| rest.trim_start())
        .unwrap_or("}");
    let separator = if members.starts_with('}') { "" } else { "," };
    format!(r#"{{"seq":{seq},"prev":"{prev}","type":"{kind}"{separator}{members}"#)
}

/// What a checkpoint signs: the log, its position in it (the hash of the line before
/// authenticates everything before) and its time.
fn message(log_id: &str, seq: u64, prev: &str, time: &str) -> Vec<u8> {
    format!("portcullis-audit-checkpoint-v1\n{log_id}\n{seq}\n{prev}\n{time}\n").into_bytes()
}

/// Sign a checkpoint; base64 signature.
pub fn sign(key: &SigningKey, log_id: &str, seq: u64, prev: &str, time: &str) -> String {
    B64.encode(key.sign(&message(log_id, seq, prev, time)).to_bytes())
}

/// Whether `signature` (base64) is `key`'s signature of the checkpoint.
pub fn verify(
    key: &VerifyingKey,
    signature: &str,
    log_id: &str,
    seq: u64,
    prev: &str,
    time: &str,
) -> bool {
    let Ok(bytes) = B64.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(&message(log_id, seq, prev, time), &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_splices_the_chain_fields_in_front() {
        assert_eq!(
            compose(3, "ab", "request", r#"{"a":1}"#),
            r#"{"seq":3,"prev":"ab","type":"request","a":1}"#
        );
        assert_eq!(
            compose(0, GENESIS, "close", "{}"),
            format!(r#"{{"seq":0,"prev":"{GENESIS}","type":"close"}}"#)
        );
        let line = compose(7, "cd", "x", r#"{"b":[1,2]}"#);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["seq"], 7);
        assert_eq!(parsed["b"][1], 2);
    }

    #[test]
    fn checkpoint_signatures_bind_every_field() {
        let key = crate::artifact::keys::generate();
        let public = key.verifying_key();
        let sig = sign(&key, "log", 5, "aa", "t");
        assert!(verify(&public, &sig, "log", 5, "aa", "t"));
        assert!(!verify(&public, &sig, "log", 6, "aa", "t"));
        assert!(!verify(&public, &sig, "log", 5, "ab", "t"));
        assert!(!verify(&public, &sig, "other", 5, "aa", "t"));
        assert!(!verify(&public, &sig, "log", 5, "aa", "u"));
        assert!(!verify(&public, "not base64!", "log", 5, "aa", "t"));
        let other = crate::artifact::keys::generate().verifying_key();
        assert!(!verify(&other, &sig, "log", 5, "aa", "t"));
    }
}
