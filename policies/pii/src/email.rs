//! Email addresses: length limits and domain label rules the pattern cannot express.

/// RFC 5321 limits: at most 254 characters, a local part of at most 64, and domain
/// labels of 1 to 63 characters that neither start nor end with a hyphen.
pub fn valid(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && (1..=64).contains(&local.len())
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len()) && !label.starts_with('-') && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_length_rules() {
        assert!(valid("jane.doe+news@mail.example.co.uk"));
        assert!(!valid("bob@-example.com"));
        assert!(!valid("bob@example-.com"));
        assert!(!valid(&format!("{}@example.com", "a".repeat(65))));
        assert!(!valid("no-at-sign.example.com"));
    }
}
