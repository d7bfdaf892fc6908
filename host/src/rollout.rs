//! Progressive rollout of a candidate version next to a policy's active one.
//!
//! * **shadow**: the candidate runs on every evaluation next to the active version, in
//!   monitor mode; its verdict is recorded and compared with the active one's, and
//!   disagreements are counted per category ([`ShadowStats`]);
//! * **canary**: for `percent` of the traffic the candidate runs *instead of* the
//!   active version. The split hashes the client id (or the request id) with SHA-256,
//!   so a client sees one version consistently, on every replica and across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::bindings::{Authorization, RequestContext, Verdict};
use crate::config::{CanaryKey, CandidateConfig, Rollout};
use crate::engine::Run;

/// The part a pipeline entry plays.
#[derive(Clone, Debug, Default)]
pub enum Role {
    /// The policy's active version.
    #[default]
    Active,
    /// A shadow candidate: runs next to the active version, compared, never applied.
    Shadow(Arc<ShadowStats>),
    /// A canary candidate: replaces the active version for a share of the traffic.
    Canary {
        /// Share of the traffic, in percent.
        percent: u8,
        /// What the split hashes.
        key: CanaryKey,
    },
}

impl Role {
    /// The role a candidate configured as `c` plays; a shadow keeps `previous`'s
    /// counters when it already was one.
    pub fn for_candidate(c: &CandidateConfig, previous: Option<&Role>) -> Role {
        match c.rollout {
            Rollout::Shadow => match previous {
                Some(Role::Shadow(stats)) => Role::Shadow(stats.clone()),
                _ => Role::Shadow(Arc::default()),
            },
            Rollout::Canary => Role::Canary {
                percent: c.percent.unwrap_or(0),
                key: c.key.unwrap_or_default(),
            },
        }
    }

    /// `shadow` or `canary` for a candidate, `None` for an active version.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Role::Active => None,
            Role::Shadow(_) => Some("shadow"),
            Role::Canary { .. } => Some("canary"),
        }
    }

    /// Whether two roles route traffic the same way.
    pub fn same_plan(&self, other: &Role) -> bool {
        match (self, other) {
            (Role::Active, Role::Active) | (Role::Shadow(_), Role::Shadow(_)) => true,
            (
                Role::Canary { percent, key },
                Role::Canary {
                    percent: p2,
                    key: k2,
                },
            ) => percent == p2 && key == k2,
            _ => false,
        }
    }
}

/// Whether the canary of policy `policy` takes this request: a stable hash of the
/// policy name and the client (or request) id, below `percent` of the hash space.
pub fn canary_takes(policy: &str, percent: u8, key: CanaryKey, context: &RequestContext) -> bool {
    let id = match key {
        CanaryKey::Client => &context.client_id,
        CanaryKey::Request => &context.request_id,
    };
    let mut hash = Sha256::new();
    hash.update(policy.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    let bucket = u64::from_be_bytes(hash.finalize()[..8].try_into().expect("8 bytes")) % 10_000;
    bucket < u64::from(percent) * 100
}

/// What a run decided, reduced to what shadow comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `allow`, `deny`, `modify`, `failed`; for tool authorizations `deny:<items>`.
    pub action: String,
    /// Categories of the findings.
    pub categories: BTreeSet<String>,
}

/// A run that can be summarised for comparison (`None` when it did not finish).
pub trait Summarize {
    /// The summary, or `None` for a skipped (cancelled) run.
    fn summary(&self) -> Option<Summary>;
}

fn category_of(c: &crate::bindings::Category) -> String {
    portcullis_sdk::fixture::category_name(&crate::pipeline::sdk_category(c))
}

impl Summarize for Run<Verdict> {
    fn summary(&self) -> Option<Summary> {
        let (action, findings) = match &self.result {
            Ok(Verdict::Allow(f)) => ("allow", f),
            Ok(Verdict::Deny(f)) => ("deny", f),
            Ok(Verdict::Modify(m)) => ("modify", &m.findings),
            Err(crate::engine::Outcome::Skipped) => return None,
            Err(_) => return Some(failed()),
        };
        Some(Summary {
            action: action.to_string(),
            categories: findings.iter().map(|f| category_of(&f.category)).collect(),
        })
    }
}

impl Summarize for Run<Vec<Authorization>> {
    fn summary(&self) -> Option<Summary> {
        let list = match &self.result {
            Ok(list) => list,
            Err(crate::engine::Outcome::Skipped) => return None,
            Err(_) => return Some(failed()),
        };
        let mut denied = Vec::new();
        let mut categories = BTreeSet::new();
        for (i, auth) in list.iter().enumerate() {
            if let Authorization::Deny(findings) = auth {
                denied.push(i.to_string());
                categories.extend(findings.iter().map(|f| category_of(&f.category)));
            }
        }
        let action = if denied.is_empty() {
            "allow".to_string()
        } else {
            format!("deny:{}", denied.join(","))
        };
        Some(Summary { action, categories })
    }
}

fn failed() -> Summary {
    Summary {
        action: "failed".into(),
        categories: BTreeSet::new(),
    }
}

/// A shadow candidate that did not agree with the active version on one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    /// Policy name.
    pub policy: String,
    /// Stage.
    pub stage: crate::config::Stage,
    /// The active version's action.
    pub active: String,
    /// The candidate's action.
    pub candidate: String,
    /// Categories the disagreement is counted under: those reported by one side
    /// only, or (same categories, different action) all of them; `none` when neither
    /// reported any.
    pub categories: Vec<String>,
}

/// Shadow comparison counters of one candidate (shared by every snapshot the
/// candidate stays in).
#[derive(Debug, Default)]
pub struct ShadowStats {
    inner: Mutex<ShadowCounts>,
}

/// The counters, read at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowCounts {
    /// Evaluations where both versions finished.
    pub compared: u64,
    /// Of those, where they disagreed.
    pub disagreed: u64,
    /// Evaluations where one side was cancelled (another policy had already denied).
    pub uncompared: u64,
    /// Disagreements per category.
    pub by_category: BTreeMap<String, u64>,
}

impl ShadowStats {
    /// Compare the active version's run with the candidate's; count and return the
    /// disagreement, if any.
    pub fn compare(
        &self,
        policy: &str,
        stage: crate::config::Stage,
        active: Option<Summary>,
        candidate: Option<Summary>,
    ) -> Option<Disagreement> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(active), Some(candidate)) = (active, candidate) else {
            counts.uncompared += 1;
            return None;
        };
        counts.compared += 1;
        if active == candidate {
            return None;
        }
        counts.disagreed += 1;
        let mut categories: Vec<String> = active
            .categories
            .symmetric_difference(&candidate.categories)
            .cloned()
            .collect();
        if categories.is_empty() {
            categories = active.categories.iter().cloned().collect();
        }
        if categories.is_empty() {
            categories.push("none".into());
        }
        for c in &categories {
            *counts.by_category.entry(c.clone()).or_default() += 1;
        }
        Some(Disagreement {
            policy: policy.to_string(),
            stage,
            active: active.action,
            candidate: candidate.action,
            categories,
        })
    }

    /// The counters now.
    pub fn counts(&self) -> ShadowCounts {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(client: &str) -> RequestContext {
        RequestContext {
            request_id: format!("req-{client}"),
            client_id: client.to_string(),
            model: String::new(),
            metadata: Vec::new(),
        }
    }

    #[test]
    fn canary_split_is_stable_and_close_to_the_percentage() {
        let clients: Vec<String> = (0..10_000).map(|i| format!("client-{i}")).collect();
        let taken = clients
            .iter()
            .filter(|c| canary_takes("pii", 10, CanaryKey::Client, &context(c)))
            .count();
        assert!((850..=1150).contains(&taken), "{taken} of 10000 at 10%");
        for c in &clients[..100] {
            let first = canary_takes("pii", 10, CanaryKey::Client, &context(c));
            assert_eq!(
                first,
                canary_takes("pii", 10, CanaryKey::Client, &context(c))
            );
        }
        // Growing the percentage only adds clients: nobody flips back.
        for c in &clients {
            if canary_takes("pii", 10, CanaryKey::Client, &context(c)) {
                assert!(canary_takes("pii", 50, CanaryKey::Client, &context(c)));
            }
        }
        assert!(!canary_takes("pii", 0, CanaryKey::Client, &context("x")));
        assert!(canary_takes("pii", 100, CanaryKey::Client, &context("x")));
    }

    #[test]
    fn disagreements_are_counted_per_category() {
        let s = |action: &str, cats: &[&str]| Summary {
            action: action.into(),
            categories: cats.iter().map(|c| c.to_string()).collect(),
        };
        let stats = ShadowStats::default();
        let stage = crate::config::Stage::Input;
        assert!(
            stats
                .compare("p", stage, Some(s("allow", &[])), Some(s("allow", &[])))
                .is_none()
        );
        let d = stats
            .compare("p", stage, Some(s("allow", &[])), Some(s("deny", &["pii"])))
            .unwrap();
        assert_eq!((d.active.as_str(), d.candidate.as_str()), ("allow", "deny"));
        assert_eq!(d.categories, ["pii"]);
        stats.compare(
            "p",
            stage,
            Some(s("deny", &["pii"])),
            Some(s("modify", &["pii"])),
        );
        stats.compare("p", stage, Some(s("allow", &[])), Some(s("failed", &[])));
        stats.compare("p", stage, None, Some(s("allow", &[])));
        let c = stats.counts();
        assert_eq!((c.compared, c.disagreed, c.uncompared), (4, 3, 1));
        assert_eq!(c.by_category["pii"], 2);
        assert_eq!(c.by_category["none"], 1);
    }
}
