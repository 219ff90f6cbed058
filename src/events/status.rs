//! What a running job is doing, in the shape of the seed's `EgressResponse` (with the outputs it
//! does not model: transcription, captions, thumbnails, pauses), folded from the job's own events:
//! the status says exactly what the events have said.

use super::{Event, EventBody, EventSink};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobStatus {
    pub egress_id: String,
    /// HLS or an RTMP push is live.
    pub broadcasting: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite_recording: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_recording: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub individual_recording: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_recording: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<HlsStatus>,
    /// The pushes that are live.
    pub rtmps: Vec<RtmpStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_captions: Option<OutputStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<ThumbnailStatus>,
    /// Where each push sends, without its key (filled from the job).
    #[serde(skip)]
    pub stream_urls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputStatus {
    /// `running`, `paused`, `stopped` or `failed`.
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HlsStatus {
    pub playlist_url: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RtmpStatus {
    pub name: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThumbnailStatus {
    pub image_url: String,
}

fn set(slot: &mut Option<OutputStatus>, status: &'static str) {
    *slot = Some(OutputStatus { status });
}

impl JobStatus {
    pub fn new(egress_id: &str, stream_urls: BTreeMap<String, String>) -> JobStatus {
        JobStatus {
            egress_id: egress_id.to_owned(),
            stream_urls,
            ..JobStatus::default()
        }
    }

    pub fn apply(&mut self, event: &Event) {
        let recording = |this: &mut JobStatus, recording_type: &str, status| match recording_type {
            super::RAW => set(&mut this.raw_recording, status),
            super::INDIVIDUAL => set(&mut this.individual_recording, status),
            _ => set(&mut this.composite_recording, status),
        };
        match &event.body {
            EventBody::RecordingStarted { recording_type, .. }
            | EventBody::RecordingResumed { recording_type } => recording(self, recording_type, "running"),
            EventBody::RecordingPaused { recording_type } => recording(self, recording_type, "paused"),
            EventBody::RecordingStopped { recording_type } => recording(self, recording_type, "stopped"),
            EventBody::RecordingFailed { recording_type, .. } => recording(self, recording_type, "failed"),
            EventBody::HlsStarted { hls_playlist_url, .. } => {
                self.hls = Some(HlsStatus {
                    playlist_url: hls_playlist_url.clone(),
                    status: "running",
                })
            }
            EventBody::HlsStopped {} | EventBody::HlsFailed { .. } => {
                let status = match event.body {
                    EventBody::HlsStopped {} => "stopped",
                    _ => "failed",
                };
                match &mut self.hls {
                    Some(hls) => hls.status = status,
                    None => {
                        self.hls = Some(HlsStatus {
                            playlist_url: String::new(),
                            status,
                        })
                    }
                }
            }
            EventBody::RtmpStarted { name, .. } => {
                self.rtmps.retain(|push| &push.name != name);
                self.rtmps.push(RtmpStatus {
                    name: name.clone(),
                    started_at: event.created_at.clone(),
                    stream_url: self.stream_urls.get(name).cloned(),
                });
            }
            EventBody::RtmpStopped { name } | EventBody::RtmpFailed { name, .. } => {
                self.rtmps.retain(|push| &push.name != name)
            }
            EventBody::FrameRecordingStarted { .. } => set(&mut self.frame_recording, "running"),
            EventBody::FrameRecordingStopped {} => set(&mut self.frame_recording, "stopped"),
            EventBody::FrameRecordingFailed { .. } => set(&mut self.frame_recording, "failed"),
            EventBody::TranscriptionStarted {} | EventBody::TranscriptionResumed {} => {
                set(&mut self.transcription, "running")
            }
            EventBody::TranscriptionPaused {} => set(&mut self.transcription, "paused"),
            EventBody::TranscriptionStopped {} => set(&mut self.transcription, "stopped"),
            EventBody::TranscriptionFailed { .. } => set(&mut self.transcription, "failed"),
            EventBody::ClosedCaptionsStarted {} => set(&mut self.closed_captions, "running"),
            EventBody::ClosedCaptionsStopped {} => set(&mut self.closed_captions, "stopped"),
            EventBody::ClosedCaptionsFailed { .. } => set(&mut self.closed_captions, "failed"),
            EventBody::ThumbnailReady { image_url, .. } => {
                self.thumbnails = Some(ThumbnailStatus {
                    image_url: image_url.clone(),
                })
            }
            _ => {}
        }
        self.broadcasting =
            self.hls.as_ref().is_some_and(|h| h.status == "running") || !self.rtmps.is_empty();
    }
}

/// Passes a job's events on and keeps its status up to date from them.
pub struct StatusSink {
    inner: Arc<dyn EventSink>,
    status: Arc<Mutex<JobStatus>>,
}

impl StatusSink {
    pub fn new(inner: Arc<dyn EventSink>, status: Arc<Mutex<JobStatus>>) -> StatusSink {
        StatusSink { inner, status }
    }
}

impl EventSink for StatusSink {
    fn emit(&self, event: &Event) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).apply(event);
        self.inner.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: EventBody) -> Event {
        Event::new("default:c", "eg_1", body)
    }

    #[test]
    fn the_status_follows_the_events() {
        let urls = BTreeMap::from([("a".to_owned(), "rtmp://host/live".to_owned())]);
        let mut status = JobStatus::new("eg_1", urls);
        status.apply(&event(EventBody::RecordingStarted {
            recording_type: "composite".into(),
            warnings: vec![],
        }));
        status.apply(&event(EventBody::RtmpStarted {
            name: "a".into(),
            warnings: vec![],
        }));
        assert!(status.broadcasting);
        assert_eq!(status.rtmps[0].stream_url.as_deref(), Some("rtmp://host/live"));
        status.apply(&event(EventBody::RecordingPaused {
            recording_type: "composite".into(),
        }));
        assert_eq!(status.composite_recording.as_ref().unwrap().status, "paused");
        status.apply(&event(EventBody::RtmpStopped { name: "a".into() }));
        assert!(!status.broadcasting && status.rtmps.is_empty());
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["composite_recording"]["status"], "paused");
        assert_eq!(json["rtmps"], serde_json::json!([]));
        assert!(json.get("hls").is_none());
    }
}
