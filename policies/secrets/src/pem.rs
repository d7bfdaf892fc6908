//! Extent of a PEM / OpenSSH / PGP private key block, given where its header ends.

/// How far to look for the END line of a block.
const MAX_BLOCK: usize = 16 * 1024;

/// Fewest base64 characters a block with an END line must contain to be a real key
/// (fewer means a template such as `<your key here>`).
const MIN_BODY: usize = 32;

/// Where the private key block whose BEGIN header ends at `header_end` ends, or `None`
/// when the header is not the start of a key (prose such as "a file starting with
/// -----BEGIN PRIVATE KEY----- and ...", or a template with no key material).
///
/// * With an END line within 16 KiB: the block runs through the END line.
/// * Without one (a truncated paste, or a stream whose END has not arrived yet): the
///   block runs over the following base64 body and PEM header lines, up to the end of
///   the text if they reach it, so a bare header is already a finding.
pub fn block_end(text: &str, header_end: usize) -> Option<usize> {
    let after = text.get(header_end..)?;
    if !starts_key_body(after) {
        return None;
    }
    let search = &after[..portcullis_sdk::char_floor(after, MAX_BLOCK)];
    match find_end_line(search) {
        Some((body_len, line_end)) => {
            (base64_count(&after[..body_len]) >= MIN_BODY).then_some(header_end + line_end)
        }
        None => Some(header_end + body_run(after)),
    }
}

/// A key header is followed by a line break (real or JSON-escaped), the end of the
/// text, or base64 on the same line.
fn starts_key_body(after: &str) -> bool {
    let trimmed = after.trim_start_matches([' ', '\t']);
    match trimmed.as_bytes().first() {
        None | Some(b'\r' | b'\n' | b'\\') => true,
        Some(_) => trimmed.bytes().take(16).filter(|b| is_base64(*b)).count() == 16,
    }
}

/// The offset of the END line in `body` and the offset just past its closing dashes.
fn find_end_line(body: &str) -> Option<(usize, usize)> {
    let (start, marker) = ["-----END ", "---- END "]
        .iter()
        .filter_map(|m| body.find(m).map(|i| (i, *m)))
        .min_by_key(|(i, _)| *i)?;
    let rest = &body[start + marker.len()..];
    let line = &rest[..rest.find(['\n', '\r', '\\']).unwrap_or(rest.len())];
    let close = line.find("----")?;
    let dashes = line[close..].bytes().take_while(|b| *b == b'-').count();
    Some((start, start + marker.len() + close + dashes))
}

/// Length of the key body that follows a header with no END line: base64, white space,
/// escaped line breaks and PEM header lines (`Proc-Type: 4,ENCRYPTED`), trailing white
/// space excluded.
fn body_run(after: &str) -> usize {
    let run = after
        .bytes()
        .take_while(|b| {
            is_base64(*b) || b.is_ascii_whitespace() || matches!(b, b'\\' | b'-' | b':' | b',')
        })
        .count();
    after[..run].trim_end().len()
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn base64_count(body: &str) -> usize {
    body.bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "-----BEGIN RSA PRIVATE KEY-----";
    const BODY: &str =
        "MIIEowIBAAKCAQEAq8Zr2LmX7vNc4TbW9pKdQ3jHf6sYt1uVw0\nRkE5mP2aL8nBc7xZ4vD9qW3eT6yU1iO0pA==";

    fn end_of(text: &str) -> Option<usize> {
        block_end(text, text.find("KEY-----").map(|i| i + 8)?)
    }

    #[test]
    fn complete_block_ends_after_end_line() {
        let text = format!("key:\n{HEADER}\n{BODY}\n-----END RSA PRIVATE KEY-----\nthanks");
        let end = end_of(&text).unwrap();
        assert!(text[..end].ends_with("-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn json_escaped_block_is_found() {
        let text = format!(
            "{{\"k\":\"{HEADER}\\n{}\\n-----END RSA PRIVATE KEY-----\\n\"}}",
            BODY.replace('\n', "\\n")
        );
        let end = end_of(&text).unwrap();
        assert!(text[..end].ends_with("-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn header_alone_or_truncated_body_is_a_block() {
        let alone = format!("here: {HEADER}");
        assert_eq!(end_of(&alone), Some(alone.len()));
        let partial = format!("{HEADER}\nMIIEowIBAAKCAQEAq8Zr2Lm\n");
        assert_eq!(end_of(&partial), Some(partial.len() - 1));
        let partial_end = format!("{HEADER}\n{BODY}\n-----EN");
        assert_eq!(end_of(&partial_end), Some(partial_end.len()));
    }

    #[test]
    fn prose_and_templates_are_not_blocks() {
        assert_eq!(
            end_of(&format!("a file starting with {HEADER} and a body")),
            None
        );
        assert_eq!(
            end_of(&format!(
                "{HEADER}\n<your key here>\n-----END RSA PRIVATE KEY-----"
            )),
            None
        );
        assert_eq!(
            end_of(&format!("{HEADER}\n...\n-----END RSA PRIVATE KEY-----")),
            None
        );
    }
}
