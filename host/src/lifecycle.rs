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

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::{Value, json};

use crate::artifact::manifest::format_utc;
use crate::artifact::trust::{TrustStore, Verified, Verifier};
use crate::config::{CanaryKey, PipelineConfig, PolicyConfig};
use crate::engine::Engine;
use crate::loader::{self, Admission, Candidate};
use crate::pipeline::{Entry, LoadError, Pipeline};
use crate::releases::Releases;
use crate::rollout::{Role, ShadowCounts};

/// Versions kept in the status history per policy, besides the active one.
const HISTORY: usize = 8;

/// Superseded versions whose compiled code stays in memory (for a quick rollback).
const RETAINED: usize = 4;

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
    /// For a candidate: `shadow` or `canary N% by client|request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// An archived release pinned by `portcullis rollback`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
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
    /// Candidates being rolled out.
    pub rollouts: Vec<RolloutStatus>,
    /// Lifecycle counters.
    pub counters: CounterValues,
    /// The last reload's rejections (empty when it succeeded in full).
    pub last_errors: Vec<String>,
}

/// A candidate being rolled out next to a policy's active version.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    /// Policy name.
    pub policy: String,
    /// `shadow` or `canary`.
    pub rollout: &'static str,
    /// Canary share, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Canary split key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<CanaryKey>,
    /// The active version's digest.
    pub active: String,
    /// The candidate's digest.
    pub candidate: String,
    /// The candidate's signed version.
    pub candidate_version: Option<String>,
    /// Shadow comparison counters since the candidate started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowCounts>,
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
    /// Digests of recently superseded versions whose compiled code stays in memory, so
    /// a rollback to one of them does not wait for a compilation.
    retained: Mutex<VecDeque<String>>,
    /// Told of every lifecycle event (the gateway's audit log and alerts).
    listeners: Mutex<Vec<Listener>>,
}

/// A lifecycle event listener: event name (`activated`, `deactivated`, ...) and fields
/// (policy, role, version, sequence, digest, signers, reason).
pub type Listener = Box<dyn Fn(&str, &Value) + Send + Sync>;

/// The active set and what it was built from.
struct Active {
    pipeline: Arc<Pipeline>,
    config: PipelineConfig,
    /// SHA-256 of the trust store file (`None` when unsigned).
    trust: Option<String>,
}

/// History rows are kept per policy and slot: the active version, or a candidate.
type Slot = (String, bool);

#[derive(Default)]
struct History {
    /// Per policy and slot, newest first; at most one `Active` or `Revoked` each.
    versions: BTreeMap<Slot, Vec<VersionStatus>>,
    last_errors: Vec<String>,
}

/// Which version of a policy a load is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    /// The configured component, as the active version.
    Active,
    /// An archived release the operator pinned, as the active version.
    Pinned(&'a str),
    /// The rollout candidate.
    Candidate,
}

/// One reload in progress.
struct Round<'a> {
    config: &'a PipelineConfig,
    verifier: Option<&'a Verifier>,
    trust_changed: bool,
    /// Fail on the first rejection (start-up) instead of keeping the last good.
    strict: bool,
    to_record: Vec<Verified>,
    rejected_digests: Vec<String>,
    journal: Vec<(&'static str, Value)>,
    report: ReloadReport,
}

impl PolicyHost {
    /// Load the configuration at `config_path` strictly (any failure is an error: there
    /// is no last good set yet) and make it the active set, generation 1. Pins in the
    /// lifecycle directory apply, so a rollback survives a restart.
    pub async fn start(engine: &Arc<Engine>, config_path: &Path) -> Result<PolicyHost, LoadError> {
        let config = PipelineConfig::load(config_path).map_err(LoadError::Config)?;
        let host = PolicyHost {
            engine: engine.clone(),
            config_path: config_path.to_path_buf(),
            active: ArcSwap::from_pointee(Active {
                pipeline: Arc::new(Pipeline::from_entries(engine, Vec::new(), 0)),
                config: config.clone(),
                trust: None,
            }),
            reloading: tokio::sync::Mutex::new(()),
            history: Mutex::new(History::default()),
            counters: Counters::default(),
            retained: Mutex::new(VecDeque::new()),
            listeners: Mutex::new(Vec::new()),
        };
        host.apply(config, true).await?;
        Ok(host)
    }

    /// Tell `listener` of every later lifecycle event (the events of the lifecycle
    /// journal, whether or not a lifecycle directory is configured).
    pub fn on_event(&self, listener: Listener) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    /// Report an event from outside a reload (the registry source's refusals and
    /// warnings): to every listener and the lifecycle journal, like reload events.
    pub fn announce(&self, event: &'static str, fields: Value) {
        let releases = self.config().lifecycle_dir().map(Releases::new);
        self.publish(releases.as_ref(), vec![(event, fields)]);
    }

    fn publish(&self, releases: Option<&Releases>, events: Vec<(&'static str, Value)>) {
        {
            let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            for (event, fields) in &events {
                for listener in listeners.iter() {
                    listener(event, fields);
                }
            }
        }
        if let Some(r) = releases {
            for (event, fields) in events {
                r.journal(event, fields);
            }
        }
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
        let loaded = PipelineConfig::load(&self.config_path)
            .map_err(|e| e.to_string())
            .and_then(|config| match current.config.reload_refusal(&config) {
                Some(refusal) => Err(refusal),
                None => Ok(config),
            });
        let applied = match loaded {
            Ok(config) => self.apply(config, false).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        applied.unwrap_or_else(|e| {
            let mut report = ReloadReport {
                generation: current.pipeline.generation(),
                ..ReloadReport::default()
            };
            let line = format!("configuration rejected, the active set stays: {e}");
            self.reject(&mut report, line);
            self.finish(&report, &current.config);
            report
        })
    }

    /// Build the set `config` describes next to the active one, reusing unchanged
    /// entries, and swap it in if anything changed. `strict`: any rejection is an
    /// error and nothing is swapped (start-up); otherwise rejected candidates keep
    /// their last good version. An unreadable trust store or pins file is an error.
    async fn apply(&self, config: PipelineConfig, strict: bool) -> Result<ReloadReport, LoadError> {
        let current = self.active.load_full();
        let (verifier, trust) = trust_for(&config)?;
        // Absolute, so an archived path is not resolved against the base directory
        // a second time when it stands in for a policy's configured path.
        let releases = config
            .lifecycle_dir()
            .map(|d| Releases::new(std::path::absolute(&d).unwrap_or(d)));
        let pins = match &releases {
            Some(r) => r.pins().map_err(LoadError::Lifecycle)?,
            None => BTreeMap::new(),
        };
        let mut round = Round {
            config: &config,
            verifier: verifier.as_ref(),
            trust_changed: trust != current.trust,
            strict,
            to_record: Vec::new(),
            rejected_digests: Vec::new(),
            journal: Vec::new(),
            report: ReloadReport {
                generation: current.pipeline.generation(),
                ..ReloadReport::default()
            },
        };
        let mut entries = Vec::new();
        for p in &config.policies {
            let old = current
                .pipeline
                .entries()
                .iter()
                .find(|e| e.policy.name() == p.name)
                .cloned();
            let own = PolicyConfig {
                candidate: None,
                ..p.clone()
            };
            let pinned = pins.get(&p.name).zip(releases.as_ref());
            let (part, own) = match pinned {
                Some((pin, r)) => (
                    Part::Pinned(&pin.digest),
                    PolicyConfig {
                        path: r.archived_path(&p.name, &pin.digest, pin.sequence),
                        ..own
                    },
                ),
                None => (Part::Active, own),
            };
            let Some(active) = self.settle(&mut round, &own, old.as_ref(), part).await? else {
                continue;
            };
            let old_candidate = old.as_ref().and_then(|o| o.candidate.as_ref());
            let candidate = match (p.candidate_policy(), &p.candidate) {
                (Some(cp), Some(c)) => self
                    .settle(&mut round, &cp, old_candidate, Part::Candidate)
                    .await?
                    .map(|next| {
                        let previous = old_candidate.filter(|o| Arc::ptr_eq(o, &next));
                        let role = Role::for_candidate(c, previous.map(|o| &o.role));
                        match previous {
                            Some(o) if o.role.same_plan(&role) => next,
                            _ => Arc::new(Entry {
                                role,
                                ..(*next).clone()
                            }),
                        }
                    }),
                _ => None,
            };
            let unchanged = old.as_ref().is_some_and(|o| {
                Arc::ptr_eq(o, &active) && same_entry(o.candidate.as_ref(), candidate.as_ref())
            });
            entries.push(if unchanged {
                active
            } else {
                Arc::new(Entry {
                    candidate,
                    ..(*active).clone()
                })
            });
        }
        let changed = round.trust_changed
            || entries.len() != current.pipeline.entries().len()
            || entries
                .iter()
                .zip(current.pipeline.entries())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        let mut report = round.report;
        if !(changed || strict) {
            // Nothing to swap; settings outside the set (debounce, ...) still apply.
            self.active.store(Arc::new(Active {
                pipeline: current.pipeline.clone(),
                config: config.clone(),
                trust,
            }));
        } else {
            if let Some(verifier) = &verifier {
                for v in &round.to_record {
                    if let Err(e) = verifier.record(v) {
                        tracing::error!(alert = true, policy = %v.statement.predicate.name, "cannot record the anti-rollback mark: {e}");
                    }
                }
            }
            let generation = current.pipeline.generation() + 1;
            let pipeline = Pipeline::from_entries(&self.engine, entries, generation);
            let before = versions_of(&current.pipeline);
            let after = versions_of(&pipeline);
            for (_, entry) in after.iter().filter(|(_, e)| {
                !before
                    .iter()
                    .any(|(_, b)| Arc::ptr_eq(&b.source, &e.source))
            }) {
                round.journal.push(("activated", event_of(entry)));
                if let (Some(r), Role::Active, false) = (&releases, &entry.role, entry.pinned) {
                    let bundle = entry.source.bundle.as_deref().ok();
                    let digest = entry.policy.digest();
                    if let Err(e) = r.archive(
                        entry.policy.name(),
                        digest,
                        entry.sequence,
                        &entry.source.wasm,
                        bundle,
                    ) {
                        tracing::error!(alert = true, policy = %entry.policy.name(), "cannot archive the release (rollback to it will be impossible): {e}");
                    }
                }
            }
            self.history
                .lock()
                .expect("history lock")
                .record_live(&after);
            self.active.store(Arc::new(Active {
                pipeline: Arc::new(pipeline),
                config: config.clone(),
                trust,
            }));
            let gone = before
                .iter()
                .filter(|(_, b)| {
                    !after
                        .iter()
                        .any(|(_, a)| a.policy.digest() == b.policy.digest())
                })
                .map(|(_, b)| b.policy.digest().to_string());
            self.retain(gone.collect());
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
        self.publish(releases.as_ref(), round.journal);
        self.forget_inactive(round.rejected_digests);
        self.finish(&report, &config);
        Ok(report)
    }

    /// Settle one version of policy `p`: keep `old` when its inputs are unchanged
    /// (re-verified if the trust store changed, deactivated if it no longer
    /// verifies), else load the new candidate; a rejected candidate keeps `old`.
    /// `None`: nothing to run (a new policy whose candidate was rejected).
    async fn settle(
        &self,
        round: &mut Round<'_>,
        p: &PolicyConfig,
        old: Option<&Arc<Entry>>,
        part: Part<'_>,
    ) -> Result<Option<Arc<Entry>>, LoadError> {
        let label = match part {
            Part::Active => p.name.clone(),
            Part::Pinned(_) => format!("{} (pinned)", p.name),
            Part::Candidate => format!("{} (candidate)", p.name),
        };
        let candidate = match part {
            Part::Pinned(digest) if !p.path.exists() => Err(LoadError::Lifecycle(format!(
                "policy {} is pinned to {digest}, which is not in the archive ({}): release \
                 the pin or pin an archived release",
                p.name,
                p.path.display()
            ))),
            _ => Candidate::read(round.config, p),
        };
        let candidate = candidate.and_then(|c| match part {
            Part::Pinned(digest) if c.digest() != digest => Err(LoadError::Verification {
                policy: p.name.clone(),
                reason: format!(
                    "the archived release pinned as {digest} has digest {}: the archive was altered",
                    c.digest()
                ),
            }),
            _ => Ok(c),
        });
        let unchanged =
            matches!((&candidate, old), (Ok(c), Some(o)) if c.fingerprint == o.source.fingerprint);
        if !unchanged {
            let digest = candidate
                .as_ref()
                .map(Candidate::digest)
                .unwrap_or_default();
            let admission = Admission {
                run_fixtures: true,
                pinned: matches!(part, Part::Pinned(_)),
            };
            let attempt = match candidate {
                Ok(c) => {
                    loader::load_entry(&self.engine, round.verifier, round.config, p, c, admission)
                        .await
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok((entry, verified)) => {
                    if part == Part::Active {
                        round.to_record.extend(verified);
                    }
                    round.report.activated.push(label);
                    return Ok(Some(Arc::new(entry)));
                }
                Err(e) if round.strict => return Err(e),
                Err(e) => {
                    round.rejected_digests.push(digest.clone());
                    round.journal.push((
                        "rejected",
                        json!({"policy": p.name, "part": label, "digest": digest, "reason": e.to_string()}),
                    ));
                    self.history.lock().expect("history lock").push(
                        part == Part::Candidate,
                        VersionStatus {
                            name: p.name.clone(),
                            version: None,
                            sequence: None,
                            digest,
                            signers: Vec::new(),
                            state: State::Failed,
                            since: now(),
                            role: None,
                            pinned: false,
                            last_error: Some(e.to_string()),
                        },
                    );
                    let kept = if old.is_some() {
                        "the previous version stays active"
                    } else {
                        "it is not active"
                    };
                    self.reject(&mut round.report, format!("{e} ({kept})"));
                }
            }
        }
        // Keep the running version, re-verified if the trust store changed.
        let Some(old) = old else { return Ok(None) };
        let (Some(verifier), true) = (
            round.verifier,
            round.trust_changed || old.deactivated.is_some(),
        ) else {
            return Ok(Some(old.clone()));
        };
        Ok(Some(
            match loader::verify(&self.engine, verifier, &p.name, &old.source, old.pinned) {
                Ok(_) if old.deactivated.is_some() => {
                    round.journal.push(("reactivated", event_of(old)));
                    Arc::new(old.with_deactivation(None))
                }
                Err(e) if old.deactivated.is_none() => {
                    self.counters.deactivated.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        alert = true,
                        policy = %label,
                        "policy DEACTIVATED, it no longer verifies: {e}; its stage applies on_error"
                    );
                    round.report.deactivated.push(label);
                    let mut event = event_of(old);
                    event["reason"] = json!(e.to_string());
                    round.journal.push(("deactivated", event));
                    Arc::new(old.with_deactivation(Some(e.to_string())))
                }
                _ => old.clone(),
            },
        ))
    }

    /// Keep the compiled code of `superseded` versions for a while (rollback), and
    /// drop the oldest retained beyond that.
    fn retain(&self, superseded: Vec<String>) {
        let mut retained = self.retained.lock().expect("retained lock");
        retained.extend(superseded);
        let excess = retained.len().saturating_sub(RETAINED);
        let dropped: Vec<String> = retained.drain(..excess).collect();
        drop(retained);
        self.forget_inactive(dropped);
    }

    /// Drop compiled code of `digests` that the active set does not use.
    fn forget_inactive(&self, digests: Vec<String>) {
        let active = versions_of(&self.snapshot());
        let retained = self.retained.lock().expect("retained lock");
        for digest in digests {
            let in_use = active.iter().any(|(_, e)| e.policy.digest() == digest)
                || retained.contains(&digest);
            if !in_use {
                self.engine.forget(&digest);
            }
        }
    }

    /// Every policy's versions, the rollouts and the counters.
    pub fn status(&self) -> Status {
        let snapshot = self.snapshot();
        let rollouts = snapshot
            .entries()
            .iter()
            .filter_map(|e| {
                let c = e.candidate.as_ref()?;
                let (percent, key, shadow) = match &c.role {
                    Role::Canary { percent, key } => (Some(*percent), Some(*key), None),
                    Role::Shadow(stats) => (None, None, Some(stats.counts())),
                    Role::Active => return None,
                };
                Some(RolloutStatus {
                    policy: e.policy.name().to_string(),
                    rollout: c.role.name().unwrap_or_default(),
                    percent,
                    key,
                    active: e.policy.digest().to_string(),
                    candidate: c.policy.digest().to_string(),
                    candidate_version: c.version.clone(),
                    shadow,
                })
            })
            .collect();
        let history = self.history.lock().expect("history lock");
        Status {
            generation: snapshot.generation(),
            at: now(),
            policies: history.versions.values().flatten().cloned().collect(),
            rollouts,
            counters: CounterValues {
                reloads: self.counters.reloads.load(Ordering::Relaxed),
                swaps: self.counters.swaps.load(Ordering::Relaxed),
                rejected: self.counters.rejected.load(Ordering::Relaxed),
                deactivated: self.counters.deactivated.load(Ordering::Relaxed),
            },
            last_errors: history.last_errors.clone(),
        }
    }

    /// Write [`PolicyHost::status`] as JSON into the lifecycle directory, if any.
    pub fn write_status(&self) {
        self.write_status_for(&self.active.load().config);
    }

    fn write_status_for(&self, config: &PipelineConfig) {
        let Some(dir) = config.lifecycle_dir() else {
            return;
        };
        let releases = Releases::new(dir);
        let json = serde_json::to_vec_pretty(&self.status()).expect("status serialises");
        let written = std::fs::DirBuilder::new()
            .recursive(true)
            .create(releases.dir())
            .and_then(|()| crate::releases::write_atomically(&releases.status_path(), &json));
        if let Err(e) = written {
            tracing::warn!(
                "cannot write the status file {}: {e}",
                releases.status_path().display()
            );
        }
    }

    fn reject(&self, report: &mut ReloadReport, line: String) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::error!(alert = true, "policy reload: {line}");
        report.rejected.push(line);
    }

    fn finish(&self, report: &ReloadReport, config: &PipelineConfig) {
        self.history.lock().expect("history lock").last_errors = report.rejected.clone();
        self.write_status_for(config);
    }
}

/// Every version in `pipeline`: active versions and candidates, with their slot.
fn versions_of(pipeline: &Pipeline) -> Vec<(Slot, Arc<Entry>)> {
    pipeline
        .entries()
        .iter()
        .flat_map(|e| std::iter::once(e).chain(e.candidate.as_ref()))
        .map(|e| {
            (
                (e.policy.name().to_string(), e.role.name().is_some()),
                e.clone(),
            )
        })
        .collect()
}

fn same_entry(a: Option<&Arc<Entry>>, b: Option<&Arc<Entry>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// The journal fields describing a version.
fn event_of(entry: &Entry) -> Value {
    json!({
        "policy": entry.policy.name(),
        "role": entry.role.name().unwrap_or("active"),
        "pinned": entry.pinned,
        "version": entry.version,
        "sequence": entry.sequence,
        "digest": entry.policy.digest(),
        "signers": entry.signers,
    })
}

impl History {
    /// Record `status` as the newest for its slot. A new active (or revoked) version
    /// supersedes the previous one unless it is the same release (digest and sequence),
    /// whose state is then updated in place.
    fn push(&mut self, candidate: bool, status: VersionStatus) {
        let list = self
            .versions
            .entry((status.name.clone(), candidate))
            .or_default();
        let live = matches!(status.state, State::Active | State::Revoked);
        if live {
            if let Some(same) = list.iter_mut().find(|v| {
                v.digest == status.digest
                    && v.sequence == status.sequence
                    && matches!(v.state, State::Active | State::Revoked)
            }) {
                if same.state != status.state
                    || same.role != status.role
                    || same.pinned != status.pinned
                {
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

    /// A new set is active: record each of its versions, and supersede the live
    /// version of every slot that is no longer in it (a policy removed from the
    /// configuration, a candidate promoted or withdrawn).
    fn record_live(&mut self, live: &[(Slot, Arc<Entry>)]) {
        for (slot, list) in &mut self.versions {
            if live.iter().any(|(s, _)| s == slot) {
                continue;
            }
            for v in list.iter_mut() {
                if matches!(v.state, State::Active | State::Revoked) {
                    v.state = State::Superseded;
                    v.since = now();
                }
            }
        }
        for ((_, candidate), entry) in live {
            let state = if entry.deactivated.is_some() {
                State::Revoked
            } else {
                State::Active
            };
            self.push(
                *candidate,
                status_of(entry, state, entry.deactivated.clone()),
            );
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
        role: role_text(&entry.role),
        pinned: entry.pinned,
        last_error,
    }
}

/// `shadow`, `canary 10% by client`; `None` for an active version.
fn role_text(role: &Role) -> Option<String> {
    match role {
        Role::Active => None,
        Role::Shadow(_) => Some("shadow".into()),
        Role::Canary { percent, key } => Some(format!(
            "canary {percent}% by {}",
            match key {
                CanaryKey::Client => "client",
                CanaryKey::Request => "request",
            }
        )),
    }
}

/// Now, to the second (RFC 3339 UTC).
pub fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format_utc(t.replace_nanosecond(0).unwrap_or(t))
}

/// A verifier for `config`'s trust store and the SHA-256 of the store file (to notice
/// changes), from one read; both `None` with `allow_unsigned`.
pub(crate) fn trust_for(
    config: &PipelineConfig,
) -> Result<(Option<Verifier>, Option<String>), LoadError> {
    let Some((store, state)) = config.trust_paths() else {
        return Ok((None, None));
    };
    let text = crate::toml_file::read(&store)?;
    let fingerprint = crate::artifact::statement::sha256_hex(text.as_bytes());
    let verifier = Verifier::new(TrustStore::parse(&text, &store)?).with_state(state);
    Ok((Some(verifier), Some(fingerprint)))
}
