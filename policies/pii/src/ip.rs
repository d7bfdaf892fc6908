//! IPv4 and IPv6 addresses: strict parsing and a base score.

/// The four octets of a dotted-quad IPv4 address (no leading zeros, each <= 255).
pub fn ipv4(s: &str) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        let well_formed = (1..=3).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !well_formed {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(octets)
}

/// Base score (percent) of an IPv4 address: unspecified, loopback and broadcast or
/// netmask-like addresses (first octet 0, 127 or 255) say little about anyone.
pub fn ipv4_score(octets: [u8; 4]) -> i32 {
    if matches!(octets[0], 0 | 127 | 255) {
        20
    } else {
        70
    }
}

/// The number of explicit 16-bit groups of a valid IPv6 address (an embedded IPv4
/// address counts as two), or `None` when `s` is not one.
pub fn ipv6(s: &str) -> Option<usize> {
    match s.split_once("::") {
        Some((left, right)) if !right.contains("::") => {
            let groups = side(left, false)? + side(right, true)?;
            (groups <= 7).then_some(groups)
        }
        Some(_) => None,
        None => side(s, true).filter(|&groups| groups == 8),
    }
}

/// Base score (percent) of an IPv6 address with `groups` explicit groups: short
/// compressed forms (`fe80::1`, `a::b`) are often something else; `::1` is loopback.
pub fn ipv6_score(groups: usize) -> Option<i32> {
    match groups {
        0 | 1 => None,
        2 => Some(40),
        _ => Some(75),
    }
}

/// Drop what a loose match may have caught around an IPv6 address: a sentence-ending
/// dot, a single colon before or after (`ip:2001:db8::1`, `2001:db8::1: up`).
/// Returns the trimmed byte range relative to `s`.
pub fn trim_ipv6(s: &str) -> (usize, usize) {
    let mut end = s.trim_end_matches('.').len();
    if s[..end].ends_with(':') && !s[..end].ends_with("::") {
        end -= 1;
    }
    let start = usize::from(s.starts_with(':') && !s.starts_with("::"));
    (start, end.max(start))
}

/// Groups of one side of `::` (or of a whole uncompressed address). `last` is true
/// when this side ends the address, where an embedded IPv4 address may appear.
fn side(part: &str, last: bool) -> Option<usize> {
    if part.is_empty() {
        return Some(0);
    }
    let pieces: Vec<&str> = part.split(':').collect();
    let mut groups = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if last && i + 1 == pieces.len() && piece.contains('.') {
            ipv4(piece)?;
            groups += 2;
        } else if (1..=4).contains(&piece.len()) && piece.bytes().all(|b| b.is_ascii_hexdigit()) {
            groups += 1;
        } else {
            return None;
        }
    }
    Some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_strict() {
        assert_eq!(ipv4("192.168.1.10"), Some([192, 168, 1, 10]));
        assert_eq!(ipv4("0.0.0.0"), Some([0, 0, 0, 0]));
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "a.b.c.d",
        ] {
            assert_eq!(ipv4(bad), None, "{bad}");
        }
        assert_eq!(ipv4_score([127, 0, 0, 1]), 20);
        assert_eq!(ipv4_score([8, 8, 8, 8]), 70);
    }

    #[test]
    fn ipv6_full_and_compressed_forms() {
        assert_eq!(ipv6("2001:0db8:85a3:0000:0000:8a2e:0370:7334"), Some(8));
        assert_eq!(ipv6("2001:db8::8a2e:370:7334"), Some(5));
        assert_eq!(ipv6("fe80::1"), Some(2));
        assert_eq!(ipv6("::1"), Some(1));
        assert_eq!(ipv6("::ffff:192.0.2.128"), Some(3));
        for bad in [
            "12:30:45",
            "1::2::3",
            "2001:db8:::1",
            "00:1a:2b:3c:4d:5e",
            "1:2:3:4:5:6:7:8:9",
            "12345::1",
            "1.2.3.4::",
        ] {
            assert_eq!(ipv6(bad), None, "{bad}");
        }
        assert_eq!(ipv6_score(1), None);
        assert_eq!(ipv6_score(3), Some(75));
    }

    #[test]
    fn trimming_drops_punctuation_around_the_address() {
        assert_eq!(trim_ipv6("2001:db8::1."), (0, 11));
        assert_eq!(trim_ipv6(":2001:db8::1:"), (1, 12));
        assert_eq!(trim_ipv6("2001:db8::"), (0, 10));
    }
}
