//! The pipeline: policies grouped by stage, run concurrently within a stage, verdicts
//! combined into one [`Decision`].
//!
//! Combination rules, per stage:
//! * a failed run (error, timeout, fuel exhausted, invalid answer) counts as its
//!   policy's `on_error` (deny by default) and is recorded as the failure it was;
//! * a policy in `monitor` mode is run and recorded, never applied;
//! * any deny denies: the stage's other runs are cancelled (recorded as `skipped`) and
//!   later stages do not run;
//! * modifications compose in configuration order: when several policies modify, the
//!   first one's edits are applied and each later one is re-run, in order, on the
//!   already modified text, so no edit is computed against stale offsets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::artifact::trust::{TrustError, TrustStore, Verifier};
use crate::bindings::{
    Authorization, Category, ChatRequest, Edit, Finding, RequestContext, Severity, ToolCall,
    ToolDefinition, Verdict,
};
use crate::config::{Mode, OnError, PipelineConfig, Stage};
use crate::engine::{Engine, EngineError, Outcome, Run};
use crate::loader::{self, Candidate};
use crate::openai::ModelResponse;
use crate::policy::Policy;
use crate::rollout::{self, Disagreement, Role, Summarize};

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine could not be set up, or a component is invalid.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The lifecycle directory (pins) cannot be used.
    #[error("lifecycle: {0}")]
    Lifecycle(String),
    /// A policy file cannot be read.
    #[error("policy {policy}: cannot read {path}: {source}")]
    Read {
        /// Policy name.
        policy: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registry source cannot provide the configured policies.
    #[error("registry: {0}")]
    Registry(String),
    /// A registry policy has no verified artifact in the cache yet.
    #[error("policy {policy}: {reason}")]
    NotPulled {
        /// Policy name.
        policy: String,
        /// Why.
        reason: String,
    },
    /// A policy is configured for a stage its component does not implement.
    #[error(
        "policy {policy}: configured for stage {stage} but the component does not export {export}"
    )]
    WrongStage {
        /// Policy name.
        policy: String,
        /// The stage.
        stage: &'static str,
        /// The missing export.
        export: &'static str,
    },
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(crate::config::ConfigError),
    /// The trust store cannot be used.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A policy's signature bundle is missing or does not verify.
    #[error("policy {policy}: refused, signature verification failed: {reason}")]
    Verification {
        /// Policy name.
        policy: String,
        /// The failed check.
        reason: String,
    },
    /// A policy failed the self-test fixtures embedded in its signed statement.
    #[error("policy {policy}: refused, {failed} of {total} {kind} cases failed; first: {first}")]
    SelfTest {
        /// Policy name.
        policy: String,
        /// `signed self-test` or `configured fixture`.
        kind: &'static str,
        /// Failing cases.
        failed: usize,
        /// Cases run.
        total: usize,
        /// The first failure.
        first: String,
    },
    /// A policy's configured fixtures file cannot be read or parsed.
    #[error("policy {policy}: refused, its fixtures are unusable: {reason}")]
    Fixtures {
        /// Policy name.
        policy: String,
        /// Why.
        reason: String,
    },
    /// A policy failed its warm-up evaluation (bad configuration, crash at start).
    #[error("policy {policy}: failed its warm-up evaluation: {outcome}")]
    WarmUp {
        /// Policy name.
        policy: String,
        /// What happened.
        outcome: String,
    },
}

/// One policy in the pipeline, with how its verdicts are used.
#[derive(Clone)]
pub struct Entry {
    /// The loaded policy.
    pub policy: Policy,
    /// Stages it runs in.
    pub stages: Vec<Stage>,
    /// Meaning of a failed run.
    pub on_error: OnError,
    /// Enforce or monitor.
    pub mode: Mode,
    /// Fixtures file, resolved.
    pub fixtures: Option<PathBuf>,
    /// The component file, resolved.
    pub path: PathBuf,
    /// Key ids whose signatures verified (empty when unsigned).
    pub signers: Vec<String>,
    /// The signed version (`None` when unsigned).
    pub version: Option<String>,
    /// The signed sequence (`None` when unsigned).
    pub sequence: Option<u64>,
    /// What the entry was built from: the component and bundle bytes (kept for
    /// re-verification when the trust store changes) and their fingerprint.
    pub source: Arc<Candidate>,
    /// Why the policy no longer verifies (a trust-store change): its runs fail without
    /// running, so its stage applies its `on_error`.
    pub deactivated: Option<String>,
    /// Loaded without verification (`[trust] allow_unsigned = true`).
    pub unsigned: bool,
    /// An archived release the operator pinned (`portcullis rollback`) instead of the
    /// configured component.
    pub pinned: bool,
    /// Active version, or a shadow or canary candidate.
    pub role: Role,
    /// The candidate rolled out next to this (active) version.
    pub candidate: Option<Arc<Entry>>,
}

impl Entry {
    /// This entry deactivated for `reason` (or reactivated with `None`).
    pub fn with_deactivation(&self, reason: Option<String>) -> Entry {
        Entry {
            deactivated: reason,
            ..self.clone()
        }
    }

    /// The entries that may run for this policy on a request with `context`: the
    /// active version; with a shadow, the shadow too; with a canary, the one version
    /// the canary split picks.
    fn runners(self: &Arc<Entry>, context: &RequestContext) -> impl Iterator<Item = Arc<Entry>> {
        let (active, candidate) = match self.candidate.as_ref().map(|c| (c, &c.role)) {
            None => (true, None),
            Some((c, Role::Canary { percent, key })) => {
                let takes = rollout::canary_takes(self.policy.name(), *percent, *key, context);
                (!takes, takes.then_some(c))
            }
            Some((c, _)) => (true, Some(c)),
        };
        active
            .then(|| self.clone())
            .into_iter()
            .chain(candidate.cloned())
    }
}

/// A loaded pipeline: one immutable set of policies (a snapshot when hot-reloaded).
pub struct Pipeline {
    engine: Arc<Engine>,
    entries: Vec<Arc<Entry>>,
    generation: u64,
}

/// What a decision does with the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass through unchanged.
    Allow,
    /// Refuse.
    Deny,
    /// Pass through with the modifications applied.
    Modify,
}

impl Action {
    /// `allow`, `deny` or `modify`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Modify => "modify",
        }
    }
}

/// A finding, attributed to the policy and stage that reported it.
#[derive(Debug, Clone, Serialize)]
pub struct Reported {
    /// Policy name.
    pub policy: String,
    /// Stage.
    pub stage: Stage,
    /// Category name (`custom` categories by their own name).
    pub category: String,
    /// `low` .. `critical`.
    pub severity: &'static str,
    /// The policy's message.
    pub message: String,
    /// Where, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<SpanOut>,
    /// For the tool stage: which offered tool or tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Confidence, if scored (rounded to three decimals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// False for monitor-mode policies (recorded, not applied).
    pub enforced: bool,
}

/// A finding's location.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SpanOut {
    /// Message, choice, tool or call index.
    pub index: u32,
    /// First byte.
    pub start: u32,
    /// End byte (exclusive).
    pub end: u32,
}

/// The truthful record of one policy evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Policy name.
    pub policy: String,
    /// The signed version (absent when the policy is unsigned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Component digest.
    pub digest: String,
    /// Stage.
    pub stage: Stage,
    /// What was evaluated: `request`, `response[i]`, `tools` or `calls`.
    pub target: String,
    /// ok, error, timeout, fuel-exhausted or skipped, with a reason for errors.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The policy's own verdict, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// Enforce or monitor.
    pub mode: Mode,
    /// `shadow` or `canary` when a candidate version ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<&'static str>,
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall-clock microseconds.
    pub micros: u64,
    /// Log lines dropped over the cap.
    #[serde(skip_serializing_if = "is_zero")]
    pub logs_dropped: u32,
    /// The policy was loaded without signature verification (development only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The combined result of running the pipeline on a request or a response.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The policy-set generation (snapshot) that made the decision, start to end.
    pub generation: u64,
    /// Overall verdict.
    pub verdict: Action,
    /// Every finding, enforced or not.
    pub findings: Vec<Reported>,
    /// Every policy run.
    pub runs: Vec<RunRecord>,
    /// Rewritten message (request) or choice (response) texts, by index.
    #[serde(skip)]
    pub modified: BTreeMap<usize, String>,
    /// Indices of offered tools that were refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_tools: Vec<usize>,
    /// Indices of tool calls that were refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_calls: Vec<usize>,
    /// Shadow candidates that disagreed with their active version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<Disagreement>,
}

impl Decision {
    fn new(generation: u64) -> Self {
        Decision {
            generation,
            verdict: Action::Allow,
            findings: Vec::new(),
            runs: Vec::new(),
            modified: BTreeMap::new(),
            denied_tools: Vec::new(),
            denied_calls: Vec::new(),
            disagreements: Vec::new(),
        }
    }

    fn denied(&self) -> bool {
        self.verdict == Action::Deny
    }
}

/// What a text stage evaluates.
#[derive(Clone)]
enum Subject {
    Request(ChatRequest),
    Response {
        context: RequestContext,
        choice: usize,
        text: String,
    },
}

impl Subject {
    async fn evaluate(&self, policy: &Policy) -> Run<Verdict> {
        match self {
            Subject::Request(r) => policy.check_request(r).await,
            Subject::Response { context, text, .. } => policy.check_response(context, text).await,
        }
    }

    fn text(&self, index: u32) -> Option<&str> {
        match self {
            Subject::Request(r) => r.messages.get(index as usize).map(|m| m.content.as_str()),
            Subject::Response { text, .. } => (index == 0).then_some(text.as_str()),
        }
    }

    fn set_text(&mut self, index: u32, new: String) {
        match self {
            Subject::Request(r) => {
                if let Some(m) = r.messages.get_mut(index as usize) {
                    m.content = new;
                }
            }
            Subject::Response { text, .. } => *text = new,
        }
    }

    fn context(&self) -> &RequestContext {
        match self {
            Subject::Request(r) => &r.context,
            Subject::Response { context, .. } => context,
        }
    }

    fn target(&self) -> String {
        match self {
            Subject::Request(_) => "request".into(),
            Subject::Response { choice, .. } => format!("response[{choice}]"),
        }
    }

    /// The external index of text `index` (message index, or choice index).
    fn external_index(&self, index: u32) -> usize {
        match self {
            Subject::Request(_) => index as usize,
            Subject::Response { choice, .. } => *choice,
        }
    }
}

impl Pipeline {
    /// Load every policy of `config`, check each against its stages, and run one
    /// warm-up evaluation per stage (which also compiles its host matchers).
    pub async fn load(config: &PipelineConfig) -> Result<Pipeline, LoadError> {
        let engine = Engine::new(&config.engine_options())?;
        Self::load_with(&engine, config).await
    }

    /// Like [`Pipeline::load`] with an existing engine. Each policy's signed
    /// self-tests and configured fixtures must pass; the high-water marks of the
    /// verified policies are advanced once the whole set has loaded.
    pub async fn load_with(
        engine: &Arc<Engine>,
        config: &PipelineConfig,
    ) -> Result<Pipeline, LoadError> {
        Self::load_inner(engine, config, true).await
    }

    /// Like [`Pipeline::load_with`] without running the configured fixtures (for
    /// `portcullis test`, which runs and reports them itself).
    pub async fn load_without_fixtures(
        engine: &Arc<Engine>,
        config: &PipelineConfig,
    ) -> Result<Pipeline, LoadError> {
        Self::load_inner(engine, config, false).await
    }

    async fn load_inner(
        engine: &Arc<Engine>,
        config: &PipelineConfig,
        run_fixtures: bool,
    ) -> Result<Pipeline, LoadError> {
        let verifier = match config.trust_paths() {
            Some((store, state)) => {
                Some(Verifier::new(TrustStore::load(&store)?).with_state(state))
            }
            None => None,
        };
        let mut entries = Vec::new();
        let mut verified = Vec::new();
        for p in &config.policies {
            let (entry, v) =
                loader::load_policy(engine, verifier.as_ref(), config, p, run_fixtures).await?;
            entries.push(Arc::new(entry));
            verified.extend(v);
        }
        if let Some(verifier) = &verifier {
            for v in &verified {
                verifier.record(v).map_err(|e| LoadError::Verification {
                    policy: v.statement.predicate.name.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(Pipeline::from_entries(engine, entries, 1))
    }

    /// A pipeline of already loaded entries: policy-set `generation` (a lifecycle
    /// snapshot; every decision records it).
    pub fn from_entries(
        engine: &Arc<Engine>,
        entries: Vec<Arc<Entry>>,
        generation: u64,
    ) -> Pipeline {
        Pipeline {
            engine: engine.clone(),
            entries,
            generation,
        }
    }

    /// The policy-set generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The engine the policies run in.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The pipeline's policies, in configuration order.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// The key ids that signed the component with `digest` (an active version or a
    /// candidate); empty for unsigned or unknown components.
    pub fn signers(&self, digest: &str) -> Vec<String> {
        self.entries
            .iter()
            .flat_map(|e| std::iter::once(e).chain(e.candidate.as_ref()))
            .find(|e| e.policy.digest() == digest)
            .map(|e| e.signers.clone())
            .unwrap_or_default()
    }

    /// The entries that run in `stage` for a request with `context` (see
    /// [`Entry::runners`]).
    fn stage(&self, stage: Stage, context: &RequestContext) -> Vec<Arc<Entry>> {
        self.entries
            .iter()
            .filter(|e| e.stages.contains(&stage))
            .flat_map(|e| e.runners(context))
            .collect()
    }

    /// Run the input stage on a request, then the tool stage on the tools it offers
    /// (`only`: just that stage).
    pub async fn check_request(&self, request: &ChatRequest, only: Option<Stage>) -> Decision {
        let mut decision = Decision::new(self.generation);
        let mut subject = Subject::Request(request.clone());
        if only.is_none_or(|s| s == Stage::Input) {
            self.text_stage(Stage::Input, &mut subject, &mut decision)
                .await;
        }
        if let Subject::Request(r) = &subject {
            for (i, m) in r.messages.iter().enumerate() {
                if m.content != request.messages[i].content {
                    decision.modified.insert(i, m.content.clone());
                }
            }
        }
        if !decision.denied() && !request.tools.is_empty() && only.is_none_or(|s| s == Stage::Tool)
        {
            let denied = self
                .authorize(&request.context, &request.tools, None, &mut decision)
                .await;
            decision.denied_tools = denied;
        }
        decision
    }

    /// Run the tool stage on the response's tool calls (against the tools offered),
    /// then the output stage on each choice's text (`only`: just that stage).
    pub async fn check_response(
        &self,
        context: &RequestContext,
        offered: &[ToolDefinition],
        response: &ModelResponse,
        only: Option<Stage>,
    ) -> Decision {
        let mut decision = Decision::new(self.generation);
        if !response.calls.is_empty() && only.is_none_or(|s| s == Stage::Tool) {
            let calls: Vec<ToolCall> = response.calls.iter().map(|(_, c)| c.clone()).collect();
            decision.denied_calls = self
                .authorize(context, offered, Some(&calls), &mut decision)
                .await;
            if decision.denied() {
                return decision;
            }
        }
        for (choice, text) in response.texts.iter().enumerate() {
            if text.is_empty() || only.is_some_and(|s| s != Stage::Output) {
                continue;
            }
            let mut subject = Subject::Response {
                context: context.clone(),
                choice,
                text: text.clone(),
            };
            self.text_stage(Stage::Output, &mut subject, &mut decision)
                .await;
            if decision.denied() {
                return decision;
            }
            if let Subject::Response { text: new, .. } = subject
                && &new != text
            {
                decision.modified.insert(choice, new);
            }
        }
        decision
    }

    /// Run the stage's policies on `subject` (concurrently), then compose
    /// modifications; in a `stage` span.
    async fn text_stage(&self, stage: Stage, subject: &mut Subject, decision: &mut Decision) {
        let span = tracing::info_span!(
            "stage",
            stage = stage.name(),
            target = subject.target(),
            verdict = Empty
        );
        self.run_text_stage(stage, subject, decision)
            .instrument(span.clone())
            .await;
        span.record("verdict", decision.verdict.name());
    }

    async fn run_text_stage(&self, stage: Stage, subject: &mut Subject, decision: &mut Decision) {
        let entries = self.stage(stage, subject.context());
        if entries.is_empty() {
            return;
        }
        let original = subject.clone();
        let runs = run_all(
            &entries,
            |entry| original.evaluate(&entry.policy),
            |run, entry| judge_verdict(entry, &original, run).0 == Action::Deny,
        )
        .await;
        compare_shadows(&entries, &runs, stage, decision);
        let mut modifiers = Vec::new();
        for (entry, run) in entries.iter().zip(runs) {
            let record = record(entry, stage, subject.target(), &run, verdict_name(&run));
            let (effect, findings) = judge_verdict(entry, subject, &run);
            decision.runs.push(record);
            report(decision, entry, stage, findings, subject);
            match effect {
                Action::Deny => decision.verdict = Action::Deny,
                Action::Modify => modifiers.push((entry.clone(), run)),
                Action::Allow => {}
            }
        }
        if decision.denied() {
            return;
        }
        for (n, (entry, first_run)) in modifiers.into_iter().enumerate() {
            // The first modifier's edits were computed on the unmodified subject; later
            // ones are re-run on the text as modified so far.
            let run = if n == 0 {
                first_run
            } else {
                subject.evaluate(&entry.policy).await
            };
            if n > 0 {
                decision.runs.push(record(
                    &entry,
                    stage,
                    format!("{} (re-run)", subject.target()),
                    &run,
                    verdict_name(&run),
                ));
            }
            let (effect, findings) = judge_verdict(&entry, subject, &run);
            if n > 0 {
                report(decision, &entry, stage, findings, subject);
            }
            match (effect, &run.result) {
                (Action::Deny, _) => {
                    decision.verdict = Action::Deny;
                    return;
                }
                (Action::Modify, Ok(Verdict::Modify(m))) => {
                    // judge_verdict validated the edits, so applying cannot fail.
                    if let Ok(texts) = apply_edits(subject, &m.edits) {
                        for (index, text) in texts {
                            subject.set_text(index, text);
                        }
                        decision.verdict = Action::Modify;
                    }
                }
                _ => {}
            }
        }
    }

    /// Run the tool stage on offered tools (`calls` = None) or tool calls, in a
    /// `stage` span; returns the refused indices.
    async fn authorize(
        &self,
        context: &RequestContext,
        tools: &[ToolDefinition],
        calls: Option<&[ToolCall]>,
        decision: &mut Decision,
    ) -> Vec<usize> {
        let target = if calls.is_some() { "calls" } else { "tools" };
        let span = tracing::info_span!("stage", stage = "tool", target, verdict = Empty);
        let denied = self
            .run_authorize(context, tools, calls, decision)
            .instrument(span.clone())
            .await;
        span.record("verdict", if denied.is_empty() { "allow" } else { "deny" });
        denied
    }

    async fn run_authorize(
        &self,
        context: &RequestContext,
        tools: &[ToolDefinition],
        calls: Option<&[ToolCall]>,
        decision: &mut Decision,
    ) -> Vec<usize> {
        let entries = self.stage(Stage::Tool, context);
        if entries.is_empty() {
            return Vec::new();
        }
        let items = calls.map_or(tools.len(), <[ToolCall]>::len);
        let runs = run_all(
            &entries,
            |entry| async move {
                match calls {
                    None => entry.policy.check_tools(context, tools).await,
                    Some(calls) => entry.policy.check_calls(context, tools, calls).await,
                }
            },
            |_, _| false,
        )
        .await;
        compare_shadows(&entries, &runs, Stage::Tool, decision);
        let target = if calls.is_some() { "calls" } else { "tools" };
        let mut denied = vec![false; items];
        for (entry, run) in entries.iter().zip(runs) {
            let verdict = match &run.result {
                Ok(list) if list.iter().any(|a| matches!(a, Authorization::Deny(_))) => {
                    Some("deny")
                }
                Ok(_) => Some("allow"),
                Err(_) => None,
            };
            decision.runs.push(record(
                entry,
                Stage::Tool,
                target.to_string(),
                &run,
                verdict,
            ));
            let enforce = entry.mode == Mode::Enforce;
            match run.result {
                Ok(list) => {
                    for (i, auth) in list.into_iter().enumerate() {
                        if let Authorization::Deny(findings) = auth {
                            denied[i] |= enforce;
                            report_authorization(decision, entry, i, findings, enforce);
                        }
                    }
                }
                Err(outcome) => {
                    let failure = failure_finding(&entry.policy, &outcome);
                    report_authorization(decision, entry, 0, vec![failure], enforce);
                    if entry.on_error == OnError::Deny && enforce {
                        denied.iter_mut().for_each(|d| *d = true);
                    }
                }
            }
        }
        let denied: Vec<usize> = denied
            .iter()
            .enumerate()
            .filter(|(_, d)| **d)
            .map(|(i, _)| i)
            .collect();
        if !denied.is_empty() {
            decision.verdict = Action::Deny;
        }
        denied
    }
}

/// Run `eval` for every entry concurrently, interleaved on this task: each policy
/// yields at every epoch tick, so a slow one never holds up the others, and no thread
/// hop or task spawn is paid (measured: spawning each policy onto the runtime's
/// threads was slower than running them in turn). When `stops` says a finished run
/// denies, the unfinished ones are dropped (cancelled) and recorded as skipped.
/// Results come back in entry order.
async fn run_all<'a, T, F, Fut>(
    entries: &'a [Arc<Entry>],
    eval: F,
    stops: impl Fn(&Run<T>, &Entry) -> bool,
) -> Vec<Run<T>>
where
    F: Fn(&'a Arc<Entry>) -> Fut,
    Fut: Future<Output = Run<T>> + 'a,
    Run<T>: Summarize,
{
    let start = |(i, entry): (usize, &'a Arc<Entry>)| {
        let span = tracing::info_span!(
            "policy",
            policy = entry.policy.name(),
            version = entry.version.as_deref().unwrap_or("unsigned"),
            digest = entry.policy.digest(),
            mode = entry.mode.name(),
            rollout = entry.role.name().unwrap_or("active"),
            outcome = Empty,
            verdict = Empty,
            categories = Empty,
            fuel = Empty,
            micros = Empty,
        );
        let run = match &entry.deactivated {
            None => Either::Left(eval(entry)),
            Some(reason) => Either::Right(std::future::ready(Run {
                result: Err(Outcome::Error(format!("policy deactivated: {reason}"))),
                fuel_used: 0,
                micros: 0,
                logs_dropped: 0,
            })),
        };
        async move {
            let run = run.instrument(span.clone()).await;
            record_run(&span, &run);
            (i, run)
        }
    };
    let is_shadow = |(_, e): &(usize, &Arc<Entry>)| matches!(e.role, Role::Shadow(_));
    let mut pending: FuturesUnordered<_> = entries
        .iter()
        .enumerate()
        .filter(|x| !is_shadow(x))
        .map(start)
        .collect();
    let shadows: FuturesUnordered<_> = entries
        .iter()
        .enumerate()
        .filter(is_shadow)
        .map(start)
        .collect();
    let mut results: Vec<Option<Run<T>>> = entries.iter().map(|_| None).collect();
    // Shadow runs always finish (they are what a rollout compares); the others are
    // cancelled as soon as one of them denies.
    let active = async {
        let mut finished = Vec::new();
        while let Some((i, run)) = pending.next().await {
            let stop = entries[i].mode == Mode::Enforce && stops(&run, &entries[i]);
            finished.push((i, run));
            if stop {
                break;
            }
        }
        drop(pending);
        finished
    };
    let (finished, shadowed) = futures::join!(active, shadows.collect::<Vec<_>>());
    for (i, run) in finished.into_iter().chain(shadowed) {
        results[i] = Some(run);
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Run {
                result: Err(Outcome::Skipped),
                fuel_used: 0,
                micros: 0,
                logs_dropped: 0,
            })
        })
        .collect()
}

/// Record a finished run on its `policy` span (nothing when no subscriber wants it).
fn record_run<T>(span: &tracing::Span, run: &Run<T>)
where
    Run<T>: Summarize,
{
    if span.is_disabled() {
        return;
    }
    span.record("outcome", run.outcome().name());
    span.record("fuel", run.fuel_used);
    span.record("micros", run.micros);
    if let Some(summary) = run.summary() {
        span.record("verdict", summary.action.as_str());
        let categories: Vec<&str> = summary.categories.iter().map(String::as_str).collect();
        span.record("categories", categories.join(",").as_str());
    }
}

/// Compare every shadow candidate's run with its active version's (when that ran)
/// and record the disagreements.
fn compare_shadows<T>(
    entries: &[Arc<Entry>],
    runs: &[Run<T>],
    stage: Stage,
    decision: &mut Decision,
) where
    Run<T>: Summarize,
{
    for (shadow, run) in entries.iter().zip(runs) {
        let Role::Shadow(stats) = &shadow.role else {
            continue;
        };
        let name = shadow.policy.name();
        let active = entries
            .iter()
            .position(|e| e.policy.name() == name && matches!(e.role, Role::Active))
            .and_then(|i| runs[i].summary());
        if let Some(d) = stats.compare(name, stage, active, run.summary()) {
            decision.disagreements.push(d);
        }
    }
}

/// What a run means for the stage, with the findings to report. Invalid answers
/// (bad spans or edits) are failures like any other.
fn judge_verdict(entry: &Entry, subject: &Subject, run: &Run<Verdict>) -> (Action, Vec<Finding>) {
    let enforce = entry.mode == Mode::Enforce;
    let checked = match &run.result {
        Ok(v) => validate(v, subject).map(|()| v),
        Err(Outcome::Skipped) => return (Action::Allow, Vec::new()),
        Err(o) => Err(o.clone()),
    };
    match checked {
        Ok(Verdict::Allow(f)) => (Action::Allow, f.clone()),
        Ok(Verdict::Deny(f)) => (
            if enforce { Action::Deny } else { Action::Allow },
            f.clone(),
        ),
        Ok(Verdict::Modify(m)) => (
            if enforce {
                Action::Modify
            } else {
                Action::Allow
            },
            m.findings.clone(),
        ),
        Err(outcome) => {
            let finding = failure_finding(&entry.policy, &outcome);
            let effect = if enforce && entry.on_error == OnError::Deny {
                Action::Deny
            } else {
                Action::Allow
            };
            (effect, vec![finding])
        }
    }
}

fn failure_finding(policy: &Policy, outcome: &Outcome) -> Finding {
    let reason = match outcome {
        Outcome::Error(reason) => format!("error: {reason}"),
        other => other.name().to_string(),
    };
    Finding {
        category: Category::Custom("policy-failure".into()),
        severity: Severity::High,
        message: format!("policy {} failed ({reason})", policy.name()),
        span: None,
        score: None,
    }
}

/// Check every span and edit of a guardrail's verdict against `request`'s texts, as
/// the pipeline does before using it (the conformance kit uses this).
pub fn validate_request_verdict(request: &ChatRequest, verdict: &Verdict) -> Result<(), String> {
    validate(verdict, &Subject::Request(request.clone())).map_err(failure_reason)
}

/// Check every span and edit of an output filter's verdict against the response
/// `text`, as the pipeline does before using it; the text the client gets (`None` for a
/// deny). The conformance kit uses this.
pub fn response_outcome(text: &str, verdict: &Verdict) -> Result<Option<String>, String> {
    let subject = Subject::Response {
        context: RequestContext {
            request_id: String::new(),
            client_id: String::new(),
            model: String::new(),
            metadata: Vec::new(),
        },
        choice: 0,
        text: text.to_string(),
    };
    validate(verdict, &subject).map_err(failure_reason)?;
    Ok(match verdict {
        Verdict::Allow(_) => Some(text.to_string()),
        Verdict::Deny(_) => None,
        Verdict::Modify(m) => Some(
            apply_edits(&subject, &m.edits)?
                .remove(&0)
                .unwrap_or_else(|| text.to_string()),
        ),
    })
}

fn failure_reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Error(reason) => reason,
        other => other.name().to_string(),
    }
}

/// Check every span and edit of a verdict against the texts it refers to.
fn validate(verdict: &Verdict, subject: &Subject) -> Result<(), Outcome> {
    let findings = match verdict {
        Verdict::Allow(f) | Verdict::Deny(f) => f,
        Verdict::Modify(m) => {
            apply_edits(subject, &m.edits).map_err(Outcome::Error)?;
            &m.findings
        }
    };
    for f in findings {
        if let Some(s) = &f.span {
            let text = subject.text(s.index).ok_or_else(|| {
                Outcome::Error(format!(
                    "finding refers to text {} which does not exist",
                    s.index
                ))
            })?;
            check_range(text, s.start as usize, s.end as usize).map_err(Outcome::Error)?;
        }
    }
    Ok(())
}

fn check_range(text: &str, start: usize, end: usize) -> Result<(), String> {
    if start > end
        || end > text.len()
        || !text.is_char_boundary(start)
        || !text.is_char_boundary(end)
    {
        return Err(format!(
            "span {start}..{end} is not a valid UTF-8 range of a {}-byte text",
            text.len()
        ));
    }
    Ok(())
}

/// The texts that result from `edits`, by index, without changing the subject.
fn apply_edits(subject: &Subject, edits: &[Edit]) -> Result<BTreeMap<u32, String>, String> {
    let mut redactions: BTreeMap<u32, Vec<(usize, usize, &str)>> = BTreeMap::new();
    let mut replaced: BTreeMap<u32, String> = BTreeMap::new();
    for edit in edits {
        match edit {
            Edit::Redact(r) => redactions.entry(r.span.index).or_default().push((
                r.span.start as usize,
                r.span.end as usize,
                r.replacement.as_str(),
            )),
            Edit::Replace((index, text)) => {
                subject
                    .text(*index)
                    .ok_or_else(|| format!("edit refers to text {index} which does not exist"))?;
                if replaced.insert(*index, text.clone()).is_some() {
                    return Err(format!("text {index} is replaced twice"));
                }
            }
        }
    }
    let mut out = replaced;
    for (index, list) in redactions {
        if out.contains_key(&index) {
            return Err(format!("text {index} is both replaced and redacted"));
        }
        let text = subject
            .text(index)
            .ok_or_else(|| format!("edit refers to text {index} which does not exist"))?;
        out.insert(
            index,
            portcullis_sdk::fixture::apply_redactions(text, &list)?,
        );
    }
    Ok(out)
}

fn verdict_name(run: &Run<Verdict>) -> Option<&'static str> {
    match &run.result {
        Ok(Verdict::Allow(_)) => Some("allow"),
        Ok(Verdict::Deny(_)) => Some("deny"),
        Ok(Verdict::Modify(_)) => Some("modify"),
        Err(_) => None,
    }
}

fn record<T>(
    entry: &Entry,
    stage: Stage,
    target: String,
    run: &Run<T>,
    verdict: Option<&'static str>,
) -> RunRecord {
    RunRecord {
        policy: entry.policy.name().to_string(),
        version: entry.version.clone(),
        digest: entry.policy.digest().to_string(),
        stage,
        target,
        outcome: run.outcome(),
        verdict,
        mode: entry.mode,
        rollout: entry.role.name(),
        fuel: run.fuel_used,
        micros: run.micros,
        logs_dropped: run.logs_dropped,
        unsigned: entry.unsigned,
    }
}

fn reported(
    entry: &Entry,
    stage: Stage,
    f: Finding,
    span: Option<SpanOut>,
    item: Option<u32>,
    enforced: bool,
) -> Reported {
    Reported {
        policy: entry.policy.name().to_string(),
        stage,
        category: portcullis_sdk::fixture::category_name(&sdk_category(&f.category)),
        severity: severity_name(f.severity),
        message: f.message,
        span,
        item,
        score: f.score.map(|s| (f64::from(s) * 1000.0).round() / 1000.0),
        enforced,
    }
}

fn report(
    decision: &mut Decision,
    entry: &Entry,
    stage: Stage,
    findings: Vec<Finding>,
    subject: &Subject,
) {
    let enforced = entry.mode == Mode::Enforce;
    for f in findings {
        let span = f.span.map(|s| SpanOut {
            index: subject.external_index(s.index) as u32,
            start: s.start,
            end: s.end,
        });
        decision
            .findings
            .push(reported(entry, stage, f, span, None, enforced));
    }
}

fn report_authorization(
    decision: &mut Decision,
    entry: &Entry,
    item: usize,
    findings: Vec<Finding>,
    enforced: bool,
) {
    for f in findings {
        // A span from a tool sandbox points into the tool's description or the call's
        // arguments; `item` says which tool or call in any case.
        let span = f.span.map(|s| SpanOut {
            index: s.index,
            start: s.start,
            end: s.end,
        });
        decision.findings.push(reported(
            entry,
            Stage::Tool,
            f,
            span,
            Some(item as u32),
            enforced,
        ));
    }
}

/// `low` .. `critical`.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The SDK's equivalent of a category (fixture comparison and naming live there).
pub(crate) fn sdk_category(c: &Category) -> portcullis_sdk::Category {
    use portcullis_sdk::Category as C;
    match c {
        Category::PromptInjection => C::PromptInjection,
        Category::Jailbreak => C::Jailbreak,
        Category::Pii => C::Pii,
        Category::Secret => C::Secret,
        Category::Toxicity => C::Toxicity,
        Category::ToolMisuse => C::ToolMisuse,
        Category::ModelExtraction => C::ModelExtraction,
        Category::SystemPromptLeak => C::SystemPromptLeak,
        Category::Custom(name) => C::Custom(name.clone()),
    }
}

mod stream;
pub use stream::{OutputStream, StreamStep};
