//! Heuristics for candidate secret values: Shannon entropy and placeholder detection.

/// Shannon entropy of `value` in bits per byte (0 for an empty value).
pub fn shannon_entropy(value: &str) -> f64 {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// The entropy a value of `len` bytes must reach: `min_entropy` for values of 16 bytes
/// or more, scaled down by log2(len) / 4 for shorter ones (a string of n bytes cannot
/// exceed log2(n) bits per byte, so a fixed bar would reject every short password).
pub fn required_entropy(min_entropy: f64, len: usize) -> f64 {
    let scale = ((len.max(1) as f64).log2() / 4.0).min(1.0);
    min_entropy * scale
}

/// Substrings that mark a value as a placeholder, not a real credential (lower case).
const PLACEHOLDER_PARTS: &[&str] = &[
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "your_",
    "your-",
    "yourpass",
    "yoursecret",
    "yourtoken",
    "yourkey",
    "example",
    "redacted",
    "dummy",
    "xxxx",
    "****",
    "...",
    "\u{2026}",
    "${",
    "{{",
    "replace_me",
    "replace-me",
    "todo",
    "fixme",
];

/// Whole values that are placeholders or type names rather than credentials (lower case).
const PLACEHOLDER_VALUES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "apikey",
    "api_key",
    "null",
    "none",
    "nil",
    "undefined",
    "true",
    "false",
    "empty",
    "required",
    "optional",
    "string",
    "hidden",
    "masked",
];

/// True when `value` is obviously not a real credential: a variable reference
/// (`$VAR`, `${VAR}`, `%VAR%`, `{{ var }}`), a template (`<your-key>`), an already
/// redacted placeholder (`[PASSWORD_1]`), a mask (`****`), a path, or a well-known
/// placeholder word.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let first = value.as_bytes().first().copied();
    matches!(first, Some(b'$' | b'%' | b'<' | b'[' | b'*' | b'{'))
        || is_path(value)
        || PLACEHOLDER_VALUES.contains(&lower.as_str())
        || PLACEHOLDER_PARTS.iter().any(|p| lower.contains(p))
}

/// True for values that start like a file system path.
fn is_path(value: &str) -> bool {
    let b = value.as_bytes();
    value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("~/")
        || (b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
}

/// True when an unquoted value looks like code rather than a secret: a call or index
/// (`getpass()`, `env[`) or a dotted path (`config.api_key`, `process.env.TOKEN`).
pub fn looks_like_code(value: &str) -> bool {
    value.contains(['(', '[', '{']) || is_dotted_path(value)
}

/// `a.b`, `self.token`, `process.env.API_KEY`: digit-free identifiers joined by dots.
fn is_dotted_path(value: &str) -> bool {
    value.contains('.')
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        })
}

/// True for a word or identifier rather than a random string: letters only, optionally
/// joined by `_` or `-`, in a word-like case pattern (all lower, all upper, or
/// capitalized). Covers `incorrect`, `Required`, `user_password`, `DB_PASSWORD`,
/// `my-app-secret`.
pub fn looks_like_word(value: &str) -> bool {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
    {
        return false;
    }
    let rest = value.get(1..).unwrap_or("");
    let all_lower = value.bytes().all(|b| !b.is_ascii_uppercase());
    let all_upper = value.bytes().all(|b| !b.is_ascii_lowercase());
    let capitalized = rest.bytes().all(|b| !b.is_ascii_uppercase());
    all_lower || all_upper || capitalized
}

/// True when `value` mixes upper case, lower case and digits (random-looking tokens do;
/// words, hex digests and version strings usually do not).
pub fn has_mixed_classes(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_uppercase())
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && value.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaaaaaa"), 0.0);
        assert!((shannon_entropy("abab") - 1.0).abs() < 1e-9);
        assert!((shannon_entropy("abcdefgh") - 3.0).abs() < 1e-9);
        // A random-looking token scores high, a repeated placeholder low.
        assert!(shannon_entropy("q8Zr2LmX7vNc4TbW9pKd") > 4.0);
        assert!(shannon_entropy("xxxxxxxxxxxxxxxxxxxx") < 0.1);
    }

    #[test]
    fn required_entropy_is_lowered_for_short_values() {
        assert_eq!(required_entropy(3.0, 64), 3.0);
        assert_eq!(required_entropy(3.0, 16), 3.0);
        let short = required_entropy(3.0, 7);
        assert!(short < 2.2 && short > 2.0, "{short}");
        assert!(shannon_entropy("hunter2") >= short);
        assert!(shannon_entropy("aaa111") < required_entropy(3.0, 6));
    }

    #[test]
    fn placeholders_are_recognized() {
        for v in [
            "changeme",
            "${GITHUB_TOKEN}",
            "$DB_PASS",
            "%API_KEY%",
            "<your-key>",
            "{{ token }}",
            "[PASSWORD_1]",
            "****",
            "your_api_key_here",
            "xxxxxxxxxxxx",
            "/home/user",
            "C:\\x",
            "null",
            "Password",
            "eyJhbGciOi...",
        ] {
            assert!(is_placeholder(v), "{v}");
        }
        for v in ["hunter2", "Tr0ub4dor&3", "q8Zr2LmX7vNc4TbW9pKd"] {
            assert!(!is_placeholder(v), "{v}");
        }
    }

    #[test]
    fn code_and_words_are_recognized() {
        for v in [
            "getpass()",
            "os.environ",
            "config.api_key",
            "env[",
            "process.env.API_KEY",
        ] {
            assert!(looks_like_code(v), "{v}");
        }
        for v in ["hunter2", "s3cr3t.P4ss", "aB3dE5"] {
            assert!(!looks_like_code(v), "{v}");
        }
        for v in [
            "incorrect",
            "Required",
            "user_password",
            "DB_PASSWORD",
            "my-app-secret",
        ] {
            assert!(looks_like_word(v), "{v}");
        }
        for v in ["hunter2", "xYzAbC", "aB3dE5", "Tr0ub4dor&3"] {
            assert!(!looks_like_word(v), "{v}");
        }
    }

    #[test]
    fn mixed_classes() {
        assert!(has_mixed_classes("aB3"));
        assert!(!has_mixed_classes(
            "0123456789abcdef0123456789abcdef01234567"
        ));
        assert!(!has_mixed_classes("learn-and-pandas-2024"));
    }
}
