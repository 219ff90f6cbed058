use super::Event;
use std::io::Write;
use std::sync::Mutex;

/// Where events go: stdout for `egress run`; AMQP and webhooks for a worker.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// One JSON object per line on a writer (stdout for `egress run`).
pub struct JsonLinesSink<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(out: W) -> Self {
        JsonLinesSink { out: Mutex::new(out) }
    }
}

impl<W: Write + Send> EventSink for JsonLinesSink<W> {
    fn emit(&self, event: &Event) {
        let line = match serde_json::to_string(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "event could not be serialized");
                return;
            }
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            tracing::warn!(event = %event.type_name(), "event output closed");
        }
    }
}

/// Keeps events in memory; for tests and for callers that forward events themselves.
#[derive(Default)]
pub struct MemorySink {
    pub events: Mutex<Vec<Event>>,
}

impl EventSink for MemorySink {
    fn emit(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }
}
