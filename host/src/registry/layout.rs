//! The documents Portcullis stores in a registry: the CNCF Wasm OCI artifact layout
//! for a policy (config `application/vnd.wasm.config.v0+json`, one `application/wasm`
//! layer), its signature bundle as an OCI 1.1 referrer (cosign's bundle-as-referrer
//! layout), the referrers tag-schema index for registries without the Referrers API,
//! and the signed policy-set index artifact.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::artifact::statement::sha256_digest;

/// An OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The CNCF Wasm artifact config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// A Wasm component or module layer.
pub const WASM_LAYER: &str = "application/wasm";
/// A Sigstore bundle (artifact type of a signature referrer, and its layer).
pub const BUNDLE: &str = crate::artifact::bundle::MEDIA_TYPE;
/// The empty descriptor's media type (config of artifacts that have none).
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's bytes.
pub const EMPTY_BYTES: &[u8] = b"{}";
/// Artifact type of a signed policy-set index.
pub const POLICY_SET: &str = "application/vnd.portcullis.policy-set.v1+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type (referrers).
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The descriptor of `bytes` with `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        });
        if let Some(t) = &self.artifact_type {
            v["artifactType"] = json!(t);
        }
        v
    }
}

/// The parts of a manifest Portcullis reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Its own media type (optional in the spec).
    #[serde(default)]
    pub media_type: Option<String>,
    /// Artifact type, if any.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Config descriptor.
    pub config: Descriptor,
    /// Layers.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

/// The parts of an image index Portcullis reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Index {
    /// The listed manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A document ready to push: its bytes and descriptor.
pub struct Document {
    /// The exact bytes (their digest is the document's digest).
    pub bytes: Vec<u8>,
    /// Its descriptor.
    pub descriptor: Descriptor,
}

impl Document {
    fn new(media_type: &str, value: &Value) -> Document {
        let bytes = serde_json::to_vec(value).expect("JSON values serialise");
        Document {
            descriptor: Descriptor::of(media_type, &bytes),
            bytes,
        }
    }
}

/// The CNCF Wasm config for a component exporting `exports` and targeting `world`.
pub fn wasm_config(wasm: &Descriptor, world: &str, exports: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [wasm.digest],
        "component": { "target": world, "exports": exports },
    }))
    .expect("JSON values serialise")
}

/// A policy's manifest: the config and the component layer, with its name and
/// version as OCI annotations.
pub fn policy_manifest(
    config: &Descriptor,
    wasm: &Descriptor,
    name: &str,
    version: &str,
) -> Document {
    Document::new(
        MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.to_json(),
            "layers": [wasm.to_json()],
            "annotations": {
                "org.opencontainers.image.title": format!("{name}.wasm"),
                "org.opencontainers.image.version": version,
            },
        }),
    )
}

/// A referrer manifest carrying one Sigstore bundle about `subject`.
pub fn bundle_referrer(
    subject: &Descriptor,
    bundle: &Descriptor,
    predicate_type: &str,
) -> Document {
    artifact_manifest(
        BUNDLE,
        bundle,
        Some(subject),
        json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate_type,
        }),
    )
}

/// The manifest of a signed policy-set index (its bundle is the one layer).
pub fn policy_set_manifest(bundle: &Descriptor) -> Document {
    artifact_manifest(POLICY_SET, bundle, None, json!({}))
}

fn artifact_manifest(
    artifact_type: &str,
    layer: &Descriptor,
    subject: Option<&Descriptor>,
    annotations: Value,
) -> Document {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": Descriptor::of(EMPTY, EMPTY_BYTES).to_json(),
        "layers": [layer.to_json()],
        "annotations": annotations,
    });
    if let Some(subject) = subject {
        manifest["subject"] = subject.to_json();
    }
    Document::new(MANIFEST, &manifest)
}

/// The referrers tag-schema tag for `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The tag-schema index: `existing` plus `referrer` (once).
pub fn with_referrer(existing: Index, referrer: Descriptor) -> Document {
    let mut manifests = existing.manifests;
    if !manifests.iter().any(|d| d.digest == referrer.digest) {
        manifests.push(referrer);
    }
    Document::new(
        INDEX,
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": manifests.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        }),
    )
}
