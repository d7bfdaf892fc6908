//! The signing manifest (`policy.toml`, written by the policy's author) and the
//! predicate it becomes inside the signed statement.
//!
//! ```toml
//! name = "pii"                       # the policy name the trust store scopes keys by
//! version = "1.2.0"                  # semver
//! sequence = 7                       # monotonic per name (anti-rollback)
//! kind = "content-policy"            # guardrail | output-filter | tool-sandbox | content-policy
//! world = "portcullis:policy/content-policy"
//! not_before = "2026-01-01T00:00:00Z"  # RFC 3339, UTC (quoted or a TOML datetime)
//! expires = "2027-01-01T00:00:00Z"
//! min_host_version = "0.1.0"
//! self_test = "fixtures/cases.jsonl" # optional: fixtures (JSON lines, relative to this
//!                                    # file) embedded in the signed claims and run by
//!                                    # the host before the policy may become active
//!
//! [capabilities]
//! wasi = []                          # WASI grants requested; empty = none
//!
//! [limits]                           # requested limits; each optional
//! fuel = 200_000_000
//! memory_mb = 32
//! deadline_ms = 100
//!
//! [build]                            # optional, read by `portcullis build` (not signed)
//! lang = "python"                    # rust | python | js | c
//! sources = ["app.py"]
//! sdk = "../../sdk"
//! wit = "../../wit"
//! out = "build/pii.wasm"
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Errors reading this file (shared by every TOML file Portcullis reads).
pub type ManifestError = crate::toml_file::FileError;

/// What a policy is for; each kind implies the contracts its component must export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Exports `request-checker` only.
    Guardrail,
    /// Exports `response-filter` only.
    OutputFilter,
    /// Exports `tool-authorizer` only.
    ToolSandbox,
    /// Exports `request-checker` and `response-filter`.
    ContentPolicy,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [
        Kind::Guardrail,
        Kind::OutputFilter,
        Kind::ToolSandbox,
        Kind::ContentPolicy,
    ];

    /// The kebab-case name, also the WIT world's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Guardrail => "guardrail",
            Kind::OutputFilter => "output-filter",
            Kind::ToolSandbox => "tool-sandbox",
            Kind::ContentPolicy => "content-policy",
        }
    }

    /// The exports a component of this kind has (exactly).
    pub fn exports(self) -> crate::policy::Exports {
        let (guardrail, output_filter, tool_sandbox) = match self {
            Kind::Guardrail => (true, false, false),
            Kind::OutputFilter => (false, true, false),
            Kind::ToolSandbox => (false, false, true),
            Kind::ContentPolicy => (true, true, false),
        };
        crate::policy::Exports {
            guardrail,
            output_filter,
            tool_sandbox,
        }
    }
}

/// Requested capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// WASI grants requested (e.g. `"clocks"`); empty means none.
    #[serde(default)]
    pub wasi: Vec<String>,
}

/// Requested limits; `None` leaves the operator's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    /// Fuel per evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Deadline in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// The signed claims about a policy (the statement's predicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// Policy name.
    pub name: String,
    /// Semver version.
    pub version: String,
    /// Monotonic sequence number for this name.
    pub sequence: u64,
    /// Policy kind.
    pub kind: Kind,
    /// WIT world, e.g. `portcullis:policy/guardrail`.
    pub world: String,
    /// Requested capabilities.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Requested limits.
    #[serde(default)]
    pub limits: RequestedLimits,
    /// RFC 3339 UTC; not valid before.
    pub not_before: String,
    /// RFC 3339 UTC; not valid from this instant on.
    pub expires: String,
    /// Oldest host version (semver) that may run the policy.
    pub min_host_version: String,
    /// Self-test fixtures (the `portcullis test` case format, one JSON object each)
    /// that the host runs before activating the policy; empty when none were signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_test: Vec<serde_json::Value>,
}

impl Predicate {
    /// Check every field's syntax; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".into());
        }
        if let Err(e) = semver::Version::parse(&self.version) {
            return bad(
                "version",
                format!("{:?} is not semver ({e}); use e.g. \"1.2.0\"", self.version),
            );
        }
        if let Err(e) = semver::Version::parse(&self.min_host_version) {
            return bad(
                "min_host_version",
                format!(
                    "{:?} is not semver ({e}); use e.g. \"0.1.0\"",
                    self.min_host_version
                ),
            );
        }
        if world_name(&self.world) != Some(self.kind.name()) {
            return bad(
                "world",
                format!(
                    "{:?} does not name the {} world; use \"portcullis:policy/{}\"",
                    self.world,
                    self.kind.name(),
                    self.kind.name()
                ),
            );
        }
        let not_before = parse_utc(&self.not_before).map_err(|m| ("not_before".to_string(), m))?;
        let expires = parse_utc(&self.expires).map_err(|m| ("expires".to_string(), m))?;
        if expires <= not_before {
            return bad("expires", "must be later than not_before".into());
        }
        if let Err(e) = self.self_test_cases() {
            return bad("self_test", e);
        }
        Ok(())
    }

    /// The self-test fixtures, parsed.
    pub fn self_test_cases(&self) -> Result<Vec<portcullis_sdk::fixture::Fixture>, String> {
        self.self_test
            .iter()
            .enumerate()
            .map(|(i, case)| {
                serde_json::from_value(case.clone()).map_err(|e| format!("case {}: {e}", i + 1))
            })
            .collect()
    }

    /// `not_before` as a time (call [`Predicate::validate`] first).
    pub fn not_before_time(&self) -> Result<OffsetDateTime, String> {
        parse_utc(&self.not_before)
    }

    /// `expires` as a time.
    pub fn expires_time(&self) -> Result<OffsetDateTime, String> {
        parse_utc(&self.expires)
    }
}

/// The world's name in `package:ns/name@version`: `name`.
fn world_name(world: &str) -> Option<&str> {
    let (_, rest) = world.split_once('/')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// Parse an RFC 3339 timestamp that must be in UTC (`Z` or `+00:00`).
pub fn parse_utc(text: &str) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!("{text:?} is not an RFC 3339 timestamp ({e}); use e.g. \"2026-01-01T00:00:00Z\"")
    })?;
    if !t.offset().is_utc() {
        return Err(format!("{text:?} must be in UTC (end with Z)"));
    }
    Ok(t)
}

/// Format a time as RFC 3339 UTC.
pub fn format_utc(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A TOML timestamp written either quoted or as a native TOML datetime.
#[derive(Deserialize)]
#[serde(untagged)]
enum TomlTime {
    Text(String),
    Native(toml::value::Datetime),
}

impl TomlTime {
    fn text(self) -> String {
        match self {
            TomlTime::Text(s) => s,
            TomlTime::Native(d) => d.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    version: String,
    sequence: u64,
    kind: Kind,
    world: String,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    limits: RequestedLimits,
    not_before: TomlTime,
    expires: TomlTime,
    min_host_version: String,
    #[serde(default)]
    self_test: Option<std::path::PathBuf>,
    /// How `portcullis build` makes the component; not part of the signed claims.
    #[serde(default, rename = "build")]
    _build: Option<serde::de::IgnoredAny>,
}

/// Read and validate a manifest file.
pub fn load(path: &Path) -> Result<Predicate, ManifestError> {
    let text = crate::toml_file::read(path)?;
    parse(&text, path)
}

/// Parse and validate manifest text; `path` is used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Predicate, ManifestError> {
    let file: ManifestFile = crate::toml_file::parse(text, path)?;
    let self_test = match &file.self_test {
        Some(relative) => {
            read_self_test(&path.parent().unwrap_or(Path::new(".")).join(relative))
                .map_err(|message| crate::toml_file::invalid(path, "self_test", message))?
        }
        None => Vec::new(),
    };
    let mut predicate = Predicate {
        name: file.name,
        version: file.version,
        sequence: file.sequence,
        kind: file.kind,
        world: file.world,
        capabilities: file.capabilities,
        limits: file.limits,
        not_before: file.not_before.text(),
        expires: file.expires.text(),
        min_host_version: file.min_host_version,
        self_test,
    };
    predicate
        .validate()
        .map_err(|(key, message)| crate::toml_file::invalid(path, key, message))?;
    // Normalise the timestamps (validated above).
    predicate.not_before =
        format_utc(parse_utc(&predicate.not_before).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    predicate.expires =
        format_utc(parse_utc(&predicate.expires).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    Ok(predicate)
}

/// Read a fixtures file (JSON lines) as JSON values, checking each is a fixture.
fn read_self_test(path: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    portcullis_sdk::fixture::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "pii"
version = "1.2.0"
sequence = 3
kind = "content-policy"
world = "portcullis:policy/content-policy@0.1.0"
not_before = 2026-01-01T00:00:00Z
expires = "2027-01-01T00:00:00Z"
min_host_version = "0.1.0"
[limits]
fuel = 1000
"#;

    #[test]
    fn parses_quoted_and_native_timestamps() {
        let p = parse(GOOD, Path::new("m.toml")).unwrap();
        assert_eq!(p.not_before, "2026-01-01T00:00:00Z");
        assert_eq!(p.expires, "2027-01-01T00:00:00Z");
        assert_eq!(p.limits.fuel, Some(1000));
        assert!(p.capabilities.wasi.is_empty());
    }

    #[test]
    fn names_the_bad_key() {
        let e = parse(&GOOD.replace("1.2.0", "1.2"), Path::new("m.toml")).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        let e = parse(
            &GOOD.replace("content-policy@", "guardrail@"),
            Path::new("m.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("world"), "{e}");
        let e = parse(&format!("{GOOD}\nextra = 1"), Path::new("m.toml")).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
    }
}
