//! What the gateway records about each request: the audit log's `request` lines, the
//! input of metrics, alerts, drift monitoring and `portcullis report`.
//!
//! A record never holds prompt or completion text, nor a finding's matched value:
//! findings are located by span offsets and, when a key is configured, a keyed hash
//! (HMAC-SHA-256) of the matched bytes, so two records can be linked to the same
//! value without the log revealing it.

use serde::{Deserialize, Serialize};

/// One request through the gateway, as written to the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The request id (the client's `x-request-id` or a generated one).
    pub request_id: String,
    /// The authenticated client id; empty when the request was not authenticated.
    pub client: String,
    /// The requested model; empty when unknown (e.g. an unparseable body).
    pub model: String,
    /// `chat`, or `check/input`, `check/tool`, `check/output`, `check/auth`.
    pub endpoint: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The HTTP status sent.
    pub status: u16,
    /// How the request ended.
    pub outcome: RequestOutcome,
    /// The policy-set generation used (0 when no stage ran).
    pub generation: u64,
    /// Each stage that ran, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageRecord>,
    /// Tokens, when known (the upstream's usage, else counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Cost in US dollars from the configured price table (absent when the model
    /// has no price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Wall-clock milliseconds from arrival to the last byte of the response.
    pub latency_ms: f64,
    /// The W3C trace id, when the request was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum RequestOutcome {
    /// Answered unchanged.
    #[default]
    Allowed,
    /// Answered with policy modifications (redactions, removed tools or calls).
    Modified,
    /// Refused by a policy.
    Denied,
    /// Refused by a token budget (429).
    RateLimited,
    /// Missing or unknown API key (401).
    Unauthorized,
    /// Malformed request (400/413).
    Invalid,
    /// The upstream failed or timed out (502/504, or its own 4xx).
    UpstreamError,
    /// The client went away before the response was complete.
    Abandoned,
}

impl RequestOutcome {
    /// The kebab-case name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            RequestOutcome::Allowed => "allowed",
            RequestOutcome::Modified => "modified",
            RequestOutcome::Denied => "denied",
            RequestOutcome::RateLimited => "rate-limited",
            RequestOutcome::Unauthorized => "unauthorized",
            RequestOutcome::Invalid => "invalid",
            RequestOutcome::UpstreamError => "upstream-error",
            RequestOutcome::Abandoned => "abandoned",
        }
    }
}

/// Prompt and completion tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

/// One stage's decision.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// `input`, `tools` (offered tools), `calls` (tool calls) or `output`.
    pub stage: String,
    /// `allow`, `deny` or `modify`.
    pub verdict: String,
    /// Every finding, enforced or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingRecord>,
    /// Every policy run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunRef>,
}

/// A finding without its text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FindingRecord {
    /// The policy that reported it.
    pub policy: String,
    /// Category (`pii`, `secrets`, `prompt-injection`, `jailbreak`, ... or custom).
    pub category: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Where: message/choice/tool/call index and byte offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// For the tool stages: which offered tool or tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Confidence, if scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// False for monitor-mode policies and shadow candidates (recorded, not applied).
    pub enforced: bool,
    /// HMAC-SHA-256 (hex) of the matched bytes under the configured audit key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_hmac: Option<String>,
}

/// A finding's location.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Span {
    /// Message, choice, tool or call index.
    pub index: u32,
    /// First byte.
    pub start: u32,
    /// End byte (exclusive).
    pub end: u32,
}

/// One policy run: exactly which artifact ran and what came of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRef {
    /// Policy name.
    pub policy: String,
    /// Signed version (absent for unsigned development policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Component digest (`sha256:...`).
    pub digest: String,
    /// Key ids of the signatures that verified it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// `ok`, `error`, `timeout`, `fuel-exhausted` or `skipped`.
    pub outcome: String,
    /// The policy's own verdict, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// `enforce` or `monitor`.
    pub mode: String,
    /// `shadow` or `canary` when a candidate ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall-clock microseconds.
    pub micros: u64,
}

/// A SOC alert, as written to the alerts sink and to the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertRecord {
    /// When it was raised (RFC 3339, UTC).
    pub time: String,
    /// A unique id.
    pub id: String,
    /// `critical`, `high` or `medium`.
    pub severity: String,
    /// The rule that fired (e.g. `pii-in-output`, `token-anomaly`).
    pub rule: String,
    /// What it is about: a client id, a policy name, or `gateway`.
    pub subject: String,
    /// One sentence for the analyst.
    pub summary: String,
    /// The requests that caused it (most recent last, at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_ids: Vec<String>,
    /// Alerts of the same rule and subject suppressed since the last one sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
