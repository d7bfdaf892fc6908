//! The sandbox: wasmtime setup, compilation (cached by digest), and one fresh,
//! fuel- and deadline-limited instance per evaluation.
//!
//! Every evaluation gets a new `Store` and instance from the pooling allocator
//! (copy-on-write memory images), so nothing one request leaves in memory is visible to
//! the next. Each run is bounded by fuel (deterministic CPU), an epoch deadline (wall
//! clock, 1 tick = 1 ms), a memory/table limiter, and caps on what the guest may return
//! or log. WASI is linked with no capabilities: no preopened directories, no
//! environment, no arguments, no network, closed stdio, and frozen clocks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, Resource, ResourceTable, ResourceType};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreContextMut, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Level, Match};
use crate::matchers::{MatcherCache, MatcherHandle};

/// Errors that stop a policy from being loaded.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The wasmtime engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Setup(String),
    /// The bytes are not a valid component, or do not fit the contract.
    #[error("policy {policy}: {reason}")]
    Invalid {
        /// Policy name.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// The compiled-code cache directory is unsafe or unusable.
    #[error("compiled-code cache {path}: {reason}")]
    Cache {
        /// Cache directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Evaluations that may run at once (pool size); more wait for a slot.
    pub max_concurrent: u32,
    /// Hard cap on any policy's linear memory, in bytes (pool slot size).
    pub max_memory_bytes: usize,
    /// Where compiled components are cached across restarts (`None`: memory only).
    /// Must be owned by this user and not writable by group or others.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrent: 128,
            max_memory_bytes: 64 << 20,
            cache_dir: None,
        }
    }
}

/// Limits for one evaluation of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (about one unit per wasm instruction; host scans are charged too).
    pub fuel: u64,
    /// Wall-clock deadline in milliseconds.
    pub deadline_ms: u64,
    /// Linear memory, in bytes.
    pub memory_bytes: usize,
    /// Total bytes of strings the policy may return.
    pub max_output_bytes: usize,
    /// Log lines kept per evaluation (more are counted and dropped).
    pub max_log_lines: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 200_000_000,
            deadline_ms: 100,
            memory_bytes: 32 << 20,
            max_output_bytes: 1 << 20,
            max_log_lines: 32,
        }
    }
}

/// How one evaluation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum Outcome {
    /// The policy returned a verdict.
    Ok,
    /// The policy trapped, panicked, exceeded memory or returned something invalid.
    Error(String),
    /// The wall-clock deadline passed.
    Timeout,
    /// The fuel budget ran out.
    FuelExhausted,
    /// Not run (an earlier policy of the stage denied).
    Skipped,
}

impl Outcome {
    /// The outcome's name: `ok`, `error`, `timeout`, `fuel-exhausted`, `skipped`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(_) => "error",
            Outcome::Timeout => "timeout",
            Outcome::FuelExhausted => "fuel-exhausted",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The result of one evaluation, with what it cost.
#[derive(Debug)]
pub struct Run<T> {
    /// The value, or why there is none.
    pub result: Result<T, Outcome>,
    /// Fuel consumed (including host scans charged to the policy).
    pub fuel_used: u64,
    /// Wall-clock microseconds, instantiation included.
    pub micros: u64,
    /// Log lines dropped over the cap.
    pub logs_dropped: u32,
}

impl<T> Run<T> {
    /// The outcome (`Ok` when there is a value).
    pub fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(_) => Outcome::Ok,
            Err(o) => o.clone(),
        }
    }
}

/// The wasmtime engine, linker and compiled-component cache shared by all policies.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<RunState>,
    permits: Arc<Semaphore>,
    compiled: Mutex<std::collections::HashMap<String, Component>>,
    cache_dir: Option<PathBuf>,
    max_memory_bytes: usize,
}

impl Engine {
    /// Configure wasmtime (pooling allocator, copy-on-write images, fuel, epochs) and
    /// start the epoch ticker.
    pub fn new(options: &EngineOptions) -> Result<Arc<Engine>, EngineError> {
        let setup = |e: wasmtime::Error| EngineError::Setup(format!("{e:#}"));
        let n = options.max_concurrent.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n * 16)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(options.max_memory_bytes)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .table_elements(20_000)
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(512 << 10)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .async_stack_size(2 << 20)
            .wasm_backtrace_max_frames(None);
        let engine = wasmtime::Engine::new(&config).map_err(setup)?;
        start_epoch_ticker(&engine);
        let mut linker = Linker::<RunState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        add_host_imports(&mut linker).map_err(setup)?;
        if let Some(dir) = &options.cache_dir {
            prepare_cache_dir(dir)?;
        }
        Ok(Arc::new(Engine {
            engine,
            linker,
            permits: Arc::new(Semaphore::new(n as usize)),
            compiled: Mutex::new(Default::default()),
            cache_dir: options.cache_dir.clone(),
            max_memory_bytes: options.max_memory_bytes,
        }))
    }

    /// Compile `wasm` (or fetch it from the memory or disk cache, keyed by its SHA-256
    /// and this engine's compatibility hash) and prepare fresh-instance state.
    pub fn load(
        self: &Arc<Self>,
        name: &str,
        wasm: &[u8],
        config_json: String,
        limits: Limits,
    ) -> Result<crate::policy::Policy, EngineError> {
        let invalid = |reason: String| EngineError::Invalid {
            policy: name.to_string(),
            reason,
        };
        if limits.memory_bytes > self.max_memory_bytes {
            return Err(invalid(format!(
                "memory limit {} bytes exceeds the engine's cap of {} bytes",
                limits.memory_bytes, self.max_memory_bytes
            )));
        }
        let digest = crate::artifact::statement::sha256_digest(wasm);
        let component = self
            .compile(&digest, wasm)
            .map_err(|e| invalid(e.to_string()))?;
        component
            .initialize_copy_on_write_image()
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something the host does not provide: {e:#}"
            ))
        })?;
        let shared = Arc::new(PolicyShared {
            name: name.to_string(),
            config_json,
            matchers: MatcherCache::default(),
        });
        crate::policy::Policy::new(self.clone(), shared, digest, pre, limits).map_err(invalid)
    }

    /// Drop `digest` from the in-memory compiled-code cache (a superseded or rejected
    /// version). Policies already loaded from it keep working.
    pub fn forget(&self, digest: &str) {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    fn compile(&self, digest: &str, wasm: &[u8]) -> Result<Component, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = compiled.get(digest) {
            return Ok(c.clone());
        }
        let component = match self.cache_path(digest) {
            Some(path) => self.compile_with_disk_cache(&path, wasm)?,
            None => Component::from_binary(&self.engine, wasm).map_err(|e| format!("{e:#}"))?,
        };
        compiled.insert(digest.to_string(), component.clone());
        Ok(component)
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let hex_digest = digest.trim_start_matches("sha256:");
        Some(dir.join(format!("{hex_digest}-{:016x}.cwasm", h.finish())))
    }

    fn compile_with_disk_cache(&self, path: &Path, wasm: &[u8]) -> Result<Component, String> {
        // Read into memory rather than mmap (`deserialize_file`): a file changed or
        // truncated under a mapping would crash the process with SIGBUS.
        if let Ok(bytes) = std::fs::read(path) {
            // SAFETY: the bytes were written by `Component::serialize` of an engine with
            // the same compatibility hash (it is in the name), into a directory that
            // `prepare_cache_dir` verified only this user can write. wasmtime rejects
            // artifacts from other versions or configurations with an error.
            match unsafe { Component::deserialize(&self.engine, &bytes) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component")
                }
            }
        }
        let component = Component::from_binary(&self.engine, wasm).map_err(|e| format!("{e:#}"))?;
        match component.serialize() {
            Ok(bytes) => {
                let tmp = path.with_extension("tmp");
                if let Err(e) =
                    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path))
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize compiled component"),
        }
        Ok(component)
    }

    /// Run one evaluation in a fresh store: `call` instantiates and calls the policy.
    pub(crate) async fn run<R, F>(
        &self,
        shared: &Arc<PolicyShared>,
        limits: Limits,
        call: F,
    ) -> Run<R>
    where
        R: OutputSize,
        F: AsyncFnOnce(&mut Store<RunState>) -> wasmtime::Result<R>,
    {
        let mut store = self.new_store(shared, limits).await;
        rerun(&mut store, call).await
    }

    /// A fresh store, once a pool slot is free (the slot is held until the store drops).
    pub(crate) async fn new_store(
        &self,
        shared: &Arc<PolicyShared>,
        limits: Limits,
    ) -> Store<RunState> {
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false);
        let state = RunState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: RunLimiter {
                memory_bytes: limits.memory_bytes,
                memory_denied: false,
            },
            shared: shared.clone(),
            limits,
            _permit: permit,
            ticks_left: limits.deadline_ms.max(1),
            log_lines: 0,
            max_log_lines: limits.max_log_lines,
            logs_dropped: 0,
            last_error: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            state.ticks_left = state.ticks_left.saturating_sub(1);
            if state.ticks_left == 0 {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// Call into an existing store with a fresh fuel budget and deadline, and record the
/// outcome truthfully.
pub(crate) async fn rerun<R, F>(store: &mut Store<RunState>, call: F) -> Run<R>
where
    R: OutputSize,
    F: AsyncFnOnce(&mut Store<RunState>) -> wasmtime::Result<R>,
{
    let limits = store.data().limits;
    // `set_fuel` only fails when fuel is disabled, which `Engine::new` never does.
    let _ = store.set_fuel(limits.fuel);
    store.data_mut().ticks_left = limits.deadline_ms.max(1);
    store.set_epoch_deadline(1);
    let started = Instant::now();
    let result = call(store).await;
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let result = match result {
        Ok(value) if value.output_size() > limits.max_output_bytes => Err(Outcome::Error(format!(
            "returned {} bytes, more than the {} allowed",
            value.output_size(),
            limits.max_output_bytes
        ))),
        Ok(value) => Ok(value),
        Err(e) => Err(classify(&e, store.data())),
    };
    Run {
        result,
        fuel_used,
        micros: started.elapsed().as_micros() as u64,
        logs_dropped: store.data().logs_dropped,
    }
}

/// Size of what a policy returned, for the output cap.
pub(crate) trait OutputSize {
    fn output_size(&self) -> usize;
}

/// Per-policy state shared by all its evaluations.
#[derive(Debug)]
pub(crate) struct PolicyShared {
    pub(crate) name: String,
    pub(crate) config_json: String,
    pub(crate) matchers: MatcherCache,
}

/// Per-evaluation store state.
pub(crate) struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: RunLimiter,
    shared: Arc<PolicyShared>,
    limits: Limits,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ticks_left: u64,
    log_lines: u32,
    max_log_lines: u32,
    logs_dropped: u32,
    last_error: Option<String>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct RunLimiter {
    memory_bytes: usize,
    memory_denied: bool,
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.memory_denied |= !ok;
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 20_000)
    }
    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        32
    }
    fn memories(&self) -> usize {
        4
    }
}

/// Clocks that always read zero: policies get no time source.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

fn classify(error: &wasmtime::Error, state: &RunState) -> Outcome {
    if state.limiter.memory_denied {
        return Outcome::Error(format!(
            "memory limit of {} bytes exceeded",
            state.limiter.memory_bytes
        ));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::FuelExhausted,
        Some(Trap::Interrupt) => Outcome::Timeout,
        Some(Trap::StackOverflow) => Outcome::Error("stack overflow".into()),
        Some(trap) => Outcome::Error(match &state.last_error {
            Some(msg) => format!("trap ({trap}): {msg}"),
            None => format!("trap: {trap}"),
        }),
        None => Outcome::Error(format!("{error:#}")),
    }
}

/// Longest log message kept, in bytes.
const MAX_LOG_MESSAGE_BYTES: usize = 1024;
/// Fuel charged per host call (log, config).
const FUEL_PER_HOST_CALL: u64 = 500;

fn charge(cx: &mut StoreContextMut<'_, RunState>, fuel: u64) -> wasmtime::Result<()> {
    let left = cx.get_fuel()?;
    cx.set_fuel(left.saturating_sub(fuel))
}

fn add_host_imports(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    let mut host = linker.instance("portcullis:policy/host@0.1.0")?;
    host.func_wrap(
        "log",
        |mut cx: StoreContextMut<'_, RunState>, (level, message): (Level, String)| {
            charge(&mut cx, FUEL_PER_HOST_CALL + message.len() as u64)?;
            let state = cx.data_mut();
            let message = truncate(&message, MAX_LOG_MESSAGE_BYTES);
            if matches!(level, Level::Error) {
                state.last_error = Some(message.to_string());
            }
            if state.log_lines >= state.max_log_lines {
                state.logs_dropped = state.logs_dropped.saturating_add(1);
                return Ok(());
            }
            state.log_lines += 1;
            let policy = state.shared.name.as_str();
            match level {
                Level::Trace => tracing::trace!(target: "portcullis::policy", policy, "{message}"),
                Level::Debug => tracing::debug!(target: "portcullis::policy", policy, "{message}"),
                Level::Info => tracing::info!(target: "portcullis::policy", policy, "{message}"),
                Level::Warn => tracing::warn!(target: "portcullis::policy", policy, "{message}"),
                Level::Error => tracing::error!(target: "portcullis::policy", policy, "{message}"),
            }
            Ok(())
        },
    )?;
    host.func_wrap("config", |mut cx: StoreContextMut<'_, RunState>, (): ()| {
        charge(&mut cx, FUEL_PER_HOST_CALL)?;
        Ok((cx.data().shared.config_json.clone(),))
    })?;

    let mut matchers = linker.instance("portcullis:policy/matchers@0.1.0")?;
    matchers.resource(
        "matcher",
        ResourceType::host::<MatcherHandle>(),
        |mut cx, rep| {
            cx.data_mut()
                .table
                .delete(Resource::<MatcherHandle>::new_own(rep))?;
            Ok(())
        },
    )?;
    matchers.func_wrap(
        "[static]matcher.compile",
        |mut cx: StoreContextMut<'_, RunState>, (patterns,): (Vec<String>,)| {
            charge(&mut cx, FUEL_PER_HOST_CALL)?;
            let state = cx.data_mut();
            match state.shared.matchers.get_or_compile(&patterns) {
                Ok(set) => Ok((Ok(state.table.push(MatcherHandle(set))?),)),
                Err(e) => Ok((Err(e),)),
            }
        },
    )?;
    matchers.func_wrap(
        "[method]matcher.find-all",
        |mut cx: StoreContextMut<'_, RunState>,
         (handle, text): (Resource<MatcherHandle>, String)| {
            let set = cx.data().table.get(&handle)?.0.clone();
            charge(&mut cx, set.scan_cost(text.len()))?;
            let hits: Vec<Match> = set.find_all(&text);
            Ok((hits,))
        },
    )?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("portcullis-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(1));
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        // Without a ticker no deadline could ever fire: every run would trap at its first
        // epoch check instead, because the deadline is set to one tick.
        tracing::error!(error = %e, "cannot start the epoch ticker thread");
    }
}

fn prepare_cache_dir(dir: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let fail = |reason: String| EngineError::Cache {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(format!("cannot create: {e}")))?;
    let meta = std::fs::metadata(dir).map_err(|e| fail(format!("cannot inspect: {e}")))?;
    // /proc/self belongs to the process's effective uid.
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| fail(format!("cannot tell who we are: {e}")))?
        .uid();
    if meta.uid() != uid {
        return Err(fail(format!(
            "owned by uid {}, not by this process (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "writable by group or others (mode {:o}); compiled code loaded from it is trusted, so run `chmod go-w` on it",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}
