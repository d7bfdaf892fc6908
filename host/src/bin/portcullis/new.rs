//! `portcullis new`: scaffold a policy project in any supported language: the source
//! (a small working policy for the chosen world), its manifest with a `[build]`
//! section for `portcullis build`, fixtures that every language's template passes, a
//! development host configuration, and a README with the commands.
//!
//! Projects refer to the SDK and the contract of a Portcullis checkout by relative
//! paths (written into `policy.toml`, and for Rust `Cargo.toml`).

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::build::Lang;

/// `portcullis new`'s arguments.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The policy's language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The world the policy implements.
    #[arg(long, value_enum, default_value = "guardrail")]
    world: World,
    /// The Portcullis checkout whose sdk/ and wit/ the project uses (default: the
    /// nearest directory above the project that has both).
    #[arg(long)]
    portcullis: Option<PathBuf>,
    /// The project directory to create; its name is the policy's name.
    path: PathBuf,
}

/// The worlds there are templates for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum World {
    /// Checks incoming chat requests.
    Guardrail,
    /// Checks or rewrites model responses, complete or streamed.
    OutputFilter,
    /// Authorizes the tools offered to the model and its tool calls.
    ToolSandbox,
}

impl World {
    fn name(self) -> &'static str {
        match self {
            World::Guardrail => "guardrail",
            World::OutputFilter => "output-filter",
            World::ToolSandbox => "tool-sandbox",
        }
    }

    /// The pipeline stage that runs this world.
    fn stage(self) -> &'static str {
        match self {
            World::Guardrail => "input",
            World::OutputFilter => "output",
            World::ToolSandbox => "tool",
        }
    }
}

/// Every template, by its path below `host/templates/`, compiled into the binary.
macro_rules! templates {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../templates/", $path)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "policy.toml",
    "portcullis.toml",
    "README.md",
    "fixtures/guardrail.jsonl",
    "fixtures/output-filter.jsonl",
    "fixtures/tool-sandbox.jsonl",
    "rust/Cargo.toml",
    "rust/guardrail.rs",
    "rust/output-filter.rs",
    "rust/tool-sandbox.rs",
    "python/guardrail.py",
    "python/output-filter.py",
    "python/tool-sandbox.py",
    "js/guardrail.js",
    "js/output-filter.js",
    "js/tool-sandbox.js",
    "c/guardrail.c",
    "c/output-filter.c",
    "c/tool-sandbox.c",
];

fn template(path: &str) -> &'static str {
    TEMPLATES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| unreachable!("no template {path}"))
}

/// The project's files for `lang` and `world`: (path in the project, template).
fn files(lang: Lang, world: World) -> Vec<(&'static str, &'static str)> {
    let w = world.name();
    let mut files = vec![
        ("policy.toml", template("policy.toml")),
        ("portcullis.toml", template("portcullis.toml")),
        ("README.md", template("README.md")),
        (
            "fixtures/cases.jsonl",
            template(&format!("fixtures/{w}.jsonl")),
        ),
        (".gitignore", "/build/\n/dev/\n/target/\n__pycache__/\n"),
    ];
    files.extend(match lang {
        Lang::Rust => vec![
            ("Cargo.toml", template("rust/Cargo.toml")),
            ("src/lib.rs", template(&format!("rust/{w}.rs"))),
        ],
        Lang::Python => vec![("app.py", template(&format!("python/{w}.py")))],
        Lang::Js => vec![("policy.js", template(&format!("js/{w}.js")))],
        Lang::C => vec![("policy.c", template(&format!("c/{w}.c")))],
    });
    files
}

/// What differs per language in the manifest and the README.
struct Profile {
    language: &'static str,
    /// `[build] sources`.
    sources: &'static str,
    /// The file the README points at.
    source: &'static str,
    toolchain: &'static str,
    /// `[limits]`: fuel, memory (MiB), deadline (ms). Interpreters start a runtime per
    /// evaluation and need far more than compiled languages.
    limits: (u64, u32, u32),
}

fn profile(lang: Lang) -> Profile {
    match lang {
        Lang::Rust => Profile {
            language: "Rust",
            sources: "\".\"",
            source: "src/lib.rs",
            toolchain: "Rust with the wasm32-wasip2 target (`rustup target add wasm32-wasip2`); \
                        `cargo test` runs the fixtures natively too.",
            limits: (100_000_000, 32, 50),
        },
        Lang::Python => Profile {
            language: "Python",
            sources: "\"app.py\"",
            source: "app.py",
            toolchain: "componentize-py 0.25.1 (`pip install componentize-py==0.25.1`; set \
                        PORTCULLIS_COMPONENTIZE_PY when it is not on PATH). The SDK's helpers: \
                        `sdk/python/README.md`.",
            limits: (1_000_000_000, 64, 200),
        },
        Lang::Js => Profile {
            language: "JavaScript",
            sources: "\"policy.js\"",
            source: "policy.js",
            toolchain: "node 20+ and componentize-js, installed in the SDK by `npm ci --prefix \
                        <sdk>/js` (or set PORTCULLIS_COMPONENTIZE_JS to its cli.js). The SDK's \
                        helpers: `sdk/js/README.md`.",
            limits: (1_000_000_000, 64, 200),
        },
        Lang::C => Profile {
            language: "C",
            sources: "\"policy.c\"",
            source: "policy.c",
            toolchain: "clang with the wasm32 target, lld and wasi-libc (Debian: clang lld \
                        wasi-libc libclang-rt-14-dev-wasm32; set PORTCULLIS_CLANG to choose the \
                        compiler). The SDK's helpers and ownership rules: `sdk/c/README.md`.",
            limits: (100_000_000, 32, 50),
        },
    }
}

/// Create the project.
pub fn new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let name = args
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the project path has no directory name")?;
    if !valid_name(name) {
        bail!(
            "{name:?} is not a policy name: use lowercase ASCII letters, digits and '-', \
             starting with a letter"
        );
    }
    if args.path.exists() {
        bail!(
            "{} already exists; choose a new directory",
            args.path.display()
        );
    }
    // Physical paths (symlinks resolved): the relative paths written into the project
    // are resolved by the OS, which follows `..` from where a directory really is.
    let physical = |dir: &Path| {
        std::fs::canonicalize(dir).with_context(|| format!("cannot find {}", dir.display()))
    };
    let absolute = std::path::absolute(&args.path)?;
    let parent = physical(
        absolute
            .parent()
            .context("the project has no parent directory")?,
    )?;
    let project = parent.join(name);
    let checkout = match &args.portcullis {
        Some(dir) => physical(dir)?,
        None => find_checkout(&parent)?,
    };
    for needed in ["sdk", "wit/policy.wit"] {
        if !checkout.join(needed).exists() {
            bail!(
                "{} is not a Portcullis checkout (no {needed})",
                checkout.display()
            );
        }
    }
    let sdk = relative(&project, &checkout.join("sdk"));
    let wit = relative(&project, &checkout.join("wit"));
    let profile = profile(args.lang);
    let (fuel, memory_mb, deadline_ms) = profile.limits;
    let today = time::OffsetDateTime::now_utc().date();
    let expires = today + time::Duration::days(90);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{world}}", args.world.name())
            .replace("{{lang}}", lang_name(args.lang))
            .replace("{{language}}", profile.language)
            .replace("{{sources}}", profile.sources)
            .replace("{{source}}", profile.source)
            .replace("{{toolchain}}", profile.toolchain)
            .replace("{{sdk_dir}}", &slashed(&sdk))
            .replace("{{wit_dir}}", &slashed(&wit))
            .replace("{{sdk}}", &slashed(&sdk))
            .replace("{{js_sdk}}", &slashed(&sdk.join("js/portcullis.js")))
            .replace("{{stages}}", &format!("\"{}\"", args.world.stage()))
            .replace("{{today}}", &today.to_string())
            .replace("{{expires}}", &expires.to_string())
            .replace("{{fuel}}", &grouped(fuel))
            .replace("{{memory_mb}}", &memory_mb.to_string())
            .replace("{{deadline_ms}}", &deadline_ms.to_string())
    };
    let files = files(args.lang, args.world);
    // Written into a sibling temporary directory first, so a failure leaves nothing.
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let written = (|| -> anyhow::Result<()> {
        for (path, template) in &files {
            let target = staging.join(path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&target, fill(template))
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        std::fs::rename(&staging, &project)
            .with_context(|| format!("cannot create {}", project.display()))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    println!(
        "created {} ({} {}, SDK {}); next:\n  cd {}\n  portcullis build && portcullis \
         dev-sign --manifests .. && portcullis test",
        args.path.display(),
        profile.language,
        args.world.name(),
        slashed(&sdk),
        args.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `n` with `_` between groups of three digits, as TOML allows (`200_000_000`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::C => "c",
    }
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The nearest directory at or above `dir` with `sdk/` and `wit/policy.wit`.
fn find_checkout(dir: &Path) -> anyhow::Result<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("sdk").is_dir() && d.join("wit/policy.wit").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no Portcullis checkout (sdk/ and wit/policy.wit) at or above {}: pass \
                 --portcullis DIR",
                dir.display()
            )
        })
}

/// `to` relative to the directory `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    path.extend(&to[common..]);
    path
}

/// A path as written into TOML and source files (forward slashes).
fn slashed(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative(Path::new("/a/b/policies/x"), Path::new("/a/b/sdk")),
            PathBuf::from("../../sdk")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b/sdk")),
            PathBuf::from("sdk")
        );
    }

    #[test]
    fn every_language_has_a_template_for_every_world() {
        use clap::ValueEnum as _;
        for lang in Lang::value_variants() {
            for world in World::value_variants() {
                let files = files(*lang, *world);
                assert!(files.iter().all(|(_, text)| !text.is_empty()));
            }
        }
    }

    #[test]
    fn fuel_is_grouped_by_thousands() {
        assert_eq!(grouped(1_000_000_000), "1_000_000_000");
        assert_eq!(grouped(100), "100");
        assert_eq!(grouped(1234), "1_234");
    }

    #[test]
    fn names_are_lowercase_kebab() {
        assert!(valid_name("my-guard2"));
        assert!(!valid_name("My-guard"));
        assert!(!valid_name("2guard"));
        assert!(!valid_name("my_guard"));
    }
}
