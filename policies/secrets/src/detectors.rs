//! The detectors: one host-compiled pattern per rule, each followed by a validator that
//! confirms the match (entropy, shape, decoding) and decides what exactly to redact.

use portcullis_sdk::{Match, Severity};
use serde::Deserialize;

use crate::value::{
    has_mixed_classes, is_placeholder, looks_like_code, looks_like_word, required_entropy,
    shannon_entropy,
};
use crate::{jwt, pem};

/// A family of secrets. Declaration order is priority: when two hits overlap, the
/// earlier (more specific) detector wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// PEM, OpenSSH, PGP and SSH2 private key blocks.
    PrivateKey,
    /// Signed JSON Web Tokens.
    Jwt,
    /// AWS access key IDs (`AKIA...`, `ASIA...`).
    AwsAccessKey,
    /// AWS secret access keys (40 characters, only with context).
    AwsSecretKey,
    /// GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// GitLab tokens (`glpat-`, `gldt-`, `glrt-`, `glptt-`).
    GitlabToken,
    /// Slack tokens (`xoxb-`, `xoxp-`, `xoxa-`, ..., `xapp-`).
    SlackToken,
    /// Slack incoming webhook URLs.
    SlackWebhook,
    /// Stripe secret and restricted keys (`sk_live_`, `rk_live_`, `sk_test_`, `rk_test_`).
    StripeKey,
    /// Anthropic API keys (`sk-ant-`).
    AnthropicKey,
    /// OpenAI-style API keys (`sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`).
    OpenaiKey,
    /// Google API keys (`AIza...`).
    GoogleApiKey,
    /// Passwords in URLs (`scheme://user:password@host`).
    UrlCredentials,
    /// `Bearer <token>` (HTTP Authorization headers).
    BearerToken,
    /// `password = value`, `"api_key": "value"`, `TOKEN=value` style assignments.
    Assignment,
}

impl Detector {
    /// Every detector, in priority order.
    pub const ALL: [Detector; 15] = [
        Detector::PrivateKey,
        Detector::Jwt,
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::GithubToken,
        Detector::GitlabToken,
        Detector::SlackToken,
        Detector::SlackWebhook,
        Detector::StripeKey,
        Detector::AnthropicKey,
        Detector::OpenaiKey,
        Detector::GoogleApiKey,
        Detector::UrlCredentials,
        Detector::BearerToken,
        Detector::Assignment,
    ];
}

/// One confirmed secret: the byte range to redact and how to report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Which detector found it.
    pub detector: Detector,
    /// First byte of the secret (inclusive).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// Placeholder kind, e.g. `GITHUB_TOKEN` for `[GITHUB_TOKEN_1]`.
    pub kind: &'static str,
    /// Finding message (never the secret itself).
    pub message: &'static str,
    /// How bad a leak would be.
    pub severity: Severity,
    /// Confidence in [0, 1].
    pub score: f32,
}

/// The least entropy (bits per byte) the random part of a prefixed token must have;
/// it rejects placeholders such as `ghp_xxxxxxxx...`.
const TOKEN_MIN_ENTROPY: f64 = 3.0;

/// The least entropy of a 40-character AWS secret key found only by proximity to an
/// access key ID (random base64 of that length scores about 4.8; hex digests at most 4).
const AWS_PROXIMITY_MIN_ENTROPY: f64 = 4.3;

/// How far from an access key ID a secret key is looked for, in bytes.
const AWS_PROXIMITY: usize = 256;

/// Shortest assignment, URL or bearer value considered.
const MIN_VALUE_LEN: usize = 6;

/// A pattern and the validator that confirms its matches.
pub struct Rule {
    /// Detector this rule belongs to.
    pub detector: Detector,
    /// Rust `regex` pattern, compiled by the host.
    pub pattern: &'static str,
    /// Confirms a match and returns the secret to redact.
    pub check: fn(&str, Match, f64) -> Option<Hit>,
}

/// Every rule, in no particular order (priority comes from [`Detector`]).
pub const RULES: &[Rule] = &[
    Rule {
        detector: Detector::PrivateKey,
        pattern: r"-{4,5} ?BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)? ?-{4,5}",
        check: private_key,
    },
    Rule {
        detector: Detector::Jwt,
        pattern: r"(?-u:\b)ey[A-Za-z0-9_-]{8,}\.ey[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}",
        check: jwt_token,
    },
    Rule {
        detector: Detector::AwsAccessKey,
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)",
        check: aws_access_key,
    },
    Rule {
        detector: Detector::AwsSecretKey,
        pattern: r#"(?i)(?:(?:aws[_-]?)?secret[_-]?access[_-]?key|aws[_-]?secret(?:[_-]?key)?)(?:\\?["'])?[ \t]*(?::=|=>|=|:)[ \t]*(?:\\?["'])?[A-Za-z0-9/+]{40,}"#,
        check: aws_secret_with_context,
    },
    Rule {
        detector: Detector::GithubToken,
        pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,251})(?-u:\b)",
        check: github_token,
    },
    Rule {
        detector: Detector::GitlabToken,
        pattern: r"(?-u:\b)gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,255}",
        check: gitlab_token,
    },
    Rule {
        detector: Detector::SlackToken,
        pattern: r"(?-u:\b)(?:xox[abposr]-[A-Za-z0-9-]{10,250}|xapp-[0-9]-[A-Za-z0-9]{6,}-[0-9]{6,}-[A-Za-z0-9]{16,})",
        check: slack_token,
    },
    Rule {
        detector: Detector::SlackWebhook,
        pattern: r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{16,300}",
        check: slack_webhook,
    },
    Rule {
        detector: Detector::StripeKey,
        pattern: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}(?-u:\b)",
        check: stripe_key,
    },
    Rule {
        detector: Detector::AnthropicKey,
        pattern: r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,250}",
        check: anthropic_key,
    },
    Rule {
        detector: Detector::OpenaiKey,
        pattern: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}",
        check: openai_key,
    },
    Rule {
        detector: Detector::GoogleApiKey,
        pattern: r"(?-u:\b)AIza[0-9A-Za-z_-]{35,}",
        check: google_api_key,
    },
    Rule {
        detector: Detector::UrlCredentials,
        pattern: r#"(?i)(?-u:\b)[a-z][a-z0-9+.-]{1,20}://[^\s:/@?#'"<>]{1,64}:[^\s:/@?#'"<>]{1,128}@"#,
        check: url_credentials,
    },
    Rule {
        detector: Detector::BearerToken,
        pattern: r"(?i)(?-u:\b)bearer[ \t]+[A-Za-z0-9._~+/-]{16,}=*",
        check: bearer_token,
    },
    Rule {
        detector: Detector::Assignment,
        pattern: r#"(?i)(?:password|passwd|passphrase|pwd|secret[_-]?key|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|token|credentials?)s?(?:\\?["'])?[ \t]*(?::=|=>|=|:)[ \t]*(?:\\"[^"\\\r\n]{1,256}\\"|"[^"\r\n]{1,256}"|'[^'\r\n]{1,256}'|[^\s"'`,;&)}\]<>]{1,256})"#,
        check: assignment,
    },
];

impl Hit {
    fn new(
        detector: Detector,
        start: usize,
        end: usize,
        kind: &'static str,
        message: &'static str,
    ) -> Self {
        Hit {
            detector,
            start,
            end,
            kind,
            message,
            severity: Severity::High,
            score: 0.95,
        }
    }
    fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    fn score(mut self, score: f32) -> Self {
        self.score = score;
        self
    }
}

/// The matched text (matches are always on char boundaries).
fn slice(text: &str, m: Match) -> &str {
    text.get(m.start..m.end).unwrap_or("")
}

/// True when the random part of a prefixed token is not a placeholder.
fn random_enough(body: &str) -> bool {
    shannon_entropy(body) >= TOKEN_MIN_ENTROPY
}

fn private_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let end = pem::block_end(text, m.end)?;
    let hit = Hit::new(
        Detector::PrivateKey,
        m.start,
        end,
        "PRIVATE_KEY",
        "private key block",
    );
    Some(hit.severity(Severity::Critical).score(0.99))
}

fn jwt_token(text: &str, m: Match, _: f64) -> Option<Hit> {
    jwt::is_signed_jwt(slice(text, m))
        .then(|| Hit::new(Detector::Jwt, m.start, m.end, "JWT", "JSON Web Token").score(0.99))
}

fn aws_access_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let hit = Hit::new(
        Detector::AwsAccessKey,
        m.start,
        m.end,
        "AWS_ACCESS_KEY",
        "AWS access key ID",
    );
    // ASIA keys are temporary session credentials; the others are long-lived.
    let temporary = slice(text, m).starts_with("ASIA");
    Some(hit.severity(if temporary {
        Severity::High
    } else {
        Severity::Critical
    }))
}

fn is_aws_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}

fn aws_secret_with_context(text: &str, m: Match, min_entropy: f64) -> Option<Hit> {
    let matched = slice(text, m).as_bytes();
    let run = matched
        .iter()
        .rev()
        .take_while(|b| is_aws_secret_byte(**b))
        .count();
    let start = m.end - run;
    let value = text.get(start..m.end)?;
    let padded = text.as_bytes().get(m.end) == Some(&b'=');
    (run == 40 && !padded && shannon_entropy(value) >= min_entropy).then(|| {
        Hit::new(
            Detector::AwsSecretKey,
            start,
            m.end,
            "AWS_SECRET_KEY",
            "AWS secret access key",
        )
        .severity(Severity::Critical)
    })
}

/// AWS secret access keys without a telling key name: random-looking 40-character
/// base64 runs within a few hundred bytes of an access key ID found in `hits`.
pub fn aws_secrets_near_access_keys(text: &str, hits: &[Hit]) -> Vec<Hit> {
    let bytes = text.as_bytes();
    let mut keys: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.detector == Detector::AwsAccessKey)
        .collect();
    keys.sort_by_key(|h| h.start);
    let mut found = Vec::new();
    // Windows of neighbouring keys overlap: scan every byte once.
    let mut scanned_to = 0;
    for key in keys {
        let mut i = key.start.saturating_sub(AWS_PROXIMITY).max(scanned_to);
        let to = (key.end + AWS_PROXIMITY).min(bytes.len());
        while i < to {
            let run = bytes[i..]
                .iter()
                .take_while(|b| is_aws_secret_byte(**b))
                .count();
            let starts_run = i == 0 || !is_aws_secret_byte(bytes[i - 1]);
            if starts_run && run == 40 && bytes.get(i + run) != Some(&b'=') {
                let value = &text[i..i + run];
                if has_mixed_classes(value) && shannon_entropy(value) >= AWS_PROXIMITY_MIN_ENTROPY {
                    let hit = Hit::new(
                        Detector::AwsSecretKey,
                        i,
                        i + run,
                        "AWS_SECRET_KEY",
                        "AWS secret access key",
                    );
                    found.push(hit.severity(Severity::Critical).score(0.8));
                }
            }
            i += run.max(1);
        }
        scanned_to = scanned_to.max(i);
    }
    found
}

fn github_token(text: &str, m: Match, _: f64) -> Option<Hit> {
    let token = slice(text, m);
    let body = token
        .strip_prefix("github_pat_")
        .unwrap_or_else(|| token.get(4..).unwrap_or(""));
    random_enough(body).then(|| {
        Hit::new(
            Detector::GithubToken,
            m.start,
            m.end,
            "GITHUB_TOKEN",
            "GitHub token",
        )
    })
}

fn gitlab_token(text: &str, m: Match, _: f64) -> Option<Hit> {
    let token = slice(text, m);
    let body = token.split_once('-').map_or("", |(_, b)| b);
    random_enough(body).then(|| {
        Hit::new(
            Detector::GitlabToken,
            m.start,
            m.end,
            "GITLAB_TOKEN",
            "GitLab token",
        )
    })
}

fn slack_token(text: &str, m: Match, _: f64) -> Option<Hit> {
    let body = slice(text, m).get(5..).unwrap_or("");
    let shaped = body.contains('-') && body.bytes().any(|b| b.is_ascii_digit()) && body.len() >= 15;
    (shaped && random_enough(body)).then(|| {
        Hit::new(
            Detector::SlackToken,
            m.start,
            m.end,
            "SLACK_TOKEN",
            "Slack token",
        )
    })
}

fn slack_webhook(text: &str, m: Match, _: f64) -> Option<Hit> {
    let url = slice(text, m);
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    (last.len() >= 16 && random_enough(last)).then(|| {
        Hit::new(
            Detector::SlackWebhook,
            m.start,
            m.end,
            "SLACK_WEBHOOK",
            "Slack webhook URL",
        )
    })
}

fn stripe_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let key = slice(text, m);
    let live = key.get(3..8) == Some("live_");
    let body = key.get(8..).unwrap_or("");
    if !random_enough(body) {
        return None;
    }
    let hit = Hit::new(
        Detector::StripeKey,
        m.start,
        m.end,
        "STRIPE_KEY",
        "Stripe secret key",
    );
    Some(if live {
        hit.severity(Severity::Critical)
    } else {
        Hit {
            message: "Stripe test-mode secret key",
            ..hit
        }
        .severity(Severity::Medium)
    })
}

fn anthropic_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let body = slice(text, m).get(7..).unwrap_or("");
    let shaped =
        body.bytes().any(|b| b.is_ascii_digit()) && body.bytes().any(|b| b.is_ascii_alphabetic());
    (shaped && random_enough(body)).then(|| {
        Hit::new(
            Detector::AnthropicKey,
            m.start,
            m.end,
            "ANTHROPIC_KEY",
            "Anthropic API key",
        )
    })
}

fn openai_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let key = slice(text, m);
    let body = ["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or("");
    (has_mixed_classes(body) && random_enough(body)).then(|| {
        Hit::new(
            Detector::OpenaiKey,
            m.start,
            m.end,
            "OPENAI_KEY",
            "OpenAI-style API key",
        )
    })
}

fn google_api_key(text: &str, m: Match, _: f64) -> Option<Hit> {
    let key = slice(text, m);
    (key.len() == 39 && random_enough(&key[4..])).then(|| {
        Hit::new(
            Detector::GoogleApiKey,
            m.start,
            m.end,
            "GOOGLE_API_KEY",
            "Google API key",
        )
    })
}

/// Shared checks for free-form values (assignments, URL passwords, bearer tokens):
/// long enough, not a placeholder or a word, random enough. Returns a score.
fn plausible_value(value: &str, min_entropy: f64, unquoted: bool) -> Option<f32> {
    if value.len() < MIN_VALUE_LEN
        || is_placeholder(value)
        || looks_like_word(value)
        || (unquoted && looks_like_code(value))
    {
        return None;
    }
    let entropy = shannon_entropy(value);
    (entropy >= required_entropy(min_entropy, value.len()))
        .then(|| (entropy / 5.0).clamp(0.5, 0.9) as f32)
}

fn url_credentials(text: &str, m: Match, min_entropy: f64) -> Option<Hit> {
    let matched = slice(text, m);
    let authority = matched.find("://")? + 3;
    let colon = authority + matched[authority..].find(':')?;
    let (start, end) = (m.start + colon + 1, m.end - 1);
    let score = plausible_value(text.get(start..end)?, min_entropy, false)?;
    Some(
        Hit::new(
            Detector::UrlCredentials,
            start,
            end,
            "PASSWORD",
            "password in a URL",
        )
        .score(score),
    )
}

fn bearer_token(text: &str, m: Match, min_entropy: f64) -> Option<Hit> {
    let matched = slice(text, m);
    let offset = matched.find([' ', '\t'])?;
    let skip = matched[offset..]
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count();
    let start = m.start + offset + skip;
    let score = plausible_value(text.get(start..m.end)?, min_entropy, true)?;
    Some(Hit::new(Detector::BearerToken, start, m.end, "TOKEN", "bearer token").score(score))
}

/// What an assignment's key name says the value is: placeholder kind and message.
fn assignment_kind(keyword: &str) -> (&'static str, &'static str, bool) {
    let k = keyword.get(..6).unwrap_or(keyword).to_ascii_lowercase();
    if k.starts_with("pass") || k.starts_with("pwd") {
        ("PASSWORD", "password in an assignment", true)
    } else if k.starts_with("token") {
        ("TOKEN", "token in an assignment", false)
    } else if k.starts_with("api") || k.starts_with("access") || k.starts_with("auth") {
        ("API_KEY", "API key in an assignment", false)
    } else {
        ("SECRET", "secret in an assignment", false)
    }
}

/// Where the value of an assignment match starts: after the key word, an optional
/// (escaped) closing quote, blanks, the operator and blanks.
fn assignment_value_start(matched: &str) -> usize {
    let b = matched.as_bytes();
    let mut i = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
        .count();
    i += b[i..]
        .iter()
        .take_while(|c| matches!(c, b'\\' | b'"' | b'\'' | b' ' | b'\t'))
        .count();
    i += if matched[i..].starts_with(":=") || matched[i..].starts_with("=>") {
        2
    } else {
        1
    };
    i + b[i.min(b.len())..]
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t'))
        .count()
}

fn assignment(text: &str, m: Match, min_entropy: f64) -> Option<Hit> {
    let matched = slice(text, m);
    let value_at = assignment_value_start(matched);
    let raw = matched.get(value_at..)?;
    let quote = ["\\\"", "\"", "'"]
        .into_iter()
        .find(|q| raw.starts_with(q) && raw.len() >= 2 * q.len());
    let (start, end) = match quote {
        Some(q) => (m.start + value_at + q.len(), m.end - q.len()),
        None => (m.start + value_at, m.end),
    };
    let value = text.get(start..end)?;
    let (kind, message, password) = assignment_kind(matched);
    if !password && value.bytes().all(|b| b.is_ascii_digit()) {
        return None; // `max_tokens: 128000`
    }
    let score = plausible_value(value, min_entropy, quote.is_none())?;
    Some(Hit::new(Detector::Assignment, start, end, kind, message).score(score))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(detector: Detector) -> &'static Rule {
        RULES.iter().find(|r| r.detector == detector).unwrap()
    }

    /// Run one detector's rule over `text` and return the redacted substrings.
    fn run(detector: Detector, text: &str) -> Vec<String> {
        let r = rule(detector);
        let matcher = portcullis_sdk::Matcher::new(&[r.pattern]).unwrap();
        matcher
            .find_all(text)
            .into_iter()
            .filter_map(|m| (r.check)(text, m, 3.0))
            .map(|h| text[h.start..h.end].to_string())
            .collect()
    }

    #[test]
    fn every_rule_compiles_and_every_detector_has_one() {
        let patterns: Vec<_> = RULES.iter().map(|r| r.pattern).collect();
        assert!(portcullis_sdk::Matcher::new(&patterns).is_ok());
        for d in Detector::ALL {
            assert!(RULES.iter().any(|r| r.detector == d), "{d:?}");
        }
    }

    #[test]
    fn assignments_redact_only_the_value() {
        assert_eq!(
            run(Detector::Assignment, "DB_PASSWORD=hunter2x9"),
            ["hunter2x9"]
        );
        assert_eq!(
            run(Detector::Assignment, r#"{"api_key": "Zq7vX2mLp9Rk"}"#),
            ["Zq7vX2mLp9Rk"]
        );
        assert_eq!(
            run(Detector::Assignment, r#"{\"token\": \"Zq7vX2mLp9Rk\"}"#),
            ["Zq7vX2mLp9Rk"]
        );
        assert_eq!(
            run(Detector::Assignment, "client_secret := 'p4ss-W0rd-77'"),
            ["p4ss-W0rd-77"]
        );
        assert!(run(Detector::Assignment, "password = ''").is_empty());
        assert!(run(Detector::Assignment, "token: ${GITHUB_TOKEN}").is_empty());
        assert!(run(Detector::Assignment, "max_tokens: 128000").is_empty());
        assert!(run(Detector::Assignment, "password = os.environ.get('X')").is_empty());
    }

    #[test]
    fn url_and_bearer_values() {
        assert_eq!(
            run(
                Detector::UrlCredentials,
                "postgres://app:Xk29vLq7Tz@db:5432/x"
            ),
            ["Xk29vLq7Tz"]
        );
        assert!(run(Detector::UrlCredentials, "postgres://app:password@db/x").is_empty());
        assert_eq!(
            run(
                Detector::BearerToken,
                "Authorization: Bearer q8Zr2LmX7vNc4TbW9pKd"
            ),
            ["q8Zr2LmX7vNc4TbW9pKd"]
        );
        assert!(run(Detector::BearerToken, "Bearer YOUR_ACCESS_TOKEN_HERE").is_empty());
    }

    #[test]
    fn aws_secret_needs_exactly_forty_random_characters() {
        let secret = "q8Zr2LmX7vNc4TbW9pKd/Q3jHf6sYt1uVw0Rk+E5";
        assert_eq!(
            run(
                Detector::AwsSecretKey,
                &format!("aws_secret_access_key = {secret}")
            ),
            [secret]
        );
        assert!(
            run(
                Detector::AwsSecretKey,
                &format!("aws_secret_access_key = {secret}A")
            )
            .is_empty()
        );
        assert!(
            run(
                Detector::AwsSecretKey,
                &format!("aws_secret_access_key = {}", "x".repeat(40))
            )
            .is_empty()
        );
    }

    #[test]
    fn aws_secret_near_access_key_but_not_a_git_sha() {
        let key = Hit::new(Detector::AwsAccessKey, 0, 20, "AWS_ACCESS_KEY", "");
        let text = "AKIAQ2RTX7WZ4MNB5KPL q8Zr2LmX7vNc4TbW9pKd/Q3jHf6sYt1uVw0Rk+E5";
        let found = aws_secrets_near_access_keys(text, std::slice::from_ref(&key));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, 21);
        let sha = "AKIAQ2RTX7WZ4MNB5KPL 3f9a1c0e7b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a";
        assert!(aws_secrets_near_access_keys(sha, &[key]).is_empty());
    }
}
