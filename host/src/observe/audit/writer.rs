//! Appending to the audit log: one writer thread owns the file; requests hand it
//! records and wait until they are as durable as configured.
//!
//! Records that arrive together share one write and one fsync (group commit), so
//! `durability = "every-record"` costs one fsync per batch, not per request.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::chain::{self, GENESIS, line_hash};
use super::{ACTIVE_FILE, AuditSection, Durability};
use crate::artifact::keys;
use crate::observe::timestamp;

/// Why the audit log cannot be opened or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("audit log {path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint key could not be read or created.
    #[error("audit checkpoint key: {0}")]
    Key(String),
    /// An earlier write failed (the writer stops at the first failure: the chain on
    /// disk may end in a partial record), or the log was closed.
    #[error("the audit log is unavailable: {0}")]
    Unavailable(String),
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

type Ack = oneshot::Sender<Result<u64, AuditError>>;

enum Command {
    Append {
        kind: &'static str,
        body: String,
        ack: Option<Ack>,
    },
    Close(mpsc::SyncSender<Result<(), AuditError>>),
}

/// An open audit log. Appends go to a dedicated writer thread.
pub struct AuditLog {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    key_id: String,
    dir: PathBuf,
}

impl AuditLog {
    /// Open (or create) the log in `dir`, signing checkpoints with the key at
    /// `key_path` (created with its `.pub` when missing). An existing log is continued:
    /// the first new record is a `resume` that says how the previous run ended.
    pub fn open(
        settings: &AuditSection,
        dir: &Path,
        key_path: &Path,
    ) -> Result<AuditLog, AuditError> {
        let key = load_or_create_key(key_path)?;
        let key_id = keys::key_id(&key.verifying_key());
        crate::releases::create_private_dir(dir).map_err(|e| io_error(dir, e))?;
        let writer = Writer::start(settings.clone(), dir, key, key_id.clone())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("portcullis-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io_error(dir, e))?;
        Ok(AuditLog {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            key_id,
            dir: dir.to_path_buf(),
        })
    }

    /// The checkpoint key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append a record of type `kind` (a JSON object) and wait until it is written
    /// (and fsync'd, with `every-record`). Returns its sequence number.
    pub async fn append(
        &self,
        kind: &'static str,
        record: &impl Serialize,
    ) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.send(kind, record, Some(ack))?;
        done.await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("the writer stopped".into())))
    }

    /// Append a record without waiting (alerts and lifecycle events); failures are
    /// logged by the writer.
    pub fn append_detached(&self, kind: &'static str, record: &impl Serialize) {
        if let Err(e) = self.send(kind, record, None) {
            tracing::error!(alert = true, "cannot append a {kind} record: {e}");
        }
    }

    fn send(
        &self,
        kind: &'static str,
        record: &impl Serialize,
        ack: Option<Ack>,
    ) -> Result<(), AuditError> {
        let body = serde_json::to_string(record)
            .map_err(|e| AuditError::Unavailable(format!("cannot serialize the record: {e}")))?;
        if !body.starts_with('{') {
            return Err(AuditError::Unavailable(
                "a record must be a JSON object".into(),
            ));
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref()
            .ok_or_else(|| AuditError::Unavailable("the log is closed".into()))?
            .send(Command::Append { kind, body, ack })
            .map_err(|_| AuditError::Unavailable("the writer stopped".into()))
    }

    /// Write the closing record and checkpoint and stop the writer. Later appends
    /// fail. Closing twice is harmless.
    pub fn close(&self) -> Result<(), AuditError> {
        let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        let (done_tx, done) = mpsc::sync_channel(1);
        let result = match tx.send(Command::Close(done_tx)) {
            Ok(()) => done
                .recv()
                .unwrap_or_else(|_| Err(AuditError::Unavailable("the writer stopped".into()))),
            Err(_) => Err(AuditError::Unavailable("the writer stopped".into())),
        };
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(alert = true, "closing the audit log: {e}");
        }
    }
}

fn load_or_create_key(path: &Path) -> Result<SigningKey, AuditError> {
    if path.exists() {
        return keys::read_private(path).map_err(|e| AuditError::Key(e.to_string()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::releases::create_private_dir(parent).map_err(|e| io_error(parent, e))?;
    }
    let key = keys::generate();
    let id = keys::write_pair(&key, path).map_err(|e| AuditError::Key(e.to_string()))?;
    tracing::info!(
        "created the audit checkpoint key {id} at {} (public key: {})",
        path.display(),
        keys::public_path(path).display()
    );
    Ok(key)
}

/// The writer thread's state.
struct Writer {
    settings: AuditSection,
    dir: PathBuf,
    file: File,
    key: SigningKey,
    key_id: String,
    log_id: String,
    /// The next record's sequence number.
    seq: u64,
    /// Hash of the last line.
    prev: String,
    /// Lines composed but not yet written.
    pending: Vec<u8>,
    /// Sequence number of the active file's first line.
    file_first_seq: u64,
    file_bytes: u64,
    file_started: Instant,
    /// Records since the last checkpoint, and since when.
    uncovered: u64,
    uncovered_since: Option<Instant>,
    /// Written but not fsync'd since.
    unsynced_since: Option<Instant>,
    failed: Option<String>,
}

/// The end of an existing file: where the chain goes on.
struct Tail {
    log_id: String,
    first_seq: u64,
    last_seq: u64,
    last_hash: String,
    /// `closed`, `unclean` or `torn`.
    ended: &'static str,
    /// A last line without its newline (a write cut short).
    torn: Option<Vec<u8>>,
    bytes: u64,
}

impl Writer {
    fn start(
        settings: AuditSection,
        dir: &Path,
        key: SigningKey,
        key_id: String,
    ) -> Result<Writer, AuditError> {
        let active = dir.join(ACTIVE_FILE);
        let in_use = std::fs::metadata(&active).is_ok_and(|m| m.len() > 0);
        let (tail, continuing) = if in_use {
            (Some(read_tail(&active)?), false)
        } else {
            // A new log, or a crash between a rotation's rename and the new file's
            // first record: go on from the newest rotated file.
            match rotated_files(dir)?.last() {
                Some(last) => (Some(read_tail(last)?), true),
                None => (None, false),
            }
        };
        let file = if active.exists() {
            File::options()
                .append(true)
                .open(&active)
                .map_err(|e| io_error(&active, e))?
        } else {
            create_file(&active)?
        };
        let mut writer = Writer {
            log_id: String::new(),
            seq: 0,
            prev: GENESIS.into(),
            pending: Vec::new(),
            file_first_seq: 0,
            file_bytes: 0,
            file_started: Instant::now(),
            uncovered: 0,
            uncovered_since: None,
            unsynced_since: None,
            failed: None,
            settings,
            dir: dir.to_path_buf(),
            file,
            key,
            key_id,
        };
        let (kind, body) = match tail {
            None => {
                writer.log_id = random_id();
                ("open", json!({}))
            }
            Some(tail) => writer.resume_after(tail, continuing),
        };
        writer.push_event(kind, body);
        writer.flush(true).map_err(|e| io_error(&active, e))?;
        sync_dir(dir).map_err(|e| io_error(dir, e))?;
        Ok(writer)
    }

    /// Continue the chain from `tail` (in the active file, or in the newest rotated
    /// one when `continuing`); returns the first record to write.
    fn resume_after(&mut self, tail: Tail, continuing: bool) -> (&'static str, Value) {
        self.log_id = tail.log_id;
        self.seq = tail.last_seq + 1;
        self.prev = tail.last_hash;
        if continuing {
            self.file_first_seq = self.seq;
            return ("continue", json!({ "from": rotated_name(tail.first_seq) }));
        }
        self.file_first_seq = tail.first_seq;
        self.file_bytes = tail.bytes;
        let mut body = json!({ "previous_end": tail.ended });
        if let Some(torn) = tail.torn {
            tracing::warn!(
                "the audit log ends with a partial record of {} bytes (the writer was killed \
                 mid-write); it stays in the file and the resume record names it",
                torn.len()
            );
            // Terminate the torn line so the chain goes on from a line boundary.
            self.pending.push(b'\n');
            body["torn_bytes"] = Value::from(torn.len());
            body["torn_sha256"] = Value::from(line_hash(&torn));
        } else if tail.ended == "unclean" {
            tracing::warn!("the previous run did not close the audit log (killed or crashed)");
        }
        ("resume", body)
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            let mut batch = Vec::new();
            let first = match self.next_deadline() {
                Some(wait) => rx.recv_timeout(wait),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(command) => batch.push(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.close() {
                        tracing::error!(alert = true, "closing the audit log: {e}");
                    }
                    return;
                }
            }
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let mut acks = Vec::new();
            let mut close = None;
            for command in batch {
                match command {
                    Command::Append { kind, body, ack } => {
                        if self.failed.is_none() {
                            let seq = self.push(kind, &body);
                            acks.push((ack, Ok(seq)));
                        } else {
                            acks.push((ack, Err(self.unavailable())));
                        }
                    }
                    Command::Close(done) => close = Some(done),
                }
            }
            let written = self.commit();
            for (ack, result) in acks {
                let result = result.and_then(|seq| written.clone().map(|()| seq));
                match ack {
                    Some(ack) => {
                        let _ = ack.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::error!(alert = true, "audit record lost: {e}");
                        }
                    }
                }
            }
            if let Some(done) = close {
                let _ = done.send(self.close());
                return;
            }
        }
    }

    /// Checkpoint when due, write, fsync when due, rotate when due.
    fn commit(&mut self) -> Result<(), AuditError> {
        if self.failed.is_some() {
            return Err(self.unavailable());
        }
        let due = self.uncovered >= self.settings.checkpoint_every
            || self
                .uncovered_since
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.settings.checkpoint_ms));
        if due {
            self.checkpoint();
        }
        let sync = match self.settings.durability {
            Durability::EveryRecord => !self.pending.is_empty(),
            Durability::Interval => self
                .unsynced_since
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.settings.interval_ms)),
        };
        let result = self.flush(sync).and_then(|()| self.rotate_if_due());
        result.map_err(|e| {
            let message = format!("{}: {e}", self.dir.join(ACTIVE_FILE).display());
            tracing::error!(
                alert = true,
                "audit log write failed, refusing further records: {message}"
            );
            self.failed = Some(message);
            self.unavailable()
        })
    }

    fn unavailable(&self) -> AuditError {
        AuditError::Unavailable(self.failed.clone().unwrap_or_else(|| "closed".into()))
    }

    /// When the loop must wake up without a command: a checkpoint or an fsync due.
    fn next_deadline(&self) -> Option<Duration> {
        let checkpoint = self.uncovered_since.map(|t| {
            Duration::from_millis(self.settings.checkpoint_ms).saturating_sub(t.elapsed())
        });
        let sync = self
            .unsynced_since
            .filter(|_| self.settings.durability == Durability::Interval)
            .map(|t| Duration::from_millis(self.settings.interval_ms).saturating_sub(t.elapsed()));
        checkpoint.into_iter().chain(sync).min()
    }

    /// Compose the next line; returns its sequence number.
    fn push(&mut self, kind: &str, body: &str) -> u64 {
        let line = chain::compose(self.seq, &self.prev, kind, body);
        self.prev = line_hash(line.as_bytes());
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.seq += 1;
        if kind != "checkpoint" {
            self.uncovered += 1;
            self.uncovered_since.get_or_insert_with(Instant::now);
        }
        self.seq - 1
    }

    /// A record of the log itself (open, resume, rotate, ...): with its time, log id
    /// and key id.
    fn push_event(&mut self, kind: &str, mut body: Value) {
        body["time"] = Value::from(timestamp());
        body["log_id"] = Value::from(self.log_id.clone());
        body["key_id"] = Value::from(self.key_id.clone());
        self.push(kind, &body.to_string());
    }

    fn checkpoint(&mut self) {
        let time = timestamp();
        let signature = chain::sign(&self.key, &self.log_id, self.seq, &self.prev, &time);
        let body = json!({
            "time": time,
            "log_id": self.log_id,
            "key_id": self.key_id,
            "covers": self.uncovered,
            "signature": signature,
        });
        self.push("checkpoint", &body.to_string());
        self.uncovered = 0;
        self.uncovered_since = None;
    }

    fn flush(&mut self, sync: bool) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.file_bytes += self.pending.len() as u64;
            self.pending.clear();
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        if sync && self.unsynced_since.is_some() {
            self.file.sync_data()?;
            self.unsynced_since = None;
        }
        Ok(())
    }

    fn rotate_if_due(&mut self) -> std::io::Result<()> {
        let by_size =
            self.settings.rotate_kb > 0 && self.file_bytes >= self.settings.rotate_kb << 10;
        let by_age = self.settings.rotate_hours > 0
            && self.file_started.elapsed()
                >= Duration::from_secs(self.settings.rotate_hours * 3600);
        if !(by_size || by_age) {
            return Ok(());
        }
        self.push_event(
            "rotate",
            json!({ "reason": if by_size { "size" } else { "age" } }),
        );
        self.checkpoint();
        self.flush(true)?;
        let name = rotated_name(self.file_first_seq);
        let active = self.dir.join(ACTIVE_FILE);
        std::fs::rename(&active, self.dir.join(&name))?;
        self.file = create_file(&active).map_err(std::io::Error::other)?;
        self.file_first_seq = self.seq;
        self.file_bytes = 0;
        self.file_started = Instant::now();
        self.push_event("continue", json!({ "from": name }));
        self.flush(true)?;
        sync_dir(&self.dir)?;
        tracing::info!("rotated the audit log to {name}");
        Ok(())
    }

    fn close(&mut self) -> Result<(), AuditError> {
        if self.failed.is_some() {
            return Err(self.unavailable());
        }
        self.push_event("close", json!({}));
        self.checkpoint();
        let result = self.flush(true);
        self.failed = Some("the log is closed".into());
        result.map_err(|e| io_error(&self.dir.join(ACTIVE_FILE), e))
    }
}

/// Name of a rotated file whose first record is `first_seq` (sorts in chain order).
pub(super) fn rotated_name(first_seq: u64) -> String {
    format!("audit.{first_seq:020}.jsonl")
}

/// Rotated files in `dir`, in chain order.
pub(super) fn rotated_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("audit.")?.strip_suffix(".jsonl"))
                .is_some_and(|seq| seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn create_file(path: &Path) -> Result<File, AuditError> {
    let mut options = File::options();
    options.append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| io_error(path, e))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// Where the chain in `path` ends. Refuses a file whose last complete line is not a
/// chain record: appending after it would hide the damage (`audit verify` says more).
fn read_tail(path: &Path) -> Result<Tail, AuditError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let unusable = |why: String| {
        io_error(
            path,
            format!(
                "{why}; not appending to it (run `portcullis audit verify`, then move the \
                 file aside to start a new log)"
            ),
        )
    };
    let (complete, torn) = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) if end + 1 < bytes.len() => (&bytes[..end], Some(bytes[end + 1..].to_vec())),
        Some(end) => (&bytes[..end], None),
        None if bytes.is_empty() => (&bytes[..0], None),
        None => (&bytes[..0], Some(bytes.clone())),
    };
    let lines: Vec<&[u8]> = if complete.is_empty() {
        Vec::new()
    } else {
        complete.split(|&b| b == b'\n').collect()
    };
    let parse = |line: &[u8], which: &str| -> Result<Value, AuditError> {
        serde_json::from_slice::<Value>(line)
            .ok()
            .filter(|v| v["seq"].is_u64())
            .ok_or_else(|| unusable(format!("its {which} complete line is not an audit record")))
    };
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err(unusable("it holds no complete record".into()));
    };
    let first_record = parse(first, "first")?;
    let last_record = parse(last, "last")?;
    let log_id = first_record["log_id"]
        .as_str()
        .ok_or_else(|| unusable("its first line carries no log_id".into()))?
        .to_string();
    let closed = last_record["type"] == "checkpoint"
        && lines.len() >= 2
        && serde_json::from_slice::<Value>(lines[lines.len() - 2])
            .is_ok_and(|v| v["type"] == "close" || v["type"] == "rotate");
    Ok(Tail {
        log_id,
        first_seq: first_record["seq"].as_u64().unwrap_or_default(),
        last_seq: last_record["seq"].as_u64().unwrap_or_default(),
        last_hash: line_hash(last),
        ended: match (&torn, closed) {
            (Some(_), _) => "torn",
            (None, true) => "closed",
            (None, false) => "unclean",
        },
        torn,
        bytes: bytes.len() as u64,
    })
}
