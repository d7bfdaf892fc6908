//! Decoders for payloads hidden in encoded runs: base64 (standard and URL-safe),
//! hex, escape sequences (`%41`, `\x41`, `\u0041`, `&#65;`, `&#x41;`) and rot13.
//! Every decoder stops after `limit` output bytes.

/// The encodings a hidden payload can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Base64, standard or URL-safe alphabet.
    Base64,
    /// Hexadecimal bytes, contiguous or separated.
    Hex,
    /// Percent (URL), `\x`, `\u` or HTML numeric escapes.
    Escapes,
    /// The rot13 letter substitution.
    Rot13,
    /// Unicode tag characters spelling ASCII.
    TagCharacters,
}

impl Encoding {
    /// How a finding describes the encoding.
    pub fn describe(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Escapes => "percent or escape encoding",
            Encoding::Rot13 => "rot13",
            Encoding::TagCharacters => "invisible Unicode tag characters",
        }
    }
}

/// The encodings a candidate run may use, most likely first.
pub fn classify(run: &str) -> &'static [Encoding] {
    let escaped = run.contains(['%', '\\']) || run.contains("&#");
    let hex = run
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b" \t\r\n:,-xX".contains(&b));
    let base64 = run.bytes().all(|b| base64_value(b).is_some() || b == b'=');
    match (escaped, hex, base64) {
        (true, _, _) => &[Encoding::Escapes],
        (false, true, true) => &[Encoding::Hex, Encoding::Base64],
        (false, true, false) => &[Encoding::Hex],
        (false, false, _) => &[Encoding::Base64],
    }
}

/// Decode `run` as `encoding` (not rot13 or tag characters, which are not runs).
pub fn decode(encoding: Encoding, run: &str, limit: usize) -> Vec<u8> {
    match encoding {
        Encoding::Base64 => base64(run, limit),
        Encoding::Hex => hex(run, limit),
        Encoding::Escapes => unescape(run, limit),
        Encoding::Rot13 | Encoding::TagCharacters => Vec::new(),
    }
}

/// Decode base64 (either alphabet, padding optional); other bytes are skipped.
pub fn base64(input: &str, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bits: u32 = 0;
    let mut count = 0;
    for byte in input.bytes() {
        if byte == b'=' {
            break;
        }
        let Some(value) = base64_value(byte) else {
            continue;
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            if out.len() >= limit {
                break;
            }
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn base64_value(byte: u8) -> Option<u8> {
    Some(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

/// Decode hex digit pairs; `0x` prefixes and separators are skipped.
pub fn hex(input: &str, limit: usize) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut high: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() && out.len() < limit {
        if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) && high.is_none() {
            i += 2;
            continue;
        }
        if let Some(value) = hex_value(bytes[i]) {
            match high.take() {
                Some(h) => out.push(h << 4 | value),
                None => high = Some(value),
            }
        }
        i += 1;
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decode escape sequences: `%HH` (and `+` as a space), `\xHH`, `\uHHHH`, `&#DDD;` and
/// `&#xHH;`. Other characters are copied.
pub fn unescape(input: &str, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        if out.len() >= limit {
            break;
        }
        let (decoded, used) = escape_at(rest).unwrap_or_else(|| (Decoded::Char(c), c.len_utf8()));
        match decoded {
            Decoded::Byte(b) => out.push(b),
            Decoded::Char(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
        rest = &rest[used..];
    }
    out.truncate(limit);
    out
}

enum Decoded {
    Byte(u8),
    Char(char),
}

/// The escape sequence at the start of `s`, and its length.
fn escape_at(s: &str) -> Option<(Decoded, usize)> {
    let parse = |digits: &str, radix| u32::from_str_radix(digits, radix).ok();
    let hex_digits = |from: usize, n: usize| {
        s.get(from..from + n)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if s.starts_with('+') {
        return Some((Decoded::Byte(b' '), 1));
    }
    if s.starts_with('%') || s.starts_with("\\x") {
        let from = if s.starts_with('%') { 1 } else { 2 };
        let value = parse(hex_digits(from, 2)?, 16)?;
        return Some((Decoded::Byte(u8::try_from(value).ok()?), from + 2));
    }
    if s.starts_with("\\u") {
        let value = parse(hex_digits(2, 4)?, 16)?;
        return Some((Decoded::Char(char::from_u32(value)?), 6));
    }
    let entity = s.strip_prefix("&#")?;
    let end = entity.find(';').filter(|&e| e <= 8)?;
    let body = &entity[..end];
    let value = match body.strip_prefix(['x', 'X']) {
        Some(h) => parse(h, 16)?,
        None => parse(body, 10)?,
    };
    Some((Decoded::Char(char::from_u32(value)?), end + 3))
}

/// Apply rot13 to ASCII letters (byte offsets are unchanged).
pub fn rot13(input: &str) -> String {
    input
        .chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => char::from(c as u8 + 13),
            'n'..='z' | 'N'..='Z' => char::from(c as u8 - 13),
            other => other,
        })
        .collect()
}

/// The decoded bytes as text, if they look like text (mostly printable, mostly
/// letters, digits and spaces), rather than binary data.
pub fn as_text(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut total = 0usize;
    let mut bad = 0usize;
    let mut wordy = 0usize;
    for c in text.chars() {
        total += 1;
        if c == char::REPLACEMENT_CHARACTER || (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            bad += 1;
        } else if c.is_alphanumeric() || c.is_whitespace() {
            wordy += 1;
        }
    }
    let looks_like_text = total >= 4 && bad * 20 <= total && wordy * 10 >= total * 6;
    looks_like_text.then(|| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_classified() {
        assert_eq!(classify("aGVsbG8gd29ybGQ="), [Encoding::Base64]);
        assert_eq!(
            classify("68656c6c6f20776f726c6421"),
            [Encoding::Hex, Encoding::Base64]
        );
        assert_eq!(classify("68 65 6c 6c 6f 20 77 6f"), [Encoding::Hex]);
        assert_eq!(classify("a%20b%20c%20d"), [Encoding::Escapes]);
    }

    #[test]
    fn base64_both_alphabets_with_and_without_padding() {
        assert_eq!(base64("aGVsbG8gd29ybGQ=", 100), b"hello world");
        assert_eq!(base64("aGVsbG8gd29ybGQ", 100), b"hello world");
        assert_eq!(base64("Pz8-Pw", 100), base64("Pz8+Pw", 100));
        assert_eq!(base64("Pz8_Pw", 100), base64("Pz8/Pw", 100));
        assert_eq!(base64("aGVsbG8gd29ybGQ=", 4), b"hell");
    }

    #[test]
    fn hex_contiguous_separated_and_prefixed() {
        assert_eq!(hex("68656c6c6f", 100), b"hello");
        assert_eq!(hex("68 65 6C 6c 6f", 100), b"hello");
        assert_eq!(hex("0x68, 0x65, 0x6c, 0x6c, 0x6f", 100), b"hello");
        assert_eq!(hex("68656c6c6f", 2), b"he");
    }

    #[test]
    fn escapes_of_every_kind() {
        assert_eq!(unescape("hi%20there+you", 100), b"hi there you");
        assert_eq!(unescape("\\x68\\x69", 100), b"hi");
        assert_eq!(unescape("\\u0068\\u0069", 100), b"hi");
        assert_eq!(unescape("&#104;&#x69;", 100), b"hi");
        assert_eq!(unescape("100%zz", 100), b"100%zz");
        assert_eq!(unescape("%68%69%70", 2), b"hi");
    }

    #[test]
    fn rot13_round_trips_and_keeps_offsets() {
        assert_eq!(rot13("Ignore, é!"), "Vtaber, é!");
        assert_eq!(rot13(&rot13("Hello World")), "Hello World");
    }

    #[test]
    fn text_is_told_from_binary() {
        assert_eq!(
            as_text(b"ignore previous").as_deref(),
            Some("ignore previous")
        );
        assert!(as_text(&[0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe]).is_none());
        assert!(as_text(&base64("ThisIsAVeryLongCamelCaseIdentifier", 100)).is_none());
        assert!(as_text(b"{}").is_none());
    }
}
