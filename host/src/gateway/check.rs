//! The check API, for gateways that keep their own proxy:
//!
//! * `POST /v1/check/input`, `/v1/check/tool`, `/v1/check/output`: the same JSON as a
//!   `portcullis check` line (a Chat Completions request, or a response with the
//!   offered `tools`); the answer is the decision (`verdict`, `findings`, `policies`,
//!   `modified`, ...), always 200 when the payload could be checked.
//! * `POST /v1/check/auth`: an authorization subrequest (NGINX `auth_request`, Envoy
//!   `ext_authz` over HTTP). The body is the original chat request; the answer is 200
//!   when the input guardrails and the tool sandbox allow it, 403 otherwise. A
//!   `modify` verdict cannot be applied by the proxy, so it is 403 too unless the
//!   subrequest asks `?on_modify=allow`. A body that cannot be checked is 403: the
//!   proxy must not forward what was not checked. A refusal's body is the OpenAI-style
//!   error the gateway itself would answer; the headers `x-portcullis-verdict`,
//!   `x-portcullis-request-id` and `x-portcullis-generation` carry the outcome.
//!
//!   NGINX's own `auth_request` sends subrequests without the request body, so it can
//!   check headers only; with the Lua module, `access_by_lua_block` can send the body
//!   (`ngx.location.capture(..., {method = ngx.HTTP_POST, always_forward_body =
//!   true})`), as the end-to-end test and the README show.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Gateway;
use super::chat::{log_decision, read_json, refused, request_id};
use super::error::{ApiError, distinct};
use super::trail::Trail;
use crate::check::check_payload;
use crate::config::Stage;
use crate::pipeline::Action;
use tracing::Instrument as _;

/// `POST /v1/check/{stage}`.
pub(super) async fn stage(
    State(gw): State<Arc<Gateway>>,
    Path(stage): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let stage = match stage.as_str() {
        "input" => Stage::Input,
        "tool" => Stage::Tool,
        "output" => Stage::Output,
        other => {
            return ApiError::not_found(format!(
                "no check endpoint {other:?}: use input, tool, output or auth"
            ))
            .into_response();
        }
    };
    let id = request_id(&headers);
    let endpoint = format!("check/{}", stage.name());
    let (mut trail, span) = Trail::new(&endpoint, &id, traceparent(&headers));
    async {
        let result = async {
            let client = gw.clients.identify(&headers)?;
            trail.client(&client);
            let body = read_json(&gw, &headers, body).await?;
            trail.request(body["model"].as_str().unwrap_or_default(), false);
            let snapshot = gw.host.snapshot();
            let checked = check_payload(&snapshot, body, Some(stage), &id, &client)
                .await
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            log_decision(stage.name(), &id, &client, &checked.decision);
            trail.stage(&gw, stage.name(), &snapshot, &checked.decision, |_| None);
            trail.answered(checked.decision.verdict);
            Ok::<_, ApiError>(axum::Json(checked.json).into_response())
        }
        .await;
        trail.release(&gw, result).await
    }
    .instrument(span)
    .await
}

fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

#[derive(Deserialize)]
pub(super) struct AuthQuery {
    #[serde(default)]
    on_modify: Option<String>,
}

/// `POST /v1/check/auth`.
pub(super) async fn auth(
    State(gw): State<Arc<Gateway>>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = request_id(&headers);
    let (mut trail, span) = Trail::new("check/auth", &id, traceparent(&headers));
    async {
        let response = match gw.clients.identify(&headers) {
            Ok(client) => {
                trail.client(&client);
                Ok(authorize(&gw, &headers, body, &query, &id, &client, &mut trail).await)
            }
            Err(e) => Err(e),
        };
        trail.release(&gw, response).await
    }
    .instrument(span)
    .await
}

/// The authorization answer for an authenticated subrequest.
async fn authorize(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    query: &AuthQuery,
    id: &str,
    client: &str,
    trail: &mut Trail,
) -> Response {
    let snapshot = gw.host.snapshot();
    let checked = match read_json(gw, headers, body).await {
        Ok(body) => {
            trail.request(body["model"].as_str().unwrap_or_default(), false);
            check_payload(&snapshot, body, None, id, client)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.message),
    };
    // A refusal's body is the OpenAI-style error a client would get from the gateway
    // (a proxy may pass it on); an allowed request gets the verdict.
    let (status, verdict, generation, body) = match checked {
        Err(reason) => {
            let mut e = ApiError::invalid(format!("the request could not be checked: {reason}"));
            e.code = "policy_unchecked";
            (StatusCode::FORBIDDEN, "unchecked", None, e.body())
        }
        Ok(checked) => {
            let decision = &checked.decision;
            log_decision("auth", id, client, decision);
            trail.stage(gw, "input", &snapshot, decision, |_| None);
            trail.answered(decision.verdict);
            let generation = Some(decision.generation);
            let on_modify_allowed = query.on_modify.as_deref() == Some("allow");
            match decision.verdict {
                Action::Allow => (
                    StatusCode::OK,
                    "allow",
                    generation,
                    json!({"verdict": "allow"}),
                ),
                Action::Modify if on_modify_allowed => (
                    StatusCode::OK,
                    "modify",
                    generation,
                    json!({"verdict": "modify"}),
                ),
                Action::Modify => {
                    let reasons = distinct(decision.findings.iter().filter(|f| f.enforced));
                    let mut e =
                        ApiError::policy_violation("request", &reasons, decision.generation, id);
                    e.message = format!(
                        "{}; the request needs rewriting, which an authorization subrequest \
                         cannot apply",
                        e.message
                    );
                    (StatusCode::FORBIDDEN, "modify", generation, e.body())
                }
                Action::Deny => {
                    let e = refused("request", decision, id);
                    (StatusCode::FORBIDDEN, "deny", generation, e.body())
                }
            }
        }
    };
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-portcullis-verdict", HeaderValue::from_static(verdict));
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-portcullis-request-id", v);
    }
    if let Some(generation) = generation {
        headers.insert("x-portcullis-generation", HeaderValue::from(generation));
    }
    response
}
