//! The HTTP gateway (`portcullis serve`): an OpenAI-compatible endpoint that runs every
//! request and response through the active policy set.
//!
//! * `POST /v1/chat/completions`: input guardrails on every message → tool sandbox on
//!   the offered tools → upstream → tool sandbox on the tool calls → output filters
//!   (streamed through the filters' streaming instances when `stream: true`);
//! * `GET /v1/models`: the upstream's models (the mock's name without an upstream);
//! * `POST /v1/check/{input,tool,output}` and `/v1/check/auth`: the check API for other
//!   gateways (see `gateway/check.rs`);
//! * `GET /healthz`: the process is up; `GET /readyz`: a policy set is active and none
//!   of its policies is deactivated (503 with the names otherwise).
//!
//! `[gateway]` is read when the gateway starts (changing it takes a restart); the
//! policies hot-reload as usual.

pub mod auth;
pub mod budget;
mod chat;
mod check;
pub mod error;
pub mod mock;
pub mod settings;
mod stream;
pub mod tokens;
mod trail;
pub mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::lifecycle::PolicyHost;
use crate::observe::Observer;
use auth::Clients;
use error::ApiError;
use settings::GatewaySection;
use upstream::Upstream;

/// The gateway's shared state.
pub struct Gateway {
    host: Arc<PolicyHost>,
    upstream: Upstream,
    clients: Clients,
    budgets: Arc<budget::Budgets>,
    settings: GatewaySection,
    observer: Arc<Observer>,
}

impl Gateway {
    /// A gateway over `host`, configured by the `[gateway]` and `[audit]` sections of
    /// the host's configuration. Fails when a key named by an environment variable is
    /// missing or the audit log cannot be opened.
    pub fn new(host: Arc<PolicyHost>) -> Result<Gateway, String> {
        let config = host.config();
        let settings = config.gateway.clone();
        let observer = Arc::new(Observer::new(&config)?);
        let budgets = budget::Budgets::from_settings(&settings);
        if settings.upstream.is_none() || settings.clients.iter().any(|c| budgets.applies_to(&c.id))
        {
            // The tokenizer loads on first use (~0.1 s): not on a client's first request.
            tokens::count("");
        }
        let listener = observer.clone();
        host.on_event(Box::new(move |event, fields| {
            listener.lifecycle(event, fields)
        }));
        Ok(Gateway {
            observer,
            upstream: Upstream::from_settings(&settings)?,
            clients: Clients::from_settings(&settings)?,
            budgets: Arc::new(budgets),
            settings,
            host,
        })
    }

    /// The audit log, metrics and alerts.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Whether requests go to the embedded mock model.
    pub fn uses_mock(&self) -> bool {
        matches!(self.upstream, Upstream::Mock(_))
    }

    /// The routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat::completions))
            .route("/v1/models", get(models))
            .route("/v1/check/auth", post(check::auth))
            .route("/v1/check/{stage}", post(check::stage))
            .route(
                "/healthz",
                get(|| async { axum::Json(json!({"status": "ok"})) }),
            )
            .route("/readyz", get(ready))
            .route("/metrics", get(metrics))
            .route("/v1/drift", get(drift))
            .with_state(self)
    }
}

/// Serve `gateway` on `listener` until `shutdown` completes and the requests in
/// flight are answered; then close the audit log.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(no_delay(listener), gateway.clone().router())
        .with_graceful_shutdown(shutdown)
        .await;
    gateway.observer.close();
    result
}

/// Accepted connections with Nagle's algorithm off: a stream's small event writes must
/// not wait for the client's delayed ACK (~40 ms each otherwise).
pub(crate) fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
    })
}

async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(e) = gw.clients.identify(&headers) {
        return e.into_response();
    }
    match gw.upstream.models().await {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => e.to_api().into_response(),
    }
}

/// `GET /v1/drift`: input drift, current window against the baseline (API key
/// required: the report names policies).
async fn drift(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(e) = gw.clients.identify(&headers) {
        return e.into_response();
    }
    axum::Json(gw.observer.drift()).into_response()
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    // Refresh the drift gauges.
    gw.observer.drift();
    let snapshot = gw.host.snapshot();
    let deactivated = snapshot
        .entries()
        .iter()
        .filter(|e| e.deactivated.is_some())
        .count();
    let body = gw.observer.metrics().render(&gw.host.status(), deactivated);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let snapshot = gw.host.snapshot();
    let deactivated: Vec<&str> = snapshot
        .entries()
        .iter()
        .filter(|e| e.deactivated.is_some())
        .map(|e| e.policy.name())
        .collect();
    if snapshot.generation() == 0 || !deactivated.is_empty() {
        let mut e = ApiError::not_ready();
        if !deactivated.is_empty() {
            e.message = format!(
                "policies deactivated (they no longer verify; their stages deny): {}",
                deactivated.join(", ")
            );
        }
        return e.into_response();
    }
    let mut response = axum::Json(json!({
        "status": "ready",
        "generation": snapshot.generation(),
        "policies": snapshot.entries().len(),
    }))
    .into_response();
    set_generation(&mut response, snapshot.generation());
    response
}

fn set_generation(response: &mut Response, generation: u64) {
    response
        .headers_mut()
        .insert("x-portcullis-generation", HeaderValue::from(generation));
}
