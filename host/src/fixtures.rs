//! `portcullis test`: run every policy's fixtures against its compiled component, in
//! the same sandbox and with the same limits as production traffic.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use portcullis_sdk::fixture::{self, CheckKind, Fixture, Observed};

use crate::bindings::{
    self, Authorization, ChatRequest, Message, RequestContext, ToolCall, ToolDefinition, Verdict,
};
use crate::engine::{Engine, Outcome};
use crate::pipeline::Entry;
use crate::policy::Policy;

/// The result of one policy's fixtures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FixtureReport {
    /// Policy name.
    pub policy: String,
    /// Fixtures file.
    pub file: PathBuf,
    /// Cases that passed.
    pub passed: usize,
    /// One line per failing case.
    pub failures: Vec<String>,
}

/// Run the fixtures file of `entry`.
pub async fn run(engine: &Arc<Engine>, entry: &Entry) -> Result<FixtureReport, String> {
    let wasm = std::fs::read(&entry.path)
        .map_err(|e| format!("cannot read {}: {e}", entry.path.display()))?;
    let file = entry.fixtures.clone().ok_or("no fixtures configured")?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let cases = fixture::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let (passed, failures) = run_cases(engine, &entry.policy, &wasm, &cases).await?;
    Ok(FixtureReport {
        policy: entry.policy.name().to_string(),
        file,
        passed,
        failures,
    })
}

/// Run `cases` against the component `wasm` of `policy` (with its limits): the number
/// that passed, and one line per failing case. Each distinct case configuration gets
/// its own loaded instance; the compiled component is shared.
pub async fn run_cases(
    engine: &Arc<Engine>,
    policy: &Policy,
    wasm: &[u8],
    cases: &[Fixture],
) -> Result<(usize, Vec<String>), String> {
    let mut variants: HashMap<String, Policy> = HashMap::new();
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases {
        // Cases run with their own configuration or the policy's defaults (`{}`), the
        // same as the native fixture runner, whatever the pipeline configures.
        let json = case
            .config
            .as_ref()
            .map_or_else(|| "{}".to_string(), |c| c.to_string());
        if !variants.contains_key(&json) {
            let loaded = engine
                .load(policy.name(), wasm, json.clone(), policy.limits())
                .map_err(|e| e.to_string())?;
            variants.insert(json.clone(), loaded);
        }
        match observe(&variants[&json], case)
            .await
            .and_then(|o| case.expect.check(&o))
        {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    Ok((passed, failures))
}

/// What a policy answered to one fixture case.
#[derive(Debug)]
pub enum Answer {
    /// A guardrail's or output filter's verdict, and the texts it was about.
    Verdict(Verdict, Vec<String>),
    /// A tool sandbox's authorizations.
    Authorizations(Vec<Authorization>),
}

async fn observe(policy: &Policy, case: &Fixture) -> Result<Observed, String> {
    Ok(match answer(policy, case).await? {
        Answer::Verdict(verdict, texts) => fixture::observe_verdict(sdk_verdict(verdict), &texts)?,
        Answer::Authorizations(auths) => {
            fixture::observe_authorizations(&sdk_authorizations(auths))
        }
    })
}

/// Run one fixture case against a loaded policy: its raw answer (the tests compare
/// ports of a policy in other languages with the original this way, findings and
/// messages included).
pub async fn answer(policy: &Policy, case: &Fixture) -> Result<Answer, String> {
    let context = RequestContext {
        request_id: format!("fixture:{}", case.name),
        client_id: "portcullis-test".into(),
        model: "fixture".into(),
        metadata: Vec::new(),
    };
    let tools: Vec<ToolDefinition> = case
        .tools
        .iter()
        .map(|t| ToolDefinition {
            server: t.server.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: t.schema_text(),
        })
        .collect();
    let failed = |o: Outcome| match o {
        Outcome::Error(reason) => format!("policy failed: {reason}"),
        other => format!("policy failed: {}", other.name()),
    };
    match case.check {
        CheckKind::Request => {
            let messages = case
                .messages
                .iter()
                .map(|m| {
                    Ok(Message {
                        role: role(fixture::parse_role(&m.role)?),
                        content: m.content.clone(),
                        name: None,
                        tool_call_id: None,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let texts: Vec<String> = messages.iter().map(|m| m.content.clone()).collect();
            let verdict = policy
                .check_request(&ChatRequest {
                    context,
                    messages,
                    tools,
                })
                .await
                .result
                .map_err(failed)?;
            Ok(Answer::Verdict(verdict, texts))
        }
        CheckKind::Response => {
            let text = case.text.clone().ok_or("response case without text")?;
            let verdict = policy
                .check_response(&context, &text)
                .await
                .result
                .map_err(failed)?;
            Ok(Answer::Verdict(verdict, vec![text]))
        }
        CheckKind::Tools => {
            let auths = policy.check_tools(&context, &tools).await.result;
            Ok(Answer::Authorizations(auths.map_err(failed)?))
        }
        CheckKind::Calls => {
            let calls: Vec<ToolCall> = case
                .calls
                .iter()
                .enumerate()
                .map(|(i, c)| ToolCall {
                    id: format!("call_{i}"),
                    server: c.server.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments_text(),
                })
                .collect();
            let auths = policy.check_calls(&context, &tools, &calls).await.result;
            Ok(Answer::Authorizations(auths.map_err(failed)?))
        }
    }
}

fn role(r: portcullis_sdk::Role) -> bindings::Role {
    use portcullis_sdk::Role as R;
    match r {
        R::System => bindings::Role::System,
        R::Developer => bindings::Role::Developer,
        R::User => bindings::Role::User,
        R::Assistant => bindings::Role::Assistant,
        R::Tool => bindings::Role::Tool,
    }
}

// The host's generated types and the SDK's are distinct Rust types for the same WIT
// types; fixture comparison lives in the SDK, so answers are converted for it.

fn sdk_finding(f: bindings::Finding) -> portcullis_sdk::Finding {
    portcullis_sdk::Finding {
        category: crate::pipeline::sdk_category(&f.category),
        severity: match f.severity {
            bindings::Severity::Low => portcullis_sdk::Severity::Low,
            bindings::Severity::Medium => portcullis_sdk::Severity::Medium,
            bindings::Severity::High => portcullis_sdk::Severity::High,
            bindings::Severity::Critical => portcullis_sdk::Severity::Critical,
        },
        message: f.message,
        span: f.span.map(|s| portcullis_sdk::Span {
            index: s.index,
            start: s.start,
            end: s.end,
        }),
        score: f.score,
    }
}

fn sdk_findings(f: Vec<bindings::Finding>) -> Vec<portcullis_sdk::Finding> {
    f.into_iter().map(sdk_finding).collect()
}

fn sdk_verdict(v: Verdict) -> portcullis_sdk::Verdict {
    match v {
        Verdict::Allow(f) => portcullis_sdk::Verdict::Allow(sdk_findings(f)),
        Verdict::Deny(f) => portcullis_sdk::Verdict::Deny(sdk_findings(f)),
        Verdict::Modify(m) => portcullis_sdk::Verdict::Modify(portcullis_sdk::Modification {
            findings: sdk_findings(m.findings),
            edits: m
                .edits
                .into_iter()
                .map(|e| match e {
                    bindings::Edit::Redact(r) => {
                        portcullis_sdk::Edit::Redact(portcullis_sdk::Redaction {
                            span: portcullis_sdk::Span {
                                index: r.span.index,
                                start: r.span.start,
                                end: r.span.end,
                            },
                            replacement: r.replacement,
                        })
                    }
                    bindings::Edit::Replace(pair) => portcullis_sdk::Edit::Replace(pair),
                })
                .collect(),
        }),
    }
}

fn sdk_authorizations(list: Vec<Authorization>) -> Vec<portcullis_sdk::Authorization> {
    list.into_iter()
        .map(|a| match a {
            Authorization::Allow => portcullis_sdk::Authorization::Allow,
            Authorization::Deny(f) => portcullis_sdk::Authorization::Deny(sdk_findings(f)),
        })
        .collect()
}
