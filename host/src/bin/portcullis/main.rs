//! The `portcullis` command line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portcullis::config::{PipelineConfig, Stage};
use portcullis::lifecycle::PolicyHost;
use portcullis::pipeline::Pipeline;
use serde_json::{Value, json};

mod audit;
mod build;
mod dev;
mod new;
mod operate;
mod registry;
mod signing;

/// Portcullis: run signed WebAssembly policies around LLM traffic.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run requests or responses (JSON lines) through the pipeline and print one
    /// decision per line.
    ///
    /// Each input line is an OpenAI Chat Completions request (has "messages") or
    /// response (has "choices"), with an optional "id". A response line may carry the
    /// "tools" that were offered, so tool calls can be checked against their schemas.
    /// Denied requests still exit 0; only usage and configuration errors do not.
    ///
    /// Example: portcullis check --config examples/portcullis.toml examples/requests/input.jsonl
    Check {
        /// Pipeline configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Keep the policies current while reading: watch the configuration, trust
        /// store and policy files and hot-reload on change (useful with standard input).
        #[arg(long)]
        watch: bool,
        /// Run only this stage (default: every stage that applies to the line).
        #[arg(long, value_parser = parse_stage)]
        stage: Option<Stage>,
        /// JSON lines file, or - for standard input.
        #[arg(default_value = "-")]
        input: String,
    },
    /// Run the OpenAI-compatible gateway: every request and response goes through the
    /// policies, which hot-reload while it runs.
    ///
    /// Without [gateway.upstream] it answers with the embedded mock model (a
    /// deterministic stand-in, not a language model). Stops on Ctrl-C or SIGTERM,
    /// finishing the requests in flight.
    ///
    /// Example: portcullis serve --config examples/portcullis.toml
    Serve {
        /// Pipeline configuration (TOML).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Listen on this address instead of [gateway] listen.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Audit log tools: verify a log's hash chain and signed checkpoints.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Show the status a watching host last wrote (in its [lifecycle] dir): every
    /// policy version with its state, signers and last error, rollouts with their
    /// shadow comparison counters, and reload counters.
    ///
    /// Example: portcullis status --config examples/portcullis.toml
    Status {
        /// Pipeline configuration (TOML).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll a policy back: pin an archived release (default: the newest one older
    /// than the running version), or withdraw its rollout candidate.
    ///
    /// A host archives every release it activates in its [lifecycle] dir. The pinned
    /// release is verified again (every check but the sequence high-water mark: going
    /// back is the point) and activated by a watching host on its next reload, and
    /// stays across restarts until --release. With a [policies.candidate] configured
    /// and no --to, the candidate is withdrawn from the configuration instead. Every
    /// action is recorded in the lifecycle journal (events.jsonl).
    ///
    /// Example: portcullis rollback --config examples/portcullis.toml pii --reason "false positives"
    Rollback {
        /// Pipeline configuration (TOML).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// The archived release: a signed version, or a sha256: digest (prefix).
        #[arg(long)]
        to: Option<String>,
        /// Remove the policy's pin: the configured component runs again.
        #[arg(long, conflicts_with = "to")]
        release: bool,
        /// Why (recorded in the journal).
        #[arg(long, default_value = "")]
        reason: String,
        /// The policy's configured name.
        name: String,
    },
    /// Promote a policy's rollout candidate: its component and configuration become the
    /// policy's own in the configuration file, the candidate section goes, and a
    /// rollback pin of the policy is released. A watching host activates it (verified
    /// and self-tested like any release) on its next reload.
    ///
    /// Example: portcullis promote --config examples/portcullis.toml pii
    Promote {
        /// Pipeline configuration (TOML).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Why (recorded in the journal).
        #[arg(long, default_value = "")]
        reason: String,
        /// The policy's configured name.
        name: String,
    },
    /// Run every policy's fixtures against its compiled component; exit non-zero on any
    /// mismatch (the CI eval gate).
    ///
    /// Example: portcullis test --config examples/portcullis.toml
    Test {
        /// Pipeline configuration (TOML).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Generate an Ed25519 signing key: the private key (PKCS#8 PEM, mode 0600) at KEY
    /// and the public key (SPKI PEM) at KEY.pub; prints the key id. Never overwrites.
    ///
    /// Example: portcullis keygen --out keys/release.pem
    Keygen {
        /// Where to write the private key (the public key goes to <OUT>.pub).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a policy component: writes <POLICY>.sigstore.json, or adds this key's
    /// signature to an existing bundle for the same statement.
    ///
    /// The manifest (TOML) holds the signed claims: name, version, sequence, kind,
    /// world, capabilities, limits, not_before, expires, min_host_version.
    ///
    /// Example: portcullis sign --key keys/release.pem --manifest pii.toml target/wasm32-wasip2/policy/portcullis_policy_pii.wasm
    Sign {
        /// Private key (PKCS#8 PEM) from `portcullis keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Signing manifest (TOML).
        #[arg(long)]
        manifest: PathBuf,
        /// Replace an existing bundle that signs a different statement.
        #[arg(long)]
        force: bool,
        /// The policy component (.wasm).
        policy: PathBuf,
    },
    /// Verify a policy component against a trust store and print the verified
    /// statement (JSON); exit 1 with the failed check otherwise.
    ///
    /// Example: portcullis verify --trust trust.toml --state portcullis-state.json pii.wasm
    Verify {
        #[command(flatten)]
        trust: TrustArgs,
        /// The policy component (.wasm); its bundle is <POLICY>.sigstore.json.
        policy: PathBuf,
    },
    /// DEVELOPMENT ONLY: sign the configuration's policies with a local development
    /// key and write a trust store that trusts only that key.
    ///
    /// The key (created on first use) and the trust store go where the configuration's
    /// [trust] store points; each policy is signed with <MANIFESTS>/<name>/policy.toml
    /// and then verified as the host will at load. A trust store this command did not
    /// generate is never overwritten. Production: see the README's "Signing policies".
    ///
    /// Example: portcullis dev-sign --config examples/portcullis.toml
    DevSign {
        /// Pipeline configuration (TOML) naming the policies and the trust store.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Directory holding one <name>/policy.toml signing manifest per policy.
        #[arg(long, default_value = "policies")]
        manifests: PathBuf,
    },
    /// Push a signed policy to an OCI registry: the component (CNCF Wasm layout) and
    /// its signature bundle (<POLICY>.sigstore.json) as an OCI 1.1 referrer, plus the
    /// sha256-<hex> fallback tag when the registry has no Referrers API. Prints the
    /// reference by digest.
    ///
    /// Example: portcullis push pii.wasm registry.example.com/policies/pii:1.2.0
    Push {
        #[command(flatten)]
        registry: registry::RegistryArgs,
        /// The signed component (.wasm).
        policy: PathBuf,
        /// REGISTRY/REPOSITORY:TAG (oci:// optional).
        target: String,
    },
    /// Pull a policy from an OCI registry by digest, verify it against a trust store,
    /// and only then write <OUT>/<name>.wasm and its bundle (exit 1 and nothing
    /// written when it does not verify).
    ///
    /// Example: portcullis pull --trust trust.toml --out policies registry.example.com/policies/pii:1.2.0
    Pull {
        #[command(flatten)]
        registry: registry::RegistryArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        source: String,
    },
    /// Run the conformance kit on a policy component, whatever language it was written
    /// in, for every contract its world exports: empty, large and hostile inputs, UTF-8
    /// spans, streaming equal to whole responses, one authorization per tool and call,
    /// determinism, configuration errors. Exit 1 when a check fails.
    ///
    /// Example: portcullis conform --config '{"keywords":["ignore previous"]}' --trigger "ignore previous" guard.wasm
    Conform {
        /// The policy's configuration (JSON) for the checks.
        #[arg(long, default_value = "{}")]
        config: String,
        /// A text the policy must find something in (its request and response spans are
        /// checked; tool sandboxes ignore it).
        #[arg(long)]
        trigger: Option<String>,
        /// The component.
        policy: PathBuf,
    },
    /// Scaffold a policy project: a small working policy for WORLD in LANG, its
    /// manifest (with the [build] section `portcullis build` reads), fixtures, a
    /// development host configuration and a README with the next commands.
    ///
    /// Example: portcullis new --lang python --world tool-sandbox policies/my-sandbox
    New(new::NewArgs),
    /// Build a policy into a component with its language's toolchain (Rust, Python,
    /// JavaScript or C) and check it implements the world its manifest names (or
    /// --world); nothing is written otherwise.
    ///
    /// Examples: portcullis build my-guard   (a project made by `portcullis new`)
    ///           portcullis build --lang c --world guardrail --out guard.wasm guard.c
    Build(build::BuildArgs),
    /// Signed policy-set indexes (the exact digests a fleet must run).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Show a component's digest, size, exported contracts, imports and its bundle's
    /// claims (marked unverified unless --trust verifies them).
    ///
    /// Example: portcullis inspect --trust trust.toml pii.wasm
    Inspect {
        /// Verify the claims against this trust store.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// The policy component (.wasm).
        policy: PathBuf,
    },
}

/// What a policy is verified against.
#[derive(clap::Args)]
struct TrustArgs {
    /// Trust store (TOML).
    #[arg(long)]
    trust: PathBuf,
    /// Sequence high-water-mark file (JSON; created on first success). Without it,
    /// rollback is not checked.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Require the signed policy name to be this one.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Resolve each policy to its digest, sign the list with a short expiry and a
    /// sequence one above the published index's, and push it. Hosts configured with
    /// [registry] index run exactly these digests.
    ///
    /// Example: portcullis index publish --key ci.pem --name prod --policy pii=registry.example.com/policies/pii:1.2.0 registry.example.com/policies/sets:prod
    Publish {
        #[command(flatten)]
        registry: registry::RegistryArgs,
        /// Private key (PKCS#8 PEM); the trust store must scope it to the set name.
        #[arg(long)]
        key: PathBuf,
        /// The set's name (hosts follow one name).
        #[arg(long)]
        name: String,
        /// Sequence (default: the published index's + 1, or 1).
        #[arg(long)]
        sequence: Option<u64>,
        /// Hours until the index expires and must be re-signed.
        #[arg(long, default_value_t = 24)]
        expires_hours: u64,
        /// NAME=REFERENCE, once per policy (a candidate: NAME:candidate=REFERENCE).
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
        /// Where to push the index (REGISTRY/REPOSITORY:TAG).
        target: String,
    },
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    match s {
        "input" => Ok(Stage::Input),
        "tool" => Ok(Stage::Tool),
        "output" => Ok(Stage::Output),
        other => Err(format!(
            "unknown stage {other:?}: use input, tool or output"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` exports its spans when [telemetry] names a collector.
    let telemetry = match &cli.command {
        Command::Serve { config, .. } => PipelineConfig::load(config).ok().map(|c| c.telemetry),
        _ => None,
    };
    let provider = match telemetry
        .as_ref()
        .map(portcullis::observe::trace::otlp_provider)
    {
        None => None,
        Some(Ok(provider)) => provider,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(provider.as_ref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check {
                config,
                watch,
                stage,
                input,
            } => check(&config, watch, stage, &input).await,
            Command::Serve { config, listen } => serve(&config, listen).await,
            Command::Status { config, json } => operate::status(&config, json),
            Command::Audit { command } => audit::run(command),
            Command::Rollback {
                config,
                to,
                release,
                reason,
                name,
            } => operate::rollback(&operate::RollbackRequest {
                config: &config,
                name: &name,
                to: to.as_deref(),
                release,
                reason: &reason,
            }),
            Command::Promote {
                config,
                reason,
                name,
            } => operate::promote(&config, &name, &reason),
            Command::Test { config } => test(&config).await,
            Command::Keygen { out } => signing::keygen(&out),
            Command::Sign {
                key,
                manifest,
                force,
                policy,
            } => signing::sign(&key, &manifest, force, &policy),
            Command::Verify { trust, policy } => signing::verify(
                &trust.trust,
                trust.state.as_deref(),
                trust.name.as_deref(),
                &policy,
            ),
            Command::DevSign { config, manifests } => dev::dev_sign(&config, &manifests),
            Command::Inspect { trust, policy } => signing::inspect(trust.as_deref(), &policy),
            Command::Conform {
                config,
                trigger,
                policy,
            } => conform(&config, trigger.as_deref(), &policy).await,
            Command::New(args) => new::new(&args),
            Command::Build(args) => build::build(&args.into_build()?),
            Command::Push {
                registry,
                policy,
                target,
            } => registry::push(&registry, &policy, &target).await,
            Command::Pull {
                registry,
                trust,
                out,
                source,
            } => registry::pull(&registry, &trust, &source, &out).await,
            Command::Index {
                command:
                    IndexCommand::Publish {
                        registry,
                        key,
                        name,
                        sequence,
                        expires_hours,
                        policies,
                        target,
                    },
            } => {
                let request = registry::IndexRequest {
                    key: &key,
                    name: &name,
                    sequence,
                    expires_hours,
                    policies: &policies,
                    target: &target,
                };
                registry::publish_index(&registry, &request).await
            }
        }
    });
    drop(runtime);
    if let Some(provider) = provider
        && let Err(e) = provider.shutdown()
    {
        eprintln!("warning: exporting the last spans failed: {e}");
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Log lines to standard error (`RUST_LOG`, default `warn`) and, with a provider, the
/// gateway's spans to the collector.
fn init_tracing(provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        );
    let spans = provider.map(|p| {
        portcullis::observe::trace::layer(p).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("portcullis", tracing::Level::INFO),
        )
    });
    tracing_subscriber::registry().with(log).with(spans).init();
}

async fn serve(config: &Path, listen: Option<std::net::SocketAddr>) -> anyhow::Result<ExitCode> {
    let (host, _registry) = start_host(config).await?;
    let _watch = portcullis::watch::watch(host.clone())?;
    let gateway = portcullis::gateway::Gateway::new(host.clone()).map_err(anyhow::Error::msg)?;
    let settings = host.config().gateway;
    let address = listen.unwrap_or(settings.listen);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let upstream = match &settings.upstream {
        None => "the embedded mock model (no [gateway.upstream] configured)".to_string(),
        Some(u) => u.base_url.clone(),
    };
    eprintln!(
        "portcullis gateway on http://{} (policy set generation {}, {} policies; upstream: {upstream})",
        listener.local_addr()?,
        host.snapshot().generation(),
        host.snapshot().entries().len(),
    );
    if let Some(log) = gateway.observer().audit() {
        eprintln!(
            "audit log in {} (checkpoints signed by {})",
            log.dir().display(),
            log.key_id()
        );
    }
    portcullis::gateway::serve(Arc::new(gateway), listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn check(
    config: &Path,
    watch: bool,
    stage: Option<Stage>,
    input: &str,
) -> anyhow::Result<ExitCode> {
    let (host, _registry) = start_host(config).await?;
    let _watch = if watch {
        Some(portcullis::watch::watch(host.clone())?)
    } else {
        None
    };
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?,
        ))
    };
    let mut out = std::io::stdout().lock();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {input}"))?;
        if line.trim().is_empty() {
            continue;
        }
        // One snapshot per line: a reload never changes the set mid-decision.
        let result = check_line(&host.snapshot(), stage, n + 1, &line).await;
        let printed = result.unwrap_or_else(|e| json!({"line": n + 1, "error": e}));
        writeln!(out, "{printed}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The conformance kit on one component: a line per check, exit 1 on any failure.
async fn conform(config: &str, trigger: Option<&str>, policy: &Path) -> anyhow::Result<ExitCode> {
    let wasm =
        std::fs::read(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    let engine = portcullis::engine::Engine::new(&Default::default())?;
    let checks = portcullis::conformance::check(&engine, &wasm, config, trigger).await;
    for c in &checks {
        println!(
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    println!("{} passed, {failed} failed", checks.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Start the policy host for `config` (pulling its registry policies first).
async fn start_host(
    config: &Path,
) -> anyhow::Result<(
    Arc<PolicyHost>,
    Option<portcullis::registry::source::Poller>,
)> {
    let options = PipelineConfig::load(config)?.engine_options();
    let engine = portcullis::engine::Engine::new(&options)?;
    Ok(portcullis::registry::source::start_host(&engine, config).await?)
}

/// One input line to one decision line; `Err` is a per-line error message.
async fn check_line(
    pipeline: &Pipeline,
    stage: Option<Stage>,
    n: usize,
    line: &str,
) -> Result<Value, String> {
    let body: Value =
        serde_json::from_str(line).map_err(|e| format!("line {n}: invalid JSON: {e}"))?;
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("line-{n}"), str::to_string);
    portcullis::check::check_payload(pipeline, body, stage, &id, "cli")
        .await
        .map(|checked| checked.json)
        .map_err(|e| format!("line {n}: {e}"))
}

async fn test(config: &Path) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config)?;
    let engine = portcullis::engine::Engine::new(&config.engine_options())?;
    let pipeline = Pipeline::load_without_fixtures(&engine, &config).await?;
    let (mut passed, mut failed) = (0, 0);
    let versions = pipeline
        .entries()
        .iter()
        .flat_map(|e| std::iter::once(e).chain(e.candidate.as_ref()));
    for entry in versions {
        if entry.fixtures.is_none() {
            println!("{}: no fixtures configured (skipped)", entry.policy.name());
            continue;
        }
        let report = portcullis::fixtures::run(pipeline.engine(), entry)
            .await
            .map_err(|e| anyhow::anyhow!("policy {}: {e}", entry.policy.name()))?;
        println!(
            "{}: {}/{} fixtures passed ({})",
            report.policy,
            report.passed,
            report.passed + report.failures.len(),
            report.file.display()
        );
        for failure in &report.failures {
            println!("  FAIL {failure}");
        }
        passed += report.passed;
        failed += report.failures.len();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
