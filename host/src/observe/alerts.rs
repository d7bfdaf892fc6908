//! SOC alerts: rules over the request records, deduplicated and rate limited, written
//! to a JSON-lines sink and the audit log and, optionally, POSTed to a webhook.
//!
//! | severity | rule | fires when |
//! |---|---|---|
//! | critical | `pii-in-output` | an output (or tool-call) finding of category `pii` or `secrets` |
//! | critical | `injection-reached-model` | a prompt-injection/jailbreak finding by a policy that does not enforce, on a request that went to the model |
//! | critical | `model-extraction` | one client sends `extraction_requests` requests within `extraction_window_s`, half of them one template (digits masked) |
//! | critical | `policy-revoked` | an active policy was deactivated (no longer verifies) |
//! | critical | `registry-artifact-refused` | a registry artifact or policy-set index failed verification (or is not in the signed index) |
//! | critical | `policy-set-expired` | the signed policy-set index expired: no policy changes until it is re-signed |
//! | high | `policy-set-expiring` | the signed policy-set index expires within `[registry] index_warn_hours` |
//! | high | `token-anomaly` | a request's tokens exceed the client's rolling mean + 3σ (after 20 requests) |
//! | high | `jailbreak-blocked` | a request denied for prompt injection or jailbreak |
//! | high | `unknown-key-burst` | `unknown_key_burst` unauthenticated requests within a minute |
//! | medium | `input-drift` | input drift PSI > 0.2 on some feature |
//! | medium | `latency-sla` | a policy's p95 run time over `latency_sla_ms` |
//! | medium | `rate-limit-repeated` | `rate_limit_repeats` budget refusals of one client within a minute |
//! | medium | `registry-unreachable` | the registry source cannot reach a registry (the host keeps its verified set) |
//!
//! An alert of the same rule and subject within `dedup_s` is suppressed (and counted
//! in the next one sent); at most `max_per_minute` alerts are sent. The webhook gets
//! each alert as JSON from a bounded queue, with retries and backoff; a full queue or
//! a dead webhook never delays a request.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::record::{AlertRecord, RequestOutcome, RequestRecord};

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// JSON-lines file alerts are appended to.
    pub sink: Option<PathBuf>,
    /// URL alerts are POSTed to (JSON).
    pub webhook: Option<String>,
    /// Same rule and subject within this many seconds: suppressed.
    pub dedup_s: u64,
    /// Alerts sent per minute at most (the rest are dropped and logged).
    pub max_per_minute: usize,
    /// A policy whose p95 run time exceeds this many ms raises `latency-sla`.
    pub latency_sla_ms: Option<f64>,
    /// `model-extraction`: requests of one client within the window...
    pub extraction_requests: usize,
    /// ... of this many seconds.
    pub extraction_window_s: u64,
    /// `rate-limit-repeated`: budget refusals of one client within a minute.
    pub rate_limit_repeats: usize,
    /// `unknown-key-burst`: unauthenticated requests within a minute.
    pub unknown_key_burst: usize,
}

impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            sink: None,
            webhook: None,
            dedup_s: 300,
            max_per_minute: 60,
            latency_sla_ms: None,
            extraction_requests: 200,
            extraction_window_s: 600,
            rate_limit_repeats: 5,
            unknown_key_burst: 10,
        }
    }
}

/// One alert to raise: rule, severity, subject, summary and the requests behind it.
pub struct Raised {
    /// `critical`, `high` or `medium`.
    pub severity: &'static str,
    /// The rule.
    pub rule: &'static str,
    /// Client id, policy name or `gateway`.
    pub subject: String,
    /// For the analyst.
    pub summary: String,
    /// The requests that caused it.
    pub request_ids: Vec<String>,
}

/// The rules' memory: windows per client, rolling token baselines, latencies.
#[derive(Default)]
pub struct Rules {
    settings: AlertsSection,
    /// Per client: recent (time, template, request id).
    recent: HashMap<String, VecDeque<(Instant, u64, String)>>,
    /// Per client: the last 100 requests' tokens.
    tokens: HashMap<String, VecDeque<f64>>,
    /// Per client: recent budget refusals.
    limited: HashMap<String, VecDeque<(Instant, String)>>,
    unknown_keys: VecDeque<(Instant, String)>,
    /// Per policy: the last 200 run times, µs.
    latencies: HashMap<String, VecDeque<u64>>,
    records: u64,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Rules {
    /// Rules with `settings`.
    pub fn new(settings: AlertsSection) -> Rules {
        Rules {
            settings,
            ..Rules::default()
        }
    }

    /// Apply every rule to a finished request. `template` identifies the prompt's
    /// shape (digits masked), for the extraction rule.
    pub fn check(&mut self, r: &RequestRecord, template: Option<u64>, now: Instant) -> Vec<Raised> {
        let mut raised = Vec::new();
        let id = || vec![r.request_id.clone()];
        let client = r.client.clone();
        let reached_model = matches!(
            r.outcome,
            RequestOutcome::Allowed | RequestOutcome::Modified | RequestOutcome::Abandoned
        );
        for stage in &r.stages {
            for f in &stage.findings {
                let injection = matches!(f.category.as_str(), "prompt-injection" | "jailbreak");
                if matches!(stage.stage.as_str(), "output" | "calls")
                    && matches!(f.category.as_str(), "pii" | "secrets")
                {
                    let fate = if !f.enforced {
                        "passed to the client (monitor mode)"
                    } else if stage.verdict == "deny" {
                        "blocked"
                    } else {
                        "redacted"
                    };
                    raised.push(raise(
                        "critical",
                        "pii-in-output",
                        &client,
                        format!(
                            "the model produced {} (policy {}); {fate}",
                            f.category, f.policy
                        ),
                        id(),
                    ));
                }
                if stage.stage == "input" && injection && !f.enforced && reached_model {
                    raised.push(raise(
                        "critical",
                        "injection-reached-model",
                        &client,
                        format!(
                            "{} detected by {} (not enforcing) reached the model",
                            f.category, f.policy
                        ),
                        id(),
                    ));
                }
                if stage.stage == "input" && injection && f.enforced && stage.verdict == "deny" {
                    raised.push(raise(
                        "high",
                        "jailbreak-blocked",
                        &client,
                        format!("{} attempt blocked by {}", f.category, f.policy),
                        id(),
                    ));
                }
            }
            for run in &stage.runs {
                let times = self.latencies.entry(run.policy.clone()).or_default();
                push_bounded(times, run.micros, 200);
            }
        }
        match r.outcome {
            RequestOutcome::Unauthorized => {
                let window = &mut self.unknown_keys;
                window.push_back((now, r.request_id.clone()));
                trim(window, now, MINUTE);
                if window.len() >= self.settings.unknown_key_burst {
                    raised.push(raise(
                        "high",
                        "unknown-key-burst",
                        "gateway",
                        format!(
                            "{} requests with a missing or unknown API key within a minute",
                            window.len()
                        ),
                        ids(window),
                    ));
                }
            }
            RequestOutcome::RateLimited => {
                let window = self.limited.entry(client.clone()).or_default();
                window.push_back((now, r.request_id.clone()));
                trim(window, now, MINUTE);
                if window.len() >= self.settings.rate_limit_repeats {
                    raised.push(raise(
                        "medium",
                        "rate-limit-repeated",
                        &client,
                        format!("{} budget refusals within a minute", window.len()),
                        ids(window),
                    ));
                }
            }
            _ => {}
        }
        if let Some(tokens) = r.tokens.filter(|_| !client.is_empty()) {
            let total = (tokens.prompt + tokens.completion) as f64;
            let history = self.tokens.entry(client.clone()).or_default();
            if history.len() >= 20 {
                let n = history.len() as f64;
                let mean = history.iter().sum::<f64>() / n;
                let sd = (history.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n).sqrt();
                if total > mean + 3.0 * sd.max(1.0) {
                    raised.push(raise("high", "token-anomaly", &client, format!(
                        "{total} tokens in one request; this client's last {} averaged {mean:.0} (σ {sd:.0})",
                        history.len()
                    ), id()));
                }
            }
            push_bounded(history, total, 100);
        }
        if let Some(template) = template.filter(|_| !client.is_empty()) {
            let span = Duration::from_secs(self.settings.extraction_window_s);
            let window = self.recent.entry(client.clone()).or_default();
            window.push_back((now, template, r.request_id.clone()));
            while window
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) > span)
            {
                window.pop_front();
            }
            if window.len() >= self.settings.extraction_requests {
                let mut counts: HashMap<u64, usize> = HashMap::new();
                for (_, t, _) in window.iter() {
                    *counts.entry(*t).or_default() += 1;
                }
                let top = counts.values().max().copied().unwrap_or_default();
                if top * 2 >= window.len() {
                    let recent = window
                        .iter()
                        .rev()
                        .take(20)
                        .rev()
                        .map(|(_, _, id)| id.clone());
                    raised.push(raise("critical", "model-extraction", &client, format!(
                        "{} requests within {}s, {top} of them one template with varying values \
                         (systematic probing)",
                        window.len(), self.settings.extraction_window_s
                    ), recent.collect()));
                }
            }
        }
        self.records += 1;
        if let Some(sla) = self
            .settings
            .latency_sla_ms
            .filter(|_| self.records.is_multiple_of(100))
        {
            for (policy, times) in &self.latencies {
                let mut sorted: Vec<u64> = times.iter().copied().collect();
                sorted.sort_unstable();
                let p95 = sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)] as f64 / 1000.0;
                if sorted.len() >= 20 && p95 > sla {
                    raised.push(raise(
                        "medium",
                        "latency-sla",
                        policy,
                        format!(
                            "policy {policy} p95 run time {p95:.2} ms is over the {sla} ms SLA"
                        ),
                        Vec::new(),
                    ));
                }
            }
        }
        raised
    }

    /// Whether the drift check is due (every 100 records).
    pub fn drift_due(&self) -> bool {
        self.records.is_multiple_of(100)
    }
}

/// The alert a lifecycle event raises, if any: a deactivated policy, and the
/// registry source's refusals and warnings.
pub fn from_lifecycle(event: &str, fields: &serde_json::Value) -> Option<Raised> {
    let field = |k: &str| fields[k].as_str().unwrap_or_default();
    let (severity, rule, summary) = match event {
        "deactivated" => (
            "critical",
            "policy-revoked",
            format!(
                "active policy {} ({}) was deactivated: {}",
                field("policy"),
                field("digest"),
                field("reason")
            ),
        ),
        "registry-refused" | "policy-set-refused" => (
            "critical",
            "registry-artifact-refused",
            format!(
                "refused {} {}: {}",
                field("reference"),
                field("digest"),
                field("reason")
            ),
        ),
        "policy-set-expired" => (
            "critical",
            "policy-set-expired",
            field("reason").to_string(),
        ),
        "policy-set-expiring" => ("high", "policy-set-expiring", field("reason").to_string()),
        "registry-unreachable" => (
            "medium",
            "registry-unreachable",
            format!("{}: {}", field("reference"), field("reason")),
        ),
        _ => return None,
    };
    let subject = [field("policy"), field("reference")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or(event);
    Some(raise(severity, rule, subject, summary, Vec::new()))
}

/// A template id for a prompt: its text with digits masked and whitespace
/// collapsed, lowercased, hashed.
pub fn template(text: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut space = false;
    for c in text.chars().take(2000) {
        let c = if c.is_ascii_digit() {
            '0'
        } else {
            c.to_ascii_lowercase()
        };
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            ' '.hash(&mut h);
            space = false;
        }
        c.hash(&mut h);
    }
    h.finish()
}

fn raise(
    severity: &'static str,
    rule: &'static str,
    subject: &str,
    summary: String,
    request_ids: Vec<String>,
) -> Raised {
    Raised {
        severity,
        rule,
        subject: subject.to_string(),
        summary,
        request_ids,
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, value: T, max: usize) {
    if q.len() == max {
        q.pop_front();
    }
    q.push_back(value);
}

fn trim(window: &mut VecDeque<(Instant, String)>, now: Instant, span: Duration) {
    while window
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > span)
    {
        window.pop_front();
    }
}

fn ids(window: &VecDeque<(Instant, String)>) -> Vec<String> {
    window
        .iter()
        .rev()
        .take(20)
        .rev()
        .map(|(_, id)| id.clone())
        .collect()
}

/// Deduplication and rate limiting of raised alerts.
#[derive(Default)]
pub struct Gate {
    last: HashMap<(&'static str, String), (Instant, u64)>,
    sent: VecDeque<Instant>,
}

impl Gate {
    /// The alert to send for `raised`, or `None` when it is a duplicate (counted) or
    /// over the rate limit (logged).
    pub fn admit(
        &mut self,
        raised: Raised,
        settings: &AlertsSection,
        now: Instant,
    ) -> Option<AlertRecord> {
        let key = (raised.rule, raised.subject.clone());
        let dedup = Duration::from_secs(settings.dedup_s);
        let suppressed = match self.last.get_mut(&key) {
            Some((at, count)) if now.duration_since(*at) < dedup => {
                *count += 1;
                return None;
            }
            Some((_, count)) => std::mem::take(count),
            None => 0,
        };
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) > MINUTE)
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= settings.max_per_minute {
            tracing::warn!(rule = raised.rule, "alert dropped: over max_per_minute");
            return None;
        }
        self.sent.push_back(now);
        self.last.insert(key, (now, 0));
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        Some(AlertRecord {
            time: super::timestamp(),
            id: format!("alert-{}", hex::encode(id)),
            severity: raised.severity.to_string(),
            rule: raised.rule.to_string(),
            subject: raised.subject,
            summary: raised.summary,
            request_ids: raised.request_ids,
            suppressed,
        })
    }
}

/// Where alerts go: the sink file and the webhook queue.
pub struct Outlets {
    sink: Option<(PathBuf, Mutex<std::fs::File>)>,
    webhook: Option<tokio::sync::mpsc::Sender<AlertRecord>>,
}

impl Outlets {
    /// Open the sink and start the webhook sender (needs a tokio runtime).
    pub fn open(settings: &AlertsSection, sink: Option<PathBuf>) -> Result<Outlets, String> {
        let sink = match sink {
            None => None,
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::releases::create_private_dir(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let file = std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("alert sink {}: {e}", path.display()))?;
                Some((path, Mutex::new(file)))
            }
        };
        let webhook = match &settings.webhook {
            None => None,
            Some(url) => {
                let runtime = tokio::runtime::Handle::try_current()
                    .map_err(|_| "the alert webhook needs a tokio runtime".to_string())?;
                let (tx, rx) = tokio::sync::mpsc::channel(256);
                runtime.spawn(deliver(url.clone(), rx));
                Some(tx)
            }
        };
        Ok(Outlets { sink, webhook })
    }

    /// Send `alert` to the sink (appended, flushed) and queue it for the webhook.
    pub fn send(&self, alert: &AlertRecord) {
        if let Some((path, file)) = &self.sink {
            let mut line = serde_json::to_string(alert).expect("alerts serialize");
            line.push('\n');
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = file.write_all(line.as_bytes()) {
                tracing::error!("cannot write alert to {}: {e}", path.display());
            }
        }
        if let Some(tx) = &self.webhook
            && tx.try_send(alert.clone()).is_err()
        {
            tracing::error!(rule = %alert.rule, "alert webhook queue full: alert not posted");
        }
    }
}

/// POST each alert, retrying five times with exponential backoff (0.5 s to 8 s).
async fn deliver(url: String, mut rx: tokio::sync::mpsc::Receiver<AlertRecord>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(alert) = rx.recv().await {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=6 {
            match client.post(&url).json(&alert).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if attempt == 6 => {
                    tracing::error!(rule = %alert.rule, "alert webhook refused the alert: {}", r.status());
                }
                Err(e) if attempt == 6 => {
                    tracing::error!(rule = %alert.rule, "alert webhook unreachable: {e}");
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::record::Tokens;

    fn request(client: &str, outcome: RequestOutcome, total: u64) -> RequestRecord {
        RequestRecord {
            request_id: format!("r-{total}"),
            client: client.into(),
            outcome,
            tokens: Some(Tokens {
                prompt: total,
                completion: 0,
            }),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn token_anomaly_needs_a_baseline_and_three_sigma() {
        let mut rules = Rules::new(AlertsSection::default());
        let now = Instant::now();
        for i in 0..30 {
            let r = request("a", RequestOutcome::Allowed, 100 + i % 5);
            assert!(rules.check(&r, None, now).is_empty());
        }
        let big = rules.check(&request("a", RequestOutcome::Allowed, 5000), None, now);
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].rule, "token-anomaly");
        // Another client has no baseline yet.
        assert!(
            rules
                .check(&request("b", RequestOutcome::Allowed, 5000), None, now)
                .is_empty()
        );
    }

    #[test]
    fn extraction_needs_volume_and_one_template() {
        let settings = AlertsSection {
            extraction_requests: 50,
            ..AlertsSection::default()
        };
        let mut rules = Rules::new(settings);
        let now = Instant::now();
        let mut fired = Vec::new();
        for i in 0..60 {
            let prompt = format!("Classify review #{i}: product {} is ok", i * 7);
            let r = request("probe", RequestOutcome::Allowed, 10);
            fired.extend(rules.check(&r, Some(template(&prompt)), now));
        }
        assert!(fired.iter().any(|a| a.rule == "model-extraction"));
        let mut quiet = Rules::new(AlertsSection {
            extraction_requests: 50,
            ..AlertsSection::default()
        });
        let varied = ["summarize", "translate", "explain", "rewrite", "list"];
        for i in 0..60 {
            let prompt = format!(
                "{} the text about topic {}",
                varied[i % 5],
                ["a", "b", "c"][i % 3]
            );
            let r = request("human", RequestOutcome::Allowed, 10);
            assert!(
                quiet
                    .check(&r, Some(template(&prompt)), now)
                    .iter()
                    .all(|a| a.rule != "model-extraction")
            );
        }
    }

    #[test]
    fn duplicates_are_suppressed_and_counted_then_rate_limited() {
        let settings = AlertsSection {
            dedup_s: 60,
            max_per_minute: 2,
            ..AlertsSection::default()
        };
        let mut gate = Gate::default();
        let now = Instant::now();
        let a = || raise("high", "jailbreak-blocked", "c", "x".into(), vec![]);
        assert!(gate.admit(a(), &settings, now).is_some());
        assert!(gate.admit(a(), &settings, now).is_none());
        assert!(gate.admit(a(), &settings, now).is_none());
        let later = now + Duration::from_secs(61);
        let again = gate.admit(a(), &settings, later).unwrap();
        assert_eq!(again.suppressed, 2);
        let other = |s: &str| raise("high", "jailbreak-blocked", s, "x".into(), vec![]);
        assert!(gate.admit(other("d"), &settings, later).is_some());
        assert!(
            gate.admit(other("e"), &settings, later).is_none(),
            "over 2 a minute"
        );
    }
}
