//! The on-disk compiled-component cache.

use std::os::unix::fs::PermissionsExt;

use portcullis::engine::{Engine, EngineOptions, Limits};

use crate::support::guest;

#[tokio::test]
async fn compiled_components_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let options = EngineOptions {
        cache_dir: Some(cache.clone()),
        ..EngineOptions::default()
    };
    let wasm = guest("portcullis_test_hostile");

    let engine = Engine::new(&options).unwrap();
    engine
        .load("h", &wasm, r#"{"mode":"allow"}"#.into(), Limits::default())
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one artifact per digest and engine configuration"
    );
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".cwasm") && name.len() > 64, "{name}");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // A new engine (a restart) loads the artifact instead of compiling, and it runs.
    let engine = Engine::new(&options).unwrap();
    let policy = engine
        .load("h", &wasm, r#"{"mode":"deny"}"#.into(), Limits::default())
        .unwrap();
    let run = policy
        .check_request(&crate::support::user_request("x"))
        .await;
    assert!(matches!(
        run.result,
        Ok(portcullis::bindings::Verdict::Deny(_))
    ));

    // A corrupted artifact is ignored and replaced, never trusted.
    std::fs::write(&files[0], b"not a compiled component").unwrap();
    let engine = Engine::new(&options).unwrap();
    engine
        .load("h", &wasm, "{}".into(), Limits::default())
        .unwrap();
    assert_ne!(
        std::fs::read(&files[0]).unwrap(),
        b"not a compiled component"
    );
}

#[test]
fn a_cache_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let options = EngineOptions {
        cache_dir: Some(cache),
        ..EngineOptions::default()
    };
    let err = Engine::new(&options).err().expect("refused").to_string();
    assert!(err.contains("writable by group or others"), "{err}");
}
