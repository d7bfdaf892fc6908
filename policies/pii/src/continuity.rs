//! Consistency between scanning a text once and streaming it through
//! [`portcullis_sdk::HoldBack`].
//!
//! `HoldBack` rescans its pending buffer after every chunk and releases all but the last
//! [`crate::WINDOW`] bytes. Two things would otherwise differ from a one-shot scan:
//!
//! * **Placeholder numbers and known values.** A value in the held-back tail may be
//!   incomplete (`bob@example.co` before the final `m` arrives); numbering it would
//!   shift every later placeholder. [`Ledger`] numbers tail values on a scratch copy
//!   and only commits values that are released; only committed values count as known
//!   when a later occurrence of the same value is judged.
//! * **Left context.** Once text is released it is no longer in the buffer, yet a cue
//!   ("SSN:") or a glued character may sit just before a value. [`History`] recognises
//!   that a text continues the previous one and keeps the released tail as left context.
//!
//! Request scanning calls the scanner once per message: a message is not a
//! continuation of the previous one, so tentative values are committed in order.

use std::collections::BTreeMap;

use portcullis_sdk::{Placeholders, char_floor};

use crate::context::BEFORE;
use crate::entity::Entity;

/// Bytes of released text kept as left context: the cue window plus the longest cue,
/// so a cue cut by this boundary is too far from any value to count anyway.
const LOOKBEHIND: usize = BEFORE + 32;

/// The values reported so far and their placeholders, kept so that numbering (and
/// which values are known) matches a one-shot scan.
#[derive(Debug, Default)]
pub struct Ledger {
    placeholders: Placeholders,
    known: BTreeMap<(Entity, String), i32>,
    scratch: Option<Placeholders>,
    tentative: Vec<(Entity, String, i32)>,
}

impl Ledger {
    /// Start a scan. When the text continues the previous one, the previous scan's
    /// tentative values are in it again and are recorded afresh; otherwise they were
    /// final and are committed in order.
    pub fn begin(&mut self, continues: bool) {
        self.scratch = None;
        let tentative = std::mem::take(&mut self.tentative);
        if !continues {
            for (entity, key, score) in tentative {
                self.commit(entity, &key, score);
            }
        }
    }

    /// The score a committed value (`key` is its canonical form) was first reported
    /// with, if it was.
    pub fn known(&self, entity: Entity, key: &str) -> Option<i32> {
        self.known.get(&(entity, key.to_string())).copied()
    }

    /// Record a reported value and return its placeholder. `released` values (that a
    /// hold-back stream releases after this scan) are committed; the others are
    /// tentative. Call in text order.
    pub fn record(&mut self, entity: Entity, key: &str, score: i32, released: bool) -> String {
        if released && self.scratch.is_none() {
            return self.commit(entity, key, score);
        }
        self.tentative.push((entity, key.to_string(), score));
        self.scratch
            .get_or_insert_with(|| self.placeholders.clone())
            .label(entity.placeholder_kind(), key)
    }

    fn commit(&mut self, entity: Entity, key: &str, score: i32) -> String {
        self.known.entry((entity, key.to_string())).or_insert(score);
        self.placeholders.label(entity.placeholder_kind(), key)
    }
}

/// The previously scanned text and the left context of the current one.
#[derive(Debug, Default)]
pub struct History {
    previous: String,
    left: String,
}

impl History {
    /// Start scanning `text`. Returns whether it continues the previous text: it starts
    /// with a suffix of it at least `window` bytes long (or all of it), as a hold-back
    /// buffer does after releasing its head. The released head's tail becomes left
    /// context; otherwise the left context is cleared.
    pub fn begin(&mut self, text: &str, window: usize) -> bool {
        let previous = std::mem::take(&mut self.previous);
        match released(&previous, text, window) {
            Some(released) => {
                self.left.push_str(&previous[..released]);
                let cut = char_floor(&self.left, self.left.len().saturating_sub(LOOKBEHIND));
                self.left.drain(..cut);
                true
            }
            None => {
                self.left.clear();
                false
            }
        }
    }

    /// Left context of the current text.
    pub fn left(&self) -> &str {
        &self.left
    }

    /// Finish scanning `text`.
    pub fn end(&mut self, text: &str) {
        self.previous.clear();
        self.previous.push_str(text);
    }
}

/// If `text` continues `previous`, how many leading bytes of `previous` it dropped.
fn released(previous: &str, text: &str, window: usize) -> Option<usize> {
    if previous.is_empty() {
        return None;
    }
    let kept = overlap(previous.as_bytes(), text.as_bytes());
    let released = previous.len() - kept;
    (kept >= window.min(previous.len()) && previous.is_char_boundary(released)).then_some(released)
}

/// The length of the longest suffix of `previous` that is a prefix of `next`
/// (Knuth-Morris-Pratt, linear time).
fn overlap(previous: &[u8], next: &[u8]) -> usize {
    let pattern = &next[..next.len().min(previous.len())];
    if pattern.is_empty() {
        return 0;
    }
    let fallback = prefix_function(pattern);
    let mut matched = 0;
    for &b in previous {
        while matched > 0 && (matched == pattern.len() || pattern[matched] != b) {
            matched = fallback[matched - 1];
        }
        if pattern[matched] == b {
            matched += 1;
        }
    }
    matched
}

/// `result[i]`: length of the longest proper prefix of `pattern[..=i]` that is also
/// its suffix.
fn prefix_function(pattern: &[u8]) -> Vec<usize> {
    let mut result = vec![0; pattern.len()];
    let mut k = 0;
    for i in 1..pattern.len() {
        while k > 0 && pattern[i] != pattern[k] {
            k = result[k - 1];
        }
        if pattern[i] == pattern[k] {
            k += 1;
        }
        result[i] = k;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_finds_the_longest_suffix_prefix() {
        assert_eq!(overlap(b"hello world", b"world!"), 5);
        assert_eq!(overlap(b"abcabc", b"abcabcx"), 6);
        assert_eq!(overlap(b"aaaa", b"aa"), 2);
        assert_eq!(overlap(b"abc", b"xyz"), 0);
        assert_eq!(overlap(b"", b"x"), 0);
    }

    #[test]
    fn continuation_needs_a_window_of_overlap() {
        let long = "x".repeat(10) + &"y".repeat(300);
        assert_eq!(released(&long, &long[10..], 256), Some(10));
        assert_eq!(released("short text", "short text and more", 256), Some(0));
        assert_eq!(released("first message", "second message", 256), None);
        assert_eq!(released("", "anything", 256), None);
    }

    #[test]
    fn history_keeps_the_released_tail_as_left_context() {
        let mut h = History::default();
        let text = format!("{}SSN: {}", "a".repeat(200), "b".repeat(300));
        assert!(!h.begin(&text, 256));
        h.end(&text);
        assert!(h.begin(&text[205..], 256));
        assert!(h.left().ends_with("SSN: ") && h.left().len() == LOOKBEHIND);
        h.end(&text[205..]);
        assert!(!h.begin("a new message", 256));
        assert_eq!(h.left(), "");
    }

    #[test]
    fn tentative_values_are_redone_on_continuation_and_kept_otherwise() {
        let mut l = Ledger::default();
        l.begin(false);
        assert_eq!(
            l.record(Entity::Email, "bob@example.co", 95, false),
            "[EMAIL_1]"
        );
        assert_eq!(l.known(Entity::Email, "bob@example.co"), None);
        l.begin(true);
        assert_eq!(
            l.record(Entity::Email, "bob@example.com", 95, false),
            "[EMAIL_1]"
        );
        l.begin(false);
        assert_eq!(l.known(Entity::Email, "bob@example.com"), Some(95));
        assert_eq!(l.known(Entity::Email, "bob@example.co"), None);
        assert_eq!(
            l.record(Entity::Email, "eve@example.com", 95, true),
            "[EMAIL_2]"
        );
        assert_eq!(
            l.record(Entity::Email, "bob@example.com", 95, false),
            "[EMAIL_1]"
        );
    }
}
