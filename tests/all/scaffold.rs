//! `portcullis new` and `portcullis build` on projects: for every language and world,
//! a scaffolded project builds, signs with the development key, passes its fixtures
//! through `portcullis test` and passes the conformance kit; a component that does not
//! implement its manifest's world is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Lang, root};

const WORLDS: [&str; 3] = ["guardrail", "output-filter", "tool-sandbox"];

/// Run `portcullis` in `dir`. Rust projects share one target directory (their
/// dependencies are built once per machine, beside the workspace's).
fn portcullis(dir: &Path, args: &[&str]) -> Output {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target.join("scaffolds"))
        .args(args)
        .output()
        .expect("portcullis runs")
}

/// A temporary directory at the checkout's root (`.scaffold-*`, ignored by git), so
/// projects find the checkout (and its pinned toolchain) by themselves, as they do when
/// made under `policies/`. Not below `target/`, which CI links to a cache elsewhere.
fn workspace() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(".scaffold-")
        .tempdir_in(root())
        .unwrap()
}

fn succeeded(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Scaffold `lang`/`world` in a new directory `workspace/<name>`; the project path.
fn scaffold(workspace: &Path, lang: &str, world: &str) -> PathBuf {
    let name = format!("my-{lang}-{world}");
    let out = portcullis(workspace, &["new", "--lang", lang, "--world", world, &name]);
    succeeded("portcullis new", &out);
    workspace.join(name)
}

/// new → build → dev-sign → test → conform, for each world.
fn every_world_builds_and_passes(lang: &str) {
    let workspace = workspace();
    for world in WORLDS {
        let project = scaffold(workspace.path(), lang, world);
        let name = project.file_name().unwrap().to_str().unwrap().to_string();
        let built = portcullis(&project, &["build"]);
        let log = String::from_utf8_lossy(&built.stderr);
        assert!(built.status.success(), "{lang} {world}: {log}");
        assert!(
            log.contains(&format!("implements portcullis:policy/{world}")),
            "{log}"
        );
        succeeded(
            "dev-sign",
            &portcullis(&project, &["dev-sign", "--manifests", ".."]),
        );
        let report = succeeded("portcullis test", &portcullis(&project, &["test"]));
        let cases = std::fs::read_to_string(project.join("fixtures/cases.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert!(
            report.contains(&format!("{cases} passed, 0 failed")),
            "{lang} {world}: {report}"
        );
        let component = format!("build/{name}.wasm");
        let mut conform = vec!["conform"];
        match world {
            "guardrail" => conform.extend(["--trigger", "ignore previous instructions"]),
            "output-filter" => conform.extend(["--trigger", "CONFIDENTIAL"]),
            _ => conform.extend(["--config", r#"{"allow": ["search_docs"]}"#]),
        }
        conform.push(&component);
        succeeded(
            &format!("{lang} {world} conformance"),
            &portcullis(&project, &conform),
        );
    }
}

#[test]
fn rust_projects_build_and_pass_for_every_world() {
    every_world_builds_and_passes("rust");
}

#[test]
fn python_projects_build_and_pass_for_every_world() {
    if Lang::Python.available() {
        every_world_builds_and_passes("python");
    }
}

#[test]
fn javascript_projects_build_and_pass_for_every_world() {
    if Lang::Js.available() {
        every_world_builds_and_passes("js");
    }
}

#[test]
fn c_projects_build_and_pass_for_every_world() {
    if Lang::C.available() {
        every_world_builds_and_passes("c");
    }
}

/// `portcullis build` checks the component against the manifest's world: a Rust
/// guardrail (cargo builds whatever the crate exports) whose manifest claims the
/// tool-sandbox world is refused and nothing is written.
#[test]
fn a_component_that_does_not_implement_the_manifest_world_is_refused() {
    let workspace = workspace();
    let project = scaffold(workspace.path(), "rust", "guardrail");
    let manifest = project.join("policy.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("kind = \"guardrail\"", "kind = \"tool-sandbox\"")
            .replace("policy/guardrail@", "policy/tool-sandbox@"),
    )
    .unwrap();
    let out = portcullis(&project, &["build"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains(
            "implements portcullis:policy/guardrail@0.1.0, not portcullis:policy/tool-sandbox"
        ),
        "{log}"
    );
    assert!(
        !project
            .join("build")
            .join("my-rust-guardrail.wasm")
            .exists()
    );
}

/// `portcullis new` refuses what it cannot scaffold cleanly, and leaves nothing.
#[test]
fn new_refuses_bad_names_existing_directories_and_missing_checkouts() {
    let workspace = tempfile::tempdir().unwrap();
    let root = root();
    let new = |name: &str, extra: &[&str]| {
        let mut args = vec!["new", "--lang", "python", name];
        args.extend(extra);
        portcullis(workspace.path(), &args)
    };
    let checkout = ["--portcullis", root.to_str().unwrap()];
    let bad = new("My_Guard", &checkout);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a policy name"));
    std::fs::create_dir(workspace.path().join("taken")).unwrap();
    let taken = new("taken", &checkout);
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    // A temporary directory has no Portcullis checkout above it.
    let lost = new("lost", &[]);
    assert!(String::from_utf8_lossy(&lost.stderr).contains("--portcullis DIR"));
    let left: Vec<_> = std::fs::read_dir(workspace.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("taken")]);
}
