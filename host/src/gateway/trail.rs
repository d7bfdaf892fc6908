//! The audit trail of one request through the gateway: built as the request goes,
//! recorded before its response is released.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::Span;
use tracing::field::Empty;

use super::Gateway;
use super::error::ApiError;
use crate::observe::drift::Features;
use crate::observe::record::{RequestOutcome, RequestRecord, Tokens};
use crate::observe::timestamp;
use crate::observe::trace::TraceContext;
use crate::pipeline::{Action, Decision, Pipeline};

/// What is known so far about a request.
pub(super) struct Trail {
    started: Instant,
    trace: TraceContext,
    record: RequestRecord,
    modified: bool,
    upstream_model: Option<String>,
    features: Option<Features>,
    template: Option<u64>,
    /// The verdict a check endpoint answered with (200 whatever the verdict).
    answered: Option<Action>,
}

impl Trail {
    /// A request to `endpoint` (`chat`, `check/input`, ...) has arrived, carrying
    /// the client's `traceparent` if any. Returns the trail and the request's span
    /// (part of the client's trace when spans are exported); run the request in it.
    pub fn new(endpoint: &str, request_id: &str, traceparent: Option<&str>) -> (Trail, Span) {
        let span = tracing::info_span!(
            "request",
            request_id,
            endpoint,
            client = Empty,
            model = Empty,
            trace_id = Empty,
            status = Empty,
            outcome = Empty,
        );
        let trace = TraceContext::from_header(traceparent);
        let trace_id = trace.attach(&span);
        span.record("trace_id", trace_id.as_str());
        let trail = Trail {
            started: Instant::now(),
            trace,
            record: RequestRecord {
                time: timestamp(),
                request_id: request_id.to_string(),
                endpoint: endpoint.to_string(),
                trace_id: Some(trace_id),
                ..RequestRecord::default()
            },
            modified: false,
            upstream_model: None,
            features: None,
            template: None,
            answered: None,
        };
        (trail, span)
    }

    /// The `traceparent` for an upstream call made in the current span.
    pub fn traceparent(&self) -> String {
        self.trace.outgoing()
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// The authenticated client.
    pub fn client(&mut self, client: &str) {
        Span::current().record("client", client);
        self.record.client = client.to_string();
    }

    /// The requested model and whether a stream was asked for.
    pub fn request(&mut self, model: &str, stream: bool) {
        Span::current().record("model", model);
        self.record.model = model.to_string();
        self.record.stream = stream;
    }

    /// The model the upstream says answered (prices are by this name).
    pub fn upstream_model(&mut self, model: &str) {
        if !model.is_empty() {
            self.upstream_model = Some(model.to_string());
        }
    }

    /// A stage decided; `text_of(index)` gives the text a finding's span refers to.
    pub fn stage<'a>(
        &mut self,
        gw: &Gateway,
        name: &str,
        snapshot: &Pipeline,
        decision: &Decision,
        text_of: impl Fn(u32) -> Option<&'a str>,
    ) {
        self.record.generation = decision.generation;
        if decision.verdict == Action::Modify
            || !decision.denied_tools.is_empty()
            || !decision.denied_calls.is_empty()
        {
            self.modified = true;
        }
        let stage = gw
            .observer
            .stage(name, decision, |digest| snapshot.signers(digest), text_of);
        self.record.stages.push(stage);
    }

    /// The request's input features (drift monitoring) and prompt template (model
    /// extraction alerts).
    pub fn features(&mut self, features: Features, template: u64) {
        self.features = Some(features);
        self.template = Some(template);
    }

    /// A check endpoint answered with this verdict.
    pub fn answered(&mut self, verdict: Action) {
        self.answered = Some(verdict);
    }

    /// Token usage, when known.
    pub fn tokens(&mut self, tokens: Tokens) {
        self.record.tokens = Some(tokens);
    }

    /// The finished record (status, outcome, cost and latency) and the features.
    pub fn finish(mut self, gw: &Gateway, status: StatusCode, code: Option<&str>) -> Finished {
        let r = &mut self.record;
        r.status = status.as_u16();
        r.outcome = match code {
            None if self.answered == Some(Action::Deny) => RequestOutcome::Denied,
            None if self.modified || self.answered == Some(Action::Modify) => {
                RequestOutcome::Modified
            }
            None if status.is_client_error() || status.is_server_error() => RequestOutcome::Invalid,
            None => RequestOutcome::Allowed,
            Some("policy_violation") => RequestOutcome::Denied,
            Some("rate_limit_exceeded") => RequestOutcome::RateLimited,
            Some("invalid_api_key") => RequestOutcome::Unauthorized,
            Some("client_gone") => RequestOutcome::Abandoned,
            Some(c) if c.starts_with("upstream") => RequestOutcome::UpstreamError,
            Some(_) if status.is_client_error() => RequestOutcome::Invalid,
            Some(_) => RequestOutcome::UpstreamError,
        };
        if let Some(tokens) = r.tokens {
            let model = self.upstream_model.as_deref().unwrap_or(&r.model);
            r.cost_usd = gw.observer.cost(model, tokens);
        }
        r.latency_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let span = Span::current();
        span.record("status", r.status);
        span.record("outcome", r.outcome.name());
        Finished {
            record: self.record,
            features: self.features,
            template: self.template,
        }
    }

    /// Record the request, then release `result` — or, when the record cannot be
    /// written, a 503 instead: nothing is answered that the audit log does not hold.
    pub async fn release(self, gw: &Gateway, result: Result<Response, ApiError>) -> Response {
        let (status, code) = match &result {
            Ok(response) => (response.status(), None),
            Err(e) => (e.status, Some(e.code)),
        };
        match self.finish(gw, status, code).record(gw).await {
            Ok(()) => result.unwrap_or_else(IntoResponse::into_response),
            Err(e) => ApiError::audit_unavailable(e).into_response(),
        }
    }
}

/// A finished trail.
pub(super) struct Finished {
    record: RequestRecord,
    features: Option<Features>,
    template: Option<u64>,
}

impl Finished {
    /// Hand the record to the observer (metrics, alerts, drift, audit log).
    pub async fn record(self, gw: &Gateway) -> Result<(), crate::observe::audit::AuditError> {
        gw.observer
            .record(&self.record, self.features, self.template)
            .await
    }
}
