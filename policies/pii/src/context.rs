//! Context words ("cues") near a candidate value, and the score they lead to.
//!
//! A cue counts when it starts at most [`BEFORE`] bytes before the value and ends before
//! it, or starts after the value and ends at most [`AFTER`] bytes after it. Supporting
//! cues raise a score, negative cues lower it; when both are near, the nearer decides.

use portcullis_sdk::Matcher;

use crate::detect::Candidate;

/// How far before a value a cue may start, in bytes.
pub const BEFORE: usize = 48;
/// How far after a value a cue may end, in bytes.
pub const AFTER: usize = 32;
/// Score (percent) removed by a negative cue ("order number", "version", ...).
const NEGATIVE_PENALTY: i32 = 45;

/// A group of context words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// Payment words: card, visa, credit, cvv, expiry, ...
    Card,
    /// Social security words: SSN, social security, ...
    Ssn,
    /// Telephony words: phone, call, mobile, fax, ...
    Phone,
    /// Networking words: IP, host, server, ...
    Ip,
    /// Identifiers that merely look like personal data: order, invoice, tracking,
    /// ISBN, version, serial, ...
    Negative,
}

/// Cue patterns, in the order of [`Cue`] (its discriminants index this list).
const CUES: [(Cue, &str); 5] = [
    (
        Cue::Card,
        r"(?i-u:\b(?:credit|debit|cards?|visa|master ?card|amex|american express|discover|jcb|diners|maestro|union ?pay|cc|ccn|cvv2?|cvc|exp|expiry|expires|expiration|payment|pay|paid|billing|charged?)\b)",
    ),
    (
        Cue::Ssn,
        r"(?i-u:\b(?:ssns?|social[ \-]security|soc\.? ?sec|taxpayer)\b|\bss ?#)",
    ),
    (
        Cue::Phone,
        r"(?i-u:\b(?:phones?|telephone|tel|telefon|mobile|cell|cellphone|call|calls|calling|ring|fax|whatsapp|sms|text|dial|landline|hotline|mob|ph|contact|reach|portable)\b)",
    ),
    (
        Cue::Ip,
        r"(?i-u:\b(?:ips?|ipv4|ipv6|host|hostname|server|client|remote|gateway|dns|subnet|router|ping|ssh|login|logged|connected|connection|address)\b)",
    ),
    (
        Cue::Negative,
        r"(?i-u:\b(?:orders?|tracking|invoice|isbn|issn|doi|versions?|ver|release|build|serial|sku|ref|reference|confirmation|ticket|booking|receipt|transaction|txn|barcode|upc|ean|patent|oid|section|chapter|figure)\b)",
    ),
];

/// The cue patterns, for [`Matcher::new`].
pub fn patterns() -> [&'static str; 5] {
    CUES.map(|(_, pattern)| pattern)
}

/// Where each cue occurs in a text, sorted by start.
#[derive(Debug, Default)]
pub struct Cues {
    hits: [Vec<(usize, usize)>; 5],
}

impl Cues {
    /// Find every cue in `text`.
    pub fn find(matcher: &Matcher, text: &str) -> Self {
        let mut cues = Cues::default();
        for m in matcher.find_all(text) {
            if let Some(hits) = cues.hits.get_mut(m.pattern) {
                hits.push((m.start, m.end));
            }
        }
        for hits in &mut cues.hits {
            hits.sort_unstable();
        }
        cues
    }

    /// The gap in bytes between `start..end` and the nearest occurrence of `cue`
    /// within the window.
    fn gap(&self, cue: Cue, start: usize, end: usize) -> Option<usize> {
        let hits = &self.hits[cue as usize];
        let first = hits.partition_point(|&(s, _)| s + BEFORE < start);
        hits[first..]
            .iter()
            .take_while(|&&(s, _)| s < end + AFTER)
            .filter_map(|&(s, e)| {
                if e <= start {
                    Some(start - e)
                } else if s >= end && e <= end + AFTER {
                    Some(s - end)
                } else {
                    None
                }
            })
            .min()
    }

    /// The final score (percent) of a candidate whose range in the cue text starts at
    /// `offset + candidate.start`, or `None` when it needs a cue that is absent. When
    /// both a supporting and a negative cue are near, the nearer one decides ("server
    /// 10.0.0.1 runs version 1.2.3.4"); at equal distance both apply.
    pub fn score(&self, candidate: &Candidate, offset: usize) -> Option<i32> {
        let (start, end) = (offset + candidate.start, offset + candidate.end);
        let Some((cue, boost)) = candidate.entity.cue() else {
            return Some(candidate.score);
        };
        let support = self.gap(cue, start, end);
        let negative = self.gap(Cue::Negative, start, end);
        if candidate.needs_cue && support.is_none() {
            return None;
        }
        let (raise, lower) = match (support, negative) {
            (Some(s), Some(n)) => (s <= n, n <= s),
            (s, n) => (s.is_some(), n.is_some()),
        };
        let score = candidate.score + if raise { boost } else { 0 }
            - if lower { NEGATIVE_PENALTY } else { 0 };
        Some(score.clamp(0, 100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues(text: &str) -> Cues {
        Cues::find(&Matcher::new(&patterns()).unwrap(), text)
    }

    #[test]
    fn cue_order_matches_the_enum() {
        for (i, (cue, _)) in CUES.iter().enumerate() {
            assert_eq!(*cue as usize, i);
        }
    }

    #[test]
    fn cues_count_only_within_the_window() {
        let text = "my Visa card: 4111 1111 1111 1111";
        let c = cues(text);
        assert_eq!(c.gap(Cue::Card, 14, text.len()), Some(2));
        assert_eq!(c.gap(Cue::Negative, 14, text.len()), None);
        let far = format!("card{}4111111111111111", " ".repeat(60));
        assert_eq!(cues(&far).gap(Cue::Card, 64, far.len()), None);
        let after = "4111111111111111 (my order number)";
        assert_eq!(cues(after).gap(Cue::Negative, 0, 16), Some(5));
    }

    #[test]
    fn words_inside_other_words_are_not_cues() {
        let c = cues("discard the recall, cardinal");
        assert_eq!(c.gap(Cue::Card, 0, 0), None);
        assert_eq!(c.gap(Cue::Phone, 0, 0), None);
        assert_eq!(cues("SS# 123456789").gap(Cue::Ssn, 4, 13), Some(1));
    }

    #[test]
    fn the_nearer_cue_decides() {
        let ip = |start, end| Candidate {
            entity: crate::entity::Entity::Ip,
            start,
            end,
            score: 70,
            needs_cue: false,
            what: "IPv4 address".into(),
        };
        let text = "Server 203.0.113.7 runs version 1.2.3.4";
        let c = cues(text);
        assert_eq!(c.score(&ip(7, 18), 0), Some(95));
        assert_eq!(c.score(&ip(32, 39), 0), Some(25));
    }
}
