//! Emitting events: [`event!`](crate::event!) writes a `tracing` event with the target
//! [`TARGET`]; the [`EventLayer`] turns it into an [`Event`] for the [`hub`](crate::hub)
//! (the journal and the Elasticsearch sink), whatever the log level, while the log and
//! OTLP layers see it as any other log line.
//!
//! Fields the layer reads (others are logged but not kept): `kind` (one of
//! [`dms_types::event::kind`]), `deployment`, `allocation`, `peer`, `reason`, `state`,
//! and the message. The trace id is the current span's.

use dms_types::event::Event;
pub use dms_types::event::kind;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;

/// The `tracing` target of telemetry events.
pub const TARGET: &str = "dms::event";

/// Emits a telemetry event:
/// `event!(INFO, kind: kind::BID, deployment: id, reason: code; "Refused: {why}")`.
///
/// The level is `INFO`, `WARN` or `ERROR`; fields are `&str` or `Option<&str>` values
/// named as in [the module](crate::event); the message takes format arguments.
#[macro_export]
macro_rules! event {
    ($level:ident, kind: $kind:expr $(, $field:ident: $value:expr)* ; $($message:tt)+) => {
        $crate::__tracing::event!(
            target: $crate::event::TARGET,
            $crate::__tracing::Level::$level,
            kind = $kind,
            $($field = $value,)*
            trace_id = $crate::propagate::trace_id().as_deref(),
            $($message)+
        )
    };
}

/// The layer that hands events of [`TARGET`] to the hub. Install it with a filter that
/// admits that target alone (the log level never hides an event from the journal).
#[derive(Debug, Default)]
pub struct EventLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for EventLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let Some(hub) = crate::hub::get() else { return };
        let mut fields = Fields(Event {
            level: level_name(*event.metadata().level()).to_string(),
            ..Event::default()
        });
        event.record(&mut fields);
        hub.publish(fields.0);
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        _ => "info",
    }
}

struct Fields(Event);

/// Longest text kept of one field (an executor's error, a refusal's reasons): events
/// queue by count, so their size must be bounded too.
pub const MAX_FIELD_BYTES: usize = 4096;

/// `text` cut to at most [`MAX_FIELD_BYTES`] on a character boundary, marked `…`.
fn clipped(text: &str) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text.to_string();
    }
    let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = &clipped(value);
        let event = &mut self.0;
        let slot = match field.name() {
            "message" => {
                event.message = value.to_string();
                return;
            }
            "kind" => {
                event.kind = value.to_string();
                return;
            }
            "deployment" => &mut event.deployment,
            "allocation" => &mut event.allocation,
            "peer" => &mut event.peer,
            "reason" => &mut event.reason,
            "state" => &mut event.state,
            "trace_id" => &mut event.trace_id,
            _ => return,
        };
        *slot = Some(value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // The message arrives as format arguments; other fields as their text.
        self.record_str(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_clipped_on_a_character_boundary() {
        assert_eq!(clipped("short"), "short");
        let long = "é".repeat(MAX_FIELD_BYTES);
        let cut = clipped(&long);
        assert!(cut.len() <= MAX_FIELD_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }
}
