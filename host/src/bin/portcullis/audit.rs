//! `portcullis audit`: checking the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use portcullis::config::PipelineConfig;
use portcullis::observe::audit::verify;
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
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { config, key, paths } => verify_log(config, key, paths),
    }
}

fn verify_log(
    config: Option<PathBuf>,
    mut keys: Vec<PathBuf>,
    mut paths: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if let Some(path) = &config {
        let config = PipelineConfig::load(path)?;
        if paths.is_empty() {
            let dir = config
                .audit
                .dir
                .as_ref()
                .context("the configuration has no [audit] dir")?;
            paths.push(config.resolve(dir));
        }
        keys.extend(configured_public_key(&config));
    }
    anyhow::ensure!(
        !paths.is_empty(),
        "name the audit files or directory, or give --config"
    );
    anyhow::ensure!(
        !keys.is_empty(),
        "give the host's public key with --key (audit-key.pem.pub), or --config"
    );
    let keys = keys
        .iter()
        .map(|k| read_public_key(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let files = verify::files_in(&paths).map_err(anyhow::Error::msg)?;
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
