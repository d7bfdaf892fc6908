//! # {{name}}: a tool sandbox
//!
//! Lets the model see and call only the tools the operator lists; everything else is
//! denied (with no configuration, every tool). Replace the logic with your own;
//! `fixtures/cases.jsonl` says what the policy must answer.
//!
//! Configuration: `{"allow": ["search_docs"]}` (default: nothing allowed).

use portcullis_sdk::{
    Authorization, Category, Finding, RequestContext, Severity, ToolCall, ToolDefinition,
    ToolSandbox, fail,
};
use serde::Deserialize;

/// The operator's configuration (`[policies.config]` in the host's configuration).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow: Vec<String>,
}

fn load_config() -> Config {
    // A bad configuration ends the evaluation as an error, never as a silent allow.
    portcullis_sdk::config().unwrap_or_else(|e| fail(e))
}

fn deny(message: String) -> Authorization {
    Authorization::Deny(vec![Finding::new(
        Category::ToolMisuse,
        Severity::High,
        message,
    )])
}

struct Policy;

impl ToolSandbox for Policy {
    fn check_tools(_context: RequestContext, tools: Vec<ToolDefinition>) -> Vec<Authorization> {
        let config = load_config();
        tools
            .iter()
            .map(|tool| {
                if config.allow.contains(&tool.name) {
                    Authorization::Allow
                } else {
                    deny(format!("tool {} is not on the allow list", tool.name))
                }
            })
            .collect()
    }

    fn check_calls(
        _context: RequestContext,
        tools: Vec<ToolDefinition>,
        calls: Vec<ToolCall>,
    ) -> Vec<Authorization> {
        let config = load_config();
        calls
            .iter()
            .map(|call| {
                if !config.allow.contains(&call.name) {
                    deny(format!("tool {} is not on the allow list", call.name))
                } else if !tools.iter().any(|t| t.name == call.name) {
                    deny(format!("tool {} was not offered in this request", call.name))
                } else {
                    Authorization::Allow
                }
            })
            .collect()
    }
}

portcullis_sdk::export_tool_sandbox!(Policy);

#[cfg(test)]
mod tests {
    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::tool_sandbox::<super::Policy>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
