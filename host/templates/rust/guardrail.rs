//! # {{name}}: an input guardrail
//!
//! Denies requests whose user or tool messages contain a configured phrase (ASCII
//! letters compared case-insensitively). Replace the logic in `check_request` with
//! your own; `fixtures/cases.jsonl` says what the policy must answer.
//!
//! Configuration: `{"phrases": ["ignore previous instructions"]}` (the default).

use portcullis_sdk::{Category, ChatRequest, Finding, Guardrail, Severity, Verdict, fail};
use serde::Deserialize;

/// The operator's configuration (`[policies.config]` in the host's configuration).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_phrases")]
    phrases: Vec<String>,
}

fn default_phrases() -> Vec<String> {
    vec!["ignore previous instructions".into()]
}

struct Policy;

impl Guardrail for Policy {
    fn check_request(request: ChatRequest) -> Verdict {
        // A bad configuration ends the evaluation as an error (the host applies the
        // policy's `on_error`), never as a silent allow.
        let config: Config = portcullis_sdk::config().unwrap_or_else(|e| fail(e));
        if let Some(i) = config.phrases.iter().position(String::is_empty) {
            fail(format!("phrases[{i}] is empty"));
        }
        let phrases: Vec<String> = config
            .phrases
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let mut findings = Vec::new();
        for (index, text) in request.untrusted_texts() {
            // ASCII lowercasing keeps every byte offset the same as in `text`.
            let lowered = text.to_ascii_lowercase();
            for (i, phrase) in phrases.iter().enumerate() {
                for (start, _) in lowered.match_indices(phrase.as_str()) {
                    findings.push(
                        Finding::new(
                            Category::PromptInjection,
                            Severity::High,
                            // Messages never repeat the user's text.
                            format!("matches blocked phrase {i}"),
                        )
                        .at(index, start, start + phrase.len()),
                    );
                }
            }
        }
        Verdict::deny_if_any(findings)
    }
}

portcullis_sdk::export_guardrail!(Policy);

#[cfg(test)]
mod tests {
    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::guardrail::<super::Policy>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
