//! A component's top-level imports and exports, read with `wasmparser` (nothing is
//! compiled or run): for `portcullis inspect`, and to check a signed `world` claim.

use serde::Serialize;

use super::manifest::Kind;

/// The names a component imports and exports at its top level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Interfaces {
    /// Imported names, e.g. `wasi:cli/environment@0.2.0`.
    pub imports: Vec<String>,
    /// Exported names, e.g. `portcullis:policy/request-checker@0.1.0`.
    pub exports: Vec<String>,
}

/// Read a component's top-level imports and exports.
pub fn interfaces(wasm: &[u8]) -> Result<Interfaces, String> {
    use wasmparser::{Parser, Payload};
    let mut out = Interfaces::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a valid component: {e}"))? {
            Payload::Version { encoding, .. }
                if depth == 0 && encoding != wasmparser::Encoding::Component =>
            {
                return Err("a core module, not a component".into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    out.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    out.exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The WIT package every Portcullis contract belongs to.
const PACKAGE: &str = "portcullis:policy";

/// The world a component implements, derived from its top-level exports, e.g.
/// `portcullis:policy/content-policy@0.1.0`: the world whose export set is exactly
/// the Portcullis contracts exported, at the version those contracts carry.
pub fn implemented_world(wasm: &[u8]) -> Result<String, String> {
    let interfaces = interfaces(wasm)?;
    let mut exports = crate::policy::Exports {
        guardrail: false,
        output_filter: false,
        tool_sandbox: false,
    };
    let mut versions = std::collections::BTreeSet::new();
    for name in &interfaces.exports {
        let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        match interface {
            "request-checker" => exports.guardrail = true,
            "response-filter" => exports.output_filter = true,
            "tool-authorizer" => exports.tool_sandbox = true,
            _ => continue,
        }
        versions.insert(version.to_string());
    }
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.exports() == exports)
        .ok_or_else(|| {
            format!(
                "exports no Portcullis world (its exports: {})",
                interfaces.exports.join(", ")
            )
        })?;
    let mut versions = versions.into_iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.is_empty() => Ok(format!("{PACKAGE}/{}", kind.name())),
        (Some(v), None) => Ok(format!("{PACKAGE}/{}@{v}", kind.name())),
        _ => Err("exports Portcullis contracts of different versions".into()),
    }
}

/// Whether a signed `world` claim names `implemented` (from [`implemented_world`]);
/// a claim without `@version` matches any version.
pub fn world_matches(claimed: &str, implemented: &str) -> bool {
    claimed == implemented
        || (!claimed.contains('@') && implemented.split_once('@').map(|(w, _)| w) == Some(claimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_match_with_or_without_version() {
        let world = "portcullis:policy/guardrail@0.1.0";
        assert!(world_matches(world, world));
        assert!(world_matches("portcullis:policy/guardrail", world));
        assert!(!world_matches("portcullis:policy/guardrail@0.2.0", world));
        assert!(!world_matches("portcullis:policy/tool-sandbox", world));
    }
}
