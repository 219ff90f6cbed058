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

/// Passes events on with the job's secrets and any URL user-info taken out of every text.
pub struct RedactingSink<'a> {
    inner: &'a dyn EventSink,
    secrets: Vec<String>,
}

impl<'a> RedactingSink<'a> {
    pub fn new<S: AsRef<str>>(inner: &'a dyn EventSink, secrets: &[S]) -> Self {
        RedactingSink {
            inner,
            secrets: secrets.iter().map(|s| s.as_ref().to_owned()).collect(),
        }
    }
}

fn clean(value: &mut serde_json::Value, secrets: &[String]) {
    match value {
        serde_json::Value::String(text) => *text = crate::redact::redact(text, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| clean(v, secrets)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| clean(v, secrets)),
        _ => {}
    }
}

impl EventSink for RedactingSink<'_> {
    fn emit(&self, event: &Event) {
        let Ok(original) = serde_json::to_value(event) else {
            return self.inner.emit(event);
        };
        let mut value = original.clone();
        clean(&mut value, &self.secrets);
        if value == original {
            return self.inner.emit(event);
        }
        match serde_json::from_value::<Event>(value) {
            Ok(cleaned) => self.inner.emit(&cleaned),
            Err(e) => {
                tracing::error!(event = %event.type_name(), error = %e, "event could not be cleaned of secrets; not sent")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBody;

    #[test]
    fn secrets_leave_events_and_everything_else_passes_unchanged() {
        let memory = MemorySink::default();
        let sink = RedactingSink::new(&memory, &["sk-stream-77"]);
        let bodies = [
            EventBody::RecordingStarted {
                recording_type: "composite".into(),
                warnings: vec![],
            },
            EventBody::RtmpStarted {
                name: "yt".into(),
                warnings: vec![],
            },
            EventBody::RtmpFailed {
                name: "yt".into(),
                error: "rtmp://u:pw@h/live/sk-stream-77 refused".into(),
            },
        ];
        for body in bodies {
            sink.emit(&Event::new("default:c", "eg_1", body));
        }
        let seen = memory.events.lock().unwrap();
        assert_eq!(seen.len(), 3, "every event is passed on");
        let text = serde_json::to_string(&*seen).unwrap();
        assert!(!text.contains("sk-stream-77") && !text.contains("pw@"), "{text}");
        assert!(text.contains("rtmp://***@h/live/*** refused"), "{text}");
    }
}
