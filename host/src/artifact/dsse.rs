//! DSSE (Dead Simple Signing Envelope) v1: the envelope and its pre-authentication
//! encoding (PAE), which is what every signature covers:
//!
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal
//! byte counts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The bytes a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (JSON field names as in the DSSE and Sigstore specifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    /// The payload's media type.
    pub payload_type: String,
    /// One or more signatures over `pae(payload_type, payload)`.
    pub signatures: Vec<Signature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signer's key id (`sha256:` + hex of the SPKI digest); empty if unknown.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

impl Envelope {
    /// An envelope for `payload`, with no signatures yet.
    pub fn new(payload_type: &str, payload: &[u8]) -> Envelope {
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: Vec::new(),
        }
    }

    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(&self.payload)
    }

    /// Add `key`'s signature over the payload, named by `key_id`; `false` (nothing
    /// added) if that key already signed.
    pub fn add_signature(
        &mut self,
        key: &ed25519_dalek::SigningKey,
        key_id: &str,
    ) -> Result<bool, base64::DecodeError> {
        use ed25519_dalek::Signer as _;
        if self.signatures.iter().any(|s| s.keyid == key_id) {
            return Ok(false);
        }
        let signature = key.sign(&pae(&self.payload_type, &self.payload_bytes()?));
        self.signatures.push(Signature {
            keyid: key_id.to_string(),
            sig: b64(&signature.to_bytes()),
        });
        Ok(true)
    }
}

/// Base64 (standard, padded) encoding.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Base64 decoding (standard, padded).
pub fn unb64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_layout() {
        // The DSSE v1 protocol document's worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        // Lengths are byte counts, not character counts.
        assert_eq!(
            pae("t", "é".as_bytes()),
            "DSSEv1 1 t 2 é".as_bytes().to_vec()
        );
    }

    #[test]
    fn envelope_json_uses_the_spec_field_names() {
        let mut e = Envelope::new(IN_TOTO_PAYLOAD_TYPE, b"{}");
        e.signatures.push(Signature {
            keyid: "k".into(),
            sig: b64(b"s"),
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(json["payload"], "e30=");
        assert_eq!(json["signatures"][0]["keyid"], "k");
        assert_eq!(json["signatures"][0]["sig"], "cw==");
    }
}
