//! Events announcing every state change of a job, shaped like the seed's event models.

mod journal;
mod sink;
mod status;
mod webhook;

pub use journal::{Destination, Journal, LaneFigures, LaneSpec, Sent};
pub use sink::{EventSink, JsonLinesSink, MemorySink, RedactingSink};
pub use status::{JobStatus, StatusSink};
pub use webhook::{WebhookConfig, WebhookDestination, signature};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every event carries these fields plus its type-specific body.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Stable for the event wherever and however often it is delivered (the webhook's
    /// `X-WEBHOOK-ID`, the AMQP message id): consumers drop duplicates by it.
    #[serde(default = "new_event_id")]
    pub event_id: String,
    pub call_cid: String,
    pub created_at: String,
    pub egress_id: String,
    /// The call, on the events whose seed model requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallSummary>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The seed's `CallResponse`: the call's identity, which the worker knows, and whatever else of
/// that model (settings, members, ingress) the platform gave in the job's `call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallSummary {
    /// `TYPE:ID`.
    pub cid: String,
    #[serde(rename = "type")]
    pub call_type: String,
    pub id: String,
    /// The job's `call` fields beyond the identity, as given.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl CallSummary {
    pub fn of(call_cid: &str) -> CallSummary {
        let (call_type, id) = call_cid.split_once(':').unwrap_or(("default", call_cid));
        CallSummary {
            cid: call_cid.to_owned(),
            call_type: call_type.to_owned(),
            id: id.to_owned(),
            details: serde_json::Map::new(),
        }
    }
}

/// A participant as events name them, the same in every event: the seed's `UserResponse` as
/// far as the call tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserObject {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first of `roles`, `user` when there is none.
    pub role: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub custom: serde_json::Map<String, serde_json::Value>,
}

impl UserObject {
    pub fn of(participant: &crate::source::ParticipantInfo) -> UserObject {
        UserObject {
            id: participant.user_id.clone(),
            name: Some(participant.name.clone()),
            role: participant
                .roles
                .first()
                .cloned()
                .unwrap_or_else(|| "user".to_owned()),
            roles: participant.roles.clone(),
            image: None,
            custom: serde_json::Map::new(),
        }
    }

    /// Someone the call has no details of.
    pub fn unknown(user_id: &str) -> UserObject {
        UserObject {
            id: user_id.to_owned(),
            name: None,
            role: "user".to_owned(),
            roles: Vec::new(),
            image: None,
            custom: serde_json::Map::new(),
        }
    }
}

/// The JSON Schema every event is valid against.
pub fn schema_json() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Event)).expect("a generated schema is valid JSON")
}

fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Event {
    pub fn new(call_cid: &str, egress_id: &str, body: EventBody) -> Self {
        let call = body.carries_call().then(|| CallSummary::of(call_cid));
        Event {
            event_id: new_event_id(),
            call_cid: call_cid.to_owned(),
            created_at: now_rfc3339(),
            egress_id: egress_id.to_owned(),
            call,
            body,
        }
    }

    /// Adds the platform's description of the call (the job's `call`) where the event has one.
    pub fn with_call_details(mut self, details: Option<&serde_json::Map<String, serde_json::Value>>) -> Self {
        if let (Some(call), Some(details)) = (&mut self.call, details) {
            let beyond_identity = details
                .iter()
                .filter(|(field, _)| !matches!(field.as_str(), "cid" | "type" | "id"));
            call.details
                .extend(beyond_identity.map(|(field, value)| (field.clone(), value.clone())));
        }
        self
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

/// The `recording_type` of the composite recording.
pub const COMPOSITE: &str = "composite";
/// The `recording_type` of raw recordings: each track as it arrived, and the manifest.
pub const RAW: &str = "raw";
/// The `recording_type` of individual recordings: a file per participant and stay.
pub const INDIVIDUAL: &str = "individual";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    /// Not in the seed: the recording was paused (`egress pause`); nothing enters it until resumed.
    #[serde(rename = "call.recording_paused")]
    RecordingPaused { recording_type: String },
    /// Not in the seed: the recording goes on (`egress resume`), in the same part.
    #[serde(rename = "call.recording_resumed")]
    RecordingResumed { recording_type: String },
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
        users: BTreeMap<String, UserObject>,
    },
    #[serde(rename = "call.frame_recording_stopped")]
    FrameRecordingStopped {},
    #[serde(rename = "call.frame_recording_failed")]
    FrameRecordingFailed { error: String },
    /// A new thumbnail of the call (the seed's `ThumbnailResponse`), stored under the same key
    /// as the one before it.
    #[serde(rename = "call.thumbnail_ready")]
    ThumbnailReady {
        image_url: String,
        /// When the picture was shown in the call.
        captured_at: String,
    },
    #[serde(rename = "call.thumbnail_failed")]
    ThumbnailFailed { error: String },
    #[serde(rename = "call.transcription_started")]
    TranscriptionStarted {},
    #[serde(rename = "call.transcription_stopped")]
    TranscriptionStopped {},
    /// Not in the seed: the transcript and captions leave out what is said until resumed.
    #[serde(rename = "call.transcription_paused")]
    TranscriptionPaused {},
    /// Not in the seed: the transcript and captions take in what is said again.
    #[serde(rename = "call.transcription_resumed")]
    TranscriptionResumed {},
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

impl EventBody {
    /// Whether the seed's model of this event requires the `call` object.
    /// The output this event ends (`recording`, `hls`, `rtmp:NAME`, …), for a stopped or failed
    /// event: each output has one.
    pub fn ends_output(&self) -> Option<String> {
        let output = match self {
            EventBody::RecordingStopped { .. } | EventBody::RecordingFailed { .. } => "recording",
            EventBody::HlsStopped {} | EventBody::HlsFailed { .. } => "hls",
            EventBody::RtmpStopped { name } | EventBody::RtmpFailed { name, .. } => {
                return Some(format!("rtmp:{name}"));
            }
            EventBody::FrameRecordingStopped {} | EventBody::FrameRecordingFailed { .. } => "frame_recording",
            EventBody::TranscriptionStopped {} | EventBody::TranscriptionFailed { .. } => "transcription",
            EventBody::ClosedCaptionsStopped {} | EventBody::ClosedCaptionsFailed { .. } => "closed_captions",
            _ => return None,
        };
        Some(output.to_owned())
    }

    /// The output a start event begins, named as `ends_output` names it.
    pub fn starts_output(&self) -> Option<String> {
        let output = match self {
            EventBody::RecordingStarted { .. } => "recording",
            EventBody::HlsStarted { .. } => "hls",
            EventBody::RtmpStarted { name, .. } => return Some(format!("rtmp:{name}")),
            EventBody::FrameRecordingStarted { .. } => "frame_recording",
            EventBody::TranscriptionStarted { .. } => "transcription",
            EventBody::ClosedCaptionsStarted { .. } => "closed_captions",
            _ => return None,
        };
        Some(output.to_owned())
    }

    fn carries_call(&self) -> bool {
        matches!(
            self,
            EventBody::HlsStarted { .. }
                | EventBody::FrameRecordingStarted { .. }
                | EventBody::FrameRecordingStopped {}
                | EventBody::FrameRecordingFailed { .. }
        )
    }
}

/// The `CallTranscription` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CallTranscription {
    pub filename: String,
    pub url: String,
    pub start_time: String,
    pub end_time: String,
    pub session_id: String,
}

/// The `CallClosedCaption` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CallClosedCaption {
    pub id: String,
    pub start_time: String,
    pub end_time: String,
    pub speaker_id: String,
    pub text: String,
    pub language: String,
    pub translated: bool,
    pub user: UserObject,
    /// What made the caption: the speech model.
    pub service: String,
}

/// The `CallRecording` object of the seed's event model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CallRecording {
    pub filename: String,
    pub url: String,
    pub start_time: String,
    pub end_time: String,
    pub session_id: String,
    pub recording_type: String,
    /// Not in the seed: whose file it is, for an individual recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Not in the seed: which of their tracks it holds (`camera`, with the microphone, or
    /// `screenshare`), for an individual recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Not in the seed: the spans the recording was paused while this part was open (wall clock);
    /// the file is the call without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<PausedSpan>,
}

/// A span a recording was paused, from the pause to the resume (`end_time` absent when the part
/// ended paused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PausedSpan {
    pub start_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(event: &Event) -> Vec<String> {
        let validator = jsonschema::validator_for(&schema_json()).expect("the event schema compiles");
        let value = serde_json::to_value(event).unwrap();
        validator.iter_errors(&value).map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_events_whose_seed_model_requires_the_call_carry_it() {
        let started = Event::new(
            "livestream:town-hall",
            "eg_1",
            EventBody::HlsStarted {
                hls_playlist_url: "https://cdn/master.m3u8".into(),
                warnings: vec![],
            },
        );
        let call = started.call.clone().expect("call on hls_broadcasting_started");
        assert_eq!(
            (call.cid.as_str(), call.call_type.as_str(), call.id.as_str()),
            ("livestream:town-hall", "livestream", "town-hall")
        );
        assert_eq!(valid(&started), Vec::<String>::new());
        let stopped = Event::new("default:c", "eg_1", EventBody::FrameRecordingStopped {});
        assert!(stopped.call.is_some());
        let recording = Event::new(
            "default:c",
            "eg_1",
            EventBody::RecordingStopped {
                recording_type: COMPOSITE.into(),
            },
        );
        assert!(
            recording.call.is_none(),
            "the recording events' model has no call"
        );
    }

    #[test]
    fn the_schema_refuses_an_event_missing_a_required_field() {
        let caption = Event::new(
            "default:c",
            "eg_1",
            EventBody::ClosedCaption {
                closed_caption: CallClosedCaption {
                    id: "cc_1".into(),
                    start_time: now_rfc3339(),
                    end_time: now_rfc3339(),
                    speaker_id: "alice".into(),
                    text: "hello".into(),
                    language: "en".into(),
                    translated: false,
                    user: UserObject::unknown("alice"),
                    service: "whisper".into(),
                },
            },
        );
        assert_eq!(valid(&caption), Vec::<String>::new());
        let validator = jsonschema::validator_for(&schema_json()).unwrap();
        let mut value = serde_json::to_value(&caption).unwrap();
        value["closed_caption"]["user"]
            .as_object_mut()
            .unwrap()
            .remove("role");
        assert!(!validator.is_valid(&value), "a user without role is refused");
        let mut value = serde_json::to_value(&caption).unwrap();
        value["type"] = "call.no_such_event".into();
        assert!(!validator.is_valid(&value), "an unknown type is refused");
    }
}
