//! Clients and their API keys. The configuration holds SHA-256 digests of the keys (or
//! names environment variables holding them), never the keys; a presented key is
//! hashed and compared with every client's digest in constant time.

use axum::http::HeaderMap;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::settings::GatewaySection;

/// The client id of requests without a key when `allow_anonymous` is set.
pub const ANONYMOUS: &str = "anonymous";

/// The API keys the gateway accepts.
pub struct Clients {
    digests: Vec<([u8; 32], String)>,
    allow_anonymous: bool,
}

impl Clients {
    /// From `[gateway]`; a client's `key_env` must be set in the environment.
    pub fn from_settings(gateway: &GatewaySection) -> Result<Clients, String> {
        let mut digests = Vec::new();
        for (i, c) in gateway.clients.iter().enumerate() {
            let digest: [u8; 32] = match (&c.key_sha256, &c.key_env) {
                (Some(hex_digest), _) => hex::decode(hex_digest)
                    .ok()
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| {
                        format!("gateway.clients[{i}].key_sha256 is not 64 hex digits")
                    })?,
                (None, Some(var)) => {
                    let key = std::env::var(var).map_err(|_| {
                        format!("gateway.clients[{i}].key_env: the environment variable {var} is not set")
                    })?;
                    Sha256::digest(key.as_bytes()).into()
                }
                (None, None) => return Err(format!("gateway.clients[{i}] has no key")),
            };
            digests.push((digest, c.id.clone()));
        }
        Ok(Clients {
            digests,
            allow_anonymous: gateway.allow_anonymous,
        })
    }

    /// The client a request's `Authorization: Bearer KEY` (or `api-key: KEY`) header
    /// identifies.
    pub fn identify(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let Some(key) = presented else {
            if self.allow_anonymous {
                return Ok(ANONYMOUS.to_string());
            }
            return Err(ApiError::unauthorized(
                "missing API key: send `Authorization: Bearer <key>`",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (known, id) in &self.digests {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(id);
            }
        }
        found
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))
    }
}
