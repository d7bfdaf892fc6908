//! The policy configuration.

use serde::Deserialize;

/// What happens to a tool no `allow` or `deny` rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Fail closed: only tools matching an `allow` rule may be offered and called.
    #[default]
    Deny,
    /// Allow every tool that no `deny` rule names (argument checks still apply).
    Allow,
}

/// A tool selector: glob patterns (`*`, `?`) over the MCP server and the tool name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// Server glob (default `*`: any server, including none).
    #[serde(default = "any")]
    pub server: String,
    /// Tool name glob (default `*`).
    #[serde(default = "any")]
    pub tool: String,
}

/// A pinned tool description: its SHA-256, recorded when the tool was reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Server glob (default `*`).
    #[serde(default = "any")]
    pub server: String,
    /// Tool name glob.
    pub tool: String,
    /// Lowercase hex SHA-256 of the description's UTF-8 bytes.
    pub sha256: String,
}

fn any() -> String {
    "*".to_string()
}

/// Paths an argument must not point at (globs over the normalized, lower-cased path).
const SENSITIVE_PATHS: &[&str] = &[
    "/etc",
    "/etc/*",
    "/root",
    "/root/*",
    "/proc/*",
    "/sys/*",
    "/dev/*",
    "/boot/*",
    "/var/run/secrets/*",
    "/run/secrets/*",
    "*/.ssh",
    "*/.ssh/*",
    "*/.aws/*",
    "*/.gnupg/*",
    "*/.kube/*",
    "*/.docker/config.json",
    "*/.config/gcloud/*",
    "*/.netrc",
    "*/.git-credentials",
    "*/.pgpass",
    "*/.bash_history",
    "*/id_rsa*",
    "*/id_ecdsa*",
    "*/id_ed25519*",
    "c:/windows/*",
    "*/system32/*",
];

/// The configuration; `{}` is fail-closed: every tool is denied until allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Fate of tools no rule names: `deny` (default) or `allow`.
    pub default: DefaultAction,
    /// Tools that may be offered and called.
    pub allow: Vec<ToolRule>,
    /// Tools that may never be offered or called (wins over `allow`).
    pub deny: Vec<ToolRule>,
    /// Description pins.
    pub pins: Vec<Pin>,
    /// Deny tools without a matching pin.
    pub require_pins: bool,
    /// Validate call arguments against the offered tool's input schema.
    pub check_schema: bool,
    /// Look for path traversal, sensitive paths, shell metacharacters and foreign URLs.
    pub argument_checks: bool,
    /// Look for shell metacharacters in every string, not only command/path-like ones.
    pub strict_shell: bool,
    /// When set, URLs in arguments must point at one of these hosts (`*.example.com`
    /// allowed); when absent, URLs are not checked.
    pub allowed_hosts: Option<Vec<String>>,
    /// Globs of paths arguments must not reach (replaces the built-in list).
    pub sensitive_paths: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default: DefaultAction::Deny,
            allow: Vec::new(),
            deny: Vec::new(),
            pins: Vec::new(),
            require_pins: false,
            check_schema: true,
            argument_checks: true,
            strict_shell: false,
            allowed_hosts: None,
            sensitive_paths: SENSITIVE_PATHS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Config {
    /// Load the operator's configuration and normalize it (lower-case hashes, hosts
    /// and paths). Errors name the field.
    pub fn load() -> Result<Config, String> {
        portcullis_sdk::config::<Config>()?.normalized()
    }

    /// Validate and normalize: pins must be 64 hex digits.
    pub fn normalized(mut self) -> Result<Config, String> {
        for (i, pin) in self.pins.iter_mut().enumerate() {
            pin.sha256 = pin.sha256.to_ascii_lowercase();
            if pin.sha256.len() != 64 || !pin.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "pins[{i}].sha256 must be 64 hex digits (the SHA-256 of the tool description)"
                ));
            }
        }
        if let Some(hosts) = self.allowed_hosts.as_mut() {
            hosts.iter_mut().for_each(|h| *h = h.to_ascii_lowercase());
        }
        self.sensitive_paths
            .iter_mut()
            .for_each(|p| *p = p.to_ascii_lowercase());
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str::<Config>(json)
            .map_err(|e| e.to_string())?
            .normalized()
    }

    #[test]
    fn empty_config_is_fail_closed_with_checks_on() {
        let c = parse("{}").unwrap();
        assert_eq!(c.default, DefaultAction::Deny);
        assert!(c.check_schema && c.argument_checks && !c.strict_shell && !c.require_pins);
        assert!(c.allowed_hosts.is_none());
        assert!(c.sensitive_paths.iter().any(|p| p == "/etc/*"));
    }

    #[test]
    fn rules_default_to_any_and_pins_are_normalized() {
        let c = parse(&format!(
            r#"{{"allow":[{{"tool":"read_*"}}],"pins":[{{"tool":"x","sha256":"{}"}}]}}"#,
            "AB".repeat(32)
        ))
        .unwrap();
        assert_eq!(
            c.allow[0],
            ToolRule {
                server: "*".into(),
                tool: "read_*".into()
            }
        );
        assert_eq!(c.pins[0].sha256, "ab".repeat(32));
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(parse(r#"{"default":"maybe"}"#).is_err());
        assert!(parse(r#"{"allow":[{"name":"x"}]}"#).is_err());
        assert!(
            parse(r#"{"pins":[{"tool":"x","sha256":"abc"}]}"#)
                .unwrap_err()
                .contains("pins[0].sha256")
        );
        assert!(parse(r#"{"unknown":true}"#).is_err());
    }
}
