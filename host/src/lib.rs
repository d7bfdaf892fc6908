//! # Portcullis
//!
//! A WebAssembly policy-engine host for LLM traffic. Policies (input guardrails,
//! output filters, tool sandboxes) are WebAssembly components implementing the
//! `portcullis:policy` WIT contract; the host runs each evaluation in a fresh,
//! fuel-limited sandbox and combines the verdicts of a pipeline of policies.
//!
//! * [`engine`]: wasmtime setup, compilation cache, limits and sandboxed runs;
//! * [`policy`]: a loaded policy and its entry points;
//! * [`matchers`]: host-compiled regular expressions policies may use;
//! * [`config`]: the pipeline configuration file;
//! * [`lifecycle`]: the active policy set, hot reload and status;
//! * [`releases`]: the lifecycle directory (archived releases, rollback pins, journal);
//! * [`rollout`]: shadow and canary candidates next to a policy's active version;
//! * [`watch`]: reloading when the policy files change;
//! * [`loader`]: verifying, compiling and self-testing a configured policy;
//! * [`pipeline`]: stages, verdict combination and decisions;
//! * [`openai`]: OpenAI Chat Completions payloads in and out of the contract types;
//! * [`gateway`]: the OpenAI-compatible HTTP gateway (`portcullis serve`);
//! * [`observe`]: the audit log, metrics, alerts and drift monitoring;
//! * [`check`]: checking one request or response payload (`portcullis check`, check API);
//! * [`fixtures`]: running policies' fixtures (the CI eval gate);
//! * [`conformance`]: the conformance kit any guest must pass (`portcullis conform`);
//! * [`artifact`]: signed policy artifacts (bundles, keys, the trust store);
//! * [`registry`]: policies through an OCI registry (push, pull, the host's poller).

pub mod artifact;
pub mod bindings;
pub mod check;
pub mod config;
pub mod conformance;
pub mod engine;
pub mod fixtures;
pub mod gateway;
pub mod lifecycle;
pub mod loader;
pub mod matchers;
pub mod observe;
pub mod openai;
pub mod pipeline;
pub mod policy;
pub mod registry;
pub mod releases;
pub mod rollout;
pub mod toml_file;
pub mod watch;
