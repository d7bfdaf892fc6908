//! A component's top-level imports and exports, read with `wasmparser` (nothing is
//! compiled or run): for `portcullis inspect`.

use serde::Serialize;

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
