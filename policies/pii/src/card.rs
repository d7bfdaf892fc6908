//! Payment card numbers: the Luhn checksum and issuer (IIN) prefixes with their lengths.

/// A card network.
#[derive(Debug)]
pub struct Brand {
    /// Network name, used in finding messages.
    pub name: &'static str,
    /// Inclusive IIN prefix ranges; both ends have the same number of digits.
    prefixes: &'static [(u32, u32)],
    /// Valid card number lengths.
    lengths: &'static [usize],
    /// Base score (percent) of a Luhn-valid number of this brand.
    pub score: i32,
}

/// Known networks, most specific first (Discover's 622126-622925 before UnionPay's 62).
const BRANDS: &[Brand] = &[
    Brand {
        name: "Visa",
        prefixes: &[(4, 4)],
        lengths: &[13, 16, 19],
        score: 85,
    },
    Brand {
        name: "Mastercard",
        prefixes: &[(51, 55), (2221, 2720)],
        lengths: &[16],
        score: 85,
    },
    Brand {
        name: "American Express",
        prefixes: &[(34, 34), (37, 37)],
        lengths: &[15],
        score: 85,
    },
    Brand {
        name: "Discover",
        prefixes: &[(6011, 6011), (644, 649), (65, 65), (622_126, 622_925)],
        lengths: &[16, 17, 18, 19],
        score: 85,
    },
    Brand {
        name: "JCB",
        prefixes: &[(3528, 3589)],
        lengths: &[16, 17, 18, 19],
        score: 85,
    },
    Brand {
        name: "Diners Club",
        prefixes: &[(300, 305), (3095, 3095), (36, 36), (38, 39)],
        lengths: &[14, 15, 16, 17, 18, 19],
        score: 80,
    },
    Brand {
        name: "Mir",
        prefixes: &[(2200, 2204)],
        lengths: &[16, 17, 18, 19],
        score: 80,
    },
    Brand {
        name: "UnionPay",
        prefixes: &[(62, 62)],
        lengths: &[16, 17, 18, 19],
        score: 75,
    },
    Brand {
        name: "Maestro",
        prefixes: &[
            (50, 50),
            (56, 58),
            (6304, 6304),
            (6759, 6759),
            (676_770, 676_774),
        ],
        lengths: &[13, 14, 15, 16, 17, 18, 19],
        score: 75,
    },
];

/// The Luhn (mod 10) checksum of ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The network whose prefixes and lengths fit `digits`.
pub fn brand(digits: &[u8]) -> Option<&'static Brand> {
    BRANDS.iter().find(|b| {
        b.lengths.contains(&digits.len())
            && b.prefixes
                .iter()
                .any(|&(lo, hi)| has_prefix(digits, lo, hi))
    })
}

/// A plausible card number: only digits, Luhn-valid, of a known network.
pub fn identify(digits: &[u8]) -> Option<&'static Brand> {
    if digits.iter().all(u8::is_ascii_digit) && luhn(digits) {
        brand(digits)
    } else {
        None
    }
}

fn has_prefix(digits: &[u8], lo: u32, hi: u32) -> bool {
    let width = lo.to_string().len();
    digits
        .get(..width)
        .map(|p| p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
        .is_some_and(|p| (lo..=hi).contains(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(number: &str) -> Option<&'static str> {
        identify(number.as_bytes()).map(|b| b.name)
    }

    #[test]
    fn luhn_accepts_test_numbers_and_rejects_one_digit_off() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"1234567812345678"));
    }

    #[test]
    fn networks_are_identified_by_prefix_and_length() {
        assert_eq!(name("4111111111111111"), Some("Visa"));
        assert_eq!(name("4222222222222"), Some("Visa"));
        assert_eq!(name("5555555555554444"), Some("Mastercard"));
        assert_eq!(name("2221000000000009"), Some("Mastercard"));
        assert_eq!(name("378282246310005"), Some("American Express"));
        assert_eq!(name("6011111111111117"), Some("Discover"));
        assert_eq!(name("3530111333300000"), Some("JCB"));
        assert_eq!(name("30569309025904"), Some("Diners Club"));
        assert_eq!(name("6200000000000005"), Some("UnionPay"));
    }

    #[test]
    fn unknown_prefixes_and_wrong_lengths_are_not_cards() {
        assert_eq!(name("0000000000000000"), None); // Luhn-valid, no network
        assert_eq!(name("9111111111111119"), None);
        assert_eq!(name("37828224631000"), None); // Amex prefix, 14 digits
        assert_eq!(name("41111111111111111"), None); // Visa prefix, 17 digits
    }
}
