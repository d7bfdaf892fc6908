//! Errors as OpenAI-style JSON: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Mode;
use crate::engine::Outcome;
use crate::pipeline::{Decision, Reported};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `type` (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// `code`.
    pub code: &'static str,
    /// A message for people; never echoes request or response text.
    pub message: String,
    /// The offending field, when there is one.
    pub param: Option<String>,
    /// Extra members of the error object (policy decisions).
    pub details: Option<Box<Value>>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        ApiError {
            status,
            kind,
            code,
            message,
            param: None,
            details: None,
            retry_after: None,
        }
    }

    /// 400: the request does not have the expected shape.
    pub fn invalid(message: impl Into<String>) -> Self {
        let message = message.into();
        let param = field_of(&message);
        ApiError {
            param,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                message,
            )
        }
    }

    /// 401: missing or unknown API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message.into(),
        )
    }

    /// 413: the body is over the configured limit.
    pub fn too_large(limit_kb: u32) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is over the gateway's limit of {limit_kb} KiB"),
        )
    }

    /// 404: no such endpoint.
    pub fn not_found(message: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }

    /// 429: over the client's token budget.
    pub fn rate_limited(message: String) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
        )
    }

    /// 502: the upstream failed or answered something unusable.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unavailable",
            message.into(),
        )
    }

    /// 504: the upstream did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            message.into(),
        )
    }

    /// 503: no policy set is active.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "not_ready",
            "the gateway has no active policy set".into(),
        )
    }

    /// 503: the request's audit record could not be written, so it is not answered.
    pub fn audit_unavailable(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "audit_unavailable",
            format!(
                "the request could not be recorded in the audit log, so it is refused: {reason}"
            ),
        )
    }

    /// 400 `policy_violation`: a policy refused the request or the response. The
    /// message names the policies and categories, never the text.
    pub fn policy_violation(
        what: &str,
        reasons: &[&Reported],
        generation: u64,
        request_id: &str,
    ) -> Self {
        let named: Vec<String> = reasons
            .iter()
            .map(|r| format!("{} ({})", r.policy, r.category))
            .collect();
        let message = if named.is_empty() {
            format!("the {what} was refused by policy")
        } else {
            format!("the {what} was refused by policy: {}", named.join(", "))
        };
        ApiError {
            details: Some(Box::new(json!({
                "request_id": request_id,
                "generation": generation,
                "findings": reasons.iter().map(|r| json!({
                    "policy": r.policy,
                    "category": r.category,
                    "severity": r.severity,
                })).collect::<Vec<_>>(),
            }))),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "policy_violation",
                message,
            )
        }
    }

    /// The error object (also sent as the last event of a stopped stream).
    pub fn body(&self) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            error["portcullis"] = (**details).clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The enforced findings of the policies that refused (denied, or failed with
/// `on_error = "deny"`), one per policy and category.
pub fn deny_reasons(decision: &Decision) -> Vec<&Reported> {
    let deciders: std::collections::BTreeSet<&str> = decision
        .runs
        .iter()
        .filter(|r| r.mode == Mode::Enforce)
        .filter(|r| {
            r.verdict == Some("deny") || !matches!(r.outcome, Outcome::Ok | Outcome::Skipped)
        })
        .map(|r| r.policy.as_str())
        .collect();
    distinct(
        decision
            .findings
            .iter()
            .filter(|f| f.enforced && deciders.contains(f.policy.as_str())),
    )
}

/// One finding per policy and category.
pub fn distinct<'a>(findings: impl Iterator<Item = &'a Reported>) -> Vec<&'a Reported> {
    let mut seen = std::collections::BTreeSet::new();
    findings
        .filter(|f| seen.insert((f.policy.clone(), f.category.clone())))
        .collect()
}

/// The field a payload error names (`messages[0].role must ...` → `messages[0].role`).
fn field_of(message: &str) -> Option<String> {
    let first = message.split_whitespace().next()?;
    let first = first.trim_matches('"');
    let looks_like_field = first
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
        && first.chars().any(|c| c == '.' || c == '[' || c == '_')
        || matches!(first, "messages" | "tools" | "model" | "stream");
    looks_like_field.then(|| first.to_string())
}
