//! `portcullis build`: a policy's sources into a component, in any of the languages
//! the SDKs support, with that language's own toolchain:
//!
//! * Rust: `cargo build --release --target wasm32-wasip2` (the crate's own workspace).
//! * Python: componentize-py (`-p` the SDK and the source's directory).
//! * JavaScript: componentize-js, run from a directory above both the sources and the
//!   SDK (it resolves relative imports only below its working directory).
//! * C: the contract's C bindings are generated here (wit-bindgen-c 0.60, on the same
//!   wit-parser as wasmtime 48), clang compiles them with the SDK and the sources for
//!   wasm32-wasi as a reactor, and wit-component makes the component (with wasmtime 48's
//!   WASI preview1 reactor adapter when the module imports preview1, e.g. for stdio).
//!
//! Whatever the language, the result must implement the world asked for (the manifest's
//! `world` for a project), or nothing is written.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A policy's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the `portcullis-sdk` crate.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Js,
    /// C, with clang and wasi-libc.
    C,
}

impl Lang {
    /// The environment variable that may name this language's compiler.
    fn tool_variable(self) -> &'static str {
        match self {
            Lang::Rust => "CARGO",
            Lang::Python => "PORTCULLIS_COMPONENTIZE_PY",
            Lang::Js => "PORTCULLIS_COMPONENTIZE_JS",
            Lang::C => "PORTCULLIS_CLANG",
        }
    }
}

/// `portcullis build`'s arguments: a project (its `policy.toml` says everything), or
/// `--lang` and `--world` with the sources.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The policy's language; without it, the project's policy.toml [build] section
    /// gives the language, sources, SDK and output, and its `world` the world.
    #[arg(long, value_enum, requires = "world")]
    lang: Option<Lang>,
    /// With --lang: the world to implement (guardrail, output-filter, content-policy or
    /// tool-sandbox).
    #[arg(long, requires = "lang")]
    world: Option<String>,
    /// With --lang: the Portcullis SDK directory.
    #[arg(long, default_value = "sdk")]
    sdk: PathBuf,
    /// With --lang: the contract directory.
    #[arg(long, default_value = "wit")]
    wit: PathBuf,
    /// C: extra include directory (repeatable).
    #[arg(short = 'I', long = "include")]
    include: Vec<PathBuf>,
    /// The compiler to use (cargo, componentize-py, componentize-js's cli.js, clang);
    /// default: $CARGO, $PORTCULLIS_COMPONENTIZE_PY, $PORTCULLIS_COMPONENTIZE_JS or
    /// $PORTCULLIS_CLANG, else cargo, componentize-py, the SDK's componentize-js, clang.
    #[arg(long)]
    tool: Option<PathBuf>,
    /// C: keep the generated bindings (header and sources) in this directory.
    #[arg(long)]
    bindings: Option<PathBuf>,
    /// The component to write (required with --lang; a project's default is its
    /// [build] out).
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --lang: the sources (Rust: the crate directory; Python, JavaScript: the
    /// entry file; C: the .c files). Without: the project directory or its policy.toml
    /// (default: the current directory).
    sources: Vec<PathBuf>,
}

impl BuildArgs {
    /// The build these arguments ask for.
    pub fn into_build(self) -> anyhow::Result<Build> {
        let mut build = match (self.lang, self.world) {
            (Some(lang), Some(world)) => Build {
                lang,
                world,
                sources: self.sources,
                sdk: self.sdk,
                wit: self.wit,
                include: Vec::new(),
                tool: None,
                bindings: None,
                out: self.out.context("--out is required with --lang")?,
            },
            _ => {
                let project = match self.sources.as_slice() {
                    [] => PathBuf::from("."),
                    [one] => one.clone(),
                    _ => bail!("without --lang, give one project directory (or its policy.toml)"),
                };
                let manifest = if project.is_dir() {
                    project.join("policy.toml")
                } else {
                    project
                };
                Build::from_manifest(&manifest, self.out)?
            }
        };
        build.include.extend(self.include);
        build.tool = self.tool;
        build.bindings = self.bindings;
        Ok(build)
    }
}

/// What to build.
#[derive(Debug)]
pub struct Build {
    /// The language.
    pub lang: Lang,
    /// The world to implement (`guardrail`, `output-filter`, `tool-sandbox`, ...).
    pub world: String,
    /// Rust: the crate directory; Python: the entry module's file; JavaScript: the
    /// entry file; C: the source files.
    pub sources: Vec<PathBuf>,
    /// The Portcullis SDK directory (`sdk/`).
    pub sdk: PathBuf,
    /// The contract directory (`wit/`).
    pub wit: PathBuf,
    /// C: extra include directories.
    pub include: Vec<PathBuf>,
    /// The compiler to use instead of the language's default.
    pub tool: Option<PathBuf>,
    /// C: keep the generated bindings here (for editors).
    pub bindings: Option<PathBuf>,
    /// The component to write.
    pub out: PathBuf,
}

/// The `[build]` section of a project's `policy.toml` (paths relative to that file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildSection {
    lang: Lang,
    sources: Vec<PathBuf>,
    sdk: PathBuf,
    wit: PathBuf,
    out: PathBuf,
    #[serde(default)]
    include: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct ProjectFile {
    build: Option<BuildSection>,
}

impl Build {
    /// The build a project's manifest describes: its `[build]` section, and the world
    /// its (validated) manifest names. `out` overrides the section's.
    pub fn from_manifest(manifest: &Path, out: Option<PathBuf>) -> anyhow::Result<Build> {
        // One read: the signed claims (validated) and the build section.
        let text = portcullis::toml_file::read(manifest)?;
        let predicate = portcullis::artifact::manifest::parse(&text, manifest)?;
        let project: ProjectFile = toml::from_str(&text)
            .with_context(|| format!("{}: invalid [build] section", manifest.display()))?;
        let Some(section) = project.build else {
            bail!(
                "{} has no [build] section (lang, sources, sdk, wit, out): `portcullis new` \
                 writes one",
                manifest.display()
            );
        };
        let base = manifest.parent().unwrap_or(Path::new("."));
        let world = predicate
            .world
            .strip_prefix("portcullis:policy/")
            .map(|w| w.split_once('@').map_or(w, |(name, _)| name))
            .with_context(|| {
                format!(
                    "{}: world {} is not a portcullis:policy world",
                    manifest.display(),
                    predicate.world
                )
            })?;
        let rel = |p: &Path| base.join(p);
        Ok(Build {
            lang: section.lang,
            world: world.to_string(),
            sources: section.sources.iter().map(|p| rel(p)).collect(),
            sdk: rel(&section.sdk),
            wit: rel(&section.wit),
            include: section.include.iter().map(|p| rel(p)).collect(),
            tool: None,
            bindings: None,
            out: out.unwrap_or_else(|| rel(&section.out)),
        })
    }

    /// The compiler: `--tool`, else the language's environment variable, else
    /// `default` (a program on PATH, or for JavaScript the SDK's componentize-js).
    fn tool(&self, default: impl Into<OsString>) -> OsString {
        self.tool
            .as_ref()
            .map(|t| t.as_os_str().to_owned())
            .or_else(|| std::env::var_os(self.lang.tool_variable()).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.into())
    }

    fn only_source(&self) -> anyhow::Result<&Path> {
        match self.sources.as_slice() {
            [one] => Ok(one),
            _ => bail!(
                "{:?} builds take exactly one source (Rust: the crate directory; Python, \
                 JavaScript: the entry file), not {}",
                self.lang,
                self.sources.len()
            ),
        }
    }
}

/// Build, check the world, write `out`.
pub fn build(req: &Build) -> anyhow::Result<ExitCode> {
    let scratch = Scratch::new()?;
    let component = match req.lang {
        Lang::Rust => rust(req)?,
        Lang::Python => python(req, &scratch)?,
        Lang::Js => js(req, &scratch)?,
        Lang::C => c(req, &scratch)?,
    };
    let world = portcullis::artifact::component::implemented_world(&component)
        .map_err(anyhow::Error::msg)?;
    let wanted = format!("portcullis:policy/{}", req.world);
    if !portcullis::artifact::component::world_matches(&wanted, &world) {
        bail!("the component implements {world}, not {wanted}");
    }
    if let Some(dir) = req.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    portcullis::releases::write_atomically(&req.out, &component)
        .with_context(|| format!("cannot write {}", req.out.display()))?;
    eprintln!(
        "built {} ({} bytes, implements {world})",
        req.out.display(),
        component.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Run `command`, failing with `what` and the command's status.
fn run(mut command: Command, what: &str, install: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {what} ({install})"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn read_output(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("the toolchain wrote no {}", path.display()))
}

/// `cargo build` the crate; the component is the cdylib artifact cargo reports.
fn rust(req: &Build) -> anyhow::Result<Vec<u8>> {
    let dir = req.only_source()?;
    let manifest = dir.join("Cargo.toml");
    let mut cargo = Command::new(req.tool("cargo"));
    cargo
        // From the crate, so its own (or its checkout's) rust-toolchain.toml applies.
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(std::path::absolute(&manifest)?)
        .stdout(Stdio::piped());
    let output = cargo
        .spawn()
        .and_then(|child| child.wait_with_output())
        .context("cannot run cargo (install Rust with rustup)")?;
    if !output.status.success() {
        bail!(
            "cargo failed ({}); the wasm32-wasip2 target is installed with `rustup target add \
             wasm32-wasip2`",
            output.status
        );
    }
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"));
    match artifact {
        Some(path) => read_output(&path),
        None => bail!(
            "cargo built no .wasm from {}: is the crate a cdylib (`crate-type = [\"cdylib\"]`)?",
            manifest.display()
        ),
    }
}

/// componentize-py: the entry module, with its directory and the SDK on the path.
fn python(req: &Build, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
    let entry = req.only_source()?;
    let module = entry
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| entry.extension().is_some_and(|e| e == "py"))
        .with_context(|| format!("{} is not a Python module (.py)", entry.display()))?;
    let dir = entry
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = scratch.0.join("policy.wasm");
    let mut command = Command::new(req.tool("componentize-py"));
    command
        .arg("-d")
        .arg(&req.wit)
        .args(["-w", &req.world, "componentize", "-p"])
        .arg(req.sdk.join("python"))
        .arg("-p")
        .arg(dir)
        .arg(module)
        .arg("-o")
        .arg(&out);
    run(
        command,
        "componentize-py",
        "pip install componentize-py==0.25.1, or set PORTCULLIS_COMPONENTIZE_PY",
    )?;
    read_output(&out)
}

/// componentize-js (from the SDK's node_modules unless given), run from the deepest
/// directory above both the entry file and the SDK.
fn js(req: &Build, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
    // Canonical, so `..` in a project's relative SDK path cannot hide the real
    // common ancestor.
    let canonical =
        |p: &Path| std::fs::canonicalize(p).with_context(|| format!("cannot find {}", p.display()));
    let entry = canonical(req.only_source()?)?;
    let sdk = canonical(&req.sdk)?;
    let cli = PathBuf::from(
        req.tool(sdk.join("js/node_modules/@bytecodealliance/componentize-js/src/cli.js")),
    );
    if !cli.exists() {
        bail!(
            "componentize-js is not installed ({} is missing): run `npm ci --prefix {}`, or \
             set PORTCULLIS_COMPONENTIZE_JS",
            cli.display(),
            sdk.join("js").display()
        );
    }
    let out = scratch.0.join("policy.wasm");
    let mut command = Command::new("node");
    command
        .current_dir(common_ancestor(&entry, &sdk))
        .arg(&cli)
        .arg(&entry)
        .arg("--wit")
        .arg(canonical(&req.wit)?)
        .args(["--world-name", &req.world])
        // The host grants policies no WASI; leave out the interfaces JS would import.
        .args(["-d", "stdio", "random", "clocks", "http", "fetch-event"])
        .arg("-o")
        .arg(&out);
    run(command, "componentize-js", "install node (20 or newer)")?;
    read_output(&out)
}

/// The deepest directory containing both `a` and `b` (absolute paths).
fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect()
}

/// clang on the sources, the SDK and the generated bindings; then wit-component.
fn c(req: &Build, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
    let gen_dir = req
        .bindings
        .clone()
        .unwrap_or_else(|| scratch.0.join("gen"));
    std::fs::create_dir_all(&gen_dir)?;
    let generated = c_bindings(&req.wit, &req.world, &gen_dir)?;
    let core = scratch.0.join("policy.core.wasm");
    let sdk = req.sdk.join("c");
    let mut clang = Command::new(req.tool("clang"));
    clang
        .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2"])
        .args(["-Wall", "-Werror", "-Wl,--strip-debug"])
        // The stack below the static data: an overflow traps instead of silently
        // overwriting globals.
        .arg("-Wl,--stack-first")
        // The SDK's portcullis.c includes the bindings of whichever world is built.
        .arg(format!(
            "-DPC_BINDINGS=\"{}.h\"",
            req.world.replace('-', "_")
        ))
        .arg("-I")
        .arg(&gen_dir)
        .arg("-I")
        .arg(&sdk);
    for dir in &req.include {
        clang.arg("-I").arg(dir);
    }
    // The SDK's source is always linked (listing it among the sources too is harmless).
    let sdk_source = sdk.join("portcullis.c");
    let same =
        |p: &PathBuf| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&sdk_source).ok();
    clang
        .args(req.sources.iter().filter(|p| !same(p)))
        .arg(&sdk_source)
        .args(&generated)
        .arg("-o")
        .arg(&core);
    run(clang, "clang", "install clang, lld and wasi-libc")?;
    componentize(&std::fs::read(&core)?)
}

/// Generate the C bindings of `world` into `dir`; the files to compile and link.
fn c_bindings(wit: &Path, world: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
