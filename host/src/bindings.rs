//! Host-side bindings generated from `wit/policy.wit`: one module per world, sharing
//! the `types`, `host` and `matchers` interfaces of the `guardrail` module. Exports are
//! called asynchronously so a running policy yields to tokio at every epoch tick.

/// The `guardrail` world (and the shared interfaces).
pub mod guardrail {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "guardrail",
        exports: { default: async },
        with: { "portcullis:policy/matchers.matcher": crate::matchers::MatcherHandle },
    });
}

/// The `output-filter` world.
pub mod output_filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "output-filter",
        exports: { default: async },
        with: {
            "portcullis:policy/types": crate::bindings::guardrail::portcullis::policy::types,
            "portcullis:policy/host": crate::bindings::guardrail::portcullis::policy::host,
            "portcullis:policy/matchers": crate::bindings::guardrail::portcullis::policy::matchers,
        },
    });
}

/// The `tool-sandbox` world.
pub mod tool_sandbox {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "tool-sandbox",
        exports: { default: async },
        with: {
            "portcullis:policy/types": crate::bindings::guardrail::portcullis::policy::types,
            "portcullis:policy/host": crate::bindings::guardrail::portcullis::policy::host,
            "portcullis:policy/matchers": crate::bindings::guardrail::portcullis::policy::matchers,
        },
    });
}

pub use guardrail::portcullis::policy::host::Level;
pub use guardrail::portcullis::policy::matchers::Match;
pub use guardrail::portcullis::policy::types::{
    Authorization, Category, ChatRequest, Edit, Finding, Message, Modification, Redaction,
    Released, RequestContext, Role, Severity, Span, StreamVerdict, ToolCall, ToolDefinition,
    Verdict,
};
