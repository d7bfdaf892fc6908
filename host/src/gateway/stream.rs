//! Streamed responses (`stream: true`): the upstream's chunks are relayed as
//! Server-Sent Events, with each choice's text going through the output filters'
//! streaming instances first.
//!
//! * Text is sent as soon as the filters release it, held back only as long as their
//!   windows need (a secret split across chunks is still redacted).
//! * Tool-call deltas are collected until their choice finishes, then authorized as
//!   whole calls; only allowed calls are sent (refused ones dropped, or the stream
//!   stopped, per `on_denied_call`).
//! * A stream that must stop ends with a well-formed error event (the OpenAI error
//!   object, `code: policy_violation` or an upstream error) and `[DONE]`. Nothing is
//!   sent unscanned; a filter failure stops the stream.
//! * A client that disconnects drops the relay, which drops the upstream request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::chat::{Admitted, log_decision, reported_tokens};
use super::error::{ApiError, distinct};
use super::trail::Trail;
use super::upstream::Chunks;
use super::{Gateway, set_generation, tokens};
use crate::bindings::ToolCall;
use crate::config::Stage;
use crate::observe::record::Tokens;
use crate::openai::{self, ModelResponse};
use crate::pipeline::{OutputStream, StreamStep};

/// Start the upstream stream and relay it. Errors before the first byte are ordinary
/// HTTP errors. The request is recorded when the stream ends, before its last event.
pub(super) async fn respond(gw: &Arc<Gateway>, mut admitted: Admitted, trail: Trail) -> Response {
    let upstream = async {
        gw.upstream
            .stream(&admitted.body, &trail.traceparent())
            .await
    };
    let chunks = match upstream.instrument(tracing::info_span!("upstream")).await {
        Ok(chunks) => chunks,
        Err(e) => {
            admitted.settle(|a| e.tokens_spent(a.prompt_tokens));
            return trail.release(gw, Err(e.to_api())).await;
        }
    };
    let generation = admitted.snapshot.generation();
    let (tx, mut rx) = mpsc::channel::<String>(32);
    let relay = Relay {
        gw: gw.clone(),
        trail,
        tx,
        admitted,
        choices: BTreeMap::new(),
        usage: None,
        tokens: None,
        generated: 0,
    };
    tokio::spawn(relay.run(chunks).instrument(tracing::Span::current()));
    let events = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    set_generation(&mut response, generation);
    response
}

struct Relay {
    gw: Arc<Gateway>,
    trail: Trail,
    tx: mpsc::Sender<String>,
    admitted: Admitted,
    choices: BTreeMap<u64, ChoiceState>,
    /// The upstream's reported `usage.total_tokens`.
    usage: Option<u64>,
    /// The upstream's reported prompt and completion tokens.
    tokens: Option<Tokens>,
    /// Completion tokens counted in the upstream's text so far.
    generated: u64,
}

#[derive(Default)]
struct ChoiceState {
    filter: Option<OutputStream>,
    /// Tool calls being streamed, by their index: id, name, arguments so far.
    calls: BTreeMap<u64, (String, String, String)>,
    finished: bool,
}

/// Why the relay stops early.
enum Ended {
    /// The stream must end with this error event.
    Stopped(ApiError),
    /// The client is gone.
    Gone,
}

impl Relay {
    /// Relay the whole stream; settle the budget reservation (the upstream's usage
    /// when it reported one, else the prompt plus the tokens counted in what it
    /// generated, up to a hang-up, which cancels the upstream); record the request;
    /// then send the last event (`[DONE]`, or the error that ended the stream).
    async fn run(mut self, chunks: Chunks) {
        let end = self.relay_all(chunks).await;
        let (usage, generated) = (self.usage, self.generated);
        self.admitted
            .settle(|a| usage.unwrap_or(a.prompt_tokens + generated));
        let generation = self.admitted.snapshot.generation();
        for state in self.choices.values() {
            if let Some(filter) = &state.filter {
                let decision = filter.decision(generation);
                self.trail.stage(
                    &self.gw,
                    "output",
                    &self.admitted.snapshot,
                    &decision,
                    |_| None,
                );
            }
        }
        if let Some(tokens) = self.tokens {
            self.trail.tokens(tokens);
        }
        let code = match &end {
            Ok(()) => None,
            Err(Ended::Stopped(e)) => Some(e.code),
            Err(Ended::Gone) => Some("client_gone"),
        };
        let Relay { gw, trail, tx, .. } = self;
        let finished = trail.finish(&gw, axum::http::StatusCode::OK, code);
        let end = match finished.record(&gw).await {
            Ok(()) => end,
            Err(e) => Err(Ended::Stopped(ApiError::audit_unavailable(e))),
        };
        let last = match end {
            Ok(()) => Vec::new(),
            Err(Ended::Stopped(e)) => vec![e.body().to_string()],
            Err(Ended::Gone) => return,
        };
        for event in last.into_iter().chain(["[DONE]".to_string()]) {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }

    async fn relay_all(&mut self, mut chunks: Chunks) -> Result<(), Ended> {
        let mut template = Value::Null;
        loop {
            let chunk = match chunks.next().await {
                None => break,
                Some(Err(e)) => return self.stop(e.to_api()),
                Some(Ok(chunk)) => chunk,
            };
            if template.is_null() {
                self.trail
                    .upstream_model(chunk["model"].as_str().unwrap_or_default());
            }
            template = chunk.clone();
            self.relay(chunk).await?;
        }
        // The upstream ended without finishing some choices: finish them now.
        let open: Vec<u64> = self
            .choices
            .iter()
            .filter(|(_, c)| !c.finished)
            .map(|(i, _)| *i)
            .collect();
        for index in open {
            self.finish_choice(&template, index, Value::Null).await?;
        }
        Ok(())
    }

    async fn send(&mut self, value: &Value) -> Result<(), Ended> {
        self.tx
            .send(value.to_string())
            .await
            .map_err(|_| Ended::Gone)
    }

    /// End the stream with `error` (its event is sent once the request is recorded).
    fn stop(&mut self, error: ApiError) -> Result<(), Ended> {
        tracing::warn!(request_id = %self.admitted.request.context.request_id, code = error.code, "stream stopped: {}", error.message);
        Err(Ended::Stopped(error))
    }

    fn refuse(
        &mut self,
        policy: &str,
        findings: &[crate::pipeline::Reported],
    ) -> Result<(), Ended> {
        let reasons = distinct(findings.iter());
        let mut error = ApiError::policy_violation(
            "response",
            &reasons,
            self.admitted.snapshot.generation(),
            &self.admitted.request.context.request_id,
        );
        if reasons.is_empty() && !policy.is_empty() {
            error.message = format!("the response was refused by policy: {policy}");
        }
        self.stop(error)
    }

    /// Relay one upstream chunk.
    async fn relay(&mut self, chunk: Value) -> Result<(), Ended> {
        if let Some(total) = chunk["usage"]["total_tokens"].as_u64() {
            self.usage = Some(total);
            self.tokens = reported_tokens(&chunk["usage"]);
        }
        // Generated tokens are counted only to settle a budget the upstream reports no
        // usage for.
        if self.admitted.reservation.is_some() && self.usage.is_none() {
            for c in chunk["choices"].as_array().into_iter().flatten() {
                let delta = &c["delta"];
                let calls = delta["tool_calls"].as_array().into_iter().flatten();
                self.generated += tokens::count(delta["content"].as_str().unwrap_or_default())
                    + calls
                        .map(|call| {
                            tokens::count(
                                call["function"]["arguments"].as_str().unwrap_or_default(),
                            )
                        })
                        .sum::<u64>();
            }
        }
        let has_usage = chunk.get("usage").is_some_and(|u| !u.is_null());
        let Some(choices) = chunk["choices"].as_array().filter(|c| !c.is_empty()) else {
            // Usage (or other choice-less) chunks pass as they are; the usage chunk only
            // when the client asked for it.
            if has_usage && !self.admitted.wants_usage {
                return Ok(());
            }
            return self.send(&chunk).await;
        };
        for choice in choices.clone() {
            let index = choice["index"].as_u64().unwrap_or(0);
            self.ensure_filter(index).await?;
            let delta = &choice["delta"];
            let mut out = delta.clone();
            if let Some(out) = out.as_object_mut() {
                out.remove("content");
                out.remove("tool_calls");
            }
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                let state = self.choices.get_mut(&index).expect("opened above");
                let filter = state.filter.as_mut().expect("opened above");
                match filter.push(text).await {
                    StreamStep::Emit(released) => {
                        if !released.is_empty() {
                            out["content"] = Value::String(released);
                        }
                    }
                    StreamStep::Stop { policy, findings } => {
                        return self.refuse(&policy, &findings);
                    }
                }
            } else if delta.get("content").is_some_and(|c| c == "") {
                out["content"] = Value::String(String::new());
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let state = self.choices.get_mut(&index).expect("opened above");
                let slot = state
                    .calls
                    .entry(call["index"].as_u64().unwrap_or(0))
                    .or_default();
                if let Some(id) = call["id"].as_str() {
                    slot.0 = id.to_string();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    slot.1.push_str(name);
                }
                if let Some(arguments) = call["function"]["arguments"].as_str() {
                    slot.2.push_str(arguments);
                }
            }
            if out.as_object().is_some_and(|o| !o.is_empty()) {
                self.send(&with_choice(&chunk, index, out, Value::Null))
                    .await?;
            }
            let finish = choice["finish_reason"].clone();
            if !finish.is_null() {
                self.finish_choice(&chunk, index, finish).await?;
            }
        }
        if has_usage && self.admitted.wants_usage {
            let mut usage = chunk.clone();
            usage["choices"] = json!([]);
            self.send(&usage).await?;
        }
        Ok(())
    }

    async fn ensure_filter(&mut self, index: u64) -> Result<(), Ended> {
        if self.choices.get(&index).is_some_and(|c| c.filter.is_some()) {
            return Ok(());
        }
        let context = &self.admitted.request.context;
        match self
            .admitted
            .snapshot
            .open_output_stream(context, index as u32)
            .await
        {
            Ok(filter) => {
                self.choices.entry(index).or_default().filter = Some(filter);
                Ok(())
            }
            Err(StreamStep::Stop { policy, findings }) => self.refuse(&policy, &findings),
            // Not produced by open_output_stream; fail closed all the same.
            Err(StreamStep::Emit(_)) => self.refuse("", &[]),
        }
    }

    /// The choice ended: release what the filters hold back, authorize the collected
    /// tool calls, then forward the finish.
    async fn finish_choice(
        &mut self,
        chunk: &Value,
        index: u64,
        finish: Value,
    ) -> Result<(), Ended> {
        self.ensure_filter(index).await?;
        let state = self.choices.get_mut(&index).expect("opened above");
        state.finished = true;
        let filter = state.filter.as_mut().expect("opened above");
        match filter.finish().await {
            StreamStep::Emit(rest) => {
                if !rest.is_empty() {
                    self.send(&with_choice(
                        chunk,
                        index,
                        json!({"content": rest}),
                        Value::Null,
                    ))
                    .await?;
                }
            }
            StreamStep::Stop { policy, findings } => return self.refuse(&policy, &findings),
        }
        let state = self.choices.get_mut(&index).expect("opened above");
        let calls = std::mem::take(&mut state.calls);
        let mut finish = finish;
        if !calls.is_empty() {
            let allowed = self.authorize(index, calls).await?;
            if allowed.is_empty() {
                if finish == "tool_calls" {
                    finish = Value::from("stop");
                }
            } else {
                self.send(&with_choice(
                    chunk,
                    index,
                    json!({"tool_calls": allowed}),
                    Value::Null,
                ))
                .await?;
            }
        }
        if !finish.is_null() {
            self.send(&with_choice(chunk, index, json!({}), finish))
                .await?;
        }
        Ok(())
    }

    /// Authorize whole tool calls; returns the allowed ones as stream deltas.
    async fn authorize(
        &mut self,
        choice: u64,
        calls: BTreeMap<u64, (String, String, String)>,
    ) -> Result<Vec<Value>, Ended> {
        let a = &self.admitted;
        let response = ModelResponse {
            model: String::new(),
            texts: Vec::new(),
            calls: calls
                .values()
                .map(|(id, name, arguments)| {
                    let (server, name) = openai::split_tool_name(name);
                    (
                        choice as usize,
                        ToolCall {
                            id: id.clone(),
                            server,
                            name,
                            arguments: arguments.clone(),
                        },
                    )
                })
                .collect(),
        };
        let decision = a
            .snapshot
            .check_response(&a.request.context, &a.offered, &response, Some(Stage::Tool))
            .await;
        let context = &a.request.context;
        log_decision("calls", &context.request_id, &context.client_id, &decision);
        self.trail
            .stage(&self.gw, "calls", &a.snapshot, &decision, |_| None);
        if !decision.denied_calls.is_empty()
            && self.gw.settings.on_denied_call == super::settings::DeniedCall::Deny
        {
            let refusal = super::chat::refused("response", &decision, &context.request_id);
            self.stop(refusal)?;
        }
        Ok(calls
            .into_iter()
            .enumerate()
            .filter(|(position, _)| !decision.denied_calls.contains(position))
            .enumerate()
            .map(|(n, (_, (_, (id, name, arguments))))| {
                json!({"index": n, "id": id, "type": "function",
                       "function": {"name": name, "arguments": arguments}})
            })
            .collect())
    }
}

/// `chunk` with only choice `index`, carrying `delta` and `finish_reason`.
fn with_choice(chunk: &Value, index: u64, delta: Value, finish: Value) -> Value {
    let mut out = chunk.clone();
    if let Some(obj) = out.as_object_mut() {
        obj.remove("usage");
    }
    out["choices"] = json!([{"index": index, "delta": delta, "finish_reason": finish}]);
    out
}
