//! Policy fixtures: JSONL test cases with expected verdicts, shared by `portcullis test`
//! (which runs them against the compiled component) and native unit tests (which run
//! them against the policy's Rust code directly).
//!
//! One JSON object per line:
//!
//! ```json
//! {"name": "email is redacted", "check": "request",
//!  "messages": [{"role": "user", "content": "mail bob@example.com"}],
//!  "expect": {"verdict": "modify", "categories": ["pii"], "texts": {"0": "mail [EMAIL_1]"}}}
//! ```
//!
//! `check` is `request` (uses `messages`, optional `tools`), `response` (uses `text`),
//! `tools` (uses `tools`) or `calls` (uses `tools` and `calls`). `config` (any JSON)
//! overrides the policy configuration for this case. `expect.verdict` is `allow`,
//! `deny` or `modify`; for `tools`/`calls` it is `deny` when any item is denied.
//! Optional: `categories` (each must be among the findings), `min_severity`, `texts`
//! (resulting text per index after modification), `denied` (indices denied, exactly).

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::{Authorization, Category, Edit, Role, Severity, Verdict};

/// One fixture case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Case name, unique within its file.
    pub name: String,
    /// What is checked.
    pub check: CheckKind,
    /// Policy configuration override for this case.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Messages, for `request`.
    #[serde(default)]
    pub messages: Vec<FixtureMessage>,
    /// Response text, for `response`.
    #[serde(default)]
    pub text: Option<String>,
    /// Tools offered, for `request`, `tools` and `calls`.
    #[serde(default)]
    pub tools: Vec<FixtureTool>,
    /// Tool calls, for `calls`.
    #[serde(default)]
    pub calls: Vec<FixtureCall>,
    /// What the policy must answer.
    pub expect: Expectation,
}

/// What a fixture checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A chat request through the guardrail.
    Request,
    /// A complete response through the output filter.
    Response,
    /// Tools offered, through the tool sandbox.
    Tools,
    /// Tool calls, through the tool sandbox.
    Calls,
}

/// A chat message in a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// A tool definition in a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureTool {
    /// MCP server (empty when unknown).
    #[serde(default)]
    pub server: String,
    /// Tool name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub input_schema: Option<serde_json::Value>,
}

/// A tool call in a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCall {
    /// MCP server (empty when unknown).
    #[serde(default)]
    pub server: String,
    /// Tool name.
    pub name: String,
    /// Arguments: a JSON value, or a string taken verbatim (to test invalid JSON).
    pub arguments: serde_json::Value,
}

/// The expected answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// `allow`, `deny` or `modify`.
    pub verdict: String,
    /// Categories that must be among the findings (as in [`category_name`]).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Lowest severity the most severe finding may have.
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Resulting texts after modification, by index.
    #[serde(default)]
    pub texts: BTreeMap<String, String>,
    /// For `tools`/`calls`: exactly these indices are denied.
    #[serde(default)]
    pub denied: Option<Vec<usize>>,
}

/// What a policy actually answered, in a form any runner can produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// `allow`, `deny` or `modify`.
    pub verdict: String,
    /// Category names of all findings.
    pub categories: Vec<String>,
    /// Severities of all findings (`low` .. `critical`).
    pub severities: Vec<String>,
    /// Texts after modification, by index (only the modified ones are required).
    pub texts: BTreeMap<usize, String>,
    /// Denied indices, for tools/calls.
    pub denied: Vec<usize>,
}

impl FixtureCall {
    /// The arguments as the JSON text the model would have produced.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl FixtureTool {
    /// The input schema as JSON text (`{}` when absent).
    pub fn schema_text(&self) -> String {
        self.input_schema
            .as_ref()
            .map_or_else(|| "{}".to_string(), |v| v.to_string())
    }
}

/// Parse a fixtures file: one case per non-empty line; errors name the line.
pub fn parse(jsonl: &str) -> Result<Vec<Fixture>, String> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Parse a role name.
pub fn parse_role(role: &str) -> Result<Role, String> {
    Role::from_name(role).ok_or_else(|| format!("unknown role {role:?}"))
}

/// The stable name of a category (`custom(x)` is `x`).
pub fn category_name(category: &Category) -> String {
    match category {
        Category::PromptInjection => "prompt-injection".into(),
        Category::Jailbreak => "jailbreak".into(),
        Category::Pii => "pii".into(),
        Category::Secret => "secret".into(),
        Category::Toxicity => "toxicity".into(),
        Category::ToolMisuse => "tool-misuse".into(),
        Category::ModelExtraction => "model-extraction".into(),
        Category::SystemPromptLeak => "system-prompt-leak".into(),
        Category::Custom(name) => name.clone(),
    }
}

/// The stable name of a severity.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn severity_rank(name: &str) -> Option<u8> {
    ["low", "medium", "high", "critical"]
        .iter()
        .position(|s| *s == name)
        .map(|p| p as u8)
}

impl Expectation {
    /// Compare with what the policy answered; the error lists every mismatch.
    pub fn check(&self, observed: &Observed) -> Result<(), String> {
        let mut problems = Vec::new();
        if observed.verdict != self.verdict {
            problems.push(format!(
                "verdict {} (expected {})",
                observed.verdict, self.verdict
            ));
        }
        for category in &self.categories {
            if !observed.categories.contains(category) {
                problems.push(format!(
                    "no {category} finding (found {:?})",
                    observed.categories
                ));
            }
        }
        if let Some(min) = &self.min_severity {
            let want = severity_rank(min).ok_or_else(|| format!("unknown severity {min:?}"))?;
            let got = observed
                .severities
                .iter()
                .filter_map(|s| severity_rank(s))
                .max();
            if got.is_none_or(|g| g < want) {
                problems.push(format!(
                    "highest severity {:?} below {min}",
                    observed.severities
                ));
            }
        }
        for (index, want) in &self.texts {
            let index: usize = index
                .parse()
                .map_err(|_| format!("texts key {index:?} is not an index"))?;
            match observed.texts.get(&index) {
                Some(got) if got == want => {}
                got => problems.push(format!("text {index} is {got:?} (expected {want:?})")),
            }
        }
        if let Some(denied) = self.denied.as_ref().filter(|d| **d != observed.denied) {
            problems.push(format!(
                "denied {:?} (expected {denied:?})",
                observed.denied
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Apply non-overlapping redactions `(start, end, replacement)` to `text`. Fails on a
/// range that is out of bounds, not on char boundaries, or overlapping another.
pub fn apply_redactions(text: &str, redactions: &[(usize, usize, &str)]) -> Result<String, String> {
    let mut sorted = redactions.to_vec();
    sorted.sort_by_key(|r| (r.0, r.1));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end, replacement) in sorted {
        if start > end || end > text.len() {
            return Err(format!(
                "redaction {start}..{end} is outside the text (length {})",
                text.len()
            ));
        }
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return Err(format!("redaction {start}..{end} splits a UTF-8 character"));
        }
        if start < copied {
            return Err(format!(
                "redaction {start}..{end} overlaps the previous one"
            ));
        }
        out.push_str(&text[copied..start]);
        out.push_str(replacement);
        copied = end;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// What a verdict on `texts` amounts to (edits applied, by index).
pub fn observe_verdict(verdict: Verdict, texts: &[String]) -> Result<Observed, String> {
    let (name, findings, edits) = match verdict {
        Verdict::Allow(f) => ("allow", f, Vec::new()),
        Verdict::Deny(f) => ("deny", f, Vec::new()),
        Verdict::Modify(m) => ("modify", m.findings, m.edits),
    };
    let mut observed = Observed {
        verdict: name.to_string(),
        categories: findings
            .iter()
            .map(|f| category_name(&f.category))
            .collect(),
        severities: findings
            .iter()
            .map(|f| severity_name(f.severity).to_string())
            .collect(),
        ..Default::default()
    };
    let mut per_index: std::collections::BTreeMap<usize, Vec<(usize, usize, &str)>> =
        Default::default();
    for edit in &edits {
        match edit {
            Edit::Redact(r) => per_index.entry(r.span.index as usize).or_default().push((
                r.span.start as usize,
                r.span.end as usize,
                r.replacement.as_str(),
            )),
            Edit::Replace((index, text)) => {
                observed.texts.insert(*index as usize, text.clone());
            }
        }
    }
    for (index, redactions) in per_index {
        let text = texts
            .get(index)
            .ok_or_else(|| format!("edit for missing text {index}"))?;
        observed
            .texts
            .insert(index, apply_redactions(text, &redactions)?);
    }
    Ok(observed)
}

/// What a list of authorizations amounts to.
pub fn observe_authorizations(auths: &[Authorization]) -> Observed {
    let mut observed = Observed::default();
    for (i, a) in auths.iter().enumerate() {
        if let Authorization::Deny(findings) = a {
            observed.denied.push(i);
            for f in findings {
                observed.categories.push(category_name(&f.category));
                observed
                    .severities
                    .push(severity_name(f.severity).to_string());
            }
        }
    }
    observed.verdict = if observed.denied.is_empty() {
        "allow"
    } else {
        "deny"
    }
    .to_string();
    observed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactions_apply_and_reject_bad_ranges() {
        assert_eq!(
            apply_redactions("a bc d", &[(2, 4, "X"), (0, 1, "Y")]).unwrap(),
            "Y X d"
        );
        assert!(
            apply_redactions("abc", &[(1, 9, "X")])
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            apply_redactions("é", &[(1, 2, "X")])
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(
            apply_redactions("abcdef", &[(0, 3, "X"), (2, 4, "Y")])
                .unwrap_err()
                .contains("overlaps")
        );
    }

    #[test]
    fn expectation_reports_every_mismatch() {
        let e: Expectation = serde_json::from_str(
            r#"{"verdict":"modify","categories":["pii"],"min_severity":"high","texts":{"0":"x"}}"#,
        )
        .unwrap();
        let ok = Observed {
            verdict: "modify".into(),
            categories: vec!["pii".into()],
            severities: vec!["critical".into()],
            texts: [(0, "x".to_string())].into(),
            denied: vec![],
        };
        assert_eq!(e.check(&ok), Ok(()));
        let bad = Observed {
            verdict: "allow".into(),
            ..Default::default()
        };
        let err = e.check(&bad).unwrap_err();
        assert!(
            err.contains("verdict allow") && err.contains("no pii") && err.contains("text 0"),
            "{err}"
        );
    }
}
