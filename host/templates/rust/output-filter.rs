//! # {{name}}: an output filter
//!
//! Redacts configured words (case-sensitive) from model responses, complete or
//! streamed. Streams go through the SDK's `HoldBack`, which holds back the last
//! `window()` bytes so a word split across chunks is still caught. Replace the logic
//! in `scan` with your own; `fixtures/cases.jsonl` says what the policy must answer.
//!
//! Configuration: `{"words": ["CONFIDENTIAL"]}` (the default).

use portcullis_sdk::{
    Category, Finding, HoldBack, OutputFilter, RequestContext, ScanReport, Scanner, Severity,
    Verdict,
};
use serde::Deserialize;

/// What replaces each redacted word.
const REPLACEMENT: &str = "[REDACTED]";

/// The operator's configuration (`[policies.config]` in the host's configuration).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_words")]
    words: Vec<String>,
}

fn default_words() -> Vec<String> {
    vec!["CONFIDENTIAL".into()]
}

struct Redactor {
    words: Vec<String>,
}

impl Scanner for Redactor {
    fn new(_context: &RequestContext) -> Result<Self, String> {
        let config: Config = portcullis_sdk::config()?;
        if let Some(i) = config.words.iter().position(String::is_empty) {
            return Err(format!("words[{i}] is empty"));
        }
        Ok(Redactor {
            words: config.words,
        })
    }

    fn window(&self) -> usize {
        self.words.iter().map(String::len).max().unwrap_or(1) - 1
    }

    fn scan(&mut self, text: &str) -> ScanReport {
        let mut report = ScanReport::default();
        let mut at = 0;
        // Left to right; at each position the first configured word that matches wins.
        while at < text.len() {
            let hit = self
                .words
                .iter()
                .enumerate()
                .find(|(_, w)| text.as_bytes()[at..].starts_with(w.as_bytes()));
            match hit {
                Some((i, word)) => {
                    let end = at + word.len();
                    report.findings.push(
                        Finding::new(
                            Category::Custom("redacted-word".into()),
                            Severity::Medium,
                            format!("redacted word {i}"),
                        )
                        .at(0, at, end),
                    );
                    report.redactions.push((at, end, REPLACEMENT.into()));
                    at = end;
                }
                None => at += 1,
            }
        }
        report
    }
}

struct Policy;

impl OutputFilter for Policy {
    type Stream = HoldBack<Redactor>;

    fn check_response(context: RequestContext, text: String) -> Verdict {
        portcullis_sdk::scan_response::<Redactor>(&context, &text)
    }
}

portcullis_sdk::export_output_filter!(Policy);

#[cfg(test)]
mod tests {
    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::output_filter::<super::Policy>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
