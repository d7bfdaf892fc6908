//! The host's registry source: every `oci://` policy of the configuration is resolved
//! to a digest (from its tag, its pinned digest, or the signed policy-set index),
//! pulled, verified against the trust store, and cached by digest; then the host
//! reloads, and the usual verify → compile → self-test → swap path takes over (the
//! loader reads the cached files). A digest that fails verification, or that the
//! host then rejects (self-test, limits...), is refused once, remembered in the cache
//! until the trust store changes, and reported (a `registry-refused` lifecycle event,
//! which alerts); the host keeps what it runs, and a moved reference whose new
//! version was rejected points back at the active one, so a restart starts on it.
//! Polls repeat with jitter, and back off while the registry is unreachable.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::cache::Cache;
use super::client::{Registry, RegistryError};
use super::index::PolicySet;
use super::reference::ArtifactRef;
use super::{RegistrySection, options};
use crate::artifact::trust::{Verifier, VerifyError, exports_via_engine};
use crate::config::PipelineConfig;
use crate::engine::Engine;
use crate::lifecycle::PolicyHost;
use crate::pipeline::LoadError;

/// One problem a sync ran into: a lifecycle event for the journal and alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `registry-refused`, `registry-unreachable`, `policy-set-refused`,
    /// `policy-set-expiring` or `policy-set-expired`.
    pub event: &'static str,
    /// The event's fields (`policy`, `reference`, `digest`, `reason`, ...).
    pub fields: Value,
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// References that now point at another verified digest: reload.
    pub moved: Vec<Moved>,
    /// What went wrong.
    pub problems: Vec<Problem>,
}

/// A reference that moved to another verified digest.
#[derive(Debug, Clone)]
pub struct Moved {
    /// The policy.
    pub policy: String,
    /// The configured reference.
    pub reference: String,
    /// The digest it pointed at before, if any.
    pub from: Option<String>,
    /// The digest it points at now.
    pub to: String,
}

/// The registry source of one host.
pub struct Source {
    engine: Arc<Engine>,
    registry: Registry,
    settings: RegistrySection,
    cache: Cache,
    /// The last verified index and its digest.
    index: Mutex<Option<(String, PolicySet)>>,
    /// SHA-256 of the trust store at the last sync (refusals are recorded under it:
    /// a changed store gets every refused digest another chance).
    trust: Mutex<String>,
}

impl Source {
    /// The source for `config`, or `None` when no policy comes from a registry.
    pub fn new(engine: &Arc<Engine>, config: &PipelineConfig) -> Result<Option<Source>, String> {
        if registry_refs(config).is_empty() {
            return Ok(None);
        }
        let settings = config.registry.clone();
        let cache = config
            .registry_cache()
            .ok_or("registry.cache_dir is required for oci:// policies")?;
        Ok(Some(Source {
            engine: engine.clone(),
            registry: Registry::new(options(&settings, &config.base_dir)?),
            settings,
            cache,
            index: Mutex::new(None),
            trust: Mutex::new(String::new()),
        }))
    }

    /// Before the host starts: sync once. A reference that could not be synced but
    /// has a verified digest in the cache is used from there (said on standard
    /// error); one with neither is an error.
    pub async fn prepare(&self, config: &PipelineConfig) -> Result<SyncReport, String> {
        let report = self.sync(config).await;
        for p in &report.problems {
            eprintln!("registry: {}: {}", p.event, p.fields);
        }
        let mut missing = Vec::new();
        for (_, reference) in registry_refs(config) {
            let troubled = report.problems.iter().any(|p| {
                p.event.starts_with("policy-set") || p.fields["reference"] == reference.as_str()
            });
            match self.cache.resolve(&reference) {
                Ok(_) if !troubled => {}
                Ok(path) => eprintln!(
                    "registry: starting {reference} on the last verified artifact in the cache ({})",
                    path.display()
                ),
                Err(e) => missing.push(e),
            }
        }
        if missing.is_empty() {
            Ok(report)
        } else {
            Err(format!(
                "cannot start: {} (and the registry did not provide them: {})",
                missing.join("; "),
                report
                    .problems
                    .iter()
                    .map(|p| p.fields["reason"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        }
    }

    /// Resolve, pull, verify and cache every registry policy of `config`.
    pub async fn sync(&self, config: &PipelineConfig) -> SyncReport {
        let mut report = SyncReport::default();
        let verifier = match verifier(config) {
            Ok((v, fingerprint)) => {
                *self.trust.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint;
                v
            }
            Err(reason) => {
                report
                    .problems
                    .push(problem("registry-refused", "", "", "", &reason));
                return report;
            }
        };
        let index = match &self.settings.index {
            Some(index) => match self.sync_index(index, &verifier, &mut report).await {
                Some(set) => Some(set),
                None => return report,
            },
            None => None,
        };
        for (key, reference) in registry_refs(config) {
            let name = key.split(':').next().unwrap_or(&key).to_string();
            let wanted = match self.wanted(&key, &reference, index.as_ref()).await {
                Ok(digest) => digest,
                Err((event, reason)) => {
                    report
                        .problems
                        .push(problem(event, &name, &reference, "", &reason));
                    continue;
                }
            };
            if let Some(reason) = self.cache.refusal(&wanted, &self.trust()) {
                report.problems.push(problem(
                    "registry-refused",
                    &name,
                    &reference,
                    &wanted,
                    &reason,
                ));
                continue;
            }
            if !self.cache.contains(&wanted)
                && let Err((event, reason)) = self.pull(&name, &reference, &wanted, &verifier).await
            {
                report
                    .problems
                    .push(problem(event, &name, &reference, &wanted, &reason));
                continue;
            }
            let from = self.cache.pointer(&reference).map(|p| p.digest);
            match self.cache.point(&reference, &wanted) {
                Ok(false) => {}
                Ok(true) => report.moved.push(Moved {
                    policy: name,
                    reference,
                    from,
                    to: wanted,
                }),
                Err(e) => report.problems.push(problem(
                    "registry-refused",
                    &name,
                    &reference,
                    &wanted,
                    &format!("cannot write the cache pointer: {e}"),
                )),
            }
        }
        report
    }

    /// Keep `host` in step with the registry: sync every poll interval (with
    /// jitter; backing off while the registry is unreachable), reload when a
    /// reference moved, announce new problems.
    pub fn spawn(self, host: Arc<PolicyHost>) -> Poller {
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            let mut last: HashSet<String> = HashSet::new();
            loop {
                tokio::time::sleep(self.delay(failures)).await;
                let report = self.sync(&host.config()).await;
                let unreachable = report
                    .problems
                    .iter()
                    .any(|p| p.event == "registry-unreachable");
                failures = if unreachable { failures + 1 } else { 0 };
                let now: HashSet<String> = report
                    .problems
                    .iter()
                    .map(|p| p.fields.to_string())
                    .collect();
                for p in report.problems {
                    if !last.contains(&p.fields.to_string()) {
                        tracing::warn!(event = p.event, "registry: {}", p.fields);
                        host.announce(p.event, p.fields);
                    }
                }
                last = now;
                if !report.moved.is_empty() {
                    let reloaded = host.reload().await;
                    for m in &report.moved {
                        if let Some(p) = self.undo_if_rejected(m, &reloaded.rejected) {
                            host.announce(p.event, p.fields);
                        }
                    }
                }
            }
        });
        Poller { task }
    }

    /// A moved reference whose new version the host rejected (self-test, stage,
    /// limits...; `rejected` holds the reload's or start's error lines) points back
    /// at the version before, so a restart starts on that one; the rejected digest
    /// is refused from now on. The problem to report, if `m` was rejected.
    fn undo_if_rejected(&self, m: &Moved, rejected: &[String]) -> Option<Problem> {
        let prefix = format!("policy {}:", m.policy);
        let reason = rejected.iter().find(|line| line.starts_with(&prefix))?;
        if let Some(from) = &m.from
            && let Err(e) = self.cache.point(&m.reference, from)
        {
            tracing::error!(
                "registry: cannot restore the cache pointer of {}: {e}",
                m.reference
            );
        }
        self.remember_refusal(&m.to, reason);
        Some(problem(
            "registry-refused",
            &m.policy,
            &m.reference,
            &m.to,
            reason,
        ))
    }

    /// The poll interval ± 20 %, doubled per consecutive failure up to 16×.
    fn delay(&self, failures: u32) -> Duration {
        let base = self.settings.poll_seconds.max(1) as f64 * f64::from(1u32 << failures.min(4));
        let jitter =
            f64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng)) / f64::from(u32::MAX);
        Duration::from_secs_f64(base * (0.8 + 0.4 * jitter))
    }

    /// The digest `reference` should run: the index's entry for `key` (a pinned
    /// digest must agree with it), else the pinned digest, else the tag's.
    async fn wanted(
        &self,
        key: &str,
        reference: &str,
        index: Option<&PolicySet>,
    ) -> Result<String, (&'static str, String)> {
        let parsed = ArtifactRef::parse(reference).map_err(|e| ("registry-refused", e))?;
        if let Some(set) = index {
            let listed = set.digest_of(key).ok_or_else(|| {
                (
                    "registry-refused",
                    format!(
                        "{key} is not listed in the signed policy-set index {:?}",
                        set.name
                    ),
                )
            })?;
            if let Some(pinned) = parsed.digest().filter(|d| *d != listed) {
                return Err((
                    "registry-refused",
                    format!("pinned {pinned} is not the digest the signed index lists ({listed})"),
                ));
            }
            return Ok(listed.to_string());
        }
        self.registry
            .resolve(&parsed)
            .await
            .map_err(|e| (event_of(&e), e.to_string()))
    }

    /// Fetch `digest`, verify it as policy `name`, and cache it with the bundle
    /// that verified. A verification failure is remembered.
    async fn pull(
        &self,
        name: &str,
        reference: &str,
        digest: &str,
        verifier: &Verifier,
    ) -> Result<(), (&'static str, String)> {
        let parsed = ArtifactRef::parse(reference).map_err(|e| ("registry-refused", e))?;
        let fetched = self
            .registry
            .fetch_policy(&parsed.at_digest(digest))
            .await
            .map_err(|e| (event_of(&e), e.to_string()))?;
        // Checked without advancing the high-water mark: the loader records it when
        // the version activates.
        let wasm = &fetched.wasm;
        let verified = first_verified(&fetched.bundles, |bundle| {
            verifier.check_named(name, wasm, bundle, || {
                exports_via_engine(&self.engine, wasm)
            })
        });
        let bundle = match verified {
            Ok((bundle, _)) => bundle,
            Err(reason) => {
                self.remember_refusal(digest, &reason);
                return Err(("registry-refused", reason));
            }
        };
        self.cache
            .store(digest, &fetched.wasm, bundle)
            .map_err(|e| ("registry-refused", format!("cannot write the cache: {e}")))?;
        tracing::info!(policy = name, %reference, digest, "registry: pulled and verified");
        Ok(())
    }

    /// The index to follow now: re-fetched and verified when its tag moved; the
    /// last verified one while the registry is unreachable. `None` (nothing may
    /// change) when no valid index is known or it has expired.
    async fn sync_index(
        &self,
        index: &str,
        verifier: &Verifier,
        report: &mut SyncReport,
    ) -> Option<PolicySet> {
        let name = self.settings.index_name.as_deref().unwrap_or_default();
        let known = self.index.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let fetched = match ArtifactRef::parse(index) {
            Ok(r) => {
                self.fetch_index(&r, known.as_ref().map(|k| k.0.as_str()))
                    .await
            }
            Err(e) => Err(("policy-set-refused", e)),
        };
        let now = OffsetDateTime::now_utc();
        let current = match fetched {
            Ok(None) => known.map(|k| k.1),
            Ok(Some((digest, bundle))) => {
                match PolicySet::verify(verifier, name, &bundle, &digest, now) {
                    Ok(set) => {
                        *self.index.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((digest, set.clone()));
                        Some(set)
                    }
                    Err(e) => {
                        report.problems.push(problem(
                            "policy-set-refused",
                            name,
                            index,
                            &digest,
                            &e.to_string(),
                        ));
                        known.map(|k| k.1)
                    }
                }
            }
            Err((event, reason)) => {
                report
                    .problems
                    .push(problem(event, name, index, "", &reason));
                known.map(|k| k.1)
            }
        }?;
        let expires = current.expires_at().ok()?;
        let left = expires - now;
        if left <= time::Duration::ZERO {
            report.problems.push(problem(
                "policy-set-expired",
                name,
                index,
                "",
                &format!(
                    "the signed index expired at {}; no policy changes until it is re-signed",
                    current.expires
                ),
            ));
            return None;
        }
        if left < time::Duration::hours(self.settings.index_warn_hours as i64) {
            report.problems.push(problem(
                "policy-set-expiring",
                name,
                index,
                "",
                &format!(
                    "the signed index expires at {} (sequence {})",
                    current.expires, current.sequence
                ),
            ));
        }
        Some(current)
    }

    /// The index's digest and bundle, or `None` when its digest is still `known`.
    async fn fetch_index(
        &self,
        reference: &ArtifactRef,
        known: Option<&str>,
    ) -> Result<Option<(String, Vec<u8>)>, (&'static str, String)> {
        let fail = |e: RegistryError| (event_of(&e), e.to_string());
        let digest = self.registry.resolve(reference).await.map_err(fail)?;
        if known == Some(digest.as_str()) {
            return Ok(None);
        }
        let (digest, bundle) = self
            .registry
            .fetch_policy_set(&reference.at_digest(&digest))
            .await
            .map_err(fail)?;
        Ok(Some((digest, bundle)))
    }

    fn trust(&self) -> String {
        self.trust.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Record a refusal in the cache (so a restart does not try `digest` again).
    fn remember_refusal(&self, digest: &str, reason: &str) {
        if let Err(e) = self.cache.refuse(digest, &self.trust(), reason) {
            tracing::error!("registry: cannot record the refusal of {digest}: {e}");
        }
    }
}

/// Start a policy host for the configuration at `config_path`, with its registry
/// policies: pull and verify them first ([`Source::prepare`]: from the cache when the
/// registry is down), start the host, then keep them current until the returned
/// [`Poller`] is dropped (`None` when no policy comes from a registry).
pub async fn start_host(
    engine: &Arc<Engine>,
    config_path: &Path,
) -> Result<(Arc<PolicyHost>, Option<Poller>), LoadError> {
    let config = PipelineConfig::load(config_path).map_err(LoadError::Config)?;
    let source = Source::new(engine, &config).map_err(LoadError::Registry)?;
    let mut moved = match &source {
        Some(source) => {
            source
                .prepare(&config)
                .await
                .map_err(LoadError::Registry)?
                .moved
        }
        None => Vec::new(),
    };
    // A version pulled just now that fails to load (its self-test, say) is refused
    // and its reference points back at the version before, which the host starts on.
    let host = loop {
        let failed = match PolicyHost::start(engine, config_path).await {
            Ok(host) => break Arc::new(host),
            Err(e) => e,
        };
        let line = failed.to_string();
        let undone = source.as_ref().and_then(|s| {
            let i = moved.iter().position(|m| {
                m.from.is_some() && s.undo_if_rejected(m, std::slice::from_ref(&line)).is_some()
            })?;
            Some(moved.remove(i))
        });
        match undone {
            Some(m) => eprintln!(
                "registry: refused {} {} (starting on {}): {line}",
                m.reference,
                m.to,
                m.from.as_deref().unwrap_or_default()
            ),
            None => return Err(failed),
        }
    };
    host.write_status();
    let poller = source.map(|s| s.spawn(host.clone()));
    Ok((host, poller))
}

/// A running poll loop; dropping it stops polling.
pub struct Poller {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first of `bundles` that `check` accepts, with what it returned, or every
/// bundle's reason.
pub fn first_verified<T>(
    bundles: &[Vec<u8>],
    check: impl Fn(&[u8]) -> Result<T, VerifyError>,
) -> Result<(&[u8], T), String> {
    let mut reasons = Vec::new();
    for bundle in bundles {
        match check(bundle) {
            Ok(verified) => return Ok((bundle, verified)),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(format!(
        "signature verification failed: {}",
        reasons.join("; ")
    ))
}

/// The `oci://` references of `config`: (index key, reference) for every policy and
/// candidate; a candidate's key is `<name>:candidate`.
pub fn registry_refs(config: &PipelineConfig) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for p in &config.policies {
        let own = p.path.to_str().filter(|t| ArtifactRef::is_registry(t));
        if let Some(r) = own {
            refs.push((p.name.clone(), r.to_string()));
        }
        let candidate = p.candidate.as_ref().and_then(|c| c.path.as_ref());
        if let Some(r) = candidate
            .and_then(|c| c.to_str())
            .filter(|t| ArtifactRef::is_registry(t))
        {
            refs.push((format!("{}:candidate", p.name), r.to_string()));
        }
    }
    refs
}

/// The verifier for `config`, and the SHA-256 of its trust store file (the host's
/// own reading of the store).
fn verifier(config: &PipelineConfig) -> Result<(Verifier, String), String> {
    match crate::lifecycle::trust_for(config).map_err(|e| e.to_string())? {
        (Some(verifier), Some(fingerprint)) => Ok((verifier, fingerprint)),
        _ => Err("registry policies need a trust store ([trust] store)".into()),
    }
}

fn event_of(e: &RegistryError) -> &'static str {
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Timeout { .. } => "registry-unreachable",
        _ => "registry-refused",
    }
}

fn problem(
    event: &'static str,
    policy: &str,
    reference: &str,
    digest: &str,
    reason: &str,
) -> Problem {
    Problem {
        event,
        fields: json!({
            "policy": policy,
            "reference": reference,
            "digest": digest,
            "reason": reason,
        }),
    }
}
