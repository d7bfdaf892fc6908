//! `keygen`, `sign`, `verify` and `inspect`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use portcullis::artifact::bundle::{self, Bundle};
use portcullis::artifact::manifest::Predicate;
use portcullis::artifact::statement::sha256_hex;
use portcullis::artifact::trust::{TrustStore, Verifier, exports_via_engine};
use portcullis::artifact::{component, keys, manifest, sign as signer};
use portcullis::engine::{Engine, EngineOptions};
use serde_json::json;

pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::generate();
    let id = keys::write_pair(&key, out)?;
    eprintln!(
        "wrote {} (private, keep secret) and {}",
        out.display(),
        keys::public_path(out).display()
    );
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

fn read_wasm(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn sign(key: &Path, manifest: &Path, force: bool, policy: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::read_private(key)?;
    let predicate = manifest::load(manifest)?;
    let signed = sign_file(&key, predicate, force, policy)?;
    let sidecar = bundle::sidecar_path(policy);
    if signed.added {
        eprintln!("signed by {} -> {}", signed.key_id, sidecar.display());
    } else {
        eprintln!(
            "already signed by {} ({})",
            signed.key_id,
            sidecar.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sign the component at `policy` with `key` and write (or extend) its sidecar bundle.
/// A manifest whose kind or world the component does not implement is refused.
pub fn sign_file(
    key: &SigningKey,
    predicate: Predicate,
    force: bool,
    policy: &Path,
) -> anyhow::Result<signer::Signed> {
    let wasm = read_wasm(policy)?;
    signer::check_world(&wasm, &predicate)
        .with_context(|| format!("refusing to sign {}", policy.display()))?;
    let sidecar = bundle::sidecar_path(policy);
    let existing = if sidecar.exists() {
        match Bundle::read(&sidecar) {
            Ok(b) => Some(b),
            Err(e) if force => {
                eprintln!("replacing unreadable bundle ({e})");
                None
            }
            Err(e) => anyhow::bail!("{e} (pass --force to replace it)"),
        }
    } else {
        None
    };
    let signed = signer::sign(&wasm, predicate, key, existing, force)?;
    let tmp = sidecar.with_extension("json.tmp");
    std::fs::write(&tmp, signed.bundle.to_json())
        .and_then(|()| std::fs::rename(&tmp, &sidecar))
        .with_context(|| format!("cannot write {}", sidecar.display()))?;
    Ok(signed)
}

/// A verifier for the trust store `trust`, with the high-water-mark file `state` if
/// given.
pub fn verifier(trust: &Path, state: Option<&Path>) -> anyhow::Result<Verifier> {
    let verifier = Verifier::new(TrustStore::load(trust)?);
    Ok(match state {
        Some(state) => verifier.with_state(state),
        None => verifier,
    })
}

/// Verify `bundle` for `wasm` as policy `name` when given, else as the policy its
/// statement names.
pub fn verify_as(
    verifier: &Verifier,
    name: Option<&str>,
    wasm: &[u8],
    bundle: &[u8],
    exports: impl FnOnce() -> Result<portcullis::policy::Exports, String>,
) -> Result<portcullis::artifact::trust::Verified, portcullis::artifact::trust::VerifyError> {
    match name {
        Some(name) => verifier.verify_named(name, wasm, bundle, exports),
        None => verifier.verify(wasm, bundle, exports),
    }
}

fn verify_with(
    trust: &Path,
    state: Option<&Path>,
    name: Option<&str>,
    wasm: &[u8],
    policy: &Path,
) -> anyhow::Result<Result<portcullis::artifact::trust::Verified, String>> {
    let verifier = verifier(trust, state)?;
    let sidecar = bundle::sidecar_path(policy);
    let bytes = match bundle::read_capped(&sidecar) {
        Ok(b) => b,
        Err(e) => {
            return Ok(Err(
                portcullis::artifact::trust::VerifyError::from(e).to_string()
            ));
        }
    };
    let exports = || {
        let engine = Engine::new(&EngineOptions::default()).map_err(|e| e.to_string())?;
        exports_via_engine(&engine, wasm)
    };
    Ok(verify_as(&verifier, name, wasm, &bytes, exports).map_err(|e| e.to_string()))
}

pub fn verify(
    trust: &Path,
    state: Option<&Path>,
    name: Option<&str>,
    policy: &Path,
) -> anyhow::Result<ExitCode> {
    let wasm = read_wasm(policy)?;
    match verify_with(trust, state, name, &wasm, policy)? {
        Ok(verified) => {
            println!("{}", serde_json::to_string_pretty(&verified.statement)?);
            eprintln!("verified: signed by {}", verified.key_ids.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("verification failed: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn inspect(trust: Option<&Path>, policy: &Path) -> anyhow::Result<ExitCode> {
    let wasm = read_wasm(policy)?;
    let interfaces =
        component::interfaces(&wasm).map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
    let contracts: Vec<&str> = interfaces
        .exports
        .iter()
        .filter_map(|e| {
            let name = e.split('@').next().unwrap_or(e);
            match name {
                "portcullis:policy/request-checker" => Some("request-checker (guardrail)"),
                "portcullis:policy/response-filter" => Some("response-filter (output-filter)"),
                "portcullis:policy/tool-authorizer" => Some("tool-authorizer (tool-sandbox)"),
                _ => None,
            }
        })
        .collect();
    let sidecar = bundle::sidecar_path(policy);
    let claims = if !sidecar.exists() {
        json!({"status": "unsigned", "bundle": sidecar.display().to_string()})
    } else if let Some(trust) = trust {
        match verify_with(trust, None, None, &wasm, policy)? {
            Ok(v) => json!({
                "status": "verified",
                "signed_by": v.key_ids,
                "statement": v.statement,
            }),
            Err(e) => json!({"status": "verification failed", "error": e}),
        }
    } else {
        let unverified = Bundle::read(&sidecar)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                let keyids: Vec<String> = b
                    .dsse_envelope
                    .signatures
                    .iter()
                    .map(|s| s.keyid.clone())
                    .collect();
                let statement = b.unverified_statement()?;
                Ok(json!({"signature_keyids": keyids, "statement": statement}))
            });
        match unverified {
            Ok(mut v) => {
                v["status"] = json!("unverified (pass --trust to verify)");
                v
            }
            Err(e) => json!({"status": "unverified", "error": e}),
        }
    };
    let out = json!({
        "path": policy.display().to_string(),
        "digest": format!("sha256:{}", sha256_hex(&wasm)),
        "size": wasm.len(),
        "contracts": contracts,
        "exports": interfaces.exports,
        "imports": interfaces.imports,
        "bundle": claims,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
