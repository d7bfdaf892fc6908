//! Signed policy artifacts: keygen -> sign -> verify, and one test per failed check.

use std::path::Path;
use std::process::Command;

use ed25519_dalek::SigningKey;
use portcullis::artifact::bundle::{self, Bundle};
use portcullis::artifact::dsse;
use portcullis::artifact::keys;
use portcullis::artifact::manifest::{Capabilities, Kind, Predicate, RequestedLimits};
use portcullis::artifact::sign::{SignError, check_world, sign};
use portcullis::artifact::trust::{
    TrustStore, Verified, Verifier, VerifyError, exports_via_engine,
};
use serde_json::Value;

use crate::support::{engine, guest};

const PII: &str = "portcullis_policy_pii";
const HOSTILE: &str = "portcullis_test_hostile";

pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id(key: &SigningKey) -> String {
    keys::key_id(&key.verifying_key())
}

pub(crate) fn predicate(name: &str, sequence: u64, kind: Kind) -> Predicate {
    Predicate {
        name: name.into(),
        version: "1.0.0".into(),
        sequence,
        kind,
        world: format!("portcullis:policy/{}@0.1.0", kind.name()),
        capabilities: Capabilities::default(),
        limits: RequestedLimits {
            fuel: Some(100_000_000),
            memory_mb: Some(16),
            deadline_ms: Some(50),
        },
        not_before: "2020-01-01T00:00:00Z".into(),
        expires: "2100-01-01T00:00:00Z".into(),
        min_host_version: "0.1.0".into(),
        self_test: Vec::new(),
    }
}

fn pii(sequence: u64) -> Predicate {
    predicate("pii", sequence, Kind::ContentPolicy)
}

/// A `[[keys]]` entry; `extra` lines are appended (status defaults to active).
pub(crate) fn key_entry(key: &SigningKey, extra: &str) -> String {
    pem_entry(&id(key), &keys::public_pem(&key.verifying_key()), extra)
}

/// A `[[keys]]` entry for a public key given as PEM (status defaults to active, names
/// to all).
fn pem_entry(key_id: &str, public_pem: &str, extra: &str) -> String {
    let status = if extra.contains("status") {
        ""
    } else {
        "status = \"active\"\n"
    };
    let names = if extra.contains("names") {
        ""
    } else {
        "names = [\"*\"]\n"
    };
    format!(
        "[[keys]]\nid = \"{key_id}\"\nalgorithm = \"ed25519\"\npublic_key = \"\"\"\n{public_pem}\"\"\"\n{status}{names}{extra}\n"
    )
}

fn store(text: &str) -> TrustStore {
    TrustStore::parse(text, Path::new("trust.toml")).expect("trust store parses")
}

fn one_key_store(key: &SigningKey, extra: &str) -> TrustStore {
    store(&key_entry(key, extra))
}

pub(crate) fn bundle_bytes(wasm: &[u8], predicate: Predicate, signers: &[&SigningKey]) -> Vec<u8> {
    let mut bundle = None;
    for k in signers {
        bundle = Some(
            sign(wasm, predicate.clone(), k, bundle, false)
                .unwrap()
                .bundle,
        );
    }
    bundle.unwrap().to_json().into_bytes()
}

fn verify(verifier: &Verifier, wasm: &[u8], bundle: &[u8]) -> Result<Verified, VerifyError> {
    verifier.verify(wasm, bundle, || exports_via_engine(&engine(), wasm))
}

fn verify_pii(
    store: TrustStore,
    predicate: Predicate,
    signers: &[&SigningKey],
) -> Result<Verified, VerifyError> {
    let wasm = guest(PII);
    let bundle = bundle_bytes(&wasm, predicate, signers);
    verify(&Verifier::new(store), &wasm, &bundle)
}

#[test]
fn signed_policy_verifies_and_returns_the_statement() {
    let k = key(1);
    let verified = verify_pii(one_key_store(&k, ""), pii(1), &[&k]).expect("verifies");
    assert_eq!(verified.statement.predicate, pii(1));
    assert_eq!(verified.key_ids, vec![id(&k)]);
    let wasm = guest(PII);
    assert_eq!(
        verified.statement.digest(),
        portcullis::artifact::statement::sha256_hex(&wasm)
    );
    let json: Value = serde_json::to_value(&verified.statement).unwrap();
    assert_eq!(json["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(json["subject"][0]["name"], "pii");
}

#[test]
fn changed_wasm_bytes_are_a_digest_mismatch() {
    let k = key(1);
    let mut wasm = guest(PII);
    let bundle = bundle_bytes(&wasm, pii(1), &[&k]);
    let last = wasm.len() - 1;
    wasm[last] ^= 1;
    let err = verify(&Verifier::new(one_key_store(&k, "")), &wasm, &bundle).unwrap_err();
    assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with("digest mismatch"), "{err}");
}

#[test]
fn changed_payload_is_a_bad_signature() {
    let k = key(1);
    let wasm = guest(PII);
    let mut bundle: Bundle = serde_json::from_slice(&bundle_bytes(&wasm, pii(1), &[&k])).unwrap();
    let payload = bundle.dsse_envelope.payload_bytes().unwrap();
    let tampered = String::from_utf8(payload)
        .unwrap()
        .replace("\"sequence\":1", "\"sequence\":99");
    bundle.dsse_envelope.payload = dsse::b64(tampered.as_bytes());
    let err = verify(
        &Verifier::new(one_key_store(&k, "")),
        &wasm,
        bundle.to_json().as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature { key_id: id(&k) });
}

#[test]
fn signature_by_an_unknown_key_is_refused() {
    let (trusted, stranger) = (key(1), key(2));
    let err = verify_pii(one_key_store(&trusted, ""), pii(1), &[&stranger]).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            key_ids: vec![id(&stranger)]
        }
    );
}

#[test]
fn signature_by_a_revoked_key_is_refused_even_with_other_valid_signatures() {
    let (good, revoked) = (key(1), key(2));
    let text = format!(
        "{}{}",
        key_entry(&good, ""),
        key_entry(&revoked, "status = \"revoked\"")
    );
    let err = verify_pii(store(&text), pii(1), &[&good, &revoked]).unwrap_err();
    assert_eq!(
        err,
        VerifyError::RevokedKey {
            key_id: id(&revoked)
        }
    );
}

#[test]
fn key_outside_its_name_scope_is_refused() {
    let k = key(1);
    let err = verify_pii(
        one_key_store(&k, "names = [\"acme/*\", \"secrets\"]"),
        pii(1),
        &[&k],
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::OutOfScope { ref name, .. } if name == "pii"),
        "{err}"
    );
}

#[test]
fn statement_for_another_name_is_refused_when_a_name_is_expected() {
    let k = key(1);
    let wasm = guest(PII);
    let bundle = bundle_bytes(&wasm, pii(1), &[&k]);
    let verifier = Verifier::new(one_key_store(&k, ""));
    let err = verifier
        .verify_named("secrets", &wasm, &bundle, || {
            exports_via_engine(&engine(), &wasm)
        })
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::NameMismatch {
            expected: "secrets".into(),
            signed: "pii".into()
        }
    );
    verifier
        .verify_named("pii", &wasm, &bundle, || {
            exports_via_engine(&engine(), &wasm)
        })
        .expect("right name");
}

#[test]
fn threshold_counts_distinct_keys_once() {
    let (a, b) = (key(1), key(2));
    let text = format!(
        "threshold = 1\n[[thresholds]]\nnames = \"p?i\"\nthreshold = 2\n{}{}",
        key_entry(&a, ""),
        key_entry(&b, "")
    );
    // The same key signing twice counts once.
    let wasm = guest(PII);
    let mut bundle: Bundle = serde_json::from_slice(&bundle_bytes(&wasm, pii(1), &[&a])).unwrap();
    let again = bundle.dsse_envelope.signatures[0].clone();
    bundle.dsse_envelope.signatures.push(again);
    let verifier = Verifier::new(store(&text));
    let err = verify(&verifier, &wasm, bundle.to_json().as_bytes()).unwrap_err();
    assert_eq!(
        err,
        VerifyError::ThresholdNotMet {
            name: "pii".into(),
            have: 1,
            need: 2
        }
    );
    // Two distinct keys meet it.
    let both = bundle_bytes(&wasm, pii(1), &[&a, &b]);
    let verified = verify(&verifier, &wasm, &both).expect("2 of 2");
    assert_eq!(verified.key_ids.len(), 2);
    // Other names use the default threshold.
    let hostile = guest(HOSTILE);
    let one = bundle_bytes(&hostile, predicate("hostile", 1, Kind::Guardrail), &[&a]);
    verify(&verifier, &hostile, &one).expect("default threshold 1");
}

#[test]
fn validity_window_is_checked_with_clock_skew() {
    let k = key(1);
    let wasm = guest(PII);
    let mut p = pii(1);
    p.not_before = "2030-01-01T00:00:00Z".into();
    p.expires = "2030-02-01T00:00:00Z".into();
    let bundle = bundle_bytes(&wasm, p, &[&k]);
    let at = |t: &str| portcullis::artifact::manifest::parse_utc(t).unwrap();
    let verifier = |now: &str| Verifier::new(one_key_store(&k, "")).with_now(at(now));

    let err = verify(&verifier("2029-12-31T23:58:00Z"), &wasm, &bundle).unwrap_err();
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");
    // Within the default 60 s tolerance.
    verify(&verifier("2029-12-31T23:59:30Z"), &wasm, &bundle).expect("within skew");
    verify(&verifier("2030-02-01T00:00:30Z"), &wasm, &bundle).expect("within skew");
    let err = verify(&verifier("2030-02-01T00:02:00Z"), &wasm, &bundle).unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    // A configured tolerance.
    let lenient = verifier("2030-02-01T00:02:00Z").with_clock_skew(time::Duration::minutes(5));
    verify(&lenient, &wasm, &bundle).expect("5 minutes of skew");
    let strict = verifier("2029-12-31T23:59:30Z").with_clock_skew(time::Duration::ZERO);
    assert!(matches!(
        verify(&strict, &wasm, &bundle).unwrap_err(),
        VerifyError::NotYetValid { .. }
    ));
}

#[test]
fn key_past_not_after_is_refused() {
    let k = key(1);
    let err = verify_pii(
        one_key_store(&k, "not_after = \"2021-01-01T00:00:00Z\""),
        pii(1),
        &[&k],
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::KeyExpired { .. }), "{err}");
}

#[test]
fn rollback_is_refused_and_the_mark_survives_a_restart() {
    let k = key(1);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let wasm = guest(PII);
    let new_verifier = || Verifier::new(one_key_store(&k, "")).with_state(&state);

    let v5 = bundle_bytes(&wasm, pii(5), &[&k]);
    verify(&new_verifier(), &wasm, &v5).expect("first load");
    assert_eq!(new_verifier().high_water_mark("pii").unwrap(), Some(5));
    // The same artifact again is fine.
    verify(&new_verifier(), &wasm, &v5).expect("same sequence, same bytes");

    // A failed verification does not advance the mark (wrong kind for these exports).
    let mut p = pii(9);
    p.kind = Kind::Guardrail;
    p.world = "portcullis:policy/guardrail@0.1.0".into();
    let failing = bundle_bytes(&wasm, p, &[&k]);
    assert!(matches!(
        verify(&new_verifier(), &wasm, &failing).unwrap_err(),
        VerifyError::KindMismatch { .. }
    ));
    assert_eq!(new_verifier().high_water_mark("pii").unwrap(), Some(5));

    // After a "restart" (a new verifier), an older sequence is refused.
    let v4 = bundle_bytes(&wasm, pii(4), &[&k]);
    let err = verify(&new_verifier(), &wasm, &v4).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Rollback {
            name: "pii".into(),
            sequence: 4,
            mark: 5
        }
    );
    // The same sequence for other bytes is refused too.
    let hostile = guest(HOSTILE);
    let mut p = predicate("pii", 5, Kind::Guardrail);
    p.name = "pii".into();
    let reused = bundle_bytes(&hostile, p, &[&k]);
    let err = verify(&new_verifier(), &hostile, &reused).unwrap_err();
    assert!(matches!(err, VerifyError::SequenceReused { .. }), "{err}");
}

#[test]
fn retired_key_above_its_cut_off_is_refused() {
    let k = key(1);
    let trust = one_key_store(&k, "status = \"retired\"\nmax_sequence = 3");
    verify_pii(trust.clone(), pii(3), &[&k]).expect("at the cut-off");
    let err = verify_pii(trust, pii(4), &[&k]).unwrap_err();
    assert_eq!(
        err,
        VerifyError::RetiredKeyCutoff {
            key_id: id(&k),
            sequence: 4,
            max_sequence: 3
        }
    );
}

#[test]
fn capabilities_and_limits_beyond_the_key_ceiling_are_refused() {
    let k = key(1);
    let ceiling = "[keys.ceiling]\nfuel = 100000000\nmemory_mb = 8\ncapabilities = [\"clocks\"]";
    let err = verify_pii(one_key_store(&k, ceiling), pii(1), &[&k]).unwrap_err();
    assert!(
        matches!(err, VerifyError::ExceedsCeiling { ref what, .. } if what.contains("memory_mb")),
        "{err}"
    );
    let mut p = pii(1);
    p.limits.memory_mb = Some(8);
    p.capabilities.wasi = vec!["clocks".into()];
    verify_pii(one_key_store(&k, ceiling), p.clone(), &[&k]).expect("within the ceiling");
    p.capabilities.wasi.push("filesystem".into());
    let err = verify_pii(one_key_store(&k, ceiling), p, &[&k]).unwrap_err();
    assert!(
        matches!(err, VerifyError::ExceedsCeiling { ref what, .. } if what.contains("filesystem")),
        "{err}"
    );
}

#[test]
fn malformed_and_oversized_bundles_are_refused() {
    let k = key(1);
    let wasm = guest(PII);
    let verifier = Verifier::new(one_key_store(&k, ""));
    for bad in [
        &b"{not json"[..],
        b"{}",
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.1+json","verificationMaterial":{"publicKey":{"hint":""}},"dsseEnvelope":{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":""}]}}"#,
    ] {
        let err = verify(&verifier, &wasm, bad).unwrap_err();
        assert!(matches!(err, VerifyError::MalformedBundle(_)), "{err}");
    }
    let mut huge = bundle_bytes(&wasm, pii(1), &[&k]);
    huge.extend(std::iter::repeat_n(b' ', 1 << 20));
    let err = verify(&verifier, &wasm, &huge).unwrap_err();
    assert!(matches!(err, VerifyError::BundleTooLarge { .. }), "{err}");
    // A file is refused without reading it all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sigstore.json");
    std::fs::write(&path, &huge).unwrap();
    assert!(matches!(
        VerifyError::from(bundle::read_capped(&path).unwrap_err()),
        VerifyError::BundleTooLarge { .. }
    ));
}

#[test]
fn host_older_than_min_host_version_is_refused() {
    let k = key(1);
    let mut p = pii(1);
    p.min_host_version = "99.0.0".into();
    let err = verify_pii(one_key_store(&k, ""), p, &[&k]).unwrap_err();
    assert!(
        matches!(err, VerifyError::HostTooOld { ref required, .. } if required == "99.0.0"),
        "{err}"
    );
}

#[test]
fn kind_must_match_the_component_exports() {
    let k = key(1);
    let wasm = guest(HOSTILE);
    let bundle = bundle_bytes(&wasm, predicate("hostile", 1, Kind::OutputFilter), &[&k]);
    let err = verify(&Verifier::new(one_key_store(&k, "")), &wasm, &bundle).unwrap_err();
    assert_eq!(
        err,
        VerifyError::KindMismatch {
            kind: "output-filter".into(),
            expected: "response-filter".into(),
            actual: "request-checker".into(),
        }
    );
    let ok = bundle_bytes(&wasm, predicate("hostile", 1, Kind::Guardrail), &[&k]);
    verify(&Verifier::new(one_key_store(&k, "")), &wasm, &ok).expect("guardrail");
}

#[test]
fn world_must_be_the_one_the_component_implements() {
    let k = key(1);
    let wasm = guest(HOSTILE);
    let mut p = predicate("hostile", 1, Kind::Guardrail);
    p.world = "portcullis:policy/guardrail@0.2.0".into();
    let err = check_world(&wasm, &p).unwrap_err();
    assert!(
        matches!(err, SignError::WrongWorld { ref actual, .. } if actual == "portcullis:policy/guardrail@0.1.0"),
        "{err}"
    );
    let bundle = bundle_bytes(&wasm, p, &[&k]);
    let err = verify(&Verifier::new(one_key_store(&k, "")), &wasm, &bundle).unwrap_err();
    assert_eq!(
        err,
        VerifyError::WorldMismatch {
            signed: "portcullis:policy/guardrail@0.2.0".into(),
            actual: "portcullis:policy/guardrail@0.1.0".into(),
        }
    );
    // A world without a version matches any version of the contracts.
    let mut p = predicate("hostile", 1, Kind::Guardrail);
    p.world = "portcullis:policy/guardrail".into();
    check_world(&wasm, &p).expect("unversioned world");
    // The signing side refuses a kind the component does not implement.
    let p = predicate("hostile", 1, Kind::ToolSandbox);
    assert!(matches!(
        check_world(&wasm, &p).unwrap_err(),
        SignError::WrongWorld { .. }
    ));
}

#[test]
fn concurrent_verifiers_sharing_a_state_file_accept_one_artifact_per_sequence() {
    // Eight verifiers race to record sequence 3 for different bytes: exactly the
    // artifacts whose bytes match the first recorded mark are accepted.
    let k = key(1);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let base = guest(PII);
    let artifacts: Vec<(Vec<u8>, Vec<u8>)> = (0..8u8)
        .map(|i| {
            // Different bytes: a custom section appended keeps the component valid.
            let mut wasm = base.clone();
            wasm.extend_from_slice(&[0, 3, 1, b'x', i]);
            let bundle = bundle_bytes(&wasm, pii(3), &[&k]);
            (wasm, bundle)
        })
        .collect();
    let results: Vec<Result<Verified, VerifyError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|(wasm, bundle)| {
                let state = state.clone();
                let k = &k;
                scope.spawn(move || {
                    let verifier = Verifier::new(one_key_store(k, "")).with_state(state);
                    verifier.verify(wasm, bundle, || {
                        Ok(portcullis::policy::Exports {
                            guardrail: true,
                            output_filter: true,
                            tool_sandbox: false,
                        })
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, VerifyError::SequenceReused { .. }), "{e}");
        }
    }
}

#[test]
fn trust_store_without_usable_keys_or_with_a_wrong_id_is_an_error() {
    let k = key(1);
    for (text, needle) in [
        (String::new(), "no usable key"),
        (key_entry(&k, "status = \"revoked\""), "no usable key"),
        (
            key_entry(&k, "").replace(&id(&k), "sha256:00"),
            "does not match",
        ),
        (key_entry(&k, "status = \"retired\""), "max_sequence"),
        (format!("threshold = 0\n{}", key_entry(&k, "")), "threshold"),
        (format!("{}bogus = 1\n", key_entry(&k, "")), "bogus"),
    ] {
        let err = TrustStore::parse(&text, Path::new("trust.toml")).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn signing_a_different_statement_over_a_bundle_needs_force() {
    let (a, b) = (key(1), key(2));
    let wasm = guest(PII);
    let first = sign(&wasm, pii(1), &a, None, false).unwrap().bundle;
    let err = sign(&wasm, pii(2), &b, Some(first.clone()), false).unwrap_err();
    assert!(matches!(err, SignError::DifferentStatement), "{err}");
    let replaced = sign(&wasm, pii(2), &b, Some(first.clone()), true)
        .unwrap()
        .bundle;
    assert_eq!(replaced.dsse_envelope.signatures.len(), 1);
    let same = sign(&wasm, pii(1), &a, Some(first), false).unwrap();
    assert!(!same.added, "a key signs a bundle once");
    assert_eq!(same.bundle.dsse_envelope.signatures.len(), 1);
}

// ---- the command line ----

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("portcullis runs")
}

const MANIFEST: &str = r#"
name = "pii"
version = "1.2.0"
sequence = 7
kind = "content-policy"
world = "portcullis:policy/content-policy@0.1.0"
not_before = 2020-01-01T00:00:00Z
expires = "2100-01-01T00:00:00Z"
min_host_version = "0.1.0"
[limits]
fuel = 100_000_000
"#;

#[test]
fn cli_keygen_sign_verify_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("pii.wasm");
    std::fs::write(&policy, guest(PII)).unwrap();
    std::fs::write(d.join("policy.toml"), MANIFEST).unwrap();

    let out = run(portcullis().args(["keygen", "--out"]).arg(d.join("k.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        key_id.starts_with("sha256:") && key_id.len() == 71,
        "{key_id}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(portcullis().args(["keygen", "--out"]).arg(d.join("k.pem")));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    let public = std::fs::read_to_string(d.join("k.pem.pub")).unwrap();
    let trust = d.join("trust.toml");
    std::fs::write(&trust, pem_entry(&key_id, &public, "names = [\"pii\"]")).unwrap();

    let out = run(portcullis()
        .args(["sign", "--key"])
        .arg(d.join("k.pem"))
        .arg("--manifest")
        .arg(d.join("policy.toml"))
        .arg(&policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.join("pii.wasm.sigstore.json").exists());

    let out = run(portcullis().args(["inspect"]).arg(&policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["size"], guest(PII).len());
    assert!(
        shown["bundle"]["status"]
            .as_str()
            .unwrap()
            .starts_with("unverified")
    );
    assert_eq!(shown["bundle"]["statement"]["predicate"]["sequence"], 7);
    assert!(
        shown["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("portcullis:policy/host"))
    );
    let out = run(portcullis()
        .args(["inspect", "--trust"])
        .arg(&trust)
        .arg(&policy));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["bundle"]["status"], "verified");

    let state = d.join("state.json");
    let out = run(portcullis()
        .args(["verify", "--trust"])
        .arg(&trust)
        .arg("--state")
        .arg(&state)
        .arg(&policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statement: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statement["predicate"]["name"], "pii");
    assert_eq!(
        statement["predicateType"],
        "https://portcullis.dev/policy/v1"
    );
    assert!(state.exists());

    // A different statement over the existing bundle needs --force.
    std::fs::write(
        d.join("v8.toml"),
        MANIFEST.replace("sequence = 7", "sequence = 8"),
    )
    .unwrap();
    let out = run(portcullis()
        .args(["sign", "--key"])
        .arg(d.join("k.pem"))
        .arg("--manifest")
        .arg(d.join("v8.toml"))
        .arg(&policy));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    // Changed bytes: exit 1 naming the failed check.
    let mut wasm = guest(PII);
    wasm.push(0);
    std::fs::write(&policy, wasm).unwrap();
    let out = run(portcullis()
        .args(["verify", "--trust"])
        .arg(&trust)
        .arg(&policy));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert!(out.stdout.is_empty());
}

// ---- interoperability with an independent implementation ----

/// DSSE + in-toto + Ed25519 written from the specifications with Python's
/// `cryptography` package, sharing no code with Portcullis.
const PYTHON_DSSE: &str = r#"
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

def pae(t, body):
    t = t.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)

def key_id(pub):
    return "sha256:" + hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()

if sys.argv[1] == "make":
    wasm, out = sys.argv[2], sys.argv[3]
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    open(out + "/py.pub", "wb").write(pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "pii", "digest": {"sha256": hashlib.sha256(open(wasm, "rb").read()).hexdigest()}}],
        "predicateType": "https://portcullis.dev/policy/v1",
        "predicate": {"name": "pii", "version": "2.0.0", "sequence": 3, "kind": "content-policy",
                      "world": "portcullis:policy/content-policy@0.1.0", "capabilities": {"wasi": []},
                      "limits": {}, "not_before": "2020-01-01T00:00:00Z",
                      "expires": "2100-01-01T00:00:00Z", "min_host_version": "0.1.0"},
    }
    payload = json.dumps(statement, indent=1).encode()
    ptype = "application/vnd.in-toto+json"
    sig = key.sign(pae(ptype, payload))
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": key_id(pub)}},
              "dsseEnvelope": {"payload": base64.b64encode(payload).decode(), "payloadType": ptype,
                               "signatures": [{"keyid": key_id(pub), "sig": base64.b64encode(sig).decode()}]}}
    open(wasm + ".sigstore.json", "w").write(json.dumps(bundle))
    print(key_id(pub))
else:
    bundle, pem = sys.argv[2], sys.argv[3]
    pub = load_pem_public_key(open(pem, "rb").read())
    env = json.load(open(bundle))["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    [s] = [s for s in env["signatures"] if s["keyid"] == key_id(pub)]
    pub.verify(base64.b64decode(s["sig"]), pae(env["payloadType"], payload))
    print(json.loads(payload)["predicate"]["name"])
"#;

fn python_with_cryptography() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import cryptography.hazmat.primitives.asymmetric.ed25519",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn bundles_interoperate_with_an_independent_python_implementation() {
    if !python_with_cryptography() {
        // CI installs it (.ci/run); elsewhere say loudly that the proof did not run.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide python3 with `cryptography`"
        );
        eprintln!("SKIPPED: python3 with the `cryptography` package is not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("pii.wasm");
    std::fs::write(&policy, guest(PII)).unwrap();
    let script = d.join("dsse.py");
    std::fs::write(&script, PYTHON_DSSE).unwrap();

    // Python signs; Portcullis verifies.
    let out = run(Command::new("python3")
        .arg(&script)
        .arg("make")
        .arg(&policy)
        .arg(d));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let py_pub = std::fs::read_to_string(d.join("py.pub")).unwrap();
    let verifying = keys::parse_public(&py_pub, "py.pub").unwrap();
    assert_eq!(
        keys::key_id(&verifying),
        py_id,
        "both compute the same key id"
    );
    let trust = d.join("trust.toml");
    std::fs::write(&trust, pem_entry(&py_id, &py_pub, "names = [\"pii\"]")).unwrap();
    let out = run(portcullis()
        .args(["verify", "--trust"])
        .arg(&trust)
        .arg(&policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statement: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statement["predicate"]["version"], "2.0.0");

    // Portcullis signs (a fresh bundle); Python verifies, and reads our private key.
    std::fs::write(d.join("policy.toml"), MANIFEST).unwrap();
    let out = run(portcullis().args(["keygen", "--out"]).arg(d.join("k.pem")));
    assert!(out.status.success());
    let out = run(portcullis()
        .args(["sign", "--force", "--key"])
        .arg(d.join("k.pem"))
        .arg("--manifest")
        .arg(d.join("policy.toml"))
        .arg(&policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Command::new("python3")
        .arg(&script)
        .arg("check")
        .arg(bundle::sidecar_path(&policy))
        .arg(d.join("k.pem.pub")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pii");
    let out = run(Command::new("python3").args([
        "-c",
        "import sys; from cryptography.hazmat.primitives.serialization import load_pem_private_key as l; l(open(sys.argv[1],'rb').read(), None)",
    ]).arg(d.join("k.pem")));
    assert!(
        out.status.success(),
        "Python reads the PKCS#8 key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- enforcement at load ----

/// A directory with the pii component, its bundle signed by `signer`, a trust store
/// trusting `signer`, and a pipeline configuration loading it as `name`.
fn signed_pipeline_dir(signer: &SigningKey, name: &str) -> tempfile::TempDir {
    signed_pipeline_dir_with(signer, name, pii(1))
}

/// A directory with the pii component signed with `predicate`, a trust store for
/// `signer` and a pipeline configuration loading it as `name`.
fn signed_pipeline_dir_with(
    signer: &SigningKey,
    name: &str,
    predicate: Predicate,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest(PII);
    let wasm_path = dir.path().join("pii.wasm");
    std::fs::write(&wasm_path, &wasm).unwrap();
    std::fs::write(
        bundle::sidecar_path(&wasm_path),
        bundle_bytes(&wasm, predicate, &[signer]),
    )
    .unwrap();
    std::fs::write(dir.path().join("trust.toml"), key_entry(signer, "")).unwrap();
    let config = format!(
        "[trust]\nstore = \"trust.toml\"\n[[policies]]\nname = \"{name}\"\npath = \"pii.wasm\"\nstages = [\"input\"]\n"
    );
    std::fs::write(dir.path().join("portcullis.toml"), config).unwrap();
    dir
}

async fn load_dir(dir: &Path) -> Result<portcullis::pipeline::Pipeline, String> {
    let config = portcullis::config::PipelineConfig::load(&dir.join("portcullis.toml"))
        .map_err(|e| e.to_string())?;
    portcullis::pipeline::Pipeline::load_with(&engine(), &config)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_pipeline_loads_only_verified_policies() {
    let k = key(41);
    let dir = signed_pipeline_dir(&k, "pii");
    let pipeline = load_dir(dir.path()).await.expect("a verified policy loads");
    let entry = &pipeline.entries()[0];
    assert_eq!(entry.signers, vec![id(&k)]);
    assert!(!entry.unsigned);
    assert_eq!(
        entry.policy.limits().fuel,
        100_000_000,
        "the signed manifest's tighter fuel applies"
    );
    assert_eq!(entry.policy.limits().deadline_ms, 50);

    // Changed bytes, a missing bundle, and another configured name are each refused.
    let wasm_path = dir.path().join("pii.wasm");
    let mut tampered = guest(PII);
    tampered.extend_from_slice(b"\0");
    std::fs::write(&wasm_path, &tampered).unwrap();
    let err = load_dir(dir.path())
        .await
        .err()
        .expect("tampered bytes are refused");
    assert!(
        err.contains("policy pii: refused") && err.contains("digest"),
        "{err}"
    );
    std::fs::write(&wasm_path, guest(PII)).unwrap();
    std::fs::remove_file(bundle::sidecar_path(&wasm_path)).unwrap();
    let err = load_dir(dir.path())
        .await
        .err()
        .expect("a missing bundle is refused");
    assert!(err.contains("cannot read the signature bundle"), "{err}");

    let other = signed_pipeline_dir(&k, "renamed");
    let err = load_dir(other.path())
        .await
        .err()
        .expect("the signed name must match");
    assert!(err.contains("policy renamed: refused"), "{err}");
}

#[tokio::test]
async fn signed_self_tests_must_pass_before_a_policy_loads() {
    let k = key(42);
    let case = |verdict: &str| {
        serde_json::json!({
            "name": format!("email gives {verdict}"),
            "check": "request",
            "messages": [{"role": "user", "content": "mail jane.doe@example.com"}],
            "expect": {"verdict": verdict},
        })
    };
    let mut passing = pii(1);
    passing.self_test = vec![case("modify")];
    let dir = signed_pipeline_dir_with(&k, "pii", passing);
    let pipeline = load_dir(dir.path()).await.expect("self-test passes");
    assert_eq!(pipeline.entries()[0].version.as_deref(), Some("1.0.0"));

    let mut failing = pii(1);
    failing.self_test = vec![case("modify"), case("allow")];
    let dir = signed_pipeline_dir_with(&k, "pii", failing);
    let err = load_dir(dir.path())
        .await
        .err()
        .expect("a failing self-test refuses the policy");
    assert!(
        err.contains("policy pii: refused, 1 of 2 signed self-test cases failed")
            && err.contains("email gives allow"),
        "{err}"
    );

    // A self-test that is not a fixture is malformed signed content: refused too.
    let mut malformed = pii(1);
    malformed.self_test = vec![serde_json::json!({"name": "no check field"})];
    let dir = signed_pipeline_dir_with(&k, "pii", malformed);
    let err = load_dir(dir.path())
        .await
        .err()
        .expect("malformed self-test");
    assert!(err.contains("self_test"), "{err}");
}

#[tokio::test]
async fn unsigned_development_loads_mark_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pii.wasm"), guest(PII)).unwrap();
    std::fs::write(
        dir.path().join("portcullis.toml"),
        "[trust]\nallow_unsigned = true\n[[policies]]\nname = \"pii\"\npath = \"pii.wasm\"\nstages = [\"input\"]\n",
    )
    .unwrap();
    let pipeline = load_dir(dir.path()).await.unwrap();
    assert!(pipeline.entries()[0].unsigned);
    let request = portcullis::openai::parse_request(
        &serde_json::json!({"messages": [{"role": "user", "content": "hello"}]}),
        "r",
        "c",
    )
    .unwrap();
    let decision = pipeline.check_request(&request, None).await;
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["runs"][0]["unsigned"], true, "{json}");
}
