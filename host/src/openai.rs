//! OpenAI Chat Completions payloads, in and out of the contract types.
//!
//! Tools are namespaced by MCP server with the common `server__tool` naming convention:
//! a function named `github__create_issue` is tool `create_issue` of server `github`;
//! a name without `__` has an empty server.

use serde_json::Value;

use crate::bindings::{ChatRequest, Message, RequestContext, Role, ToolCall, ToolDefinition};

/// A request payload that does not fit the Chat Completions shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

fn bad(msg: impl Into<String>) -> PayloadError {
    PayloadError(msg.into())
}

/// Split `server__tool` into (server, tool).
pub fn split_tool_name(name: &str) -> (String, String) {
    match name.split_once("__") {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
            (server.to_string(), tool.to_string())
        }
        _ => (String::new(), name.to_string()),
    }
}

/// The text of a message `content`: a string, null, or an array of parts whose text
/// parts are joined with newlines (non-text parts carry no text to scan).
fn content_text(content: Option<&Value>, at: &str) -> Result<String, PayloadError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        texts.push(part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            bad(format!("{at}.content[{j}].text must be a string"))
                        })?)
                    }
                    Some(_) => {}
                    None => return Err(bad(format!("{at}.content[{j}] has no \"type\""))),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(bad(format!(
            "{at}.content must be a string, an array of parts, or null"
        ))),
    }
}

fn parse_role(role: &str, at: &str) -> Result<Role, PayloadError> {
    Ok(match role {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        other => {
            return Err(bad(format!(
                "{at}.role {other:?} is not one of system, developer, user, assistant, tool"
            )));
        }
    })
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Parse the `tools` array of a request.
pub fn parse_tools(tools: Option<&Value>) -> Result<Vec<ToolDefinition>, PayloadError> {
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| bad("tools must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let f = t
                .get("function")
                .ok_or_else(|| bad(format!("tools[{i}] has no \"function\"")))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("tools[{i}].function.name must be a string")))?;
            let (server, name) = split_tool_name(name);
            Ok(ToolDefinition {
                server,
                name,
                description: opt_str(f, "description").unwrap_or_default(),
                input_schema: f
                    .get("parameters")
                    .map_or_else(|| "{}".to_string(), Value::to_string),
            })
        })
        .collect()
}

/// Parse a Chat Completions request into the contract's `chat-request`.
pub fn parse_request(
    body: &Value,
    request_id: &str,
    client_id: &str,
) -> Result<ChatRequest, PayloadError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("the request must be a JSON object"))?;
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) => m,
        Some(_) => return Err(bad("\"messages\" must be an array of messages")),
        None => return Err(bad("the request has no \"messages\"")),
    };
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("messages[{i}]");
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{at}.role must be a string")))?;
            Ok(Message {
                role: parse_role(role, &at)?,
                content: content_text(m.get("content"), &at)?,
                name: opt_str(m, "name"),
                tool_call_id: opt_str(m, "tool_call_id"),
            })
        })
        .collect::<Result<Vec<_>, PayloadError>>()?;
    Ok(ChatRequest {
        context: RequestContext {
            request_id: request_id.to_string(),
            client_id: client_id.to_string(),
            model: opt_str(body, "model").unwrap_or_default(),
            metadata: Vec::new(),
        },
        messages,
        tools: parse_tools(obj.get("tools"))?,
    })
}

/// What a model answered: the text of each choice and the tool calls, with the choice
/// each call belongs to.
#[derive(Debug, Clone, Default)]
pub struct ModelResponse {
    /// Model name.
    pub model: String,
    /// Text content of each choice (empty when the choice has none).
    pub texts: Vec<String>,
    /// Tool calls across choices: (choice index, call).
    pub calls: Vec<(usize, ToolCall)>,
}

/// Parse a Chat Completions response.
pub fn parse_response(body: &Value) -> Result<ModelResponse, PayloadError> {
    let choices = body
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the response has no \"choices\" array"))?;
    let mut response = ModelResponse {
        model: opt_str(body, "model").unwrap_or_default(),
        ..Default::default()
    };
    for (i, choice) in choices.iter().enumerate() {
        let at = format!("choices[{i}].message");
        let message = choice
            .get("message")
            .ok_or_else(|| bad(format!("{at} is missing")))?;
        response
            .texts
            .push(content_text(message.get("content"), &at)?);
        if let Some(calls) = message.get("tool_calls") {
            let calls = calls
                .as_array()
                .ok_or_else(|| bad(format!("{at}.tool_calls must be an array")))?;
            for (j, call) in calls.iter().enumerate() {
                let f = call
                    .get("function")
                    .ok_or_else(|| bad(format!("{at}.tool_calls[{j}] has no \"function\"")))?;
                let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                    bad(format!(
                        "{at}.tool_calls[{j}].function.name must be a string"
                    ))
                })?;
                let (server, name) = split_tool_name(name);
                let arguments = match f.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                response.calls.push((
                    i,
                    ToolCall {
                        id: opt_str(call, "id").unwrap_or_default(),
                        server,
                        name,
                        arguments,
                    },
                ));
            }
        }
    }
    Ok(response)
}

/// Replace the content of message `index` of a request body with `text`.
pub fn set_message_content(body: &mut Value, index: usize, text: &str) {
    if let Some(m) = body.get_mut("messages").and_then(|m| m.get_mut(index)) {
        m["content"] = Value::String(text.to_string());
    }
}

/// Replace the content of choice `index` of a response body with `text`.
pub fn set_choice_content(body: &mut Value, index: usize, text: &str) {
    if let Some(c) = body.get_mut("choices").and_then(|c| c.get_mut(index)) {
        c["message"]["content"] = Value::String(text.to_string());
    }
}

/// Remove the tool calls at `indices` (positions in [`ModelResponse::calls`] order).
pub fn remove_tool_calls(body: &mut Value, indices: &[usize]) {
    let mut position = 0;
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(calls) = choice
                .pointer_mut("/message/tool_calls")
                .and_then(Value::as_array_mut)
            {
                let mut kept = Vec::new();
                for call in calls.drain(..) {
                    if !indices.contains(&position) {
                        kept.push(call);
                    }
                    position += 1;
                }
                *calls = kept;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_messages_parts_tools_and_servers() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "result"}
            ],
            "tools": [{"type": "function", "function": {"name": "fs__read", "description": "reads", "parameters": {"type": "object"}}}]
        });
        let r = parse_request(&body, "r1", "c").unwrap();
        assert_eq!(r.messages[1].content, "a\nb");
        assert_eq!(r.messages[2].role, Role::Tool);
        assert_eq!(
            (r.tools[0].server.as_str(), r.tools[0].name.as_str()),
            ("fs", "read")
        );
        assert_eq!(r.tools[0].input_schema, r#"{"type":"object"}"#);
        assert_eq!(r.context.model, "m");
    }

    #[test]
    fn malformed_requests_get_precise_errors() {
        let e = parse_request(
            &json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "r",
            "c",
        )
        .unwrap_err();
        assert!(e.0.contains("messages[0].role"), "{e}");
        let e = parse_request(
            &json!({"messages": [{"role": "user", "content": 5}]}),
            "r",
            "c",
        )
        .unwrap_err();
        assert!(e.0.contains("messages[0].content"), "{e}");
        assert!(parse_request(&json!([]), "r", "c").is_err());
        assert!(
            parse_request(&json!({"model": "x"}), "r", "c")
                .unwrap_err()
                .0
                .contains("messages")
        );
    }

    #[test]
    fn responses_and_tool_call_removal() {
        let mut body = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "sh__run", "arguments": "{\"cmd\":\"ls\"}"}},
            {"id": "2", "type": "function", "function": {"name": "read", "arguments": "{}"}}
        ]}}]});
        let r = parse_response(&body).unwrap();
        assert_eq!(r.texts, vec![String::new()]);
        assert_eq!(r.calls[0].1.server, "sh");
        assert_eq!(r.calls[1].1.arguments, "{}");
        remove_tool_calls(&mut body, &[0]);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        set_choice_content(&mut body, 0, "hi");
        assert_eq!(body["choices"][0]["message"]["content"], "hi");
    }
}
