//! The composite graph: participant inputs mixed into one picture and one sound, encoded once
//! and muxed into an MP4 that survives a crash.
//!
//! ```text
//! background (live) ─► compositor ─► I420 caps ─► x264enc ─► h264parse ─┐
//! inputs (non-live, offset to the join time) ─┘                          ├─► mp4mux ─► file
//! silence (live) ─► audiomixer ─► caps ─► audioconvert ─► avenc_aac ────┘
//! inputs ─┘
//! ```
//! The live background and silence sources pace everything: inputs are pulled one frame at a
//! time by the aggregators, so they cost what they cost in a real call and never run ahead.

use super::{make, presets};
use crate::job::Quality;
use crate::layout::Rect;
use anyhow::{Context, anyhow};
use gst::prelude::*;
use gstreamer as gst;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const FIRST_FRAME: &str = "egress-first-encoded-frame";

pub struct CompositeSpec {
    pub quality: Quality,
    /// Canvas colour where no tile is drawn, 0xRRGGBB.
    pub background_rgb: u32,
    pub audio_only: bool,
    pub output: PathBuf,
    /// The longest the file can become; sizes the header space kept for crash-safe writing.
    pub max_duration: Duration,
}

/// What the graph tells the session through the bus, beyond GStreamer's own messages.
#[derive(Debug, PartialEq, Eq)]
pub enum GraphNotice {
    FirstEncodedFrame,
}

impl GraphNotice {
    pub fn from_message(message: &gst::Message) -> Option<GraphNotice> {
        match message.view() {
            gst::MessageView::Application(app)
                if app.structure().is_some_and(|s| s.name() == FIRST_FRAME) =>
            {
                Some(GraphNotice::FirstEncodedFrame)
            }
            _ => None,
        }
    }
}

struct Input {
    media: gst::Element,
    pad: gst::Pad,
}

pub struct Composite {
    pipeline: gst::Pipeline,
    compositor: Option<gst::Element>,
    mixer: gst::Element,
    live_sources: Vec<gst::Element>,
    inputs: HashMap<String, Input>,
    /// Running time (ns) from which mixed output is dropped; set when the stream ends, so the
    /// file ends exactly there whatever the sources still push while EOS travels.
    cut_at: Arc<AtomicU64>,
}

impl Composite {
    pub fn build(spec: &CompositeSpec) -> anyhow::Result<Composite> {
        let pipeline = gst::Pipeline::with_name("composite");
        let mux = make("mp4mux")?;
        // Robust muxing: the index is rewritten into space reserved at the head of the file
        // every second, so a crash leaves a playable file and a clean stop a progressive one.
        mux.set_property(
            "reserved-max-duration",
            (spec.max_duration + Duration::from_secs(60)).as_nanos() as u64,
        );
        mux.set_property("reserved-moov-update-period", gst::ClockTime::SECOND.nseconds());
        let sink = make("filesink")?;
        sink.set_property("location", spec.output.to_string_lossy().to_string());
        pipeline.add_many([&mux, &sink])?;
        mux.link(&sink)?;

        let mut live_sources = Vec::new();
        let compositor = if spec.audio_only {
            None
        } else {
            let (compositor, background) = build_video(&pipeline, &mux, spec)?;
            live_sources.push(background);
            Some(compositor)
        };
        let (mixer, silence) = build_audio(&pipeline, &mux, spec.audio_only)?;
        live_sources.push(silence);
        let cut_at = Arc::new(AtomicU64::new(u64::MAX));
        for aggregator in compositor.iter().chain([&mixer]) {
            drop_after_cut(aggregator, cut_at.clone())?;
        }
        Ok(Composite {
            pipeline,
            compositor,
            mixer,
            live_sources,
            inputs: HashMap::new(),
            cut_at,
        })
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    pub fn has_video(&self) -> bool {
        self.compositor.is_some()
    }

    /// Adds a decoded track (a bin with one `src` pad); video stays hidden until placed.
    pub fn add_input(&mut self, id: &str, media: gst::Element, is_video: bool) -> anyhow::Result<()> {
        let aggregator = if is_video {
            self.compositor
                .as_ref()
                .ok_or_else(|| anyhow!("audio-only recording has no video input"))?
        } else {
            &self.mixer
        };
        self.pipeline.add(&media)?;
        let src = media.static_pad("src").context("track media has no src pad")?;
        let pad = aggregator
            .request_pad_simple("sink_%u")
            .context("the mixer refused another input")?;
        if is_video {
            pad.set_property("alpha", 0.0f64);
            pad.set_property("zorder", 1u32);
        }
        // The track's own clock starts at zero; shift it to the moment it joins the call.
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO);
        src.set_offset(now.nseconds() as i64);
        src.link(&pad).context("cannot link the track to the mixer")?;
        media.sync_state_with_parent()?;
        self.inputs.insert(id.to_owned(), Input { media, pad });
        Ok(())
    }

    /// Shows a video input in `rect`, or hides it.
    pub fn place(&self, id: &str, rect: Option<Rect>) {
        let Some(input) = self.inputs.get(id) else { return };
        match rect {
            Some(r) => {
                input.pad.set_property("xpos", r.x);
                input.pad.set_property("ypos", r.y);
                input.pad.set_property("width", r.w as i32);
                input.pad.set_property("height", r.h as i32);
                input.pad.set_property("alpha", 1.0f64);
            }
            None => input.pad.set_property("alpha", 0.0f64),
        }
    }

    /// Takes an input out of the mix and out of the pipeline, without disturbing the output.
    pub fn remove_input(&mut self, id: &str) {
        let Some(input) = self.inputs.remove(id) else {
            return;
        };
        if input.pad.has_property("alpha") {
            input.pad.set_property("alpha", 0.0f64);
        }
        // EOS on the mixer pad first: upstream then stops with EOS instead of "not linked".
        input.pad.send_event(gst::event::Eos::new());
        let _ = input.media.set_state(gst::State::Null);
        if let Some(parent) = input.pad.parent_element() {
            parent.release_request_pad(&input.pad);
        }
        let _ = self.pipeline.remove(&input.media);
    }

    pub fn input_ids(&self) -> impl Iterator<Item = &str> {
        self.inputs.keys().map(String::as_str)
    }

    /// Ends the stream: every input and the live sources send EOS, so the muxer finalizes.
    ///
    /// EOS into an input pad waits for that pad's stream lock (up to a frame), so all are sent
    /// at once: sent one by one, the live background would add frames past the end of the call.
    pub fn finish(&mut self) {
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO);
        self.cut_at.store(now.nseconds(), Ordering::Relaxed);
        std::thread::scope(|scope| {
            for input in self.inputs.values() {
                scope.spawn(|| input.pad.send_event(gst::event::Eos::new()));
            }
            for source in &self.live_sources {
                scope.spawn(|| source.send_event(gst::event::Eos::new()));
            }
        });
    }
}

fn build_video(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    spec: &CompositeSpec,
) -> anyhow::Result<(gst::Element, gst::Element)> {
    let p = presets();
    let quality = spec.quality;
    let (width, height) = quality.size();
    let raw = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(p.video.framerate as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();

    let background = make("videotestsrc")?;
    background.set_property("is-live", true);
    background.set_property_from_str("pattern", "solid-color");
    background.set_property("foreground-color", 0xff00_0000 | spec.background_rgb);
    let background_caps = capsfilter(&raw)?;
    let compositor = make("compositor")?;
    let out_caps = capsfilter(&raw)?;
    let queue = make("queue")?;
    let encoder = make("x264enc")?;
    encoder.set_property("bitrate", p.video.bitrate_kbps(quality));
    encoder.set_property_from_str("speed-preset", &p.video.x264_speed_preset);
    encoder.set_property("key-int-max", p.video.framerate * p.video.keyframe_interval_s);
    let h264_caps = capsfilter(
        &gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .build(),
    )?;
    let parse = make("h264parse")?;
    pipeline.add_many([
        &background,
        &background_caps,
        &compositor,
        &out_caps,
        &queue,
        &encoder,
        &h264_caps,
        &parse,
    ])?;
    gst::Element::link_many([&background, &background_caps])?;
    let base = compositor
        .request_pad_simple("sink_%u")
        .context("compositor has no input pads")?;
    base.set_property("zorder", 0u32);
    background_caps
        .static_pad("src")
        .context("capsfilter without src")?
        .link(&base)?;
    gst::Element::link_many([&compositor, &out_caps, &queue, &encoder, &h264_caps, &parse])?;
    parse.link_pads(None, mux, Some("video_%u"))?;
    announce_first_buffer(&encoder)?;
    Ok((compositor, background))
}

fn build_audio(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    announce: bool,
) -> anyhow::Result<(gst::Element, gst::Element)> {
    let p = presets();
    let silence = make("audiotestsrc")?;
    silence.set_property("is-live", true);
    silence.set_property_from_str("wave", "silence");
    silence.set_property("samplesperbuffer", (p.audio.sample_rate / 100) as i32);
    let mixer = make("audiomixer")?;
    let caps = capsfilter(
        &gst::Caps::builder("audio/x-raw")
            .field("rate", p.audio.sample_rate as i32)
            .field("channels", p.audio.channels as i32)
            .build(),
    )?;
    let convert = make("audioconvert")?;
    let queue = make("queue")?;
    let encoder = make("avenc_aac")?;
    encoder.set_property("bitrate", (p.audio.aac_bitrate_kbps * 1000) as i32);
    let parse = make("aacparse")?;
    pipeline.add_many([&silence, &mixer, &caps, &convert, &queue, &encoder, &parse])?;
    gst::Element::link_many([&silence, &mixer, &caps, &convert, &queue, &encoder, &parse])?;
    parse.link_pads(None, mux, Some("audio_%u"))?;
    if announce {
        announce_first_buffer(&encoder)?;
    }
    Ok((mixer, silence))
}

fn capsfilter(caps: &gst::Caps) -> anyhow::Result<gst::Element> {
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps);
    Ok(filter)
}

/// Drops the aggregator's output buffers that start at or after `cut_at` (running time).
fn drop_after_cut(aggregator: &gst::Element, cut_at: Arc<AtomicU64>) -> anyhow::Result<()> {
    let pad = aggregator.static_pad("src").context("mixer without src pad")?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let late = info
            .buffer()
            .and_then(|b| b.pts())
            .is_some_and(|pts| pts.nseconds() >= cut_at.load(Ordering::Relaxed));
        if late {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
    Ok(())
}

/// Posts a message on the bus when the encoder emits its first buffer.
fn announce_first_buffer(encoder: &gst::Element) -> anyhow::Result<()> {
    let pad = encoder.static_pad("src").context("encoder without src pad")?;
    let seen = Arc::new(AtomicBool::new(false));
    let element = encoder.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if !seen.swap(true, Ordering::Relaxed)
            && let Some(element) = element.upgrade()
        {
            let _ = element.post_message(gst::message::Application::new(gst::Structure::new_empty(
                FIRST_FRAME,
            )));
        }
        gst::PadProbeReturn::Remove
    });
    Ok(())
}
