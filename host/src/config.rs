//! The pipeline configuration file (TOML).
//!
//! ```toml
//! [engine]
//! max_concurrent = 128            # evaluations in flight (pool size)
//! # cache_dir = "/var/cache/portcullis"   # compiled-code cache, owner-only
//!
//! [limits]                        # defaults and operator ceilings for every policy
//! fuel = 200_000_000
//! deadline_ms = 100
//! memory_mb = 32
//!
//! [[policies]]
//! name = "pii"
//! path = "policies/pii.wasm"      # relative to this file
//! stages = ["input", "output"]
//! on_error = "deny"               # deny (default) or allow
//! mode = "enforce"                # enforce (default) or monitor
//! fixtures = "policies/pii/fixtures/cases.jsonl"
//! config = { action = "redact" }  # handed to the policy as JSON
//! limits = { deadline_ms = 50 }   # may only tighten the [limits] ceilings
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::{EngineOptions, Limits};

/// Errors reading this file (shared by every TOML file Portcullis reads).
pub type ConfigError = crate::toml_file::FileError;

/// A pipeline stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Input guardrails on the incoming request.
    Input,
    /// Tool sandbox on tools offered and tool calls made.
    Tool,
    /// Output filters on the model's response.
    Output,
}

impl Stage {
    /// `input`, `tool` or `output`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Tool => "tool",
            Stage::Output => "output",
        }
    }
}

/// What a failed policy run (error, timeout, fuel exhausted) means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Treat the failure as a deny (fail closed).
    #[default]
    Deny,
    /// Treat the failure as an allow (fail open), still recorded as a failure.
    Allow,
}

/// Whether a policy's verdict is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Verdicts are applied.
    #[default]
    Enforce,
    /// Verdicts are recorded, never applied.
    Monitor,
}

impl Mode {
    /// `enforce` or `monitor`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineSection,
    /// Default limits and ceilings.
    #[serde(default)]
    pub limits: LimitsSection,
    /// How policies are verified before they load.
    #[serde(default)]
    pub trust: TrustSection,
    /// Hot reload and status.
    #[serde(default)]
    pub lifecycle: LifecycleSection,
    /// The HTTP gateway (`portcullis serve`).
    #[serde(default)]
    pub gateway: crate::gateway::settings::GatewaySection,
    /// The audit log.
    #[serde(default)]
    pub audit: crate::observe::audit::AuditSection,
    /// Trace export.
    #[serde(default)]
    pub telemetry: crate::observe::trace::TelemetrySection,
    /// SOC alerts.
    #[serde(default)]
    pub alerts: crate::observe::alerts::AlertsSection,
    /// Input drift monitoring windows.
    #[serde(default)]
    pub drift: crate::observe::drift::DriftSettings,
    /// Where `oci://` policies come from.
    #[serde(default)]
    pub registry: crate::registry::RegistrySection,
    /// The policies, in order (order matters when modifications compose).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Directory of the file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Evaluations in flight at once.
    pub max_concurrent: u32,
    /// Compiled-code cache directory.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            max_concurrent: EngineOptions::default().max_concurrent,
            cache_dir: None,
        }
    }
}

/// `[trust]`: every policy is verified against the operator's trust store before it
/// loads. There is no way to skip verification except `allow_unsigned = true`, which is
/// for development: it is logged loudly on every load and marks every decision.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// The trust store (`trust.toml`).
    pub store: Option<PathBuf>,
    /// Anti-rollback high-water marks (default: the store's path + `.state.json`).
    pub state: Option<PathBuf>,
    /// Development only: load policies without verifying their signatures.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// `[lifecycle]`: hot reload, status, rollback.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSection {
    /// The host's lifecycle directory: its status (`status.json`, for `portcullis
    /// status`), the archive of activated releases and the operator's pins (for
    /// `portcullis rollback`) and the lifecycle event journal (`events.jsonl`). Keep it
    /// writable by the operator only. Without it there is no status file and no
    /// rollback.
    pub dir: Option<PathBuf>,
    /// Quiet time after the last file event before a reload starts, milliseconds
    /// (editors and copies write in several steps).
    pub debounce_ms: u64,
}

impl Default for LifecycleSection {
    fn default() -> Self {
        LifecycleSection {
            dir: None,
            debounce_ms: 200,
        }
    }
}

/// `[limits]` and a policy's `limits`: all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Fuel per evaluation.
    pub fuel: Option<u64>,
    /// Wall-clock deadline per evaluation, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory per evaluation, MiB.
    pub memory_mb: Option<u32>,
    /// Bytes of strings a policy may return, KiB.
    pub max_output_kb: Option<u32>,
    /// Log lines kept per evaluation.
    pub max_log_lines: Option<u32>,
}

/// One `[[policies]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique name (used in decisions, logs and metrics).
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// Stages the policy runs in.
    pub stages: Vec<Stage>,
    /// Meaning of a failed run.
    #[serde(default)]
    pub on_error: OnError,
    /// Enforce or monitor.
    #[serde(default)]
    pub mode: Mode,
    /// Must stay enforced: a hot reload cannot remove the policy, switch it to monitor
    /// or drop this flag.
    #[serde(default)]
    pub mandatory: bool,
    /// Fixtures file for `portcullis test`.
    #[serde(default)]
    pub fixtures: Option<PathBuf>,
    /// The policy's own configuration, handed over as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Tighter limits for this policy.
    #[serde(default)]
    pub limits: LimitsSection,
    /// A candidate version rolled out next to this one (shadow or canary).
    #[serde(default)]
    pub candidate: Option<CandidateConfig>,
}

/// How a candidate version is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rollout {
    /// Runs next to the active version on every evaluation; its verdict is recorded
    /// and compared, never applied.
    Shadow,
    /// Replaces the active version for `percent` of clients (or requests).
    Canary,
}

/// What a canary's traffic split hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryKey {
    /// The client id: a client sees one version consistently.
    #[default]
    Client,
    /// The request id.
    Request,
}

/// `[policies.candidate]`: a candidate version of the policy (a new component, new
/// configuration, or both), verified and self-tested like any other.
///
/// ```toml
/// [policies.candidate]
/// path = "policies/pii-next.wasm"   # default: the policy's own component
/// config = { action = "deny" }      # default: the policy's own configuration
/// rollout = "canary"                # or "shadow"
/// percent = 10                      # canary only: share of clients, 0..=100
/// key = "client"                    # canary only: "client" (default) or "request"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateConfig {
    /// The candidate component (default: the policy's own).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The candidate's configuration (default: the policy's own).
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Shadow or canary.
    pub rollout: Rollout,
    /// Canary: the share of traffic, in percent.
    #[serde(default)]
    pub percent: Option<u8>,
    /// Canary: what the split hashes.
    #[serde(default)]
    pub key: Option<CanaryKey>,
}

impl PipelineConfig {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
        let text = crate::toml_file::read(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, base)
    }

    /// Parse and validate TOML text; `path` is used in messages, `base_dir` resolves
    /// relative paths.
    pub fn parse(
        text: &str,
        path: &Path,
        base_dir: PathBuf,
    ) -> Result<PipelineConfig, ConfigError> {
        let mut config: PipelineConfig = crate::toml_file::parse(text, path)?;
        config.base_dir = base_dir;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| crate::toml_file::invalid(path, key, message);
        if self.engine.max_concurrent == 0 {
            return Err(invalid(
                "engine.max_concurrent".into(),
                "must be at least 1".into(),
            ));
        }
        self.ceilings()
            .map_err(|(k, m)| invalid(format!("limits.{k}"), m))?;
        self.gateway
            .validate()
            .map_err(|(k, m)| invalid(format!("gateway.{k}"), m))?;
        self.audit
            .validate()
            .map_err(|(k, m)| invalid(format!("audit.{k}"), m))?;
        self.telemetry
            .validate()
            .map_err(|(k, m)| invalid(format!("telemetry.{k}"), m))?;
        match (&self.trust.store, self.trust.allow_unsigned) {
            (None, false) => {
                return Err(invalid(
                    "trust.store".into(),
                    "no trust store configured, and every policy must be verified: set \
                     [trust] store = \"trust.toml\" (see the README), or allow_unsigned = true \
                     for development only"
                        .into(),
                ));
            }
            (Some(_), true) => {
                return Err(invalid(
                    "trust.allow_unsigned".into(),
                    "set either a trust store or allow_unsigned, not both (a configured store \
                     must never be bypassed)"
                        .into(),
                ));
            }
            _ => {}
        }
        let refs = crate::registry::source::registry_refs(self);
        self.registry
            .validate(!refs.is_empty())
            .map_err(|(k, m)| invalid(format!("registry.{k}"), m))?;
        if !refs.is_empty() && self.trust.allow_unsigned {
            return Err(invalid(
                "trust.allow_unsigned".into(),
                "oci:// policies are always verified: configure a trust store".into(),
            ));
        }
        for (key, reference) in &refs {
            crate::registry::ArtifactRef::parse(reference)
                .map_err(|m| invalid(format!("policies.{key}.path"), m))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let key = |field: &str| format!("policies[{i}].{field}");
            let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if !p.name.chars().all(safe) || !p.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            {
                return Err(invalid(
                    key("name"),
                    format!(
                        "{:?}: use letters, digits, '.', '_' and '-', starting with a letter or \
                         digit (names become file and metric names)",
                        p.name
                    ),
                ));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is used twice; names must be unique", p.name),
                ));
            }
            if p.stages.is_empty() {
                return Err(invalid(
                    key("stages"),
                    "list at least one of \"input\", \"tool\", \"output\"".into(),
                ));
            }
            if p.mandatory && p.mode != Mode::Enforce {
                return Err(invalid(
                    key("mode"),
                    "a mandatory policy must be enforced: remove `mode` or `mandatory`".into(),
                ));
            }
            self.limits_for(p)
                .map_err(|(k, m)| invalid(key(&format!("limits.{k}")), m))?;
            if let Some(c) = &p.candidate {
                c.validate()
                    .map_err(|(k, m)| invalid(key(&format!("candidate.{k}")), m))?;
            }
        }
        Ok(())
    }

    /// Why `next` may not replace this configuration by a reload: a policy marked
    /// `mandatory` here must stay, enforced and mandatory (changing that takes a
    /// restart, a deliberate operator action).
    pub fn reload_refusal(&self, next: &PipelineConfig) -> Option<String> {
        self.policies.iter().filter(|p| p.mandatory).find_map(|p| {
            match next.policies.iter().find(|n| n.name == p.name) {
                None => Some(format!(
                    "policy {} is mandatory: a reload cannot remove it (restart to change that)",
                    p.name
                )),
                Some(n) if !n.mandatory || n.mode != Mode::Enforce => Some(format!(
                    "policy {} is mandatory: a reload cannot switch it to monitor or drop                      `mandatory` (restart to change that)",
                    p.name
                )),
                Some(_) => None,
            }
        })
    }

    /// The resolved path of a file named in the configuration.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The file a policy's `path` names now: a file resolved against the
    /// configuration's directory, or, for an `oci://` reference, the verified
    /// artifact in the registry cache. `Err` says why there is none yet.
    pub fn component_path(&self, path: &Path) -> Result<PathBuf, String> {
        match (path.to_str(), self.registry_cache()) {
            (Some(text), Some(cache)) if crate::registry::ArtifactRef::is_registry(text) => {
                cache.resolve(text)
            }
            _ => Ok(self.resolve(path)),
        }
    }

    /// The registry cache, if configured.
    pub fn registry_cache(&self) -> Option<crate::registry::cache::Cache> {
        let dir = self.registry.cache_dir.as_ref()?;
        Some(crate::registry::cache::Cache::new(self.resolve(dir)))
    }

    /// The resolved trust store and state paths, or `None` with `allow_unsigned`.
    pub fn trust_paths(&self) -> Option<(PathBuf, PathBuf)> {
        let store = self.resolve(self.trust.store.as_ref()?);
        let state = match &self.trust.state {
            Some(state) => self.resolve(state),
            None => PathBuf::from(format!("{}.state.json", store.display())),
        };
        Some((store, state))
    }

    /// The resolved lifecycle directory, if configured.
    pub fn lifecycle_dir(&self) -> Option<PathBuf> {
        self.lifecycle.dir.as_ref().map(|d| self.resolve(d))
    }

    /// Engine options from `[engine]` and the memory ceiling.
    pub fn engine_options(&self) -> EngineOptions {
        let ceilings = self.ceilings().unwrap_or_default();
        EngineOptions {
            max_concurrent: self.engine.max_concurrent,
            max_memory_bytes: ceilings
                .memory_bytes
                .max(EngineOptions::default().max_memory_bytes),
            cache_dir: self.engine.cache_dir.as_ref().map(|d| self.resolve(d)),
        }
    }

    /// The `[limits]` section applied over the built-in defaults.
    fn ceilings(&self) -> Result<Limits, (String, String)> {
        let base = Limits::default();
        let l = &self.limits;
        let limits = Limits {
            fuel: l.fuel.unwrap_or(base.fuel),
            deadline_ms: l.deadline_ms.unwrap_or(base.deadline_ms),
            memory_bytes: l
                .memory_mb
                .map_or(base.memory_bytes, |m| (m as usize) << 20),
            max_output_bytes: l
                .max_output_kb
                .map_or(base.max_output_bytes, |k| (k as usize) << 10),
            max_log_lines: l.max_log_lines.unwrap_or(base.max_log_lines),
        };
        check_positive(&limits)?;
        Ok(limits)
    }

    /// The effective limits of a policy: its own values, which may only tighten the
    /// `[limits]` ceilings.
    pub fn limits_for(&self, policy: &PolicyConfig) -> Result<Limits, (String, String)> {
        let ceil = self.ceilings()?;
        let own = &policy.limits;
        let pick = |key: &str, own: Option<u64>, ceiling: u64| match own {
            Some(v) if v > ceiling => Err((
                key.to_string(),
                format!(
                    "{v} exceeds the operator ceiling of {ceiling} in [limits]; lower it or raise the ceiling"
                ),
            )),
            Some(v) => Ok(v),
            None => Ok(ceiling),
        };
        let limits = Limits {
            fuel: pick("fuel", own.fuel, ceil.fuel)?,
            deadline_ms: pick("deadline_ms", own.deadline_ms, ceil.deadline_ms)?,
            memory_bytes: pick(
                "memory_mb",
                own.memory_mb.map(|m| (m as u64) << 20),
                ceil.memory_bytes as u64,
            )? as usize,
            max_output_bytes: pick(
                "max_output_kb",
                own.max_output_kb.map(|k| (k as u64) << 10),
                ceil.max_output_bytes as u64,
            )? as usize,
            max_log_lines: pick(
                "max_log_lines",
                own.max_log_lines.map(u64::from),
                ceil.max_log_lines.into(),
            )? as u32,
        };
        check_positive(&limits)?;
        Ok(limits)
    }
}

fn check_positive(l: &Limits) -> Result<(), (String, String)> {
    let zero = |k: &str| Err((k.to_string(), "must be greater than zero".to_string()));
    if l.fuel == 0 {
        return zero("fuel");
    }
    if l.deadline_ms == 0 {
        return zero("deadline_ms");
    }
    if l.memory_bytes == 0 {
        return zero("memory_mb");
    }
    Ok(())
}

impl CandidateConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.path.is_none() && self.config.is_none() {
            return err(
                "path",
                "a candidate needs its own `path` (component), `config`, or both",
            );
        }
        match self.rollout {
            Rollout::Shadow if self.percent.is_some() || self.key.is_some() => err(
                "percent",
                "`percent` and `key` are for canaries; a shadow sees all traffic",
            ),
            Rollout::Canary if self.percent.is_none_or(|p| p > 100) => {
                err("percent", "a canary needs `percent` between 0 and 100")
            }
            _ => Ok(()),
        }
    }
}

impl PolicyConfig {
    /// The policy as its candidate runs it: the candidate's component and
    /// configuration where given, in monitor mode for a shadow; no candidate of its
    /// own. `None` without a candidate.
    pub fn candidate_policy(&self) -> Option<PolicyConfig> {
        let c = self.candidate.as_ref()?;
        Some(PolicyConfig {
            path: c.path.clone().unwrap_or_else(|| self.path.clone()),
            config: c.config.clone().or_else(|| self.config.clone()),
            mode: match c.rollout {
                Rollout::Shadow => Mode::Monitor,
                Rollout::Canary => self.mode,
            },
            candidate: None,
            ..self.clone()
        })
    }

    /// The policy's configuration as JSON text (`{}` when absent).
    pub fn config_json(&self) -> String {
        match &self.config {
            Some(table) => serde_json::to_string(table).unwrap_or_else(|_| "{}".to_string()),
            None => "{}".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse with verification switched off (these tests are about other sections).
    fn parse(text: &str) -> Result<PipelineConfig, ConfigError> {
        let text = format!("[trust]\nallow_unsigned = true\n{text}");
        PipelineConfig::parse(&text, Path::new("test.toml"), PathBuf::from("/etc/p"))
    }

    #[test]
    fn verification_cannot_be_left_out_or_bypassed_by_accident() {
        let raw = |t: &str| PipelineConfig::parse(t, Path::new("t.toml"), PathBuf::from("/etc/p"));
        let e = raw("[[policies]]\nname = \"a\"\npath = \"a\"\nstages = [\"input\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trust.store") && e.contains("allow_unsigned = true"),
            "{e}"
        );
        let e = raw("[trust]\nstore = \"t.toml\"\nallow_unsigned = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not both"), "{e}");
        let c = raw("[trust]\nstore = \"t.toml\"\n").unwrap();
        let (store, state) = c.trust_paths().unwrap();
        assert_eq!(store, PathBuf::from("/etc/p/t.toml"));
        assert_eq!(state, PathBuf::from("/etc/p/t.toml.state.json"));
    }

    #[test]
    fn parses_policies_and_resolves_paths_and_limits() {
        let c = parse(
            r#"
            [limits]
            fuel = 1000
            [[policies]]
            name = "a"
            path = "a.wasm"
            stages = ["input", "output"]
            config = { threshold = 0.5, roles = ["user"] }
            limits = { fuel = 10 }
            "#,
        )
        .unwrap();
        let p = &c.policies[0];
        assert_eq!(c.resolve(&p.path), PathBuf::from("/etc/p/a.wasm"));
        assert_eq!(c.limits_for(p).unwrap().fuel, 10);
        assert_eq!(p.on_error, OnError::Deny);
        assert_eq!(p.mode, Mode::Enforce);
        let json: serde_json::Value = serde_json::from_str(&p.config_json()).unwrap();
        assert_eq!(json["roles"][0], "user");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = parse(
            "[[policies]]\nname = \"a\"\npath = \"a\"\nstages = [\"input\"]\nlimits = { fuel = 999999999999 }\n",
        );
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("policies[0].limits.fuel") && msg.contains("ceiling"),
            "{msg}"
        );
        let e = parse("[[policies]]\nname = \"a\"\npath = \"a\"\nstages = [\"inputs\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs"), "{e}");
        let e = parse("[engine]\nbogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let dup = "[[policies]]\nname = \"a\"\npath = \"a\"\nstages = [\"input\"]\n";
        let e = parse(&format!("{dup}{dup}")).unwrap_err().to_string();
        assert!(
            e.contains("policies[1].name") && e.contains("unique"),
            "{e}"
        );
        let e = parse("[[policies]]\nname = \"a\"\npath = \"a\"\nstages = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policies[0].stages"), "{e}");
        let e = parse("[[policies]]\nname = \"../x\"\npath = \"a\"\nstages = [\"input\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("policies[0].name") && e.contains("letters"),
            "{e}"
        );
    }

    #[test]
    fn candidates_are_validated_and_inherit_what_they_do_not_set() {
        let policy = "[[policies]]\nname = \"a\"\npath = \"a.wasm\"\nstages = [\"input\"]\nconfig = { t = 1 }\n";
        let with = |c: &str| parse(&format!("{policy}[policies.candidate]\n{c}"));
        let c = with("path = \"b.wasm\"\nrollout = \"shadow\"\n").unwrap();
        let cp = c.policies[0].candidate_policy().unwrap();
        assert_eq!(cp.path, PathBuf::from("b.wasm"));
        assert_eq!(cp.mode, Mode::Monitor, "a shadow never enforces");
        assert_eq!(cp.config_json(), c.policies[0].config_json());
        let c = with("config = { t = 2 }\nrollout = \"canary\"\npercent = 5\n").unwrap();
        let cp = c.policies[0].candidate_policy().unwrap();
        assert_eq!((cp.path.to_str(), cp.mode), (Some("a.wasm"), Mode::Enforce));
        assert!(cp.config_json().contains('2') && cp.candidate.is_none());
        for (bad, needle) in [
            ("rollout = \"shadow\"\n", "candidate.path"),
            ("path = \"b\"\nrollout = \"canary\"\n", "candidate.percent"),
            (
                "path = \"b\"\nrollout = \"canary\"\npercent = 101\n",
                "between 0 and 100",
            ),
            (
                "path = \"b\"\nrollout = \"shadow\"\npercent = 5\n",
                "a shadow sees all traffic",
            ),
            ("path = \"b\"\nrollout = \"blue\"\n", "blue"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
