//! Typed, request-consistent redaction placeholders.

use std::collections::BTreeMap;

/// Hands out placeholders like `[EMAIL_1]`, `[EMAIL_2]`: the same value always gets the
/// same placeholder within one request or stream, so a redacted conversation stays
/// readable ("write to [EMAIL_1]" ... "[EMAIL_1] replied").
#[derive(Debug, Default, Clone)]
pub struct Placeholders {
    seen: BTreeMap<(String, String), usize>,
    counts: BTreeMap<String, usize>,
}

impl Placeholders {
    /// The placeholder for `value` of kind `kind` (upper-cased in the label).
    pub fn label(&mut self, kind: &str, value: &str) -> String {
        let kind = kind.to_ascii_uppercase();
        let key = (kind.clone(), value.to_string());
        let n = match self.seen.get(&key) {
            Some(n) => *n,
            None => {
                let count = self.counts.entry(kind.clone()).or_insert(0);
                *count += 1;
                self.seen.insert(key, *count);
                *count
            }
        };
        format!("[{kind}_{n}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_label_and_kinds_count_separately() {
        let mut p = Placeholders::default();
        assert_eq!(p.label("email", "a@x.io"), "[EMAIL_1]");
        assert_eq!(p.label("email", "b@x.io"), "[EMAIL_2]");
        assert_eq!(p.label("phone", "+15551234567"), "[PHONE_1]");
        assert_eq!(p.label("email", "a@x.io"), "[EMAIL_1]");
    }
}
