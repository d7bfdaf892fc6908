//! Placeholder labels that stay stable while a secret is still arriving in a stream.

use portcullis_sdk::Placeholders;

/// Hands out typed placeholders through [`Placeholders`], so the same secret always gets
/// the same label within a request or stream. A stream is rescanned as it grows, so a
/// secret at the end of the text may still be incomplete (`password=abc1` before
/// `23x9` arrives, a key block before its END line): such "open" values are
/// remembered, and a later value that extends one keeps its label instead of taking
/// the next number.
#[derive(Debug, Default)]
pub struct Labels {
    placeholders: Placeholders,
    /// Kind, longest value seen so far, label: for values that ended a scanned text.
    open: Vec<(&'static str, String, String)>,
}

impl Labels {
    /// The placeholder for `value` of `kind`; `open` when the value ends the text.
    pub fn label(&mut self, kind: &'static str, value: &str, open: bool) -> String {
        let grown = self
            .open
            .iter_mut()
            .find(|(k, v, _)| *k == kind && value.starts_with(v.as_str()));
        match grown {
            Some((_, seen, label)) => {
                if open && value.len() > seen.len() {
                    *seen = value.to_string();
                }
                label.clone()
            }
            None => {
                let label = self.placeholders.label(kind, value);
                if open {
                    self.open.push((kind, value.to_string(), label.clone()));
                }
                label
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_value_keeps_its_label_and_others_count_on() {
        let mut l = Labels::default();
        assert_eq!(l.label("PASSWORD", "abc1", true), "[PASSWORD_1]");
        assert_eq!(l.label("PASSWORD", "abc123x9", true), "[PASSWORD_1]");
        assert_eq!(l.label("PASSWORD", "abc123x9Q", false), "[PASSWORD_1]");
        assert_eq!(l.label("PASSWORD", "zz99", false), "[PASSWORD_2]");
        assert_eq!(l.label("TOKEN", "abc123x9Q", false), "[TOKEN_1]");
        assert_eq!(l.label("PASSWORD", "zz99", false), "[PASSWORD_2]");
    }
}
