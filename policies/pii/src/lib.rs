//! # PII scanner
//!
//! A Portcullis content policy that finds personal data in requests (user and tool
//! messages by default) and in model responses, complete or streamed, and redacts it
//! with typed placeholders, reports it, or refuses the text.
//!
//! ## What it detects
//!
//! | entity  | shapes | validation | severity |
//! |---------|--------|------------|----------|
//! | `email` | `local@domain.tld` | RFC 5321 lengths, domain label rules | medium |
//! | `phone` | `+<cc> ...` / `00<cc> ...`, NANP `(415) 555-2671`, `415-555-2671`, `415.555.2671`, European national `020 7946 0958`, `01 23 45 67 89`, `030 123456` | country code and national length, NANP area/exchange rules (no leading 0/1, no N11) | medium |
//! | `card`  | 13-19 digits, contiguous or grouped by spaces/dashes | Luhn, issuer prefix and length (Visa, Mastercard, Amex, Discover, JCB, Diners, Mir, UnionPay, Maestro) | high |
//! | `iban`  | contiguous or printed in groups of four | per-country length, mod-97 | high |
//! | `ssn`   | `123-45-6789`, `123 45 6789`, `123456789` | area not 000/666/900-999, group not 00, serial not 0000 | high |
//! | `ip`    | IPv4 dotted quad, IPv6 full or compressed (with embedded IPv4) | octets <= 255 without leading zeros, not part of a longer dotted sequence; IPv6 grammar | low |
//!
//! ## Scoring
//!
//! Every value gets a base score in 0..=1 from how specific its shape is (an IBAN or an
//! email 0.95, a Visa number 0.85, a dashed SSN 0.6, a bare ten-digit number 0.35).
//! Context words within 48 bytes before or 32 bytes after adjust it: payment words
//! ("card", "visa", "credit") add 0.15 to cards, "SSN"/"social security" 0.35 to SSNs,
//! telephony words 0.25 to phones, networking words 0.25 to IPs; identifier words
//! ("order number", "tracking", "invoice", "ISBN", "version", "serial") subtract 0.45
//! from cards, phones, SSNs and IPs; when both kinds are near, the nearer decides. A
//! nine-digit SSN without separators counts only with an SSN cue. Values scoring at
//! least `min_score` are reported with their score; where candidates overlap, the
//! higher score (then the longer value) wins. Once a value has been reported, later
//! occurrences of the same value in the request or response are reported too, cue or
//! not. Severity: card, IBAN and SSN high; email and phone medium; IP low. See the
//! README for the full tables.
//!
//! ## Configuration
//!
//! ```json
//! {"action": "redact", "entities": ["email", "phone", "card", "iban", "ssn", "ip"],
//!  "min_score": 0.5, "roles": ["user", "tool"], "allow_list": []}
//! ```
//!
//! * `action`: `redact` (default) replaces values with `[EMAIL_1]`, `[PHONE_1]`,
//!   `[CARD_1]`, `[IBAN_1]`, `[SSN_1]`, `[IP_1]`, numbered consistently within a request
//!   or stream (verdict `modify`); `detect` lets the text through with findings
//!   (`allow`); `deny` refuses it (`deny`).
//! * `entities`: the kinds reported (default all).
//! * `min_score`: the threshold, 0..=1 (default 0.5).
//! * `roles`: request message roles scanned (default `user`, `tool`).
//! * `allow_list`: values never reported (compared case-insensitively and in
//!   canonical form, e.g. the digits of a card number).
//!
//! ## Streaming
//!
//! Streams use [`portcullis_sdk::HoldBack`] with a [`WINDOW`] of 256 bytes (longer than
//! any value reported). The `continuity` module keeps the streamed output identical to
//! a one-shot scan of the whole response: same redactions, same placeholder numbers.

mod card;
mod config;
mod context;
mod continuity;
mod detect;
mod email;
mod entity;
mod iban;
mod ip;
mod phone;
mod ssn;

use std::collections::BTreeMap;

use portcullis_sdk::{
    Category, Finding, Matcher, RequestContext, Role, ScanReport, Scanner, char_floor,
};

use config::{Action, Config};
use context::Cues;
use continuity::{History, Ledger};
use detect::{Candidate, Source};
use entity::Entity;

/// Bytes a stream holds back: more than the longest value reported (an email of at
/// most 254 bytes) and than the context window after a value.
pub const WINDOW: usize = 256;

/// The PII scanner: one instance per request or stream.
pub struct PiiScanner {
    config: Config,
    shapes: Matcher,
    cues: Matcher,
    history: History,
    ledger: Ledger,
}

impl Scanner for PiiScanner {
    fn new(_context: &RequestContext) -> Result<Self, String> {
        Ok(PiiScanner {
            config: Config::load()?,
            shapes: Matcher::new(&detect::patterns())?,
            cues: Matcher::new(&context::patterns())?,
            history: History::default(),
            ledger: Ledger::default(),
        })
    }

    fn window(&self) -> usize {
        WINDOW
    }

    fn scan(&mut self, text: &str) -> ScanReport {
        let continues = self.history.begin(text, WINDOW);
        self.ledger.begin(continues);
        let found = self.find(&Source::new(self.history.left(), text));
        self.history.end(text);
        self.report(text, found)
    }

    fn scans_role(&self, role: Role) -> bool {
        self.config.scans(role)
    }
}

impl PiiScanner {
    /// The values to report, in text order, without overlaps.
    fn find(&self, source: &Source) -> Vec<Candidate> {
        let candidates: Vec<Candidate> = detect::candidates(&self.shapes, source)
            .into_iter()
            .filter(|c| {
                self.config.enabled(c.entity)
                    && !self
                        .config
                        .allowed(c.entity, &source.text()[c.start..c.end])
            })
            .collect();
        if candidates.is_empty() {
            return candidates;
        }
        let cues = if candidates.iter().any(|c| c.entity.cue().is_some()) {
            Cues::find(&self.cues, source.full())
        } else {
            Cues::default()
        };
        let (mut passing, mut weak) = (Vec::new(), Vec::new());
        for mut c in candidates {
            match cues.score(&c, source.offset()) {
                Some(score) if self.config.passes(score) => {
                    c.score = score;
                    passing.push(c);
                }
                _ => weak.push(c),
            }
        }
        let kept = resolve(passing);
        let rescued = self.rescue(source.text(), &kept, weak);
        if rescued.is_empty() {
            kept
        } else {
            resolve(kept.into_iter().chain(rescued).collect())
        }
    }

    /// Weak candidates whose value was already reported earlier, in this text or a
    /// previous one (`SSN 123456789 ... is 123456789 right?`): once known, a value is
    /// reported wherever it appears again, with the score of its first report. Only
    /// later occurrences: a stream cannot take back text it has released.
    fn rescue(&self, text: &str, kept: &[Candidate], weak: Vec<Candidate>) -> Vec<Candidate> {
        if weak.is_empty() {
            return weak;
        }
        let key_of = |c: &Candidate| (c.entity, c.entity.normalize(&text[c.start..c.end]));
        let mut first_kept: BTreeMap<(Entity, String), &Candidate> = BTreeMap::new();
        for k in kept {
            first_kept.entry(key_of(k)).or_insert(k);
        }
        weak.into_iter()
            .filter_map(|mut c| {
                let key = key_of(&c);
                let here = first_kept
                    .get(&key)
                    .filter(|k| k.end <= c.start)
                    .map(|k| k.score);
                c.score = self.ledger.known(key.0, &key.1).or(here)?;
                Some(c)
            })
            .collect()
    }

    /// Findings, and redactions or a deny as configured.
    fn report(&mut self, text: &str, found: Vec<Candidate>) -> ScanReport {
        let redact = self.config.action == Action::Redact;
        // What `HoldBack` releases after this scan if it is streaming: the text before
        // the cut, which it moves back before a redaction that straddles it.
        let cut = char_floor(text, text.len().saturating_sub(WINDOW));
        let released = |c: &Candidate| if redact { c.end <= cut } else { c.start < cut };
        let mut report = ScanReport {
            deny: self.config.action == Action::Deny && !found.is_empty(),
            ..ScanReport::default()
        };
        for c in found {
            let key = c.entity.normalize(&text[c.start..c.end]);
            let label = self.ledger.record(c.entity, &key, c.score, released(&c));
            if redact {
                report.redactions.push((c.start, c.end, label));
            }
            report.findings.push(
                Finding::new(Category::Pii, c.entity.severity(), c.what)
                    .at(0, c.start, c.end)
                    .score(c.score as f32 / 100.0),
            );
        }
        report
    }
}

/// Keep the best of overlapping candidates (higher score, then longer, then earlier)
/// and return the kept ones in text order.
fn resolve(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        // Taken ranges are disjoint, so only the last one starting before `c.end` can overlap.
        let overlaps = taken
            .range(..c.end)
            .next_back()
            .is_some_and(|(_, &end)| end > c.start);
        if !overlaps {
            taken.insert(c.start, c.end);
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| c.start);
    kept
}

portcullis_sdk::export_scanner!(PiiScanner);

#[cfg(test)]
mod tests;
