//! `[gateway]`: how `portcullis serve` listens, which clients it admits and where it
//! sends the model calls.
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:8080"
//! max_body_kb = 1024                 # larger request bodies get 413
//! on_denied_tool = "remove"          # offered tools a policy refuses: "remove" or "deny"
//! on_denied_call = "drop"            # tool calls a policy refuses: "drop" or "deny"
//!
//! [gateway.upstream]                 # absent: the embedded mock model
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"     # the key is read from this variable, never the file
//! timeout_ms = 60000
//!
//! [[gateway.clients]]                # API keys the gateway accepts
//! id = "team-a"
//! key_sha256 = "9f86d08..."          # SHA-256 (hex) of the key: the file holds no secret
//! tokens_per_minute = 20000          # token budgets (prompt + completion), optional
//! tokens_per_day = 1000000
//! ```

use std::net::SocketAddr;

use serde::Deserialize;

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Request bodies over this many KiB are refused (413).
    pub max_body_kb: u32,
    /// What happens to an offered tool a policy refuses.
    pub on_denied_tool: DeniedTool,
    /// What happens to a tool call a policy refuses.
    pub on_denied_call: DeniedCall,
    /// The model server; `None`: the embedded mock model.
    pub upstream: Option<UpstreamSection>,
    /// The embedded mock model's behaviour.
    pub mock: MockSection,
    /// Clients and their API keys.
    pub clients: Vec<ClientSection>,
    /// Admit requests without an API key as client `anonymous`. Off by default: a
    /// gateway without clients refuses everything.
    pub allow_anonymous: bool,
    /// Completion tokens reserved against a budget when a request sets no
    /// `max_tokens` / `max_completion_tokens`.
    pub default_max_tokens: u64,
    /// What models cost, for the cost metrics and audit records.
    pub prices: Vec<crate::observe::Price>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_kb: 1024,
            on_denied_tool: DeniedTool::Remove,
            on_denied_call: DeniedCall::Drop,
            upstream: None,
            mock: MockSection::default(),
            clients: Vec::new(),
            allow_anonymous: false,
            default_max_tokens: 1024,
            prices: Vec::new(),
        }
    }
}

/// `on_denied_tool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedTool {
    /// The tool is removed from the request; the request goes on.
    Remove,
    /// The whole request is refused.
    Deny,
}

/// `on_denied_call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedCall {
    /// The call is removed from the response; the response goes on.
    Drop,
    /// The whole response is refused.
    Deny,
}

/// `[gateway.upstream]`: any OpenAI-compatible server (OpenAI, vLLM, Ollama,
/// llama.cpp server, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Base URL, up to and including `/v1`.
    pub base_url: String,
    /// Environment variable holding the upstream API key (sent as a bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whole-call timeout, milliseconds (504 when exceeded before the first byte).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Connection timeout, milliseconds (502 when exceeded).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

/// `[gateway.mock]`: the embedded deterministic mock model, used when no upstream is
/// configured. It answers the last user message with the first rule whose `when`
/// appears in it (case-insensitive), and otherwise echoes it back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockSection {
    /// The model name it reports and lists.
    pub model: String,
    /// Characters per streamed chunk (small, so matches split across chunks).
    pub chunk_chars: usize,
    /// Canned answers.
    pub rules: Vec<MockRule>,
}

impl Default for MockSection {
    fn default() -> Self {
        MockSection {
            model: "portcullis-mock".into(),
            chunk_chars: 8,
            rules: Vec::new(),
        }
    }
}

/// One canned answer of the mock model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockRule {
    /// Text that selects this rule.
    pub when: String,
    /// The answer's text.
    #[serde(default)]
    pub reply: String,
    /// A tool call to make instead of (or with) the text.
    #[serde(default)]
    pub tool_call: Option<MockToolCall>,
}

/// A tool call the mock model makes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockToolCall {
    /// Function name (`server__tool`).
    pub name: String,
    /// Arguments (a JSON text).
    pub arguments: String,
}

/// `[[gateway.clients]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// The client id decisions, budgets and logs use.
    pub id: String,
    /// SHA-256 (hex) of the API key.
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// Or: an environment variable holding the API key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Token budget per minute (prompt + completion); none: unlimited.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Token budget per UTC day.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
}

impl GatewaySection {
    /// Check the section; errors name the key (relative to `gateway.`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: String, m: &str| Err((k, m.to_string()));
        if self.max_body_kb == 0 {
            return err("max_body_kb".into(), "must be at least 1");
        }
        if self.mock.chunk_chars == 0 {
            return err("mock.chunk_chars".into(), "must be at least 1");
        }
        if let Some(u) = &self.upstream
            && !(u.base_url.starts_with("http://") || u.base_url.starts_with("https://"))
        {
            return err(
                "upstream.base_url".into(),
                "must be an http:// or https:// URL (up to and including /v1)",
            );
        }
        for (i, p) in self.prices.iter().enumerate() {
            let valid = |v: f64| v.is_finite() && v >= 0.0;
            if p.model.is_empty()
                || !valid(p.prompt_per_million)
                || !valid(p.completion_per_million)
            {
                return err(
                    format!("prices[{i}]"),
                    "needs a model (or \"*\") and non-negative prices per million tokens",
                );
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let key = |f: &str| format!("clients[{i}].{f}");
            if c.id.trim().is_empty() || !ids.insert(c.id.as_str()) {
                return err(key("id"), "must be non-empty and unique");
            }
            match (&c.key_sha256, &c.key_env) {
                (Some(h), None) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (Some(_), None) => {
                    return err(
                        key("key_sha256"),
                        "must be 64 hex digits (sha256 of the key)",
                    );
                }
                (None, Some(_)) => {}
                _ => {
                    return err(
                        key("key_sha256"),
                        "set exactly one of key_sha256 and key_env",
                    );
                }
            }
        }
        Ok(())
    }
}
