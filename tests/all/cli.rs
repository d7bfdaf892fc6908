//! The `portcullis` binary, used as a person would.

use std::process::Command;

use serde_json::Value;

use crate::support::{dev_sign, example_config_text, root};

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// The example configuration, with absolute paths, in a temporary directory.
/// `portcullis ARGS --config CONFIG`, run to completion.
pub(crate) fn run_with_config(args: &[&str], config: &std::path::Path) -> std::process::Output {
    portcullis()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn example_config_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, example_config_text()).unwrap();
    (dir, path)
}

/// Copy built guest `guest` into `dir` as `<name>.wasm`; returns its path.
fn copy_guest(dir: &std::path::Path, guest: &str, name: &str) -> std::path::PathBuf {
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(
        crate::support::guests().join(format!("{guest}.wasm")),
        &wasm,
    )
    .unwrap();
    wasm
}

fn decisions(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn by_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no decision for {id}"))
}

#[test]
fn check_prints_one_decision_per_line_and_keeps_going_after_bad_lines() {
    let (_dir, config) = example_config_file();
    let out = portcullis()
        .args(["check", "--config"])
        .arg(&config)
        .arg(root().join("examples/requests/input.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = decisions(&out.stdout);
    assert_eq!(lines.len(), 9);
    assert_eq!(by_id(&lines, "benign")["verdict"], "allow");
    assert_eq!(by_id(&lines, "injection")["verdict"], "deny");
    assert_eq!(by_id(&lines, "injection-in-tool-result")["verdict"], "deny");
    assert_eq!(by_id(&lines, "base64-smuggling")["verdict"], "deny");
    let pii = by_id(&lines, "pii-redacted");
    assert_eq!(pii["verdict"], "modify");
    let content = pii["modified"]["messages"][0]["content"].as_str().unwrap();
    assert!(
        content.contains("[EMAIL_1]") && !content.contains("jane.doe"),
        "{content}"
    );
    assert_eq!(by_id(&lines, "secret-redacted")["verdict"], "modify");
    let tools = by_id(&lines, "tools-offered");
    assert_eq!(tools["denied_tools"], serde_json::json!([1]));
    assert_eq!(
        tools["findings"][0]["item"], 1,
        "tool findings say which tool"
    );
    let rug_pull = by_id(&lines, "tool-rug-pull");
    assert_eq!(rug_pull["denied_tools"], serde_json::json!([0]));
    assert_eq!(
        rug_pull["findings"][0]["severity"], "critical",
        "{rug_pull}"
    );
    let bad = lines
        .iter()
        .find(|l| l.get("error").is_some())
        .expect("the malformed line is reported");
    assert!(bad["error"].as_str().unwrap().contains("line 9"), "{bad}");
    for line in lines.iter().filter(|l| l.get("policies").is_some()) {
        for run in line["policies"].as_array().unwrap() {
            assert!(run["digest"].as_str().unwrap().starts_with("sha256:"));
            assert!(run["fuel"].as_u64().is_some() && run["micros"].as_u64().is_some());
            // A deny cancels the stage's unfinished runs, which are recorded as skipped.
            assert!(
                run["outcome"] == "ok" || run["outcome"] == "skipped",
                "{run}"
            );
        }
    }
}

#[test]
fn check_filters_responses_from_stdin() {
    let (_dir, config) = example_config_file();
    let input = std::fs::read(root().join("examples/requests/output.jsonl")).unwrap();
    let mut child = portcullis()
        .args(["check", "--config"])
        .arg(&config)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = decisions(&out.stdout);
    assert_eq!(by_id(&lines, "benign-answer")["verdict"], "allow");
    let pii = by_id(&lines, "pii-in-answer");
    assert_eq!(pii["verdict"], "modify");
    assert!(
        pii["modified"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("[EMAIL_1]")
    );
    assert_ne!(by_id(&lines, "key-in-answer")["verdict"], "allow");
    assert_eq!(
        by_id(&lines, "tool-call-traversal")["denied_calls"],
        serde_json::json!([0])
    );
    assert_eq!(by_id(&lines, "tool-call-ok")["verdict"], "allow");
}

#[test]
fn test_command_is_the_eval_gate() {
    let (_dir, config) = example_config_file();
    let out = run_with_config(&["test"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    // One wrong expectation fails the gate and names the case.
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("bad.jsonl");
    std::fs::write(
        &fixtures,
        r#"{"name": "benign text must not be denied", "check": "request", "messages": [{"role": "user", "content": "hello"}], "expect": {"verdict": "deny"}}"#,
    )
    .unwrap();
    let text = example_config_text().replace(
        &format!(
            "{}/policies/prompt-injection/fixtures/cases.jsonl",
            root().display()
        ),
        &fixtures.display().to_string(),
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = run_with_config(&["test"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL benign text must not be denied: verdict allow (expected deny)"),
        "{stdout}"
    );
}

#[test]
fn usage_and_config_errors_exit_2_with_a_clear_message() {
    let out = portcullis()
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.toml"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let policy = "[[policies]]\nname = \"x\"\npath = \"missing.wasm\"\nstages = [\"input\"]\n";
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = run_with_config(&["check"], &config);
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(policy);
    assert!(
        err.contains("trust.store") && err.contains("allow_unsigned"),
        "{err}"
    );
    let err = run(&format!("[trust]\nstore = \"none.toml\"\n{policy}"));
    assert!(
        err.contains("cannot read") && err.contains("none.toml"),
        "{err}"
    );
    let err = run(&format!("[trust]\nallow_unsigned = true\n{policy}"));
    assert!(err.contains("policy x: cannot read"), "{err}");
}

#[test]
fn dev_sign_signs_the_configured_policies_and_never_touches_an_operators_store() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = copy_guest(dir.path(), "portcullis_policy_pii", "pii");
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[trust]\nstore = \"dev/trust.toml\"\n[[policies]]\nname = \"pii\"\npath = \"pii.wasm\"\nstages = [\"input\"]\n",
    )
    .unwrap();
    let manifests = root().join("policies");
    let run = || dev_sign(&config, &manifests);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("generated the DEVELOPMENT signing key"),
        "{stderr}"
    );
    assert!(stderr.contains("signed pii 0.1.0 (sequence 1)"), "{stderr}");
    let store = std::fs::read_to_string(dir.path().join("dev/trust.toml")).unwrap();
    assert!(store.starts_with("# GENERATED by `portcullis dev-sign`"));
    assert!(store.contains("names = [\"pii\"]"), "{store}");

    // The main job's path: the signed policy loads, decisions carry its version.
    let mut child = portcullis()
        .args(["check", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"messages": [{"role": "user", "content": "hi"}]}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let line = &decisions(&out.stdout)[0];
    assert_eq!(line["policies"][0]["version"], "0.1.0", "{line}");
    assert!(line["policies"][0].get("unsigned").is_none(), "{line}");

    // A second run reuses the key.
    let out = run();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("generated"));

    // Rebuilt bytes under the same sequence: refused, with what to do about it.
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0, 3, 1, b'x', 1]);
    std::fs::write(&wasm, bytes).unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bump `sequence`"), "{stderr}");

    // An operator's trust store is never overwritten.
    std::fs::write(dir.path().join("dev/trust.toml"), "threshold = 1\n").unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
}

#[test]
fn check_watch_picks_up_a_re_signed_policy_and_a_rollback_and_status_shows_them() {
    use std::io::{BufRead as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let wasm = copy_guest(dir.path(), "portcullis_test_hostile", "alpha");
    std::fs::create_dir(dir.path().join("alpha")).unwrap();
    let manifest = |sequence: u64| {
        std::fs::write(
            dir.path().join("alpha/policy.toml"),
            format!(
                "name = \"alpha\"\nversion = \"1.{sequence}.0\"\nsequence = {sequence}\nkind = \"guardrail\"\n\
                 world = \"portcullis:policy/guardrail@0.1.0\"\nnot_before = \"2026-01-01T00:00:00Z\"\n\
                 expires = \"2030-01-01T00:00:00Z\"\nmin_host_version = \"0.1.0\"\n"
            ),
        )
        .unwrap();
    };
    manifest(1);
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[trust]\nstore = \"dev/trust.toml\"\n[lifecycle]\ndir = \"lifecycle\"\ndebounce_ms = 50\n\
         [[policies]]\nname = \"alpha\"\npath = \"alpha.wasm\"\nstages = [\"input\"]\nconfig = { mode = \"allow\" }\n",
    )
    .unwrap();
    let sign_release = || {
        let out = dev_sign(&config, dir.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sign_release();

    let parent = dir.path().parent().unwrap();
    let relative = std::path::Path::new(dir.path().file_name().unwrap()).join("portcullis.toml");
    let mut child = portcullis()
        // A relative configuration path in another directory, as people type it
        // (`examples/portcullis.toml`): every path derived from it (policies, trust
        // store, lifecycle directory, archived releases) must resolve.
        .current_dir(parent)
        .args(["check", "--watch", "--config"])
        .arg(&relative)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ask = || -> Value {
        stdin
            .write_all(b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n")
            .unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let first = ask();
    assert_eq!(first["generation"], 1, "{first}");
    assert_eq!(first["policies"][0]["version"], "1.1.0");

    // Release 1.2.0: new bytes, a higher sequence, signed in place while it runs.
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0, 3, 1, b'x', 2]);
    std::fs::write(&wasm, bytes).unwrap();
    manifest(2);
    sign_release();
    // Ask until the answers come from `version` (30 s at most).
    let mut answered_by = |version: &str| -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let answer = ask();
            if answer["policies"][0]["version"] == version {
                return answer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{version} never became active: {answer}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let reloaded = answered_by("1.2.0");
    assert!(reloaded["generation"].as_u64().unwrap() >= 2, "{reloaded}");

    // An operator rollback while it runs: the watcher sees the pin.
    let out = portcullis()
        .current_dir(parent)
        .args(["rollback", "alpha", "--config"])
        .arg(&relative)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    answered_by("1.1.0");

    let out = run_with_config(&["status", "--json"], &config);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(String, String)> = status["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].to_string(), v["state"].to_string()))
        .collect();
    assert!(
        states.contains(&("\"1.1.0\"".into(), "\"active\"".into()))
            && states.contains(&("\"1.2.0\"".into(), "\"superseded\"".into())),
        "{states:?}"
    );
    let out = run_with_config(&["status"], &config);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("alpha") && table.contains("active (pin)") && table.contains("superseded"),
        "{table}"
    );
    drop(stdin);
    child.wait().unwrap();
}
