//! `portcullis build --lang c`: a C policy into a component. The contract's C bindings
//! are generated here (wit-bindgen-c 0.60, on the same wit-parser as wasmtime 48),
//! the sources are compiled by clang for wasm32-wasi as a reactor, and wit-component
//! makes the component (with the WASI preview1 reactor adapter of wasmtime 48 when the
//! module imports preview1, e.g. for stdio). The result must implement the world
//! asked for, or nothing is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// What to build.
pub struct CBuild<'a> {
    /// The contract directory (`wit/`).
    pub wit: &'a Path,
    /// The world to implement (`guardrail`, `output-filter`, `tool-sandbox`, ...).
    pub world: &'a str,
    /// C sources.
    pub sources: &'a [PathBuf],
    /// Extra include directories (e.g. `sdk/c`).
    pub include: &'a [PathBuf],
    /// The component to write.
    pub out: &'a Path,
    /// The C compiler.
    pub clang: &'a str,
    /// Keep the generated bindings here (for editors); default: a temporary directory.
    pub bindings: Option<&'a Path>,
}

/// Build, check the world, write `out`.
pub fn build_c(req: &CBuild<'_>) -> anyhow::Result<ExitCode> {
    let scratch = Scratch::new()?;
    let gen_dir = req
        .bindings
        .map_or_else(|| scratch.0.join("gen"), Path::to_path_buf);
    std::fs::create_dir_all(&gen_dir)?;
    let generated = bindings(req.wit, req.world, &gen_dir)?;
    let core = scratch.0.join("policy.core.wasm");
    let mut clang = std::process::Command::new(req.clang);
    clang
        .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2"])
        .args(["-Wall", "-Werror", "-Wl,--strip-debug"])
        // The SDK's portcullis.c includes the bindings of whichever world is built.
        .arg(format!(
            "-DPC_BINDINGS=\"{}.h\"",
            req.world.replace('-', "_")
        ))
        .arg("-I")
        .arg(&gen_dir);
    for dir in req.include {
        clang.arg("-I").arg(dir);
    }
    clang
        .args(req.sources)
        .args(&generated)
        .arg("-o")
        .arg(&core);
    let status = clang.status().with_context(|| {
        format!(
            "cannot run {} (install clang, lld and wasi-libc)",
            req.clang
        )
    })?;
    if !status.success() {
        bail!("{} failed ({status})", req.clang);
    }
    let module = std::fs::read(&core)?;
    let component = componentize(&module)?;
    let world = portcullis::artifact::component::implemented_world(&component)
        .map_err(anyhow::Error::msg)?;
    let wanted = format!("portcullis:policy/{}", req.world);
    if !portcullis::artifact::component::world_matches(&wanted, &world) {
        bail!("the component implements {world}, not {wanted}");
    }
    portcullis::releases::write_atomically(req.out, &component)
        .with_context(|| format!("cannot write {}", req.out.display()))?;
    eprintln!(
        "built {} ({} bytes, implements {world})",
        req.out.display(),
        component.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Generate the C bindings of `world` into `dir`; the files to compile and link.
fn bindings(wit: &Path, world: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the contract in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_core::WorldGenerator::generate(
        &mut *wit_bindgen_c::Opts::default().build(),
        &mut resolve,
        world,
        &mut files,
    )?;
    let mut compiled = Vec::new();
    for (name, bytes) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        if name.ends_with(".c") || name.ends_with(".o") {
            compiled.push(path);
        }
    }
    Ok(compiled)
}

/// The component for a core module. The preview1 adapter is offered; wit-component
/// uses it only if the module imports preview1.
fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME as ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)?
        .encode()
}

/// A temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-build-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
