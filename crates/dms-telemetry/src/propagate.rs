//! The trace context across machines: the W3C `traceparent` of the current span goes
//! into every envelope sent, and a received envelope's makes the handler's span a child
//! of the sender's, so one deployment is one trace from the node that took it to every
//! provider and back.
//!
//! Without an exporter (`telemetry.otlp_endpoint` unset) spans carry no OpenTelemetry
//! context: nothing is injected and a received `traceparent` is kept only as the parent.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, when it belongs to a trace.
pub fn current() -> Option<String> {
    traceparent(&tracing::Span::current().context())
}

/// The `traceparent` naming the span of `cx`, when it is valid.
pub fn traceparent(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The trace id (32 hex digits) of the current span, when it belongs to a trace.
pub fn trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

/// The trace id a `traceparent` names, when it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let context = extract(traceparent);
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// Makes `span` a child of the remote span `traceparent` names; a malformed value is
/// ignored (the span starts a trace of its own). Call it before the span is entered.
pub fn adopt(span: &tracing::Span, traceparent: &str) {
    let context = extract(traceparent);
    if context.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing to parent then.
        let _ = span.set_parent(context);
    }
}

fn extract(traceparent: &str) -> Context {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_its_trace() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(parent).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("00-zz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of(""), None);
    }

    #[test]
    fn no_layer_no_context() {
        assert_eq!(current(), None);
        assert_eq!(trace_id(), None);
    }
}
