//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Label values that requests control (model names, policy categories) are bounded:
//! past [`MAX_LABEL_VALUES`] distinct values of one label, new ones are counted as
//! `other`, so a client cannot grow the exposition without limit.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    CounterVec, Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use super::record::RequestRecord;
use crate::lifecycle::Status;

/// Distinct values kept per request-controlled label.
pub const MAX_LABEL_VALUES: usize = 64;

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    stage_decisions: IntCounterVec,
    findings: IntCounterVec,
    policy_runs: IntCounterVec,
    policy_seconds: HistogramVec,
    policy_fuel: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    rate_limited: IntCounterVec,
    audit_failures: IntCounterVec,
    alerts: IntCounterVec,
    drift_psi: prometheus::GaugeVec,
    lifecycle: IntCounterVec,
    generation: IntGauge,
    deactivated: IntGauge,
    models: Bounded,
    categories: Bounded,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let seconds = prometheus::exponential_buckets(0.0001, 4.0, 10).expect("valid buckets");
        let cost = CounterVec::new(
            Opts::new(
                "portcullis_cost_usd_total",
                "Model cost in US dollars from the configured price table.",
            ),
            &["client", "model"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(cost.clone()))
            .expect("unique metric");
        let drift_psi = prometheus::GaugeVec::new(
            Opts::new(
                "portcullis_drift_psi",
                "Population stability index of an input feature, current window vs baseline.",
            ),
            &["feature"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(drift_psi.clone()))
            .expect("unique metric");
        Metrics {
            requests: counter(
                "portcullis_requests_total",
                "Requests by client, model, HTTP status and outcome.",
                &["client", "model", "status", "outcome"],
            ),
            request_seconds: histogram(
                "portcullis_request_duration_seconds",
                "Time from a request's arrival to the last byte of its response.",
                &["endpoint"],
                seconds.clone(),
            ),
            stage_decisions: counter(
                "portcullis_stage_decisions_total",
                "Stage decisions by stage and verdict.",
                &["stage", "verdict"],
            ),
            findings: counter(
                "portcullis_findings_total",
                "Findings by stage, policy, category, severity and whether they were enforced.",
                &["stage", "policy", "category", "severity", "enforced"],
            ),
            policy_runs: counter(
                "portcullis_policy_runs_total",
                "Policy runs by outcome (ok, error, timeout, fuel-exhausted, skipped) and verdict.",
                &["stage", "policy", "outcome", "verdict", "mode"],
            ),
            policy_seconds: histogram(
                "portcullis_policy_run_duration_seconds",
                "Wall-clock time of one policy run.",
                &["stage", "policy"],
                seconds,
            ),
            policy_fuel: histogram(
                "portcullis_policy_fuel_consumed",
                "Fuel one policy run consumed.",
                &["policy"],
                prometheus::exponential_buckets(1000.0, 10.0, 7).expect("valid buckets"),
            ),
            tokens: counter(
                "portcullis_tokens_total",
                "Prompt and completion tokens by client and model.",
                &["client", "model", "kind"],
            ),
            cost,
            rate_limited: counter(
                "portcullis_rate_limited_total",
                "Requests refused by a token budget.",
                &["client"],
            ),
            audit_failures: counter(
                "portcullis_audit_failures_total",
                "Requests refused because their audit record could not be written.",
                &["endpoint"],
            ),
            alerts: counter(
                "portcullis_alerts_total",
                "SOC alerts raised, by severity and rule (suppressed duplicates not counted).",
                &["severity", "rule"],
            ),
            drift_psi,
            lifecycle: counter(
                "portcullis_policy_lifecycle_total",
                "Lifecycle counters: reloads attempted, sets swapped in, candidates rejected, \
                 versions deactivated.",
                &["event"],
            ),
            generation: gauge(
                "portcullis_policy_generation",
                "Generation of the active policy set.",
            ),
            deactivated: gauge(
                "portcullis_policies_deactivated",
                "Active policies deactivated because they no longer verify.",
            ),
            registry,
            models: Bounded::default(),
            categories: Bounded::default(),
        }
    }

    /// Count one finished request.
    pub fn request(&self, r: &RequestRecord) {
        let model = self.models.get(&r.model);
        let client = r.client.as_str();
        self.requests
            .with_label_values(&[client, &model, &r.status.to_string(), r.outcome.name()])
            .inc();
        self.request_seconds
            .with_label_values(&[&r.endpoint])
            .observe(r.latency_ms / 1000.0);
        if r.outcome == super::record::RequestOutcome::RateLimited {
            self.rate_limited.with_label_values(&[client]).inc();
        }
        if let Some(tokens) = r.tokens {
            for (kind, n) in [("prompt", tokens.prompt), ("completion", tokens.completion)] {
                self.tokens
                    .with_label_values(&[client, &model, kind])
                    .inc_by(n);
            }
        }
        if let Some(cost) = r.cost_usd {
            self.cost.with_label_values(&[client, &model]).inc_by(cost);
        }
        for stage in &r.stages {
            self.stage_decisions
                .with_label_values(&[&stage.stage, &stage.verdict])
                .inc();
            for f in &stage.findings {
                let category = self.categories.get(&f.category);
                let enforced = if f.enforced { "true" } else { "false" };
                self.findings
                    .with_label_values(&[&stage.stage, &f.policy, &category, &f.severity, enforced])
                    .inc();
            }
            for run in &stage.runs {
                let verdict = run.verdict.as_deref().unwrap_or("none");
                self.policy_runs
                    .with_label_values(&[
                        &stage.stage,
                        &run.policy,
                        &run.outcome,
                        verdict,
                        &run.mode,
                    ])
                    .inc();
                if run.outcome != "skipped" {
                    self.policy_seconds
                        .with_label_values(&[&stage.stage, &run.policy])
                        .observe(run.micros as f64 / 1e6);
                    self.policy_fuel
                        .with_label_values(&[&run.policy])
                        .observe(run.fuel as f64);
                }
            }
        }
    }

    /// Count a request refused because its audit record could not be written.
    pub fn audit_failure(&self, endpoint: &str) {
        self.audit_failures.with_label_values(&[endpoint]).inc();
    }

    /// Count a raised alert.
    pub fn alert(&self, severity: &str, rule: &str) {
        self.alerts.with_label_values(&[severity, rule]).inc();
    }

    /// Set a feature's drift.
    pub fn drift(&self, feature: &str, psi: f64) {
        self.drift_psi.with_label_values(&[feature]).set(psi);
    }

    /// The exposition, with the lifecycle counters taken from `status`.
    pub fn render(&self, status: &Status, deactivated: usize) -> String {
        let c = &status.counters;
        for (event, value) in [
            ("reload", c.reloads),
            ("swap", c.swaps),
            ("rejected", c.rejected),
            ("deactivated", c.deactivated),
        ] {
            let counter = self.lifecycle.with_label_values(&[event]);
            // The lifecycle keeps its own monotonic counters: mirror them.
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        self.generation.set(status.generation as i64);
        self.deactivated.set(deactivated as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("cannot encode metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A label whose values requests control: the first [`MAX_LABEL_VALUES`] distinct
/// values are kept, later ones become `other`.
#[derive(Default)]
struct Bounded(Mutex<HashSet<String>>);

impl Bounded {
    fn get(&self, value: &str) -> String {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < MAX_LABEL_VALUES {
            seen.insert(value.to_string());
            return value.to_string();
        }
        "other".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_controlled_labels_are_bounded() {
        let b = Bounded::default();
        for i in 0..MAX_LABEL_VALUES {
            assert_eq!(b.get(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(b.get("one-more"), "other");
        assert_eq!(b.get("m3"), "m3");
    }
}
