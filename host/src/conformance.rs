//! The conformance kit: what any guest, in any language, must do to be a well-behaved
//! policy, checked against the compiled component in the production sandbox and
//! default limits (`portcullis conform`). Every check runs for each contract the
//! component's world exports:
//!
//! * every world: it implements a Portcullis world and loads with its configuration; a
//!   configuration that is not JSON, or not an object, is an error, not a verdict;
//! * request checker: it answers an empty request, empty messages, every role and a
//!   64 KiB input; its spans are valid UTF-8 ranges (a trigger text that must produce
//!   findings is wrapped in multi-byte characters); it answers the same way twice;
//! * response filter: it answers an empty and a 64 KiB response; its spans and edits are
//!   valid on multi-byte text; an empty stream finishes; a response streamed in
//!   3-byte chunks (splitting the trigger and multi-byte characters across chunks)
//!   releases exactly what checking it whole gives, or is refused when that is; stream
//!   spans are valid ranges of the whole stream; it answers the same way twice;
//! * tool authorizer: one authorization per tool and per call, also for no tools, odd
//!   definitions (empty, invalid schema, 64 KiB description, non-ASCII) and hostile calls
//!   (invalid, empty, 64 KiB and 1000-deep arguments, calls to tools not offered); spans
//!   name their own tool or call and are valid ranges of its description or arguments;
//!   it answers the same way twice.

use std::sync::Arc;

use crate::artifact::manifest::Kind;
use crate::bindings::{
    Authorization, ChatRequest, Finding, Message, RequestContext, Role, StreamVerdict, ToolCall,
    ToolDefinition, Verdict,
};
use crate::engine::{Engine, Limits, Outcome, Run};
use crate::pipeline::{response_outcome, validate_request_verdict};
use crate::policy::Policy;

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether the guest passed.
    pub passed: bool,
    /// What happened.
    pub detail: String,
}

impl Check {
    fn of(name: &'static str, result: Result<String, String>) -> Check {
        Check {
            name,
            passed: result.is_ok(),
            detail: result.unwrap_or_else(|e| e),
        }
    }
}

/// Size of the large inputs.
const LARGE: usize = 64 * 1024;

/// Run the kit on a component, for every contract its world exports. `config` is the
/// configuration to use, `trigger` a text the policy must find something in (request
/// and response spans are then checked on multi-byte text; tool sandboxes ignore it).
pub async fn check(
    engine: &Arc<Engine>,
    wasm: &[u8],
    config: &str,
    trigger: Option<&str>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let kind = crate::artifact::component::implemented_world(wasm).and_then(|world| {
        Kind::ALL
            .into_iter()
            .find(|k| {
                crate::artifact::component::world_matches(
                    &format!("portcullis:policy/{}", k.name()),
                    &world,
                )
            })
            .ok_or_else(|| format!("implements {world}, which is not a Portcullis policy world"))
    });
    checks.push(Check::of(
        "implements a Portcullis policy world",
        kind.clone().map(|k| k.name().to_string()),
    ));
    let Ok(kind) = kind else { return checks };
    let policy = match engine.load("conformance", wasm, config.to_string(), Limits::default()) {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::of(
                "loads with its configuration",
                Err(e.to_string()),
            ));
            return checks;
        }
    };
    checks.push(Check::of("loads with its configuration", Ok(String::new())));
    let exports = kind.exports();
    if exports.guardrail {
        request_checks(&policy, trigger, &mut checks).await;
    }
    if exports.output_filter {
        response_checks(&policy, trigger, &mut checks).await;
    }
    if exports.tool_sandbox {
        tool_checks(&policy, &mut checks).await;
    }
    for (name, bad) in [
        ("rejects a configuration that is not JSON", "{not json"),
        ("rejects a configuration that is not an object", "[1, 2]"),
    ] {
        let result = match engine.load("conformance", wasm, bad.to_string(), Limits::default()) {
            Err(e) => Ok(format!("refused at load: {e}")),
            Ok(p) => match any_answer(&p, exports).await {
                Err(Outcome::Error(reason)) => Ok(format!("error: {reason}")),
                Err(other) => Err(format!("ended with {} instead of an error", other.name())),
                Ok(answer) => Err(format!("answered {answer} instead of failing")),
            },
        };
        checks.push(Check::of(name, result));
    }
    checks
}

/// One evaluation through the first contract `exports` has, described.
async fn any_answer(policy: &Policy, exports: crate::policy::Exports) -> Result<String, Outcome> {
    let hello = request(&[(Role::User, "Hello there")]);
    if exports.guardrail {
        policy.check_request(&hello).await.result.map(describe)
    } else if exports.output_filter {
        let run = policy.check_response(&context(), "Hello there").await;
        run.result.map(describe)
    } else {
        let run = policy.check_tools(&context(), &odd_tools()[..1]).await;
        run.result.map(|a| describe_authorizations(&a))
    }
}

async fn request_checks(policy: &Policy, trigger: Option<&str>, checks: &mut Vec<Check>) {
    let cases = [
        ("answers an empty request", request(&[])),
        (
            "answers empty messages",
            request(&[(Role::User, ""), (Role::Tool, "")]),
        ),
        (
            "answers every role",
            request(&[
                (Role::System, "You are a helpful assistant."),
                (Role::Developer, "Answer briefly."),
                (Role::User, "Hello!"),
                (Role::Assistant, "Hi, how can I help?"),
                (Role::Tool, "{\"result\": 42}"),
            ]),
        ),
        (
            "answers a 64 KiB input within the default limits",
            request(&[(Role::User, &large_text())]),
        ),
    ];
    for (name, req) in cases {
        checks.push(Check::of(name, verdict(policy, &req).await.map(describe)));
    }

    let spans = match trigger {
        None => Err(no_trigger()),
        Some(t) => {
            let wrapped = request(&[
                (Role::User, &wrap(t)),
                (
                    Role::Tool,
                    &format!("e\u{301}\u{200d}\u{1f469}\u{200d}\u{1f4bb} {t}"),
                ),
            ]);
            verdict(policy, &wrapped)
                .await
                .and_then(|v| with_findings(&v).map(|n| format!("{n} finding(s), valid spans")))
        }
    };
    checks.push(Check::of(
        "reports spans as UTF-8 byte ranges on multi-byte text",
        spans,
    ));

    let req = request(&[(Role::User, trigger.unwrap_or("Hello there"))]);
    let twice = same_twice(verdict(policy, &req).await, verdict(policy, &req).await);
    checks.push(Check::of("answers the same request the same way", twice));
}

async fn response_checks(policy: &Policy, trigger: Option<&str>, checks: &mut Vec<Check>) {
    for (name, text) in [
        ("answers an empty response", String::new()),
        (
            "answers a 64 KiB response within the default limits",
            large_text(),
        ),
    ] {
        let answer = response(policy, &text).await.map(|(v, _)| describe(v));
        checks.push(Check::of(name, answer));
    }

    let spans = match trigger {
        None => Err(no_trigger()),
        Some(t) => response(policy, &wrap(t))
            .await
            .and_then(|(v, _)| with_findings(&v).map(|n| format!("{n} finding(s), valid spans"))),
    };
    checks.push(Check::of(
        "reports response spans and edits as UTF-8 byte ranges on multi-byte text",
        spans,
    ));

    let empty = match stream(policy, &[]).await {
        Ok((Some(text), _)) if text.is_empty() => Ok("finished, nothing released".to_string()),
        Ok((Some(text), _)) => Err(format!("released {} bytes out of none", text.len())),
        Ok((None, _)) => Ok("refused".to_string()),
        Err(e) => Err(e),
    };
    checks.push(Check::of("finishes an empty stream", empty));

    let text = format!(
        "{} and once more: {}",
        wrap(trigger.unwrap_or("Hello there")),
        wrap(trigger.unwrap_or("Hello there"))
    );
    let streamed = match (
        response(policy, &text).await,
        stream(policy, &chunks(&text, 3)).await,
    ) {
        (Err(e), _) => Err(format!("whole response: {e}")),
        (_, Err(e)) => Err(format!("stream: {e}")),
        (Ok((_, whole)), Ok((streamed, findings))) => {
            let stream_spans = response_outcome(&text, &Verdict::Allow(findings))
                .map_err(|e| format!("stream finding: {e}"));
            match (whole, streamed, stream_spans) {
                (_, _, Err(e)) => Err(e),
                (None, None, _) => Ok("refused whole and streamed".to_string()),
                (Some(a), Some(b), _) if a == b => Ok(format!("both release {} bytes", a.len())),
                (a, b, _) => Err(format!(
                    "whole: {}, streamed: {}",
                    released(a.as_deref()),
                    released(b.as_deref())
                )),
            }
        }
    };
    checks.push(Check::of(
        "releases the same text streamed in 3-byte chunks as whole",
        streamed,
    ));

    let text = trigger.unwrap_or("Hello there");
    let twice = same_twice(
        response(policy, text).await.map(|(v, _)| v),
        response(policy, text).await.map(|(v, _)| v),
    );
    checks.push(Check::of("answers the same response the same way", twice));
}

async fn tool_checks(policy: &Policy, checks: &mut Vec<Check>) {
    let tools = odd_tools();
    let answers = [
        (
            "answers no tools",
            authorized(policy.check_tools(&context(), &[]).await, &[], &[]),
        ),
        (
            "answers odd tool definitions, one authorization each",
            authorized(policy.check_tools(&context(), &tools).await, &tools, &[]),
        ),
        (
            "answers no calls",
            authorized(policy.check_calls(&context(), &tools, &[]).await, &[], &[]),
        ),
    ];
    for (name, answer) in answers {
        checks.push(Check::of(name, answer));
    }
    let calls = hostile_calls();
    let first = authorized(
        policy.check_calls(&context(), &tools, &calls).await,
        &[],
        &calls,
    );
    let second = authorized(
        policy.check_calls(&context(), &tools, &calls).await,
        &[],
        &calls,
    );
    checks.push(Check::of(
        "answers hostile calls, one authorization each",
        first.clone(),
    ));
    checks.push(Check::of(
        "answers the same calls the same way",
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => Ok(a),
            (Ok(a), Ok(b)) => Err(format!("{a} then {b}")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
    ));
}

/// Describe a tool sandbox's answer after checking every finding's span: its index is
/// the tool's (or call's) own and its range lies in that tool's description (or that
/// call's arguments). The host already enforced one authorization per item.
fn authorized(
    run: Run<Vec<Authorization>>,
    tools: &[ToolDefinition],
    calls: &[ToolCall],
) -> Result<String, String> {
    let list = run.result.map_err(|o| failure(o, run.micros))?;
    for (i, auth) in list.iter().enumerate() {
        let Authorization::Deny(findings) = auth else {
            continue;
        };
        let text = match (tools.get(i), calls.get(i)) {
            (Some(t), _) => &t.description,
            (_, Some(c)) => &c.arguments,
            _ => "",
        };
        for finding in findings {
            let Some(span) = &finding.span else { continue };
            if span.index as usize != i {
                return Err(format!("item {i}'s finding points at item {}", span.index));
            }
            // As one finding on a single text, so the response validator checks it.
            let single = Verdict::Allow(vec![Finding {
                span: Some(crate::bindings::Span { index: 0, ..*span }),
                ..finding.clone()
            }]);
            response_outcome(text, &single).map_err(|e| format!("item {i}: {e}"))?;
        }
    }
    Ok(describe_authorizations(&list))
}

fn describe_authorizations(list: &[Authorization]) -> String {
    let denied = list
        .iter()
        .filter(|a| matches!(a, Authorization::Deny(_)))
        .count();
    format!("{} allowed, {denied} denied", list.len() - denied)
}

/// Tool definitions a sandbox must cope with.
fn odd_tools() -> Vec<ToolDefinition> {
    let tool = |server: &str, name: &str, description: String, schema: &str| ToolDefinition {
        server: server.into(),
        name: name.into(),
        description,
        input_schema: schema.into(),
    };
    vec![
        tool(
            "docs",
            "search_docs",
            "Search the documentation.".into(),
            r#"{"type": "object", "properties": {"query": {"type": "string"}}}"#,
        ),
        tool("", "", String::new(), "{}"),
        tool("fs", "read_file", "Read a file.".into(), "{not json"),
        tool("web", "fetch", large_text(), r#"{"type": "object"}"#),
        tool("工具", "検索", "Поиск 😀 e\u{301}".into(), "true"),
    ]
}

/// Tool calls a sandbox must cope with (against [`odd_tools`]).
fn hostile_calls() -> Vec<ToolCall> {
    let call = |id: usize, name: &str, arguments: String| ToolCall {
        id: format!("call_{id}"),
        server: String::new(),
        name: name.into(),
        arguments,
    };
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    vec![
        call(0, "search_docs", r#"{"query": "rate limits"}"#.into()),
        call(1, "search_docs", "{\"query\": ".into()),
        call(2, "search_docs", String::new()),
        call(
            3,
            "search_docs",
            format!(r#"{{"query": "{}"}}"#, "x".repeat(LARGE)),
        ),
        call(4, "search_docs", format!(r#"{{"query": {deep}}}"#)),
        call(5, "not_offered", "{}".into()),
        call(6, "検索", r#"{"q": "é😀"}"#.into()),
    ]
}

fn failure(outcome: Outcome, micros: u64) -> String {
    match outcome {
        Outcome::Error(reason) => format!("error: {reason}"),
        other => format!("{} after {micros} µs", other.name()),
    }
}

fn no_trigger() -> String {
    "no trigger text given (--trigger): spans were not exercised".to_string()
}

/// A verdict that must have findings (their spans were validated already).
fn with_findings(v: &Verdict) -> Result<usize, String> {
    match findings(v) {
        0 => Err("the trigger produced no finding".into()),
        n => Ok(n),
    }
}

fn same_twice(a: Result<Verdict, String>, b: Result<Verdict, String>) -> Result<String, String> {
    match (a, b) {
        // The bindings' types have no PartialEq; their Debug text shows every field.
        (Ok(a), Ok(b)) if format!("{a:?}") == format!("{b:?}") => Ok(describe(a)),
        (Ok(a), Ok(b)) => Err(format!("{} then {}", describe(a), describe(b))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

async fn verdict(policy: &Policy, request: &ChatRequest) -> Result<Verdict, String> {
    let run = policy.check_request(request).await;
    let micros = run.micros;
    run.result
        .map_err(|o| failure(o, micros))
        .and_then(|v| validate_request_verdict(request, &v).map(|()| v))
}

/// The verdict on a whole response (spans and edits checked), and the text released.
async fn response(policy: &Policy, text: &str) -> Result<(Verdict, Option<String>), String> {
    let run = policy.check_response(&context(), text).await;
    let verdict = run.result.map_err(|o| failure(o, run.micros))?;
    let released = response_outcome(text, &verdict)?;
    Ok((verdict, released))
}

/// Stream `chunks` through one filter instance: the text released (`None` if refused)
/// and every finding reported.
async fn stream(
    policy: &Policy,
    chunks: &[&str],
) -> Result<(Option<String>, Vec<Finding>), String> {
    let mut open = policy.open_stream(&context()).await.map_err(|run| {
        run.result
            .map_or_else(|o| failure(o, run.micros), |()| String::new())
    })?;
    let (mut text, mut findings) = (String::new(), Vec::new());
    for chunk in chunks.iter().map(Some).chain([None]) {
        let run = match chunk {
            Some(c) => open.push(c).await,
            None => open.finish().await,
        };
        match run.result.map_err(|o| failure(o, run.micros))? {
            StreamVerdict::Emit(r) => {
                text.push_str(&r.text);
                findings.extend(r.findings);
            }
            StreamVerdict::Deny(_) => return Ok((None, findings)),
        }
    }
    Ok((Some(text), findings))
}

/// `text` cut into pieces of about `size` bytes, at character boundaries.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

fn released(text: Option<&str>) -> String {
    text.map_or_else(|| "refused".to_string(), |t| format!("{t:?}"))
}

fn wrap(trigger: &str) -> String {
    format!("é😀漢字 {trigger} ñ")
}

fn large_text() -> String {
    "The quarterly report is due. ".repeat(LARGE / 29)
}

fn findings(v: &Verdict) -> usize {
    match v {
        Verdict::Allow(f) | Verdict::Deny(f) => f.len(),
        Verdict::Modify(m) => m.findings.len(),
    }
}

fn describe(v: Verdict) -> String {
    let kind = match &v {
        Verdict::Allow(_) => "allow",
        Verdict::Deny(_) => "deny",
        Verdict::Modify(_) => "modify",
    };
    format!("{kind} ({} finding(s))", findings(&v))
}

fn context() -> RequestContext {
    RequestContext {
        request_id: "conformance".into(),
        client_id: "conformance".into(),
        model: "conformance".into(),
        metadata: Vec::new(),
    }
}

fn request(messages: &[(Role, &str)]) -> ChatRequest {
    ChatRequest {
        context: context(),
        messages: messages
            .iter()
            .map(|(role, content)| Message {
                role: *role,
                content: (*content).to_string(),
                name: None,
                tool_call_id: None,
            })
            .collect(),
        tools: Vec::new(),
    }
}
