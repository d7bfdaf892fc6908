//! Policies through an OCI registry.
//!
//! * [`client`]: push a signed policy (CNCF Wasm layout, bundle as an OCI 1.1
//!   referrer, tag-schema fallback), resolve tags, fetch by digest;
//! * [`source`]: the host's poller that keeps `oci://` policies current;
//! * [`cache`]: verified artifacts on disk by digest (restarts without the registry);
//! * [`index`]: the signed policy-set index (freeze and mix-and-match protection);
//! * [`reference`], [`auth`], [`layout`]: references, credentials, documents.

pub mod auth;
pub mod cache;
pub mod client;
pub mod index;
pub mod layout;
pub mod reference;
pub mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use auth::Credentials;
pub use client::{Fetched, Options, Pushed, Registry, RegistryError};
pub use reference::ArtifactRef;

/// `[registry]`: where `oci://` policies come from and how they are kept current.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    /// Cache of verified artifacts by digest, and each reference's last digest
    /// (required when a policy is `oci://`). Keep it writable by the host only.
    pub cache_dir: Option<PathBuf>,
    /// Seconds between polls (±20 % jitter; doubled per failure up to 16×).
    pub poll_seconds: u64,
    /// Deadline of each registry operation, seconds.
    pub timeout_seconds: u64,
    /// Largest component pulled, MiB.
    pub max_blob_mb: u64,
    /// Registries (`host:port`) reached over plain HTTP. Every other one uses TLS.
    pub insecure: Vec<String>,
    /// PEM file of extra CA certificates for registries with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Docker-style credentials file (default: `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`, if it exists).
    pub credentials: Option<PathBuf>,
    /// A signed policy-set index (`oci://…`): when set, the host runs exactly the
    /// digests it lists and refuses any other.
    pub index: Option<String>,
    /// The set name the index must be signed for (required with `index`).
    pub index_name: Option<String>,
    /// Alert this many hours before the index expires.
    pub index_warn_hours: u64,
}

impl Default for RegistrySection {
    fn default() -> Self {
        RegistrySection {
            cache_dir: None,
            poll_seconds: 30,
            timeout_seconds: 10,
            max_blob_mb: 16,
            insecure: Vec::new(),
            ca_file: None,
            credentials: None,
            index: None,
            index_name: None,
            index_warn_hours: 6,
        }
    }
}

impl RegistrySection {
    /// Check the section; `used` says whether any policy is `oci://`.
    pub fn validate(&self, used: bool) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if used && self.cache_dir.is_none() {
            return err(
                "cache_dir",
                "oci:// policies need a cache directory for verified artifacts".into(),
            );
        }
        if self.timeout_seconds == 0 || self.max_blob_mb == 0 {
            return err(
                "timeout_seconds",
                "timeout_seconds and max_blob_mb must be at least 1".into(),
            );
        }
        if let Some(index) = &self.index {
            ArtifactRef::parse(index).map_err(|m| ("index".to_string(), m))?;
            if self.index_name.is_none() {
                return err(
                    "index_name",
                    "name the policy set the index must be signed for".into(),
                );
            }
        }
        Ok(())
    }
}

/// Client options from the section; relative paths resolve against `base`.
pub fn options(settings: &RegistrySection, base: &Path) -> Result<Options, String> {
    let credentials = Credentials::load(
        settings
            .credentials
            .as_ref()
            .map(|p| base.join(p))
            .as_deref(),
    )?;
    let ca_certificates = match &settings.ca_file {
        Some(path) => {
            let path = base.join(path);
            vec![
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?,
            ]
        }
        None => Vec::new(),
    };
    Ok(Options {
        ca_certificates,
        insecure: settings.insecure.clone(),
        timeout: Duration::from_secs(settings.timeout_seconds),
        max_blob_bytes: settings.max_blob_mb << 20,
        credentials,
    })
}
