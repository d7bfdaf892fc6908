//! JSON Web Token shape check: three base64url segments whose header decodes to a
//! JSON object with an `alg` string and whose payload decodes to a JSON object.

/// Decode unpadded (or padded) base64url; `None` on any character outside the alphabet
/// or an impossible length.
pub fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let input = input.trim_end_matches('=');
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in input.bytes() {
        acc = (acc << 6) | u32::from(sextet(b)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The 6-bit value of one base64url character.
fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decode one segment as a JSON object.
fn json_object(segment: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = base64url_decode(segment)?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// True when `token` is a signed JWT: `header.payload.signature`, the header a JSON
/// object with a string `alg` other than `none`, the payload a JSON object, and a
/// non-empty signature. Unsigned (`alg: none`) tokens are not credentials.
pub fn is_signed_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if signature.is_empty() || base64url_decode(signature).is_none() {
        return false;
    }
    let alg_ok = json_object(header)
        .and_then(|h| {
            h.get("alg")
                .and_then(|a| a.as_str())
                .map(|a| !a.eq_ignore_ascii_case("none"))
        })
        .unwrap_or(false);
    alg_ok && json_object(payload).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Base64url-encode without padding (test helper).
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn token(header: &str, payload: &str, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            encode(header.as_bytes()),
            encode(payload.as_bytes())
        )
    }

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64url_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(base64url_decode("a").is_none());
        assert!(base64url_decode("a+b/").is_none());
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                base64url_decode(&encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
    }

    #[test]
    fn accepts_signed_jwts() {
        let t = token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"42","iat":1700000000}"#,
            "c2lnbmF0dXJlLWJ5dGVz",
        );
        assert!(is_signed_jwt(&t));
    }

    #[test]
    fn rejects_lookalikes() {
        let sig = "c2lnbmF0dXJlLWJ5dGVz";
        // No alg, alg none, payload not JSON, missing signature, four segments.
        assert!(!is_signed_jwt(&token(
            r#"{"typ":"JWT"}"#,
            r#"{"a":1}"#,
            sig
        )));
        assert!(!is_signed_jwt(&token(
            r#"{"alg":"none"}"#,
            r#"{"a":1}"#,
            sig
        )));
        assert!(!is_signed_jwt(&token(
            r#"{"alg":"HS256"}"#,
            "plain text",
            sig
        )));
        assert!(!is_signed_jwt(&token(
            r#"{"alg":"HS256"}"#,
            r#"{"a":1}"#,
            ""
        )));
        assert!(!is_signed_jwt(&format!(
            "{}.x",
            token(r#"{"alg":"HS256"}"#, r#"{"a":1}"#, sig)
        )));
        assert!(!is_signed_jwt("eyJub3QganNvbg.eyJhIjoxfQ.c2ln"));
    }
}
