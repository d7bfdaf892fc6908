//! Signing: create a bundle for a component, or add a signature to an existing one.

use ed25519_dalek::SigningKey;

use super::bundle::Bundle;
use super::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::keys::key_id;
use super::manifest::Predicate;
use super::statement::Statement;

/// Why a signature cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The existing bundle is for a different statement.
    #[error(
        "the existing bundle signs a different statement (other component bytes or manifest \
         fields); co-signers must sign the same statement — pass --force to replace the bundle"
    )]
    DifferentStatement,
    /// The manifest's kind or world is not what the component implements: the host
    /// would refuse the artifact, so it is not signed.
    #[error("the manifest claims world {claimed} but the component implements {actual}")]
    WrongWorld {
        /// The manifest's world.
        claimed: String,
        /// What the component's exports implement (or why that cannot be told).
        actual: String,
    },
    /// The existing bundle cannot be read.
    #[error("the existing bundle cannot be extended: {0}")]
    Existing(String),
}

/// Refuse a manifest whose kind and world are not what the component implements
/// (the host would refuse the signed artifact at load).
pub fn check_world(wasm: &[u8], predicate: &Predicate) -> Result<(), SignError> {
    let actual = super::component::implemented_world(wasm).unwrap_or_else(|e| e);
    if super::component::world_matches(&predicate.world, &actual) {
        Ok(())
    } else {
        Err(SignError::WrongWorld {
            claimed: predicate.world.clone(),
            actual,
        })
    }
}

/// What [`sign`] did.
#[derive(Debug)]
pub struct Signed {
    /// The resulting bundle.
    pub bundle: Bundle,
    /// The signer's key id.
    pub key_id: String,
    /// False if the key had already signed this bundle (nothing was added).
    pub added: bool,
}

/// Sign the statement for `wasm` + `predicate` with `key`. With `existing`, the
/// signature is appended if the existing bundle's statement is the same (compared as
/// JSON values); a different statement is an error unless `force`, which starts a new
/// bundle. Call [`check_world`] first: this signs whatever it is given.
pub fn sign(
    wasm: &[u8],
    predicate: Predicate,
    key: &SigningKey,
    existing: Option<Bundle>,
    force: bool,
) -> Result<Signed, SignError> {
    let statement = Statement::new(wasm, predicate);
    let fresh = statement.to_bytes();
    let id = key_id(&key.verifying_key());
    let mut envelope = match existing {
        Some(bundle) if !force => {
            let old = bundle
                .dsse_envelope
                .payload_bytes()
                .map_err(|e| SignError::Existing(format!("dsseEnvelope.payload: {e}")))?;
            let same = old == fresh
                || serde_json::from_slice::<serde_json::Value>(&old).ok()
                    == serde_json::from_slice::<serde_json::Value>(&fresh).ok();
            if !same {
                return Err(SignError::DifferentStatement);
            }
            bundle.dsse_envelope
        }
        _ => Envelope::new(IN_TOTO_PAYLOAD_TYPE, &fresh),
    };
    let added = envelope
        .add_signature(key, &id)
        .map_err(|e| SignError::Existing(e.to_string()))?;
    Ok(Signed {
        bundle: Bundle::new(envelope),
        key_id: id,
        added,
    })
}
