//! The policy lifecycle: one active policy set (an immutable [`Pipeline`] snapshot
//! behind an `ArcSwap`), reloads that build a candidate set next to it and swap it in
//! atomically, and the status of every version seen.
//!
//! A reload re-reads the configuration, the trust store and every policy's files.
//! For each configured policy:
//! * **unchanged** (same component, bundle, settings and fixtures) and the trust store
//!   unchanged: the active entry is kept as is;
//! * **unchanged, trust store changed**: the active version is re-verified; one that
//!   no longer verifies (revoked or expired key, ...) is *deactivated*: it stays in the
//!   set but every run fails without running, so its stage applies its `on_error`
//!   (deny by default) — never silently skipped;
//! * **changed**: the candidate is verified, compiled (cached by digest), self-tested
//!   (signed self-tests and configured fixtures) and warmed up; if any step fails it is
//!   rejected with the reason and the previous version stays active (re-verified if the
//!   trust store changed). A policy new to the configuration whose candidate fails is
//!   not activated (it is listed as failed).
//!
//! A configuration or trust store that cannot be read keeps the whole active set, and
//! so does a configuration that would remove a `mandatory` policy, switch it to
//! monitor or drop the flag.
//! Every rejection is logged, counted and raised as an alert (an `error` event with
//! `alert = true`). A request evaluates against the one snapshot it loaded, start to
//! end, and its decision records that snapshot's generation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::artifact::manifest::format_utc;
use crate::artifact::trust::{TrustStore, Verified, Verifier};
use crate::config::PipelineConfig;
use crate::engine::Engine;
use crate::loader::{self, Candidate};
use crate::pipeline::{Entry, LoadError, Pipeline};

/// Versions kept in the status history per policy, besides the active one.
const HISTORY: usize = 8;

/// A policy version's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In the active set.
    Active,
    /// A candidate that was rejected.
    Failed,
    /// Replaced by a newer active version (or removed from the configuration).
    Superseded,
    /// Active but deactivated: it no longer verifies against the trust store.
    Revoked,
}

/// One version of one policy, as the status lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    /// Policy name.
    pub name: String,
    /// Signed version (absent when unsigned or never verified).
    pub version: Option<String>,
    /// Signed sequence.
    pub sequence: Option<u64>,
    /// `sha256:` digest of the component.
    pub digest: String,
    /// Key ids whose signatures counted.
    pub signers: Vec<String>,
    /// Lifecycle state.
    pub state: State,
    /// When it entered this state (RFC 3339 UTC).
    pub since: String,
    /// Why it failed or was deactivated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Lifecycle counters (monotonic since start).
#[derive(Debug, Default)]
struct Counters {
    reloads: AtomicU64,
    swaps: AtomicU64,
    rejected: AtomicU64,
    deactivated: AtomicU64,
}

/// The counters, read at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CounterValues {
    /// Reloads attempted.
    pub reloads: u64,
    /// Active sets swapped in.
    pub swaps: u64,
    /// Candidates (or whole configurations) rejected.
    pub rejected: u64,
    /// Active versions deactivated because they no longer verify.
    pub deactivated: u64,
}

/// The whole status: what `portcullis status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The active set's generation.
    pub generation: u64,
    /// When this status was taken.
    pub at: String,
    /// Every policy's versions: active first, then the most recent others.
    pub policies: Vec<VersionStatus>,
    /// Lifecycle counters.
    pub counters: CounterValues,
    /// The last reload's rejections (empty when it succeeded in full).
    pub last_errors: Vec<String>,
}

/// What one reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// The generation active afterwards.
    pub generation: u64,
    /// Whether a new set was swapped in.
    pub swapped: bool,
    /// Policies whose new version became active.
    pub activated: Vec<String>,
    /// Rejections, one line each.
    pub rejected: Vec<String>,
    /// Policies deactivated because they no longer verify.
    pub deactivated: Vec<String>,
}

/// Owns the active policy set and reloads it.
pub struct PolicyHost {
    engine: Arc<Engine>,
    config_path: PathBuf,
    active: ArcSwap<Active>,
    reloading: tokio::sync::Mutex<()>,
    history: Mutex<History>,
    counters: Counters,
}

/// The active set and what it was built from.
struct Active {
    pipeline: Arc<Pipeline>,
    config: PipelineConfig,
    /// SHA-256 of the trust store file (`None` when unsigned).
    trust: Option<String>,
}

#[derive(Default)]
struct History {
    /// Per policy name, newest first; at most one `Active` or `Revoked` per name.
    versions: BTreeMap<String, Vec<VersionStatus>>,
    last_errors: Vec<String>,
}

impl PolicyHost {
    /// Load the configuration at `config_path` strictly (any failure is an error: there
    /// is no last good set yet) and make it the active set, generation 1.
    pub async fn start(engine: &Arc<Engine>, config_path: &Path) -> Result<PolicyHost, LoadError> {
        let config = PipelineConfig::load(config_path).map_err(LoadError::Config)?;
        let (_, trust) = trust_for(&config)?;
        let pipeline = Pipeline::load_with(engine, &config).await?;
        let host = PolicyHost {
            engine: engine.clone(),
            config_path: config_path.to_path_buf(),
            active: ArcSwap::from_pointee(Active {
                pipeline: Arc::new(pipeline),
                config,
                trust,
            }),
            reloading: tokio::sync::Mutex::new(()),
            history: Mutex::new(History::default()),
            counters: Counters::default(),
        };
        {
            let mut history = host.history.lock().expect("history lock");
            for entry in host.snapshot().entries() {
                history.push(status_of(entry, State::Active, None));
            }
        }
        Ok(host)
    }

    /// The active set: evaluate a whole request or response against this one value.
    pub fn snapshot(&self) -> Arc<Pipeline> {
        self.active.load().pipeline.clone()
    }

    /// The configuration file being watched.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The active configuration.
    pub fn config(&self) -> PipelineConfig {
        self.active.load().config.clone()
    }

    /// Re-read everything and swap in a new set if anything changed (see the module
    /// docs). Reloads are serialised; evaluations never wait for one.
    pub async fn reload(&self) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().await;
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let current = self.active.load_full();
        let mut report = ReloadReport {
            generation: current.pipeline.generation(),
            ..ReloadReport::default()
        };
        let prepared = PipelineConfig::load(&self.config_path)
            .map_err(|e| e.to_string())
            .and_then(|config| match current.config.reload_refusal(&config) {
                Some(refusal) => Err(refusal),
                None => Ok(config),
            })
            .and_then(|config| {
                let (verifier, trust) = trust_for(&config).map_err(|e| e.to_string())?;
                Ok((config, trust, verifier))
            });
        let (config, trust, verifier) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let line = format!("configuration rejected, the active set stays: {e}");
                self.reject(&mut report, line);
                self.finish(&report);
                return report;
            }
        };
        let trust_changed = trust != current.trust;

        let mut entries = Vec::new();
        let mut to_record: Vec<Verified> = Vec::new();
        let mut rejected_digests = Vec::new();
        let mut changed = config.policies.len() != current.pipeline.entries().len();
        for p in &config.policies {
            let old = current
                .pipeline
                .entries()
                .iter()
                .find(|e| e.policy.name() == p.name)
                .cloned();
            let candidate = Candidate::read(&config, p);
            let digest = candidate
                .as_ref()
                .map(Candidate::digest)
                .unwrap_or_default();
            let unchanged = match (&candidate, &old) {
                (Ok(c), Some(o)) => c.fingerprint == o.source.fingerprint,
                _ => false,
            };
            if !unchanged {
                let attempt = match candidate {
                    Ok(c) => {
                        loader::load_entry(&self.engine, verifier.as_ref(), &config, p, c, true)
                            .await
                    }
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok((entry, verified)) => {
                        report.activated.push(p.name.clone());
                        to_record.extend(verified);
                        entries.push(Arc::new(entry));
                        changed = true;
                        continue;
                    }
                    Err(e) => {
                        rejected_digests.push(digest.clone());
                        self.history_push(VersionStatus {
                            name: p.name.clone(),
                            version: None,
                            sequence: None,
                            digest,
                            signers: Vec::new(),
                            state: State::Failed,
                            since: now(),
                            last_error: Some(e.to_string()),
                        });
                        let kept = if old.is_some() {
                            "the previous version stays active"
                        } else {
                            "it is not active"
                        };
                        self.reject(&mut report, format!("{e} ({kept})"));
                    }
                }
            }
            // Keep the active version, re-verified if the trust store changed.
            let Some(old) = old else { continue };
            let kept = match (&verifier, trust_changed || old.deactivated.is_some()) {
                (Some(verifier), true) => {
                    match loader::verify(&self.engine, verifier, &p.name, &old.source) {
                        Ok(_) if old.deactivated.is_some() => {
                            changed = true;
                            Arc::new(old.with_deactivation(None))
                        }
                        Ok(_) => old,
                        Err(e) if old.deactivated.is_none() => {
                            changed = true;
                            self.deactivate(&mut report, &old, &e.to_string());
                            Arc::new(old.with_deactivation(Some(e.to_string())))
                        }
                        Err(_) => old,
                    }
                }
                _ => old,
            };
            entries.push(kept);
        }
        let order_changed = entries
            .iter()
            .zip(current.pipeline.entries())
            .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed || order_changed || trust_changed {
            if let Some(verifier) = &verifier {
                for v in &to_record {
                    if let Err(e) = verifier.record(v) {
                        tracing::error!(alert = true, policy = %v.statement.predicate.name, "cannot record the anti-rollback mark: {e}");
                    }
                }
            }
            let generation = current.pipeline.generation() + 1;
            let removed: Vec<Arc<Entry>> = current
                .pipeline
                .entries()
                .iter()
                .filter(|o| !entries.iter().any(|n| Arc::ptr_eq(n, o)))
                .cloned()
                .collect();
            let pipeline = Pipeline::from_entries(&self.engine, entries, generation);
            {
                let mut history = self.history.lock().expect("history lock");
                for old in &removed {
                    if !pipeline
                        .entries()
                        .iter()
                        .any(|e| e.policy.name() == old.policy.name())
                    {
                        history.supersede(old);
                    }
                }
                for entry in pipeline.entries() {
                    let state = if entry.deactivated.is_some() {
                        State::Revoked
                    } else {
                        State::Active
                    };
                    history.push(status_of(entry, state, entry.deactivated.clone()));
                }
            }
            self.active.store(Arc::new(Active {
                pipeline: Arc::new(pipeline),
                config,
                trust,
            }));
            let gone = removed.iter().map(|o| o.policy.digest().to_string());
            self.forget_inactive(gone.collect());
            self.counters.swaps.fetch_add(1, Ordering::Relaxed);
            report.swapped = true;
            report.generation = generation;
            tracing::info!(
                generation,
                activated = ?report.activated,
                deactivated = ?report.deactivated,
                "policy set swapped in"
            );
        }
        self.forget_inactive(rejected_digests);
        self.finish(&report);
        report
    }

    /// Drop compiled code of `digests` that the active set does not use.
    fn forget_inactive(&self, digests: Vec<String>) {
        let active = self.snapshot();
        for digest in digests {
            if !active.entries().iter().any(|e| e.policy.digest() == digest) {
                self.engine.forget(&digest);
            }
        }
    }

    /// Every policy's versions and the counters.
    pub fn status(&self) -> Status {
        let history = self.history.lock().expect("history lock");
        Status {
            generation: self.snapshot().generation(),
            at: now(),
            policies: history.versions.values().flatten().cloned().collect(),
            counters: CounterValues {
                reloads: self.counters.reloads.load(Ordering::Relaxed),
                swaps: self.counters.swaps.load(Ordering::Relaxed),
                rejected: self.counters.rejected.load(Ordering::Relaxed),
                deactivated: self.counters.deactivated.load(Ordering::Relaxed),
            },
            last_errors: history.last_errors.clone(),
        }
    }

    /// Write [`PolicyHost::status`] as JSON to the configured status file, if any.
    pub fn write_status(&self) {
        let Some(path) = self.active.load().config.status_path() else {
            return;
        };
        let json = serde_json::to_vec_pretty(&self.status()).expect("status serialises");
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".tmp");
        if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!("cannot write the status file {}: {e}", path.display());
        }
    }

    fn reject(&self, report: &mut ReloadReport, line: String) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::error!(alert = true, "policy reload: {line}");
        report.rejected.push(line);
    }

    fn deactivate(&self, report: &mut ReloadReport, entry: &Entry, reason: &str) {
        self.counters.deactivated.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            alert = true,
            policy = %entry.policy.name(),
            "policy DEACTIVATED, it no longer verifies: {reason}; its stage applies on_error"
        );
        report.deactivated.push(entry.policy.name().to_string());
    }

    fn history_push(&self, status: VersionStatus) {
        self.history.lock().expect("history lock").push(status);
    }

    fn finish(&self, report: &ReloadReport) {
        self.history.lock().expect("history lock").last_errors = report.rejected.clone();
        self.write_status();
    }
}

impl History {
    /// Record `status` as the newest for its name. A new active (or revoked) version
    /// supersedes the previous one unless it is the same release (digest and sequence),
    /// whose state is then updated in place.
    fn push(&mut self, status: VersionStatus) {
        let list = self.versions.entry(status.name.clone()).or_default();
        let live = matches!(status.state, State::Active | State::Revoked);
        if live {
            if let Some(same) = list.iter_mut().find(|v| {
                v.digest == status.digest
                    && v.sequence == status.sequence
                    && matches!(v.state, State::Active | State::Revoked)
            }) {
                if same.state != status.state {
                    *same = status;
                }
                return;
            }
            for v in list.iter_mut() {
                if matches!(v.state, State::Active | State::Revoked) {
                    v.state = State::Superseded;
                    v.since = status.since.clone();
                }
            }
        }
        list.insert(0, status);
        list.sort_by_key(|v| !matches!(v.state, State::Active | State::Revoked));
        list.truncate(HISTORY + 1);
    }

    /// A policy was removed from the configuration: its live version is superseded.
    fn supersede(&mut self, entry: &Entry) {
        if let Some(list) = self.versions.get_mut(entry.policy.name()) {
            for v in list.iter_mut() {
                if v.digest == entry.policy.digest()
                    && matches!(v.state, State::Active | State::Revoked)
                {
                    v.state = State::Superseded;
                    v.since = now();
                }
            }
        }
    }
}

fn status_of(entry: &Entry, state: State, last_error: Option<String>) -> VersionStatus {
    VersionStatus {
        name: entry.policy.name().to_string(),
        version: entry.version.clone(),
        sequence: entry.sequence,
        digest: entry.policy.digest().to_string(),
        signers: entry.signers.clone(),
        state,
        since: now(),
        last_error,
    }
}

/// Now, to the second (RFC 3339 UTC).
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format_utc(t.replace_nanosecond(0).unwrap_or(t))
}

/// A verifier for `config`'s trust store and the SHA-256 of the store file (to notice
/// changes), from one read; both `None` with `allow_unsigned`.
fn trust_for(config: &PipelineConfig) -> Result<(Option<Verifier>, Option<String>), LoadError> {
    let Some((store, state)) = config.trust_paths() else {
        return Ok((None, None));
    };
    let text = crate::toml_file::read(&store)?;
    let fingerprint = crate::artifact::statement::sha256_hex(text.as_bytes());
    let verifier = Verifier::new(TrustStore::parse(&text, &store)?).with_state(state);
    Ok((Some(verifier), Some(fingerprint)))
}
