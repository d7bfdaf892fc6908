//! Text normalization: a folded "skeleton" of a text that the rules are matched
//! against, with a byte-offset map back to the original text.
//!
//! Folding, character by character:
//! * ASCII letters are lower-cased, and `l` folds to `i` (`l`, `I`, `1` and `|` are
//!   visually confusable, so they all become `i`; rule templates are folded the same
//!   way by [`crate::rules::compile`]);
//! * Cyrillic and Greek look-alikes, fullwidth forms, mathematical alphanumerics,
//!   circled letters and accented Latin letters fold to plain ASCII letters;
//! * leetspeak digits and symbols (`0 1 3 4 5 7 @ $`, and `! |` between letters) fold
//!   to letters when they touch a letter, so `pr3v10us` reads `previous` but `1.2.3`
//!   stays digits;
//! * zero-width, bidirectional-control, soft-hyphen and combining characters are
//!   dropped, so `ig\u{200b}nore` reads `ignore`;
//! * Unicode tag characters (U+E0000..U+E007F) are dropped from the text and collected
//!   as [`TagRun`]s (their ASCII reading is the hidden text);
//! * every whitespace run becomes one space; curly quotes and backticks become ASCII
//!   quotes.
//!
//! Every substitution other than case, whitespace and quotes is a *disguise*: its
//! original offset is recorded so a rule hit can tell whether it was obfuscated.

/// A normalized text and where each of its bytes came from.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The folded text the rules are matched against.
    pub text: String,
    /// For each byte of `text`: the first original byte of the character it came from.
    starts: Vec<u32>,
    /// For each byte of `text`: the end of the original character (or whitespace run).
    ends: Vec<u32>,
    /// Sorted original offsets of disguised characters.
    disguised: Vec<u32>,
    /// Runs of Unicode tag characters (hidden text), in order.
    pub tag_runs: Vec<TagRun>,
}

/// A run of Unicode tag characters: invisible text that many models still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRun {
    /// First original byte of the run.
    pub start: usize,
    /// End (exclusive) original byte of the run.
    pub end: usize,
    /// The ASCII text the tag characters spell.
    pub text: String,
}

/// How one character is folded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fold {
    /// Removed; `disguise` when it is an evasion character.
    Drop { disguise: bool },
    /// Whitespace (collapsed with its neighbours).
    Space,
    /// Replaced by one ASCII byte.
    Ascii { byte: u8, disguise: bool },
    /// Leetspeak: becomes `letter` next to a letter (on both sides when `both`),
    /// stays `raw` otherwise.
    Leet {
        raw: u8,
        letter: u8,
        both: bool,
        disguise: bool,
    },
    /// Copied unchanged.
    Keep,
}

impl Fold {
    fn is_letter(self) -> bool {
        matches!(self, Fold::Ascii { byte, .. } if byte.is_ascii_lowercase())
    }
}

const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

impl Normalized {
    /// Normalize `input`.
    pub fn new(input: &str) -> Self {
        let mut out = Normalized {
            text: String::with_capacity(input.len()),
            starts: Vec::with_capacity(input.len()),
            ends: Vec::with_capacity(input.len()),
            ..Default::default()
        };
        let mut tags = TagCollector::default();
        let mut previous_char = None;
        let mut previous_letter = false;
        let mut at = 0;
        while let Some(c) = next_char(input, at) {
            let len = c.len_utf8();
            let range = (to_u32(at), to_u32(at + len));
            at += len;
            if c.is_ascii_alphabetic() {
                // Fast path for the common case.
                out.push_byte(fold_letter(c as u8), range);
                previous_letter = true;
                previous_char = Some(c);
                continue;
            }
            if is_tag(c) {
                tags.push(range, c, previous_char == Some(BLACK_FLAG));
            }
            let fold = match fold_char(c) {
                Fold::Leet {
                    raw,
                    letter,
                    both,
                    disguise,
                } => {
                    let next_letter = next_is_letter(&input[at..]);
                    let touches = if both {
                        previous_letter && next_letter
                    } else {
                        previous_letter || next_letter
                    };
                    let byte = if touches { letter } else { raw };
                    Fold::Ascii {
                        byte,
                        disguise: disguise || touches,
                    }
                }
                other => other,
            };
            out.push(c, range, fold);
            if !matches!(fold, Fold::Drop { .. }) {
                previous_letter = fold.is_letter();
            }
            previous_char = Some(c);
        }
        out.tag_runs = tags.finish();
        out
    }

    /// Append one folded character (leetspeak already resolved).
    fn push(&mut self, c: char, range: (u32, u32), fold: Fold) {
        match fold {
            Fold::Drop { disguise } => self.mark(disguise, range.0),
            Fold::Space => {
                if self.text.ends_with(' ') {
                    if let Some(last) = self.ends.last_mut() {
                        *last = range.1;
                    }
                } else {
                    self.push_byte(b' ', range);
                }
            }
            Fold::Ascii { byte, disguise }
            | Fold::Leet {
                raw: byte,
                disguise,
                ..
            } => {
                self.mark(disguise, range.0);
                self.push_byte(byte, range);
            }
            Fold::Keep => {
                // Copy the character: each of its bytes maps to its whole range.
                self.text.push(c);
                for _ in 0..c.len_utf8() {
                    self.starts.push(range.0);
                    self.ends.push(range.1);
                }
            }
        }
    }

    fn push_byte(&mut self, byte: u8, range: (u32, u32)) {
        self.text.push(char::from(byte));
        self.starts.push(range.0);
        self.ends.push(range.1);
    }

    fn mark(&mut self, disguise: bool, at: u32) {
        if disguise {
            self.disguised.push(at);
        }
    }

    /// The original byte range of the normalized range `start..end`.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.starts.get(start).copied().unwrap_or(0);
        let last = end
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .copied()
            .unwrap_or(first);
        (first as usize, last.max(first) as usize)
    }

    /// Whether any disguised character lies in the original range `start..end`.
    pub fn disguised_within(&self, start: usize, end: usize) -> bool {
        let i = self.disguised.partition_point(|&at| (at as usize) < start);
        self.disguised.get(i).is_some_and(|&at| (at as usize) < end)
    }
}

/// Offsets are stored as `u32` (texts are far below 4 GiB; larger offsets saturate).
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The character at byte `at` of `text` (ASCII without decoding).
fn next_char(text: &str, at: usize) -> Option<char> {
    match text.as_bytes().get(at) {
        Some(&byte) if byte.is_ascii() => Some(char::from(byte)),
        Some(_) => text.get(at..).and_then(|rest| rest.chars().next()),
        None => None,
    }
}

/// Whether the next character of `rest` that is not dropped folds to a letter.
fn next_is_letter(rest: &str) -> bool {
    rest.chars()
        .map(fold_char)
        .find(|f| !matches!(f, Fold::Drop { .. }))
        .is_some_and(Fold::is_letter)
}

/// Fold an ASCII byte; `disguise` marks bytes reached through a look-alike.
fn fold_ascii(byte: u8, disguise: bool) -> Fold {
    let leet = |letter, both| Fold::Leet {
        raw: byte,
        letter,
        both,
        disguise,
    };
    match byte {
        b'a'..=b'z' | b'A'..=b'Z' => Fold::Ascii {
            byte: fold_letter(byte),
            disguise,
        },
        b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => Fold::Space,
        b'0' => leet(b'o', false),
        b'1' => leet(b'i', false),
        b'3' => leet(b'e', false),
        b'4' | b'@' => leet(b'a', false),
        b'5' | b'$' => leet(b's', false),
        b'7' => leet(b't', false),
        b'!' | b'|' => leet(b'i', true),
        b'`' => Fold::Ascii {
            byte: b'"',
            disguise,
        },
        other => Fold::Ascii {
            byte: other,
            disguise,
        },
    }
}

/// Lower-case an ASCII letter, folding `l` to `i`.
fn fold_letter(byte: u8) -> u8 {
    match byte.to_ascii_lowercase() {
        b'l' => b'i',
        lower => lower,
    }
}

/// Fold one character.
fn fold_char(c: char) -> Fold {
    if c.is_ascii() {
        return fold_ascii(c as u8, false);
    }
    if is_invisible(c) || is_tag(c) {
        return Fold::Drop { disguise: true };
    }
    if c.is_whitespace() {
        return Fold::Space;
    }
    if let Some(byte) = punctuation(c) {
        return Fold::Ascii {
            byte,
            disguise: false,
        };
    }
    match lookalike(c) {
        Some(byte) => fold_ascii(byte, true),
        None => Fold::Keep,
    }
}

/// Unicode tag characters (U+E0000..U+E007F).
fn is_tag(c: char) -> bool {
    ('\u{E0000}'..='\u{E007F}').contains(&c)
}

/// Characters that render as nothing: zero-width, bidirectional controls, soft
/// hyphen, combining marks, variation selectors.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{00AD}'
        | '\u{180E}'
        | '\u{034F}'
        | '\u{0300}'..='\u{036F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// Typographic quotes and dashes, folded without counting as a disguise.
fn punctuation(c: char) -> Option<u8> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => b'\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}'
        | '\u{2033}' => b'"',
        '\u{2010}'..='\u{2015}' | '\u{2212}' => b'-',
        _ => return None,
    })
}

/// The ASCII character a non-ASCII look-alike stands for.
fn lookalike(c: char) -> Option<u8> {
    let code = u32::from(c);
    let letter = |offset: u32| u8::try_from(offset).ok();
    match code {
        // Fullwidth ASCII.
        0xFF01..=0xFF5E => letter(code - 0xFEE0),
        // Mathematical alphanumerics: 52-letter alphabets (A-Z a-z), then digits.
        0x1D400..=0x1D6A3 => letter(u32::from(b'a') + (code - 0x1D400) % 52 % 26),
        0x1D7CE..=0x1D7FF => letter(u32::from(b'0') + (code - 0x1D7CE) % 10),
        // Circled and parenthesized letters.
        0x24B6..=0x24CF => letter(u32::from(b'a') + code - 0x24B6),
        0x24D0..=0x24E9 => letter(u32::from(b'a') + code - 0x24D0),
        0x249C..=0x24B5 => letter(u32::from(b'a') + code - 0x249C),
        _ => homoglyph(c),
    }
}

/// Cyrillic, Greek and accented Latin letters that look like ASCII letters.
fn homoglyph(c: char) -> Option<u8> {
    Some(match c {
        // Cyrillic.
        'а' | 'А' => b'a',
        'В' | 'в' => b'b',
        'с' | 'С' | 'ϲ' => b'c',
        'ԁ' => b'd',
        'е' | 'Е' | 'ё' | 'Ё' => b'e',
        'ɡ' => b'g',
        'һ' | 'Н' | 'н' => b'h',
        'і' | 'І' | 'ї' | 'Ї' | 'ӏ' | 'Ӏ' => b'i',
        'ј' | 'Ј' => b'j',
        'К' | 'к' => b'k',
        'М' | 'м' => b'm',
        'о' | 'О' => b'o',
        'р' | 'Р' => b'p',
        'ԛ' => b'q',
        'ѕ' | 'Ѕ' => b's',
        'Т' | 'т' => b't',
        'у' | 'У' => b'y',
        'х' | 'Х' => b'x',
        'ԝ' | 'Ԝ' => b'w',
        // Greek.
        'α' | 'Α' | 'ά' => b'a',
        'β' | 'Β' => b'b',
        'ε' | 'Ε' | 'έ' => b'e',
        'Ζ' => b'z',
        'Η' | 'η' => b'h',
        'ι' | 'Ι' | 'ί' | 'ϊ' => b'i',
        'κ' | 'Κ' => b'k',
        'Μ' => b'm',
        'ν' | 'Ν' => b'n',
        'ο' | 'Ο' | 'ό' => b'o',
        'ρ' | 'Ρ' => b'p',
        'τ' | 'Τ' => b't',
        'υ' | 'Υ' | 'ύ' => b'u',
        'χ' | 'Χ' => b'x',
        'γ' => b'y',
        // Accented Latin.
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
            b'a'
        }
        'ç' | 'ć' | 'č' | 'Ç' => b'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' | 'È' | 'É' | 'Ê' | 'Ë' => b'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'İ' => b'i',
        'ñ' | 'ń' | 'ň' | 'Ñ' => b'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => {
            b'o'
        }
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'Ù' | 'Ú' | 'Û' | 'Ü' => b'u',
        'ý' | 'ÿ' | 'Ý' => b'y',
        'ś' | 'š' | 'ş' | 'Š' => b's',
        'ź' | 'ż' | 'ž' | 'Ž' => b'z',
        'ł' | 'Ł' => b'l',
        'ß' => b's',
        _ => return None,
    })
}

/// Collects runs of tag characters.
#[derive(Default)]
struct TagCollector {
    runs: Vec<TagRun>,
    /// Whether the current run directly follows a black flag (emoji subdivision flag).
    after_flag: bool,
    /// Whether the current run ended with CANCEL TAG.
    cancelled: bool,
}

impl TagCollector {
    fn push(&mut self, (start, end): (u32, u32), c: char, follows_flag: bool) {
        let (start, end) = (start as usize, end as usize);
        let continues = self.runs.last().is_some_and(|r| r.end == start);
        if !continues {
            self.drop_benign_flag();
            self.runs.push(TagRun {
                start,
                end,
                text: String::new(),
            });
            self.after_flag = follows_flag;
        }
        self.cancelled = c == CANCEL_TAG;
        if let Some(run) = self.runs.last_mut() {
            run.end = end;
            if let Some(ascii) =
                char::from_u32(u32::from(c) - 0xE0000).filter(|a| (' '..='~').contains(a))
            {
                run.text.push(ascii);
            }
        }
    }

    /// An emoji subdivision flag (black flag, 2..7 tag letters or digits, cancel tag)
    /// is legitimate: forget it.
    fn drop_benign_flag(&mut self) {
        let benign = self.after_flag
            && self.cancelled
            && self.runs.last().is_some_and(|r| {
                (2..=7).contains(&r.text.len())
                    && r.text
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if benign {
            self.runs.pop();
        }
        self.after_flag = false;
        self.cancelled = false;
    }

    fn finish(mut self) -> Vec<TagRun> {
        self.drop_benign_flag();
        self.runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(s: &str) -> String {
        Normalized::new(s).text
    }

    #[test]
    fn case_whitespace_and_l_fold() {
        assert_eq!(fold("Ignore   ALL\n\tRules"), "ignore aii ruies");
        assert_eq!(
            fold("“quoted” ‘single’ `tick`"),
            "\"quoted\" 'singie' \"tick\""
        );
    }

    #[test]
    fn leetspeak_only_next_to_letters() {
        assert_eq!(
            fold("1gn0r3 pr3v10us 1n5truct10n5"),
            "ignore previous instructions"
        );
        assert_eq!(fold("version 1.2.3 costs $40"), "version 1.2.3 costs $40");
        assert_eq!(fold("4ll ru1e$"), "aii ruies");
        assert_eq!(fold("stop! now"), "stop! now");
        assert_eq!(fold("ign|re"), "ignire");
    }

    #[test]
    fn lookalikes_and_invisible_characters() {
        // Cyrillic і, о, е; Greek ο; fullwidth; zero-width space; combining mark.
        assert_eq!(fold("іgnоrе prеvіοus"), "ignore previous");
        assert_eq!(fold("ｉｇｎｏｒｅ"), "ignore");
        assert_eq!(fold("ig\u{200b}nore"), "ignore");
        assert_eq!(fold("i\u{0307}gnore"), "ignore");
        assert_eq!(fold("𝐢𝐠𝐧𝐨𝐫𝐞 𝐈"), "ignore i");
        assert_eq!(fold("ⓘⓖⓝⓞⓡⓔ"), "ignore");
        assert_eq!(fold("naïve café"), "naive cafe");
    }

    #[test]
    fn spans_map_back_to_original_bytes() {
        let input = "Say: іg\u{200b}nore  previous";
        let n = Normalized::new(input);
        let start = n.text.find("ignore").unwrap();
        let (a, b) = n.original_span(start, n.text.len());
        assert_eq!(&input[a..b], "іg\u{200b}nore  previous");
        assert!(n.disguised_within(a, b));
        assert!(!n.disguised_within(0, 4));
        // Non-ASCII characters that are kept map byte for byte to their own range.
        let n = Normalized::new("日本 ok");
        assert_eq!(n.text, "日本 ok");
        assert_eq!(n.original_span(3, 6), (3, 6));
    }

    #[test]
    fn tag_characters_are_hidden_text() {
        let hidden: String = "hi there"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let input = format!("hello{hidden}!");
        let n = Normalized::new(&input);
        assert_eq!(n.text, "heiio!");
        assert_eq!(
            n.tag_runs,
            vec![TagRun {
                start: 5,
                end: 5 + hidden.len(),
                text: "hi there".into()
            }]
        );
    }

    #[test]
    fn emoji_subdivision_flags_are_not_hidden_text() {
        // England flag: black flag + "gbeng" tags + cancel tag.
        let england = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
        assert!(
            Normalized::new(&format!("go {england} go"))
                .tag_runs
                .is_empty()
        );
        // The same tags without the flag are smuggled text.
        assert_eq!(
            Normalized::new("\u{E0067}\u{E0062}\u{E007F}")
                .tag_runs
                .len(),
            1
        );
    }
}
