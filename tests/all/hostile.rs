//! Hostile policies: each misbehaviour ends in the right outcome, within its limits,
//! and the host keeps serving other evaluations meanwhile.

use portcullis::config::{PipelineConfig, Stage};
use portcullis::engine::{Limits, Outcome};
use portcullis::pipeline::{Action, Pipeline};

use crate::support::{load, unsigned_guest_config, user_request};

async fn outcome_of(mode: &str, limits: Limits) -> (Outcome, u64, u32) {
    let policy = load(
        "portcullis_test_hostile",
        &format!(r#"{{"mode":"{mode}"}}"#),
        limits,
    );
    let run = policy.check_request(&user_request("hello")).await;
    (run.outcome(), run.fuel_used, run.logs_dropped)
}

fn error_containing(outcome: &Outcome, needle: &str) -> bool {
    matches!(outcome, Outcome::Error(reason) if reason.contains(needle))
}

#[tokio::test]
async fn well_behaved_modes_work() {
    let (o, fuel, _) = outcome_of("allow", Limits::default()).await;
    assert_eq!(o, Outcome::Ok);
    assert!(fuel > 0, "fuel is accounted");
}

#[tokio::test]
async fn infinite_loop_exhausts_fuel() {
    let limits = Limits {
        fuel: 20_000_000,
        ..Limits::default()
    };
    let (o, fuel, _) = outcome_of("loop", limits).await;
    assert_eq!(o, Outcome::FuelExhausted);
    assert_eq!(fuel, 20_000_000);
}

#[tokio::test]
async fn infinite_loop_with_ample_fuel_times_out() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline_ms: 30,
        ..Limits::default()
    };
    let (o, _, _) = outcome_of("loop", limits).await;
    assert_eq!(o, Outcome::Timeout);
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let (o, _, _) = outcome_of("memory", limits).await;
    assert!(
        error_containing(&o, "memory limit of 16777216 bytes exceeded"),
        "{o:?}"
    );
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow() {
    let (o, _, _) = outcome_of("stack", Limits::default()).await;
    assert!(error_containing(&o, "stack overflow"), "{o:?}");
}

#[tokio::test]
async fn trap_and_panic_are_errors_with_the_reason() {
    let (o, _, _) = outcome_of("trap", Limits::default()).await;
    assert!(error_containing(&o, "unreachable"), "{o:?}");
    let (o, _, _) = outcome_of("panic", Limits::default()).await;
    assert!(
        error_containing(&o, "hostile policy panics on purpose"),
        "{o:?}"
    );
}

#[tokio::test]
async fn oversized_results_are_refused() {
    // 2 MiB fits in memory but not in the 1 MiB output cap.
    let (o, _, _) = outcome_of("big", Limits::default()).await;
    assert!(
        error_containing(&o, "more than the 1048576 allowed"),
        "{o:?}"
    );
    // 100 MB cannot even be built inside the 32 MiB memory limit.
    let (o, _, _) = outcome_of("huge", Limits::default()).await;
    assert!(error_containing(&o, "memory limit"), "{o:?}");
}

#[tokio::test]
async fn log_spam_is_capped_and_charged() {
    // A generous deadline, so that fuel (deterministic) is what stops it even on a
    // loaded machine.
    let limits = Limits {
        deadline_ms: 20_000,
        ..Limits::default()
    };
    let (o, _, dropped) = outcome_of("log-spam", limits).await;
    assert_eq!(o, Outcome::FuelExhausted, "each log call costs fuel");
    assert!(
        dropped > 1000,
        "lines over the cap are dropped and counted ({dropped})"
    );
}

#[tokio::test]
async fn policies_get_no_files_environment_clock_or_network() {
    let policy = load(
        "portcullis_test_hostile",
        r#"{"mode":"probe"}"#,
        Limits::default(),
    );
    let run = policy.check_request(&user_request("x")).await;
    let Ok(portcullis::bindings::Verdict::Allow(findings)) = run.result else {
        panic!("probe failed: {:?}", run.outcome())
    };
    let got: Vec<String> = findings
        .iter()
        .map(|f| match &f.category {
            portcullis::bindings::Category::Custom(c) => c.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "fs:denied",
            "dir:denied",
            "env:0",
            "args:0",
            "clock:0",
            "net:denied"
        ]
    );
}

#[tokio::test]
async fn matcher_limits_are_reported_to_the_policy() {
    let (o, _, _) = outcome_of("matcher-bomb", Limits::default()).await;
    assert!(error_containing(&o, "pattern 0 rejected"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keeps_serving_while_a_policy_spins() {
    let spinner = load(
        "portcullis_test_hostile",
        r#"{"mode":"loop"}"#,
        Limits {
            fuel: u64::MAX / 2,
            deadline_ms: 300,
            ..Limits::default()
        },
    );
    let good = std::sync::Arc::new(load(
        "portcullis_test_hostile",
        r#"{"mode":"deny"}"#,
        Limits::default(),
    ));
    let spin =
        tokio::spawn(async move { spinner.check_request(&user_request("x")).await.outcome() });
    let mut handles = Vec::new();
    for _ in 0..50 {
        let good = good.clone();
        handles.push(tokio::spawn(async move {
            good.check_request(&user_request("x")).await.outcome()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), Outcome::Ok);
    }
    assert!(
        !spin.is_finished(),
        "the 50 evaluations finished while the spinner was still running"
    );
    assert_eq!(spin.await.unwrap(), Outcome::Timeout);
}

fn pipeline_config(policies: &str) -> PipelineConfig {
    unsigned_guest_config(&format!("[limits]\nfuel = 20_000_000\n{policies}"))
}

#[tokio::test]
async fn allow_passes_and_stage_mismatch_is_refused_at_load() {
    let config = pipeline_config(
        r#"
        [[policies]]
        name = "fails-closed"
        path = "portcullis_test_hostile.wasm"
        stages = ["input"]
        config = { mode = "allow" }
        "#,
    );
    let pipeline = Pipeline::load(&config).await.unwrap();
    let allowed = pipeline.check_request(&user_request("hi"), None).await;
    assert_eq!(allowed.verdict, Action::Allow);

    let config = pipeline_config(
        r#"
        [[policies]]
        name = "guardrail-only"
        path = "portcullis_test_hostile.wasm"
        stages = ["output"]
        config = { mode = "allow" }
        "#,
    );
    // The guest is a guardrail: it cannot serve as an output filter.
    let err = Pipeline::load(&config)
        .await
        .err()
        .expect("stage mismatch is refused")
        .to_string();
    assert!(err.contains("does not export response-filter"), "{err}");
}

#[tokio::test]
async fn invalid_answers_and_failures_apply_on_error() {
    let make = |mode: &str, on_error: &str| {
        pipeline_config(&format!(
            r#"
            [[policies]]
            name = "p"
            path = "portcullis_test_hostile.wasm"
            stages = ["input"]
            on_error = "{on_error}"
            config = {{ mode = "allow" }}
            [[policies]]
            name = "h"
            path = "portcullis_test_hostile.wasm"
            stages = ["input"]
            on_error = "{on_error}"
            config = {{ mode = "{mode}" }}
            "#
        ))
    };
    // Warm-up of a policy that always fails refuses the whole configuration.
    let err = Pipeline::load(&make("trap", "deny"))
        .await
        .err()
        .expect("warm-up fails")
        .to_string();
    assert!(
        err.contains("policy h: failed its warm-up evaluation: error: trap"),
        "{err}"
    );

    // An invalid answer (a redaction outside the text) is only caught when applied.
    let pipeline = Pipeline::load(&make("bad-span", "deny")).await.unwrap();
    let d = pipeline.check_request(&user_request("hello"), None).await;
    assert_eq!(d.verdict, Action::Deny);
    let run = d.runs.iter().find(|r| r.policy == "h").unwrap();
    assert_eq!(
        run.verdict,
        Some("modify"),
        "the policy's own verdict is recorded"
    );
    assert!(
        d.findings
            .iter()
            .any(|f| f.category == "policy-failure" && f.message.contains("outside the text"))
    );

    let pipeline = Pipeline::load(&make("bad-span", "allow")).await.unwrap();
    let d = pipeline
        .check_request(&user_request("hello"), Some(Stage::Input))
        .await;
    assert_eq!(d.verdict, Action::Allow, "on_error = allow fails open");
    assert!(
        d.findings.iter().any(|f| f.category == "policy-failure"),
        "but the failure is reported"
    );
}
