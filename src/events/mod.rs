//! Events announcing every state change of a job, shaped like the seed's event models.

mod sink;

pub use sink::{EventSink, JsonLinesSink, MemorySink};

use serde::Serialize;

/// Every event carries these fields plus its type-specific body.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub call_cid: String,
    pub created_at: String,
    pub egress_id: String,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn new(call_cid: &str, egress_id: &str, body: EventBody) -> Self {
        Event {
            call_cid: call_cid.to_owned(),
            created_at: now_rfc3339(),
            egress_id: egress_id.to_owned(),
            body,
        }
    }

    pub fn type_name(&self) -> String {
        serde_json::to_value(&self.body)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Only `composite` recordings are produced by this worker.
pub const COMPOSITE: &str = "composite";

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum EventBody {
    #[serde(rename = "call.recording_started")]
    RecordingStarted { recording_type: &'static str },
    #[serde(rename = "call.recording_stopped")]
    RecordingStopped { recording_type: &'static str },
    #[serde(rename = "call.recording_ready")]
    RecordingReady {
        recording_type: &'static str,
        call_recording: CallRecording,
    },
    #[serde(rename = "call.recording_failed")]
    RecordingFailed {
        recording_type: &'static str,
        /// What went wrong, in plain words (never a secret).
        error: String,
    },
}

/// The `CallRecording` object of the seed's event model.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecording {
    pub filename: String,
    pub url: String,
    pub start_time: String,
    pub end_time: String,
    pub session_id: String,
    pub recording_type: &'static str,
}
