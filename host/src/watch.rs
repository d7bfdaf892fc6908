//! Watching the files a [`PolicyHost`] is built from (the configuration, the trust
//! store, the rollback pins, every policy's and candidate's component, bundle and
//! fixtures) and reloading when one changes.
//!
//! The parent directories are watched, not the files, so the write-to-temporary-then-
//! rename pattern of editors and deploy tools is seen, and events for other files in
//! those directories (the status file, the anti-rollback state, build by-products)
//! are ignored. A reload starts once no relevant event has arrived for
//! `[lifecycle] debounce_ms`; a file caught half-written, or a component that arrives
//! before its bundle, is simply rejected by that reload (the previous version stays)
//! and accepted by the next one, when the last write lands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::config::PipelineConfig;
use crate::lifecycle::PolicyHost;

/// A running watch; dropping it stops watching.
pub struct Watch {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start watching `host`'s files; reloads run on the current tokio runtime.
pub fn watch(host: Arc<PolicyHost>) -> Result<Watch, notify::Error> {
    let interest = Arc::new(Mutex::new(files_of(&host.config(), host.config_path())));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let filter = interest.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let interest = filter.lock().unwrap_or_else(|p| p.into_inner());
        if event.paths.iter().any(|p| interest.contains(p)) {
            let _ = tx.send(());
        }
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut dirs = BTreeSet::new();
    update_watches(
        &watcher,
        &mut dirs,
        &interest.lock().expect("interest lock"),
    )?;

    let watching = watcher.clone();
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            let quiet = Duration::from_millis(host.config().lifecycle.debounce_ms);
            loop {
                match tokio::time::timeout(quiet, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_elapsed) => break,
                }
            }
            host.reload().await;
            let files = files_of(&host.config(), host.config_path());
            if let Err(e) = update_watches(&watching, &mut dirs, &files) {
                tracing::error!(alert = true, "cannot watch the policy files: {e}");
            }
            *interest.lock().unwrap_or_else(|p| p.into_inner()) = files;
        }
    });
    Ok(Watch {
        _watcher: watcher,
        task,
    })
}

/// Watch the parent directories of `files`, and stop watching ones no longer needed.
fn update_watches(
    watcher: &Mutex<RecommendedWatcher>,
    dirs: &mut BTreeSet<PathBuf>,
    files: &BTreeSet<PathBuf>,
) -> Result<(), notify::Error> {
    let wanted: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let mut watcher = watcher.lock().unwrap_or_else(|p| p.into_inner());
    for dir in wanted.difference(dirs) {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    for dir in dirs.difference(&wanted) {
        let _ = watcher.unwatch(dir);
    }
    *dirs = wanted;
    Ok(())
}

/// Every file a reload reads, as absolute paths (events carry absolute paths).
fn files_of(config: &PipelineConfig, config_path: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    files.insert(config_path.to_path_buf());
    if let Some((store, _)) = config.trust_paths() {
        files.insert(store);
    }
    if let Some(dir) = config.lifecycle_dir() {
        files.insert(crate::releases::Releases::new(dir).pins_path());
    }
    let versions = config
        .policies
        .iter()
        .flat_map(|p| std::iter::once(p.clone()).chain(p.candidate_policy()));
    for p in versions {
        // Registry artifacts are cached by digest and never change; the registry
        // source reloads when a reference moves.
        if p.path
            .to_str()
            .is_some_and(crate::registry::ArtifactRef::is_registry)
        {
            continue;
        }
        let wasm = config.resolve(&p.path);
        files.insert(crate::artifact::bundle::sidecar_path(&wasm));
        files.insert(wasm);
        if let Some(f) = &p.fixtures {
            files.insert(config.resolve(f));
        }
    }
    files.into_iter().map(|f| absolute(&f)).collect()
}

/// `path` made absolute and lexically normalised (`a/../b` → `b`), without touching
/// the file system (the file may not exist yet).
fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
