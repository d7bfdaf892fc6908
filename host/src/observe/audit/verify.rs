//! Checking an audit log (`portcullis audit verify`): the chain from line to line and
//! file to file, and every checkpoint's signature.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::ACTIVE_FILE;
use super::chain::{self, GENESIS, line_hash};
use crate::artifact::keys;

/// A log that verified: what it holds and how far its signatures reach.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files checked.
    pub files: usize,
    /// Chain records (every line).
    pub records: u64,
    /// `request` records.
    pub requests: u64,
    /// Signed checkpoints.
    pub checkpoints: u64,
    /// First and last sequence numbers.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Sequence number of the last checkpoint.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint: intact as far as the chain shows, but not
    /// yet signed (they could be cut off without a trace).
    pub uncovered: u64,
    /// The log starts at its first record (`open`); false when earlier files are
    /// missing.
    pub from_start: bool,
    /// The log ends with a clean close and its checkpoint.
    pub closed: bool,
    /// Restarts, acknowledged partial records, a partial last record.
    pub notes: Vec<String>,
}

impl Verified {
    /// Intact, from the first record to a clean close, with nothing unsigned.
    pub fn complete(&self) -> bool {
        self.from_start && self.closed && self.uncovered == 0
    }
}

/// Where and why verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number (0: the file itself).
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// The files of the logs named by `paths`, in chain order: a directory stands for its
/// rotated files then `audit.jsonl`; files are taken as given.
pub fn files_in(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let rotated = super::writer::rotated_files(path).map_err(|e| e.to_string())?;
            files.extend(rotated);
            let active = path.join(ACTIVE_FILE);
            if active.exists() {
                files.push(active);
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    if files.is_empty() {
        return Err("no audit files found".into());
    }
    Ok(files)
}

/// Verify `files` (in chain order) against the host's public `keys`.
pub fn verify(files: &[PathBuf], keys: &[VerifyingKey]) -> Result<Verified, Broken> {
    let mut walk = Walk {
        keys: keys.iter().map(|k| (keys::key_id(k), *k)).collect(),
        ..Walk::default()
    };
    for (index, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).map_err(|e| Broken {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        walk.file(file, &bytes, index == 0, index + 1 == files.len())?;
    }
    walk.result.files = files.len();
    Ok(walk.result)
}

#[derive(Default)]
struct Walk {
    keys: Vec<(String, VerifyingKey)>,
    result: Verified,
    /// The next sequence number and the last line's hash.
    next: Option<(u64, String)>,
    log_id: Option<String>,
    /// A line that is not a record: acceptable only when the next record is a
    /// `resume` that names it (a write cut short by a crash).
    torn: Option<(usize, String, usize)>,
    /// The last record's type.
    last_kind: String,
}

impl Walk {
    fn file(&mut self, file: &Path, bytes: &[u8], first: bool, last: bool) -> Result<(), Broken> {
        let broken = |line: usize, reason: String| Broken {
            file: file.to_path_buf(),
            line,
            reason,
        };
        let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let lines: Vec<&[u8]> = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').collect()
        };
        if lines.is_empty() {
            return Err(broken(0, "the file is empty".into()));
        }
        for (i, line) in lines.iter().enumerate() {
            let number = i + 1;
            let Some(record) = parse(line) else {
                if last && unterminated && i + 1 == lines.len() {
                    self.result.notes.push(format!(
                        "{}:{number}: ends with a partial record of {} bytes (the writer was \
                         killed mid-write; that request was never answered)",
                        file.display(),
                        line.len()
                    ));
                    return Ok(());
                }
                if self.torn.is_some() {
                    return Err(broken(number, "not an audit record".into()));
                }
                self.torn = Some((number, line_hash(line), line.len()));
                continue;
            };
            if i == 0 && !first && record.kind != "continue" {
                return Err(broken(
                    number,
                    format!(
                        "a rotated log's next file must start with a continue record, not {}",
                        record.kind
                    ),
                ));
            }
            self.record(file, number, line, &record)
                .map_err(|r| broken(number, r))?;
        }
        if let Some((number, _, _)) = self.torn.take() {
            return Err(broken(
                number,
                "not an audit record (edited, or corrupted), and no resume record accounts \
                 for it"
                    .into(),
            ));
        }
        Ok(())
    }

    fn record(
        &mut self,
        file: &Path,
        number: usize,
        line: &[u8],
        r: &Record,
    ) -> Result<(), String> {
        if let Some((torn_line, hash, length)) = self.torn.take() {
            let named = r.kind == "resume"
                && r.value["torn_sha256"] == hash.as_str()
                && r.value["torn_bytes"].as_u64() == Some(length as u64);
            if !named {
                return Err(format!(
                    "line {torn_line} is not an audit record (edited, or corrupted), and this \
                     record does not account for it as a write cut short"
                ));
            }
            self.result.notes.push(format!(
                "{}:{torn_line}: a partial record of {length} bytes (the writer was killed \
                 mid-write), acknowledged by the resume record after it",
                file.display()
            ));
        }
        match &self.next {
            None => self.start(file, r)?,
            Some((seq, prev)) => {
                if r.seq != *seq {
                    return Err(format!(
                        "seq {} where {seq} was expected: records were deleted, inserted or \
                         reordered",
                        r.seq
                    ));
                }
                if r.prev != *prev {
                    return Err(format!(
                        "does not chain to the record before it (seq {}): that record was \
                         changed after it was written, or this one was moved",
                        seq - 1
                    ));
                }
            }
        }
        self.check_log_id(r)?;
        match r.kind.as_str() {
            "checkpoint" => {
                self.check_signature(r)?;
                self.result.checkpoints += 1;
                self.result.last_checkpoint = Some(r.seq);
                self.result.uncovered = 0;
            }
            "open" if r.seq != 0 => return Err("an open record in the middle of a log".into()),
            "resume" => {
                let ended = r.value["previous_end"].as_str().unwrap_or("unknown");
                if ended != "closed" {
                    self.result.notes.push(format!(
                        "{}:{number}: restarted after an {ended} end (seq {})",
                        file.display(),
                        r.seq
                    ));
                }
                self.result.uncovered += 1;
            }
            "request" => {
                self.result.requests += 1;
                self.result.uncovered += 1;
            }
            _ => self.result.uncovered += 1,
        }
        self.result.records += 1;
        self.result.last_seq = r.seq;
        self.next = Some((r.seq + 1, line_hash(line)));
        self.result.closed = r.kind == "checkpoint" && self.last_kind == "close";
        self.last_kind.clone_from(&r.kind);
        Ok(())
    }

    /// The first record seen: the log's `open`, or a `continue` when earlier files
    /// are not given.
    fn start(&mut self, file: &Path, r: &Record) -> Result<(), String> {
        self.result.first_seq = r.seq;
        match r.kind.as_str() {
            "open" if r.seq == 0 && r.prev == GENESIS => {
                self.result.from_start = true;
                Ok(())
            }
            "continue" => {
                self.result.notes.push(format!(
                    "{}: starts at seq {} (continuing {}); earlier files were not given, so \
                     the link to them is not checked",
                    file.display(),
                    r.seq,
                    r.value["from"].as_str().unwrap_or("an earlier file")
                ));
                Ok(())
            }
            _ => Err(format!(
                "a log must start with its open record (seq 0) or a continue record, not {} \
                 (seq {}): the beginning was removed",
                r.kind, r.seq
            )),
        }
    }

    fn check_log_id(&mut self, r: &Record) -> Result<(), String> {
        let Some(id) = r.value["log_id"].as_str() else {
            return match r.kind.as_str() {
                "open" | "continue" | "resume" | "checkpoint" => {
                    Err(format!("a {} record without log_id", r.kind))
                }
                _ => Ok(()),
            };
        };
        match &self.log_id {
            Some(known) if known != id => Err(format!(
                "belongs to log {id}, not {known}: records from another log were spliced in"
            )),
            Some(_) => Ok(()),
            None => {
                self.log_id = Some(id.to_string());
                Ok(())
            }
        }
    }

    fn check_signature(&self, r: &Record) -> Result<(), String> {
        let key_id = r.value["key_id"].as_str().unwrap_or_default();
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == key_id) else {
            return Err(format!(
                "checkpoint signed by key {key_id}, which is not among the given public keys"
            ));
        };
        let ok = chain::verify(
            key,
            r.value["signature"].as_str().unwrap_or_default(),
            self.log_id.as_deref().unwrap_or_default(),
            r.seq,
            &r.prev,
            r.value["time"].as_str().unwrap_or_default(),
        );
        if ok {
            Ok(())
        } else {
            Err(
                "the checkpoint's signature does not verify: it or the records before it were \
                 changed"
                    .into(),
            )
        }
    }
}

struct Record {
    seq: u64,
    prev: String,
    kind: String,
    value: Value,
}

fn parse(line: &[u8]) -> Option<Record> {
    let value: Value = serde_json::from_slice(line).ok()?;
    Some(Record {
        seq: value["seq"].as_u64()?,
        prev: value["prev"].as_str()?.to_string(),
        kind: value["type"].as_str()?.to_string(),
        value,
    })
}
