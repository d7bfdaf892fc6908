//! Operator commands on a running host's policies: `status`, `rollback`, `promote`.
//!
//! They act through files a watching host reloads from: the pins in the lifecycle
//! directory (rollback to an archived release) and the pipeline configuration
//! (promoting or withdrawing a rollout candidate). Each action is appended to the
//! lifecycle journal with who did it and why.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use portcullis::artifact::bundle::{self, Bundle};
use portcullis::artifact::statement::sha256_hex;
use portcullis::artifact::trust::{TrustStore, Verifier, exports_via_engine};
use portcullis::config::{PipelineConfig, PolicyConfig};
use portcullis::engine::Engine;
use portcullis::releases::{Pin, Releases, operator};
use serde_json::{Value, json};

/// `portcullis status`: print what a host last wrote to its lifecycle directory.
pub fn status(config: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config)?;
    let releases = lifecycle(&config)?;
    let path = releases.status_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (has a host with this configuration run?)",
            path.display()
        )
    })?;
    let status: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text_of = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let short = |v: &Value| text_of(v).chars().take(19).collect::<String>();
    println!(
        "generation {} at {}",
        text_of(&status["generation"]),
        text_of(&status["at"])
    );
    println!(
        "{:<18} {:<10} {:>4} {:<19} {:<11} {:<20} SIGNERS / LAST ERROR",
        "POLICY", "VERSION", "SEQ", "DIGEST", "STATE", "SINCE"
    );
    for v in status["policies"].as_array().into_iter().flatten() {
        let signers: Vec<String> = v["signers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(short)
            .collect();
        let mut name = text_of(&v["name"]);
        if let Some(role) = v["role"].as_str() {
            name = format!("{name} [{}]", role.split(' ').next().unwrap_or(role));
        }
        let mut state = text_of(&v["state"]);
        if v["pinned"] == json!(true) {
            state.push_str(" (pin)");
        }
        let note = v["last_error"]
            .as_str()
            .map_or_else(|| signers.join(","), str::to_string);
        println!(
            "{:<18} {:<10} {:>4} {:<19} {:<11} {:<20} {}",
            name,
            text_of(&v["version"]),
            text_of(&v["sequence"]),
            short(&v["digest"]),
            state,
            text_of(&v["since"]),
            note
        );
    }
    for r in status["rollouts"].as_array().into_iter().flatten() {
        let how = match r["rollout"].as_str() {
            Some("canary") => format!(
                "canary {}% by {}",
                text_of(&r["percent"]),
                text_of(&r["key"])
            ),
            _ => {
                let s = &r["shadow"];
                format!(
                    "shadow: {} compared, {} disagreed {}",
                    text_of(&s["compared"]),
                    text_of(&s["disagreed"]),
                    text_of(&s["by_category"])
                )
            }
        };
        println!(
            "rollout {}: candidate {} ({}) next to {}: {how}",
            text_of(&r["policy"]),
            text_of(&r["candidate_version"]),
            short(&r["candidate"]),
            short(&r["active"]),
        );
    }
    let c = &status["counters"];
    println!(
        "reloads {}, swaps {}, rejected {}, deactivated {}",
        text_of(&c["reloads"]),
        text_of(&c["swaps"]),
        text_of(&c["rejected"]),
        text_of(&c["deactivated"])
    );
    Ok(ExitCode::SUCCESS)
}

/// How `portcullis rollback` was asked to act.
pub struct RollbackRequest<'a> {
    pub config: &'a Path,
    pub name: &'a str,
    /// A signed version or a `sha256:` digest (prefix).
    pub to: Option<&'a str>,
    pub release: bool,
    pub reason: &'a str,
}

/// `portcullis rollback`: pin an archived release, release a pin, or withdraw a
/// rollout candidate.
pub fn rollback(req: &RollbackRequest) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(req.config)?;
    let policy = configured(&config, req.name)?;
    let releases = lifecycle(&config)?;
    let pins = releases.pins().map_err(anyhow::Error::msg)?;
    let name = req.name;
    if req.release {
        let Some(pin) = pins.get(name) else {
            bail!("policy {name} is not pinned");
        };
        releases.set_pin(name, None).map_err(anyhow::Error::msg)?;
        releases.journal(
            "unpinned",
            json!({"policy": name, "digest": pin.digest, "by": operator(), "reason": req.reason}),
        );
        println!(
            "released the pin of {name}: a watching host activates the configured component \
             ({}) on its next reload",
            config.resolve(&policy.path).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if req.to.is_none() && policy.candidate.is_some() {
        edit_candidate(req.config, name, false)?;
        releases.journal(
            "rollout-withdrawn",
            json!({"policy": name, "by": operator(), "reason": req.reason}),
        );
        println!(
            "withdrew the rollout candidate of {name} from {}: a watching host runs only \
             the active version after its next reload",
            req.config.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let archived = archived_releases(&config, &releases, name)?;
    if archived.is_empty() {
        bail!(
            "no archived release of {name} in {}: a host archives each release it \
             activates, so there is nothing to roll back to yet",
            releases.dir().display()
        );
    }
    let running = match pins.get(name) {
        Some(pin) => (pin.digest.clone(), pin.sequence),
        None => {
            let path = config.resolve(&policy.path);
            let wasm =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let digest = format!("sha256:{}", sha256_hex(&wasm));
            let sequence = Bundle::read(&bundle::sidecar_path(&path))
                .ok()
                .and_then(|b| b.unverified_statement().ok())
                .map(|s| s.predicate.sequence);
            (digest, sequence)
        }
    };
    let listing = || {
        archived
            .iter()
            .map(Release::describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match req.to {
        Some(to) => archived
            .iter()
            .filter(|r| {
                r.version.as_deref() == Some(to)
                    || (to.starts_with("sha256:") && r.digest.starts_with(to))
            })
            .max_by_key(|r| r.sequence)
            .with_context(|| {
                format!(
                    "no archived release of {name} matches {to:?}; archived: {}",
                    listing()
                )
            })?,
        None => {
            let Some(current) = running.1 else {
                bail!(
                    "the running version of {name} has no signed sequence: name one with --to (archived: {})",
                    listing()
                );
            };
            archived
                .iter()
                .filter(|r| r.sequence.is_some_and(|s| s < current))
                .max_by_key(|r| r.sequence)
                .with_context(|| format!("no archived release of {name} is older than the running sequence {current}; archived: {}", listing()))?
        }
    };
    if (&target.digest, target.sequence) == (&running.0, running.1) {
        bail!(
            "{} of {name} is already the running version",
            target.describe()
        );
    }
    if let Err(reason) = &target.verified {
        bail!(
            "{} of {name} no longer verifies, refusing to pin it: {reason}",
            target.describe()
        );
    }
    let pin = Pin {
        digest: target.digest.clone(),
        version: target.version.clone(),
        sequence: target.sequence,
        at: portcullis::lifecycle::now(),
        by: operator(),
        reason: req.reason.to_string(),
    };
    releases
        .set_pin(name, Some(pin.clone()))
        .map_err(anyhow::Error::msg)?;
    releases.journal(
        "pinned",
        json!({"policy": name, "from": running.0, "pin": pin}),
    );
    println!(
        "pinned {name} to {}: a watching host activates it on its next reload (and keeps \
         it across restarts); `portcullis rollback --release {name}` returns to the \
         configured component",
        target.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// `portcullis promote`: make a rollout candidate the policy's active version.
pub fn promote(config_path: &Path, name: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let policy = configured(&config, name)?;
    if policy.candidate.is_none() {
        bail!("policy {name} has no [policies.candidate] to promote");
    }
    edit_candidate(config_path, name, true)?;
    let releases = config.lifecycle_dir().map(Releases::new);
    if let Some(r) = &releases {
        let pins = r.pins().map_err(anyhow::Error::msg)?;
        if pins.contains_key(name) {
            r.set_pin(name, None).map_err(anyhow::Error::msg)?;
            println!("released the rollback pin of {name}");
        }
        r.journal(
            "promoted",
            json!({"policy": name, "by": operator(), "reason": reason}),
        );
    }
    println!(
        "promoted the candidate of {name} in {}: a watching host verifies and activates it \
         as the active version on its next reload",
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Remove policy `name`'s candidate section from the configuration file, keeping its
/// formatting; with `promote`, its `path` and `config` replace the policy's first. The
/// result is validated before the file is replaced.
fn edit_candidate(config_path: &Path, name: &str, promote: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", config_path.display()))?;
    let policy = doc
        .get_mut("policies")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .and_then(|list| {
            list.iter_mut()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
        })
        .with_context(|| {
            format!(
                "no [[policies]] table named {name} in {}",
                config_path.display()
            )
        })?;
    let candidate = policy.remove("candidate").with_context(|| {
        format!(
            "policy {name} has no candidate in {}",
            config_path.display()
        )
    })?;
    if promote {
        for key in ["path", "config"] {
            let item = match &candidate {
                toml_edit::Item::Table(t) => t.get(key).cloned(),
                toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                    t.get(key).cloned().map(toml_edit::Item::Value)
                }
                _ => None,
            };
            if let Some(item) = item {
                policy.insert(key, item);
            }
        }
    }
    let edited = doc.to_string();
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    PipelineConfig::parse(&edited, config_path, base)
        .context("the edited configuration would not be valid; nothing was changed")?;
    portcullis::releases::write_atomically(config_path, edited.as_bytes())
        .with_context(|| format!("cannot write {}", config_path.display()))
}

/// One archived release, with its claims and whether it still verifies.
struct Release {
    digest: String,
    version: Option<String>,
    sequence: Option<u64>,
    verified: Result<(), String>,
}

impl Release {
    fn describe(&self) -> String {
        format!(
            "{} (sequence {}, {})",
            self.version.as_deref().unwrap_or("unsigned"),
            self.sequence.map_or("-".into(), |s| s.to_string()),
            &self.digest[..self.digest.len().min(19)]
        )
    }
}

/// The archived releases of `name`, each verified as a pinned release would be at
/// load (every check but the sequence high-water mark).
fn archived_releases(
    config: &PipelineConfig,
    releases: &Releases,
    name: &str,
) -> anyhow::Result<Vec<Release>> {
    let verifier = match config.trust_paths() {
        Some((store, _)) => Some(Verifier::new(TrustStore::load(&store)?)),
        None => None,
    };
    let engine = Engine::new(&config.engine_options())?;
    let mut out = Vec::new();
    for path in releases.archived(name) {
        let wasm =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let bundle_bytes = bundle::read_capped(&bundle::sidecar_path(&path));
        let claims = bundle_bytes
            .as_ref()
            .ok()
            .and_then(|b| Bundle::parse(b).ok())
            .and_then(|b| b.unverified_statement().ok());
        let verified = match (&verifier, &bundle_bytes) {
            (None, _) => Ok(()),
            (Some(_), Err(e)) => Err(e.to_string()),
            (Some(v), Ok(b)) => v
                .check_pinned(name, &wasm, b, || exports_via_engine(&engine, &wasm))
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        out.push(Release {
            digest: format!("sha256:{}", sha256_hex(&wasm)),
            version: claims.as_ref().map(|s| s.predicate.version.clone()),
            sequence: claims.as_ref().map(|s| s.predicate.sequence),
            verified,
        });
    }
    Ok(out)
}

fn configured<'a>(config: &'a PipelineConfig, name: &str) -> anyhow::Result<&'a PolicyConfig> {
    config
        .policies
        .iter()
        .find(|p| p.name == name)
        .with_context(|| {
            let names: Vec<&str> = config.policies.iter().map(|p| p.name.as_str()).collect();
            format!(
                "no policy named {name:?} in the configuration (configured: {})",
                names.join(", ")
            )
        })
}

fn lifecycle(config: &PipelineConfig) -> anyhow::Result<Releases> {
    let dir: PathBuf = config.lifecycle_dir().context(
        "no [lifecycle] dir in the configuration: the host keeps its status, archived \
         releases and rollback pins there",
    )?;
    Ok(Releases::new(dir))
}
