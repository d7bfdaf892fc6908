//! `POST /v1/chat/completions`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument as _;

use super::budget::Reservation;
use super::error::{ApiError, deny_reasons};
use super::settings::{DeniedCall, DeniedTool};
use super::trail::Trail;
use super::{Gateway, set_generation, stream, tokens};
use crate::bindings::{ChatRequest, ToolDefinition};
use crate::config::Stage;
use crate::observe::record::Tokens;
use crate::openai;
use crate::pipeline::{Action, Pipeline};

/// A request admitted and checked on the way in, ready for the upstream.
pub(super) struct Admitted {
    /// The body to send upstream (redacted, refused tools removed).
    pub body: Value,
    /// The parsed request (its context names the request and client).
    pub request: ChatRequest,
    /// The tools still offered.
    pub offered: Vec<ToolDefinition>,
    /// The policy set used from start to end.
    pub snapshot: Arc<Pipeline>,
    /// Prompt tokens of the body as sent (counted for clients with a budget only).
    pub prompt_tokens: u64,
    /// The client's budget reservation, if it has a budget.
    pub reservation: Option<Reservation>,
    /// The client asked for a usage chunk at the end of a stream (the gateway always
    /// asks the upstream for one, to record tokens and cost).
    pub wants_usage: bool,
}

impl Admitted {
    /// Settle the budget reservation, if any, to the `used` tokens (computed only then).
    pub fn settle(&mut self, used: impl FnOnce(&Self) -> u64) {
        if self.reservation.is_some() {
            let used = used(self);
            if let Some(r) = self.reservation.take() {
                r.settle(used);
            }
        }
    }
}

pub(super) async fn completions(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = request_id(&headers);
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let (mut trail, span) = Trail::new("chat", &request_id, traceparent);
    let handled = async {
        match admit(&gw, &headers, body, &mut trail).await {
            Ok((admitted, true)) => stream::respond(&gw, admitted, trail).await,
            Ok((admitted, false)) => {
                let result = complete(&gw, admitted, &mut trail).await;
                trail.release(&gw, result).await
            }
            Err(e) => trail.release(&gw, Err(e)).await,
        }
    };
    let mut response = handled.instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Authenticate, read and parse the body, run the input stage and the tool stage on
/// the offered tools. Returns the admitted request and whether it asks for a stream.
async fn admit(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    trail: &mut Trail,
) -> Result<(Admitted, bool), ApiError> {
    let client = gw.clients.identify(headers)?;
    trail.client(&client);
    let mut body = read_json(gw, headers, body).await?;
    let stream = check_fields(&body)?;
    trail.request(body["model"].as_str().unwrap_or_default(), stream);
    let request = openai::parse_request(&body, trail.request_id(), &client)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let completion = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body[*k].as_u64());
    // Counting tokens costs a tokenizer pass over the prompt: only for budgets.
    let (prompt_tokens, reservation) = if gw.budgets.applies_to(&client) {
        let prompt = tokens::prompt_tokens(&body);
        let tokens = prompt + completion.unwrap_or(gw.settings.default_max_tokens);
        (prompt, gw.budgets.reserve(&client, tokens, unix_now())?)
    } else {
        (0, None)
    };
    if reservation.is_some() && completion.is_none() {
        // The reservation bounds the completion: make the upstream honour it.
        body["max_tokens"] = Value::from(gw.settings.default_max_tokens);
    }
    let wants_usage = body["stream_options"]["include_usage"] == true;
    if stream && !wants_usage {
        // Tokens and cost are recorded for every stream: ask for the usage chunk.
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    let mut admitted = Admitted {
        body,
        request,
        offered: Vec::new(),
        snapshot: gw.host.snapshot(),
        prompt_tokens,
        reservation,
        wants_usage,
    };
    match screen(gw, &mut admitted, trail).await {
        Ok(()) => Ok((admitted, stream)),
        Err(e) => {
            // Refused before the model saw it: nothing was spent.
            admitted.settle(|_| 0);
            Err(e)
        }
    }
}

/// The input stage on every message, then the tool stage on the offered tools.
async fn screen(gw: &Gateway, admitted: &mut Admitted, trail: &mut Trail) -> Result<(), ApiError> {
    let Admitted {
        body,
        request,
        offered,
        snapshot,
        ..
    } = admitted;
    let request_id = request.context.request_id.clone();
    let client = request.context.client_id.clone();

    let input = snapshot.check_request(request, Some(Stage::Input)).await;
    log_decision("input", &request_id, &client, &input);
    trail.stage(gw, "input", snapshot, &input, |i| {
        request.messages.get(i as usize).map(|m| m.content.as_str())
    });
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == crate::bindings::Role::User);
    trail.features(
        crate::observe::input_features(request, &input),
        crate::observe::alerts::template(last_user.map_or("", |m| m.content.as_str())),
    );
    if input.verdict == Action::Deny {
        return Err(refused("request", &input, &request_id));
    }
    for (index, text) in &input.modified {
        openai::set_message_content(body, *index, text);
    }

    *offered = request.tools.clone();
    if !offered.is_empty() {
        let tools = snapshot.check_request(request, Some(Stage::Tool)).await;
        log_decision("tools", &request_id, &client, &tools);
        trail.stage(gw, "tools", snapshot, &tools, |_| None);
        if !tools.denied_tools.is_empty() {
            if gw.settings.on_denied_tool == DeniedTool::Deny {
                return Err(refused("request", &tools, &request_id));
            }
            remove_tools(body, &tools.denied_tools);
            *offered = std::mem::take(offered)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !tools.denied_tools.contains(i))
                .map(|(_, t)| t)
                .collect();
        }
    }
    Ok(())
}

/// The request body as JSON, at most `[gateway] max_body_kb` (413 beyond).
pub(super) async fn read_json(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let limit_kb = gw.settings.max_body_kb;
    let limit = (limit_kb as usize) << 10;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit_kb));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            ApiError::too_large(limit_kb)
        } else {
            ApiError::invalid(format!("cannot read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))
}

/// A non-streaming call: upstream, then the tool stage on the calls and the output
/// stage on the texts.
async fn complete(
    gw: &Gateway,
    mut admitted: Admitted,
    trail: &mut Trail,
) -> Result<Response, ApiError> {
    let upstream = async {
        gw.upstream
            .complete(&admitted.body, &trail.traceparent())
            .await
    };
    let mut response = match upstream.instrument(tracing::info_span!("upstream")).await {
        Ok(response) => response,
        Err(e) => {
            admitted.settle(|a| e.tokens_spent(a.prompt_tokens));
            return Err(e.to_api());
        }
    };
    admitted.settle(|a| usage_of(&response, a.prompt_tokens));
    trail.upstream_model(response["model"].as_str().unwrap_or_default());
    if let Some(tokens) = reported_tokens(&response["usage"]) {
        trail.tokens(tokens);
    }
    let Admitted {
        request,
        offered,
        snapshot,
        ..
    } = admitted;
    let context = &request.context;
    let id = &context.request_id;
    let parsed = openai::parse_response(&response)
        .map_err(|e| ApiError::bad_gateway(format!("the upstream's response is not valid: {e}")))?;
    if !parsed.calls.is_empty() {
        let calls = snapshot
            .check_response(context, &offered, &parsed, Some(Stage::Tool))
            .await;
        log_decision("calls", id, &context.client_id, &calls);
        trail.stage(gw, "calls", &snapshot, &calls, |_| None);
        if !calls.denied_calls.is_empty() {
            if gw.settings.on_denied_call == DeniedCall::Deny {
                return Err(refused("response", &calls, id));
            }
            openai::remove_tool_calls(&mut response, &calls.denied_calls);
            mark_stopped_without_calls(&mut response);
        }
    }
    let parsed = openai::parse_response(&response)
        .map_err(|e| ApiError::bad_gateway(format!("the upstream's response is not valid: {e}")))?;
    let output = snapshot
        .check_response(context, &offered, &parsed, Some(Stage::Output))
        .await;
    log_decision("output", id, &context.client_id, &output);
    trail.stage(gw, "output", &snapshot, &output, |i| {
        parsed.texts.get(i as usize).map(String::as_str)
    });
    if output.verdict == Action::Deny {
        return Err(refused("response", &output, id));
    }
    for (choice, text) in &output.modified {
        openai::set_choice_content(&mut response, *choice, text);
    }
    let mut answer = axum::Json(response).into_response();
    set_generation(&mut answer, snapshot.generation());
    Ok(answer)
}

/// Tokens a response used: the upstream's `usage.total_tokens`, else the prompt plus
/// the counted completion text.
fn usage_of(response: &Value, prompt_tokens: u64) -> u64 {
    response["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| {
            let texts = response["choices"].as_array().into_iter().flatten();
            prompt_tokens
                + texts
                    .map(|c| tokens::count(c["message"]["content"].as_str().unwrap_or_default()))
                    .sum::<u64>()
        })
}

/// Prompt and completion tokens of an upstream `usage` object.
pub(super) fn reported_tokens(usage: &Value) -> Option<Tokens> {
    Some(Tokens {
        prompt: usage["prompt_tokens"].as_u64()?,
        completion: usage["completion_tokens"].as_u64()?,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The refusal for a denied decision.
pub(super) fn refused(what: &str, decision: &crate::pipeline::Decision, id: &str) -> ApiError {
    ApiError::policy_violation(what, &deny_reasons(decision), decision.generation, id)
}

/// Check the fields the gateway itself relies on; returns `stream`.
fn check_fields(body: &Value) -> Result<bool, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the request must be a JSON object"))?;
    if let Some(model) = obj.get("model")
        && !model.is_string()
    {
        return Err(ApiError::invalid("model must be a string"));
    }
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = obj.get(key)
            && !v.is_null()
            && !v.is_u64()
        {
            return Err(ApiError::invalid(format!(
                "{key} must be a non-negative integer"
            )));
        }
    }
    if let Some(tools) = obj.get("tools")
        && !tools.is_array()
        && !tools.is_null()
    {
        return Err(ApiError::invalid("tools must be an array"));
    }
    match obj.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid("stream must be a boolean")),
    }
}

/// Remove the offered tools at `indices`; with none left, the tool settings go too.
fn remove_tools(body: &mut Value, indices: &[usize]) {
    let mut removed_names = Vec::new();
    if let Some(tools) = body.get_mut("tools").and_then(Value::as_array_mut) {
        let mut i = 0;
        tools.retain(|t| {
            let keep = !indices.contains(&i);
            if !keep && let Some(name) = t["function"]["name"].as_str() {
                removed_names.push(name.to_string());
            }
            i += 1;
            keep
        });
    }
    let obj = body.as_object_mut().expect("checked to be an object");
    let none_left = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    let forced = obj
        .get("tool_choice")
        .and_then(|c| c["function"]["name"].as_str())
        .is_some_and(|n| removed_names.iter().any(|r| r == n));
    if none_left {
        for key in ["tools", "tool_choice", "parallel_tool_calls"] {
            obj.remove(key);
        }
    } else if forced {
        obj.remove("tool_choice");
    }
}

/// A choice whose tool calls were all dropped ends normally.
fn mark_stopped_without_calls(response: &mut Value) {
    for choice in response["choices"].as_array_mut().into_iter().flatten() {
        let calls_left = choice["message"]["tool_calls"]
            .as_array()
            .is_some_and(|c| !c.is_empty());
        if !calls_left {
            if let Some(message) = choice["message"].as_object_mut() {
                message.remove("tool_calls");
            }
            if choice["finish_reason"] == "tool_calls" {
                choice["finish_reason"] = Value::from("stop");
            }
        }
    }
}

/// The client's `x-request-id` when it is a sensible token, else a new random id.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(
            || {
                let mut bytes = [0u8; 12];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
                format!("req-{}", hex::encode(bytes))
            },
            str::to_string,
        )
}

pub(super) fn log_decision(
    stage: &str,
    request_id: &str,
    client: &str,
    decision: &crate::pipeline::Decision,
) {
    tracing::info!(
        request_id,
        client,
        stage,
        generation = decision.generation,
        verdict = ?decision.verdict,
        findings = decision.findings.len(),
        "decision"
    );
}
