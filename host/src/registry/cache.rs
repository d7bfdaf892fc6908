//! The on-disk cache of verified registry artifacts, by manifest digest
//! (`sha256/<hex>/policy.wasm` and its sidecar bundle, never changed once written),
//! and one pointer per configured reference naming the digest it last resolved to.
//! A host restarted while its registry is down starts from the pointers.
//!
//! Every write goes through a temporary name and a rename: a crash leaves either the
//! old state or the new one, never half an artifact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reference::{ArtifactRef, is_sha256_digest};
use crate::artifact::bundle::sidecar_path;
use crate::releases::{create_private_dir, write_atomically};

/// A reference's last verified digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The reference as configured.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
    /// When it was verified and cached (RFC 3339).
    pub at: String,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// Where the component of manifest `digest` is (or would be) cached.
    pub fn component(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("sha256").join(hex).join("policy.wasm")
    }

    /// Whether `digest` is cached.
    pub fn contains(&self, digest: &str) -> bool {
        is_sha256_digest(digest) && sidecar_path(&self.component(digest)).is_file()
    }

    /// Cache a verified component and its bundle under `digest`. Both files are
    /// written into a temporary directory that is then renamed into place.
    pub fn store(&self, digest: &str, wasm: &[u8], bundle: &[u8]) -> std::io::Result<()> {
        if self.contains(digest) {
            return Ok(());
        }
        let target = self.component(digest);
        let final_dir = target.parent().expect("a cached component has a directory");
        let root = final_dir.parent().expect("under sha256/");
        create_private_dir(root)?;
        static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = root.join(format!(".incoming-{}-{n}", std::process::id()));
        let written = (|| {
            create_private_dir(&tmp)?;
            let wasm_path = tmp.join("policy.wasm");
            write_synced(&wasm_path, wasm)?;
            write_synced(&sidecar_path(&wasm_path), bundle)?;
            std::fs::rename(&tmp, final_dir)
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if self.contains(digest) {
                // Another process cached the same digest first.
                return Ok(());
            }
        }
        written
    }

    /// The pointer of `reference`, if it was ever pulled.
    pub fn pointer(&self, reference: &str) -> Option<Pointer> {
        let bytes = std::fs::read(self.pointer_path(reference)).ok()?;
        serde_json::from_slice(&bytes)
            .ok()
            .filter(|p: &Pointer| p.reference == reference && self.contains(&p.digest))
    }

    /// Point `reference` at the cached `digest`; `true` if it pointed elsewhere.
    pub fn point(&self, reference: &str, digest: &str) -> std::io::Result<bool> {
        if self.pointer(reference).is_some_and(|p| p.digest == digest) {
            return Ok(false);
        }
        let path = self.pointer_path(reference);
        create_private_dir(path.parent().expect("pointers live in refs/"))?;
        let pointer = Pointer {
            reference: reference.to_string(),
            digest: digest.to_string(),
            at: crate::lifecycle::now(),
        };
        write_atomically(
            &path,
            &serde_json::to_vec_pretty(&pointer).expect("pointers serialise"),
        )?;
        Ok(true)
    }

    /// The cached component file for a configured `reference`: the pinned digest's,
    /// or the one its pointer names. `Err` says why there is none.
    pub fn resolve(&self, reference: &str) -> Result<PathBuf, String> {
        let parsed = ArtifactRef::parse(reference)?;
        let digest = match parsed.digest() {
            Some(d) => d.to_string(),
            None => match self.pointer(reference) {
                Some(p) => p.digest,
                None => {
                    return Err(format!(
                        "{reference} has not been pulled and verified yet (cache {})",
                        self.dir.display()
                    ));
                }
            },
        };
        if !self.contains(&digest) {
            return Err(format!(
                "{reference}: {digest} is not in the cache {} yet",
                self.dir.display()
            ));
        }
        Ok(self.component(&digest))
    }

    /// Remember that `digest` was refused (by verification or by the host's load
    /// checks) while the trust store had fingerprint `trust`.
    pub fn refuse(&self, digest: &str, trust: &str, reason: &str) -> std::io::Result<()> {
        let path = self.refusal_path(digest);
        create_private_dir(path.parent().expect("refusals live in refused/"))?;
        let record = serde_json::json!({ "digest": digest, "trust": trust, "reason": reason });
        write_atomically(&path, record.to_string().as_bytes())
    }

    /// Why `digest` was refused under the trust store with fingerprint `trust`, if
    /// it was (a refusal under another trust store does not count: the new store
    /// may accept it).
    pub fn refusal(&self, digest: &str, trust: &str) -> Option<String> {
        let bytes = std::fs::read(self.refusal_path(digest)).ok()?;
        let record: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        (record["trust"] == trust)
            .then(|| record["reason"].as_str().unwrap_or_default().to_string())
    }

    fn refusal_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("refused").join(format!("{hex}.json"))
    }

    fn pointer_path(&self, reference: &str) -> PathBuf {
        let key = crate::artifact::statement::sha256_hex(reference.as_bytes());
        self.dir.join("refs").join(format!("{}.json", &key[..32]))
    }
}

/// Write and fsync a new file.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest_and_points_references() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"));
        let digest = format!("sha256:{}", "b".repeat(64));
        let reference = "oci://127.0.0.1:5000/p/pii:1";
        assert!(
            cache
                .resolve(reference)
                .unwrap_err()
                .contains("not been pulled")
        );
        cache.store(&digest, b"wasm", b"bundle").unwrap();
        cache.store(&digest, b"wasm", b"bundle").unwrap();
        assert!(cache.point(reference, &digest).unwrap());
        assert!(!cache.point(reference, &digest).unwrap(), "unchanged");
        let path = cache.resolve(reference).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"wasm");
        assert_eq!(std::fs::read(sidecar_path(&path)).unwrap(), b"bundle");
        assert_eq!(cache.refusal(&digest, "t1"), None);
        cache.refuse(&digest, "t1", "self-test failed").unwrap();
        assert_eq!(
            cache.refusal(&digest, "t1").as_deref(),
            Some("self-test failed")
        );
        assert_eq!(
            cache.refusal(&digest, "t2"),
            None,
            "another trust store retries"
        );
        let pinned = format!("oci://127.0.0.1:5000/p/pii@{digest}");
        assert_eq!(cache.resolve(&pinned).unwrap(), path);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("c/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary directories left: {leftovers:?}"
        );
    }
}
