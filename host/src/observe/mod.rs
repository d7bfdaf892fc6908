//! What the gateway tells its operators: the audit log, metrics, alerts and drift.
//!
//! The gateway builds one [`RequestRecord`] per request and hands it to the
//! [`Observer`] before the response is released: metrics count it, and the audit log
//! writes it (as durably as configured). A request whose record cannot be written is
//! refused (503): nothing is answered that the audit log does not hold.

pub mod alerts;
pub mod audit;
pub mod drift;
pub mod metrics;
pub mod record;
pub mod report;
pub mod trace;

use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::Sha256;

use crate::bindings::ChatRequest;
use crate::config::PipelineConfig;
use crate::pipeline::{Decision, Reported};
use alerts::{AlertsSection, Gate, Outlets, Raised, Rules};
use audit::{AuditError, AuditLog};
use drift::{DriftMonitor, DriftReport, Features, PolicySignal};
use metrics::Metrics;
use record::{FindingRecord, RequestRecord, RunRef, Span, StageRecord};

/// `[[gateway.prices]]`: what a model's tokens cost.
///
/// ```toml
/// [[gateway.prices]]
/// model = "gpt-4o-mini"          # the model the upstream reports; "*" for any other
/// prompt_per_million = 0.15      # US dollars per million prompt tokens
/// completion_per_million = 0.60
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Model name (exact), or `*`.
    pub model: String,
    /// Dollars per million prompt tokens.
    pub prompt_per_million: f64,
    /// Dollars per million completion tokens.
    pub completion_per_million: f64,
}

/// The cost of `tokens` of `model`, or `None` when no price applies.
pub fn cost(prices: &[Price], model: &str, tokens: record::Tokens) -> Option<f64> {
    let price = prices
        .iter()
        .find(|p| p.model == model)
        .or_else(|| prices.iter().find(|p| p.model == "*"))?;
    Some(
        (tokens.prompt as f64 * price.prompt_per_million
            + tokens.completion as f64 * price.completion_per_million)
            / 1e6,
    )
}

/// The audit log, metrics and keyed hashing of matched values, for one gateway.
pub struct Observer {
    audit: Option<AuditLog>,
    metrics: Metrics,
    match_key: Option<Vec<u8>>,
    prices: Vec<Price>,
    drift: Mutex<DriftMonitor>,
    alerts: Mutex<(Rules, Gate)>,
    alert_settings: AlertsSection,
    outlets: Outlets,
}

impl Observer {
    /// Open what `config` asks for. Fails when the audit log cannot be opened or the
    /// match key's variable is unset.
    pub fn new(config: &PipelineConfig) -> Result<Observer, String> {
        let section = &config.audit;
        let audit = match (&section.dir, &section.key) {
            (Some(dir), Some(key)) => Some(
                AuditLog::open(section, &config.resolve(dir), &config.resolve(key))
                    .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        let match_key = match &section.match_key_env {
            None => None,
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|v| v.len() >= 16)
                    .ok_or_else(|| {
                        format!(
                            "[audit] match_key_env names {var}, which is unset or shorter than \
                             16 bytes"
                        )
                    })?
                    .into_bytes(),
            ),
        };
        Ok(Observer {
            audit,
            metrics: Metrics::new(),
            match_key,
            prices: config.gateway.prices.clone(),
            drift: Mutex::new(DriftMonitor::new(config.drift)),
            alerts: Mutex::new((Rules::new(config.alerts.clone()), Gate::default())),
            outlets: Outlets::open(
                &config.alerts,
                config.alerts.sink.as_ref().map(|s| config.resolve(s)),
            )?,
            alert_settings: config.alerts.clone(),
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The audit log, if one is configured.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The cost of `tokens` of `model` by the configured prices.
    pub fn cost(&self, model: &str, tokens: record::Tokens) -> Option<f64> {
        cost(&self.prices, model, tokens)
    }

    /// Input drift: the current window against the baseline (also sets the drift
    /// gauges of the metrics).
    pub fn drift(&self) -> DriftReport {
        let report = self
            .drift
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .report();
        for f in &report.features {
            if let Some(psi) = f.psi {
                self.metrics.drift(&f.name, psi);
            }
        }
        report
    }

    /// Count the request, feed its input features to the drift monitor, and write
    /// its audit record. An error means the record is not in the log: the caller must
    /// not release the response.
    pub async fn record(
        &self,
        record: &RequestRecord,
        features: Option<Features>,
        template: Option<u64>,
    ) -> Result<(), AuditError> {
        self.metrics.request(record);
        let (raised, drift_due) = {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            let raised = alerts.0.check(record, template, std::time::Instant::now());
            (raised, alerts.0.drift_due())
        };
        self.raise(raised);
        if drift_due {
            let report = self.drift();
            let shifted: Vec<&str> = report
                .features
                .iter()
                .filter(|f| f.psi.is_some_and(|p| p > 0.2))
                .map(|f| f.name.as_str())
                .collect();
            if !shifted.is_empty() {
                self.raise(vec![Raised {
                    severity: "medium",
                    rule: "input-drift",
                    subject: "gateway".into(),
                    summary: format!("input drift PSI > 0.2 on {}", shifted.join(", ")),
                    request_ids: Vec::new(),
                }]);
            }
        }
        if let Some(mut features) = features {
            if let Some(tokens) = record.tokens {
                features.prompt_tokens = tokens.prompt as f64;
            }
            self.drift
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(&features);
        }
        match &self.audit {
            None => Ok(()),
            Some(log) => log
                .append("request", record)
                .await
                .map(|_| ())
                .inspect_err(|_| {
                    self.metrics.audit_failure(&record.endpoint);
                }),
        }
    }

    /// A lifecycle event of the policy host: a `lifecycle` audit record, and a
    /// `policy-revoked` alert when an active policy is deactivated.
    pub fn lifecycle(&self, event: &str, fields: &serde_json::Value) {
        let mut record = serde_json::json!({ "time": timestamp(), "event": event });
        if let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object()) {
            record.extend(fields.clone());
        }
        if let Some(log) = &self.audit {
            log.append_detached("lifecycle", &record);
        }
        if let Some(alert) = alerts::from_lifecycle(event, fields) {
            self.raise(vec![alert]);
        }
    }

    /// Deduplicate, rate limit and send alerts: sink, audit log, metrics, webhook.
    fn raise(&self, raised: Vec<Raised>) {
        if raised.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let admitted: Vec<_> = {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            raised
                .into_iter()
                .filter_map(|r| alerts.1.admit(r, &self.alert_settings, now))
                .collect()
        };
        for alert in admitted {
            tracing::warn!(severity = %alert.severity, rule = %alert.rule, subject = %alert.subject, "ALERT: {}", alert.summary);
            self.metrics.alert(&alert.severity, &alert.rule);
            self.outlets.send(&alert);
            if let Some(log) = &self.audit {
                log.append_detached("alert", &alert);
            }
        }
    }

    /// A stage's decision as recorded: findings without their text (a keyed hash of
    /// the matched bytes when a match key is configured; `text_of(index)` gives the
    /// message or choice text a span refers to).
    pub fn stage<'a>(
        &self,
        stage: &str,
        decision: &Decision,
        signers: impl Fn(&str) -> Vec<String>,
        text_of: impl Fn(u32) -> Option<&'a str>,
    ) -> StageRecord {
        StageRecord {
            stage: stage.to_string(),
            verdict: decision.verdict.name().to_string(),
            findings: decision
                .findings
                .iter()
                .map(|f| self.finding(f, &text_of))
                .collect(),
            runs: decision
                .runs
                .iter()
                .map(|r| RunRef {
                    policy: r.policy.clone(),
                    version: r.version.clone(),
                    digest: r.digest.clone(),
                    signers: signers(&r.digest),
                    outcome: r.outcome.name().to_string(),
                    verdict: r.verdict.map(str::to_string),
                    mode: r.mode.name().to_string(),
                    rollout: r.rollout.map(str::to_string),
                    fuel: r.fuel,
                    micros: r.micros,
                })
                .collect(),
        }
    }

    fn finding<'a>(
        &self,
        f: &Reported,
        text_of: &impl Fn(u32) -> Option<&'a str>,
    ) -> FindingRecord {
        let span = f.span.map(|s| Span {
            index: s.index,
            start: s.start,
            end: s.end,
        });
        let match_hmac = match (&self.match_key, span) {
            (Some(key), Some(s)) => text_of(s.index)
                .and_then(|t| t.as_bytes().get(s.start as usize..s.end as usize))
                .map(|matched| keyed_hash(key, matched)),
            _ => None,
        };
        FindingRecord {
            policy: f.policy.clone(),
            category: f.category.clone(),
            severity: f.severity.to_string(),
            span,
            item: f.item,
            score: f.score,
            enforced: f.enforced,
            match_hmac,
        }
    }

    /// Close the audit log (on shutdown).
    pub fn close(&self) {
        if let Some(log) = &self.audit
            && let Err(e) = log.close()
        {
            tracing::error!(alert = true, "closing the audit log: {e}");
        }
    }
}

/// A request's input features for drift monitoring, from the request and its input
/// decision. `prompt_tokens` is NaN (not counted) until the upstream reports usage.
pub fn input_features(request: &ChatRequest, input: &Decision) -> Features {
    let text: String = request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let policies = input
        .runs
        .iter()
        .map(|run| {
            let own = input.findings.iter().filter(|f| f.policy == run.policy);
            PolicySignal {
                policy: run.policy.clone(),
                flagged: own.clone().next().is_some(),
                score: own.filter_map(|f| f.score).reduce(f64::max),
            }
        })
        .collect();
    Features {
        prompt_tokens: f64::NAN,
        messages: request.messages.len() as f64,
        tools: request.tools.len() as f64,
        non_ascii_ratio: drift::non_ascii_ratio(&text),
        script: drift::dominant_script(&text).to_string(),
        policies,
    }
}

/// HMAC-SHA-256 of `bytes` under `key`, hex.
fn keyed_hash(key: &[u8], bytes: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    hex::encode(mac.finalize().into_bytes())
}

/// Now, RFC 3339 UTC with exactly three fractional digits (so times sort as text).
pub fn timestamp() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The public keys for `audit verify`: `KEY.pub` of the configured checkpoint key.
pub fn configured_public_key(config: &PipelineConfig) -> Option<std::path::PathBuf> {
    let key = config.audit.key.as_ref()?;
    Some(crate::artifact::keys::public_path(&config.resolve(key)))
}

/// Read a public key file for `audit verify`.
pub fn read_public_key(path: &Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::artifact::keys::parse_public(&text, &path.display().to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::Tokens;

    #[test]
    fn cost_uses_the_model_price_then_the_wildcard() {
        let prices = vec![
            Price {
                model: "gpt-4o-mini".into(),
                prompt_per_million: 0.15,
                completion_per_million: 0.6,
            },
            Price {
                model: "*".into(),
                prompt_per_million: 1.0,
                completion_per_million: 2.0,
            },
        ];
        let t = Tokens {
            prompt: 1000,
            completion: 500,
        };
        let mini = cost(&prices, "gpt-4o-mini", t).unwrap();
        assert!((mini - 0.00045).abs() < 1e-12, "{mini}");
        let other = cost(&prices, "x", t).unwrap();
        assert!((other - 0.002).abs() < 1e-12, "{other}");
        assert_eq!(cost(&prices[..1], "x", t), None);
    }

    #[test]
    fn timestamps_have_fixed_width() {
        let t = timestamp();
        assert_eq!(t.len(), "2026-11-26T09:15:30.600Z".len(), "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }

    #[test]
    fn keyed_hashes_link_equal_values_without_revealing_them() {
        let a = keyed_hash(b"0123456789abcdef", b"alice@example.com");
        assert_eq!(a, keyed_hash(b"0123456789abcdef", b"alice@example.com"));
        assert_ne!(a, keyed_hash(b"0123456789abcdeX", b"alice@example.com"));
        assert_ne!(a, keyed_hash(b"0123456789abcdef", b"bob@example.com"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("alice"));
    }
}
