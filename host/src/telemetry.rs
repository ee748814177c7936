//! OpenTelemetry traces over OTLP/HTTP, on when the standard variables ask for them:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names the collector,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` picks `http/protobuf` (the default) or `http/json`,
//! `OTEL_SERVICE_NAME` names the service (`codeai-jobs` when unset), `OTEL_EXPORTER_OTLP_HEADERS`
//! and the other OTLP variables are read by the exporter. Unset, nothing is built and an
//! execution costs nothing more.
//!
//! Each execution is a span (`execution JobName`: job, tenant, version, queue, attempt,
//! trigger, status), whose parent is the W3C `traceparent` the run request carried; each
//! capability call of the execution is a child span with the call's own start and duration, as
//! the sandbox recorded them, and an integration call sends the execution's `traceparent` on.

use crate::runtime::{ExecResult, Status};
use crate::store::platform::NewExecution;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The header (and the execution column) that carries a trace's context.
pub const TRACEPARENT: &str = "traceparent";

const TRACER: &str = "codeai-host";

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The installed exporter; [`Telemetry::shutdown`] sends what is buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports the spans still buffered and stops.
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("flushing the trace exporter failed: {e}");
        }
    }
}

/// Installs the OTLP exporter when the environment names a collector (see the module docs);
/// `None` when it does not.
pub fn init(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Telemetry>> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    // The exporter's HTTP client is a reqwest one, which needs the process's TLS provider.
    crate::notify::install_tls_provider();
    let protocol = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some(other) => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported: use `http/protobuf` or \
             `http/json` (the collector's port 4318)"
        ),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| anyhow::anyhow!("the OTLP trace exporter: {e}"))?;
    let service = set("OTEL_SERVICE_NAME").unwrap_or_else(|| "codeai-jobs".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Telemetry { provider }))
}

/// An execution's span, open while it runs.
pub struct ExecutionSpan {
    cx: Context,
    started: SystemTime,
}

impl ExecutionSpan {
    /// Starts the span of an execution (child of `parent`, a W3C `traceparent`, when it is a
    /// valid one); `None` when traces are off.
    pub fn start(facts: &NewExecution<'_>, parent: Option<&str>) -> Option<ExecutionSpan> {
        if !enabled() {
            return None;
        }
        let parent = match parent {
            Some(value) => {
                let carrier = HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
                TraceContextPropagator::new().extract(&carrier)
            }
            None => Context::new(),
        };
        let tracer = global::tracer(TRACER);
        let mut attributes = vec![
            KeyValue::new("codeai.job", facts.job_name.to_string()),
            KeyValue::new("codeai.tenant", facts.tenant.to_string()),
            KeyValue::new("codeai.queue", facts.queue.to_string()),
            KeyValue::new("codeai.attempt", facts.attempt),
            KeyValue::new("codeai.trigger", facts.trigger.to_string()),
            KeyValue::new("codeai.execution_id", facts.id.to_string()),
        ];
        if let Some(version) = facts.job_version {
            attributes.push(KeyValue::new("codeai.job_version", version));
        }
        let started = SystemTime::now();
        let span = tracer
            .span_builder(format!("execution {}", facts.job_name))
            .with_kind(SpanKind::Consumer)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        Some(ExecutionSpan {
            cx: parent.with_span(span),
            started,
        })
    }

    /// The `traceparent` an outgoing request of this execution carries.
    pub fn traceparent(&self) -> Option<String> {
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&self.cx, &mut carrier);
        carrier.remove(TRACEPARENT)
    }

    /// Ends the span with the execution's outcome. Each of the job's own steps becomes a
    /// child span (from its mark to the next; the step a job error names carries the error),
    /// and each capability call a child of the step it was made in (of the execution before
    /// the first), at the time the sandbox measured it.
    pub fn finish(self, result: &ExecResult) {
        let tracer = global::tracer(TRACER);
        let steps: Vec<(Duration, Duration, Context)> = result
            .steps
            .iter()
            .map(|step| {
                let end = step
                    .duration
                    .map_or(result.wall_time, |d| step.at + d)
                    .max(step.at);
                let span = tracer
                    .span_builder(format!("step {}", step.name))
                    .with_kind(SpanKind::Internal)
                    .with_start_time(self.started + step.at)
                    .with_attributes(vec![KeyValue::new("codeai.step", step.name.clone())])
                    .start_with_context(&tracer, &self.cx);
                (step.at, end, self.cx.with_span(span))
            })
            .collect();
        for call in &result.calls {
            // The last step that started at or before the call.
            let parent = steps
                .iter()
                .rev()
                .find(|(at, _, _)| *at <= call.at)
                .map_or(&self.cx, |(_, _, cx)| cx);
            let start = self.started + call.at;
            let mut attributes = vec![
                KeyValue::new("codeai.call", call.call),
                KeyValue::new("codeai.detail", call.detail.clone()),
            ];
            if let Some(error) = &call.error {
                attributes.push(KeyValue::new("codeai.error", error.clone()));
            }
            let mut span = tracer
                .span_builder(format!("call {}", call.call))
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .with_attributes(attributes)
                .start_with_context(&tracer, parent);
            if let Some(error) = &call.error {
                span.set_status(opentelemetry::trace::Status::error(error.clone()));
            }
            span.end_with_timestamp(start + call.duration);
        }
        let failed = !matches!(
            result.status,
            Status::Completed | Status::Skipped | Status::Cancelled
        );
        for (i, (_, end, cx)) in steps.iter().enumerate() {
            let span = cx.span();
            // A run ends at the step that failed, ran out or was stopped: the last one.
            if failed && i + 1 == steps.len() {
                span.set_status(opentelemetry::trace::Status::error(
                    result.error.clone().unwrap_or_default(),
                ));
            }
            span.end_with_timestamp(self.started + *end);
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("codeai.status", result.status.as_str()));
        span.set_attribute(KeyValue::new("codeai.fuel_used", result.fuel_used as i64));
        if let Some(step) = &result.step {
            span.set_attribute(KeyValue::new("codeai.step", step.clone()));
        }
        if failed {
            span.set_status(opentelemetry::trace::Status::error(
                result.error.clone().unwrap_or_default(),
            ));
        }
        span.end_with_timestamp(self.started + result.wall_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_an_endpoint() {
        let none = |_: &str| None;
        assert!(init(none).unwrap().is_none());
        let blank = |_: &str| Some(" ".to_string());
        assert!(init(blank).unwrap().is_none());
    }

    #[test]
    fn grpc_is_refused_with_the_reason() {
        let vars = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            _ => None,
        };
        let e = init(vars).err().expect("refused");
        assert!(e.to_string().contains("http/protobuf"), "{e}");
    }
}
