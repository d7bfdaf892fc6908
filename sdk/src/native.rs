//! Native stand-ins for the host, for unit tests and benchmarks: run a policy's Rust
//! code directly (no WebAssembly) against its fixtures.

use std::cell::RefCell;

use crate::fixture::{self, CheckKind, Fixture, Observed, observe_authorizations, observe_verdict};
use crate::{
    Authorization, ChatRequest, Guardrail, Message, OutputFilter, RequestContext, Scanner,
    ToolCall, ToolDefinition, ToolSandbox, Verdict,
};

thread_local! {
    pub(crate) static CONFIG: RefCell<String> = RefCell::new("{}".to_string());
}

/// Set the configuration [`crate::config`] returns on this thread.
pub fn set_config(json: &str) {
    CONFIG.with(|c| *c.borrow_mut() = json.to_string());
}

type RequestFn = fn(ChatRequest) -> Verdict;
type ResponseFn = fn(RequestContext, String) -> Verdict;
type ToolsFn = fn(RequestContext, Vec<ToolDefinition>) -> Vec<Authorization>;
type CallsFn = fn(RequestContext, Vec<ToolDefinition>, Vec<ToolCall>) -> Vec<Authorization>;

/// A policy's entry points, called natively.
#[derive(Default)]
pub struct NativePolicy {
    request: Option<RequestFn>,
    response: Option<ResponseFn>,
    tools: Option<ToolsFn>,
    calls: Option<CallsFn>,
}

impl NativePolicy {
    /// A [`Guardrail`].
    pub fn guardrail<P: Guardrail>() -> Self {
        NativePolicy {
            request: Some(P::check_request),
            ..Default::default()
        }
    }
    /// An [`OutputFilter`].
    pub fn output_filter<P: OutputFilter>() -> Self {
        NativePolicy {
            response: Some(P::check_response),
            ..Default::default()
        }
    }
    /// A [`Scanner`] (guardrail and output filter).
    pub fn scanner<S: Scanner>() -> Self {
        NativePolicy {
            request: Some(|r| crate::scan_request::<S>(&r)),
            response: Some(|c, t| crate::scan_response::<S>(&c, &t)),
            ..Default::default()
        }
    }
    /// A [`ToolSandbox`].
    pub fn tool_sandbox<P: ToolSandbox>() -> Self {
        NativePolicy {
            tools: Some(P::check_tools),
            calls: Some(P::check_calls),
            ..Default::default()
        }
    }

    /// Run every case of a fixtures file with `default_config` (unless a case sets its
    /// own). Returns one line per failing case.
    pub fn run_fixtures(&self, jsonl: &str, default_config: &str) -> Vec<String> {
        let cases = match fixture::parse(jsonl) {
            Ok(c) => c,
            Err(e) => return vec![e],
        };
        cases
            .iter()
            .filter_map(|case| {
                let config = case
                    .config
                    .as_ref()
                    .map_or_else(|| default_config.to_string(), |c| c.to_string());
                set_config(&config);
                match self.observe(case).and_then(|o| case.expect.check(&o)) {
                    Ok(()) => None,
                    Err(e) => Some(format!("{}: {e}", case.name)),
                }
            })
            .collect()
    }

    fn observe(&self, case: &Fixture) -> Result<Observed, String> {
        let context = RequestContext::for_test();
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
        let missing = |what: &str| format!("this policy has no {what} entry point");
        match case.check {
            CheckKind::Request => {
                let f = self.request.ok_or_else(|| missing("request"))?;
                let messages = case
                    .messages
                    .iter()
                    .map(|m| {
                        Ok(Message {
                            role: fixture::parse_role(&m.role)?,
                            content: m.content.clone(),
                            name: None,
                            tool_call_id: None,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let texts: Vec<String> = messages.iter().map(|m| m.content.clone()).collect();
                observe_verdict(
                    f(ChatRequest {
                        context,
                        messages,
                        tools,
                    }),
                    &texts,
                )
            }
            CheckKind::Response => {
                let f = self.response.ok_or_else(|| missing("response"))?;
                let text = case.text.clone().ok_or("response case without text")?;
                observe_verdict(f(context, text.clone()), &[text])
            }
            CheckKind::Tools => {
                let f = self.tools.ok_or_else(|| missing("tools"))?;
                Ok(observe_authorizations(&f(context, tools)))
            }
            CheckKind::Calls => {
                let f = self.calls.ok_or_else(|| missing("calls"))?;
                let calls = case
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
                Ok(observe_authorizations(&f(context, tools, calls)))
            }
        }
    }
}
