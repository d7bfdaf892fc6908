//! The kinds of personal data the policy reports, and what each kind implies.

use portcullis_sdk::Severity;
use serde::Deserialize;

use crate::context::Cue;

/// A kind of personal data. Configuration names are the lower-case variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    /// Email addresses.
    Email,
    /// Phone numbers (international, North American, European national formats).
    Phone,
    /// Payment card numbers (Luhn-valid, known issuer prefix and length).
    Card,
    /// International bank account numbers (mod-97 valid, per-country length).
    Iban,
    /// US social security numbers.
    Ssn,
    /// IPv4 and IPv6 addresses.
    Ip,
}

impl Entity {
    /// Every entity, the default of `entities`.
    pub const ALL: [Entity; 6] = [
        Entity::Email,
        Entity::Phone,
        Entity::Card,
        Entity::Iban,
        Entity::Ssn,
        Entity::Ip,
    ];

    /// The placeholder kind: `[EMAIL_1]`, `[PHONE_1]`, ...
    pub fn placeholder_kind(self) -> &'static str {
        match self {
            Entity::Email => "EMAIL",
            Entity::Phone => "PHONE",
            Entity::Card => "CARD",
            Entity::Iban => "IBAN",
            Entity::Ssn => "SSN",
            Entity::Ip => "IP",
        }
    }

    /// How bad a leak of this kind is: financial and government identifiers are high,
    /// contact details medium, network addresses low.
    pub fn severity(self) -> Severity {
        match self {
            Entity::Card | Entity::Ssn | Entity::Iban => Severity::High,
            Entity::Email | Entity::Phone => Severity::Medium,
            Entity::Ip => Severity::Low,
        }
    }

    /// The context words that raise this kind's score, and by how much (percent).
    /// Kinds with a cue are also lowered by negative context words.
    pub fn cue(self) -> Option<(Cue, i32)> {
        match self {
            Entity::Card => Some((Cue::Card, 15)),
            Entity::Ssn => Some((Cue::Ssn, 35)),
            Entity::Phone => Some((Cue::Phone, 25)),
            Entity::Ip => Some((Cue::Ip, 25)),
            Entity::Email | Entity::Iban => None,
        }
    }

    /// The canonical form of a value of this kind: two spellings of the same value
    /// (`4111 1111 1111 1111` and `4111111111111111`) share a placeholder, and
    /// allow-list entries match whatever their spelling.
    pub fn normalize(self, value: &str) -> String {
        match self {
            Entity::Email | Entity::Ip => value.to_ascii_lowercase(),
            Entity::Card | Entity::Ssn => digits(value),
            Entity::Iban => value
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            Entity::Phone => phone_key(value),
        }
    }
}

/// The ASCII digits of `value`.
fn digits(value: &str) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

/// Phone digits without an international `00` prefix; a 10-digit North American
/// number gets its country code so that `(415) 555-2671` equals `+1 415 555 2671`.
fn phone_key(value: &str) -> String {
    let all = digits(value);
    let all = match all.strip_prefix("00") {
        Some(rest) if value.trim_start().starts_with("00") => rest.to_string(),
        _ => all,
    };
    if all.len() == 10 && !all.starts_with(['0', '1']) {
        format!("1{all}")
    } else {
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_value_normalize_alike() {
        assert_eq!(
            Entity::Card.normalize("4111 1111-1111 1111"),
            "4111111111111111"
        );
        assert_eq!(
            Entity::Phone.normalize("(415) 555-2671"),
            Entity::Phone.normalize("+1 415 555 2671")
        );
        assert_eq!(
            Entity::Phone.normalize("0044 20 7946 0958"),
            Entity::Phone.normalize("+44 20 7946 0958")
        );
        assert_eq!(
            Entity::Iban.normalize("de89 3704 0044 0532 0130 00"),
            "DE89370400440532013000"
        );
        assert_eq!(
            Entity::Email.normalize("Support@Example.COM"),
            "support@example.com"
        );
    }
}
