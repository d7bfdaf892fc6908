//! The embedded mock model: a deterministic stand-in for an OpenAI-compatible server,
//! so the gateway works out of the box and tests are reproducible. It is not a language
//! model: it answers the last user message with the first `[gateway.mock]` rule whose
//! `when` text appears in it (case-insensitive), and otherwise echoes the message back
//! (`You said: ...`). A rule may also make a tool call. Streams are cut into chunks of
//! `chunk_chars` characters, so a match can straddle chunks. Token counts in `usage`
//! come from the same tokenizer the gateway uses for budgets.

use axum::Json;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::settings::{MockSection, MockToolCall};
use super::tokens;

/// The mock model.
#[derive(Debug, Clone)]
pub struct MockModel {
    settings: MockSection,
}

/// What the mock says to one request.
struct Answer {
    text: String,
    call: Option<MockToolCall>,
}

impl MockModel {
    /// A mock with these settings.
    pub fn new(settings: MockSection) -> MockModel {
        MockModel { settings }
    }

    /// The model name it reports.
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    fn answer(&self, body: &Value) -> Answer {
        let last_user = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            })
            .unwrap_or_default();
        let lower = last_user.to_lowercase();
        match self
            .settings
            .rules
            .iter()
            .find(|r| lower.contains(&r.when.to_lowercase()))
        {
            Some(rule) => Answer {
                text: rule.reply.clone(),
                call: rule.tool_call.clone(),
            },
            None => Answer {
                text: format!("You said: {last_user}"),
                call: None,
            },
        }
    }

    fn id(body: &Value) -> String {
        let digest = Sha256::digest(body.to_string().as_bytes());
        format!("chatcmpl-mock-{}", &hex::encode(digest)[..16])
    }

    fn model_for(&self, body: &Value) -> String {
        body["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.settings.model)
            .to_string()
    }

    fn usage(body: &Value, answer: &Answer) -> Value {
        let prompt = tokens::prompt_tokens(body);
        let completion = tokens::count(&answer.text)
            + answer
                .call
                .as_ref()
                .map_or(0, |c| tokens::count(&c.name) + tokens::count(&c.arguments));
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        })
    }

    /// A complete (non-streaming) Chat Completions response.
    pub fn complete(&self, body: &Value) -> Value {
        let answer = self.answer(body);
        let mut message = json!({"role": "assistant", "content": answer.text});
        if let Some(call) = &answer.call {
            message["tool_calls"] = json!([{
                "id": "call_mock_0",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }]);
            if answer.text.is_empty() {
                message["content"] = Value::Null;
            }
        }
        json!({
            "id": Self::id(body),
            "object": "chat.completion",
            "created": now(),
            "model": self.model_for(body),
            "choices": [{
                "index": 0,
                "message": message,
                "finish_reason": if answer.call.is_some() { "tool_calls" } else { "stop" },
            }],
            "usage": Self::usage(body, &answer),
        })
    }

    /// The chunks of a streamed response (`chat.completion.chunk` objects), the usage
    /// chunk last when `stream_options.include_usage` is set.
    pub fn chunks(&self, body: &Value) -> Vec<Value> {
        let answer = self.answer(body);
        let (id, model, created) = (Self::id(body), self.model_for(body), now());
        let chunk = |choices: Value| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            })
        };
        let delta = |delta: Value, finish: Value| {
            chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish}]))
        };
        let mut out = vec![delta(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let chars: Vec<char> = answer.text.chars().collect();
        for piece in chars.chunks(self.settings.chunk_chars) {
            let text: String = piece.iter().collect();
            out.push(delta(json!({"content": text}), Value::Null));
        }
        if let Some(call) = &answer.call {
            // Name first, then the arguments in two halves, as real servers stream them.
            out.push(delta(
                json!({"tool_calls": [{"index": 0, "id": "call_mock_0", "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}),
                Value::Null,
            ));
            let mid = (0..=call.arguments.len() / 2)
                .rev()
                .find(|i| call.arguments.is_char_boundary(*i))
                .unwrap_or(0);
            for part in [&call.arguments[..mid], &call.arguments[mid..]] {
                out.push(delta(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        let finish = if answer.call.is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        out.push(delta(json!({}), json!(finish)));
        if body["stream_options"]["include_usage"] == true {
            let mut last = chunk(json!([]));
            last["usage"] = Self::usage(body, &answer);
            out.push(last);
        }
        out
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> Value {
        json!({
            "object": "list",
            "data": [{"id": self.settings.model, "object": "model", "created": 0, "owned_by": "portcullis"}],
        })
    }

    /// The HTTP answer to a `POST /v1/chat/completions` body: a JSON response, or an
    /// SSE stream ending with `[DONE]` when the body asks for `stream: true`.
    pub fn respond(&self, body: &Value) -> axum::response::Response {
        if body["stream"] == true {
            let events = self
                .chunks(body)
                .into_iter()
                .map(|c| Event::default().data(c.to_string()))
                .chain(std::iter::once(Event::default().data("[DONE]")))
                .map(Ok::<_, std::convert::Infallible>);
            Sse::new(futures::stream::iter(events)).into_response()
        } else {
            Json(self.complete(body)).into_response()
        }
    }
}

/// The mock model as an HTTP server (`POST /v1/chat/completions`, `GET /v1/models`),
/// for tests and demos of the gateway's upstream path.
pub fn router(model: MockModel) -> axum::Router {
    let model = std::sync::Arc::new(model);
    let listing = model.clone();
    axum::Router::new()
        .route(
            "/v1/models",
            axum::routing::get(move || async move { Json(listing.models()) }),
        )
        .route(
            "/v1/chat/completions",
            axum::routing::post(move |Json(body): Json<Value>| async move { model.respond(&body) }),
        )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Run the mock model's HTTP server on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, model: MockModel) -> std::io::Result<()> {
    axum::serve(super::no_delay(listener), router(model)).await
}
