//! # portcullis-sdk: write Portcullis policies in Rust
//!
//! A Portcullis policy is a WebAssembly component that the host runs in a fresh,
//! fuel-limited sandbox for every request. This crate wraps the generated bindings of
//! the `portcullis:policy` WIT package so a policy is a plain Rust type:
//!
//! * implement [`Guardrail`] (incoming requests), [`OutputFilter`] (model responses,
//!   complete or streamed), [`ToolSandbox`] (tools offered and tool calls made), or
//!   [`Scanner`] (a text scanner the SDK turns into both a guardrail and an output
//!   filter, streaming included);
//! * export it with one macro: [`export_guardrail!`], [`export_output_filter!`],
//!   [`export_tool_sandbox!`] or [`export_scanner!`];
//! * build it with `cargo build --target wasm32-wasip2` (crate type `cdylib`).
//!
//! ## A complete guardrail
//!
//! ```
//! use portcullis_sdk::{config, Category, ChatRequest, Finding, Guardrail, Severity, Verdict};
//!
//! #[derive(serde::Deserialize, Default)]
//! struct Config { banned: Vec<String> }
//!
//! struct BannedWords;
//!
//! impl Guardrail for BannedWords {
//!     fn check_request(request: ChatRequest) -> Verdict {
//!         let cfg: Config = match config() { Ok(c) => c, Err(e) => return Verdict::error(e) };
//!         let mut findings = Vec::new();
//!         for (index, text) in request.untrusted_texts() {
//!             for word in &cfg.banned {
//!                 if let Some(start) = text.find(word.as_str()) {
//!                     findings.push(Finding::new(Category::Custom("banned-word".into()), Severity::High, "banned word")
//!                         .at(index, start, start + word.len()));
//!                 }
//!             }
//!         }
//!         Verdict::deny_if_any(findings)
//!     }
//! }
//! portcullis_sdk::export_guardrail!(BannedWords);
//! # fn main() {}
//! ```
//!
//! ## Fresh instances and start-up cost
//!
//! The host instantiates a policy afresh for every evaluation, so nothing survives from
//! one request to the next. Work done at start-up is paid on every request: do not
//! compile regular expressions in the guest. Use [`Matcher`], which asks the host to
//! compile a pattern list once per policy version and to run the scan natively (the
//! scan is charged to the policy's fuel). Off WebAssembly (unit tests, native
//! benchmarks) [`Matcher`] uses the same `regex` crate directly, with the same results.

extern crate self as portcullis_sdk;

pub mod fixture;
mod matcher;
mod redact;
mod stream;

pub use matcher::{Match, Matcher};
pub use redact::Placeholders;
pub use stream::{HoldBack, char_floor};

/// Generated bindings (wit-bindgen). Policy code normally uses the re-exports at the
/// crate root; the macros use the rest.
#[doc(hidden)]
pub mod bindings {
    /// Shared types and the host imports.
    pub mod imports {
        wit_bindgen::generate!({
            path: "../wit",
            world: "policy-imports",
            additional_derives: [PartialEq],
            runtime_path: "::portcullis_sdk::__private::rt",
        });
    }
    /// The `guardrail` world.
    pub mod guardrail {
        wit_bindgen::generate!({
            path: "../wit",
            world: "guardrail",
            pub_export_macro: true,
            export_macro_name: "__export_guardrail_world",
            default_bindings_module: "::portcullis_sdk::bindings::guardrail",
            runtime_path: "::portcullis_sdk::__private::rt",
            with: {
                "portcullis:policy/types@0.1.0": crate::bindings::imports::portcullis::policy::types,
                "portcullis:policy/host@0.1.0": crate::bindings::imports::portcullis::policy::host,
                "portcullis:policy/matchers@0.1.0": crate::bindings::imports::portcullis::policy::matchers,
            },
        });
    }
    /// The `output-filter` world.
    pub mod output_filter {
        wit_bindgen::generate!({
            path: "../wit",
            world: "output-filter",
            pub_export_macro: true,
            export_macro_name: "__export_output_filter_world",
            default_bindings_module: "::portcullis_sdk::bindings::output_filter",
            runtime_path: "::portcullis_sdk::__private::rt",
            with: {
                "portcullis:policy/types@0.1.0": crate::bindings::imports::portcullis::policy::types,
                "portcullis:policy/host@0.1.0": crate::bindings::imports::portcullis::policy::host,
                "portcullis:policy/matchers@0.1.0": crate::bindings::imports::portcullis::policy::matchers,
            },
        });
    }
    /// The `tool-sandbox` world.
    pub mod tool_sandbox {
        wit_bindgen::generate!({
            path: "../wit",
            world: "tool-sandbox",
            pub_export_macro: true,
            export_macro_name: "__export_tool_sandbox_world",
            default_bindings_module: "::portcullis_sdk::bindings::tool_sandbox",
            runtime_path: "::portcullis_sdk::__private::rt",
            with: {
                "portcullis:policy/types@0.1.0": crate::bindings::imports::portcullis::policy::types,
                "portcullis:policy/host@0.1.0": crate::bindings::imports::portcullis::policy::host,
                "portcullis:policy/matchers@0.1.0": crate::bindings::imports::portcullis::policy::matchers,
            },
        });
    }
}

#[cfg(target_arch = "wasm32")]
use bindings::imports::portcullis::policy::host as host_api;
pub use bindings::imports::portcullis::policy::host::Level;
pub use bindings::imports::portcullis::policy::types::{
    Authorization, Category, ChatRequest, Edit, Finding, Message, Modification, Redaction,
    Released, RequestContext, Role, Severity, Span, StreamVerdict, ToolCall, ToolDefinition,
    Verdict,
};

/// Items the export macros need; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen::rt;

    /// Forward panics to the host log before the instance traps, so the host can
    /// report why a policy failed instead of a bare "unreachable".
    pub fn install_panic_hook() {
        #[cfg(target_arch = "wasm32")]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                std::panic::set_hook(Box::new(|info| {
                    crate::log(crate::Level::Error, &format!("policy panicked: {info}"));
                }));
            });
        }
    }
}

/// An input guardrail: checks every incoming chat request.
pub trait Guardrail {
    /// Check a request (all messages, tool results included, and the tools offered).
    fn check_request(request: ChatRequest) -> Verdict;
}

/// An output filter: checks or rewrites model responses.
pub trait OutputFilter {
    /// The per-stream state for streamed responses.
    type Stream: ResponseStream;
    /// Check a complete response text. Spans use index 0.
    fn check_response(context: RequestContext, text: String) -> Verdict;
}

/// One streamed response being filtered. See [`HoldBack`] for a ready-made one.
pub trait ResponseStream: 'static {
    /// Start filtering a stream.
    fn new(context: RequestContext) -> Self;
    /// Feed the next chunk; return what may be emitted now.
    fn push(&mut self, chunk: &str) -> StreamVerdict;
    /// The stream ended; release or refuse what is held back.
    fn finish(&mut self) -> StreamVerdict;
}

/// A tool sandbox: authorizes tools offered to the model and the calls it makes.
pub trait ToolSandbox {
    /// One authorization per offered tool, in order.
    fn check_tools(context: RequestContext, tools: Vec<ToolDefinition>) -> Vec<Authorization>;
    /// One authorization per call, in order. `tools` are the tools offered.
    fn check_calls(
        context: RequestContext,
        tools: Vec<ToolDefinition>,
        calls: Vec<ToolCall>,
    ) -> Vec<Authorization>;
}

/// What a [`Scanner`] found in one text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScanReport {
    /// Findings; their span index is ignored and set by the caller.
    pub findings: Vec<Finding>,
    /// Byte ranges to replace, with their replacement (for redaction).
    pub redactions: Vec<(usize, usize, String)>,
    /// True when the text must be refused rather than redacted.
    pub deny: bool,
}

/// A text scanner (PII, secrets, ...). [`export_scanner!`] turns it into a component
/// that is both a guardrail (every untrusted message is scanned) and an output filter
/// (complete and streamed responses; streams use [`HoldBack`]).
pub trait Scanner: Sized + 'static {
    /// Build a scanner for one request or stream (read [`config`] here).
    fn new(context: &RequestContext) -> Result<Self, String>;
    /// The longest match this scanner can report, in bytes: a stream holds back this
    /// much text so that matches split across chunks are still caught.
    fn window(&self) -> usize;
    /// Scan one text. Consistent state (placeholder numbering) may live in `self`.
    fn scan(&mut self, text: &str) -> ScanReport;
    /// Whether this message role is scanned as input (default: user and tool messages).
    fn scans_role(&self, role: Role) -> bool {
        matches!(role, Role::User | Role::Tool)
    }
}

impl Finding {
    /// A finding without span or score.
    pub fn new(category: Category, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            category,
            severity,
            message: message.into(),
            span: None,
            score: None,
        }
    }
    /// Attach a span: byte range `start..end` of text number `index`.
    pub fn at(mut self, index: usize, start: usize, end: usize) -> Self {
        self.span = Some(Span {
            index: to_u32(index),
            start: to_u32(start),
            end: to_u32(end),
        });
        self
    }
    /// Attach a confidence score in [0, 1].
    pub fn score(mut self, score: f32) -> Self {
        self.score = Some(score.clamp(0.0, 1.0));
        self
    }
}

impl Verdict {
    /// Deny when there is any finding, allow otherwise.
    pub fn deny_if_any(findings: Vec<Finding>) -> Self {
        if findings.is_empty() {
            Verdict::Allow(Vec::new())
        } else {
            Verdict::Deny(findings)
        }
    }
    /// Report a policy error (bad configuration, impossible input): logs the reason and
    /// panics, which the host records as an `error` outcome and handles per `on_error`.
    pub fn error(reason: impl std::fmt::Display) -> Self {
        fail(reason)
    }
}

impl ChatRequest {
    /// The texts a guardrail should treat as untrusted: user messages and tool results,
    /// with their message index.
    pub fn untrusted_texts(&self) -> impl Iterator<Item = (usize, &str)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m.role, Role::User | Role::Tool))
            .map(|(i, m)| (i, m.content.as_str()))
    }
}

impl Category {
    /// The category a configuration names: one of the contract's (`prompt-injection`,
    /// `jailbreak`, `pii`, `secret`, `toxicity`, `tool-misuse`, `model-extraction`,
    /// `system-prompt-leak`), any other name a custom category.
    pub fn from_name(name: &str) -> Category {
        match name {
            "prompt-injection" => Category::PromptInjection,
            "jailbreak" => Category::Jailbreak,
            "pii" => Category::Pii,
            "secret" => Category::Secret,
            "toxicity" => Category::Toxicity,
            "tool-misuse" => Category::ToolMisuse,
            "model-extraction" => Category::ModelExtraction,
            "system-prompt-leak" => Category::SystemPromptLeak,
            other => Category::Custom(other.to_string()),
        }
    }
}

impl Severity {
    /// The severity a configuration names (`low`, `medium`, `high`, `critical`).
    pub fn from_name(name: &str) -> Result<Severity, String> {
        Ok(match name {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(format!(
                    "unknown severity {other:?}: use low, medium, high or critical"
                ));
            }
        })
    }
}

impl Role {
    /// Parse a role name as used in configurations and fixtures (`user`, `tool`, ...).
    pub fn from_name(name: &str) -> Option<Role> {
        Some(match name {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => return None,
        })
    }
}

/// The message roles a policy scans, as named in its configuration
/// (`roles = ["user", "tool"]`). The default is the untrusted roles: user and tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// Whether `role` is in the set.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }
}

impl Default for Roles {
    fn default() -> Self {
        Roles(vec![Role::User, Role::Tool])
    }
}

impl<'de> serde::Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        names
            .iter()
            .map(|n| {
                Role::from_name(n).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown role {n:?}: use system, developer, user, assistant or tool"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Roles)
    }
}

impl RequestContext {
    /// A context for tests and native use.
    pub fn for_test() -> Self {
        RequestContext {
            request_id: "test".into(),
            client_id: "test".into(),
            model: "test".into(),
            metadata: Vec::new(),
        }
    }
}

/// The operator-supplied configuration of this policy, parsed into `T`. An empty
/// configuration parses as `{}`. The error names the offending field.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    let raw = raw_config();
    serde_json::from_str(&raw).map_err(|e| format!("invalid policy configuration: {e}"))
}

/// The raw JSON configuration text.
pub fn raw_config() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        host_api::config()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::CONFIG.with(|c| c.borrow().clone())
    }
}

/// Write a log line through the host (which caps size and volume).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        host_api::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

/// Log `reason` and abort this evaluation; the host records an `error` outcome and
/// applies the policy's `on_error`. Use it for bad configuration in any entry point.
pub fn fail(reason: impl std::fmt::Display) -> ! {
    let reason = reason.to_string();
    log(Level::Error, &reason);
    panic!("{reason}");
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Export a [`Guardrail`] as the `guardrail` world.
#[macro_export]
macro_rules! export_guardrail {
    ($policy:ty) => {
        // Natively nothing is exported; this keeps the policy type used and checked.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::ChatRequest) -> $crate::Verdict = <$policy as $crate::Guardrail>::check_request;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PortcullisGuardrail;
            impl $crate::bindings::guardrail::exports::portcullis::policy::request_checker::Guest
                for PortcullisGuardrail
            {
                fn check_request(request: $crate::ChatRequest) -> $crate::Verdict {
                    $crate::__private::install_panic_hook();
                    <$policy as $crate::Guardrail>::check_request(request)
                }
            }
            $crate::bindings::guardrail::__export_guardrail_world!(PortcullisGuardrail with_types_in $crate::bindings::guardrail);
        };
    };
}

/// Export an [`OutputFilter`] as the `output-filter` world.
#[macro_export]
macro_rules! export_output_filter {
    ($policy:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::RequestContext, String) -> $crate::Verdict =
            <$policy as $crate::OutputFilter>::check_response;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::output_filter::exports::portcullis::policy::response_filter as rf;
            struct PortcullisFilter;
            struct PortcullisStream(
                ::core::cell::RefCell<<$policy as $crate::OutputFilter>::Stream>,
            );
            impl rf::Guest for PortcullisFilter {
                type ResponseStream = PortcullisStream;
                fn check_response(
                    context: $crate::RequestContext,
                    text: String,
                ) -> $crate::Verdict {
                    $crate::__private::install_panic_hook();
                    <$policy as $crate::OutputFilter>::check_response(context, text)
                }
            }
            impl rf::GuestResponseStream for PortcullisStream {
                fn new(context: $crate::RequestContext) -> Self {
                    $crate::__private::install_panic_hook();
                    PortcullisStream(::core::cell::RefCell::new(
                        <<$policy as $crate::OutputFilter>::Stream as $crate::ResponseStream>::new(context),
                    ))
                }
                fn push(&self, chunk: String) -> $crate::StreamVerdict {
                    $crate::ResponseStream::push(&mut *self.0.borrow_mut(), &chunk)
                }
                fn finish(&self) -> $crate::StreamVerdict {
                    $crate::ResponseStream::finish(&mut *self.0.borrow_mut())
                }
            }
            $crate::bindings::output_filter::__export_output_filter_world!(PortcullisFilter with_types_in $crate::bindings::output_filter);
        };
    };
}

/// Export a [`ToolSandbox`] as the `tool-sandbox` world.
#[macro_export]
macro_rules! export_tool_sandbox {
    ($policy:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::RequestContext, Vec<$crate::ToolDefinition>) -> Vec<$crate::Authorization> =
            <$policy as $crate::ToolSandbox>::check_tools;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PortcullisSandbox;
            impl $crate::bindings::tool_sandbox::exports::portcullis::policy::tool_authorizer::Guest
                for PortcullisSandbox
            {
                fn check_tools(
                    context: $crate::RequestContext,
                    tools: Vec<$crate::ToolDefinition>,
                ) -> Vec<$crate::Authorization> {
                    $crate::__private::install_panic_hook();
                    <$policy as $crate::ToolSandbox>::check_tools(context, tools)
                }
                fn check_calls(
                    context: $crate::RequestContext,
                    tools: Vec<$crate::ToolDefinition>,
                    calls: Vec<$crate::ToolCall>,
                ) -> Vec<$crate::Authorization> {
                    $crate::__private::install_panic_hook();
                    <$policy as $crate::ToolSandbox>::check_calls(context, tools, calls)
                }
            }
            $crate::bindings::tool_sandbox::__export_tool_sandbox_world!(PortcullisSandbox with_types_in $crate::bindings::tool_sandbox);
        };
    };
}

/// Export a [`Scanner`] as the `content-policy` world: a guardrail over untrusted
/// messages and an output filter over responses, streams included.
#[macro_export]
macro_rules! export_scanner {
    ($scanner:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&$crate::ChatRequest) -> $crate::Verdict = $crate::scan_request::<$scanner>;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::guardrail::exports::portcullis::policy::request_checker as rc;
            use $crate::bindings::output_filter::exports::portcullis::policy::response_filter as rf;
            struct PortcullisContent;
            struct PortcullisStream(::core::cell::RefCell<$crate::HoldBack<$scanner>>);
            impl rc::Guest for PortcullisContent {
                fn check_request(request: $crate::ChatRequest) -> $crate::Verdict {
                    $crate::__private::install_panic_hook();
                    $crate::scan_request::<$scanner>(&request)
                }
            }
            impl rf::Guest for PortcullisContent {
                type ResponseStream = PortcullisStream;
                fn check_response(
                    context: $crate::RequestContext,
                    text: String,
                ) -> $crate::Verdict {
                    $crate::__private::install_panic_hook();
                    $crate::scan_response::<$scanner>(&context, &text)
                }
            }
            impl rf::GuestResponseStream for PortcullisStream {
                fn new(context: $crate::RequestContext) -> Self {
                    $crate::__private::install_panic_hook();
                    PortcullisStream(::core::cell::RefCell::new($crate::ResponseStream::new(context)))
                }
                fn push(&self, chunk: String) -> $crate::StreamVerdict {
                    $crate::ResponseStream::push(&mut *self.0.borrow_mut(), &chunk)
                }
                fn finish(&self) -> $crate::StreamVerdict {
                    $crate::ResponseStream::finish(&mut *self.0.borrow_mut())
                }
            }
            // Both worlds' exports together make the `content-policy` world.
            $crate::bindings::guardrail::__export_guardrail_world!(PortcullisContent with_types_in $crate::bindings::guardrail);
            $crate::bindings::output_filter::__export_output_filter_world!(PortcullisContent with_types_in $crate::bindings::output_filter);
        };
    };
}

/// Run a [`Scanner`] over the request's messages the scanner cares about, and combine
/// the reports into one verdict: deny if any report denies, modify if anything is to be
/// redacted, allow (with informational findings) otherwise.
pub fn scan_request<S: Scanner>(request: &ChatRequest) -> Verdict {
    let mut scanner = match S::new(&request.context) {
        Ok(s) => s,
        Err(e) => return Verdict::error(e),
    };
    let mut combined = Combined::default();
    for (index, message) in request.messages.iter().enumerate() {
        if scanner.scans_role(message.role) {
            let report = scanner.scan(&message.content);
            combined.add(index, report);
        }
    }
    combined.into_verdict()
}

/// Run a [`Scanner`] over one complete response text (span index 0).
pub fn scan_response<S: Scanner>(context: &RequestContext, text: &str) -> Verdict {
    let mut scanner = match S::new(context) {
        Ok(s) => s,
        Err(e) => return Verdict::error(e),
    };
    let mut combined = Combined::default();
    combined.add(0, scanner.scan(text));
    combined.into_verdict()
}

#[derive(Default)]
struct Combined {
    findings: Vec<Finding>,
    edits: Vec<Edit>,
    deny: bool,
}

impl Combined {
    fn add(&mut self, index: usize, report: ScanReport) {
        self.deny |= report.deny;
        for mut finding in report.findings {
            if let Some(span) = finding.span.as_mut() {
                span.index = to_u32(index);
            }
            self.findings.push(finding);
        }
        for (start, end, replacement) in report.redactions {
            self.edits.push(Edit::Redact(Redaction {
                span: Span {
                    index: to_u32(index),
                    start: to_u32(start),
                    end: to_u32(end),
                },
                replacement,
            }));
        }
    }

    fn into_verdict(self) -> Verdict {
        if self.deny {
            Verdict::Deny(self.findings)
        } else if !self.edits.is_empty() {
            Verdict::Modify(Modification {
                edits: self.edits,
                findings: self.findings,
            })
        } else {
            Verdict::Allow(self.findings)
        }
    }
}
