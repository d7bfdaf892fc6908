//! The Sigstore bundle (v0.3 JSON) that carries a policy's signatures, stored beside
//! the component as `<policy>.wasm.sigstore.json`.
//!
//! ```json
//! { "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//!   "verificationMaterial": { "publicKey": { "hint": "sha256:<key id of the first signer>" } },
//!   "dsseEnvelope": { "payloadType": "application/vnd.in-toto+json",
//!                     "payload": "<base64 in-toto statement>",
//!                     "signatures": [ { "keyid": "sha256:…", "sig": "<base64>" }, … ] } }
//! ```
//!
//! **Several signatures: one bundle, one envelope, several DSSE signatures.** DSSE
//! allows any number of signatures over the same payload, each naming its key id, so
//! co-signing (M-of-N thresholds, key rotation by overlap) appends a signature to the
//! existing sidecar; the statement is signed byte for byte as it is, so every signer
//! attests exactly the same claims. `verificationMaterial.publicKey.hint` holds the
//! first signer's key id and is informational only: keys are chosen by each
//! signature's `keyid`, and trust comes only from the trust store. Strict Sigstore
//! clients expect exactly one signature per bundle; exporting one bundle per
//! signature for them is a mechanical split (same payload, one signature each).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dsse::Envelope;

/// The bundle media type written and accepted.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The largest bundle accepted (1 MiB).
pub const MAX_BUNDLE_BYTES: u64 = 1 << 20;

/// A bundle that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// No sidecar file or it cannot be read.
    #[error("cannot read the signature bundle {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Over [`MAX_BUNDLE_BYTES`].
    #[error("signature bundle is {size} bytes, over the {MAX_BUNDLE_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Not a well-formed v0.3 bundle holding a DSSE envelope.
    #[error("signature bundle is malformed: {0}")]
    Malformed(String),
}

/// A Sigstore bundle with a DSSE envelope (key mode: no transparency log entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// [`MEDIA_TYPE`].
    pub media_type: String,
    /// The key hint.
    pub verification_material: VerificationMaterial,
    /// The envelope.
    pub dsse_envelope: Envelope,
}

/// `verificationMaterial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// `publicKey.hint`.
    pub public_key: PublicKeyHint,
    /// Transparency log entries (none in key mode; kept for Sigstore's shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// `publicKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyHint {
    /// A key id; informational.
    pub hint: String,
}

/// The sidecar path for a component: `<wasm>.sigstore.json`.
pub fn sidecar_path(wasm: &Path) -> PathBuf {
    let mut s = wasm.as_os_str().to_os_string();
    s.push(".sigstore.json");
    PathBuf::from(s)
}

impl Bundle {
    /// A bundle for `envelope`.
    pub fn new(envelope: Envelope) -> Bundle {
        let hint = envelope
            .signatures
            .first()
            .map(|s| s.keyid.clone())
            .unwrap_or_default();
        Bundle {
            media_type: MEDIA_TYPE.to_string(),
            verification_material: VerificationMaterial {
                public_key: PublicKeyHint { hint },
                tlog_entries: Vec::new(),
            },
            dsse_envelope: envelope,
        }
    }

    /// Parse bundle JSON, checking its size, media type, payload type and that it has
    /// at least one signature.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.media_type != MEDIA_TYPE {
            return Err(BundleError::Malformed(format!(
                "mediaType is {:?}, expected {MEDIA_TYPE:?}",
                bundle.media_type
            )));
        }
        if bundle.dsse_envelope.payload_type != super::dsse::IN_TOTO_PAYLOAD_TYPE {
            return Err(BundleError::Malformed(format!(
                "dsseEnvelope.payloadType is {:?}, expected {:?}",
                bundle.dsse_envelope.payload_type,
                super::dsse::IN_TOTO_PAYLOAD_TYPE
            )));
        }
        if bundle.dsse_envelope.signatures.is_empty() {
            return Err(BundleError::Malformed(
                "dsseEnvelope.signatures is empty".into(),
            ));
        }
        Ok(bundle)
    }

    /// Read and parse a bundle file, refusing oversized files before reading them.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        Bundle::parse(&read_capped(path)?)
    }

    /// The statement the envelope carries, parsed WITHOUT checking any signature:
    /// for display and for choosing among releases that are verified before use.
    pub fn unverified_statement(&self) -> Result<super::statement::Statement, String> {
        let payload = self
            .dsse_envelope
            .payload_bytes()
            .map_err(|e| e.to_string())?;
        super::statement::Statement::parse(&payload)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bundle always serialises")
    }
}

/// Read a bundle file's bytes, at most [`MAX_BUNDLE_BYTES`] (+1 to detect overflow).
pub fn read_capped(path: &Path) -> Result<Vec<u8>, BundleError> {
    use std::io::Read as _;
    let io = |source| BundleError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(BundleError::TooLarge { size });
    }
    Ok(bytes)
}
