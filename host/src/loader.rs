//! From a configured policy to a pipeline [`Entry`]: read the component and its
//! bundle, verify them against the trust store, compile (cached by digest), run the
//! signed self-tests and the configured fixtures, and warm up every stage. Any failed
//! step refuses the candidate with a [`LoadError`]; nothing here activates anything.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::artifact::bundle;
use crate::artifact::manifest::RequestedLimits;
use crate::artifact::trust::{Verified, Verifier, exports_via_engine};
use crate::bindings::{ChatRequest, Message, RequestContext, Role};
use crate::config::{PipelineConfig, PolicyConfig, Stage};
use crate::engine::{Engine, EngineError, Limits, Outcome};
use crate::pipeline::{Entry, LoadError};
use crate::policy::Policy;
use crate::rollout;

/// A configured policy's inputs as they are on disk now.
pub struct Candidate {
    /// The component file read (for `oci://` policies, the verified copy in the
    /// registry cache).
    pub path: std::path::PathBuf,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// The sidecar bundle bytes, or why they cannot be read.
    pub bundle: Result<Vec<u8>, String>,
    /// SHA-256 over everything that decides what the entry does: component, bundle,
    /// the policy's configuration, the global limits and the fixtures file. Equal
    /// fingerprints mean an unchanged policy.
    pub fingerprint: String,
}

impl Candidate {
    /// Read the files of policy `p`.
    pub fn read(config: &PipelineConfig, p: &PolicyConfig) -> Result<Candidate, LoadError> {
        let path = config
            .component_path(&p.path)
            .map_err(|reason| LoadError::NotPulled {
                policy: p.name.clone(),
                reason,
            })?;
        let wasm = std::fs::read(&path).map_err(|source| LoadError::Read {
            policy: p.name.clone(),
            path: path.clone(),
            source,
        })?;
        let bundle = bundle::read_capped(&bundle::sidecar_path(&path)).map_err(|e| e.to_string());
        let fixtures = p
            .fixtures
            .as_ref()
            .and_then(|f| std::fs::read(config.resolve(f)).ok());
        // The candidate section is a slot of its own: it does not change this one.
        let own = PolicyConfig {
            candidate: None,
            ..p.clone()
        };
        let mut hash = Sha256::new();
        for part in [
            &wasm[..],
            bundle.as_deref().unwrap_or_default(),
            format!("{own:?}").as_bytes(),
            format!("{:?}", config.limits).as_bytes(),
            fixtures.as_deref().unwrap_or_default(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        Ok(Candidate {
            path,
            wasm,
            bundle,
            fingerprint: hex::encode(hash.finalize()),
        })
    }

    /// The component's `sha256:` digest.
    pub fn digest(&self) -> String {
        crate::artifact::statement::sha256_digest(&self.wasm)
    }
}

/// How a candidate is admitted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    /// The configured fixtures file must pass too (signed self-tests always run).
    pub run_fixtures: bool,
    /// An archived release the operator pinned: verified with every check but the
    /// sequence high-water mark (see [`Verifier::check_pinned`]).
    pub pinned: bool,
}

/// Build the entry for policy `p` from `candidate`. With a verifier, the returned
/// [`Verified`] must be [recorded](Verifier::record) once the entry is activated as
/// the policy's active, unpinned version (the high-water mark is not advanced here, so
/// a candidate that fails later steps never blocks the version that stays active).
pub async fn load_entry(
    engine: &Arc<Engine>,
    verifier: Option<&Verifier>,
    config: &PipelineConfig,
    p: &PolicyConfig,
    candidate: Candidate,
    admission: Admission,
) -> Result<(Entry, Option<Verified>), LoadError> {
    let path = candidate.path.clone();
    let mut limits = config
        .limits_for(p)
        .map_err(|(key, message)| EngineError::Invalid {
            policy: p.name.clone(),
            reason: format!("limits.{key}: {message}"),
        })?;
    let verified = match verifier {
        Some(verifier) => Some(verify(
            engine,
            verifier,
            &p.name,
            &candidate,
            admission.pinned,
        )?),
        None => {
            tracing::warn!(
                policy = %p.name,
                "loading an UNSIGNED policy: [trust] allow_unsigned = true is for \
                 development only; every decision it takes part in is marked unsigned"
            );
            None
        }
    };
    let mut cases = Vec::new();
    if let Some(verified) = &verified {
        let predicate = &verified.statement.predicate;
        apply_signed_limits(&mut limits, &predicate.limits);
        cases = predicate
            .self_test_cases()
            .map_err(|reason| LoadError::Verification {
                policy: p.name.clone(),
                reason: format!("self_test: {reason}"),
            })?;
    }
    let policy = engine.load(&p.name, &candidate.wasm, p.config_json(), limits)?;
    self_test(engine, &policy, &candidate.wasm, &cases, "signed self-test").await?;
    let fixtures = p.fixtures.as_ref().map(|f| config.resolve(f));
    if let Some(file) = fixtures.as_ref().filter(|_| admission.run_fixtures) {
        let cases = read_fixtures(file).map_err(|reason| LoadError::Fixtures {
            policy: p.name.clone(),
            reason,
        })?;
        self_test(
            engine,
            &policy,
            &candidate.wasm,
            &cases,
            "configured fixture",
        )
        .await?;
    }
    let predicate = verified.as_ref().map(|v| &v.statement.predicate);
    let entry = Entry {
        policy,
        stages: p.stages.clone(),
        on_error: p.on_error,
        mode: p.mode,
        fixtures,
        path,
        unsigned: verifier.is_none(),
        signers: verified
            .as_ref()
            .map(|v| v.key_ids.clone())
            .unwrap_or_default(),
        version: predicate.map(|p| p.version.clone()),
        sequence: predicate.map(|p| p.sequence),
        source: Arc::new(candidate),
        deactivated: None,
        pinned: admission.pinned,
        role: rollout::Role::Active,
        candidate: None,
    };
    warm_up(&entry).await?;
    Ok((entry, verified))
}

/// Load policy `p` as configured: its active version and, when it has one, its
/// rollout candidate (both verified and self-tested; `run_fixtures` as in
/// [`Admission`]). The returned [`Verified`] is the active version's.
pub async fn load_policy(
    engine: &Arc<Engine>,
    verifier: Option<&Verifier>,
    config: &PipelineConfig,
    p: &PolicyConfig,
    run_fixtures: bool,
) -> Result<(Entry, Option<Verified>), LoadError> {
    let admission = Admission {
        run_fixtures,
        pinned: false,
    };
    let candidate = Candidate::read(config, p)?;
    let (mut entry, verified) =
        load_entry(engine, verifier, config, p, candidate, admission).await?;
    if let (Some(cp), Some(c)) = (p.candidate_policy(), &p.candidate) {
        let source = Candidate::read(config, &cp)?;
        let (next, _) = load_entry(engine, verifier, config, &cp, source, admission).await?;
        entry.candidate = Some(Arc::new(Entry {
            role: rollout::Role::for_candidate(c, None),
            ..next
        }));
    }
    Ok((entry, verified))
}

/// Verify `candidate` for policy `name` without advancing the high-water mark (a
/// `pinned` release is not checked against it at all). The host grants no
/// capabilities yet, so a policy that requests any is refused.
pub fn verify(
    engine: &Arc<Engine>,
    verifier: &Verifier,
    name: &str,
    candidate: &Candidate,
    pinned: bool,
) -> Result<Verified, LoadError> {
    let refuse = |reason: String| LoadError::Verification {
        policy: name.to_string(),
        reason,
    };
    let bundle = candidate.bundle.as_ref().map_err(|e| refuse(e.clone()))?;
    let wasm = &candidate.wasm;
    let exports = || exports_via_engine(engine, wasm);
    let verified = if pinned {
        verifier.check_pinned(name, wasm, bundle, exports)
    } else {
        verifier.check_named(name, wasm, bundle, exports)
    }
    .map_err(|e| refuse(e.to_string()))?;
    let wanted = &verified.statement.predicate.capabilities.wasi;
    if !wanted.is_empty() {
        return Err(refuse(format!(
            "requests capabilities the operator has not granted: {}",
            wanted.join(", ")
        )));
    }
    Ok(verified)
}

/// The effective limits are the tighter of the operator's and the signed manifest's.
fn apply_signed_limits(limits: &mut Limits, signed: &RequestedLimits) {
    if let Some(fuel) = signed.fuel {
        limits.fuel = limits.fuel.min(fuel);
    }
    if let Some(mb) = signed.memory_mb {
        limits.memory_bytes = limits
            .memory_bytes
            .min(usize::try_from(mb << 20).unwrap_or(usize::MAX));
    }
    if let Some(ms) = signed.deadline_ms {
        limits.deadline_ms = limits.deadline_ms.min(ms);
    }
}

fn read_fixtures(file: &Path) -> Result<Vec<portcullis_sdk::fixture::Fixture>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    portcullis_sdk::fixture::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Run fixture `cases`; any failure refuses the policy.
async fn self_test(
    engine: &Arc<Engine>,
    policy: &Policy,
    wasm: &[u8],
    cases: &[portcullis_sdk::fixture::Fixture],
    kind: &'static str,
) -> Result<(), LoadError> {
    if cases.is_empty() {
        return Ok(());
    }
    let refuse = |failed: usize, first: String| LoadError::SelfTest {
        policy: policy.name().to_string(),
        kind,
        failed,
        total: cases.len(),
        first,
    };
    let (_, failures) = crate::fixtures::run_cases(engine, policy, wasm, cases)
        .await
        .map_err(|e| refuse(cases.len(), e))?;
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(refuse(failures.len(), first.clone())),
    }
}

/// One warm-up evaluation per configured stage: proves the policy starts, reads its
/// configuration, exports what each stage needs and compiles its matchers before it
/// sees traffic.
async fn warm_up(entry: &Entry) -> Result<(), LoadError> {
    let policy = &entry.policy;
    let exports = policy.exports();
    let context = RequestContext {
        request_id: "warm-up".into(),
        client_id: "portcullis".into(),
        model: String::new(),
        metadata: Vec::new(),
    };
    let fail = |outcome: Outcome| LoadError::WarmUp {
        policy: policy.name().to_string(),
        outcome: match outcome {
            Outcome::Error(reason) => format!("error: {reason}"),
            other => other.name().to_string(),
        },
    };
    for stage in &entry.stages {
        let wrong = |export| LoadError::WrongStage {
            policy: policy.name().to_string(),
            stage: stage.name(),
            export,
        };
        match stage {
            Stage::Input => {
                if !exports.guardrail {
                    return Err(wrong("request-checker (guardrail world)"));
                }
                let request = ChatRequest {
                    context: context.clone(),
                    messages: vec![Message {
                        role: Role::User,
                        content: "Hello! Could you summarise this paragraph for me?".into(),
                        name: None,
                        tool_call_id: None,
                    }],
                    tools: Vec::new(),
                };
                policy.check_request(&request).await.result.map_err(fail)?;
            }
            Stage::Output => {
                if !exports.output_filter {
                    return Err(wrong("response-filter (output-filter world)"));
                }
                policy
                    .check_response(&context, "Sure, here is a short summary.")
                    .await
                    .result
                    .map_err(fail)?;
            }
            Stage::Tool => {
                if !exports.tool_sandbox {
                    return Err(wrong("tool-authorizer (tool-sandbox world)"));
                }
                policy
                    .check_tools(&context, &[])
                    .await
                    .result
                    .map_err(fail)?;
                policy
                    .check_calls(&context, &[], &[])
                    .await
                    .result
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}
