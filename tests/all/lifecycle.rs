//! Hot reload: candidates are verified and self-tested before an atomic swap, failures
//! keep the last good version, trust-store changes re-verify, and evaluations under
//! continuous reloads never fail or see a mixed set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use portcullis::artifact::bundle;
use portcullis::artifact::manifest::{Kind, Predicate};
use portcullis::engine::Outcome;
use portcullis::lifecycle::{PolicyHost, State};
use portcullis::pipeline::Action;
use portcullis::releases::Releases;
use serde_json::json;

use crate::signing::{bundle_bytes, key, key_entry, predicate};
use crate::support::{engine, guest, user_request};

const HOSTILE: &str = "portcullis_test_hostile";

/// A signed policy directory: the hostile test guest (configured to allow) under one
/// or more names, a one-key trust store and a configuration with a status file.
struct Site {
    dir: tempfile::TempDir,
    key: SigningKey,
    base: Vec<u8>,
}

impl Site {
    fn new(names: &[&str], seed: u8) -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
            key: key(seed),
            base: guest(HOSTILE),
        };
        site.write_trust("");
        let mut config = String::from(
            "[trust]\nstore = \"trust.toml\"\n[lifecycle]\ndir = \"lifecycle\"\ndebounce_ms = 50\n",
        );
        for name in names {
            config.push_str(&format!(
                "[[policies]]\nname = \"{name}\"\npath = \"{name}.wasm\"\nstages = [\"input\"]\nconfig = {{ mode = \"allow\" }}\n"
            ));
            site.publish(name, 1, 1, |_| {});
        }
        std::fs::write(site.path("portcullis.toml"), config).unwrap();
        site
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn write_trust(&self, extra: &str) {
        std::fs::write(self.path("trust.toml"), key_entry(&self.key, extra)).unwrap();
    }

    /// Component bytes for `variant`: the guest plus a custom section, so each variant
    /// has its own digest.
    fn variant(&self, variant: u8) -> Vec<u8> {
        let mut wasm = self.base.clone();
        wasm.extend_from_slice(&[0, 3, 1, b'v', variant]);
        wasm
    }

    /// A signed statement for `name` at `sequence`, with one passing self-test;
    /// `edit` adjusts it.
    fn statement(&self, name: &str, sequence: u64, edit: impl FnOnce(&mut Predicate)) -> Predicate {
        let mut p = predicate(name, sequence, Kind::Guardrail);
        p.version = format!("1.{sequence}.0");
        p.self_test = vec![self_test("allow")];
        edit(&mut p);
        p
    }

    /// Sign variant `variant` of `name` at `sequence` and write it (bundle, then wasm,
    /// each via a temporary file and a rename, as deploy tools do). Returns the digest.
    fn publish(
        &self,
        name: &str,
        sequence: u64,
        variant: u8,
        edit: impl FnOnce(&mut Predicate),
    ) -> String {
        let wasm = self.variant(variant);
        let bundle = bundle_bytes(&wasm, self.statement(name, sequence, edit), &[&self.key]);
        self.install(name, &wasm, &bundle);
        digest(&wasm)
    }

    fn install(&self, name: &str, wasm: &[u8], bundle: &[u8]) {
        let path = self.path(&format!("{name}.wasm"));
        replace(&bundle::sidecar_path(&path), bundle);
        replace(&path, wasm);
    }

    fn config(&self) -> PathBuf {
        self.path("portcullis.toml")
    }
}

fn self_test(verdict: &str) -> serde_json::Value {
    json!({
        "name": format!("allows greetings ({verdict})"),
        "check": "request",
        "config": {"mode": "allow"},
        "messages": [{"role": "user", "content": "hello"}],
        "expect": {"verdict": verdict},
    })
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn digest(wasm: &[u8]) -> String {
    format!(
        "sha256:{}",
        portcullis::artifact::statement::sha256_hex(wasm)
    )
}

/// The active release of `name`: digest and signed sequence.
fn active_release(host: &PolicyHost, name: &str) -> (String, Option<u64>) {
    let snapshot = host.snapshot();
    let entry = snapshot.entries().iter().find(|e| e.policy.name() == name);
    entry.map_or_else(Default::default, |e| {
        (e.policy.digest().to_string(), e.sequence)
    })
}

fn active_digest(host: &PolicyHost, name: &str) -> String {
    host.snapshot()
        .entries()
        .iter()
        .find(|e| e.policy.name() == name)
        .map(|e| e.policy.digest().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn candidates_are_verified_and_self_tested_and_failures_keep_the_last_good() {
    let site = Site::new(&["alpha"], 61);
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    let v1 = active_digest(&host, "alpha");
    assert_eq!(host.snapshot().generation(), 1);

    // Nothing changed: no swap.
    let report = host.reload().await;
    assert!(!report.swapped && report.rejected.is_empty(), "{report:?}");

    // A new signed version is activated.
    let v2 = site.publish("alpha", 2, 2, |_| {});
    let report = host.reload().await;
    assert!(report.swapped, "{report:?}");
    assert_eq!(report.activated, vec!["alpha"]);
    assert_eq!(active_digest(&host, "alpha"), v2);
    assert_eq!(host.snapshot().generation(), 2);
    assert_eq!(host.snapshot().entries()[0].sequence, Some(2));

    // Each bad candidate is rejected with its reason; version 2 stays active.
    let rejected = |report: portcullis::lifecycle::ReloadReport, needle: &str| {
        assert!(!report.swapped, "{report:?}");
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        assert!(
            report.rejected[0].contains(needle)
                && report.rejected[0].contains("the previous version stays active"),
            "{needle}: {report:?}"
        );
    };
    // Tampered: the bytes changed after signing.
    let wasm = site.variant(3);
    let bundle = bundle_bytes(&wasm, site.statement("alpha", 3, |_| {}), &[&site.key]);
    site.install("alpha", &site.variant(4), &bundle);
    rejected(host.reload().await, "digest mismatch");
    // Rollback: a lower sequence than the active one.
    site.publish("alpha", 1, 5, |_| {});
    rejected(host.reload().await, "rollback");
    // Expired.
    site.publish("alpha", 4, 6, |p| {
        p.not_before = "2020-01-01T00:00:00Z".into();
        p.expires = "2021-01-01T00:00:00Z".into();
    });
    rejected(host.reload().await, "expired");
    // Its signed self-test fails.
    site.publish("alpha", 5, 7, |p| p.self_test = vec![self_test("deny")]);
    rejected(host.reload().await, "1 of 1 signed self-test cases failed");
    // Not a policy at all.
    std::fs::write(site.path("alpha.wasm"), b"not wasm").unwrap();
    rejected(host.reload().await, "alpha");
    assert_eq!(active_digest(&host, "alpha"), v2);
    assert_eq!(host.snapshot().generation(), 2);

    // The failed self-test did not advance the anti-rollback mark: sequence 5 is
    // still usable for a good artifact.
    let v5 = site.publish("alpha", 5, 8, |_| {});
    assert!(host.reload().await.swapped);
    assert_eq!(active_digest(&host, "alpha"), v5);

    // The status lists the versions with their states, written to the status file.
    let status = host.status();
    let states: Vec<(String, State)> = status
        .policies
        .iter()
        .map(|v| (v.digest.clone(), v.state))
        .collect();
    assert_eq!(states[0], (v5.clone(), State::Active), "{states:?}");
    assert!(
        states.contains(&(v2.clone(), State::Superseded)),
        "{states:?}"
    );
    assert!(
        states.iter().any(|(_, s)| *s == State::Failed),
        "{states:?}"
    );
    assert!(!states.contains(&(v1, State::Active)));
    assert_eq!(status.counters.rejected, 5);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.path("lifecycle/status.json")).unwrap())
            .unwrap();
    assert_eq!(written["policies"][0]["state"], "active");
    assert_eq!(written["policies"][0]["sequence"], 5);

    // The same bytes re-released under a higher sequence (a new signed statement) are
    // a new version: it becomes active and the previous release is superseded.
    assert_eq!(site.publish("alpha", 6, 8, |_| {}), v5);
    assert!(host.reload().await.swapped);
    let status = host.status();
    assert_eq!(status.policies[0].sequence, Some(6));
    assert_eq!(status.policies[0].state, State::Active);
    assert!(
        status
            .policies
            .iter()
            .any(|v| v.sequence == Some(5) && v.state == State::Superseded),
        "{:?}",
        status.policies
    );
    assert_eq!(
        written["policies"][0]["signers"][0],
        portcullis::artifact::keys::key_id(&site.key.verifying_key())
    );
}

#[tokio::test]
async fn a_trust_store_change_reverifies_and_a_revoked_policy_fails_closed() {
    let site = Site::new(&["alpha"], 62);
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    let allowed = host
        .snapshot()
        .check_request(&user_request("hello"), None)
        .await;
    assert_eq!(allowed.verdict, Action::Allow);

    // Revoking the key deactivates the active policy: its stage applies on_error
    // (deny), and the run says why. It is not skipped.
    // A trust store that cannot be parsed refuses the whole reload: the active set
    // stays (and the failure is an alert).
    std::fs::write(site.path("trust.toml"), "[[keys]\nnot toml").unwrap();
    let report = host.reload().await;
    assert!(
        !report.swapped && report.rejected[0].contains("configuration rejected"),
        "{report:?}"
    );

    // A well-formed store that revokes the signing key (another key stays usable).
    let other = key(63);
    std::fs::write(
        site.path("trust.toml"),
        format!(
            "{}{}",
            key_entry(&site.key, "status = \"revoked\""),
            key_entry(&other, "")
        ),
    )
    .unwrap();
    let report = host.reload().await;
    assert!(report.swapped, "{report:?}");
    assert_eq!(report.deactivated, vec!["alpha"]);
    let decision = host
        .snapshot()
        .check_request(&user_request("hello"), None)
        .await;
    assert_eq!(decision.verdict, Action::Deny);
    match &decision.runs[0].outcome {
        Outcome::Error(reason) => assert!(
            reason.contains("policy deactivated") && reason.contains("revoked"),
            "{reason}"
        ),
        other => panic!("expected an error outcome, got {other:?}"),
    }
    assert_eq!(host.status().policies[0].state, State::Revoked);
    assert_eq!(host.status().counters.deactivated, 1);

    // Restoring the key reactivates it.
    site.write_trust("");
    let report = host.reload().await;
    assert!(report.swapped, "{report:?}");
    let decision = host
        .snapshot()
        .check_request(&user_request("hello"), None)
        .await;
    assert_eq!(decision.verdict, Action::Allow);
    assert_eq!(host.status().policies[0].state, State::Active);
}

#[tokio::test]
async fn the_watcher_reloads_when_files_change() {
    let site = Site::new(&["alpha"], 64);
    let host = Arc::new(PolicyHost::start(&engine(), &site.config()).await.unwrap());
    let _watch = portcullis::watch::watch(host.clone()).unwrap();
    // The status file is written in a watched directory; it must not cause reloads.
    host.write_status();

    // The bundle arrives first, then the component (each renamed into place).
    let v2 = site.publish("alpha", 2, 2, |_| {});
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_digest(&host, "alpha") != v2 {
        assert!(
            Instant::now() < deadline,
            "the new version never became active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A partial write (truncated component) is rejected; completing it activates it.
    let wasm = site.variant(3);
    let bundle = bundle_bytes(&wasm, site.statement("alpha", 3, |_| {}), &[&site.key]);
    replace(&bundle::sidecar_path(&site.path("alpha.wasm")), &bundle);
    std::fs::write(site.path("alpha.wasm"), &wasm[..wasm.len() / 2]).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(active_digest(&host, "alpha"), v2);
    std::fs::write(site.path("alpha.wasm"), &wasm).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_digest(&host, "alpha") != digest(&wasm) {
        assert!(
            Instant::now() < deadline,
            "the completed write never activated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(host.status().counters.rejected >= 1);
}

/// Point 6 of the lifecycle issue: evaluations run continuously while the policy set
/// is replaced 120 times, a third of them with bad candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_continuous_reloads_no_evaluation_fails_or_sees_a_mixed_set() {
    let site = Site::new(&["alpha", "beta"], 65);
    // Versions come back (variants cycle), so compiled code is cached on disk as a
    // production host would configure it: a superseded version is dropped from memory.
    let engine = portcullis::engine::Engine::new(&portcullis::engine::EngineOptions {
        cache_dir: Some(site.path("compiled")),
        ..Default::default()
    })
    .unwrap();
    let host = Arc::new(PolicyHost::start(&engine, &site.config()).await.unwrap());
    let mut expected: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let digests_of = |host: &PolicyHost| -> BTreeSet<String> {
        host.snapshot()
            .entries()
            .iter()
            .map(|e| e.policy.digest().to_string())
            .collect()
    };
    expected.insert(1, digests_of(&host));

    let done = Arc::new(AtomicBool::new(false));
    let evaluators: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let decision = host
                        .snapshot()
                        .check_request(&user_request("hello"), None)
                        .await;
                    for run in &decision.runs {
                        assert_eq!(run.outcome, Outcome::Ok, "{run:?}");
                    }
                    assert_eq!(decision.verdict, Action::Allow);
                    let digests: BTreeSet<String> =
                        decision.runs.iter().map(|r| r.digest.clone()).collect();
                    seen.push((decision.generation, digests));
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();

    let mut never_active = BTreeSet::new();
    let mut sequence = 1;
    let mut rollbacks = 0;
    let mut current_alpha = active_release(&host, "alpha");
    let mut previous_alpha = current_alpha.clone();
    let mut reload_micros = Vec::new();
    for round in 0..120u32 {
        let variant = (round % 3) as u8 + 10;
        match round % 6 {
            0 => {
                // Tampered: the component changed after signing.
                let wasm = site.variant(99);
                let bundle = bundle_bytes(
                    &site.variant(variant),
                    site.statement("alpha", sequence + 1, |_| {}),
                    &[&site.key],
                );
                site.install("alpha", &wasm, &bundle);
                never_active.insert(digest(&wasm));
            }
            1 => {
                never_active.insert(site.publish("beta", sequence + 1, 98, |p| {
                    p.not_before = "2020-01-01T00:00:00Z".into();
                    p.expires = "2021-01-01T00:00:00Z".into();
                }));
            }
            2 => {
                never_active.insert(site.publish("alpha", 1, 97, |_| {}));
            }
            3 => {
                never_active.insert(site.publish("beta", sequence + 1, 96, |p| {
                    p.self_test = vec![self_test("deny")];
                }));
            }
            _ => {
                sequence += 1;
                site.publish("alpha", sequence, variant, |_| {});
                site.publish("beta", sequence, variant + 20, |_| {});
            }
        }
        let started = Instant::now();
        let report = host.reload().await;
        reload_micros.push(started.elapsed().as_micros());
        if round % 6 >= 4 {
            assert!(
                report.swapped && report.rejected.is_empty(),
                "round {round}: {report:?}"
            );
        } else {
            assert!(!report.rejected.is_empty(), "round {round}: {report:?}");
        }
        expected.insert(report.generation, digests_of(&host));
        if round % 12 == 5 {
            // An operator rollback to the release before, below the high-water mark,
            // and back again, while traffic flows.
            let pinned = rollback_to(&site, "alpha", &previous_alpha);
            let report = host.reload().await;
            assert!(
                report.swapped && report.rejected.is_empty(),
                "round {round}: {report:?}"
            );
            assert_eq!(active_digest(&host, "alpha"), pinned);
            expected.insert(report.generation, digests_of(&host));
            Releases::new(site.path("lifecycle"))
                .set_pin("alpha", None)
                .unwrap();
            let report = host.reload().await;
            assert!(
                report.swapped && report.rejected.is_empty(),
                "round {round}: {report:?}"
            );
            expected.insert(report.generation, digests_of(&host));
            rollbacks += 1;
        }
        if round % 6 >= 4 {
            previous_alpha = current_alpha;
            current_alpha = active_release(&host, "alpha");
        }
        // Let the evaluators run between reloads too.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut decisions = 0;
    for evaluator in evaluators {
        for (generation, digests) in evaluator.await.unwrap() {
            decisions += 1;
            assert_eq!(
                Some(&digests),
                expected.get(&generation),
                "a decision of generation {generation} used another set"
            );
        }
    }
    let ever_active: BTreeSet<&String> = expected.values().flatten().collect();
    for bad in &never_active {
        assert!(!ever_active.contains(bad), "a bad candidate became active");
    }
    assert!(expected.len() >= 40, "{} generations", expected.len());
    assert_eq!(rollbacks, 10);
    assert!(decisions > 100, "{decisions} decisions");
    reload_micros.sort_unstable();
    eprintln!(
        "{decisions} decisions over {} generations; reload() p50 {} µs, p99 {} µs",
        expected.len(),
        reload_micros[reload_micros.len() / 2],
        reload_micros[reload_micros.len() * 99 / 100]
    );
}

#[tokio::test]
async fn a_reload_cannot_weaken_a_mandatory_policy() {
    let site = Site::new(&["alpha"], 66);
    let original = std::fs::read_to_string(site.config()).unwrap();
    let mandatory = original.replace(
        "stages = [\"input\"]",
        "stages = [\"input\"]\nmandatory = true",
    );
    std::fs::write(site.config(), &mandatory).unwrap();
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    for (what, text) in [
        (
            "monitor",
            mandatory.replace("mandatory = true", "mandatory = false\nmode = \"monitor\""),
        ),
        ("dropped flag", original.clone()),
        (
            "removed",
            original[..original.find("[[policies]]").unwrap()].to_string(),
        ),
    ] {
        std::fs::write(site.config(), &text).unwrap();
        let report = host.reload().await;
        assert!(
            !report.swapped && report.rejected[0].contains("policy alpha is mandatory"),
            "{what}: {report:?}"
        );
        assert_eq!(host.snapshot().entries().len(), 1, "{what}");
        assert_eq!(
            host.snapshot().entries()[0].mode,
            portcullis::config::Mode::Enforce
        );
    }
    // Mandatory and monitor together is a configuration error in the first place.
    std::fs::write(
        site.config(),
        mandatory.replace("mandatory = true", "mandatory = true\nmode = \"monitor\""),
    )
    .unwrap();
    let err = portcullis::config::PipelineConfig::load(&site.config()).unwrap_err();
    assert!(
        err.to_string()
            .contains("mandatory policy must be enforced"),
        "{err}"
    );
}

/// Pin `name` to its archived release (`digest`, `sequence`), as `portcullis
/// rollback` does.
fn rollback_to(site: &Site, name: &str, (digest, sequence): &(String, Option<u64>)) -> String {
    let pin = portcullis::releases::Pin {
        digest: digest.to_string(),
        version: None,
        sequence: *sequence,
        at: portcullis::lifecycle::now(),
        by: "test".into(),
        reason: String::new(),
    };
    Releases::new(site.path("lifecycle"))
        .set_pin(name, Some(pin))
        .unwrap();
    digest.to_string()
}

fn portcullis(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn succeeds(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn journal(site: &Site) -> Vec<serde_json::Value> {
    std::fs::read_to_string(site.path("lifecycle/events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn rollback_pins_an_archived_release_below_the_mark_until_released() {
    let site = Site::new(&["alpha"], 67);
    let v1 = digest(&site.variant(1));
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    let v2 = site.publish("alpha", 2, 2, |_| {});
    assert!(host.reload().await.swapped);
    assert_eq!(active_digest(&host, "alpha"), v2);

    // Nothing older than what runs can be named wrongly; errors say what exists.
    let e = fails(portcullis(&["rollback", "nope"], &site.config()));
    assert!(
        e.contains("no policy named \"nope\"") && e.contains("alpha"),
        "{e}"
    );
    let e = fails(portcullis(
        &["rollback", "alpha", "--to", "9.9.9"],
        &site.config(),
    ));
    assert!(
        e.contains("1.1.0 (sequence 1") && e.contains("1.2.0 (sequence 2"),
        "{e}"
    );
    let e = fails(portcullis(
        &["rollback", "alpha", "--to", "1.2.0"],
        &site.config(),
    ));
    assert!(e.contains("already the running version"), "{e}");

    // Roll back to the previous release: sequence 1, below the high-water mark of 2.
    let out = succeeds(portcullis(
        &["rollback", "alpha", "--reason", "false positives"],
        &site.config(),
    ));
    assert!(out.contains("pinned alpha to 1.1.0 (sequence 1"), "{out}");
    let report = host.reload().await;
    assert!(report.swapped && report.rejected.is_empty(), "{report:?}");
    assert_eq!(report.activated, vec!["alpha (pinned)"]);
    assert_eq!(active_digest(&host, "alpha"), v1);
    let decision = host
        .snapshot()
        .check_request(&user_request("hello"), None)
        .await;
    assert_eq!(decision.runs[0].digest, v1);
    assert_eq!(decision.runs[0].version.as_deref(), Some("1.1.0"));
    let status = host.status();
    assert!(status.policies[0].pinned && status.policies[0].sequence == Some(1));

    // A restart keeps the rollback; a new release to the configured path waits.
    drop(host);
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    assert_eq!(active_digest(&host, "alpha"), v1);
    let v3 = site.publish("alpha", 3, 3, |_| {});
    host.reload().await;
    assert_eq!(active_digest(&host, "alpha"), v1, "the pin holds");

    // An archived release that was altered is refused; the pinned version stays.
    let archived = site
        .path("lifecycle/archive/alpha")
        .join(format!("{}-1.wasm", v1.trim_start_matches("sha256:")));
    let original = std::fs::read(&archived).unwrap();
    std::fs::write(&archived, site.variant(50)).unwrap();
    let report = host.reload().await;
    assert!(
        !report.swapped && report.rejected[0].contains("the archive was altered"),
        "{report:?}"
    );
    assert_eq!(active_digest(&host, "alpha"), v1);
    std::fs::write(&archived, original).unwrap();

    // A pin to a release that is not archived (pruned, or from another host) is
    // refused with the way out.
    rollback_to(&site, "alpha", &(digest(&site.variant(51)), Some(1)));
    let report = host.reload().await;
    assert!(
        !report.swapped && report.rejected[0].contains("which is not in the archive"),
        "{report:?}"
    );
    assert_eq!(active_digest(&host, "alpha"), v1);

    // Forward again by digest (still a pin), then release the pin.
    let prefix = &v2[..20];
    succeeds(portcullis(
        &["rollback", "alpha", "--to", prefix],
        &site.config(),
    ));
    host.reload().await;
    assert_eq!(active_digest(&host, "alpha"), v2);
    succeeds(portcullis(
        &["rollback", "alpha", "--release"],
        &site.config(),
    ));
    let report = host.reload().await;
    assert_eq!(report.activated, vec!["alpha"], "{report:?}");
    assert_eq!(active_digest(&host, "alpha"), v3);
    assert!(!host.status().policies[0].pinned);
    let e = fails(portcullis(
        &["rollback", "alpha", "--release"],
        &site.config(),
    ));
    assert!(e.contains("not pinned"), "{e}");

    // The same component re-signed under a new sequence is a release of its own, and
    // can be rolled back from (to the statement before, its limits and self-tests).
    assert_eq!(site.publish("alpha", 4, 3, |_| {}), v3);
    host.reload().await;
    assert_eq!(active_release(&host, "alpha"), (v3.clone(), Some(4)));
    let out = succeeds(portcullis(&["rollback", "alpha"], &site.config()));
    assert!(out.contains("1.3.0 (sequence 3"), "{out}");
    host.reload().await;
    assert_eq!(active_release(&host, "alpha"), (v3.clone(), Some(3)));
    assert!(host.snapshot().entries()[0].pinned);

    // Every step is in the journal, with who and why.
    let events = journal(&site);
    let pinned = events.iter().find(|e| e["event"] == "pinned").unwrap();
    assert_eq!(pinned["pin"]["reason"], "false positives");
    assert_eq!(pinned["pin"]["digest"], v1.as_str());
    assert!(pinned["pin"]["by"].as_str().is_some_and(|b| !b.is_empty()));
    for kind in ["activated", "rejected", "unpinned"] {
        assert!(
            events.iter().any(|e| e["event"] == kind),
            "{kind}: {events:?}"
        );
    }
    assert!(
        events.iter().any(|e| e["event"] == "activated"
            && e["pinned"] == true
            && e["digest"] == v1.as_str())
    );
}

/// Replace the candidate section (everything from `[policies.candidate]`) of the
/// site's configuration.
fn set_candidate(site: &Site, section: &str) {
    let text = std::fs::read_to_string(site.config()).unwrap();
    let base = text
        .split("[policies.candidate]")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(site.config(), format!("{base}{section}")).unwrap();
}

fn client_request(client: &str) -> portcullis::bindings::ChatRequest {
    let mut r = user_request("hello");
    r.context.client_id = client.to_string();
    r
}

#[tokio::test]
async fn shadow_and_canary_candidates_then_promotion() {
    let site = Site::new(&["alpha"], 68);
    // The candidate: a copy of the release with a configuration that denies.
    for (from, to) in [
        ("alpha.wasm", "next.wasm"),
        ("alpha.wasm.sigstore.json", "next.wasm.sigstore.json"),
    ] {
        std::fs::copy(site.path(from), site.path(to)).unwrap();
    }
    set_candidate(
        &site,
        "[policies.candidate]\npath = \"next.wasm\"\nconfig = { mode = \"deny\" }\nrollout = \"shadow\"\n",
    );
    let host = PolicyHost::start(&engine(), &site.config()).await.unwrap();
    for _ in 0..5 {
        let d = host
            .snapshot()
            .check_request(&user_request("hello"), None)
            .await;
        assert_eq!(d.verdict, Action::Allow, "a shadow never decides");
        assert_eq!(d.runs.len(), 2);
        let shadow = d.runs.iter().find(|r| r.rollout == Some("shadow")).unwrap();
        assert_eq!(shadow.verdict, Some("deny"));
        assert_eq!(shadow.mode, portcullis::config::Mode::Monitor);
        assert_eq!(d.disagreements.len(), 1);
        let dis = &d.disagreements[0];
        assert_eq!(
            (dis.active.as_str(), dis.candidate.as_str()),
            ("allow", "deny")
        );
        assert_eq!(dis.categories, ["jailbreak"]);
        assert!(d.findings.iter().all(|f| !f.enforced));
    }
    // The counters survive reloads that keep the candidate (a new active release).
    site.publish("alpha", 2, 2, |_| {});
    assert!(host.reload().await.swapped);
    host.snapshot()
        .check_request(&user_request("hello"), None)
        .await;
    let status = host.status();
    let shadow = status.rollouts[0].shadow.clone().unwrap();
    assert_eq!((shadow.compared, shadow.disagreed), (6, 6));
    assert_eq!(shadow.by_category["jailbreak"], 6);
    assert!(
        status
            .policies
            .iter()
            .any(|v| v.role.as_deref() == Some("shadow"))
    );

    // Canary at 50% by client: one version per client, about half the clients each.
    set_candidate(
        &site,
        "[policies.candidate]\nconfig = { mode = \"deny\" }\nrollout = \"canary\"\npercent = 50\n",
    );
    let report = host.reload().await;
    assert!(report.swapped && report.rejected.is_empty(), "{report:?}");
    let mut denied_clients = 0;
    for i in 0..200 {
        let client = format!("client-{i}");
        let first = host
            .snapshot()
            .check_request(&client_request(&client), None)
            .await;
        let again = host
            .snapshot()
            .check_request(&client_request(&client), None)
            .await;
        assert_eq!(first.verdict, again.verdict, "{client} saw both versions");
        assert_eq!(first.runs.len(), 1);
        if first.verdict == Action::Deny {
            denied_clients += 1;
            assert_eq!(first.runs[0].rollout, Some("canary"));
        } else {
            assert_eq!(first.runs[0].rollout, None);
        }
    }
    assert!(
        (60..=140).contains(&denied_clients),
        "{denied_clients} of 200"
    );

    // A candidate that fails verification is rejected; the active version runs alone.
    std::fs::write(site.path("broken.wasm"), b"not a component").unwrap();
    set_candidate(
        &site,
        "[policies.candidate]\npath = \"broken.wasm\"\nrollout = \"canary\"\npercent = 50\n",
    );
    let report = host.reload().await;
    assert!(report.rejected[0].contains("policy alpha"), "{report:?}");
    let snapshot = host.snapshot();
    let entry = &snapshot.entries()[0];
    assert!(
        entry
            .candidate
            .as_ref()
            .is_some_and(|c| c.policy.digest() == entry.policy.digest()),
        "the previous candidate stays"
    );

    // Rollback during a rollout withdraws the candidate.
    set_candidate(
        &site,
        "[policies.candidate]\nconfig = { mode = \"deny\" }\nrollout = \"canary\"\npercent = 50\n",
    );
    host.reload().await;
    let out = succeeds(portcullis(&["rollback", "alpha"], &site.config()));
    assert!(out.contains("withdrew the rollout candidate"), "{out}");
    host.reload().await;
    assert!(host.snapshot().entries()[0].candidate.is_none());
    assert!(host.status().rollouts.is_empty());

    // Promotion: the candidate's configuration becomes the policy's own.
    set_candidate(
        &site,
        "[policies.candidate]\nconfig = { mode = \"deny\" }\nrollout = \"shadow\"\n",
    );
    host.reload().await;
    let e = fails(portcullis(&["promote", "nope"], &site.config()));
    assert!(e.contains("no policy named"), "{e}");
    succeeds(portcullis(
        &["promote", "alpha", "--reason", "clean shadow week"],
        &site.config(),
    ));
    let text = std::fs::read_to_string(site.config()).unwrap();
    assert!(
        !text.contains("candidate") && text.contains("mode = \"deny\""),
        "{text}"
    );
    let report = host.reload().await;
    assert!(report.swapped && report.rejected.is_empty(), "{report:?}");
    let d = host
        .snapshot()
        .check_request(&client_request("anyone"), None)
        .await;
    assert_eq!(d.verdict, Action::Deny);
    assert!(
        host.status()
            .policies
            .iter()
            .any(|v| v.role.is_some() && v.state == State::Superseded)
    );
    assert!(
        journal(&site)
            .iter()
            .any(|e| e["event"] == "promoted" && e["reason"] == "clean shadow week")
    );
}
