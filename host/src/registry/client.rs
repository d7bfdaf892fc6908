//! Talking to an OCI registry: push a signed policy (component, config, manifest,
//! bundle referrer, tag-schema fallback), resolve a tag, and fetch a policy by digest
//! with its bundles. Every byte fetched is checked against its digest and a size cap;
//! nothing here writes to disk or decides trust (see [`super::source`] and the CLI).

use std::time::Duration;

use futures::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};

use super::auth::Credentials;
use super::layout::{self, Descriptor, Document, Index, Manifest};
use super::reference::ArtifactRef;
use crate::artifact::bundle::{Bundle, MAX_BUNDLE_BYTES};
use crate::artifact::statement::sha256_digest;

/// Manifests larger than this are refused (registries cap them at 4 MiB too).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registries (`host:port`) spoken to over plain HTTP; every other one over TLS.
    pub insecure: Vec<String>,
    /// Deadline of each registry operation (connect, each request, a whole fetch).
    pub timeout: Duration,
    /// Largest component accepted, bytes.
    pub max_blob_bytes: u64,
    /// Credentials per registry.
    pub credentials: Credentials,
    /// Extra CA certificates (PEM) trusted for TLS, besides the system's roots.
    pub ca_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            timeout: Duration::from_secs(10),
            max_blob_bytes: 16 << 20,
            credentials: Credentials::default(),
            ca_certificates: Vec::new(),
        }
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached.
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// `host:port`.
        registry: String,
        /// The transport error.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("registry {registry} did not answer within {seconds} s ({what})")]
    Timeout {
        /// `host:port`.
        registry: String,
        /// The deadline.
        seconds: u64,
        /// The operation.
        what: String,
    },
    /// The registry refused the credentials (or wants some).
    #[error(
        "registry {registry} refused access to {repository} ({reason}): check the credentials \
         (Docker config auths, --username / PORTCULLIS_REGISTRY_PASSWORD)"
    )]
    Unauthorized {
        /// `host:port`.
        registry: String,
        /// The repository.
        repository: String,
        /// What the registry said.
        reason: String,
    },
    /// The tag, manifest or blob does not exist.
    #[error("not found: {what} (no such tag, manifest or repository)")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// Bytes differ from the digest that names them.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Over a size cap.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// What.
        what: String,
        /// Its (announced or actual) size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The artifact is not a Portcullis policy (or set) in the expected layout.
    #[error("{reference} is not a signed policy artifact: {reason}")]
    Layout {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// No signature bundle is attached.
    #[error(
        "no signature attached to {reference}: neither the Referrers API nor the fallback tag \
         {fallback_tag} lists a Sigstore bundle (push it with `portcullis push`)"
    )]
    NoSignature {
        /// The reference (by digest).
        reference: String,
        /// The tag-schema tag that was looked up.
        fallback_tag: String,
    },
    /// What was pushed is not a consistent signed policy.
    #[error("refusing to push: {0}")]
    Push(String),
    /// Any other registry answer.
    #[error("registry {registry}: {reason}")]
    Other {
        /// `host:port`.
        registry: String,
        /// The error.
        reason: String,
    },
}

/// A policy as pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The policy manifest's digest.
    pub digest: String,
    /// The bundle referrer's digest.
    pub referrer: String,
    /// The tag-schema tag written (the registry has no Referrers API), if any.
    pub fallback_tag: Option<String>,
}

/// A policy as fetched: digests checked, nothing verified yet.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The reference by digest.
    pub reference: ArtifactRef,
    /// The manifest's digest.
    pub digest: String,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// Every attached Sigstore bundle's bytes.
    pub bundles: Vec<Vec<u8>>,
}

/// A client for any number of registries.
pub struct Registry {
    client: oci_client::Client,
    options: Options,
}

impl Registry {
    /// A client with `options`.
    pub fn new(options: Options) -> Registry {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            connect_timeout: Some(options.timeout),
            read_timeout: Some(options.timeout),
            platform_resolver: None,
            extra_root_certificates: options
                .ca_certificates
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            ..ClientConfig::default()
        });
        Registry { client, options }
    }

    /// The digest `reference` names now (its own digest if it pins one).
    pub async fn resolve(&self, reference: &ArtifactRef) -> Result<String, RegistryError> {
        if let Some(digest) = reference.digest() {
            return Ok(digest.to_string());
        }
        self.deadline(reference, "resolving the tag", async {
            self.login(reference).await;
            let auth = self.auth(reference);
            self.client
                .fetch_manifest_digest(reference.oci(), &auth)
                .await
                .map_err(|e| classify(reference, &format!("tag {reference}"), e))
        })
        .await
    }

    /// Push `wasm` signed by `bundle` to `reference` (a tag): the component and its
    /// config, the manifest, the bundle as a referrer, and the tag-schema index when
    /// the registry has no Referrers API. The bundle must be for this component.
    pub async fn push_policy(
        &self,
        reference: &ArtifactRef,
        wasm: &[u8],
        bundle: &[u8],
    ) -> Result<Pushed, RegistryError> {
        let statement = Bundle::parse(bundle)
            .map_err(|e| RegistryError::Push(e.to_string()))?
            .unverified_statement()
            .map_err(RegistryError::Push)?;
        let actual = sha256_digest(wasm);
        if format!("sha256:{}", statement.digest()) != actual {
            return Err(RegistryError::Push(format!(
                "the bundle signs sha256:{}, but the component is {actual}",
                statement.digest()
            )));
        }
        let p = &statement.predicate;
        let exports = crate::artifact::component::interfaces(wasm)
            .map_err(RegistryError::Push)?
            .exports;
        self.deadline(reference, "pushing the policy", async {
            self.login(reference).await;
            let wasm_desc = Descriptor::of(layout::WASM_LAYER, wasm);
            let config = layout::wasm_config(&wasm_desc, &p.world, &exports);
            let config_desc = Descriptor::of(layout::WASM_CONFIG, &config);
            self.push_blob(reference, &config).await?;
            self.push_blob(reference, wasm).await?;
            let manifest = layout::policy_manifest(&config_desc, &wasm_desc, &p.name, &p.version);
            self.push_document(reference, &manifest).await?;
            let (referrer, fallback_tag) = self
                .attach(
                    reference,
                    &manifest.descriptor,
                    bundle,
                    &statement.predicate_type,
                )
                .await?;
            Ok(Pushed {
                digest: manifest.descriptor.digest,
                referrer,
                fallback_tag,
            })
        })
        .await
    }

    /// Fetch the policy `reference` names: resolve it, fetch and check the manifest
    /// (CNCF Wasm layout), the component (digest, size cap) and every attached bundle.
    pub async fn fetch_policy(&self, reference: &ArtifactRef) -> Result<Fetched, RegistryError> {
        let digest = self.resolve(reference).await?;
        let by_digest = reference.at_digest(&digest);
        self.deadline(reference, "fetching the policy", async {
            let manifest = self.manifest(&by_digest).await?;
            let layout_error = |reason: String| RegistryError::Layout {
                reference: by_digest.to_string(),
                reason,
            };
            if manifest.config.media_type != layout::WASM_CONFIG {
                return Err(layout_error(format!(
                    "config media type is {:?}, expected {:?}",
                    manifest.config.media_type,
                    layout::WASM_CONFIG
                )));
            }
            let [layer] = manifest.layers.as_slice() else {
                return Err(layout_error(format!(
                    "expected one {} layer, found {} layers",
                    layout::WASM_LAYER,
                    manifest.layers.len()
                )));
            };
            if layer.media_type != layout::WASM_LAYER {
                return Err(layout_error(format!(
                    "layer media type is {:?}, expected {:?}",
                    layer.media_type,
                    layout::WASM_LAYER
                )));
            }
            let wasm = self
                .blob(&by_digest, layer, self.options.max_blob_bytes, "component")
                .await?;
            let bundles = self.bundles(&by_digest, &digest).await?;
            Ok(Fetched {
                reference: by_digest.clone(),
                digest: digest.clone(),
                wasm,
                bundles,
            })
        })
        .await
    }

    /// Push a signed policy-set index `bundle` to `reference` (a tag); its digest.
    pub async fn push_policy_set(
        &self,
        reference: &ArtifactRef,
        bundle: &[u8],
    ) -> Result<String, RegistryError> {
        self.deadline(reference, "pushing the policy-set index", async {
            self.login(reference).await;
            self.push_blob(reference, layout::EMPTY_BYTES).await?;
            self.push_blob(reference, bundle).await?;
            let manifest = layout::policy_set_manifest(&Descriptor::of(layout::BUNDLE, bundle));
            self.push_document(reference, &manifest).await?;
            Ok(manifest.descriptor.digest)
        })
        .await
    }

    /// Fetch the policy-set index `reference` names: its digest and bundle bytes.
    pub async fn fetch_policy_set(
        &self,
        reference: &ArtifactRef,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let digest = self.resolve(reference).await?;
        let by_digest = reference.at_digest(&digest);
        self.deadline(reference, "fetching the policy-set index", async {
            let manifest = self.manifest(&by_digest).await?;
            let layer = match (
                manifest.artifact_type.as_deref(),
                manifest.layers.as_slice(),
            ) {
                (Some(layout::POLICY_SET), [layer]) if layer.media_type == layout::BUNDLE => layer,
                _ => {
                    return Err(RegistryError::Layout {
                        reference: by_digest.to_string(),
                        reason: format!(
                            "expected artifactType {} with one bundle layer",
                            layout::POLICY_SET
                        ),
                    });
                }
            };
            let bundle = self
                .blob(&by_digest, layer, MAX_BUNDLE_BYTES, "policy-set bundle")
                .await?;
            Ok((digest.clone(), bundle))
        })
        .await
    }

    /// Attach `bundle` to the manifest `subject` as a referrer; write the tag-schema
    /// index unless the registry's Referrers API already lists it.
    async fn attach(
        &self,
        reference: &ArtifactRef,
        subject: &Descriptor,
        bundle: &[u8],
        predicate_type: &str,
    ) -> Result<(String, Option<String>), RegistryError> {
        self.push_blob(reference, layout::EMPTY_BYTES).await?;
        self.push_blob(reference, bundle).await?;
        let referrer = layout::bundle_referrer(
            subject,
            &Descriptor::of(layout::BUNDLE, bundle),
            predicate_type,
        );
        let subject_ref = reference.at_digest(&subject.digest);
        self.push_document(
            &subject_ref.at_digest(&referrer.descriptor.digest),
            &referrer,
        )
        .await?;
        let native = self.native_referrers(&subject_ref).await?;
        if native.is_some_and(|listed| listed.contains(&referrer.descriptor.digest)) {
            return Ok((referrer.descriptor.digest, None));
        }
        let tag = layout::fallback_tag(&subject.digest);
        let existing = self.tag_schema_index(&subject_ref.at_tag(&tag)).await?;
        let mut entry = referrer.descriptor.clone();
        entry.artifact_type = Some(layout::BUNDLE.to_string());
        let index = layout::with_referrer(existing, entry);
        self.push_document(&reference.at_tag(&tag), &index).await?;
        Ok((referrer.descriptor.digest, Some(tag)))
    }

    /// The bundles attached to the manifest `digest` (via the Referrers API, else the
    /// tag schema); at least one, or [`RegistryError::NoSignature`].
    async fn bundles(
        &self,
        by_digest: &ArtifactRef,
        digest: &str,
    ) -> Result<Vec<Vec<u8>>, RegistryError> {
        let tag = layout::fallback_tag(digest);
        let listed = match self.native_referrers(by_digest).await? {
            Some(listed) if !listed.is_empty() => listed,
            _ => self
                .tag_schema_index(&by_digest.at_tag(&tag))
                .await?
                .manifests
                .into_iter()
                .filter(|d| {
                    d.artifact_type
                        .as_deref()
                        .is_none_or(|t| t == layout::BUNDLE)
                })
                .map(|d| d.digest)
                .collect(),
        };
        let mut bundles = Vec::new();
        for referrer in listed {
            let manifest = self.manifest(&by_digest.at_digest(&referrer)).await?;
            let about_this = manifest
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == digest);
            let is_bundle = manifest.artifact_type.as_deref() == Some(layout::BUNDLE);
            if let ([layer], true, true) = (manifest.layers.as_slice(), about_this, is_bundle) {
                bundles.push(
                    self.blob(by_digest, layer, MAX_BUNDLE_BYTES, "signature bundle")
                        .await?,
                );
            }
        }
        if bundles.is_empty() {
            return Err(RegistryError::NoSignature {
                reference: by_digest.to_string(),
                fallback_tag: tag,
            });
        }
        Ok(bundles)
    }

    /// The referrer digests the Referrers API lists for `by_digest`, or `None` when
    /// the registry has no Referrers API.
    async fn native_referrers(
        &self,
        by_digest: &ArtifactRef,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        self.login(by_digest).await;
        match self
            .client
            .pull_referrers(by_digest.oci(), Some(layout::BUNDLE))
            .await
        {
            Ok(index) => Ok(Some(
                index.manifests.into_iter().map(|m| m.digest).collect(),
            )),
            Err(e) => match classify(by_digest, "the Referrers API", e) {
                RegistryError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The tag-schema index at `tag_ref`, empty when the tag does not exist.
    async fn tag_schema_index(&self, tag_ref: &ArtifactRef) -> Result<Index, RegistryError> {
        let auth = self.auth(tag_ref);
        match self
            .client
            .pull_manifest_raw(tag_ref.oci(), &auth, &[layout::INDEX])
            .await
        {
            Ok((bytes, _)) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Layout {
                reference: tag_ref.to_string(),
                reason: format!("the referrers index is not an OCI index: {e}"),
            }),
            Err(e) => match classify(tag_ref, "the referrers tag", e) {
                RegistryError::NotFound { .. } => Ok(Index::default()),
                other => Err(other),
            },
        }
    }

    /// The manifest at `by_digest`, checked against its digest.
    async fn manifest(&self, by_digest: &ArtifactRef) -> Result<Manifest, RegistryError> {
        let digest = by_digest.digest().unwrap_or_default();
        let what = format!("manifest {by_digest}");
        self.login(by_digest).await;
        let auth = self.auth(by_digest);
        let (bytes, _) = self
            .client
            .pull_manifest_raw(by_digest.oci(), &auth, &[layout::MANIFEST])
            .await
            .map_err(|e| classify(by_digest, &what, e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge {
                what,
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_BYTES as u64,
            });
        }
        // oci-client checks this too; the check that decides stays here.
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Layout {
            reference: by_digest.to_string(),
            reason: format!("not an OCI image manifest: {e}"),
        })
    }

    /// A blob, refused before download when its descriptor announces more than
    /// `limit` bytes and cut off when the registry sends more; digest checked.
    async fn blob(
        &self,
        reference: &ArtifactRef,
        descriptor: &Descriptor,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = |size| RegistryError::TooLarge {
            what: format!("{what} {}", descriptor.digest),
            size,
            limit,
        };
        if descriptor.size > limit {
            return Err(too_large(descriptor.size));
        }
        let mut stream = self
            .client
            .pull_blob_stream(reference.oci(), descriptor.digest.as_str())
            .await
            .map_err(|e| classify(reference, &format!("{what} {}", descriptor.digest), e))?;
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Unreachable {
                registry: reference.registry().to_string(),
                reason: e.to_string(),
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(too_large(bytes.len() as u64));
            }
        }
        let actual = sha256_digest(&bytes);
        if actual != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    async fn push_blob(&self, reference: &ArtifactRef, bytes: &[u8]) -> Result<(), RegistryError> {
        let digest = sha256_digest(bytes);
        self.client
            .push_blob(reference.oci(), bytes, &digest)
            .await
            .map(drop)
            .map_err(|e| classify(reference, &format!("uploading blob {digest}"), e))
    }

    async fn push_document(
        &self,
        reference: &ArtifactRef,
        document: &Document,
    ) -> Result<(), RegistryError> {
        let content_type = document
            .descriptor
            .media_type
            .parse()
            .expect("media types are valid header values");
        self.client
            .push_manifest_raw(reference.oci(), document.bytes.clone(), content_type)
            .await
            .map(drop)
            .map_err(|e| classify(reference, &format!("pushing {reference}"), e))
    }

    fn auth(&self, reference: &ArtifactRef) -> oci_client::secrets::RegistryAuth {
        self.options.credentials.for_registry(reference.registry())
    }

    /// Hand the registry's credentials to the client, which authenticates lazily
    /// (and caches tokens) on the first request that needs them.
    async fn login(&self, reference: &ArtifactRef) {
        let auth = self.auth(reference);
        self.client
            .store_auth_if_needed(reference.registry(), &auth)
            .await;
    }

    async fn deadline<T>(
        &self,
        reference: &ArtifactRef,
        what: &str,
        work: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        tokio::time::timeout(self.options.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(RegistryError::Timeout {
                    registry: reference.registry().to_string(),
                    seconds: self.options.timeout.as_secs(),
                    what: what.to_string(),
                })
            })
    }
}

/// An `oci_client` error as a [`RegistryError`] about `what`.
fn classify(reference: &ArtifactRef, what: &str, e: OciDistributionError) -> RegistryError {
    let registry = reference.registry().to_string();
    let unauthorized = |reason: String| RegistryError::Unauthorized {
        registry: registry.clone(),
        repository: reference.repository().to_string(),
        reason,
    };
    let not_found = || RegistryError::NotFound {
        what: what.to_string(),
    };
    match e {
        OciDistributionError::UnauthorizedError { .. } => unauthorized("HTTP 401".into()),
        OciDistributionError::AuthenticationFailure(reason) => unauthorized(reason),
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::ServerError { code, message, .. } => match code {
            401 | 403 => unauthorized(format!("HTTP {code}")),
            404 => not_found(),
            _ => RegistryError::Other {
                registry,
                reason: format!("{what}: HTTP {code} {}", message.trim()),
            },
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let code = |e: &oci_client::errors::OciError| {
                serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let codes: Vec<String> = envelope.errors.iter().map(code).collect();
            let text = envelope
                .errors
                .iter()
                .map(|e| format!("{}: {}", code(e), e.message))
                .collect::<Vec<_>>()
                .join("; ");
            if codes.iter().any(|c| c == "UNAUTHORIZED" || c == "DENIED") {
                unauthorized(text)
            } else if codes
                .iter()
                .any(|c| c.ends_with("_UNKNOWN") || c == "NOT_FOUND")
            {
                not_found()
            } else {
                RegistryError::Other {
                    registry,
                    reason: format!("{what}: {text}"),
                }
            }
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
            }
        }
        OciDistributionError::RequestError(r) if r.is_timeout() => RegistryError::Unreachable {
            registry,
            reason: format!("{what}: the request timed out"),
        },
        OciDistributionError::RequestError(r) if r.is_connect() || r.is_request() => {
            let mut reason = error_chain(&r);
            if reason.contains("UnknownIssuer") || reason.contains("invalid peer certificate") {
                reason.push_str(
                    " (the registry's certificate is not trusted here; for a private CA, give \
                     its certificate: --ca-file or [registry] ca_file)",
                );
            }
            if reason.contains("InvalidContentType") || reason.contains("corrupt message") {
                reason.push_str(
                    " (the registry does not speak TLS here; if it is a plain-HTTP registry, \
                     list it explicitly: --insecure-registry or [registry] insecure)",
                );
            }
            RegistryError::Unreachable { registry, reason }
        }
        other => RegistryError::Other {
            registry,
            reason: format!("{what}: {other}"),
        },
    }
}

/// An error and its sources, joined: the innermost cause is usually the useful part.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
