//! The recording: MP4 (or M4A for audio only) cut into parts of at most `max_part`, at
//! keyframes, by `splitmuxsink`. Each part is crash-safe (robust muxing) and announced when closed.

use super::super::make;
use super::branch;
use crate::media::Composite;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct RecordingSpec {
    /// The mix and quality of the video; `None` for audio only.
    pub video: Option<(usize, crate::job::Quality)>,
    pub max_part: Duration,
    /// The path of part `n` (from 0), asked when the part opens.
    pub part_path: Arc<dyn Fn(u32) -> PathBuf + Send + Sync>,
}

/// A part opened or closed, from splitmuxsink's bus messages.
#[derive(Debug, Clone, PartialEq)]
pub enum PartEvent {
    Opened(PathBuf),
    Closed(PathBuf),
}

impl PartEvent {
    pub fn from_message(message: &gst::Message) -> Option<PartEvent> {
        let gst::MessageView::Element(element) = message.view() else {
            return None;
        };
        let s = element.structure()?;
        let location = || s.get::<String>("location").ok().map(PathBuf::from);
        match s.name().as_str() {
            "splitmuxsink-fragment-opened" => location().map(PartEvent::Opened),
            "splitmuxsink-fragment-closed" => location().map(PartEvent::Closed),
            _ => None,
        }
    }
}

pub fn attach_recording(composite: &mut Composite, spec: &RecordingSpec) -> anyhow::Result<gst::Element> {
    let sink = make("splitmuxsink")?;
    let mux = make("mp4mux")?;
    // Robust muxing: the index is rewritten into space reserved at the head of the file every
    // second, so a crash leaves a playable part and a clean stop a progressive one.
    mux.set_property("reserved-moov-update-period", gst::ClockTime::SECOND.nseconds());
    sink.set_property("muxer", &mux);
    sink.set_property("use-robust-muxing", true);
    sink.set_property("max-size-time", spec.max_part.as_nanos() as u64);
    let part_path = spec.part_path.clone();
    sink.connect("format-location-full", false, move |args| {
        let index = args[1].get::<u32>().unwrap_or(0);
        Some(part_path(index).to_string_lossy().to_string().to_value())
    });
    composite.pipeline().add(&sink)?;
    if let Some((mix, quality)) = spec.video {
        let video = composite.encoded_video(mix, quality)?;
        let pad = sink
            .request_pad_simple("video")
            .context("splitmuxsink has no video pad")?;
        branch(composite.pipeline(), &video, "h264parse", &pad)?;
    }
    let pad = sink
        .request_pad_simple("audio_%u")
        .context("splitmuxsink has no audio pad")?;
    branch(composite.pipeline(), &composite.encoded_audio(), "aacparse", &pad)?;
    Ok(sink)
}
