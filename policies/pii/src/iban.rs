//! International bank account numbers: per-country lengths and the ISO 7064 mod-97 check.

/// IBAN length per country (SWIFT IBAN registry), sorted by country code.
#[rustfmt::skip]
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BI", 27), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22),
    ("CY", 28), ("CZ", 24), ("DE", 22), ("DJ", 27), ("DK", 18), ("DO", 28), ("EE", 20),
    ("EG", 29), ("ES", 24), ("FI", 18), ("FK", 18), ("FO", 18), ("FR", 27), ("GB", 22),
    ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27), ("GT", 28), ("HR", 21), ("HU", 28),
    ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27), ("JO", 30), ("KW", 30),
    ("KZ", 20), ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20), ("LV", 21),
    ("LY", 25), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19), ("MN", 20), ("MR", 27),
    ("MT", 31), ("MU", 30), ("NI", 28), ("NL", 18), ("NO", 15), ("OM", 23), ("PK", 24),
    ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22), ("RU", 33),
    ("SA", 24), ("SC", 31), ("SD", 18), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27),
    ("SO", 23), ("ST", 25), ("SV", 28), ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29),
    ("VA", 22), ("VG", 24), ("XK", 20), ("YE", 30),
];

/// The IBAN length of a country (upper-case code), if it uses IBANs.
pub fn length(country: &str) -> Option<usize> {
    LENGTHS
        .binary_search_by_key(&country, |(c, _)| c)
        .ok()
        .map(|i| LENGTHS[i].1)
}

/// Read the IBAN starting at byte `start` of `text`: as many characters as its country
/// prescribes, either contiguous or in the printed groups of four separated by single
/// spaces. Returns the end offset when the check digits hold.
pub fn read(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes().get(start..)?;
    let country = std::str::from_utf8(bytes.get(..2)?)
        .ok()?
        .to_ascii_uppercase();
    let want = length(&country)?;
    let mut iban = String::with_capacity(want);
    let mut i = 0;
    while iban.len() < want {
        let b = *bytes.get(i)?;
        let group_break = b == b' '
            && !iban.is_empty()
            && iban.len().is_multiple_of(4)
            && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
        if b.is_ascii_alphanumeric() {
            iban.push(char::from(b.to_ascii_uppercase()));
        } else if !group_break {
            return None;
        }
        i += 1;
    }
    valid(&iban).then_some(start + i)
}

/// Check digits in 02..=98 and the mod-97 remainder of the rearranged number equal to 1.
pub fn valid(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    let check_digits = bytes.get(2..4).filter(|d| d.iter().all(u8::is_ascii_digit));
    let Some(check) = check_digits.map(|d| u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0'))
    else {
        return false;
    };
    (2..=98).contains(&check) && mod97(bytes[4..].iter().chain(&bytes[..4])) == Some(1)
}

fn mod97<'a>(mut chars: impl Iterator<Item = &'a u8>) -> Option<u32> {
    chars.try_fold(0u32, |rem, &c| match c {
        b'0'..=b'9' => Some((rem * 10 + u32::from(c - b'0')) % 97),
        b'A'..=b'Z' => Some((rem * 100 + u32::from(c - b'A') + 10) % 97),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(length("DE"), Some(22));
        assert_eq!(length("US"), None);
    }

    #[test]
    fn registry_examples_are_valid() {
        for iban in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "CH9300762011623852957",
            "ES9121000418450200051332",
            "IT60X0542811101000000123456",
            "AT611904300234573201",
            "PL61109010140000071219812874",
            "NO9386011117947",
        ] {
            assert!(valid(iban), "{iban}");
            assert_eq!(length(&iban[..2]), Some(iban.len()), "{iban}");
        }
    }

    #[test]
    fn a_changed_digit_fails_the_checksum() {
        assert!(!valid("DE89370400440532013001"));
        assert!(!valid("GB82WEST12345698765433"));
        assert!(!valid("DE00370400440532013000"));
    }

    #[test]
    fn reads_printed_and_contiguous_forms() {
        let text = "IBAN DE89 3704 0044 0532 0130 00 ok";
        assert_eq!(read(text, 5), Some(32));
        assert_eq!(read("de89370400440532013000", 0), Some(22));
        assert_eq!(read("DE89 3704 0044 0532 01", 0), None); // too short
        assert_eq!(read("DE89  3704 0044 0532 0130 00", 0), None); // double space
    }
}
