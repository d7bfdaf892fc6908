//! The host's lifecycle directory (`[lifecycle] dir`): what rollback and status need
//! to outlive a process.
//!
//! ```text
//! <dir>/status.json                         the host's status, rewritten after each reload
//! <dir>/pins.json                           operator pins (portcullis rollback)
//! <dir>/events.jsonl                        lifecycle journal, append-only
//! <dir>/archive/<name>/<sha256>-<sequence>.wasm   every release that was activated,
//! <dir>/archive/<name>/<sha256>-<sequence>.wasm.sigstore.json   with its bundle
//! ```
//!
//! An archived release is only ever used again through a pin, and is verified again
//! then like any candidate (every check but the sequence high-water mark, which a pin
//! deliberately goes below). The directory is created owner-only: whoever can write
//! the pins can choose among the archived releases.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::bundle;

/// Archived releases kept per policy (older ones are pruned; a pinned release is not
/// re-archived while pinned, so keep pins recent).
const KEEP: usize = 10;

/// An operator's pin: run this archived release of the policy instead of the
/// configured component, until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// `sha256:` digest of the archived component.
    pub digest: String,
    /// Its signed version (for people; the digest decides).
    pub version: Option<String>,
    /// Its signed sequence.
    pub sequence: Option<u64>,
    /// When the pin was set (RFC 3339 UTC).
    pub at: String,
    /// Who set it (the login name).
    pub by: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// The lifecycle directory.
#[derive(Debug, Clone)]
pub struct Releases {
    dir: PathBuf,
}

impl Releases {
    /// The directory at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Releases {
        Releases { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The status file.
    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// The pins file.
    pub fn pins_path(&self) -> PathBuf {
        self.dir.join("pins.json")
    }

    /// The event journal.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Where the release of policy `name` with component `digest` and signed
    /// `sequence` is (or would be) archived. A release is a signed statement: the same
    /// component re-signed under a new sequence is another release.
    pub fn archived_path(&self, name: &str, digest: &str, sequence: Option<u64>) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let file = match sequence {
            Some(sequence) => format!("{hex}-{sequence}.wasm"),
            None => format!("{hex}.wasm"),
        };
        self.dir.join("archive").join(name).join(file)
    }

    /// Archive a release of `name` (component and bundle) unless already there, then
    /// prune the oldest beyond the last ten (never the one just archived).
    pub fn archive(
        &self,
        name: &str,
        digest: &str,
        sequence: Option<u64>,
        wasm: &[u8],
        bundle: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let path = self.archived_path(name, digest, sequence);
        if !path.exists() {
            create_private_dir(path.parent().expect("archive path has a parent"))?;
            if let Some(bundle) = bundle {
                write_atomically(&bundle::sidecar_path(&path), bundle)?;
            }
            write_atomically(&path, wasm)?;
        } else {
            // Touch it, so pruning keeps the most recently activated.
            std::fs::File::options()
                .append(true)
                .open(&path)?
                .set_modified(std::time::SystemTime::now())?;
        }
        let mut releases = self.archived(name);
        releases.sort_by_key(|p| {
            std::cmp::Reverse(
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
            )
        });
        for old in releases.iter().skip(KEEP).filter(|old| **old != path) {
            let _ = std::fs::remove_file(bundle::sidecar_path(old));
            std::fs::remove_file(old)?;
        }
        Ok(())
    }

    /// The archived components of `name`.
    pub fn archived(&self, name: &str) -> Vec<PathBuf> {
        let dir = self.dir.join("archive").join(name);
        let Ok(read) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        read.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect()
    }

    /// The pins, by policy name (none when the file does not exist).
    pub fn pins(&self) -> Result<BTreeMap<String, Pin>, String> {
        let path = self.pins_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a valid pins file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Pin `name` to `pin` (`None`: remove its pin). The file is replaced atomically.
    pub fn set_pin(&self, name: &str, pin: Option<Pin>) -> Result<(), String> {
        let mut pins = self.pins()?;
        match pin {
            Some(pin) => pins.insert(name.to_string(), pin),
            None => pins.remove(name),
        };
        let json = serde_json::to_vec_pretty(&pins).expect("pins serialise");
        create_private_dir(&self.dir)
            .and_then(|()| write_atomically(&self.pins_path(), &json))
            .map_err(|e| format!("cannot write {}: {e}", self.pins_path().display()))
    }

    /// Append one event to the journal: `{"at": ..., "event": ..., ...fields}`.
    /// Journal failures are logged, never fatal.
    pub fn journal(&self, event: &str, fields: Value) {
        let mut record = serde_json::json!({ "at": crate::lifecycle::now(), "event": event });
        if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
            record.extend(fields);
        }
        let mut line = record.to_string();
        line.push('\n');
        let written = create_private_dir(&self.dir).and_then(|()| {
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(self.events_path())?
                .write_all(line.as_bytes())
        });
        if let Err(e) = written {
            tracing::error!(
                alert = true,
                "cannot append to the lifecycle journal {}: {e}",
                self.events_path().display()
            );
        }
    }
}

/// The current login name, for the journal.
pub fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Create `dir` and its parents, readable by the owner only (on Unix).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Write `bytes` to `path` through a temporary file and a rename, so readers never
/// see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_and_the_archive_keeps_the_newest_releases() {
        let dir = tempfile::tempdir().unwrap();
        let r = Releases::new(dir.path().join("lc"));
        assert!(r.pins().unwrap().is_empty());
        let pin = Pin {
            digest: "sha256:ab".into(),
            version: Some("1.0.0".into()),
            sequence: Some(3),
            at: "2026-01-01T00:00:00Z".into(),
            by: "ops".into(),
            reason: "bad release".into(),
        };
        r.set_pin("pii", Some(pin.clone())).unwrap();
        assert_eq!(r.pins().unwrap()["pii"], pin);
        r.set_pin("pii", None).unwrap();
        assert!(r.pins().unwrap().is_empty());
        std::fs::write(r.pins_path(), "{ nope").unwrap();
        assert!(r.pins().unwrap_err().contains("not a valid pins file"));

        let digest = |i: usize| format!("sha256:{i:064x}");
        for i in 0..13 {
            r.archive("pii", &digest(i), Some(i as u64), &[i as u8], Some(b"{}"))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(r.archived("pii").len(), KEEP, "the ten newest");
        assert!(!r.archived_path("pii", &digest(2), Some(2)).exists());
        let newest = r.archived_path("pii", &digest(12), Some(12));
        assert!(newest.exists() && bundle::sidecar_path(&newest).exists());
        // The same component re-signed under another sequence is another release.
        r.archive("pii", &digest(12), Some(13), &[12], Some(b"{}"))
            .unwrap();
        assert!(newest.exists() && r.archived_path("pii", &digest(12), Some(13)).exists());

        r.journal("rollback", serde_json::json!({"policy": "pii"}));
        let line = std::fs::read_to_string(r.events_path()).unwrap();
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["policy"].as_str()),
            (Some("rollback"), Some("pii"))
        );
    }
}
