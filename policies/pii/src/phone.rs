//! Phone numbers: E.164 country codes and national lengths, North American numbering
//! plan rules, and European national (trunk `0`) formats.
//!
//! Every function takes the digit runs of a pattern match (byte ranges into `text`).
//! International numbers may be followed by unrelated numbers the pattern swallowed
//! ("call +1 415 555 2671 24 hours a day"): the longest valid prefix of runs is taken.

/// A byte range of consecutive ASCII digits.
pub type Run = (usize, usize);

/// Two-digit country codes (ITU-T E.164).
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// First two digits of the three-digit country codes.
const THREE_DIGIT_ZONES: &[&str] = &[
    "21", "22", "23", "24", "25", "26", "29", "35", "37", "38", "42", "50", "59", "67", "68", "69",
    "80", "85", "87", "88", "96", "97", "99",
];

/// National significant number lengths of common countries; others allow 6..=12.
#[rustfmt::skip]
const NATIONAL_LENGTHS: &[(&str, usize, usize)] = &[
    ("1", 10, 10), ("7", 10, 10), ("20", 9, 10), ("27", 9, 9), ("30", 10, 10), ("31", 9, 9),
    ("32", 8, 9), ("33", 9, 9), ("34", 9, 9), ("36", 8, 9), ("39", 6, 11), ("40", 9, 9),
    ("41", 9, 9), ("43", 6, 13), ("44", 9, 10), ("45", 8, 8), ("46", 7, 13), ("47", 8, 8),
    ("48", 9, 9), ("49", 6, 13), ("52", 10, 10), ("55", 10, 11), ("61", 9, 9), ("81", 9, 10),
    ("86", 10, 11), ("91", 10, 10),
];

/// An international number (`+` or `00` prefix): returns the end of the longest valid
/// prefix of `runs`. A `(0)` trunk marker after the country code is ignored.
pub fn international(text: &str, start: usize, runs: &[Run]) -> Option<usize> {
    let plus = text[start..].starts_with('+');
    (1..=runs.len()).rev().find_map(|k| {
        let digits = international_digits(text, &runs[..k]);
        let digits = if plus {
            digits.as_str()
        } else {
            digits.strip_prefix("00")?
        };
        e164_valid(digits).then(|| runs[k - 1].1)
    })
}

/// A formatted North American number: `(415) 555-2671`, `415-555-2671`,
/// `415.555.2671`, `415 555 2671`, optionally preceded by `1`. Returns the base score
/// (percent): parentheses and consistent dashes are the strongest signals.
pub fn nanp_formatted(text: &str, runs: &[Run]) -> Option<i32> {
    let runs = match runs {
        [first, rest @ ..] if rest.len() == 3 && &text[first.0..first.1] == "1" => rest,
        _ => runs,
    };
    let [area, exchange, line] = runs else {
        return None;
    };
    let lengths = [area.1 - area.0, exchange.1 - exchange.0, line.1 - line.0];
    if lengths != [3, 3, 4]
        || !nanp_valid(&text[area.0..line.1].replace(|c: char| !c.is_ascii_digit(), ""))
    {
        return None;
    }
    let first = &text[area.1..exchange.0];
    let second = &text[exchange.1..line.0];
    Some(match (first, second) {
        _ if first.starts_with(')') => 80,
        ("-", "-") => 75,
        (".", ".") => 70,
        _ => 60,
    })
}

/// Ten digits (or eleven starting with `1`) that follow North American numbering
/// plan rules.
pub fn nanp_bare(digits: &str) -> bool {
    let digits = if digits.len() == 11 {
        digits.strip_prefix('1').unwrap_or(digits)
    } else {
        digits
    };
    nanp_valid(digits)
}

/// A European national number with trunk prefix `0`: `020 7946 0958`,
/// `01 23 45 67 89`, `030 123456`, `089/1234567`: trunk `0` then a non-zero digit, a
/// first group of 2-5 digits, 9-12 digits in all, single-character separators: the one
/// after the area code (`020-123 4567`, `089/123 4567`) may differ from the others,
/// which agree. Dots only in French pairs (`01.23.45.67.89`).
pub fn national(text: &str, runs: &[Run]) -> bool {
    let Some(&(first_start, first_end)) = runs.first() else {
        return false;
    };
    let digits: usize = runs.iter().map(|(s, e)| e - s).sum();
    let separators: Vec<&str> = runs.windows(2).map(|w| &text[w[0].1..w[1].0]).collect();
    let consistent = separators.iter().all(|s| s.len() == 1)
        && separators.windows(2).skip(1).all(|w| w[0] == w[1]);
    let dotted = separators.contains(&".");
    let french_pairs = runs.len() == 5
        && runs.iter().all(|(s, e)| e - s == 2)
        && separators.iter().all(|s| *s == ".");
    runs.len() >= 2
        && text[first_start..].starts_with('0')
        && (2..=5).contains(&(first_end - first_start))
        && (9..=12).contains(&digits)
        && consistent
        && (!dotted || french_pairs)
}

/// The digits of an international number, without a `(0)` trunk marker.
fn international_digits(text: &str, runs: &[Run]) -> String {
    runs.iter()
        .enumerate()
        .filter(|&(i, &(s, e))| {
            !(i > 0 && &text[s..e] == "0" && text[..s].ends_with('(') && text[e..].starts_with(')'))
        })
        .map(|(_, &(s, e))| &text[s..e])
        .collect()
}

/// Country code, national length and (for `+1`) numbering plan rules.
fn e164_valid(digits: &str) -> bool {
    let Some(code_len) = country_code_len(digits) else {
        return false;
    };
    let (code, national) = digits.split_at(code_len);
    let (min, max) = NATIONAL_LENGTHS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or((6, 12), |&(_, lo, hi)| (lo, hi));
    (8..=15).contains(&digits.len())
        && (min..=max).contains(&national.len())
        && (!national.starts_with('0') || code == "39")
        && (code != "1" || nanp_valid(national))
}

/// Length of the country code `digits` starts with.
fn country_code_len(digits: &str) -> Option<usize> {
    let two = digits.get(..2)?;
    if digits.starts_with(['1', '7']) {
        Some(1)
    } else if TWO_DIGIT_CODES.contains(&two) {
        Some(2)
    } else if THREE_DIGIT_ZONES.contains(&two) {
        Some(3)
    } else {
        None
    }
}

/// Ten digits NXX-NXX-XXXX where N is 2-9 and neither the area code nor the exchange
/// is a service code (N11).
fn nanp_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    let nxx = |i: usize| b[i] >= b'2' && !(b[i + 1] == b'1' && b[i + 2] == b'1');
    b.len() == 10 && b.iter().all(u8::is_ascii_digit) && nxx(0) && nxx(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<Run> {
        crate::detect::digit_runs(text, 0, text.len())
    }

    fn intl(text: &str) -> Option<&str> {
        international(text, 0, &runs(text)).map(|end| &text[..end])
    }

    #[test]
    fn international_numbers_need_a_real_country_code_and_length() {
        assert_eq!(intl("+14155552671"), Some("+14155552671"));
        assert_eq!(intl("+1 (415) 555-2671"), Some("+1 (415) 555-2671"));
        assert_eq!(intl("+44 20 7946 0958"), Some("+44 20 7946 0958"));
        assert_eq!(intl("+44 (0)20 7946 0958"), Some("+44 (0)20 7946 0958"));
        assert_eq!(intl("+49 30 123456"), Some("+49 30 123456"));
        assert_eq!(intl("+33 1 23 45 67 89"), Some("+33 1 23 45 67 89"));
        assert_eq!(intl("0044 20 7946 0958"), Some("0044 20 7946 0958"));
        assert_eq!(intl("+1 415 555 2671 24"), Some("+1 415 555 2671"));
        assert_eq!(intl("+1 415 055 2671"), None); // exchange starts with 0
        assert_eq!(intl("+1 911 555 2671"), None); // N11 area code
        assert_eq!(intl("+30 45 60 75"), None); // Greece needs 10 digits
        assert_eq!(intl("+5 10 15 20 25"), None);
        assert_eq!(intl("+0 123 456 789"), None);
    }

    #[test]
    fn nanp_formats_and_rules() {
        let score = |t: &str| nanp_formatted(t, &runs(t));
        assert_eq!(score("(415) 555-2671"), Some(80));
        assert_eq!(score("415-555-2671"), Some(75));
        assert_eq!(score("415.555.2671"), Some(70));
        assert_eq!(score("415 555 2671"), Some(60));
        assert_eq!(score("1-415-555-2671"), Some(75));
        assert_eq!(score("115-555-2671"), None);
        assert_eq!(score("415-155-2671"), None);
        assert_eq!(score("411-555-2671"), None);
        assert!(nanp_bare("4155552671") && nanp_bare("14155552671"));
        assert!(!nanp_bare("1234567890") && !nanp_bare("4151552671"));
    }

    #[test]
    fn national_formats() {
        let nat = |t: &str| national(t, &runs(t));
        for good in [
            "020 7946 0958",
            "01 23 45 67 89",
            "01.23.45.67.89",
            "030 123456",
            "089/1234567",
            "020-123 4567",
            "08-123 456 78",
        ] {
            assert!(nat(good), "{good}");
        }
        for bad in [
            "01.02.2023",
            "05 12 2023",
            "020.7946.0958",
            "020 123-45 67",
            "0201234567",
            "020 12",
        ] {
            assert!(!nat(bad), "{bad}");
        }
    }
}
