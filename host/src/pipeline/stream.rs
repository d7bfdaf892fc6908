//! The output stage over a streamed response: one [`OutputStream`] per choice, chaining
//! every output filter's streaming instance.
//!
//! Each chunk goes through the enforced filters in configuration order: what the first
//! releases (possibly redacted, possibly held back) is what the second sees, and what
//! the last releases may be sent. At the end of the stream each filter is finished in
//! turn, its held-back text flowing through the filters after it. Monitor-mode filters
//! see the text as received; their findings are recorded, their output is not used.
//!
//! Streams fail closed: a filter that denies, errors, times out or runs out of fuel
//! stops the stream whatever its `on_error` (the text it holds back cannot be recovered
//! without sending something unscanned). Shadow candidates do not run on streams.

use std::sync::Arc;

use crate::bindings::{Finding, RequestContext, StreamVerdict};
use crate::config::{Mode, Stage};
use crate::engine::{Outcome, Run};
use crate::policy::PolicyStream;
use crate::rollout::Role;

use super::{Entry, Pipeline, Reported, failure_finding, reported};

/// What the stream may do after a push or at the end.
#[derive(Debug)]
pub enum StreamStep {
    /// Send this text (may be empty: everything is held back for now).
    Emit(String),
    /// Stop the stream: the policy that stopped it and why.
    Stop {
        /// Policy name.
        policy: String,
        /// Its findings (or the failure).
        findings: Vec<Reported>,
    },
}

/// One choice's output stage, streaming.
pub struct OutputStream {
    filters: Vec<Filter>,
    /// Index reported in the findings' spans (the choice).
    choice: u32,
    findings: Vec<Reported>,
    stopped: bool,
}

struct Filter {
    entry: Arc<Entry>,
    stream: Option<PolicyStream>,
    /// The filter's runs added up: fuel, time, and the first failure.
    tally: Run<()>,
    /// This filter stopped the stream.
    denied: bool,
}

impl Pipeline {
    /// Open the output stage for one streamed choice of a response to the request in
    /// `context`. Opening fails (closed) when an enforced filter cannot start.
    pub async fn open_output_stream(
        &self,
        context: &RequestContext,
        choice: u32,
    ) -> Result<OutputStream, StreamStep> {
        let mut filters = Vec::new();
        for entry in self.stage(Stage::Output, context) {
            if matches!(entry.role, Role::Shadow(_)) {
                continue;
            }
            let opened = match &entry.deactivated {
                Some(reason) => Err(Outcome::Error(format!("policy deactivated: {reason}"))),
                None => entry.policy.open_stream(context).await.map_err(|run| {
                    run.result
                        .err()
                        .unwrap_or_else(|| Outcome::Error("the stream did not open".into()))
                }),
            };
            let mut tally = Run {
                result: Ok(()),
                fuel_used: 0,
                micros: 0,
                logs_dropped: 0,
            };
            let stream = match opened {
                Ok(stream) => Some(stream),
                Err(outcome) => {
                    tally.result = Err(outcome.clone());
                    let finding = failure_finding(&entry.policy, &outcome);
                    if entry.mode == Mode::Enforce {
                        let policy = entry.policy.name().to_string();
                        let findings =
                            vec![reported(&entry, Stage::Output, finding, None, None, true)];
                        return Err(StreamStep::Stop { policy, findings });
                    }
                    None
                }
            };
            filters.push(Filter {
                entry,
                stream,
                tally,
                denied: false,
            });
        }
        Ok(OutputStream {
            filters,
            choice,
            findings: Vec::new(),
            stopped: false,
        })
    }
}

impl OutputStream {
    /// Feed the next chunk of the choice's text.
    pub async fn push(&mut self, chunk: &str) -> StreamStep {
        let mut text = chunk.to_string();
        for i in 0..self.filters.len() {
            match self.feed(i, Some(text)).await {
                Ok(released) => text = released,
                Err(stop) => return stop,
            }
        }
        StreamStep::Emit(text)
    }

    /// The stream ended: release what the filters hold back.
    pub async fn finish(&mut self) -> StreamStep {
        let mut carry = String::new();
        for i in 0..self.filters.len() {
            if !carry.is_empty() {
                match self.feed(i, Some(carry)).await {
                    Ok(text) => carry = text,
                    Err(stop) => return stop,
                }
            }
            match self.feed(i, None).await {
                Ok(text) => carry.push_str(&text),
                Err(stop) => return stop,
            }
        }
        StreamStep::Emit(carry)
    }

    /// Every finding so far, enforced or not.
    pub fn findings(&self) -> &[Reported] {
        &self.findings
    }

    /// The stage's decision so far, for the record: every finding, and one run per
    /// filter with its runs added up. The verdict is `deny` when a filter stopped the
    /// stream, `modify` when an enforced filter reported findings (it redacted as the
    /// text went), else `allow`.
    pub fn decision(&self, generation: u64) -> super::Decision {
        let mut decision = super::Decision::new(generation);
        decision.findings = self.findings.clone();
        decision.verdict = if self.stopped {
            super::Action::Deny
        } else if self.findings.iter().any(|f| f.enforced) {
            super::Action::Modify
        } else {
            super::Action::Allow
        };
        decision.runs = self
            .filters
            .iter()
            .map(|f| {
                let verdict = match (&f.tally.result, f.denied) {
                    (Err(_), _) => None,
                    (Ok(()), true) => Some("deny"),
                    (Ok(()), false) => Some("allow"),
                };
                let target = format!("response[{}]", self.choice);
                super::record(&f.entry, Stage::Output, target, &f.tally, verdict)
            })
            .collect();
        decision
    }

    /// One filter: `Some(text)` pushes, `None` finishes. Returns what passes on.
    async fn feed(&mut self, i: usize, input: Option<String>) -> Result<String, StreamStep> {
        if self.stopped {
            return Err(StreamStep::Stop {
                policy: String::new(),
                findings: Vec::new(),
            });
        }
        let choice = self.choice;
        let filter = &mut self.filters[i];
        let enforce = filter.entry.mode == Mode::Enforce;
        let Some(stream) = filter.stream.as_mut() else {
            // A monitor filter that could not start: the text passes on.
            return Ok(input.unwrap_or_default());
        };
        let run: Run<StreamVerdict> = match &input {
            Some(text) => stream.push(text).await,
            None => stream.finish().await,
        };
        filter.tally.fuel_used += run.fuel_used;
        filter.tally.micros += run.micros;
        filter.tally.logs_dropped += run.logs_dropped;
        if let (Err(outcome), Ok(())) = (&run.result, &filter.tally.result) {
            filter.tally.result = Err(outcome.clone());
        }
        let entry = filter.entry.clone();
        let record = |findings: Vec<Finding>, enforced: bool| -> Vec<Reported> {
            findings
                .into_iter()
                .map(|f| {
                    let span = f.span.map(|s| super::SpanOut {
                        index: choice,
                        start: s.start,
                        end: s.end,
                    });
                    reported(&entry, Stage::Output, f, span, None, enforced)
                })
                .collect()
        };
        let (passed, stop) = match run.result {
            Ok(StreamVerdict::Emit(released)) => {
                let new = record(released.findings, enforce);
                self.findings.extend(new);
                (released.text, None)
            }
            Ok(StreamVerdict::Deny(findings)) => (String::new(), Some(record(findings, enforce))),
            Err(outcome) => (
                String::new(),
                Some(record(
                    vec![failure_finding(&entry.policy, &outcome)],
                    enforce,
                )),
            ),
        };
        if !enforce {
            // Monitor: recorded, never applied; a failed monitor stops taking part.
            if let Some(findings) = stop {
                self.findings.extend(findings);
                self.filters[i].stream = None;
            }
            return Ok(input.unwrap_or_default());
        }
        match stop {
            None => Ok(passed),
            Some(findings) => {
                self.stopped = true;
                self.filters[i].denied = true;
                self.findings.extend(findings.iter().cloned());
                Err(StreamStep::Stop {
                    policy: entry.policy.name().to_string(),
                    findings,
                })
            }
        }
    }
}
