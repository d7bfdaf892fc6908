//! `portcullis push`, `pull` and `index publish`: policies through an OCI registry.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use portcullis::artifact::bundle;
use portcullis::artifact::keys::read_private;
use portcullis::artifact::manifest::format_utc;
use portcullis::artifact::trust::exports_via_engine;
use portcullis::engine::{Engine, EngineOptions};
use portcullis::registry::index::PolicySet;
use portcullis::registry::source::first_verified;
use portcullis::registry::{ArtifactRef, Registry, RegistrySection, options};

/// How to reach the registry.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (host:port); repeatable. Every other
    /// registry is reached over TLS.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// PEM file of extra CA certificates (a registry with a private CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Docker-style credentials file (default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json, if it exists).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// User for HTTP Basic authentication; the password comes from
    /// PORTCULLIS_REGISTRY_PASSWORD, or standard input with --password-stdin.
    /// (A bearer token: PORTCULLIS_REGISTRY_TOKEN.)
    #[arg(long)]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Deadline of each registry operation, seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Largest component pulled, MiB.
    #[arg(long, default_value_t = 16)]
    max_blob_mb: u64,
}

impl RegistryArgs {
    /// A client as the host's `[registry]` section with these values would make it,
    /// plus the credentials given on the command line.
    fn registry(&self, reference: &ArtifactRef) -> anyhow::Result<Registry> {
        let section = RegistrySection {
            insecure: self.insecure.clone(),
            ca_file: self.ca_file.clone(),
            credentials: self.credentials.clone(),
            timeout_seconds: self.timeout,
            max_blob_mb: self.max_blob_mb,
            ..RegistrySection::default()
        };
        let mut options = options(&section, Path::new("")).map_err(anyhow::Error::msg)?;
        let host = reference.registry();
        if let Some(user) = &self.username {
            let password = if self.password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from standard input")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            } else {
                std::env::var("PORTCULLIS_REGISTRY_PASSWORD").context(
                    "--username needs a password: set PORTCULLIS_REGISTRY_PASSWORD or pass \
                     --password-stdin",
                )?
            };
            options.credentials = options.credentials.basic(host, user, &password);
        } else if let Ok(token) = std::env::var("PORTCULLIS_REGISTRY_TOKEN") {
            options.credentials = options.credentials.bearer(host, &token);
        }
        Ok(Registry::new(options))
    }
}

fn parse_ref(text: &str) -> anyhow::Result<ArtifactRef> {
    ArtifactRef::parse(text).map_err(anyhow::Error::msg)
}

/// Push a signed component (its bundle is the `.sigstore.json` sidecar).
pub async fn push(args: &RegistryArgs, policy: &Path, target: &str) -> anyhow::Result<ExitCode> {
    let reference = parse_ref(target)?;
    if reference.tag().is_none() || reference.digest().is_some() {
        bail!("push to a tag (REGISTRY/REPOSITORY:TAG); the digest is computed from the content");
    }
    let wasm =
        std::fs::read(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    let sidecar = bundle::sidecar_path(policy);
    let bundle = bundle::read_capped(&sidecar).with_context(|| {
        format!(
            "{} has no signature bundle (sign it first: portcullis sign)",
            policy.display()
        )
    })?;
    let pushed = args
        .registry(&reference)?
        .push_policy(&reference, &wasm, &bundle)
        .await?;
    println!("{}", reference.at_digest(&pushed.digest));
    eprintln!(
        "pushed {reference} ({}), signature referrer {}{}",
        pushed.digest,
        pushed.referrer,
        match &pushed.fallback_tag {
            Some(tag) => format!(" (no Referrers API: listed under the tag {tag})"),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Fetch, verify, and only then write `<out>/<name>.wasm` and its bundle.
pub async fn pull(
    args: &RegistryArgs,
    trust: &super::TrustArgs,
    source: &str,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let reference = parse_ref(source)?;
    let verifier = super::signing::verifier(&trust.trust, trust.state.as_deref())?;
    let fetched = args.registry(&reference)?.fetch_policy(&reference).await?;
    let engine = Engine::new(&EngineOptions::default())?;
    let wasm = &fetched.wasm;
    let verified = first_verified(&fetched.bundles, |bundle| {
        super::signing::verify_as(&verifier, trust.name.as_deref(), wasm, bundle, || {
            exports_via_engine(&engine, wasm)
        })
    });
    let (bundle, verified) = match verified {
        Ok(v) => v,
        Err(reason) => {
            eprintln!(
                "refused {} ({}): {reason}; nothing written",
                fetched.reference, fetched.digest
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let name = &verified.statement.predicate.name;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let wasm_path = out.join(format!("{name}.wasm"));
    write_pair(&wasm_path, wasm, bundle)?;
    println!("{}", wasm_path.display());
    eprintln!(
        "pulled {} = {} ({name} {} sequence {}, signed by {})",
        reference,
        fetched.digest,
        verified.statement.predicate.version,
        verified.statement.predicate.sequence,
        verified.key_ids.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Write a component and its bundle through temporary files; if the second rename
/// fails, the first file is removed again (a component without its bundle is
/// refused, never run unverified).
fn write_pair(wasm_path: &Path, wasm: &[u8], bundle: &[u8]) -> anyhow::Result<()> {
    let sidecar = bundle::sidecar_path(wasm_path);
    let tmp = |p: &Path| PathBuf::from(format!("{}.{}.tmp", p.display(), std::process::id()));
    let (wasm_tmp, bundle_tmp) = (tmp(wasm_path), tmp(&sidecar));
    let written = std::fs::write(&wasm_tmp, wasm)
        .and_then(|()| std::fs::write(&bundle_tmp, bundle))
        .and_then(|()| std::fs::rename(&bundle_tmp, &sidecar))
        .and_then(|()| {
            std::fs::rename(&wasm_tmp, wasm_path).inspect_err(|_| {
                let _ = std::fs::remove_file(&sidecar);
            })
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&wasm_tmp);
        let _ = std::fs::remove_file(&bundle_tmp);
        bail!("cannot write {}: {e}", wasm_path.display());
    }
    Ok(())
}

/// What `index publish` signs.
pub struct IndexRequest<'a> {
    /// Signing key.
    pub key: &'a Path,
    /// The set's name.
    pub name: &'a str,
    /// Explicit sequence (default: the published index's + 1).
    pub sequence: Option<u64>,
    /// Validity.
    pub expires_hours: u64,
    /// `NAME=REFERENCE` entries.
    pub policies: &'a [String],
    /// Where to publish.
    pub target: &'a str,
}

/// Resolve every listed policy to its digest, sign the index and push it.
pub async fn publish_index(
    args: &RegistryArgs,
    req: &IndexRequest<'_>,
) -> anyhow::Result<ExitCode> {
    let target = parse_ref(req.target)?;
    let registry = args.registry(&target)?;
    let key = read_private(req.key)?;
    let mut policies = BTreeMap::new();
    for entry in req.policies {
        let Some((name, reference)) = entry.split_once('=') else {
            bail!("--policy {entry:?}: expected NAME=REGISTRY/REPOSITORY:TAG (or @sha256:…)");
        };
        let digest = registry.resolve(&parse_ref(reference)?).await?;
        policies.insert(name.to_string(), digest);
    }
    let sequence = match req.sequence {
        Some(n) => n,
        None => match registry.fetch_policy_set(&target).await {
            Ok((_, bundle)) => {
                PolicySet::unverified(&bundle)
                    .context("the published index is unreadable: pass --sequence")?
                    .sequence
                    + 1
            }
            Err(portcullis::registry::RegistryError::NotFound { .. }) => 1,
            Err(e) => return Err(e.into()),
        },
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns is valid");
    let set = PolicySet {
        name: req.name.to_string(),
        sequence,
        issued: format_utc(now),
        expires: format_utc(now + time::Duration::hours(req.expires_hours as i64)),
        policies,
    };
    let signed = set.sign(&key).map_err(anyhow::Error::msg)?;
    let digest = registry
        .push_policy_set(&target, signed.to_json().as_bytes())
        .await?;
    println!("{}", target.at_digest(&digest));
    eprintln!(
        "published policy set {:?} sequence {sequence}, expires {}: {}",
        set.name,
        set.expires,
        set.policies
            .iter()
            .map(|(n, d)| format!("{n}={d}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
