//! Operator configuration (`{}` gives the recommended behaviour).

use portcullis_sdk::{Role, Roles};
use serde::Deserialize;

use crate::entity::Entity;

/// What to do with personal data that scores at least `min_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace each value with a typed placeholder such as `[EMAIL_1]` (verdict `modify`).
    #[default]
    Redact,
    /// Let the text through unchanged and report findings (verdict `allow`).
    Detect,
    /// Refuse the whole request or response (verdict `deny`).
    Deny,
}

/// The policy configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `redact` (default), `detect` or `deny`.
    pub action: Action,
    /// Entity kinds to report (default: all of them).
    pub entities: Vec<Entity>,
    /// Lowest score (0..=1) a value needs to be reported (default 0.5).
    pub min_score: f32,
    /// Message roles scanned in requests (default `user` and `tool`). Responses are
    /// always scanned.
    pub roles: Roles,
    /// Values never reported, such as the operator's own support address. Compared
    /// ASCII case-insensitively, and also in canonical form (digits of a card number).
    pub allow_list: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            action: Action::Redact,
            entities: Entity::ALL.to_vec(),
            min_score: 0.5,
            roles: Roles::default(),
            allow_list: Vec::new(),
        }
    }
}

impl Config {
    /// Read and check the operator configuration.
    pub fn load() -> Result<Self, String> {
        let config: Config = portcullis_sdk::config()?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(format!(
                "invalid policy configuration: min_score must be within 0..=1, got {}",
                self.min_score
            ));
        }
        if self.entities.is_empty() {
            return Err(
                "invalid policy configuration: entities must name at least one entity type".into(),
            );
        }
        Ok(())
    }

    /// Whether `entity` is reported.
    pub fn enabled(&self, entity: Entity) -> bool {
        self.entities.contains(&entity)
    }

    /// Whether a score (percent) is high enough to report.
    pub fn passes(&self, score: i32) -> bool {
        score as f32 / 100.0 >= self.min_score
    }

    /// Whether `value`, an `entity`, is allow-listed (as written or in canonical form).
    pub fn allowed(&self, entity: Entity, value: &str) -> bool {
        if self.allow_list.is_empty() {
            return false;
        }
        let key = entity.normalize(value);
        self.allow_list
            .iter()
            .any(|a| a.eq_ignore_ascii_case(value) || entity.normalize(a) == key)
    }

    /// Whether request messages of `role` are scanned.
    pub fn scans(&self, role: Role) -> bool {
        self.roles.contains(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    #[test]
    fn empty_config_is_the_recommended_one() {
        let c = parse("{}").unwrap();
        assert_eq!(c.action, Action::Redact);
        assert_eq!(c.entities, Entity::ALL.to_vec());
        assert!(c.passes(50) && !c.passes(49));
        assert!(c.scans(Role::User) && c.scans(Role::Tool) && !c.scans(Role::Assistant));
    }

    #[test]
    fn bad_configs_are_rejected_with_the_reason() {
        assert!(
            parse(r#"{"min_score": 1.5}"#)
                .unwrap_err()
                .contains("min_score")
        );
        assert!(
            parse(r#"{"entities": []}"#)
                .unwrap_err()
                .contains("entities")
        );
        assert!(
            parse(r#"{"entities": ["passport"]}"#)
                .unwrap_err()
                .contains("passport")
        );
        assert!(
            parse(r#"{"action": "block"}"#)
                .unwrap_err()
                .contains("block")
        );
        assert!(
            parse(r#"{"minscore": 0.3}"#)
                .unwrap_err()
                .contains("minscore")
        );
    }

    #[test]
    fn allow_list_matches_spellings() {
        let c = parse(r#"{"allow_list": ["Help@Acme.example", "4111111111111111"]}"#).unwrap();
        assert!(c.allowed(Entity::Email, "help@acme.example"));
        assert!(c.allowed(Entity::Card, "4111 1111 1111 1111"));
        assert!(!c.allowed(Entity::Email, "bob@acme.example"));
    }
}
