//! Individual recording: each participant on a stage of their own, a picture and a sound made
//! of their tracks alone, encoded and cut into parts like the composite recording.
//!
//! ```text
//! placeholder (live) ─► compositor ─► caps ─► tee ─► x264 ─► tee ─┐
//! camera (decoded, the composite's tee) ─► queue ─┘                ├─► recording parts
//! silence (live) ─► audiomixer ─► caps ─► aac ─► tee ──────────────┘
//! microphone (decoded, the composite's tee) ─► queue ─┘
//! ```
//! A stage opens when its participant joins (a screen share when the share starts) and ends
//! when they leave; its files then close. The decoded tracks are the composite's: one decode
//! per track whatever the job makes of it.

use super::composite::{build_audio_chain, build_encoder, capsfilter, drop_after_cut, raw_video_caps};
use super::make;
use super::outputs::{EncodedFeeds, RecordingControl, attach_recording_to};
use crate::job::Quality;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long the stage's encoded streams wait before they are written: a leave is heard of a
/// moment after the media stopped (the stage has filled it with its placeholder by then), and
/// what follows the leave must stay out of the file.
const HOLD_BACK: Duration = Duration::from_secs(1);

/// Which file of a participant a stage makes: their camera and microphone, or their screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageTrack {
    Camera,
    ScreenShare,
}

impl StageTrack {
    pub fn label(self) -> &'static str {
        match self {
            StageTrack::Camera => "camera",
            StageTrack::ScreenShare => "screenshare",
        }
    }
}

/// One participant's stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageKey {
    pub user_id: String,
    pub track: StageTrack,
}

impl StageKey {
    /// The stage an input (`USER/camera`, `USER/microphone`, `USER/screenshare`) goes to.
    pub fn of_input(input: &str) -> Option<StageKey> {
        let (user_id, label) = input.rsplit_once('/')?;
        let track = match label {
            "camera" | "microphone" => StageTrack::Camera,
            "screenshare" => StageTrack::ScreenShare,
            _ => return None,
        };
        Some(StageKey {
            user_id: user_id.to_owned(),
            track,
        })
    }
}

/// The path of part `n` (from 0) of the `stay`-th stage (from 0) of a key.
pub type StagePartPath = Arc<dyn Fn(&StageKey, u32, u32) -> PathBuf + Send + Sync>;

/// What the individual recording asks of the graph.
#[derive(Clone)]
pub struct IndividualTap {
    pub quality: Quality,
    pub audio_only: bool,
    pub max_part: Duration,
    /// Where the camera is off, 0xRRGGBB.
    pub placeholder_rgb: u32,
    pub part_path: StagePartPath,
}

/// A stage in the pipeline.
pub(super) struct Stage {
    /// The picture's aggregator (none for audio only).
    pub compositor: Option<gst::Element>,
    pub mixer: gst::Element,
    /// The live placeholder and silence, which end the stage when they end.
    pub sources: Vec<gst::Element>,
    /// Running time (ns) from which the stage's output is dropped: where its participant left.
    pub cut_at: Arc<AtomicU64>,
    pub control: RecordingControl,
    pub size: (u32, u32),
}

impl Stage {
    /// Whether the stage takes this kind of track.
    pub fn takes(&self, is_video: bool) -> bool {
        !is_video || self.compositor.is_some()
    }

    /// Ends the stage at running time `at`: what came later is left out and its files close.
    pub fn end(&self, at: u64) {
        self.cut_at.store(at, Ordering::Relaxed);
        self.control.end_at(gst::ClockTime::from_nseconds(at));
        for source in &self.sources {
            let source = source.clone();
            let send = move || {
                source.send_event(gst::event::Eos::new());
            };
            if let Err(e) = std::thread::Builder::new().name("eos".into()).spawn(send) {
                tracing::warn!(error = %e, "cannot start a thread to end a stage");
            }
        }
    }

    /// The aggregator pad a track of the stage feeds, with what fits it there.
    pub fn request_pad(&self, is_video: bool) -> anyhow::Result<gst::Pad> {
        match (is_video, &self.compositor) {
            (true, Some(compositor)) => {
                let pad = compositor
                    .request_pad_simple("sink_%u")
                    .context("the stage refused a picture")?;
                pad.set_property("zorder", 1u32);
                fit_without_enlarging(&pad, self.size);
                Ok(pad)
            }
            (true, None) => anyhow::bail!("an audio-only stage takes no picture"),
            (false, _) => self
                .mixer
                .request_pad_simple("sink_%u")
                .context("the stage refused a sound"),
        }
    }
}

/// Builds the stage of `key` in a playing pipeline: its picture (unless audio only, where
/// a screen share has no stage), its sound and the recording of both.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_stage(
    pipeline: &gst::Pipeline,
    key: &StageKey,
    stay: u32,
    tap: &IndividualTap,
    latency: Duration,
    first_frame_seen: Arc<AtomicBool>,
) -> anyhow::Result<Stage> {
    let now = pipeline
        .current_running_time()
        .unwrap_or(gst::ClockTime::ZERO)
        .nseconds();
    let cut_at = Arc::new(AtomicU64::new(u64::MAX));
    let name = format!("individual-{}-{}-{stay}", key.user_id, key.track.label());
    let size = tap.quality.size();
    let mut sources = Vec::new();
    let (compositor, video) = match tap.audio_only {
        true => (None, None),
        false => {
            let placeholder = make("videotestsrc")?;
            placeholder.set_property("is-live", true);
            placeholder.set_property_from_str("pattern", "solid-color");
            placeholder.set_property("foreground-color", 0xff00_0000 | tap.placeholder_rgb);
            // A live test source counts from zero; it starts at the call's time now.
            placeholder.set_property("timestamp-offset", now as i64);
            let placeholder_caps = capsfilter(&raw_video_caps(size))?;
            let compositor = make("compositor")?;
            compositor.set_property("latency", latency.as_nanos() as u64);
            // Its first frame is the stage's first, not call time zero.
            compositor.set_property_from_str("start-time-selection", "first");
            let out_caps = capsfilter(&raw_video_caps(size))?;
            let picture = make("tee")?;
            picture.set_property("allow-not-linked", true);
            let chain = [&placeholder, &placeholder_caps, &compositor, &out_caps, &picture];
            pipeline.add_many(chain)?;
            gst::Element::link_many([&compositor, &out_caps, &picture])?;
            let base = compositor
                .request_pad_simple("sink_%u")
                .context("the stage compositor has no input pads")?;
            base.set_property("zorder", 0u32);
            placeholder.link(&placeholder_caps)?;
            placeholder_caps
                .static_pad("src")
                .context("capsfilter without src")?
                .link(&base)?;
            drop_after_cut(&compositor, cut_at.clone())?;
            let (encoded, _) = build_encoder(pipeline, &picture, size, tap.quality, first_frame_seen)?;
            for element in [&picture, &out_caps, &compositor, &placeholder_caps] {
                element.sync_state_with_parent()?;
            }
            sources.push(placeholder);
            (Some(compositor), Some(encoded))
        }
    };
    let (mixer, silence, sound) = build_audio_chain(pipeline, None)?;
    silence.set_property("timestamp-offset", now as i64);
    mixer.set_property("latency", latency.as_nanos() as u64);
    mixer.set_property_from_str("start-time-selection", "first");
    drop_after_cut(&mixer, cut_at.clone())?;
    let feeds = EncodedFeeds {
        video,
        audio: sound,
        name: name.clone(),
        hold_back: HOLD_BACK,
    };
    let part_path = tap.part_path.clone();
    let stage_key = key.clone();
    let control = attach_recording_to(
        pipeline,
        &feeds,
        tap.max_part,
        Arc::new(move |index| part_path(&stage_key, stay, index)),
    )?;
    // Downstream first: each element plays before what feeds it.
    let mut audio_chain = Vec::new();
    let mut next = Some(feeds.audio.clone());
    while let Some(element) = next {
        next = element
            .static_pad("sink")
            .and_then(|pad| pad.peer())
            .and_then(|pad| pad.parent_element());
        audio_chain.push(element);
    }
    for element in &audio_chain {
        element.sync_state_with_parent()?;
    }
    sources.push(silence);
    for source in &sources {
        source.sync_state_with_parent()?;
    }
    Ok(Stage {
        compositor,
        mixer,
        sources,
        cut_at,
        control,
        size,
    })
}

/// Places the picture on the stage as large as it fits without enlarging it, centred.
fn fit_without_enlarging(pad: &gst::Pad, stage: (u32, u32)) {
    let target = pad.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let size = caps.caps().structure(0).and_then(|s| {
            let w = s.get::<i32>("width").ok()?;
            let h = s.get::<i32>("height").ok()?;
            (w > 0 && h > 0).then_some((w as u32, h as u32))
        });
        if let (Some((w, h)), Some(pad)) = (size, target.upgrade()) {
            let (x, y, w, h) = fitted(stage, (w, h));
            pad.set_property("xpos", x);
            pad.set_property("ypos", y);
            pad.set_property("width", w);
            pad.set_property("height", h);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Where a `source`-sized picture goes on a `stage`: scaled down to fit when larger (keeping
/// its aspect), never up, centred. Sizes even, as I420 wants.
fn fitted(stage: (u32, u32), source: (u32, u32)) -> (i32, i32, i32, i32) {
    let scale = (f64::from(stage.0) / f64::from(source.0))
        .min(f64::from(stage.1) / f64::from(source.1))
        .min(1.0);
    let even = |v: f64| ((v.round() as i32) / 2 * 2).max(2);
    let w = even(f64::from(source.0) * scale);
    let h = even(f64::from(source.1) * scale);
    ((stage.0 as i32 - w) / 2, (stage.1 as i32 - h) / 2, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_fits_the_stage_and_is_never_enlarged() {
        assert_eq!(fitted((640, 360), (1280, 720)), (0, 0, 640, 360));
        assert_eq!(fitted((640, 360), (320, 180)), (160, 90, 320, 180));
        // Portrait on a landscape stage: full height, centred.
        assert_eq!(fitted((640, 360), (720, 1280)), (219, 0, 202, 360));
    }

    #[test]
    fn inputs_go_to_their_participants_stages() {
        let camera = StageKey::of_input("alice/camera").unwrap();
        assert_eq!(camera, StageKey::of_input("alice/microphone").unwrap());
        assert_eq!(camera.track, StageTrack::Camera);
        let share = StageKey::of_input("a/b/screenshare").unwrap();
        assert_eq!(share.user_id, "a/b");
        assert_eq!(share.track, StageTrack::ScreenShare);
        assert!(StageKey::of_input("alice").is_none());
    }
}
