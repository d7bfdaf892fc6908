//! A loaded policy: its compiled component, which contracts it exports, its limits,
//! and one entry point per contract function (each a fresh, sandboxed evaluation).

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};

use crate::bindings::guardrail::GuardrailPre;
use crate::bindings::output_filter::{OutputFilter, OutputFilterPre};
use crate::bindings::tool_sandbox::ToolSandboxPre;
use crate::bindings::{
    Authorization, Category, ChatRequest, Edit, Finding, RequestContext, StreamVerdict, ToolCall,
    ToolDefinition, Verdict,
};
use crate::engine::{Engine, Limits, Outcome, OutputSize, PolicyShared, Run, RunState};

/// Which contracts a policy's component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Exports {
    /// `request-checker` (guardrail world).
    pub guardrail: bool,
    /// `response-filter` (output-filter world).
    pub output_filter: bool,
    /// `tool-authorizer` (tool-sandbox world).
    pub tool_sandbox: bool,
}

/// A compiled, linked policy, ready for any number of concurrent evaluations.
#[derive(Clone)]
pub struct Policy {
    engine: Arc<Engine>,
    shared: Arc<PolicyShared>,
    digest: String,
    limits: Limits,
    guardrail: Option<GuardrailPre<RunState>>,
    output_filter: Option<OutputFilterPre<RunState>>,
    tool_sandbox: Option<ToolSandboxPre<RunState>>,
}

impl Policy {
    pub(crate) fn new(
        engine: Arc<Engine>,
        shared: Arc<PolicyShared>,
        digest: String,
        pre: InstancePre<RunState>,
        limits: Limits,
    ) -> Result<Policy, String> {
        let policy = Policy {
            guardrail: GuardrailPre::new(pre.clone()).ok(),
            output_filter: OutputFilterPre::new(pre.clone()).ok(),
            tool_sandbox: ToolSandboxPre::new(pre).ok(),
            engine,
            shared,
            digest,
            limits,
        };
        let exports = policy.exports();
        if !(exports.guardrail || exports.output_filter || exports.tool_sandbox) {
            return Err(
                "the component exports none of the portcullis:policy contracts \
                        (request-checker, response-filter, tool-authorizer)"
                    .into(),
            );
        }
        Ok(policy)
    }

    /// The policy's configured name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// `sha256:` + hex SHA-256 of the component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The contracts the component exports.
    pub fn exports(&self) -> Exports {
        Exports {
            guardrail: self.guardrail.is_some(),
            output_filter: self.output_filter.is_some(),
            tool_sandbox: self.tool_sandbox.is_some(),
        }
    }

    /// Check a chat request (guardrail contract).
    pub async fn check_request(&self, request: &ChatRequest) -> Run<Verdict> {
        let Some(pre) = &self.guardrail else {
            return self.missing("request-checker");
        };
        self.engine
            .run(
                &self.shared,
                self.limits,
                async |store: &mut Store<RunState>| {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    guest
                        .portcullis_policy_request_checker()
                        .call_check_request(&mut *store, request)
                        .await
                },
            )
            .await
    }

    /// Check a complete response text (output-filter contract).
    pub async fn check_response(&self, context: &RequestContext, text: &str) -> Run<Verdict> {
        let Some(pre) = &self.output_filter else {
            return self.missing("response-filter");
        };
        self.engine
            .run(
                &self.shared,
                self.limits,
                async |store: &mut Store<RunState>| {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    guest
                        .portcullis_policy_response_filter()
                        .call_check_response(&mut *store, context, text)
                        .await
                },
            )
            .await
    }

    /// Authorize the tools offered to the model (tool-sandbox contract).
    pub async fn check_tools(
        &self,
        context: &RequestContext,
        tools: &[ToolDefinition],
    ) -> Run<Vec<Authorization>> {
        let Some(pre) = &self.tool_sandbox else {
            return self.missing("tool-authorizer");
        };
        let run = self
            .engine
            .run(
                &self.shared,
                self.limits,
                async |store: &mut Store<RunState>| {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    guest
                        .portcullis_policy_tool_authorizer()
                        .call_check_tools(&mut *store, context, tools)
                        .await
                },
            )
            .await;
        expect_count(run, tools.len())
    }

    /// Authorize the tool calls the model made (tool-sandbox contract).
    pub async fn check_calls(
        &self,
        context: &RequestContext,
        tools: &[ToolDefinition],
        calls: &[ToolCall],
    ) -> Run<Vec<Authorization>> {
        let Some(pre) = &self.tool_sandbox else {
            return self.missing("tool-authorizer");
        };
        let run = self
            .engine
            .run(
                &self.shared,
                self.limits,
                async |store: &mut Store<RunState>| {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    guest
                        .portcullis_policy_tool_authorizer()
                        .call_check_calls(&mut *store, context, tools, calls)
                        .await
                },
            )
            .await;
        expect_count(run, calls.len())
    }

    /// Start filtering a streamed response: one instance for the whole stream.
    pub async fn open_stream(&self, context: &RequestContext) -> Result<PolicyStream, Run<()>> {
        let Some(pre) = &self.output_filter else {
            return Err(self.missing("response-filter"));
        };
        let mut store = self.engine.new_store(&self.shared, self.limits).await;
        let opened = crate::engine::rerun(&mut store, async |store: &mut Store<RunState>| {
            let guest = pre.instantiate_async(&mut *store).await?;
            let handle = guest
                .portcullis_policy_response_filter()
                .response_stream()
                .call_constructor(&mut *store, context)
                .await?;
            Ok(Opened(guest, handle))
        })
        .await;
        match opened.result {
            Ok(Opened(guest, handle)) => Ok(PolicyStream {
                store,
                guest,
                handle,
                failed: false,
            }),
            Err(outcome) => Err(Run {
                result: Err(outcome),
                fuel_used: opened.fuel_used,
                micros: opened.micros,
                logs_dropped: opened.logs_dropped,
            }),
        }
    }

    fn missing<T>(&self, export: &str) -> Run<T> {
        Run {
            result: Err(Outcome::Error(format!(
                "policy {} does not export {export}",
                self.name()
            ))),
            fuel_used: 0,
            micros: 0,
            logs_dropped: 0,
        }
    }
}

/// A streaming output filter bound to one response stream.
pub struct PolicyStream {
    store: Store<RunState>,
    guest: OutputFilter,
    handle: ResourceAny,
    failed: bool,
}

impl PolicyStream {
    /// Feed the next chunk (fresh fuel and deadline for each call).
    pub async fn push(&mut self, chunk: &str) -> Run<StreamVerdict> {
        self.call(Some(chunk)).await
    }

    /// End of stream: release or refuse what the filter holds back.
    pub async fn finish(&mut self) -> Run<StreamVerdict> {
        self.call(None).await
    }

    async fn call(&mut self, chunk: Option<&str>) -> Run<StreamVerdict> {
        if self.failed {
            return Run {
                result: Err(Outcome::Error("the stream filter already failed".into())),
                fuel_used: 0,
                micros: 0,
                logs_dropped: 0,
            };
        }
        let (guest, handle) = (&self.guest, self.handle);
        let run = crate::engine::rerun(&mut self.store, async |store: &mut Store<RunState>| {
            let stream = guest.portcullis_policy_response_filter().response_stream();
            match chunk {
                Some(chunk) => stream.call_push(&mut *store, handle, chunk).await,
                None => stream.call_finish(&mut *store, handle).await,
            }
        })
        .await;
        self.failed = run.result.is_err();
        run
    }
}

/// A freshly constructed stream filter.
struct Opened(OutputFilter, ResourceAny);

impl OutputSize for Opened {
    fn output_size(&self) -> usize {
        0
    }
}

fn expect_count(mut run: Run<Vec<Authorization>>, expected: usize) -> Run<Vec<Authorization>> {
    if let Ok(list) = &run.result
        && list.len() != expected
    {
        run.result = Err(Outcome::Error(format!(
            "returned {} authorizations for {expected} items",
            list.len()
        )));
    }
    run
}

fn findings_size(findings: &[Finding]) -> usize {
    findings
        .iter()
        .map(|f| {
            f.message.len()
                + match &f.category {
                    Category::Custom(name) => name.len(),
                    _ => 0,
                }
        })
        .sum()
}

impl OutputSize for Verdict {
    fn output_size(&self) -> usize {
        match self {
            Verdict::Allow(f) | Verdict::Deny(f) => findings_size(f),
            Verdict::Modify(m) => {
                findings_size(&m.findings)
                    + m.edits
                        .iter()
                        .map(|e| match e {
                            Edit::Redact(r) => r.replacement.len(),
                            Edit::Replace((_, text)) => text.len(),
                        })
                        .sum::<usize>()
            }
        }
    }
}

impl OutputSize for Vec<Authorization> {
    fn output_size(&self) -> usize {
        self.iter()
            .map(|a| match a {
                Authorization::Allow => 0,
                Authorization::Deny(f) => findings_size(f),
            })
            .sum()
    }
}

impl OutputSize for StreamVerdict {
    fn output_size(&self) -> usize {
        match self {
            StreamVerdict::Emit(r) => r.text.len() + findings_size(&r.findings),
            StreamVerdict::Deny(f) => findings_size(f),
        }
    }
}
