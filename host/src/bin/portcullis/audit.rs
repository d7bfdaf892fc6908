//! `portcullis audit`: checking the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use portcullis::config::PipelineConfig;
use portcullis::observe::audit::verify;
use portcullis::observe::report;
use portcullis::observe::{configured_public_key, read_public_key};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify an audit log: every record chains to the one before (across rotated
    /// files) and every checkpoint carries a valid signature of the host key.
    ///
    /// Exit status: 0 intact from its first record to a clean close; 1 broken (a
    /// record edited, deleted, inserted or reordered, a bad signature, spliced logs;
    /// the file and line are named); 3 intact so far but incomplete (the log is still
    /// open or its writer was killed, so the records after the last checkpoint are not
    /// yet signed and a cut there would not show; or earlier files are missing);
    /// 2 usage errors.
    ///
    /// Example: portcullis audit verify --config examples/portcullis.toml
    Verify {
        /// Take the audit directory and the public key from this configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Public key(s) of the host (`audit-key.pem.pub`); repeat for rotated keys.
        #[arg(long)]
        key: Vec<PathBuf>,
        /// Audit files or directories, in order (default: the configured directory).
        paths: Vec<PathBuf>,
    },
    /// Summarize an audit log for a period: requests by outcome, blocks by category,
    /// top clients by tokens, cost and blocks, tokens and cost per model, latency,
    /// policy error rates and the artifacts that ran, alerts. As text, JSON, or one
    /// self-contained HTML page with charts. Does not verify the chain (use `verify`).
    ///
    /// Example: portcullis audit report --config examples/portcullis.toml --format html --out report.html
    Report {
        /// Take the audit directory from this configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Records from this time on (RFC 3339, e.g. 2026-11-26T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<time::OffsetDateTime>,
        /// Records before this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        until: Option<time::OffsetDateTime>,
        /// text, json or html.
        #[arg(long, default_value = "text", value_parser = ["text", "json", "html"])]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Audit files or directories, in order (default: the configured directory).
        paths: Vec<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { config, key, paths } => verify_log(config, key, paths),
        AuditCommand::Report {
            config,
            since,
            until,
            format,
            out,
            paths,
        } => report(config, paths, since, until, &format, out),
    }
}

/// `paths`, or the configured audit directory when none is given.
fn log_paths(
    config: Option<&PipelineConfig>,
    mut paths: Vec<PathBuf>,
) -> anyhow::Result<Vec<PathBuf>> {
    if paths.is_empty()
        && let Some(config) = config
    {
        let dir = config
            .audit
            .dir
            .as_ref()
            .context("the configuration has no [audit] dir")?;
        paths.push(config.resolve(dir));
    }
    anyhow::ensure!(
        !paths.is_empty(),
        "name the audit files or directory, or give --config"
    );
    verify::files_in(&paths).map_err(anyhow::Error::msg)
}

fn report(
    config: Option<PathBuf>,
    paths: Vec<PathBuf>,
    since: Option<time::OffsetDateTime>,
    until: Option<time::OffsetDateTime>,
    format: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = config.map(|c| PipelineConfig::load(&c)).transpose()?;
    let files = log_paths(config.as_ref(), paths)?;
    let texts = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))
                .map(|t| (f.display().to_string(), t))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sources: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let summary = report::summarize(&sources, since, until);
    let rendered = match format {
        "json" => serde_json::to_string_pretty(&summary)? + "\n",
        "html" => summary.to_html(),
        _ => summary.to_text(),
    };
    match out {
        Some(path) => {
            std::fs::write(&path, rendered)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{rendered}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_log(
    config: Option<PathBuf>,
    mut keys: Vec<PathBuf>,
    paths: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = config.map(|c| PipelineConfig::load(&c)).transpose()?;
    if let Some(config) = &config {
        keys.extend(configured_public_key(config));
    }
    let files = log_paths(config.as_ref(), paths)?;
    anyhow::ensure!(
        !keys.is_empty(),
        "give the host's public key with --key (audit-key.pem.pub), or --config"
    );
    let keys = keys
        .iter()
        .map(|k| read_public_key(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    match verify::verify(&files, &keys) {
        Err(broken) => {
            println!("BROKEN: {broken}");
            Ok(ExitCode::from(1))
        }
        Ok(v) => {
            for note in &v.notes {
                println!("note: {note}");
            }
            let signed = match v.last_checkpoint {
                Some(seq) => format!("last signed checkpoint at seq {seq}"),
                None => "no signed checkpoint yet".into(),
            };
            println!(
                "{} records (seq {}..={}, {} requests) in {} file(s), {} checkpoints; {signed}",
                v.records, v.first_seq, v.last_seq, v.requests, v.files, v.checkpoints
            );
            if v.complete() {
                println!("OK: intact from the first record to a clean close, every record signed");
                return Ok(ExitCode::SUCCESS);
            }
            if !v.from_start {
                println!("INCOMPLETE: earlier files were not given or are missing");
            }
            if !v.closed {
                println!(
                    "INCOMPLETE: the log is still open or its writer was killed; {} record(s) \
                     after the last checkpoint are not signed yet (a cut there would not show)",
                    v.uncovered
                );
            }
            Ok(ExitCode::from(3))
        }
    }
}
