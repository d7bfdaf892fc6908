//! Checking one payload, as `portcullis check` and the gateway's check API do: an
//! OpenAI Chat Completions request (has `messages`) or response (has `choices`, and
//! optionally the `tools` that were offered), through every stage that applies or
//! just one.

use serde_json::{Value, json};

use crate::bindings::RequestContext;
use crate::config::Stage;
use crate::openai::{self, PayloadError};
use crate::pipeline::{Action, Decision, Pipeline};

/// A checked payload.
pub struct Checked {
    /// The decision.
    pub decision: Decision,
    /// The decision as `portcullis check` prints it: id, generation, kind, verdict,
    /// findings, policy runs, refused tools or calls, and the `modified` payload.
    pub json: Value,
}

/// Check `body` (request id `id`, client `client`) with `stage` only, or every stage
/// that applies (`None`). A response is recognised by `choices` without `messages`,
/// or by `stage = output`.
pub async fn check_payload(
    pipeline: &Pipeline,
    mut body: Value,
    stage: Option<Stage>,
    id: &str,
    client: &str,
) -> Result<Checked, PayloadError> {
    let is_response = match stage {
        Some(Stage::Output) => true,
        Some(_) => false,
        None => body.get("choices").is_some() && body.get("messages").is_none(),
    };
    let decision = if is_response {
        let response = openai::parse_response(&body)?;
        let tools = openai::parse_tools(body.get("tools"))?;
        let context = RequestContext {
            request_id: id.to_string(),
            client_id: client.to_string(),
            model: response.model.clone(),
            metadata: Vec::new(),
        };
        let decision = pipeline
            .check_response(&context, &tools, &response, stage)
            .await;
        for (choice, text) in &decision.modified {
            openai::set_choice_content(&mut body, *choice, text);
        }
        openai::remove_tool_calls(&mut body, &decision.denied_calls);
        decision
    } else {
        let request = openai::parse_request(&body, id, client)?;
        let decision = pipeline.check_request(&request, stage).await;
        for (index, text) in &decision.modified {
            openai::set_message_content(&mut body, *index, text);
        }
        decision
    };
    let mut out = json!({
        "id": id,
        "generation": decision.generation,
        "kind": if is_response { "response" } else { "request" },
        "verdict": decision.verdict,
        "findings": decision.findings,
        "policies": decision.runs,
    });
    if !decision.denied_tools.is_empty() {
        out["denied_tools"] = json!(decision.denied_tools);
    }
    if !decision.denied_calls.is_empty() {
        out["denied_calls"] = json!(decision.denied_calls);
    }
    if !decision.disagreements.is_empty() {
        out["disagreements"] = json!(decision.disagreements);
    }
    if decision.verdict == Action::Modify {
        out["modified"] = body;
    }
    Ok(Checked {
        decision,
        json: out,
    })
}
