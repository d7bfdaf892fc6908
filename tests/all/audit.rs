//! The audit log: hash chain, signed checkpoints, rotation, restarts, and `audit
//! verify` finding every kind of tampering and saying where.

use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use portcullis::observe::audit::verify::{self, Broken, Verified};
use portcullis::observe::audit::{ACTIVE_FILE, AuditLog, AuditSection};
use serde_json::{Value, json};

struct Log {
    dir: tempfile::TempDir,
    key: VerifyingKey,
}

impl Log {
    fn path(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.path().join("audit-key.pem")
    }

    fn open(&self, settings: &AuditSection) -> AuditLog {
        AuditLog::open(settings, &self.path(), &self.key_path()).unwrap()
    }

    fn check(&self) -> Result<Verified, Broken> {
        let files = verify::files_in(&[self.path()]).unwrap();
        verify::verify(&files, &[self.key])
    }

    fn active(&self) -> PathBuf {
        self.path().join(ACTIVE_FILE)
    }

    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.active()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    fn write_lines(&self, lines: &[String]) {
        std::fs::write(self.active(), lines.join("\n") + "\n").unwrap();
    }
}

fn settings() -> AuditSection {
    AuditSection {
        checkpoint_every: 4,
        ..AuditSection::default()
    }
}

/// A closed log with `n` request records.
async fn closed_log(n: usize) -> Log {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("audit-key.pem");
    let log = AuditLog::open(&settings(), &dir.path().join("audit"), &key_path).unwrap();
    let mut last = 0;
    for i in 0..n {
        let seq = log
            .append(
                "request",
                &json!({"request_id": format!("r{i}"), "client": "c"}),
            )
            .await
            .unwrap();
        assert!(seq > last, "seq 0 is the open record; then increasing");
        last = seq;
    }
    log.close().unwrap();
    let pem = std::fs::read_to_string(portcullis::artifact::keys::public_path(&key_path)).unwrap();
    let key = portcullis::artifact::keys::parse_public(&pem, "test").unwrap();
    Log { dir, key }
}

fn broken(log: &Log) -> Broken {
    match log.check() {
        Err(b) => b,
        Ok(v) => panic!("verified despite tampering: {v:?}"),
    }
}

#[tokio::test]
async fn a_closed_log_verifies_complete_with_every_record_signed() {
    let log = closed_log(10).await;
    let v = log.check().unwrap();
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.requests, 10);
    // open + 10 requests + close, and checkpoints after every 4 records and at close.
    assert_eq!(v.records, 12 + v.checkpoints);
    assert!(v.checkpoints >= 3, "{v:?}");
    assert_eq!(v.uncovered, 0);
    let lines = log.lines();
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["type"], "open");
    assert_eq!(first["seq"], 0);
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["type"], "checkpoint");
    // The file is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(log.active())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[tokio::test]
async fn every_edit_deletion_reordering_and_truncation_is_found_and_located() {
    let log = closed_log(10).await;
    let original = log.lines();
    let request_line = |n: usize| {
        original
            .iter()
            .position(|l| l.contains(&format!("\"r{n}\"")))
            .unwrap()
    };

    // Edit one field of a record: the next record no longer chains to it.
    let mut lines = original.clone();
    let at = request_line(3);
    lines[at] = lines[at].replace("\"client\":\"c\"", "\"client\":\"x\"");
    log.write_lines(&lines);
    let b = broken(&log);
    assert_eq!(b.line, at + 2, "{b}");
    assert!(b.reason.contains("does not chain"), "{b}");

    // Delete a record.
    let mut lines = original.clone();
    let at = request_line(5);
    lines.remove(at);
    log.write_lines(&lines);
    let b = broken(&log);
    assert_eq!(b.line, at + 1, "{b}");
    assert!(b.reason.contains("deleted, inserted or reordered"), "{b}");

    // Swap two records.
    let mut lines = original.clone();
    let at = request_line(1);
    lines.swap(at, at + 1);
    log.write_lines(&lines);
    let b = broken(&log);
    assert_eq!(b.line, at + 1, "{b}");

    // Rewrite the chain after an edit (recomputing every hash): the next checkpoint's
    // signature does not verify.
    let mut lines = original.clone();
    let at = request_line(2);
    lines[at] = lines[at].replace("\"client\":\"c\"", "\"client\":\"x\"");
    for i in at + 1..lines.len() {
        let prev = sha256_hex(lines[i - 1].as_bytes());
        let mut v: Value = serde_json::from_str(&lines[i]).unwrap();
        v["prev"] = json!(prev);
        lines[i] = reserialize(&v);
    }
    log.write_lines(&lines);
    let b = broken(&log);
    assert!(b.reason.contains("signature does not verify"), "{b}");

    // Cut the closing records: intact so far, but incomplete (not closed).
    let lines = original[..original.len() - 2].to_vec();
    log.write_lines(&lines);
    let v = log.check().unwrap();
    assert!(!v.closed && !v.complete(), "{v:?}");

    // Cut the beginning: the log must start with its open record.
    let lines = original[3..].to_vec();
    log.write_lines(&lines);
    let b = broken(&log);
    assert_eq!(b.line, 1, "{b}");
    assert!(b.reason.contains("beginning was removed"), "{b}");

    // A line that is not a record in the middle.
    let mut lines = original.clone();
    lines[4] = "garbage".into();
    log.write_lines(&lines);
    let b = broken(&log);
    assert!(b.reason.contains("not an audit record"), "{b}");

    // Another key.
    log.write_lines(&original);
    let other = portcullis::artifact::keys::generate().verifying_key();
    let files = verify::files_in(&[log.path()]).unwrap();
    let b = verify::verify(&files, &[other]).unwrap_err();
    assert!(b.reason.contains("not among the given public keys"), "{b}");
    assert!(log.check().unwrap().complete());
}

#[tokio::test]
async fn a_restart_continues_the_chain_and_accounts_for_a_torn_write() {
    let log = closed_log(3).await;
    // A write cut short (as if the writer had been killed mid-line).
    let torn = br#"{"seq":99,"prev":"ab","type":"request","request_id":"torn"#;
    let mut bytes = std::fs::read(log.active()).unwrap();
    bytes.extend_from_slice(torn);
    std::fs::write(log.active(), &bytes).unwrap();
    let v = log.check().unwrap();
    assert!(
        v.notes.iter().any(|n| n.contains("partial record")),
        "{v:?}"
    );

    let writer = log.open(&settings());
    writer
        .append("request", &json!({"request_id": "after"}))
        .await
        .unwrap();
    writer.close().unwrap();
    let v = log.check().unwrap();
    assert!(v.complete(), "{v:?}");
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("acknowledged by the resume record")),
        "{v:?}"
    );
    let resume: Value = log
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null))
        .find(|v| v["type"] == "resume")
        .unwrap();
    assert_eq!(resume["previous_end"], "torn");
    assert_eq!(resume["torn_bytes"], torn.len());
    assert_eq!(v.requests, 4);

    // Editing the torn line is caught: the resume record names its hash.
    let lines: Vec<String> = log
        .lines()
        .into_iter()
        .map(|l| l.replace(r#""request_id":"torn"#, r#""request_id":"tern"#))
        .collect();
    log.write_lines(&lines);
    assert!(broken(&log).reason.contains("does not account for it"));
}

#[tokio::test]
async fn rotation_keeps_one_chain_across_files() {
    let log = closed_log(0).await;
    let rotating = AuditSection {
        rotate_kb: 1,
        ..settings()
    };
    let writer = log.open(&rotating);
    for i in 0..40 {
        writer
            .append(
                "request",
                &json!({"request_id": format!("r{i}"), "pad": "x".repeat(100)}),
            )
            .await
            .unwrap();
    }
    writer.close().unwrap();
    let files = verify::files_in(&[log.path()]).unwrap();
    assert!(files.len() >= 4, "{files:?}");
    let v = verify::verify(&files, &[log.key]).unwrap();
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.requests, 40);
    assert_eq!(v.files, files.len());

    // One rotated file alone: intact, but it starts mid-chain.
    let v = verify::verify(&files[1..2], &[log.key]).unwrap();
    assert!(!v.from_start && !v.complete(), "{v:?}");

    // A rotated file removed from the middle: the sequence jumps.
    std::fs::remove_file(&files[1]).unwrap();
    let rest = verify::files_in(&[log.path()]).unwrap();
    let b = verify::verify(&rest, &[log.key]).unwrap_err();
    assert!(b.reason.contains("was expected"), "{b}");
    assert_eq!(b.file, rest[1]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The line for `v` with `seq`, `prev` and `type` first, as the writer puts them.
fn reserialize(v: &Value) -> String {
    let mut rest = v.as_object().unwrap().clone();
    let head = format!(
        r#"{{"seq":{},"prev":{},"type":{}"#,
        rest.remove("seq").unwrap(),
        rest.remove("prev").unwrap(),
        rest.remove("type").unwrap()
    );
    let body = serde_json::to_string(&rest).unwrap();
    if body == "{}" {
        head + "}"
    } else {
        format!("{head},{}", &body[1..])
    }
}
