//! # tool-allowlist: which tools a model may see and call, and with what arguments
//!
//! A [`ToolSandbox`]. For every tool offered to the model (`check_tools`) and every
//! call the model makes (`check_calls`) it decides allow or deny:
//!
//! 1. **Allow / deny lists.** Rules are `{server, tool}` glob pairs (`*`, `?`). A `deny`
//!    match always denies; otherwise an `allow` match allows, and tools no rule names
//!    get `default` (`deny` unless configured: the policy fails closed, so `{}` denies
//!    every tool).
//! 2. **Description pins.** A pin records the lowercase hex SHA-256 of a reviewed tool
//!    description. A tool whose description hashes differently from every pin that
//!    names it is denied with a critical finding ("description changed since pinned
//!    (possible rug pull)"); with `require_pins`, unpinned tools are denied too.
//! 3. **Calls** must name a tool offered in the same request (matched by server and
//!    name; a call without a server matches a uniquely named tool), pass 1 and 2 for that
//!    tool, carry valid JSON arguments (an empty string counts as `{}`), satisfy the
//!    tool's input schema (a documented subset of JSON Schema, see [`schema`]) when
//!    `check_schema` is on, and pass the argument checks (see [`args`]) when
//!    `argument_checks` is on: no path traversal, no sensitive paths, no shell
//!    metacharacters in command/path-like properties (every string with
//!    `strict_shell`), and, when `allowed_hosts` is set, no URL to another host.
//!
//! Findings have category `tool-misuse`, severity high (critical for a pin mismatch),
//! and a span whose index is the tool or call index (argument findings span the whole
//! arguments text; a pin mismatch spans the description). Messages name JSON paths
//! and rules, never argument values.
//!
//! ## Configuration
//!
//! ```json
//! {"default": "deny",
//!  "allow": [{"server": "github", "tool": "get_*"}, {"tool": "search"}],
//!  "deny": [{"tool": "*delete*"}],
//!  "pins": [{"server": "github", "tool": "get_issue", "sha256": "<64 hex digits>"}],
//!  "require_pins": false, "check_schema": true, "argument_checks": true,
//!  "strict_shell": false, "allowed_hosts": ["api.github.com", "*.example.com"],
//!  "sensitive_paths": ["/etc/*", "*/.ssh/*"]}
//! ```
//!
//! Every field is optional; see [`config::Config`] for the defaults.

use portcullis_sdk::{
    Authorization, Category, Finding, RequestContext, Severity, ToolCall, ToolDefinition,
    ToolSandbox,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod args;
pub mod config;
pub mod glob;
pub mod schema;

use config::{Config, DefaultAction, ToolRule};

/// Findings reported per tool or call, at most.
const MAX_FINDINGS: usize = 10;

/// The tool sandbox.
pub struct ToolAllowlist;

impl ToolSandbox for ToolAllowlist {
    fn check_tools(_context: RequestContext, tools: Vec<ToolDefinition>) -> Vec<Authorization> {
        let config = load_config();
        tools
            .iter()
            .enumerate()
            .map(|(i, tool)| authorization(tool_findings(&config, i, tool)))
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
            .enumerate()
            .map(|(i, call)| authorization(call_findings(&config, i, &tools, call)))
            .collect()
    }
}

/// The configuration, or an aborted evaluation (an `error` outcome the host handles per
/// `on_error`) when it is invalid.
fn load_config() -> Config {
    match Config::load() {
        Ok(config) => config,
        Err(e) => portcullis_sdk::fail(e),
    }
}

fn authorization(findings: Vec<Finding>) -> Authorization {
    if findings.is_empty() {
        Authorization::Allow
    } else {
        Authorization::Deny(findings)
    }
}

fn finding(severity: Severity, message: impl Into<String>) -> Finding {
    Finding::new(Category::ToolMisuse, severity, message)
}

/// Why a tool may not be offered (or called): deny list, allowlist, pins, schema.
fn tool_findings(config: &Config, index: usize, tool: &ToolDefinition) -> Vec<Finding> {
    let mut findings: Vec<Finding> = listing_problem(config, &tool.server, &tool.name)
        .map(|why| finding(Severity::High, why).at(index, 0, 0))
        .into_iter()
        .collect();
    findings.extend(pin_problem(config, index, tool));
    if config.check_schema && parse_schema(&tool.input_schema).is_none() {
        findings.push(
            finding(Severity::High, "tool input schema is not valid JSON Schema").at(index, 0, 0),
        );
    }
    findings
}

fn rule_matches(rule: &ToolRule, server: &str, name: &str) -> bool {
    glob::matches(&rule.server, server) && glob::matches(&rule.tool, name)
}

/// Deny list first, then allowlist, then the default.
fn listing_problem(config: &Config, server: &str, name: &str) -> Option<&'static str> {
    if config.deny.iter().any(|r| rule_matches(r, server, name)) {
        return Some("tool is on the deny list");
    }
    let allowed = config.default == DefaultAction::Allow
        || config.allow.iter().any(|r| rule_matches(r, server, name));
    (!allowed).then_some("tool is not on the allowlist")
}

/// Lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A pin mismatch (critical), or a missing pin when pins are required.
fn pin_problem(config: &Config, index: usize, tool: &ToolDefinition) -> Option<Finding> {
    let mut pins = config
        .pins
        .iter()
        .filter(|p| glob::matches(&p.server, &tool.server) && glob::matches(&p.tool, &tool.name))
        .peekable();
    if pins.peek().is_none() {
        return config.require_pins.then(|| {
            finding(
                Severity::High,
                "tool description is not pinned (require_pins)",
            )
            .at(index, 0, 0)
        });
    }
    let digest = sha256_hex(&tool.description);
    if pins.any(|p| p.sha256 == digest) {
        return None;
    }
    let message = "tool description changed since pinned (possible rug pull)";
    Some(finding(Severity::Critical, message).at(index, 0, tool.description.len()))
}

/// A tool's input schema; `None` when it is not JSON or not a schema (object or boolean).
fn parse_schema(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_object() || v.is_boolean())
}

/// The offered tool a call refers to.
fn offered_tool<'a>(
    tools: &'a [ToolDefinition],
    call: &ToolCall,
) -> Result<&'a ToolDefinition, &'static str> {
    if let Some(tool) = tools
        .iter()
        .find(|t| t.name == call.name && t.server == call.server)
    {
        return Ok(tool);
    }
    if call.server.is_empty() {
        let mut named = tools.iter().filter(|t| t.name == call.name);
        match (named.next(), named.next()) {
            (Some(tool), None) => return Ok(tool),
            (Some(_), Some(_)) => return Err("call names a tool offered by several servers"),
            _ => {}
        }
    }
    Err("tool was not offered in this request")
}

/// Call arguments as JSON; an empty string (a call without parameters) is `{}`.
fn parse_arguments(text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        return Some(Value::Object(Default::default()));
    }
    serde_json::from_str(text).ok()
}

/// Why a call may not run.
fn call_findings(
    config: &Config,
    index: usize,
    tools: &[ToolDefinition],
    call: &ToolCall,
) -> Vec<Finding> {
    let tool = match offered_tool(tools, call) {
        Ok(tool) => tool,
        Err(why) => return vec![finding(Severity::High, why).at(index, 0, 0)],
    };
    let tool_level = tool_findings(config, index, tool);
    if !tool_level.is_empty() {
        return tool_level;
    }
    let Some(arguments) = parse_arguments(&call.arguments) else {
        return vec![
            finding(Severity::High, "call arguments are not valid JSON").at(
                index,
                0,
                call.arguments.len(),
            ),
        ];
    };
    let mut problems = args::Problems::new(MAX_FINDINGS);
    if config.check_schema
        && let Some(schema) = parse_schema(&tool.input_schema)
    {
        let mut patterns = schema::Patterns::of(&schema);
        for e in schema::validate(&schema, &arguments, &mut patterns) {
            problems.push(format!("arguments do not match the input schema: {e}"));
        }
    }
    if config.argument_checks {
        args::check(&arguments, config, &mut problems);
    }
    problems
        .into_vec()
        .into_iter()
        .map(|p| finding(Severity::High, p).at(index, 0, call.arguments.len()))
        .collect()
}

portcullis_sdk::export_tool_sandbox!(ToolAllowlist);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::tool_sandbox::<ToolAllowlist>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn tool(server: &str, name: &str) -> ToolDefinition {
        ToolDefinition {
            server: server.into(),
            name: name.into(),
            description: "Reads a file.".into(),
            input_schema: "{}".into(),
        }
    }

    fn call(server: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            server: server.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn sha256_of_known_text() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn call_lookup_by_server_and_name() {
        let tools = [tool("fs", "read"), tool("git", "read"), tool("git", "log")];
        assert_eq!(
            offered_tool(&tools, &call("git", "read", "{}")).map(|t| t.server.as_str()),
            Ok("git")
        );
        assert_eq!(
            offered_tool(&tools, &call("", "log", "{}")).map(|t| t.server.as_str()),
            Ok("git")
        );
        assert!(
            offered_tool(&tools, &call("", "read", "{}"))
                .unwrap_err()
                .contains("several")
        );
        assert!(
            offered_tool(&tools, &call("web", "read", "{}"))
                .unwrap_err()
                .contains("not offered")
        );
    }

    #[test]
    fn deny_wins_over_allow_and_default_is_closed() {
        let config: Config =
            serde_json::from_str(r#"{"allow":[{"tool":"*"}],"deny":[{"tool":"rm"}]}"#).unwrap();
        assert_eq!(
            listing_problem(&config, "", "rm"),
            Some("tool is on the deny list")
        );
        assert_eq!(listing_problem(&config, "", "ls"), None);
        assert_eq!(
            listing_problem(&Config::default(), "", "ls"),
            Some("tool is not on the allowlist")
        );
    }

    #[test]
    fn empty_arguments_mean_no_parameters() {
        assert_eq!(parse_arguments(" "), Some(serde_json::json!({})));
        assert_eq!(parse_arguments("{\"a\":"), None);
    }

    #[test]
    #[should_panic(expected = "pins[0].sha256")]
    fn bad_config_aborts_the_evaluation() {
        portcullis_sdk::native::set_config(r#"{"pins":[{"tool":"x","sha256":"nothex"}]}"#);
        ToolAllowlist::check_tools(RequestContext::for_test(), vec![tool("", "x")]);
    }
}
