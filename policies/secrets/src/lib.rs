//! # secrets: find credentials in prompts, tool results and model output
//!
//! A [`Scanner`]: the same code runs as an input guardrail (user and tool messages by
//! default) and as an output filter (complete and streamed responses).
//!
//! ## What it detects
//!
//! | detector | what | severity |
//! |---|---|---|
//! | `private_key` | PEM / OpenSSH / PGP / SSH2 private key blocks; a BEGIN header alone already counts | critical |
//! | `jwt` | signed JWTs: three base64url segments, header a JSON object with `alg` | high |
//! | `aws_access_key` | `AKIA`/`ABIA`/`ACCA` (critical) and `ASIA` (temporary, high) + 16 base32 characters | critical / high |
//! | `aws_secret_key` | 40 base64 characters after an `aws_secret_access_key`-like name, or near an access key ID | critical |
//! | `github_token` | `ghp_` `gho_` `ghu_` `ghs_` `ghr_` `github_pat_` | high |
//! | `gitlab_token` | `glpat-` `gldt-` `glrt-` `glptt-` | high |
//! | `slack_token` | `xoxb-` `xoxp-` `xoxa-` `xoxo-` `xoxr-` `xoxs-` `xapp-` | high |
//! | `slack_webhook` | `https://hooks.slack.com/services/...` | high |
//! | `stripe_key` | `sk_live_`/`rk_live_` (critical), `sk_test_`/`rk_test_` (medium) | critical / medium |
//! | `anthropic_key` | `sk-ant-...` | high |
//! | `openai_key` | `sk-...`, `sk-proj-...` (random part mixes upper, lower and digits) | high |
//! | `google_api_key` | `AIza` + 35 characters | high |
//! | `url_credentials` | the password in `scheme://user:password@host` | high |
//! | `bearer_token` | the token in `Bearer <token>` | high |
//! | `assignment` | the value in `password = v`, `"api_key": "v"`, `TOKEN=v`, `secret: v` | high |
//!
//! ## How it scores
//!
//! Each detector is a host-compiled pattern plus a validator. Prefixed tokens need a
//! random part with at least 3 bits/byte of Shannon entropy (rejects `ghp_xxxx...`).
//! JWTs must decode. Free-form values (assignments, URL passwords, bearer tokens) must
//! be at least 6 bytes, not a placeholder (`changeme`, `${VAR}`, `<your-key>`, `****`,
//! `[PASSWORD_1]`, ...), not a plain word or identifier, not code (`os.environ[...]`)
//! when unquoted, and reach `min_entropy` bits/byte (scaled by log2(length)/4 below
//! 16 bytes, since short values cannot reach more). Their score grows with entropy;
//! prefixed tokens score 0.95, decoded JWTs and key blocks 0.99. Overlapping hits keep
//! the most specific detector (a GitHub token inside `token = ...` is a GitHub token).
//!
//! ## Configuration (all optional)
//!
//! ```json
//! {"action": "redact", "min_entropy": 3.0, "detectors": ["github_token", "private_key"],
//!  "roles": ["user", "tool"]}
//! ```
//!
//! * `action`: `redact` (default: replace each secret with a typed placeholder such as
//!   `[GITHUB_TOKEN_1]`; assignments keep their key name), `deny` (refuse the text), or
//!   `detect` (allow, report findings only).
//! * `min_entropy`: bits per byte a free-form value needs (default 3.0, range 0 to 8).
//! * `detectors`: the detectors to run (default: all).
//! * `roles`: message roles scanned on input (default `user`, `tool`).
//!
//! Streams hold back 4096 bytes ([`Scanner::window`]); a private key header makes the
//! whole rest of the block held back and redacted, so a key is never released before
//! its END line arrives.

use portcullis_sdk::{
    Category, Finding, Matcher, RequestContext, Role, Roles, ScanReport, Scanner,
};
use serde::Deserialize;
use std::collections::BTreeMap;

mod detectors;
mod jwt;
mod labels;
mod pem;
mod value;

pub use detectors::{Detector, Hit};

/// Bytes a stream holds back: longer than any token, JWT or assignment this policy
/// reports. Private key blocks may be longer; their header alone triggers redaction.
const WINDOW: usize = 4096;

/// What to do with a text that contains a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace each secret with a typed placeholder.
    #[default]
    Redact,
    /// Refuse the whole text (or stop the stream).
    Deny,
    /// Let the text through and only report findings.
    Detect,
}

/// The policy configuration; `{}` gives the recommended behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `redact` (default), `deny` or `detect`.
    pub action: Action,
    /// Least Shannon entropy, in bits per byte, of a free-form secret value.
    pub min_entropy: f64,
    /// Detectors to run (default: all).
    pub detectors: Vec<Detector>,
    /// Message roles scanned on input (default: user and tool).
    pub roles: Roles,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            action: Action::Redact,
            min_entropy: 3.0,
            detectors: Detector::ALL.to_vec(),
            roles: Roles::default(),
        }
    }
}

impl Config {
    /// Reject values serde cannot: an entropy outside 0..=8 bits per byte.
    fn validate(self) -> Result<Self, String> {
        if !(0.0..=8.0).contains(&self.min_entropy) {
            return Err(format!(
                "min_entropy must be between 0 and 8 bits per byte, got {}",
                self.min_entropy
            ));
        }
        Ok(self)
    }
}

/// The secrets scanner: one per request or stream, so placeholder numbering is
/// consistent across all messages of a request and all chunks of a stream.
pub struct SecretsScanner {
    config: Config,
    rules: Vec<&'static detectors::Rule>,
    matcher: Matcher,
    labels: labels::Labels,
}

impl SecretsScanner {
    /// A scanner with an explicit configuration.
    pub fn with_config(config: Config) -> Result<Self, String> {
        let config = config.validate()?;
        let rules: Vec<_> = detectors::RULES
            .iter()
            .filter(|r| config.detectors.contains(&r.detector))
            .collect();
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern).collect();
        let matcher = Matcher::new(&patterns)?;
        Ok(SecretsScanner {
            config,
            rules,
            matcher,
            labels: labels::Labels::default(),
        })
    }

    /// Every secret in `text`, without overlaps, ordered by position.
    pub fn detect(&self, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .matcher
            .find_all(text)
            .into_iter()
            .filter_map(|m| {
                let rule = self.rules.get(m.pattern)?;
                (rule.check)(text, m, self.config.min_entropy)
            })
            .collect();
        if self.config.detectors.contains(&Detector::AwsSecretKey) {
            let near = detectors::aws_secrets_near_access_keys(text, &hits);
            hits.extend(near);
        }
        without_overlaps(hits)
    }
}

/// Keep the highest-priority hit wherever hits overlap; the result is sorted by start.
fn without_overlaps(mut hits: Vec<Hit>) -> Vec<Hit> {
    hits.sort_by_key(|h| (h.detector, h.start));
    // Accepted ranges by start; they never overlap, so only the closest one before a
    // candidate's end can overlap it.
    let mut accepted: BTreeMap<usize, Hit> = BTreeMap::new();
    for hit in hits {
        let clashes = accepted
            .range(..hit.end)
            .next_back()
            .is_some_and(|(_, prev)| prev.end > hit.start);
        if !clashes && hit.end > hit.start {
            accepted.insert(hit.start, hit);
        }
    }
    accepted.into_values().collect()
}

impl Scanner for SecretsScanner {
    fn new(_context: &RequestContext) -> Result<Self, String> {
        SecretsScanner::with_config(portcullis_sdk::config::<Config>()?)
    }

    fn window(&self) -> usize {
        WINDOW
    }

    fn scan(&mut self, text: &str) -> ScanReport {
        let mut report = ScanReport::default();
        for hit in self.detect(text) {
            report.findings.push(
                Finding::new(Category::Secret, hit.severity, hit.message)
                    .at(0, hit.start, hit.end)
                    .score(hit.score),
            );
            if self.config.action == Action::Redact {
                let open = text[hit.end..].trim().is_empty();
                let label = self.labels.label(hit.kind, &text[hit.start..hit.end], open);
                report.redactions.push((hit.start, hit.end, label));
            }
        }
        report.deny = self.config.action == Action::Deny && !report.findings.is_empty();
        report
    }

    fn scans_role(&self, role: Role) -> bool {
        self.config.roles.contains(role)
    }
}

portcullis_sdk::export_scanner!(SecretsScanner);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::{HoldBack, ResponseStream, StreamVerdict};

    #[test]
    fn fixtures_pass() {
        let failures = portcullis_sdk::native::NativePolicy::scanner::<SecretsScanner>()
            .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn scanner(config: &str) -> SecretsScanner {
        portcullis_sdk::native::set_config(config);
        SecretsScanner::new(&RequestContext::for_test()).unwrap()
    }

    /// Push `chunks` through a hold-back stream; the emitted text, or `None` on deny.
    fn stream(config: &str, chunks: &[&str]) -> Option<String> {
        let mut s = HoldBack::with_scanner(scanner(config));
        let mut out = String::new();
        for chunk in chunks {
            match s.push(chunk) {
                StreamVerdict::Emit(r) => out.push_str(&r.text),
                StreamVerdict::Deny(_) => return None,
            }
        }
        match s.finish() {
            StreamVerdict::Emit(r) => out.push_str(&r.text),
            StreamVerdict::Deny(_) => return None,
        }
        Some(out)
    }

    const GITHUB: &str = "ghp_R7kQ2mVx9LpT4wZ8nB3cY6hJ1sD5fG0aE2uK";

    #[test]
    fn token_split_across_chunks_is_redacted() {
        let filler = "x ".repeat(3000);
        let chunks = [
            filler.as_str(),
            "use ",
            &GITHUB[..10],
            &GITHUB[10..25],
            &GITHUB[25..],
            " now",
            ".",
        ];
        let out = stream("{}", &chunks).unwrap();
        assert!(
            out.ends_with("use [GITHUB_TOKEN_1] now."),
            "{}",
            &out[out.len() - 40..]
        );
        assert!(!out.contains(&GITHUB[4..]));
    }

    #[test]
    fn private_key_header_is_held_and_redacted_before_end_arrives() {
        let mut s = HoldBack::with_scanner(scanner("{}"));
        let filler = "y ".repeat(2500);
        let mut released = String::new();
        for chunk in [
            filler.as_str(),
            "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n",
            "b3BlbnNzaC1rZXktdjEAAAAA",
        ] {
            if let StreamVerdict::Emit(r) = s.push(chunk) {
                released.push_str(&r.text);
            }
        }
        // A long body with no END yet: nothing from the header on is released.
        for _ in 0..100 {
            if let StreamVerdict::Emit(r) = s.push("QmFzZTY0Qm9keUxpbmVPZktleU1hdGVyaWFs\n") {
                released.push_str(&r.text);
            }
        }
        assert!(!released.contains("BEGIN") && !released.contains("b3BlbnNz"));
        s.push("-----END OPENSSH PRIVATE KEY-----\nbye");
        if let StreamVerdict::Emit(r) = s.finish() {
            released.push_str(&r.text);
        }
        assert!(
            released.ends_with("key:\n[PRIVATE_KEY_1]\nbye"),
            "{}",
            &released[released.len() - 40..]
        );
    }

    #[test]
    fn private_key_header_denies_a_stream_in_deny_mode() {
        let out = stream(
            r#"{"action":"deny"}"#,
            &["here it is:\n-----BEGIN EC PRIV", "ATE KEY-----\n"],
        );
        assert_eq!(out, None);
    }

    #[test]
    fn same_secret_gets_the_same_placeholder_across_scans() {
        let mut s = scanner("{}");
        let a = s.scan(&format!("t={GITHUB}"));
        let b = s.scan(&format!("again {GITHUB}"));
        assert_eq!(a.redactions[0].2, "[GITHUB_TOKEN_1]");
        assert_eq!(b.redactions[0].2, "[GITHUB_TOKEN_1]");
    }

    #[test]
    fn overlapping_hits_keep_the_most_specific() {
        let hits = scanner("{}").detect(&format!("GITHUB_TOKEN={GITHUB}"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].detector, Detector::GithubToken);
    }

    #[test]
    fn bad_config_is_rejected() {
        for bad in [
            r#"{"min_entropy": 9}"#,
            r#"{"action": "block"}"#,
            r#"{"detectors": ["nope"]}"#,
            r#"{"roles": ["admin"]}"#,
            r#"{"extra": 1}"#,
        ] {
            portcullis_sdk::native::set_config(bad);
            assert!(
                SecretsScanner::new(&RequestContext::for_test()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn scans_sixteen_kilobytes_quickly() {
        let mut text = String::new();
        while text.len() < 16 * 1024 {
            text.push_str("The quarterly report (v1.2.3) lists 42 items; token budget is fine, password policy unchanged. é ");
        }
        let s = scanner("{}");
        let start = std::time::Instant::now();
        for _ in 0..20 {
            assert!(s.detect(&text).is_empty());
        }
        let per_scan = start.elapsed() / 20;
        eprintln!("16 KiB scan: {per_scan:?}");
    }
}
