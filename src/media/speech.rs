//! The speech tap of an audio track: its samples as 16 kHz mono f32 with their call time, for
//! transcription. The branch never holds the track back: when the handler falls behind, the
//! queue drops the oldest audio rather than stall the mix.

use super::make;
use super::tap::{Backlog, tap_bin};
use gst::prelude::*;
use gstreamer as gst;
use std::sync::Arc;
use std::time::Duration;

/// Sample rate of the tap (Whisper's).
pub const SPEECH_RATE: i32 = 16_000;

/// Called on a streaming thread with the input id, the call time of the first sample and the
/// samples (none: the track has ended); must return quickly.
pub type SpeechHandler = Arc<dyn Fn(&str, Duration, &[f32]) + Send + Sync>;

#[derive(Clone)]
pub struct SpeechTap {
    pub handler: SpeechHandler,
}

/// A bin with a `sink` pad, to be linked to the track's tee.
pub fn speech_branch(input: &str, tap: &SpeechTap) -> anyhow::Result<gst::Bin> {
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", SPEECH_RATE)
            .field("channels", 1)
            .field("layout", "interleaved")
            .build(),
    );
    let converters = [make("audioconvert")?, make("audioresample")?, caps];
    let handler = tap.handler.clone();
    let id = input.to_owned();
    let (bin, _) = tap_bin(
        &format!("speech-{}", input.replace('/', "-")),
        Backlog::Time(gst::ClockTime::from_seconds(2)),
        &converters,
        move |sample| {
            if let Some((at, samples)) = samples_of(sample) {
                handler(&id, at, &samples);
            }
        },
    )?;
    Ok(bin)
}

fn samples_of(sample: &gst::Sample) -> Option<(Duration, Vec<f32>)> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let at = segment.to_running_time(buffer.pts()?)?;
    let map = buffer.map_readable().ok()?;
    let samples = map
        .as_slice()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((Duration::from_nanos(at.nseconds()), samples))
}
