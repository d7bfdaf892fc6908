//! `portcullis report`: a summary of the audit log over a period, as plain text, as
//! JSON (through [`Summary`]'s `Serialize`) and as one self-contained HTML page with
//! inline SVG charts.
//!
//! The report reads the `request` and `alert` lines of one or more (rotated) log
//! files in a single pass, counts the other line types, and ignores types it does not
//! know. It does not verify the hash chain (`portcullis audit verify` does). A torn
//! last line (no trailing newline, not parseable) is counted as unreadable; any other
//! line that fails to parse is reported by source and line number, never aborting
//! the report.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::record::{AlertRecord, RequestOutcome, RequestRecord, RunRef};

/// How many unparseable lines are listed individually; the rest are only counted.
const MAX_LINE_ERRORS: usize = 10;
/// Length of each top-clients list.
const TOP_CLIENTS: usize = 10;
/// Length of the alert list.
const MAX_ALERTS: usize = 50;
/// The block category of a denied request whose denying stage has no enforced finding.
const UNCATEGORIZED: &str = "uncategorized";

/// A summary of the audit log over a period (see [`summarize`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The period asked for and the period the records actually cover.
    pub period: PeriodCovered,
    /// What was read, and what could not be.
    pub input: InputStats,
    /// Request counts.
    pub requests: RequestStats,
    /// Denied requests by the categories of the enforced findings of the stage that
    /// denied; a request counts once per category, as `uncategorized` when it has none.
    pub blocks_by_category: BTreeMap<String, u64>,
    /// Every finding by category and severity, enforced or monitor-only.
    pub findings: Vec<FindingCount>,
    /// The top clients (at most 10 each, zero entries left out).
    pub top_clients: TopClients,
    /// Token and cost totals over all requests.
    pub totals: Usage,
    /// Token and cost totals per model, by model name.
    pub models: Vec<Usage>,
    /// Latency of allowed and modified requests; absent when there are none.
    pub latency_ms: Option<Latency>,
    /// Per-policy run health, by policy name.
    pub policies: Vec<PolicyHealth>,
    /// Alerts raised in the period.
    pub alerts: AlertStats,
    /// Per UTC hour with any request or alert, oldest first.
    pub hourly: Vec<HourBucket>,
}

/// The period asked for (`since` inclusive, `until` exclusive) and the times of the
/// first and last request or alert in it (RFC 3339, UTC).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeriodCovered {
    /// Requested start, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Requested end, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Time of the first record in the period.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first: Option<OffsetDateTime>,
    /// Time of the last record in the period.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last: Option<OffsetDateTime>,
}

/// What was read from the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputStats {
    /// Number of sources (files) read.
    pub sources: usize,
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that could not be read: torn last lines and all unparseable lines.
    pub unreadable_lines: u64,
    /// Readable lines whose time is outside the period.
    pub out_of_period: u64,
    /// The first unparseable lines (torn last lines are only counted).
    pub line_errors: Vec<LineError>,
    /// Unparseable lines beyond those listed.
    pub more_line_errors: u64,
    /// Other line types (`open`, `lifecycle`, unknown ones...) in the period, by type.
    pub other_lines: BTreeMap<String, u64>,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    /// The source (file) name.
    pub source: String,
    /// Line number in the source, from 1.
    pub line: usize,
    /// Why it could not be parsed.
    pub message: String,
}

/// Request counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestStats {
    /// All requests in the period.
    pub total: u64,
    /// By outcome name (`allowed`, `denied`, `rate-limited`...).
    pub by_outcome: BTreeMap<String, u64>,
    /// By endpoint (`chat`, `check/input`...).
    pub by_endpoint: BTreeMap<String, u64>,
    /// Requests the client asked to stream.
    pub streamed: u64,
    /// `streamed / total` (0 without requests).
    pub streamed_share: f64,
}

/// Findings of one category and severity.
#[derive(Debug, Clone, Serialize)]
pub struct FindingCount {
    /// Finding category.
    pub category: String,
    /// Finding severity.
    pub severity: String,
    /// Findings that were enforced.
    pub enforced: u64,
    /// Findings only recorded (monitor mode, shadow candidates).
    pub monitor: u64,
}

/// The top clients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopClients {
    /// By prompt + completion tokens.
    pub by_tokens: Vec<Usage>,
    /// By cost.
    pub by_cost: Vec<Usage>,
    /// By denied requests.
    pub by_blocks: Vec<Usage>,
}

/// The usage of one client, one model, or of all requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Client id or model name (empty when unauthenticated or unknown; `(all)` for totals).
    pub name: String,
    /// Requests.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in US dollars (requests without a price count 0).
    pub cost_usd: f64,
    /// Denied requests.
    pub denied: u64,
}

/// Nearest-rank latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Number of requests measured.
    pub samples: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One policy's runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyHealth {
    /// Policy name.
    pub policy: String,
    /// Runs, skipped ones excluded.
    pub runs: u64,
    /// Skipped runs.
    pub skipped: u64,
    /// Runs that ended in `error`.
    pub errors: u64,
    /// Runs that ended in `timeout`.
    pub timeouts: u64,
    /// Runs that ended in `fuel-exhausted`.
    pub fuel_exhausted: u64,
    /// `(errors + timeouts + fuel_exhausted) / runs` (0 without runs).
    pub error_rate: f64,
    /// Nearest-rank 95th percentile of the run time, in microseconds.
    pub p95_micros: Option<u64>,
    /// The artifacts that were live (skipped runs included), by digest and version.
    pub artifacts: Vec<Artifact>,
}

/// One policy artifact seen in the period.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Component digest.
    pub digest: String,
    /// Signed version, if any.
    pub version: Option<String>,
    /// How many run references name it.
    pub seen: u64,
}

/// Alerts raised in the period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertStats {
    /// All alerts.
    pub total: u64,
    /// By severity.
    pub by_severity: BTreeMap<String, u64>,
    /// By rule.
    pub by_rule: BTreeMap<String, u64>,
    /// The newest alerts, newest first, at most 50.
    pub recent: Vec<AlertRow>,
}

/// One alert in the list.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    /// When it was raised.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Severity.
    pub severity: String,
    /// The rule that fired.
    pub rule: String,
    /// What it is about.
    pub subject: String,
    /// The analyst's sentence.
    pub summary: String,
    /// How many request ids it names.
    pub request_count: usize,
}

/// Counts of one UTC hour.
#[derive(Debug, Clone, Serialize)]
pub struct HourBucket {
    /// The start of the hour.
    #[serde(with = "time::serde::rfc3339")]
    pub hour: OffsetDateTime,
    /// Requests.
    pub requests: u64,
    /// Denied requests.
    pub denied: u64,
    /// Alerts.
    pub alerts: u64,
}

/// Summarizes `sources` (source name, content: JSON lines) over the period from `since`
/// (inclusive) to `until` (exclusive); `None` leaves that side open.
pub fn summarize(
    sources: &[(&str, &str)],
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Summary {
    let mut acc = Acc::default();
    (acc.summary.period.since, acc.summary.period.until) = (since, until);
    acc.summary.input.sources = sources.len();
    acc.summary.totals.name = "(all)".to_owned();
    for (name, content) in sources {
        acc.read_source(name, content);
    }
    acc.finish()
}

/// A parsed log line.
enum Line {
    Request(RequestRecord, OffsetDateTime),
    Alert(AlertRecord, OffsetDateTime),
    /// Any other type, with its time when it has one.
    Other(String, Option<OffsetDateTime>),
}

fn parse_line(text: &str) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let kind = value.get("type").and_then(Value::as_str);
    let kind = kind.ok_or("no \"type\" field")?;
    match kind {
        "request" => {
            let record: RequestRecord =
                serde_json::from_value(value).map_err(|e| format!("request: {e}"))?;
            let time = parse_time(&record.time)?;
            Ok(Line::Request(record, time))
        }
        "alert" => {
            let record: AlertRecord =
                serde_json::from_value(value).map_err(|e| format!("alert: {e}"))?;
            let time = parse_time(&record.time)?;
            Ok(Line::Alert(record, time))
        }
        _ => {
            let time = value.get("time").and_then(Value::as_str);
            let time = time.and_then(|t| parse_time(t).ok());
            Ok(Line::Other(kind.to_owned(), time))
        }
    }
}

/// Parses an RFC 3339 time into UTC, refusing years RFC 3339 cannot write back.
fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| format!("bad time {text:?}"))
}

impl Usage {
    fn add(&mut self, record: &RequestRecord) {
        let tokens = record.tokens.unwrap_or_default();
        self.requests += 1;
        self.prompt_tokens = self.prompt_tokens.saturating_add(tokens.prompt);
        self.completion_tokens = self.completion_tokens.saturating_add(tokens.completion);
        self.cost_usd += record.cost_usd.unwrap_or(0.0);
        self.denied += u64::from(record.outcome == RequestOutcome::Denied);
    }

    /// Prompt + completion tokens.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A policy's health so far, its run times, and its artifacts by (digest, version).
type PolicyAcc = (
    PolicyHealth,
    Vec<u64>,
    BTreeMap<(String, Option<String>), u64>,
);

/// The accumulator behind [`summarize`]: the summary so far plus what it derives from.
#[derive(Default)]
struct Acc {
    summary: Summary,
    findings: BTreeMap<(String, String), (u64, u64)>,
    clients: BTreeMap<String, Usage>,
    models: BTreeMap<String, Usage>,
    latencies: Vec<f64>,
    policies: BTreeMap<String, PolicyAcc>,
    hours: BTreeMap<OffsetDateTime, HourBucket>,
}

impl Acc {
    fn read_source(&mut self, name: &str, content: &str) {
        for (index, raw) in content.split_inclusive('\n').enumerate() {
            let text = raw.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let input = &mut self.summary.input;
            input.lines += 1;
            match parse_line(text) {
                Ok(line) => self.add_line(line),
                // A torn last line: the writer stopped mid-line.
                Err(_) if !raw.ends_with('\n') => input.unreadable_lines += 1,
                Err(message) if input.line_errors.len() < MAX_LINE_ERRORS => {
                    input.unreadable_lines += 1;
                    let source = name.to_owned();
                    let error = LineError {
                        source,
                        line: index + 1,
                        message,
                    };
                    input.line_errors.push(error);
                }
                Err(_) => {
                    input.unreadable_lines += 1;
                    input.more_line_errors += 1;
                }
            }
        }
    }

    fn in_period(&self, time: OffsetDateTime) -> bool {
        let period = &self.summary.period;
        period.since.is_none_or(|since| time >= since)
            && period.until.is_none_or(|until| time < until)
    }

    fn add_line(&mut self, line: Line) {
        match line {
            Line::Request(record, time) if self.in_period(time) => self.add_request(&record, time),
            Line::Alert(record, time) if self.in_period(time) => self.add_alert(record, time),
            Line::Other(kind, time) if time.is_none_or(|t| self.in_period(t)) => {
                *self.summary.input.other_lines.entry(kind).or_default() += 1;
            }
            _ => self.summary.input.out_of_period += 1,
        }
    }

    /// Extends the covered period to `time` and returns its hour bucket.
    fn cover(&mut self, time: OffsetDateTime) -> &mut HourBucket {
        let period = &mut self.summary.period;
        period.first = Some(period.first.map_or(time, |first| first.min(time)));
        period.last = Some(period.last.map_or(time, |last| last.max(time)));
        let hour = time.truncate_to_hour();
        let bucket = HourBucket {
            hour,
            requests: 0,
            denied: 0,
            alerts: 0,
        };
        self.hours.entry(hour).or_insert(bucket)
    }

    fn add_request(&mut self, record: &RequestRecord, time: OffsetDateTime) {
        use RequestOutcome::{Allowed, Modified};
        let denied = record.outcome == RequestOutcome::Denied;
        let bucket = self.cover(time);
        bucket.requests += 1;
        bucket.denied += u64::from(denied);
        let stats = &mut self.summary.requests;
        stats.total += 1;
        bump(&mut stats.by_outcome, record.outcome.name());
        bump(&mut stats.by_endpoint, &record.endpoint);
        stats.streamed += u64::from(record.stream);
        if denied {
            self.add_block(record);
        }
        if matches!(record.outcome, Allowed | Modified) {
            self.latencies.push(record.latency_ms);
        }
        for finding in record.stages.iter().flat_map(|stage| &stage.findings) {
            let key = (finding.category.clone(), finding.severity.clone());
            let (enforced, monitor) = self.findings.entry(key).or_default();
            *(if finding.enforced { enforced } else { monitor }) += 1;
        }
        for run in record.stages.iter().flat_map(|stage| &stage.runs) {
            self.add_run(run);
        }
        self.summary.totals.add(record);
        let client = self.clients.entry(record.client.clone()).or_default();
        client.add(record);
        self.models
            .entry(record.model.clone())
            .or_default()
            .add(record);
    }

    fn add_block(&mut self, record: &RequestRecord) {
        let categories: BTreeSet<&str> = (record.stages.iter())
            .filter(|stage| stage.verdict == "deny")
            .flat_map(|stage| &stage.findings)
            .filter(|finding| finding.enforced)
            .map(|finding| finding.category.as_str())
            .collect();
        let blocks = &mut self.summary.blocks_by_category;
        if categories.is_empty() {
            bump(blocks, UNCATEGORIZED);
        }
        for category in categories {
            bump(blocks, category);
        }
    }

    fn add_run(&mut self, run: &RunRef) {
        let (health, micros, artifacts) = self.policies.entry(run.policy.clone()).or_default();
        let artifact = (run.digest.clone(), run.version.clone());
        *artifacts.entry(artifact).or_default() += 1;
        match run.outcome.as_str() {
            "skipped" => {
                health.skipped += 1;
                return;
            }
            "error" => health.errors += 1,
            "timeout" => health.timeouts += 1,
            "fuel-exhausted" => health.fuel_exhausted += 1,
            _ => {}
        }
        health.runs += 1;
        micros.push(run.micros);
    }

    fn add_alert(&mut self, record: AlertRecord, time: OffsetDateTime) {
        self.cover(time).alerts += 1;
        let stats = &mut self.summary.alerts;
        stats.total += 1;
        bump(&mut stats.by_severity, &record.severity);
        bump(&mut stats.by_rule, &record.rule);
        stats.recent.push(AlertRow {
            time,
            request_count: record.request_ids.len(),
            severity: record.severity,
            rule: record.rule,
            subject: record.subject,
            summary: record.summary,
        });
        if stats.recent.len() >= 2 * MAX_ALERTS {
            keep_newest(&mut stats.recent);
        }
    }

    fn finish(self) -> Summary {
        let mut summary = self.summary;
        let requests = &mut summary.requests;
        requests.streamed_share = ratio(requests.streamed, requests.total);
        keep_newest(&mut summary.alerts.recent);
        let named = |(name, usage): (String, Usage)| Usage { name, ..usage };
        summary.models = self.models.into_iter().map(named).collect();
        let clients: Vec<Usage> = self.clients.into_iter().map(named).collect();
        summary.top_clients = TopClients {
            by_tokens: top(&clients, |c| c.tokens() as f64),
            by_cost: top(&clients, |c| c.cost_usd),
            by_blocks: top(&clients, |c| c.denied as f64),
        };
        let findings = self.findings.into_iter();
        summary.findings = findings.map(finding_count).collect();
        let key = |f: &FindingCount| (f.category.clone(), severity_rank(&f.severity));
        summary.findings.sort_by_key(key);
        summary.latency_ms = latency(self.latencies);
        summary.policies = self.policies.into_iter().map(policy_health).collect();
        summary.hourly = self.hours.into_values().collect();
        summary
    }
}

fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    *counts.entry(key.to_owned()).or_default() += 1;
}

fn finding_count(
    ((category, severity), (enforced, monitor)): ((String, String), (u64, u64)),
) -> FindingCount {
    FindingCount {
        category,
        severity,
        enforced,
        monitor,
    }
}

fn policy_health((policy, (health, mut micros, artifacts)): (String, PolicyAcc)) -> PolicyHealth {
    micros.sort_unstable();
    let failed = health.errors + health.timeouts + health.fuel_exhausted;
    let artifacts = artifacts
        .into_iter()
        .map(|((digest, version), seen)| Artifact {
            digest,
            version,
            seen,
        });
    PolicyHealth {
        policy,
        error_rate: ratio(failed, health.runs),
        p95_micros: nearest_rank(&micros, 95.0),
        artifacts: artifacts.collect(),
        ..health
    }
}

/// Sorts alerts newest first and keeps the first [`MAX_ALERTS`].
fn keep_newest(rows: &mut Vec<AlertRow>) {
    rows.sort_by_key(|row| std::cmp::Reverse(row.time));
    rows.truncate(MAX_ALERTS);
}

/// The first [`TOP_CLIENTS`] clients by `key` (descending, ties by name), zeros left out.
fn top(clients: &[Usage], key: impl Fn(&Usage) -> f64) -> Vec<Usage> {
    let mut list: Vec<Usage> = clients.iter().filter(|c| key(c) > 0.0).cloned().collect();
    list.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
    list.truncate(TOP_CLIENTS);
    list
}

fn latency(mut samples: Vec<f64>) -> Option<Latency> {
    samples.sort_by(f64::total_cmp);
    Some(Latency {
        samples: samples.len(),
        p50: nearest_rank(&samples, 50.0)?,
        p95: nearest_rank(&samples, 95.0)?,
        p99: nearest_rank(&samples, 99.0)?,
    })
}

/// The nearest-rank `p`th percentile of ascending `sorted`: the smallest value with at
/// least `p`% of the values at or below it.
fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Orders severities from `critical` down; unknown ones last.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// Counts ordered by count (descending), then name.
fn ranked(counts: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut list: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    list
}

fn money(usd: f64) -> String {
    format!("${usd:.4}")
}

fn millis(ms: f64) -> String {
    format!("{ms:.1} ms")
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn fmt_time(time: Option<OffsetDateTime>) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    let utc = time.and_then(|t| t.checked_to_offset(UtcOffset::UTC));
    let text = utc.and_then(|t| t.format(&format).ok());
    text.unwrap_or_else(|| "-".to_owned())
}

fn fmt_hour(time: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:00");
    time.format(&format).unwrap_or_else(|_| time.to_string())
}

/// A titled table of raw cells (log text not yet cleaned or escaped), for both outputs.
/// `head` holds the column names, comma-separated; a name starting with `#` marks a
/// numeric (right-aligned) column.
struct Table {
    title: &'static str,
    head: &'static str,
    rows: Vec<Row>,
}

/// One table row.
type Row = Vec<String>;

/// Builds a table row from displayable cells.
macro_rules! row {
    ($($cell:expr),* $(,)?) => { vec![$($cell.to_string()),*] };
}

fn table(title: &'static str, head: &'static str, rows: impl Iterator<Item = Row>) -> Table {
    let rows = rows.collect();
    Table { title, head, rows }
}

fn counts(title: &'static str, head: &'static str, counts: &BTreeMap<String, u64>) -> Table {
    let rows = ranked(counts).into_iter().map(|(name, n)| row![name, n]);
    table(title, head, rows)
}

const CLIENT_HEAD: &str = "Client,#Requests,#Prompt,#Completion,#Cost,#Denied";
const MODEL_HEAD: &str = "Model,#Requests,#Prompt,#Completion,#Cost,#Denied";

fn usage(title: &'static str, head: &'static str, usage: &[Usage]) -> Table {
    let rows = usage.iter().map(|u| {
        let name = if u.name.is_empty() { "-" } else { &u.name };
        let (prompt, completion, cost) = (u.prompt_tokens, u.completion_tokens, money(u.cost_usd));
        row![name, u.requests, prompt, completion, cost, u.denied]
    });
    table(title, head, rows)
}

const POLICY_HEAD: &str = "Policy,#Runs,#Errors,#Timeouts,#Fuel exhausted,#Error rate,#p95 us,\
    Artifacts: version digest (seen)";

fn policy_row(p: &PolicyHealth) -> Row {
    let p95 = p.p95_micros.map_or("-".to_owned(), |us| us.to_string());
    let artifacts = p.artifacts.iter().map(|a| {
        let version = a.version.as_deref().unwrap_or("unsigned");
        format!("{version} {} ({})", a.digest, a.seen)
    });
    let artifacts = artifacts.collect::<Vec<_>>().join(", ");
    let rate = percent(p.error_rate);
    row![
        p.policy,
        p.runs,
        p.errors,
        p.timeouts,
        p.fuel_exhausted,
        rate,
        p95,
        artifacts
    ]
}

impl Summary {
    /// Every table, in report order.
    fn tables(&self) -> Vec<Table> {
        let findings =
            (self.findings.iter()).map(|f| row![f.category, f.severity, f.enforced, f.monitor]);
        let latency = self.latency_ms.iter().flat_map(|l| {
            [("p50", l.p50), ("p95", l.p95), ("p99", l.p99)].map(|(p, ms)| row![p, millis(ms)])
        });
        let alerts = self.alerts.recent.iter().map(|a| {
            let (time, requests) = (fmt_time(Some(a.time)), a.request_count);
            row![time, a.severity, a.rule, a.subject, requests, a.summary]
        });
        let policies = self.policies.iter().map(policy_row);
        let hourly =
            (self.hourly.iter()).map(|h| row![fmt_hour(h.hour), h.requests, h.denied, h.alerts]);
        let models = [self.models.as_slice(), std::slice::from_ref(&self.totals)].concat();
        let (r, a, top) = (&self.requests, &self.alerts, &self.top_clients);
        vec![
            counts("Requests by outcome", "Outcome,#Requests", &r.by_outcome),
            counts("Requests by endpoint", "Endpoint,#Requests", &r.by_endpoint),
            counts(
                "Blocks by category",
                "Category,#Blocks",
                &self.blocks_by_category,
            ),
            table("Findings", "Category,Severity,#Enforced,#Monitor", findings),
            usage("Top clients by tokens", CLIENT_HEAD, &top.by_tokens),
            usage("Top clients by cost", CLIENT_HEAD, &top.by_cost),
            usage("Top clients by blocks", CLIENT_HEAD, &top.by_blocks),
            usage("Tokens and cost by model", MODEL_HEAD, &models),
            table(
                "Latency (allowed and modified)",
                "Percentile,#Latency",
                latency,
            ),
            table("Policy health", POLICY_HEAD, policies),
            counts("Alerts by severity", "Severity,#Alerts", &a.by_severity),
            counts("Alerts by rule", "Rule,#Alerts", &a.by_rule),
            table(
                "Recent alerts",
                "Time,Severity,Rule,Subject,#Requests,Summary",
                alerts,
            ),
            table("Per hour", "Hour (UTC),#Requests,#Denied,#Alerts", hourly),
        ]
    }

    /// The header lines: period, input, line errors, key figures.
    fn header(&self) -> Vec<String> {
        let (p, input) = (&self.period, &self.input);
        let other = input
            .other_lines
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"));
        let other = Some(other.collect::<Vec<_>>().join(", ")).filter(|o| !o.is_empty());
        let (first, last) = (fmt_time(p.first), fmt_time(p.last));
        let (since, until) = (fmt_time(p.since), fmt_time(p.until));
        let mut lines = vec![
            format!("Period: {first} .. {last} (requested {since} .. {until})"),
            format!(
                "Input: {} sources, {} lines, {} unreadable, {} outside the period; other: {}",
                input.sources,
                input.lines,
                input.unreadable_lines,
                input.out_of_period,
                other.as_deref().unwrap_or("none")
            ),
        ];
        for e in &input.line_errors {
            lines.push(format!("  {} line {}: {}", e.source, e.line, e.message));
        }
        if input.more_line_errors > 0 {
            lines.push(format!(
                "  ... and {} more unparseable lines",
                input.more_line_errors
            ));
        }
        let denied = self.requests.by_outcome.get("denied").copied().unwrap_or(0);
        let p95 = self
            .latency_ms
            .as_ref()
            .map_or("-".to_owned(), |l| millis(l.p95));
        lines.push(format!(
            "Requests {}, denied {denied}, streamed {}, tokens {}, cost {}, p95 latency {p95}, \
             alerts {}",
            self.requests.total,
            percent(self.requests.streamed_share),
            self.totals.tokens(),
            money(self.totals.cost_usd),
            self.alerts.total
        ));
        lines
    }

    /// A plain-text report: a header with the period, then one aligned table per
    /// section, in the order of the fields ("none" where empty).
    pub fn to_text(&self) -> String {
        let mut out = String::from("Portcullis audit report\n");
        for line in self.header() {
            out.push_str(&clean(&line));
            out.push('\n');
        }
        for table in self.tables() {
            text_table(&mut out, &table);
        }
        out
    }

    /// One self-contained HTML page: inline CSS and SVG charts, no script, no URL.
    pub fn to_html(&self) -> String {
        let mut out = String::from(HTML_HEAD);
        for line in self.header() {
            out.push_str(&format!("<p>{}</p>\n", esc(&line)));
        }
        out.push_str("<h2>Requests and denials per hour (UTC)</h2>\n");
        out.push_str(&hourly_chart(&self.hourly));
        out.push_str("<h2>Blocks by category</h2>\n");
        out.push_str(&bar_chart(&ranked(&self.blocks_by_category), |_| "#dc2626"));
        out.push_str("<h2>Alerts by severity</h2>\n");
        let mut severities = ranked(&self.alerts.by_severity);
        severities.sort_by_key(|(severity, _)| severity_rank(severity));
        out.push_str(&bar_chart(&severities, severity_color));
        for table in self.tables() {
            html_table(&mut out, &table);
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

/// Replaces control characters (terminal escapes, newlines) in log text.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn text_table(out: &mut String, table: &Table) {
    out.push_str(&format!("\n{}\n", table.title));
    if table.rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let head = table
        .head
        .split(',')
        .map(|h| h.trim_start_matches('#').to_owned());
    let cleaned = table
        .rows
        .iter()
        .map(|row| row.iter().map(|c| clean(c)).collect());
    let rows: Vec<Row> = std::iter::once(head.collect()).chain(cleaned).collect();
    let columns = table.head.split(',').enumerate();
    let widths: Vec<(usize, bool)> = (columns.map(|(i, head)| {
        let cells = rows.iter().filter_map(|row| row.get(i));
        let width = cells.map(|cell| cell.chars().count()).max().unwrap_or(0);
        (width, head.starts_with('#'))
    }))
    .collect();
    for row in &rows {
        let mut line = String::from(" ");
        for (cell, &(width, numeric)) in row.iter().zip(&widths) {
            if numeric {
                line.push_str(&format!(" {cell:>width$}"));
            } else {
                line.push_str(&format!(" {cell:<width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HTML_HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>Portcullis audit report</title>\n<style>\n\
body{font-family:system-ui,sans-serif;margin:2rem;color:#1e293b;max-width:72rem}\n\
h2{margin-top:2rem;border-bottom:1px solid #cbd5e1;font-size:1.1rem}\n\
table{border-collapse:collapse;font-size:.9rem}\n\
th,td{padding:.25rem .6rem;border-bottom:1px solid #e2e8f0;text-align:left}\n\
.n{text-align:right;font-variant-numeric:tabular-nums}\n\
svg text{font-size:11px;fill:#334155}\n\
</style>\n</head>\n<body>\n<h1>Portcullis audit report</h1>\n";

fn html_table(out: &mut String, table: &Table) {
    out.push_str(&format!("<h2>{}</h2>\n", esc(table.title)));
    if table.rows.is_empty() {
        out.push_str("<p>none</p>\n");
        return;
    }
    let class = |head: &str| {
        if head.starts_with('#') {
            " class=\"n\""
        } else {
            ""
        }
    };
    out.push_str("<table>\n<tr>");
    for head in table.head.split(',') {
        let name = esc(head.trim_start_matches('#'));
        out.push_str(&format!("<th{}>{name}</th>", class(head)));
    }
    for row in &table.rows {
        out.push_str("</tr>\n<tr>");
        for (cell, head) in row.iter().zip(table.head.split(',')) {
            out.push_str(&format!("<td{}>{}</td>", class(head), esc(cell)));
        }
    }
    out.push_str("</tr>\n</table>\n");
}

const CHART_WIDTH: f64 = 760.0;

fn svg_open(height: f64, label: &str) -> String {
    format!(
        "<svg viewBox=\"0 0 {CHART_WIDTH} {height}\" width=\"{CHART_WIDTH}\" role=\"img\" aria-label=\"{label}\">\n"
    )
}

fn severity_color(severity: &str) -> &'static str {
    match severity {
        "critical" => "#991b1b",
        "high" => "#ea580c",
        "medium" => "#ca8a04",
        _ => "#64748b",
    }
}

/// Bars of requests per hour with the denied part overlaid and alerts as dots, on a
/// time axis (hours without records stay empty).
fn hourly_chart(buckets: &[HourBucket]) -> String {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return "<p>none</p>\n".to_owned();
    };
    let (left, top, plot_w, plot_h) = (48.0, 24.0, CHART_WIDTH - 60.0, 170.0);
    let base = top + plot_h;
    let slot = plot_w / ((last.hour - first.hour).whole_hours() + 1) as f64;
    let max = buckets.iter().map(|b| b.requests.max(b.alerts)).max();
    let max = max.unwrap_or(0).max(1);
    let height = |n: u64| n as f64 / max as f64 * plot_h;
    let width = (slot * 0.8).max(1.0);
    let mut svg = svg_open(base + 24.0, "Requests and denials per hour");
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"12\"><tspan fill=\"#60a5fa\">\u{25a0}</tspan> requests \
<tspan fill=\"#dc2626\">\u{25a0}</tspan> denied <tspan fill=\"#f59e0b\">\u{25cf}</tspan> alerts</text>\n\
<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#94a3b8\"/>\n\
<text x=\"{l}\" y=\"{}\" text-anchor=\"end\">{max}</text><text x=\"{l}\" y=\"{base}\" text-anchor=\"end\">0</text>\n",
        left + plot_w,
        top + 8.0,
        l = left - 6.0,
    ));
    for b in buckets {
        let x = left + (b.hour - first.hour).whole_hours() as f64 * slot;
        let label = format!(
            "{} UTC: {} requests, {} denied, {} alerts",
            fmt_hour(b.hour),
            b.requests,
            b.denied,
            b.alerts
        );
        svg.push_str(&format!("<g><title>{label}</title>"));
        for (n, color) in [(b.requests, "#60a5fa"), (b.denied, "#dc2626")] {
            let (y, h) = (base - height(n), height(n));
            svg.push_str(&format!("<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{h:.1}\" fill=\"{color}\"/>"));
        }
        if b.alerts > 0 {
            let (cx, cy) = (x + width / 2.0, base - height(b.alerts));
            svg.push_str(&format!(
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"#f59e0b\"/>"
            ));
        }
        svg.push_str("</g>\n");
    }
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"{y}\">{}</text><text x=\"{}\" y=\"{y}\" text-anchor=\"end\">{}</text>\n</svg>\n",
        fmt_hour(first.hour),
        left + plot_w,
        fmt_hour(last.hour),
        y = base + 16.0,
    ));
    svg
}

/// Horizontal bars, one row per (label, count), colored by `color(label)`.
fn bar_chart(items: &[(&str, u64)], color: fn(&str) -> &'static str) -> String {
    if items.is_empty() {
        return "<p>none</p>\n".to_owned();
    }
    let (label_w, row_h) = (200.0, 24.0);
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let mut svg = svg_open(items.len() as f64 * row_h + 8.0, "Bar chart");
    for (i, (label, count)) in items.iter().enumerate() {
        let (y, text_y) = (i as f64 * row_h + 4.0, i as f64 * row_h + 19.0);
        let width = (*count as f64 / max * (CHART_WIDTH - label_w - 60.0)).max(1.0);
        let short: String = label.chars().take(30).collect();
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{text_y:.1}\" text-anchor=\"end\">{}</text>\
<rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{}\" fill=\"{}\"/>\
<text x=\"{:.1}\" y=\"{text_y:.1}\">{count}</text>\n",
            label_w - 8.0,
            esc(&short),
            row_h - 6.0,
            color(label),
            label_w + width + 6.0,
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    /// A log line: `fields` (with `type`) over defaults; `"at": "hh:mm"` is its time on
    /// 2025-03-01.
    fn line(fields: Value) -> String {
        let mut line = match fields["type"].as_str().unwrap_or_default() {
            "request" => json!({"request_id": "r", "client": "", "model": "", "endpoint": "chat",
                "stream": false, "status": 200, "generation": 1, "latency_ms": 10.0}),
            "alert" => json!({"id": "a", "summary": "s", "request_ids": ["r1", "r2"]}),
            _ => json!({}),
        };
        for (key, value) in fields.as_object().into_iter().flatten() {
            line[key] = value.clone();
        }
        if let Some(at) = fields["at"].as_str() {
            line["time"] = json!(format!("2025-03-01T{at}:00Z"));
        }
        (line["seq"], line["prev"]) = (json!(1), json!("00"));
        format!("{line}\n")
    }

    fn stage(verdict: &str, findings: &[(&str, &str, bool)], runs: Value) -> Value {
        let findings: Vec<Value> = (findings.iter())
            .map(|(c, s, e)| json!({"policy": "p", "category": c, "severity": s, "enforced": e}))
            .collect();
        json!([{"stage": "input", "verdict": verdict, "findings": findings, "runs": runs}])
    }

    fn run(policy: &str, digest: &str, outcome: &str, micros: u64) -> Value {
        let version = if digest.ends_with("bb") { "1.1" } else { "1.0" };
        json!({"policy": policy, "version": version, "digest": digest, "outcome": outcome,
               "mode": "enforce", "fuel": 1, "micros": micros})
    }

    /// JSON lines from an array: objects through [`line`], strings verbatim.
    fn lines(items: Value) -> String {
        let items = items.as_array().cloned().unwrap_or_default();
        let line_of = |item| match item {
            Value::String(raw) => raw + "\n",
            item => line(item),
        };
        items.into_iter().map(line_of).collect()
    }

    /// Two rotated files: 7 requests and 2 alerts between 10:00 and 12:00, two requests
    /// outside, other line types, a malformed line (a.log:5) and a torn last line.
    fn fixture() -> [String; 2] {
        let tokens = |prompt, completion| json!({"prompt": prompt, "completion": completion});
        let a = lines(json!([
            {"type": "lifecycle", "at": "10:00"},
            {"type": "request", "at": "10:05", "client": "alice", "model": "gpt-4o",
                "outcome": "allowed", "tokens": tokens(100, 50), "cost_usd": 0.5,
                "latency_ms": 100.0, "stream": true,
                "stages": stage("allow", &[("pii", "medium", false)],
                    json!([run("pii", "sha256:aa", "ok", 100)]))},
            {"type": "request", "at": "10:20", "client": "bob", "model": "gpt-4o",
                "outcome": "denied", "tokens": tokens(10, 0), "cost_usd": 0.75,
                "stages": stage("deny", &[("pii", "high", true), ("secrets", "critical", true)],
                    json!([run("pii", "sha256:aa", "ok", 200),
                        run("secrets", "sha256:cc", "ok", 300)]))},
            {"type": "alert", "at": "10:30", "severity": "high", "rule": "pii-in-output",
                "subject": "bob"},
            "{\"type\":\"request\",\"time\":",
            {"type": "request", "at": "10:40", "client": "bob", "model": "claude",
                "outcome": "denied", "tokens": tokens(20, 0), "cost_usd": 0.125,
                "stages": stage("deny",
                    &[("prompt-injection", "high", true), ("jailbreak", "low", false)],
                    json!([run("pii", "sha256:aa", "ok", 400)]))},
            {"type": "request", "at": "11:10", "client": "carol", "model": "claude",
                "outcome": "modified", "tokens": tokens(1000, 500), "cost_usd": 2.0,
                "latency_ms": 300.0, "stages": stage("modify", &[],
                    json!([run("pii", "sha256:bb", "error", 50),
                        run("secrets", "sha256:cc", "timeout", 1000)]))},
            {"type": "open"},
        ]));
        let b = lines(json!([
            {"type": "request", "at": "09:00", "client": "eve", "outcome": "allowed"},
            {"type": "request", "at": "11:30", "client": "alice", "model": "claude",
                "outcome": "rate-limited", "latency_ms": 1.0},
            {"type": "request", "at": "11:45", "client": "dave", "model": "gpt-4o",
                "outcome": "allowed", "tokens": tokens(10, 10), "cost_usd": 0.0625,
                "latency_ms": 200.0, "stages": stage("allow", &[],
                    json!([run("pii", "sha256:aa", "fuel-exhausted", 10)]))},
            {"type": "request", "at": "11:50", "client": "carol", "outcome": "denied",
                "endpoint": "check/tool", "stages": stage("deny", &[],
                    json!([run("pii", "sha256:aa", "skipped", 0),
                        run("tool-allowlist", "sha256:dd", "ok", 30)]))},
            {"type": "alert", "at": "11:50", "severity": "critical", "rule": "token-anomaly",
                "subject": "carol"},
            {"type": "mystery-future", "at": "11:55"},
            {"type": "request", "at": "13:00", "client": "eve", "outcome": "allowed"},
        ]));
        [a, b + "{\"seq\":8,\"prev\":\"00\",\"type\":\"requ"]
    }

    fn summary(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Summary {
        let [a, b] = fixture();
        summarize(&[("a.log", &a), ("b.log", &b)], since, until)
    }

    fn period() -> Summary {
        let hour = |h| datetime!(2025-03-01 00:00 UTC).replace_hour(h).ok();
        summary(hour(10), hour(12))
    }

    /// Items shown as one string, for compact assertions.
    fn show<T>(items: impl IntoIterator<Item = T>, item: impl Fn(T) -> String) -> String {
        items.into_iter().map(item).collect::<Vec<_>>().join(", ")
    }

    fn counts(map: &BTreeMap<String, u64>) -> String {
        show(map, |(k, n)| format!("{k} {n}"))
    }

    #[test]
    fn counts_requests_blocks_and_findings() {
        let s = period();
        let outcomes = "allowed 2, denied 3, modified 1, rate-limited 1";
        assert_eq!(counts(&s.requests.by_outcome), outcomes);
        assert_eq!(counts(&s.requests.by_endpoint), "chat 6, check/tool 1");
        assert_eq!((s.requests.total, s.requests.streamed), (7, 1));
        let blocks = "pii 1, prompt-injection 1, secrets 1, uncategorized 1";
        assert_eq!(
            counts(&s.blocks_by_category),
            blocks,
            "monitor-only jailbreak is no block"
        );
        let findings = show(&s.findings, |f| {
            format!("{}/{} {}+{}", f.category, f.severity, f.enforced, f.monitor)
        });
        let expected = "jailbreak/low 0+1, pii/high 1+0, pii/medium 0+1, \
                        prompt-injection/high 1+0, secrets/critical 1+0";
        assert_eq!(findings, expected);
    }

    #[test]
    fn ranks_top_clients_by_tokens_cost_and_blocks() {
        let top = period().top_clients;
        let by_tokens = show(&top.by_tokens, |c| format!("{} {}", c.name, c.tokens()));
        assert_eq!(by_tokens, "carol 1500, alice 150, bob 30, dave 20");
        let by_cost = show(&top.by_cost, |c| format!("{} {}", c.name, c.cost_usd));
        assert_eq!(by_cost, "carol 2, bob 0.875, alice 0.5, dave 0.0625");
        let by_blocks = show(&top.by_blocks, |c| format!("{} {}", c.name, c.denied));
        assert_eq!(by_blocks, "bob 2, carol 1");
    }

    #[test]
    fn sums_usage_per_model_and_latency_percentiles() {
        let s = period();
        let models = show(&s.models, |m| {
            format!("{}: {} {} {}", m.name, m.requests, m.tokens(), m.cost_usd)
        });
        assert_eq!(
            models,
            ": 1 0 0, claude: 3 1520 2.125, gpt-4o: 3 180 1.3125"
        );
        assert_eq!((s.totals.tokens(), s.totals.cost_usd), (1700, 3.4375));
        let l = s.latency_ms.expect("allowed and modified requests");
        assert_eq!((l.samples, l.p50, l.p95, l.p99), (3, 200.0, 300.0, 300.0));
    }

    #[test]
    fn reports_policy_error_rates_and_artifacts() {
        let s = period();
        let health = show(&s.policies, |p| {
            let (e, t, f) = (p.errors, p.timeouts, p.fuel_exhausted);
            format!("{} {}/{e}/{t}/{f} {}", p.policy, p.runs, p.error_rate)
        });
        assert_eq!(
            health,
            "pii 5/1/0/1 0.4, secrets 2/0/1/0 0.5, tool-allowlist 1/0/0/0 0"
        );
        let (pii, secrets) = (&s.policies[0], &s.policies[1]);
        assert_eq!((pii.skipped, secrets.p95_micros), (1, Some(1000)));
        let artifacts = show(&pii.artifacts, |a| {
            format!("{} {:?} {}", a.digest, a.version, a.seen)
        });
        assert_eq!(
            artifacts,
            "sha256:aa Some(\"1.0\") 5, sha256:bb Some(\"1.1\") 1"
        );
    }

    #[test]
    fn period_filter_excludes_records_outside() {
        let all = summary(None, None);
        assert_eq!((all.requests.total, all.input.out_of_period), (9, 0));
        assert_eq!(all.period.first, Some(datetime!(2025-03-01 09:00 UTC)));
        let s = period();
        assert_eq!((s.requests.total, s.input.out_of_period), (7, 2));
        assert_eq!(s.period.first, Some(datetime!(2025-03-01 10:05 UTC)));
        assert_eq!(s.period.last, Some(datetime!(2025-03-01 11:50 UTC)));
        assert!(s.top_clients.by_tokens.iter().all(|c| c.name != "eve"));
    }

    #[test]
    fn unreadable_lines_are_counted_not_fatal() {
        let input = period().input;
        assert_eq!(
            (input.sources, input.lines, input.unreadable_lines),
            (2, 16, 2)
        );
        let errors = show(&input.line_errors, |e| format!("{}:{}", e.source, e.line));
        assert_eq!(
            errors, "a.log:5",
            "the torn last line is counted, not listed"
        );
        assert_eq!(
            counts(&input.other_lines),
            "lifecycle 1, mystery-future 1, open 1"
        );

        let garbage = "not json\n".repeat(12);
        let input = summarize(&[("c.log", &garbage)], None, None).input;
        assert_eq!((input.unreadable_lines, input.line_errors.len()), (12, 10));
        assert_eq!((input.more_line_errors, input.line_errors[9].line), (2, 10));
    }

    #[test]
    fn lists_alerts_newest_first_and_buckets_hours() {
        let s = period();
        assert_eq!(counts(&s.alerts.by_severity), "critical 1, high 1");
        let recent = show(&s.alerts.recent, |a| {
            format!("{} {}", a.rule, a.request_count)
        });
        assert_eq!(recent, "token-anomaly 2, pii-in-output 2");
        let hours = show(&s.hourly, |h| {
            format!(
                "{}h {}/{}/{}",
                h.hour.hour(),
                h.requests,
                h.denied,
                h.alerts
            )
        });
        assert_eq!(hours, "10h 3/2/1, 11h 4/1/1");
    }

    #[test]
    fn json_uses_rfc3339_times_and_stable_names() {
        let json = serde_json::to_value(period()).expect("serializable");
        assert_eq!(json["period"]["first"], "2025-03-01T10:05:00Z");
        assert_eq!(json["blocks_by_category"]["secrets"], 1);
        assert_eq!(json["top_clients"]["by_blocks"][0]["name"], "bob");
        assert_eq!(json["hourly"][1]["hour"], "2025-03-01T11:00:00Z");
    }

    #[test]
    fn text_report_shows_key_figures() {
        let text = period().to_text();
        for figure in [
            "Period: 2025-03-01 10:05:00Z .. 2025-03-01 11:50:00Z",
            "a.log line 5:",
            "Requests 7, denied 3",
            "cost $3.4375",
            "p95 latency 300.0 ms",
            "  pii-in-output      1",
            "  tool-allowlist    1      0        0",
        ] {
            assert!(text.contains(figure), "{figure:?} missing from:\n{text}");
        }
        let empty = summarize(&[], None, None).to_text();
        assert!(empty.contains("Blocks by category\n  none\n"), "{empty}");
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let hostile = "<script>alert(1)</script>";
        let log = lines(json!([
            {"type": "request", "at": "10:00", "client": hostile, "model": "m\"&",
                "outcome": "denied", "cost_usd": 0.5},
            {"type": "alert", "at": "10:01", "severity": "high", "rule": "<b>rule</b>",
                "subject": hostile},
        ]));
        let html = summarize(&[("x.log", &log)], None, None).to_html();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("m&quot;&amp;") && html.contains("&lt;b&gt;rule&lt;/b&gt;"));
        assert!(!html.contains("<script") && !html.contains("<b>"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "hourly, blocks and alert charts"
        );
        assert!(html.contains("$0.5000"));
    }
}
