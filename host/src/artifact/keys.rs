//! Ed25519 keys: generation, PEM files (PKCS#8 private, SPKI public) and key ids.
//!
//! A key id is `sha256:` followed by the lowercase hex SHA-256 of the key's DER
//! `SubjectPublicKeyInfo` (for Ed25519, RFC 8410: `302a300506032b6570032100` then the
//! 32-byte public key).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// A key file that cannot be written, read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file exists already; keys are never overwritten.
    #[error("{0} already exists: refusing to overwrite a key (choose another --out or remove it)")]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM text is not an Ed25519 key of the expected kind.
    #[error("{what}: not an Ed25519 {kind} PEM key: {message}")]
    Pem {
        /// Where the text came from.
        what: String,
        /// `PKCS#8 private` or `SPKI public`.
        kind: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// A fresh random signing key (from the operating system's generator).
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// The canonical key id: `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("an Ed25519 public key always encodes");
    format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())))
}

/// The private key as PKCS#8 v1 PEM (RFC 8410, without the optional public key: the
/// form OpenSSL and Python's `cryptography` read; ed25519-dalek's default v2 encoding
/// is rejected by both).
pub fn private_pem(key: &SigningKey) -> String {
    ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .expect("an Ed25519 private key always encodes")
    .to_string()
}

/// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes")
}

/// Parse a PKCS#8 PEM private key; `what` names its origin in errors.
pub fn parse_private(pem: &str, what: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem {
        what: what.to_string(),
        kind: "PKCS#8 private",
        message: e.to_string(),
    })
}

/// Parse an SPKI PEM public key; `what` names its origin in errors.
pub fn parse_public(pem: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::Pem {
        what: what.to_string(),
        kind: "SPKI public",
        message: e.to_string(),
    })
}

/// Read a private key file.
pub fn read_private(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_private(&text, &path.display().to_string())
}

/// The public key's path for a private key path: `KEY.pub`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

/// Write a new key pair: the private key at `out` (mode 0600 on Unix) and the public
/// key at `out.pub`. Neither file may exist. Returns the key id.
pub fn write_pair(key: &SigningKey, out: &Path) -> Result<String, KeyError> {
    let public = public_path(out);
    for path in [out, public.as_path()] {
        if path.exists() {
            return Err(KeyError::Exists(path.to_path_buf()));
        }
    }
    write_new(out, private_pem(key).as_bytes(), 0o600)?;
    write_new(&public, public_pem(&key.verifying_key()).as_bytes(), 0o644)?;
    Ok(key_id(&key.verifying_key()))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_sha256_of_the_rfc8410_spki() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        let mut spki = hex::decode("302a300506032b6570032100").unwrap();
        spki.extend_from_slice(public.as_bytes());
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(&spki)));
        assert_eq!(key_id(&public), expected);
        assert_eq!(key_id(&public).len(), "sha256:".len() + 64);
    }

    #[test]
    fn pem_round_trips() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let private = private_pem(&key);
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        // RFC 8410's example layout: version 0, the Ed25519 OID, the 32-byte seed, no
        // public key (48 bytes of DER).
        let der = ed25519_dalek::pkcs8::spki::der::pem::decode_vec(private.as_bytes())
            .unwrap()
            .1;
        assert_eq!(der.len(), 48);
        assert_eq!(hex::encode(&der[..16]), "302e020100300506032b657004220420");
        assert_eq!(&der[16..], &[9u8; 32]);
        let public = public_pem(&key.verifying_key());
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            parse_private(&private, "t").unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(parse_public(&public, "t").unwrap(), key.verifying_key());
        assert!(parse_public(&private, "t").is_err());
    }
}
