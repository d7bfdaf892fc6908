//! Distributed tracing: the W3C trace context in (`traceparent` from the client) and
//! out (to the upstream), and the optional OTLP export of the gateway's spans.
//!
//! Spans: `request` (request id, client, model, trace id, status, outcome) → `stage`
//! (stage, target, verdict) → `policy` (policy, version, digest, rollout, outcome,
//! verdict, categories, fuel, µs); `request` → `upstream`. Without `[telemetry]` the
//! spans cost next to nothing (no subscriber wants them) and the trace id is still
//! propagated: the upstream gets the client's trace id (or a new one) with a new parent
//! id, and the audit record carries it.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// `[telemetry]`.
///
/// ```toml
/// [telemetry]
/// otlp_traces_url = "http://127.0.0.1:4318/v1/traces"   # OTLP/HTTP (protobuf); off when absent
/// service_name = "portcullis"
/// sample_ratio = 1.0        # of traces the client did not already decide on
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// The collector's OTLP/HTTP traces URL; `None`: no export.
    pub otlp_traces_url: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces sampled (a client's sampled flag is followed).
    pub sample_ratio: f64,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_traces_url: None,
            service_name: "portcullis".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetrySection {
    /// Check the section; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("sample_ratio".into(), "must be between 0 and 1".into()));
        }
        if let Some(url) = &self.otlp_traces_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                "otlp_traces_url".into(),
                "must be an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/traces".into(),
            ));
        }
        Ok(())
    }
}

/// A tracer provider exporting to the configured collector in batches (on its own
/// thread), or `None` without `otlp_traces_url`. Shut it down to flush.
pub fn otlp_provider(section: &TelemetrySection) -> Result<Option<SdkTracerProvider>, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let Some(url) = &section.otlp_traces_url else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_timeout(std::time::Duration::from_secs(5))
        .with_headers(Default::default())
        .build()
        .map_err(|e| format!("[telemetry] otlp_traces_url: {e}"))?;
    let sampler = opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(section.sample_ratio),
    ));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(section.service_name.clone())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build(),
    ))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("portcullis"))
}

/// A request's trace: the client's (from a valid `traceparent`) or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    /// The client's span, when it sent one.
    parent: Option<(SpanId, TraceFlags)>,
}

impl TraceContext {
    /// From the request's `traceparent` header; a new trace when it is absent or
    /// malformed (a bad header is ignored, as the W3C specification asks).
    pub fn from_header(traceparent: Option<&str>) -> TraceContext {
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, span_id, flags)) => TraceContext {
                trace_id,
                parent: Some((span_id, flags)),
            },
            None => TraceContext {
                trace_id: TraceId::from_bytes(random()),
                parent: None,
            },
        }
    }

    /// Make `span` (the request's) a child of the client's span when spans are
    /// exported, and return the trace id it belongs to (hex).
    pub fn attach(&self, span: &tracing::Span) -> String {
        if let Some((span_id, flags)) = self.parent {
            let remote = SpanContext::new(self.trace_id, span_id, flags, true, TraceState::NONE);
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        let exported = span.context().span().span_context().trace_id();
        let trace_id = if exported == TraceId::INVALID {
            self.trace_id
        } else {
            exported
        };
        trace_id.to_string()
    }

    /// The `traceparent` for a call made within the current span: that span's ids
    /// when spans are exported, else this trace with a new parent id.
    pub fn outgoing(&self) -> String {
        let current = tracing::Span::current().context();
        let context = current.span().span_context().clone();
        if context.is_valid() {
            return format!(
                "00-{}-{}-{:02x}",
                context.trace_id(),
                context.span_id(),
                context.trace_flags().to_u8()
            );
        }
        let flags = self.parent.map_or(TraceFlags::SAMPLED, |(_, f)| f);
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            SpanId::from_bytes(random()),
            flags.to_u8()
        )
    }
}

/// `version-traceid-parentid-flags` (W3C Trace Context, version 00; later versions
/// are read by their first four fields). All-zero ids and version `ff` are invalid.
pub fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let header = header.trim();
    let mut parts = header.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace, 32)
        && lower_hex(span, 16)
        && lower_hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    if !valid {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1);
    Some((trace_id, span_id, flags))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_the_w3c_rules() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (t, s, f) = parse_traceparent(good).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert!(f.is_sampled());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn without_export_the_trace_id_still_travels_with_a_new_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceContext::from_header(Some(incoming));
        let out = trace.outgoing();
        let (t, s, f) = parse_traceparent(&out).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(s.to_string(), "00f067aa0ba902b7");
        assert!(f.is_sampled());
        assert_eq!(
            trace.attach(&tracing::Span::none()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let fresh = TraceContext::from_header(Some("bogus"));
        assert_ne!(
            fresh.attach(&tracing::Span::none()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
