//! The policy configuration.

use portcullis_sdk::Role;
use serde::Deserialize;

/// Largest accepted `max_decode_depth`.
const MAX_DEPTH: u32 = 4;
/// Largest accepted `max_decoded_bytes` (1 MiB).
const MAX_DECODED_BYTES: usize = 1 << 20;
/// Largest number of `extra_phrases` (one host pattern list).
const MAX_PHRASES: usize = 64;
/// Longest accepted extra phrase, in bytes.
const MAX_PHRASE_BYTES: usize = 256;

/// Operator configuration. `{}` gives the recommended behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A message whose score reaches this value is denied; from half of it, findings
    /// are reported without denying. In (0, 1].
    pub threshold: f32,
    /// Roles whose messages are scanned.
    pub roles: Vec<RoleName>,
    /// How many nested encodings (base64, hex, escapes, rot13, tag characters) are
    /// decoded and re-scanned; 0 disables decoding. At most 4.
    pub max_decode_depth: u32,
    /// Total bytes decoded per message, over all encoded runs. At most 1 MiB.
    pub max_decoded_bytes: usize,
    /// Extra literal phrases to detect (matched after the same normalization as the
    /// built-in rules: case, look-alikes, leetspeak, separators). At most 64, each
    /// at most 256 bytes.
    pub extra_phrases: Vec<String>,
    /// Weight of an extra phrase hit, in [0, 1].
    pub extra_phrase_weight: f32,
    /// Halve the weight of a phrase quoted in a message that discusses attacks
    /// ("what does 'ignore previous instructions' mean?").
    pub discount_quoted_discussion: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 0.5,
            roles: vec![RoleName::User, RoleName::Tool],
            max_decode_depth: 2,
            max_decoded_bytes: 64 * 1024,
            extra_phrases: Vec::new(),
            extra_phrase_weight: 0.8,
            discount_quoted_discussion: true,
        }
    }
}

/// A message role, as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Operator instructions.
    System,
    /// Operator instructions (newer name).
    Developer,
    /// The end user.
    User,
    /// The model's earlier turns.
    Assistant,
    /// Tool results.
    Tool,
}

impl RoleName {
    /// Whether this is `role`.
    pub fn is(self, role: Role) -> bool {
        matches!(
            (self, role),
            (RoleName::System, Role::System)
                | (RoleName::Developer, Role::Developer)
                | (RoleName::User, Role::User)
                | (RoleName::Assistant, Role::Assistant)
                | (RoleName::Tool, Role::Tool)
        )
    }
}

impl Config {
    /// Check the ranges; the error names the offending field.
    pub fn validated(self) -> Result<Self, String> {
        let invalid =
            |field: &str, why: &str| Err(format!("invalid policy configuration: {field} {why}"));
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return invalid("threshold", "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.extra_phrase_weight) {
            return invalid("extra_phrase_weight", "must be in [0, 1]");
        }
        if self.max_decode_depth > MAX_DEPTH {
            return invalid("max_decode_depth", "must be at most 4");
        }
        if self.max_decoded_bytes > MAX_DECODED_BYTES {
            return invalid("max_decoded_bytes", "must be at most 1048576");
        }
        if self.extra_phrases.len() > MAX_PHRASES {
            return invalid("extra_phrases", "must have at most 64 entries");
        }
        if self
            .extra_phrases
            .iter()
            .any(|p| p.trim().is_empty() || p.len() > MAX_PHRASE_BYTES)
        {
            return invalid(
                "extra_phrases",
                "entries must be non-blank and at most 256 bytes",
            );
        }
        Ok(self)
    }

    /// Whether messages of `role` are scanned.
    pub fn scans(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r.is(role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str::<Config>(json)
            .map_err(|e| e.to_string())
            .and_then(Config::validated)
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.threshold, 0.5);
        assert!(c.scans(Role::User) && c.scans(Role::Tool) && !c.scans(Role::System));
        assert_eq!(c.max_decode_depth, 2);
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_name() {
        for (json, field) in [
            (r#"{"threshold": 0}"#, "threshold"),
            (r#"{"threshold": 1.5}"#, "threshold"),
            (r#"{"max_decode_depth": 9}"#, "max_decode_depth"),
            (r#"{"max_decoded_bytes": 99999999}"#, "max_decoded_bytes"),
            (r#"{"extra_phrases": ["  "]}"#, "extra_phrases"),
            (r#"{"extra_phrase_weight": -1}"#, "extra_phrase_weight"),
            (r#"{"roles": ["admin"]}"#, "admin"),
            (r#"{"treshold": 0.5}"#, "treshold"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
