//! Candidate values: host-compiled patterns find shapes, validators confirm them.
//!
//! Patterns are deliberately loose about extent (a phone pattern may swallow a trailing
//! number); validators decide what the value really is and where it ends. Whether a
//! value is glued to surrounding text (`x4111...`, `1.2.3.4.5`) is checked here, looking
//! into the left context so that a stream scanned in pieces decides as a whole text would.

use std::borrow::Cow;

use portcullis_sdk::Matcher;

use crate::entity::Entity;
use crate::{card, email, iban, ip, phone, ssn};

/// Characters that join digit groups into one longer token (`12-4111...`, `1.2.3.4.5`).
const DIGIT_JOINERS: &[char] = &['.', '-', '/'];
/// After a value a colon joins too: `05 12 2023 10:30` is a date and a time.
const DIGIT_JOINERS_AFTER: &[char] = &['.', '-', '/', ':'];
/// Characters of an email local part that the pattern cannot start with: a match
/// preceded by one of them (or by a letter) is the tail of an over-long local part.
const EMAIL_JOINERS: &[char] = &['.', '%', '+', '-'];
/// For the weakest shapes (national and bare phone numbers) a space before a digit
/// joins too: in `DE89 3704 0044 0532 0130 01` (an IBAN failing its checksum)
/// `0532 0130 01` is not a phone number, nor `01 23 45 67 89` in `... 89 00`.
const WEAK_JOINERS: &[char] = &['.', '-', '/', ' '];
/// [`WEAK_JOINERS`] after a value, with the colon of [`DIGIT_JOINERS_AFTER`].
const WEAK_JOINERS_AFTER: &[char] = &['.', '-', '/', ':', ' '];

/// A validated value, before context scoring.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// What kind of value.
    pub entity: Entity,
    /// Byte range in the scanned text.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// Score in percent: the base score, then the final one after [`crate::context`].
    pub score: i32,
    /// Only reported when a positive cue is near (a bare nine-digit SSN).
    pub needs_cue: bool,
    /// Finding message; never contains the value.
    pub what: Cow<'static, str>,
}

/// The shapes the patterns look for; each pattern's index is its shape's position.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Email,
    PhoneInternational,
    PhoneNanp,
    PhoneNanpBare,
    PhoneNational,
    PhoneNationalBare,
    CardContiguous,
    CardGrouped,
    Iban,
    SsnSeparated,
    SsnBare,
    Ipv4,
    Ipv6,
}

const SHAPES: [(Shape, &str); 13] = [
    // The local part may hold any letter (`josé@`); the domain is ASCII (IDNs as `xn--`).
    (
        Shape::Email,
        r"(?i:[\p{L}\p{N}_][\p{L}\p{N}\p{M}._%+\-]*)(?i-u:@(?:[a-z0-9\-]{1,63}\.){1,10}[a-z]{2,24}\b)",
    ),
    (
        Shape::PhoneInternational,
        r"(?-u:(?:\+|\b00)[1-9]\d{0,2}(?:[ .\-]?(?:\(0\)|\(\d{1,4}\)|\d{1,5})){1,6})",
    ),
    (
        Shape::PhoneNanp,
        r"(?-u:(?:\b1[ .\-]?)?(?:\(\d{3}\)[ \-]?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b)",
    ),
    (Shape::PhoneNanpBare, r"(?-u:\b1?[2-9]\d{9}\b)"),
    (
        Shape::PhoneNational,
        r"(?-u:\b0[1-9]\d{0,3}(?:[ .\-/]\d{2,8}){1,4}\b)",
    ),
    (Shape::PhoneNationalBare, r"(?-u:\b0[1-9]\d{7,10}\b)"),
    (Shape::CardContiguous, r"(?-u:\b\d{13,19}\b)"),
    (
        Shape::CardGrouped,
        r"(?-u:\b\d{4}[ \-](?:\d{4}[ \-]\d{4}[ \-]\d{1,4}(?:[ \-]\d{1,3})?|\d{6}[ \-]\d{4,5})\b)",
    ),
    (Shape::Iban, r"(?i-u:\b[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2})"),
    (Shape::SsnSeparated, r"(?-u:\b\d{3}[ \-]\d{2}[ \-]\d{4}\b)"),
    (Shape::SsnBare, r"(?-u:\b\d{9}\b)"),
    (Shape::Ipv4, r"(?-u:\b(?:\d{1,3}\.){3}\d{1,3}\b)"),
    (Shape::Ipv6, r"(?i-u:[0-9a-f]{0,4}:[0-9a-f:.]{2,44})"),
];

/// The shape patterns, for [`Matcher::new`].
pub fn patterns() -> [&'static str; 13] {
    SHAPES.map(|(_, pattern)| pattern)
}

/// The text being scanned, preceded by left context: the tail of stream text already
/// released (empty for a complete text).
pub struct Source<'a> {
    full: Cow<'a, str>,
    offset: usize,
}

impl<'a> Source<'a> {
    /// `text` preceded by `left` context.
    pub fn new(left: &str, text: &'a str) -> Self {
        if left.is_empty() {
            Source {
                full: Cow::Borrowed(text),
                offset: 0,
            }
        } else {
            Source {
                full: Cow::Owned(format!("{left}{text}")),
                offset: left.len(),
            }
        }
    }

    /// The scanned text (offsets of candidates are relative to it).
    pub fn text(&self) -> &str {
        &self.full[self.offset..]
    }

    /// Left context and text together (cues are searched here).
    pub fn full(&self) -> &str {
        &self.full
    }

    /// Where the text starts in [`Source::full`].
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether the text just before `at` continues the token: a letter or digit, or a
    /// joiner (from `joiners`) preceded by a letter or digit.
    fn glued_before(&self, at: usize, joiners: &[char]) -> bool {
        let mut before = self.full[..self.offset + at].chars().rev();
        glued(before.next(), || before.next(), joiners)
    }

    /// Whether the text just after `at` continues the token (as [`Self::glued_before`]).
    fn glued_after(&self, at: usize, joiners: &[char]) -> bool {
        let mut after = self.full[self.offset + at..].chars();
        glued(after.next(), || after.next(), joiners)
    }
}

fn glued(next: Option<char>, mut beyond: impl FnMut() -> Option<char>, joiners: &[char]) -> bool {
    match next {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        // A space joins only digit groups; other joiners also join words ("v-1.2.3.4").
        Some(c) if joiners.contains(&c) => beyond().is_some_and(|d| {
            if c == ' ' {
                d.is_ascii_digit()
            } else {
                d.is_ascii_alphanumeric()
            }
        }),
        _ => false,
    }
}

/// Every validated candidate in the source text, in no particular order; candidates
/// may overlap.
pub fn candidates(matcher: &Matcher, source: &Source) -> Vec<Candidate> {
    let text = source.text();
    matcher
        .find_all(text)
        .into_iter()
        .filter(|m| m.start < m.end && m.end <= text.len())
        .filter_map(|m| {
            SHAPES
                .get(m.pattern)
                .and_then(|(shape, _)| shape.validate(source, m.start, m.end))
        })
        .collect()
}

/// The digit runs of `text[start..end]`, as byte ranges of `text`.
pub fn digit_runs(text: &str, start: usize, end: usize) -> Vec<phone::Run> {
    let mut runs = Vec::new();
    let mut run_start = None;
    for (i, b) in text.bytes().enumerate().take(end).skip(start) {
        match (b.is_ascii_digit(), run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        runs.push((s, end));
    }
    runs
}

/// The ASCII digits of `text[start..end]`.
fn digits(text: &str, start: usize, end: usize) -> Vec<u8> {
    text.as_bytes()[start..end]
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect()
}

impl Shape {
    /// Validate one pattern match at `start..end` of the source text.
    fn validate(self, source: &Source, start: usize, end: usize) -> Option<Candidate> {
        let text = source.text();
        let found = |entity, end, score, what: &'static str| Candidate {
            entity,
            start,
            end,
            score,
            needs_cue: false,
            what: Cow::Borrowed(what),
        };
        let numeric = !source.glued_before(start, DIGIT_JOINERS)
            && !source.glued_after(end, DIGIT_JOINERS_AFTER);
        let weak_glued = source.glued_before(start, WEAK_JOINERS);
        match self {
            Shape::Email => (email::valid(&text[start..end])
                && !source.glued_before(start, EMAIL_JOINERS))
            .then(|| found(Entity::Email, end, 95, "email address")),
            Shape::PhoneInternational => {
                if source.glued_before(start, &[]) {
                    return None;
                }
                let end = phone::international(text, start, &digit_runs(text, start, end))?;
                (!source.glued_after(end, DIGIT_JOINERS_AFTER))
                    .then(|| found(Entity::Phone, end, 85, "phone number"))
            }
            Shape::PhoneNanp => {
                let score = phone::nanp_formatted(text, &digit_runs(text, start, end))?;
                numeric.then(|| found(Entity::Phone, end, score, "phone number"))
            }
            Shape::PhoneNanpBare => (numeric && !weak_glued && phone::nanp_bare(&text[start..end]))
                .then(|| found(Entity::Phone, end, 35, "phone number")),
            Shape::PhoneNational => {
                let isolated = !weak_glued && !source.glued_after(end, WEAK_JOINERS_AFTER);
                (isolated && phone::national(text, &digit_runs(text, start, end)))
                    .then(|| found(Entity::Phone, end, 60, "phone number"))
            }
            Shape::PhoneNationalBare => {
                (numeric && !weak_glued).then(|| found(Entity::Phone, end, 35, "phone number"))
            }
            Shape::CardContiguous => {
                let brand = card::identify(&text.as_bytes()[start..end]).filter(|_| numeric)?;
                Some(Candidate {
                    what: card_message(brand),
                    ..found(Entity::Card, end, brand.score, "")
                })
            }
            Shape::CardGrouped => card_grouped(source, start, end),
            Shape::Iban => {
                if source.glued_before(start, &[]) {
                    return None;
                }
                let end = iban::read(text, start)?;
                (!source.glued_after(end, &[]))
                    .then(|| found(Entity::Iban, end, 95, "IBAN (bank account number)"))
            }
            Shape::SsnSeparated => {
                let separators = (&text[start + 3..start + 4], &text[start + 6..start + 7]);
                let score = match separators {
                    ("-", "-") => 60,
                    (" ", " ") => 40,
                    _ => return None,
                };
                (numeric && ssn::valid(&digits(text, start, end)))
                    .then(|| found(Entity::Ssn, end, score, "US social security number"))
            }
            Shape::SsnBare => {
                (numeric && ssn::valid(&text.as_bytes()[start..end])).then(|| Candidate {
                    needs_cue: true,
                    ..found(Entity::Ssn, end, 30, "US social security number")
                })
            }
            Shape::Ipv4 => {
                let glued = source.glued_before(start, &['.']) || source.glued_after(end, &['.']);
                let octets = ip::ipv4(&text[start..end]).filter(|_| !glued)?;
                Some(found(
                    Entity::Ip,
                    end,
                    ip::ipv4_score(octets),
                    "IPv4 address",
                ))
            }
            Shape::Ipv6 => {
                let (from, to) = ip::trim_ipv6(&text[start..end]);
                let (start, end) = (start + from, start + to);
                let score = ip::ipv6(&text[start..end]).and_then(ip::ipv6_score)?;
                let glued = source.glued_before(start, &[]) || source.glued_after(end, &[]);
                (!glued).then(|| Candidate {
                    start,
                    ..found(Entity::Ip, end, score, "IPv6 address")
                })
            }
        }
    }
}

/// A card number written in groups (`4111 1111 1111 1111`, `3782 822463 10005`). A
/// fifth group of up to three digits may be the end of a 19-digit number or something
/// else (`... 1111 12/27`): both readings are tried, the longer first.
fn card_grouped(source: &Source, start: usize, end: usize) -> Option<Candidate> {
    let text = source.text();
    if source.glued_before(start, DIGIT_JOINERS) {
        return None;
    }
    let runs = digit_runs(text, start, end);
    let ends = [Some(end), (runs.len() == 5).then(|| runs[3].1)];
    ends.into_iter().flatten().find_map(|end| {
        let brand = card::identify(&digits(text, start, end))?;
        (!source.glued_after(end, DIGIT_JOINERS_AFTER)).then(|| Candidate {
            entity: Entity::Card,
            start,
            end,
            score: brand.score + 5,
            needs_cue: false,
            what: card_message(brand),
        })
    })
}

fn card_message(brand: &card::Brand) -> Cow<'static, str> {
    Cow::Owned(format!("payment card number ({})", brand.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Entity, &str, i32)> {
        let matcher = Matcher::new(&patterns()).unwrap();
        let mut c = candidates(&matcher, &Source::new("", text));
        c.sort_by_key(|c| (c.start, c.end));
        c.into_iter()
            .map(|c| (c.entity, &text[c.start..c.end], c.score))
            .collect()
    }

    #[test]
    fn digit_runs_split_on_anything_else() {
        assert_eq!(
            digit_runs("+1 (415) 555-2671", 0, 17),
            vec![(1, 2), (4, 7), (9, 12), (13, 17)]
        );
        assert_eq!(digit_runs("ab12", 1, 3), vec![(2, 3)]);
    }

    #[test]
    fn glued_tokens_are_not_values() {
        assert!(found("x4111111111111111").is_empty());
        assert!(found("12-4111-1111-1111-1111").is_empty());
        assert!(found("1.2.3.4.5").is_empty());
        assert!(found("v1.2.3.4").is_empty());
    }

    #[test]
    fn left_context_decides_gluing() {
        let matcher = Matcher::new(&patterns()).unwrap();
        assert!(candidates(&matcher, &Source::new("ab", "4111111111111111")).is_empty());
        assert_eq!(
            candidates(&matcher, &Source::new("ab ", "4111111111111111")).len(),
            1
        );
    }

    #[test]
    fn overlapping_shapes_are_all_reported() {
        let c = found("::ffff:192.0.2.1");
        assert!(
            c.iter()
                .any(|(e, v, _)| *e == Entity::Ip && *v == "::ffff:192.0.2.1")
        );
        assert!(
            c.iter()
                .any(|(e, v, _)| *e == Entity::Ip && *v == "192.0.2.1")
        );
    }

    #[test]
    fn grouped_card_with_expiry_after_it() {
        let c = found("4111 1111 1111 1111 12/27");
        assert_eq!(c, vec![(Entity::Card, "4111 1111 1111 1111", 90)]);
    }

    #[test]
    fn ssn_separators_must_agree() {
        assert_eq!(found("123-45-6789"), vec![(Entity::Ssn, "123-45-6789", 60)]);
        assert!(found("123-45 6789").is_empty());
        assert!(found("000-12-3456").is_empty());
    }
}
