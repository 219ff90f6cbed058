//! Events announcing every state change of a job, shaped like the seed's event models.

mod sink;
mod webhook;

pub use sink::{EventSink, JsonLinesSink, MemorySink, RedactingSink};
pub use webhook::{FanOut, WebhookConfig, WebhookSink, signature};

use serde::{Deserialize, Serialize};

/// Every event carries these fields plus its type-specific body.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    #[serde(rename = "call.recording_started")]
    RecordingStarted {
        recording_type: String,
        /// Problems in the job that did not stop it (e.g. unknown layout options).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    #[serde(rename = "call.recording_stopped")]
    RecordingStopped { recording_type: String },
    #[serde(rename = "call.recording_ready")]
    RecordingReady {
        recording_type: String,
        call_recording: CallRecording,
    },
    #[serde(rename = "call.recording_failed")]
    RecordingFailed {
        recording_type: String,
        /// What went wrong, in plain words (never a secret).
        error: String,
    },
    #[serde(rename = "call.hls_broadcasting_started")]
    HlsStarted {
        hls_playlist_url: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    #[serde(rename = "call.hls_broadcasting_stopped")]
    HlsStopped {},
    #[serde(rename = "call.hls_broadcasting_failed")]
    HlsFailed { error: String },
    #[serde(rename = "call.rtmp_broadcast_started")]
    RtmpStarted {
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    #[serde(rename = "call.rtmp_broadcast_stopped")]
    RtmpStopped { name: String },
    #[serde(rename = "call.rtmp_broadcast_failed")]
    RtmpFailed { name: String, error: String },
    #[serde(rename = "call.frame_recording_started")]
    FrameRecordingStarted {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    #[serde(rename = "call.frame_recording_ready")]
    FrameRecordingReady {
        /// When the frame was shown in the call (not when it was stored).
        captured_at: String,
        session_id: String,
        /// `TRACK_TYPE_VIDEO` or `TRACK_TYPE_SCREEN_SHARE`.
        track_type: String,
        url: String,
        /// The participant in the frame, by user id.
        users: serde_json::Map<String, serde_json::Value>,
    },
    #[serde(rename = "call.frame_recording_stopped")]
    FrameRecordingStopped {},
    #[serde(rename = "call.frame_recording_failed")]
    FrameRecordingFailed { error: String },
    #[serde(rename = "call.transcription_started")]
    TranscriptionStarted {},
    #[serde(rename = "call.transcription_stopped")]
    TranscriptionStopped {},
    #[serde(rename = "call.transcription_ready")]
    TranscriptionReady { call_transcription: CallTranscription },
    #[serde(rename = "call.transcription_failed")]
    TranscriptionFailed { error: String },
    #[serde(rename = "call.closed_captions_started")]
    ClosedCaptionsStarted {},
    #[serde(rename = "call.closed_captions_stopped")]
    ClosedCaptionsStopped {},
    #[serde(rename = "call.closed_captions_failed")]
    ClosedCaptionsFailed { error: String },
    #[serde(rename = "call.closed_caption")]
    ClosedCaption { closed_caption: CallClosedCaption },
}

/// The `CallTranscription` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallTranscription {
    pub filename: String,
    pub url: String,
    pub start_time: String,
    pub end_time: String,
    pub session_id: String,
}

/// The `CallClosedCaption` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallClosedCaption {
    pub id: String,
    pub start_time: String,
    pub end_time: String,
    pub speaker_id: String,
    pub text: String,
    pub language: String,
    pub translated: bool,
    /// The speaker, as a user object (`id`, `name` when known).
    pub user: serde_json::Value,
}

/// The `CallRecording` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRecording {
    pub filename: String,
    pub url: String,
    pub start_time: String,
    pub end_time: String,
    pub session_id: String,
    pub recording_type: String,
}
