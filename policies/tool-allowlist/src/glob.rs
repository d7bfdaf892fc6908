//! A tiny glob matcher: `*` matches any run of characters (including none), `?` exactly
//! one character; everything else matches itself.

/// True when `text` matches the whole of `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was seen, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literals_and_wildcards() {
        assert!(matches("read_file", "read_file"));
        assert!(!matches("read_file", "read_files"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("read_*", "read_file"));
        assert!(matches("read_*", "read_"));
        assert!(!matches("read_*", "write_file"));
        assert!(matches("*_file", "delete_file"));
        assert!(matches("a*b*c", "a__b__b__c"));
        assert!(!matches("a*b*c", "a__b__b__"));
        assert!(matches("file?", "file1"));
        assert!(!matches("file?", "file"));
        assert!(matches("??", "éx"));
        assert!(matches("*.example.com", "api.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "evilexample.com"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let text = "a".repeat(2000);
        assert!(!matches("*a*a*a*a*a*a*a*a*b", &text));
    }
}
