//! # keyword-guard: deny requests that contain configured phrases or patterns
//!
//! The simplest useful input guardrail, and the reference for the same policy in
//! Python, JavaScript and C (`policies/keyword-guard-*`): every language's version
//! passes `fixtures/cases.jsonl`.
//!
//! Every message of a scanned role (default: user and tool) is searched for each
//! `keywords` phrase (ASCII letters compared case-insensitively, everything else
//! exactly) and each `patterns` regular expression (compiled by the host, Rust `regex`
//! syntax). Each hit is a finding with the configured category and severity and a
//! span in UTF-8 bytes; any finding denies the request.
//!
//! ## Configuration
//!
//! ```json
//! {"keywords": ["ignore previous instructions"],
//!  "patterns": ["(?i)\\bDAN\\s+mode\\b"],
//!  "category": "jailbreak", "severity": "high", "roles": ["user", "tool"]}
//! ```
//!
//! `category` is one of the contract's categories (`prompt-injection`, `jailbreak`,
//! `pii`, `secret`, `toxicity`, `tool-misuse`, `model-extraction`,
//! `system-prompt-leak`) or any other name (a custom category); default
//! `prompt-injection`. `severity`: `low`, `medium`, `high` (default) or `critical`.
//! With neither keywords nor patterns the policy allows everything.

use portcullis_sdk::{
    Category, ChatRequest, Finding, Guardrail, Matcher, Roles, Severity, Verdict, fail,
};
use serde::Deserialize;

/// Findings reported per request, at most.
const MAX_FINDINGS: usize = 20;

/// The configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Phrases (ASCII case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Category of the findings.
    #[serde(default)]
    pub category: Option<String>,
    /// Severity of the findings.
    #[serde(default)]
    pub severity: Option<String>,
    /// Roles scanned.
    #[serde(default)]
    pub roles: Roles,
}

/// The guardrail.
pub struct KeywordGuard;

impl Guardrail for KeywordGuard {
    fn check_request(request: ChatRequest) -> Verdict {
        let config: Config = portcullis_sdk::config().unwrap_or_else(|e| fail(e));
        let category =
            Category::from_name(config.category.as_deref().unwrap_or("prompt-injection"));
        let severity = Severity::from_name(config.severity.as_deref().unwrap_or("high"))
            .unwrap_or_else(|e| fail(e));
        if let Some(empty) = config.keywords.iter().position(String::is_empty) {
            fail(format!("keywords[{empty}] is empty"));
        }
        let keywords: Vec<Vec<u8>> = config
            .keywords
            .iter()
            .map(|k| k.to_ascii_lowercase().into_bytes())
            .collect();
        let matcher = if config.patterns.is_empty() {
            None
        } else {
            Some(Matcher::new(&config.patterns).unwrap_or_else(|e| fail(e)))
        };
        let mut findings = Vec::new();
        for (index, message) in request.messages.iter().enumerate() {
            if !config.roles.contains(message.role) {
                continue;
            }
            let text = message.content.to_ascii_lowercase().into_bytes();
            for (k, keyword) in keywords.iter().enumerate() {
                for start in find_all(&text, keyword) {
                    findings.push(
                        Finding::new(category.clone(), severity, format!("keyword {k} matched"))
                            .at(index, start, start + keyword.len()),
                    );
                }
            }
            for m in matcher.iter().flat_map(|m| m.find_all(&message.content)) {
                findings.push(
                    Finding::new(
                        category.clone(),
                        severity,
                        format!("pattern {} matched", m.pattern),
                    )
                    .at(index, m.start, m.end),
                );
            }
        }
        findings.truncate(MAX_FINDINGS);
        Verdict::deny_if_any(findings)
    }
}

/// Start offsets of the non-overlapping occurrences of `needle` in `haystack`.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + needle.len() <= haystack.len() {
        if haystack[at..].starts_with(needle) {
            found.push(at);
            at += needle.len();
        } else {
            at += 1;
        }
    }
    found
}

portcullis_sdk::export_guardrail!(KeywordGuard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::guardrail::<KeywordGuard>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), DEFAULT_CONFIG);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// The configuration the fixtures run with unless a case overrides it.
    const DEFAULT_CONFIG: &str = r#"{"keywords": ["ignore previous instructions", "developer mode"], "patterns": ["(?i)(?-u:\\b)DAN(?-u:\\b)", "(?i)system\\s+prompt"]}"#;

    #[test]
    fn occurrences_do_not_overlap() {
        assert_eq!(find_all(b"aaaa", b"aa"), vec![0, 2]);
        assert_eq!(find_all(b"ab", b"abc"), Vec::<usize>::new());
    }
}
