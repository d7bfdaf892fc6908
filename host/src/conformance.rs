//! The conformance kit: what any guest, in any language, must do to be a well-behaved
//! policy, checked against the compiled component in the production sandbox
//! (`portcullis conform`). For the guardrail world (and content-policy's request side):
//! the component implements the world; it answers an empty request, empty messages,
//! every role and a large input with a verdict; its spans are valid UTF-8 ranges of
//! the texts (a trigger text that must produce findings is wrapped in multi-byte
//! characters); it answers the same request the same way twice; and a configuration
//! that is not a JSON object is an error, not a verdict.

use std::sync::Arc;

use crate::bindings::{ChatRequest, Message, RequestContext, Role, Verdict};
use crate::engine::{Engine, Limits, Outcome};
use crate::pipeline::validate_request_verdict;
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

/// Size of the large input.
const LARGE: usize = 64 * 1024;

/// Run the kit on a request-checking component. `config` is the configuration to use,
/// `trigger` a text the policy must find something in (its findings' spans are then
/// checked on multi-byte text).
pub async fn check_guardrail(
    engine: &Arc<Engine>,
    wasm: &[u8],
    config: &str,
    trigger: Option<&str>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let world = crate::artifact::component::implemented_world(wasm);
    let exports = world.as_ref().map_err(String::clone).and_then(|w| {
        ["guardrail", "content-policy"]
            .iter()
            .any(|n| {
                crate::artifact::component::world_matches(&format!("portcullis:policy/{n}"), w)
            })
            .then(|| w.clone())
            .ok_or_else(|| format!("implements {w}, which has no request checker"))
    });
    checks.push(check("implements a request-checking world", exports));
    let policy = match engine.load("conformance", wasm, config.to_string(), Limits::default()) {
        Ok(p) => p,
        Err(e) => {
            checks.push(check("loads with its configuration", Err(e.to_string())));
            return checks;
        }
    };
    checks.push(check("loads with its configuration", Ok(String::new())));

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
            request(&[(
                Role::User,
                &"The quarterly report is due. ".repeat(LARGE / 29),
            )]),
        ),
    ];
    for (name, req) in cases {
        checks.push(check(name, verdict(&policy, &req).await.map(describe)));
    }

    let spans = match trigger {
        None => Err("no trigger text given (--trigger): spans were not exercised".to_string()),
        Some(t) => {
            let wrapped = request(&[
                (Role::User, &format!("é😀漢字 {t} ñ")),
                (
                    Role::Tool,
                    &format!("e\u{301}\u{200d}\u{1f469}\u{200d}\u{1f4bb} {t}"),
                ),
            ]);
            match verdict(&policy, &wrapped).await {
                Err(e) => Err(e),
                Ok(v) => match findings(&v) {
                    0 => Err("the trigger produced no finding".into()),
                    n => validate_request_verdict(&wrapped, &v)
                        .map(|()| format!("{n} finding(s), every span a valid UTF-8 range")),
                },
            }
        }
    };
    checks.push(check(
        "reports spans as UTF-8 byte ranges on multi-byte text",
        spans,
    ));

    let req = request(&[(Role::User, trigger.unwrap_or("Hello there"))]);
    let twice = match (verdict(&policy, &req).await, verdict(&policy, &req).await) {
        (Ok(a), Ok(b)) if format!("{a:?}") == format!("{b:?}") => Ok(describe(a)),
        (Ok(a), Ok(b)) => Err(format!("{} then {}", describe(a), describe(b))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    checks.push(check("answers the same request the same way", twice));

    for (name, bad) in [
        ("rejects a configuration that is not JSON", "{not json"),
        ("rejects a configuration that is not an object", "[1, 2]"),
    ] {
        let result = match engine.load("conformance", wasm, bad.to_string(), Limits::default()) {
            Err(e) => Ok(format!("refused at load: {e}")),
            Ok(p) => match p.check_request(&req).await.result {
                Err(Outcome::Error(reason)) => Ok(format!("error: {reason}")),
                Err(other) => Err(format!("ended with {} instead of an error", other.name())),
                Ok(v) => Err(format!("answered {} instead of failing", describe(v))),
            },
        };
        checks.push(check(name, result));
    }
    checks
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    let passed = result.is_ok();
    Check {
        name,
        passed,
        detail: result.unwrap_or_else(|e| e),
    }
}

async fn verdict(policy: &Policy, request: &ChatRequest) -> Result<Verdict, String> {
    let run = policy.check_request(request).await;
    let micros = run.micros;
    run.result
        .map_err(|o| match o {
            Outcome::Error(reason) => format!("error: {reason}"),
            other => format!("{} after {micros} µs", other.name()),
        })
        .and_then(|v| validate_request_verdict(request, &v).map(|()| v))
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

fn request(messages: &[(Role, &str)]) -> ChatRequest {
    ChatRequest {
        context: RequestContext {
            request_id: "conformance".into(),
            client_id: "conformance".into(),
            model: "conformance".into(),
            metadata: Vec::new(),
        },
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
