//! Property-based fuzzing of everything that parses untrusted bytes: bundles,
//! manifests, trust stores, OpenAI payloads, and verification of tampered bundles.
//! `PROPTEST_CASES` raises the number of cases (the default keeps `cargo test` quick).

use std::path::Path;

use ed25519_dalek::SigningKey;
use portcullis::artifact::bundle::Bundle;
use portcullis::artifact::manifest::{self, Capabilities, Kind, Predicate, RequestedLimits};
use portcullis::artifact::sign::sign;
use portcullis::artifact::trust::{TrustStore, Verifier, glob_match};
use portcullis::policy::Exports;
use proptest::prelude::*;

/// A real guardrail component (verification checks the world it exports; the
/// `exports` callback below stands in for compiling it).
fn wasm() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| crate::support::guest("portcullis_test_hostile"))
}

fn signer() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn signed_bundle() -> String {
    let predicate = Predicate {
        name: "fuzzed".into(),
        version: "1.2.3".into(),
        sequence: 5,
        kind: Kind::Guardrail,
        world: "portcullis:policy/guardrail@0.1.0".into(),
        capabilities: Capabilities::default(),
        limits: RequestedLimits {
            fuel: Some(1_000_000),
            memory_mb: Some(8),
            deadline_ms: Some(10),
        },
        not_before: "2020-01-01T00:00:00Z".into(),
        expires: "2100-01-01T00:00:00Z".into(),
        min_host_version: "0.1.0".into(),
        self_test: Vec::new(),
    };
    sign(wasm(), predicate, &signer(), None, false)
        .expect("signs")
        .bundle
        .to_json()
}

fn verifier() -> Verifier {
    let text = crate::signing::key_entry(&signer(), "");
    Verifier::new(TrustStore::parse(&text, Path::new("trust.toml")).expect("trust store"))
}

fn guardrail() -> Result<Exports, String> {
    Ok(Exports {
        guardrail: true,
        output_filter: false,
        tool_sandbox: false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Bundle::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = manifest::parse(&text, Path::new("policy.toml"));
        let _ = TrustStore::parse(&text, Path::new("trust.toml"));
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = portcullis::openai::parse_request(&json, "r", "c");
            let _ = portcullis::openai::parse_response(&json);
        }
    }

    #[test]
    fn tampering_with_any_byte_never_changes_what_verifies(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let original = signed_bundle();
        let expected = verifier().verify(wasm(), original.as_bytes(), guardrail).expect("untampered bundle verifies");
        let mut tampered = original.into_bytes();
        let i = position.index(tampered.len());
        prop_assume!(tampered[i] != byte);
        tampered[i] = byte;
        // Either refused, or (when the byte is outside what is signed, such as the key
        // hint or JSON whitespace) exactly the same statement.
        if let Ok(verified) = verifier().verify(wasm(), &tampered, guardrail) {
            prop_assert_eq!(
                serde_json::to_string(&verified.statement).unwrap(),
                serde_json::to_string(&expected.statement).unwrap()
            );
        }
    }

    #[test]
    fn globs_terminate_and_agree_with_literals(glob in "[a-c*?]{0,24}", name in "[a-c]{0,24}") {
        let matched = glob_match(&glob, &name);
        if !glob.contains(['*', '?']) {
            prop_assert_eq!(matched, glob == name);
        }
        prop_assert!(glob_match("*", &name));
    }
}
