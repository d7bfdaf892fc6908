//! US social security numbers: the ranges the SSA never issues.

/// Whether nine ASCII digits are an issuable SSN: area not 000, 666 or 900-999,
/// group not 00, serial not 0000.
pub fn valid(digits: &[u8]) -> bool {
    let [a, b, c, g1, g2, s @ ..] = digits else {
        return false;
    };
    let area = [*a, *b, *c];
    digits.len() == 9
        && digits.iter().all(u8::is_ascii_digit)
        && &area != b"000"
        && &area != b"666"
        && *a != b'9'
        && [*g1, *g2] != *b"00"
        && s != b"0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_issued_ranges_are_rejected() {
        assert!(valid(b"123456789"));
        assert!(valid(b"078051120"));
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "999123456",
            "123004567",
            "123450000",
            "12345678",
        ] {
            assert!(!valid(bad.as_bytes()), "{bad}");
        }
    }
}
