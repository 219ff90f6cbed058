//! The composite graph: participant inputs mixed into one picture per layout ("mix") and one
//! sound, each encoded once per output size, for the outputs to mux.
//!
//! ```text
//! background (live) ─► compositor ─► I420 caps ─► overlay ─► tee ─┬─► scale? ─► x264 ─► h264parse ─► tee ─► outputs
//! video input ─► tee ─► queue ─► videocrop (fill) ─┘              └─► (one encoder per size)
//! silence (live) ─► audiomixer ─► caps ─► audioconvert ─► avenc_aac ─► aacparse ─► tee ─► outputs
//! audio input ─► level ─┘
//! ```
//! Inputs are non-live and offset to their join time; the live background and silence pace
//! everything. The overlay blends the scene's sprites (placeholders, borders, labels, logo,
//! title), which change only when the scene does.

use super::crop::FillCrop;
use super::decode_gate::{self, GateState, SharedGate};
use super::individual::{IndividualTap, Stage, StageKey, StageTrack, build_stage};
use super::timeline::{self, RunningNs, SharedTimeline};
use super::{make, presets};
use crate::job::Quality;
use crate::layout::{Rect, ScaleMode};
use crate::render::Sprite;
use anyhow::{Context, anyhow};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FIRST_FRAME: &str = "egress-first-encoded-frame";
/// How often audio inputs report their level, for speaking detection.
const LEVEL_INTERVAL: Duration = Duration::from_millis(100);

/// One picture made from the inputs, at the size of its largest output.
pub struct MixSpec {
    pub size: (u32, u32),
    /// Canvas colour where no tile is drawn, 0xRRGGBB.
    pub background_rgb: u32,
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

/// What one mix shows: where each input goes (hidden when `None`), the canvas colour when it
/// changes, and the sprites drawn over the picture.
#[derive(Default)]
pub struct MixScene {
    pub placements: Vec<(String, Option<TilePlacement>)>,
    pub background: Option<u32>,
    pub sprites: Vec<Sprite>,
}

/// Where an input's tile goes, how the input fills it, and its z-order.
pub type TilePlacement = (Rect, ScaleMode, u32);

/// Where a tile goes and its z-order, once the crop has been set.
type Placement = Option<(Rect, u32)>;

/// Each part of a scene is applied by the thread that draws it, as the scene's first frame
/// passes: tiles by the compositor, the canvas colour by the background source, the sprites by
/// the overlay. Applied from the session's thread they would tear a frame in the making.
struct Mix {
    size: (u32, u32),
    compositor: gst::Element,
    /// After the overlay: where the encoders of this mix take the picture.
    tee: gst::Element,
    placements: SharedTimeline<Vec<(gst::Pad, Placement)>>,
    background: SharedTimeline<u32>,
    overlay: SharedTimeline<Option<gst_video::VideoOverlayComposition>>,
}

/// Sends end of stream into `pad` from a thread of its own (it may wait for the stream lock).
fn end_stream_in_thread(pad: gst::Pad) {
    let send = move || {
        pad.send_event(gst::event::Eos::new());
    };
    if let Err(e) = std::thread::Builder::new().name("eos".into()).spawn(send) {
        tracing::warn!(error = %e, "cannot start a thread to end a stream");
    }
}

/// Branches the speech of audio track `id` off its tee to `tap`.
fn attach_speech(
    pipeline: &gst::Pipeline,
    id: &str,
    tee: &gst::Element,
    tap: &super::SpeechTap,
) -> anyhow::Result<gst::Bin> {
    let bin = super::speech::speech_branch(id, tap)?;
    pipeline.add(&bin)?;
    tee.link(&bin)?;
    // A track that ends (an audio file, a participant gone) must not end the stream for the
    // whole pipeline: its tap keeps waiting; `finish` ends every tap. The tap hears of the end
    // as an empty piece of audio.
    if let Some(pad) = bin.static_pad("sink").and_then(|p| p.peer()) {
        let handler = tap.handler.clone();
        let input = id.to_owned();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            match info.event().map(|e| e.type_()) {
                Some(gst::EventType::Eos) => {
                    handler(&input, std::time::Duration::ZERO, &[]);
                    gst::PadProbeReturn::Drop
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }
    bin.sync_state_with_parent()?;
    Ok(bin)
}

/// Takes a track's branch into an aggregator off the tee that feeds it, while both run: the tee
/// lets go first, then the aggregator's pad ends and is released.
fn detach_branch(pipeline: &gst::Pipeline, branch: Branch) {
    if let Some(first) = branch.elements.first()
        && let Some(sink) = first.static_pad("sink")
        && let Some(tee_pad) = sink.peer()
    {
        let _ = tee_pad.unlink(&sink);
        if let Some(tee) = tee_pad.parent_element() {
            tee.release_request_pad(&tee_pad);
        }
    }
    branch.pad.send_event(gst::event::Eos::new());
    for element in &branch.elements {
        let _ = element.set_state(gst::State::Null);
        let _ = pipeline.remove(element);
    }
    if let Some(aggregator) = branch.pad.parent_element() {
        aggregator.release_request_pad(&branch.pad);
    }
}

/// Takes a branch off the tee that feeds it while the stream runs.
fn remove_branch(pipeline: &gst::Pipeline, bin: &gst::Bin) {
    if let Some(sink) = bin.static_pad("sink")
        && let Some(tee_pad) = sink.peer()
    {
        let _ = tee_pad.unlink(&sink);
        if let Some(tee) = tee_pad.parent_element() {
            tee.release_request_pad(&tee_pad);
        }
    }
    let _ = bin.set_state(gst::State::Null);
    let _ = pipeline.remove(bin);
}

/// One track's way into one aggregator.
struct Branch {
    pad: gst::Pad,
    elements: Vec<gst::Element>,
    crop: Option<FillCrop>,
}

struct Input {
    /// The track's bin and the element behind it (a tee for video, `level` for audio).
    head: Vec<gst::Element>,
    /// One per mix for video; one into the mixer for audio.
    branches: Vec<Branch>,
    /// The still-frame branch of a video track, or the speech branch of an audio track.
    capture: Option<gst::Bin>,
    /// When the last decoded frame of a video track arrived (`monotonic_ns`).
    last_frame: Option<Arc<AtomicU64>>,
    /// Where the encoded stream of an encoded track branches off to a raw recording (now or
    /// one started later in the call).
    raw_tee: Option<gst::Element>,
    /// The raw-recording branch of an encoded track, and the running time (ns) its file ends at
    /// once the track is removed.
    raw: Option<(gst::Bin, Arc<AtomicU64>)>,
    /// In front of the decoder of an encoded video track the mixes may hide.
    gate: Option<SharedGate>,
}

pub struct Composite {
    pipeline: gst::Pipeline,
    mixes: Vec<Mix>,
    mixer: gst::Element,
    audio_tee: gst::Element,
    live_sources: Vec<gst::Element>,
    inputs: HashMap<String, Input>,
    encoders: HashMap<(usize, Quality), Encoder>,
    /// Still frames of every video track, when asked for.
    frames: Option<super::FrameTap>,
    /// The speech of every audio track, when asked for.
    speech: Option<super::SpeechTap>,
    /// Raw files of every encoded track, when asked for.
    raw: Option<super::RawTap>,
    first_frame_seen: Arc<AtomicBool>,
    /// Running time (ns) from which mixed output is dropped; set when the stream ends, so the
    /// files end exactly there whatever the sources still push while EOS travels.
    cut_at: Arc<AtomicU64>,
    /// Inputs removed as of a call time not yet mixed, with that time: they still feed it.
    departing: Vec<(RunningNs, Input)>,
    /// The running time each aggregator has mixed up to.
    mixed: Vec<Arc<AtomicU64>>,
    /// Each participant on a stage of their own, when asked for.
    individual: Option<IndividualTap>,
    stages: HashMap<StageKey, Stage>,
    /// How many stages each key has had: a participant who returns gets a new one.
    stays: HashMap<StageKey, u32>,
    /// Stages whose participant left; they stay in the pipeline until the job ends.
    ended_stages: Vec<Stage>,
    /// How late network inputs may arrive (set for every aggregator).
    input_latency: Duration,
    /// Rendering recorded files as fast as they decode, not following a live call: inputs start
    /// at the call time they are given, even ahead of the mix.
    offline: bool,
    /// Encoded video hidden in every mix is not decoded (the source answers key-unit requests,
    /// so a tile shown again gets a keyframe at once).
    skip_hidden_decodes: bool,
}

/// One shared H.264 encoder: the tee its outputs branch from, and whether HLS segments follow
/// its fixed keyframe interval.
struct Encoder {
    tee: gst::Element,
    x264: gst::Element,
    segmented: Arc<AtomicBool>,
}

/// Keeps an encoder's keyframes at their fixed interval while it lives (HLS holds one per
/// video rendition).
pub struct KeyframeIntervalHold(Arc<AtomicBool>);

impl Drop for KeyframeIntervalHold {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Composite {
    /// Builds the mixes (none for audio only) and the audio chain.
    pub fn build(mixes: &[MixSpec]) -> anyhow::Result<Composite> {
        let pipeline = gst::Pipeline::with_name("composite");
        let cut_at = Arc::new(AtomicU64::new(u64::MAX));
        let mut live_sources = Vec::new();
        let mut built = Vec::new();
        let mut mixed = Vec::new();
        for spec in mixes {
            let (mix, background) = build_mix(&pipeline, spec)?;
            drop_after_cut(&mix.compositor, cut_at.clone())?;
            mixed.push(track_position(&mix.compositor)?);
            live_sources.push(background);
            built.push(mix);
        }
        let (mixer, silence, audio_tee) = build_audio_chain(&pipeline, Some("aac-encoder"))?;
        drop_after_cut(&mixer, cut_at.clone())?;
        mixed.push(track_position(&mixer)?);
        live_sources.push(silence);
        let composite = Composite {
            pipeline,
            mixes: built,
            mixer,
            audio_tee,
            live_sources,
            inputs: HashMap::new(),
            encoders: HashMap::new(),
            frames: None,
            speech: None,
            raw: None,
            first_frame_seen: Arc::new(AtomicBool::new(false)),
            cut_at,
            departing: Vec::new(),
            mixed,
            individual: None,
            stages: HashMap::new(),
            stays: HashMap::new(),
            ended_stages: Vec::new(),
            input_latency: Duration::ZERO,
            offline: false,
            skip_hidden_decodes: false,
        };
        if composite.mixes.is_empty() {
            let encoder = composite
                .pipeline
                .by_name("aac-encoder")
                .context("audio encoder missing")?;
            announce_first_buffer(&encoder, composite.first_frame_seen.clone())?;
        }
        Ok(composite)
    }

    /// The mixes of a render: recorded tracks, added before the pipeline plays, composited as
    /// fast as they decode; the canvas and the silence end at call time `until`.
    pub fn build_offline(mixes: &[MixSpec], until: Duration) -> anyhow::Result<Composite> {
        let mut composite = Composite::build(mixes)?;
        let p = presets();
        let frames = (until.as_secs_f64() * p.video.framerate as f64).ceil() as i32;
        // The silence comes in buffers of 10 ms.
        let blocks = (until.as_secs_f64() * 100.0).ceil() as i32;
        for source in &composite.live_sources {
            source.set_property("is-live", false);
            let video = source.factory().is_some_and(|f| f.name() == "videotestsrc");
            source.set_property("num-buffers", if video { frames } else { blocks });
        }
        composite.offline = true;
        Ok(composite)
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Stops decoding the encoded video of tracks added from now on while no mix shows them.
    /// Only for sources that answer key-unit requests: a tile shown again waits for a keyframe.
    pub fn skip_hidden_decodes(&mut self, skip: bool) {
        self.skip_hidden_decodes = skip && !self.offline;
    }

    /// How many encoded video frames were not decoded because no mix showed them.
    pub fn frames_not_decoded(&self) -> u64 {
        self.inputs
            .values()
            .filter_map(|input| input.gate.as_ref())
            .map(|gate| decode_gate::with(gate, |g| g.dropped()))
            .sum()
    }

    /// Running time at which the outputs end, once `finish` has been called.
    pub fn end_time(&self) -> Option<std::time::Duration> {
        let cut = self.cut_at.load(Ordering::Relaxed);
        (cut != u64::MAX).then(|| std::time::Duration::from_nanos(cut))
    }

    /// True when video tracks are used (mixed, captured as stills or recorded raw).
    pub fn has_video(&self) -> bool {
        !self.mixes.is_empty() || self.frames.is_some() || self.raw.is_some() || self.individual_video()
    }

    /// Whether the individual recording takes pictures.
    fn individual_video(&self) -> bool {
        self.individual.as_ref().is_some_and(|tap| !tap.audio_only)
    }

    /// Puts every participant on a stage of their own from now on: those who join and those
    /// whose tracks are in the call already.
    pub fn record_individually(&mut self, tap: IndividualTap) -> anyhow::Result<()> {
        let every_frame = !tap.audio_only;
        for gate in self.inputs.values().filter_map(|i| i.gate.as_ref()) {
            decode_gate::with(gate, |g| g.set_every_frame(every_frame));
        }
        self.individual = Some(tap);
        let ids: Vec<String> = self.inputs.keys().cloned().collect();
        for id in ids {
            self.put_on_stage(&id)?;
        }
        Ok(())
    }

    /// Ends every stage now (their files close) and opens no more; the tracks go on into the
    /// composite alone.
    pub fn stop_individually(&mut self) {
        self.individual = None;
        for gate in self.inputs.values().filter_map(|i| i.gate.as_ref()) {
            decode_gate::with(gate, |g| g.set_every_frame(false));
        }
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
            .nseconds();
        let stages: Vec<Stage> = self.stages.drain().map(|(_, stage)| stage).collect();
        for stage in &stages {
            stage.control.stop();
            stage.end(now);
        }
        // The stages' branches come off the tracks' tees: the mixes' come first (the mixer's
        // alone for a sound).
        for input in self.inputs.values_mut() {
            let shared = match input.last_frame.is_some() {
                true => self.mixes.len(),
                false => 1,
            };
            for branch in input.branches.split_off(shared.min(input.branches.len())) {
                detach_branch(&self.pipeline, branch);
            }
        }
        self.ended_stages.extend(stages);
    }

    /// A participant joined: their stage opens now, before any of their tracks arrive.
    pub fn participant_joined(&mut self, user_id: &str) -> anyhow::Result<()> {
        let key = StageKey {
            user_id: user_id.to_owned(),
            track: StageTrack::Camera,
        };
        self.stage(&key).map(|_| ())
    }

    /// A participant left at call time `at` (now when `None`): their stages end there.
    pub fn participant_left(&mut self, user_id: &str, at: Option<Duration>) {
        for track in [StageTrack::Camera, StageTrack::ScreenShare] {
            let key = StageKey {
                user_id: user_id.to_owned(),
                track,
            };
            self.end_stage(&key, at);
        }
    }

    /// The stage of `key`, opened when it has none; `None` where the individual recording makes
    /// no such file (none asked for, or a screen share in an audio-only one).
    fn stage(&mut self, key: &StageKey) -> anyhow::Result<Option<&Stage>> {
        let Some(tap) = &self.individual else {
            return Ok(None);
        };
        if tap.audio_only && key.track == StageTrack::ScreenShare {
            return Ok(None);
        }
        if !self.stages.contains_key(key) {
            let stay = self.stays.entry(key.clone()).or_default();
            let stage = build_stage(
                &self.pipeline,
                key,
                *stay,
                tap,
                self.input_latency,
                self.first_frame_seen.clone(),
            )?;
            *stay += 1;
            self.stages.insert(key.clone(), stage);
        }
        Ok(self.stages.get(key))
    }

    /// Ends the stage of `key` at call time `at` (now when `None` or later).
    fn end_stage(&mut self, key: &StageKey, at: Option<Duration>) {
        let Some(stage) = self.stages.remove(key) else {
            return;
        };
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
            .nseconds();
        stage.end(at.map_or(now, |at| (at.as_nanos() as u64).min(now)));
        self.ended_stages.push(stage);
    }

    /// Feeds input `id` (decoded) to its participant's stage too.
    fn put_on_stage(&mut self, id: &str) -> anyhow::Result<()> {
        let Some(key) = StageKey::of_input(id) else {
            return Ok(());
        };
        let Some(is_video) = self.inputs.get(id).map(|i| i.last_frame.is_some()) else {
            return Ok(());
        };
        let pad = match self.stage(&key)? {
            Some(stage) if stage.takes(is_video) => stage.request_pad(is_video)?,
            _ => return Ok(()),
        };
        let Some(input) = self.inputs.get_mut(id) else {
            return Ok(());
        };
        // The decoded picture's tee, or the sound's after its level.
        let tee = match is_video {
            true => input.head.last(),
            false => input.branches.first().and_then(|b| b.elements.first()),
        }
        .context("the track has no tee to share")?
        .clone();
        let queue = make("queue")?;
        self.pipeline.add(&queue)?;
        queue.static_pad("src").context("queue without src")?.link(&pad)?;
        queue.sync_state_with_parent()?;
        tee.link(&queue)?;
        input.branches.push(Branch {
            pad,
            elements: vec![queue],
            crop: None,
        });
        Ok(())
    }

    /// Writes every encoded track added from now on to a raw file of its own.
    /// Writes every encoded track to a raw file: those added from now on and those in the call
    /// already (a raw recording started during the call, each file from its next keyframe).
    pub fn record_raw(&mut self, tap: super::RawTap) {
        for (id, input) in self.inputs.iter_mut() {
            if let Some(tee) = &input.raw_tee {
                input.raw = attach_raw(&self.pipeline, id, tee, &tap, self.cut_at.clone());
            }
        }
        self.raw = Some(tap);
    }

    /// Stops the raw recording alone: every raw file ends now (its last packets written, then
    /// closed), and tracks added later get none.
    pub fn stop_raw(&mut self) {
        self.raw = None;
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
            .nseconds();
        for input in self.inputs.values_mut() {
            let Some((bin, until)) = input.raw.take() else {
                continue;
            };
            until.store(now, Ordering::Relaxed);
            let Some(sink) = bin.static_pad("sink") else {
                continue;
            };
            // Off the tee first: the end of this file must not end the track for the others.
            if let Some(tee_pad) = sink.peer() {
                let _ = tee_pad.unlink(&sink);
                if let Some(tee) = tee_pad.parent_element() {
                    tee.release_request_pad(&tee_pad);
                }
            }
            end_stream_in_thread(sink);
        }
    }

    /// Hands the speech of every audio track to `tap`: those added from now on and those in the
    /// call already (a transcription started during the call).
    pub fn tap_speech(&mut self, tap: super::SpeechTap) -> anyhow::Result<()> {
        for (id, input) in &mut self.inputs {
            if input.last_frame.is_some() {
                continue;
            }
            let Some(tee) = input.branches.first().and_then(|b| b.elements.first()) else {
                continue;
            };
            if let Some(old) = input.capture.take() {
                remove_branch(&self.pipeline, &old);
            }
            input.capture = Some(attach_speech(&self.pipeline, id, tee, &tap)?);
        }
        self.speech = Some(tap);
        Ok(())
    }

    /// Captures a still of every video track, one per `tap.interval`: those added from now on
    /// and those in the call already (a frame recording started during the call; one started
    /// again replaces the branches of the one before).
    pub fn capture_frames(&mut self, tap: super::FrameTap) -> anyhow::Result<()> {
        for (id, input) in &mut self.inputs {
            let Some(front) = input.last_frame.as_ref().and(input.head.last()) else {
                continue;
            };
            if let Some(old) = input.capture.take() {
                remove_branch(&self.pipeline, &old);
            }
            let due = decode_gate::still_due();
            let bin = super::frames::capture_branch(id, &tap, self.cut_at.clone(), false, due.clone())?;
            if let Some(gate) = &input.gate {
                decode_gate::with(gate, |g| g.set_stills(Some(due)));
            }
            self.pipeline.add(&bin)?;
            front.link(&bin)?;
            bin.sync_state_with_parent()?;
            input.capture = Some(bin);
        }
        self.frames = Some(tap);
        Ok(())
    }

    /// Stills of the picture of `mix` as outputs show it (after the overlay), one per
    /// `tap.interval`: a branch of the mix's tee, so nothing is decoded for them.
    pub fn capture_mix(&mut self, mix: usize, tap: &super::FrameTap) -> anyhow::Result<()> {
        let m = self.mixes.get(mix).context("no such mix")?;
        let never_cut = Arc::new(AtomicU64::new(u64::MAX));
        let bin =
            super::frames::capture_branch("composite", tap, never_cut, false, decode_gate::still_due())?;
        self.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        m.tee.link(&bin)?;
        Ok(())
    }

    pub fn mix_count(&self) -> usize {
        self.mixes.len()
    }

    /// The H.264 stream of `mix` at `quality` (a tee to branch from), made on first use: outputs
    /// that share a layout and a size share one encoder.
    pub fn encoded_video(&mut self, mix: usize, quality: Quality) -> anyhow::Result<gst::Element> {
        if let Some(encoder) = self.encoders.get(&(mix, quality)) {
            return Ok(encoder.tee.clone());
        }
        let m = self.mixes.get(mix).context("no such mix")?;
        let (tee, x264) = build_encoder(
            &self.pipeline,
            &m.tee,
            m.size,
            quality,
            self.first_frame_seen.clone(),
        )?;
        let encoder = Encoder {
            tee: tee.clone(),
            x264,
            segmented: Arc::default(),
        };
        self.encoders.insert((mix, quality), encoder);
        Ok(tee)
    }

    /// HLS segments are cut from this encoder's stream: while the hold lives, its keyframes
    /// keep their fixed interval (renditions stay aligned) and `ask_keyframe` leaves it alone.
    pub fn keep_keyframe_interval(&self, mix: usize, quality: Quality) -> Option<KeyframeIntervalHold> {
        let encoder = self.encoders.get(&(mix, quality))?;
        encoder.segmented.store(true, Ordering::Relaxed);
        Some(KeyframeIntervalHold(encoder.segmented.clone()))
    }

    /// Asks the encoder of `mix` at `quality` for a keyframe now, so that an output that joins
    /// it (a recording or a push started during the call) starts at once rather than at the next
    /// scheduled keyframe. False when it keeps its interval for HLS, or runs no such encoder.
    pub fn ask_keyframe(&self, mix: usize, quality: Quality) -> bool {
        let Some(encoder) = self
            .encoders
            .get(&(mix, quality))
            .filter(|e| !e.segmented.load(Ordering::Relaxed))
        else {
            return false;
        };
        let request = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        encoder
            .x264
            .static_pad("src")
            .is_some_and(|pad| pad.send_event(request))
    }

    /// The AAC stream (a tee to branch from).
    pub fn encoded_audio(&self) -> gst::Element {
        self.audio_tee.clone()
    }

    /// Makes the mixers wait `latency` for inputs that arrive that late (network sources).
    pub fn set_input_latency(&mut self, latency: std::time::Duration) {
        self.input_latency = latency;
        let ns = latency.as_nanos() as u64;
        for mix in &self.mixes {
            mix.compositor.set_property("latency", ns);
        }
        self.mixer.set_property("latency", ns);
    }

    /// Adds a decoded track (a bin with one `src` pad) whose first sample belongs at call time
    /// `starts_at` (now when `None`); video stays hidden until placed.
    pub fn add_input(
        &mut self,
        id: &str,
        media: gst::Element,
        is_video: bool,
        encoded: bool,
        starts_at: Option<std::time::Duration>,
    ) -> anyhow::Result<()> {
        if is_video && !self.has_video() {
            return Err(anyhow!("audio-only output has no video input"));
        }
        let front = if is_video {
            let tee = make("tee")?;
            tee.set_property("allow-not-linked", true);
            tee
        } else {
            let level = make("level")?;
            level.set_property("interval", LEVEL_INTERVAL.as_nanos() as u64);
            level.set_property("post-messages", true);
            level
        };
        // Without a compositor to pace them, tracks from files or test sources would run ahead of
        // the call; live tracks pass straight through.
        let pace = if is_video && self.mixes.is_empty() {
            let identity = make("identity")?;
            identity.set_property("sync", true);
            Some(identity)
        } else {
            None
        };
        // A frames-only job needs one decoded frame per capture, not the whole track.
        let keyframes_only = is_video
            && encoded
            && self.mixes.is_empty()
            && self.frames.as_ref().is_some_and(|tap| tap.keyframes_only);
        // Video that only goes to a raw file is never decoded.
        let raw_only = is_video && self.mixes.is_empty() && self.frames.is_none() && !self.individual_video();
        let decoder = match encoded && !raw_only {
            true => Some(super::ingest::decoder(id, is_video)?.upcast::<gst::Element>()),
            false => None,
        };
        let raw_tee = match encoded && !self.offline {
            true => {
                let tee = make("tee")?;
                tee.set_property("allow-not-linked", true);
                Some(tee)
            }
            false => None,
        };
        if let (true, Some(pace), Some(tap)) = (keyframes_only, &pace, &self.frames) {
            super::ingest::keyframe_gate(pace, tap.interval, self.cut_at.clone());
        }
        let middle: Vec<gst::Element> = [raw_tee.clone(), pace.clone(), decoder.clone()]
            .into_iter()
            .flatten()
            .collect();
        self.pipeline.add_many([&media, &front])?;
        self.pipeline.add_many(&middle)?;
        let chain: Vec<&gst::Element> = std::iter::once(&media)
            .chain(middle.iter())
            .chain(std::iter::once(&front))
            .collect();
        gst::Element::link_many(chain).context("cannot link the track")?;
        for element in &middle {
            element.sync_state_with_parent()?;
        }
        let gate = match (&raw_tee, &decoder) {
            (Some(tee), Some(decoder)) if is_video && self.skip_hidden_decodes && !self.mixes.is_empty() => {
                let gate: SharedGate = Arc::new(Mutex::new(GateState::new(self.mixes.len())));
                decode_gate::with(&gate, |g| g.set_every_frame(self.individual_video()));
                let feed = decoder
                    .static_pad("sink")
                    .and_then(|pad| pad.peer())
                    .context("decoder not fed")?;
                let upstream = tee.static_pad("sink").context("tee without sink")?;
                decode_gate::install(&feed, &upstream, gate.clone());
                Some(gate)
            }
            _ => None,
        };
        // The track's own clock starts at zero; shift it to the moment it joins the call.
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
            .nseconds();
        let start = match (starts_at, self.offline) {
            (Some(at), true) => at.as_nanos() as u64,
            (at, false) => at.map_or(now, |at| (at.as_nanos() as u64).min(now)),
            (None, true) => 0,
        };
        media
            .static_pad("src")
            .context("track media has no src pad")?
            .set_offset(start as i64);
        let mut branches = Vec::new();
        if is_video {
            for mix in &self.mixes {
                let queue = make("queue")?;
                let crop = FillCrop::new()?;
                self.pipeline.add_many([&queue, crop.element()])?;
                gst::Element::link_many([&front, &queue, crop.element()])?;
                let pad = mix
                    .compositor
                    .request_pad_simple("sink_%u")
                    .context("the compositor refused another input")?;
                pad.set_property("alpha", 0.0f64);
                pad.set_property("zorder", 1u32);
                pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
                crop.element()
                    .static_pad("src")
                    .context("videocrop without src")?
                    .link(&pad)?;
                branches.push(Branch {
                    pad,
                    elements: vec![queue, crop.element().clone()],
                    crop: Some(crop),
                });
            }
        } else {
            let pad = self
                .mixer
                .request_pad_simple("sink_%u")
                .context("the mixer refused another input")?;
            // The level's output goes through a tee to the mixer and, when the speech is tapped
            // (now or later in the call), to the tap.
            let tee = make("tee")?;
            tee.set_property("allow-not-linked", true);
            self.pipeline.add(&tee)?;
            front.link(&tee)?;
            tee.request_pad_simple("src_%u")
                .context("tee without src")?
                .link(&pad)?;
            branches.push(Branch {
                pad,
                elements: vec![tee],
                crop: None,
            });
        }
        for branch in &branches {
            for element in &branch.elements {
                element.sync_state_with_parent()?;
            }
        }
        let capture = match (&self.frames, &self.speech, is_video) {
            (Some(tap), _, true) => {
                let due = decode_gate::still_due();
                let bin =
                    super::frames::capture_branch(id, tap, self.cut_at.clone(), keyframes_only, due.clone())?;
                if let Some(gate) = &gate {
                    decode_gate::with(gate, |g| g.set_stills(Some(due)));
                }
                self.pipeline.add(&bin)?;
                front.link(&bin)?;
                bin.sync_state_with_parent()?;
                Some(bin)
            }
            (_, Some(tap), false) => {
                let tee = branches
                    .first()
                    .and_then(|b| b.elements.first())
                    .context("the speech tap has no tee")?;
                Some(attach_speech(&self.pipeline, id, tee, tap)?)
            }
            _ => None,
        };
        let raw = match (&raw_tee, &self.raw) {
            (Some(tee), Some(tap)) => attach_raw(&self.pipeline, id, tee, tap, self.cut_at.clone()),
            _ => None,
        };
        front.sync_state_with_parent()?;
        media.sync_state_with_parent()?;
        let last_frame = match is_video {
            // Encoded media is watched as it arrives: a hidden track's decoder gets nothing.
            true => Some(note_arrivals(raw_tee.as_ref().unwrap_or(&front))?),
            false => None,
        };
        self.inputs.insert(
            id.to_owned(),
            Input {
                head: [Some(media), pace, decoder, Some(front)]
                    .into_iter()
                    .flatten()
                    .collect(),
                branches,
                capture,
                last_frame,
                raw_tee,
                raw,
                gate,
            },
        );
        if self.individual.is_some() {
            self.put_on_stage(id)?;
        }
        Ok(())
    }

    /// The video inputs whose last frame came more than `quiet` ago (or that have had none for
    /// that long since they were added): a publisher whose media stopped while it stays in the
    /// call.
    pub fn silent_video_inputs(&self, quiet: Duration) -> impl Iterator<Item = &str> {
        let now = monotonic_ns();
        let quiet = quiet.as_nanos() as u64;
        self.inputs.iter().filter_map(move |(id, input)| {
            let last = input.last_frame.as_ref()?.load(Ordering::Relaxed);
            (now.saturating_sub(last) > quiet).then_some(id.as_str())
        })
    }

    /// Shows `scene` in `mix` from the frame at call time `from` on (the next frame when
    /// `None`), and never before a scene shown earlier.
    pub fn show(&self, mix: usize, scene: MixScene, from: Option<Duration>) -> anyhow::Result<()> {
        let Some(m) = self.mixes.get(mix) else {
            return Ok(());
        };
        let requested = from.map_or(0, |at| at.as_nanos() as RunningNs);
        let from = timeline::with(&m.placements, |t| t.last_scheduled())
            .map_or(requested, |last| last.max(requested));
        let mut placements = Vec::new();
        for (id, placement) in scene.placements {
            let Some(input) = self.inputs.get(&id) else {
                continue;
            };
            if let Some(gate) = &input.gate {
                decode_gate::with(gate, |g| g.schedule(mix, from, placement.is_some()));
            }
            let Some(branch) = input.branches.get(mix) else {
                continue;
            };
            let Some(crop) = &branch.crop else { continue };
            if let Some((r, scale, _)) = placement {
                crop.set_tile(
                    match scale {
                        ScaleMode::Fill => Some((r.w, r.h)),
                        ScaleMode::Fit => None,
                    },
                    from,
                );
            }
            placements.push((branch.pad.clone(), placement.map(|(r, _, z)| (r, z))));
        }
        timeline::with(&m.placements, |t| t.schedule(from, placements));
        if let Some(rgb) = scene.background {
            timeline::with(&m.background, |t| t.schedule(from, rgb));
        }
        let rectangles = scene
            .sprites
            .iter()
            .map(overlay_rectangle)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let composition = if rectangles.is_empty() {
            None
        } else {
            Some(gst_video::VideoOverlayComposition::new(rectangles.iter())?)
        };
        timeline::with(&m.overlay, |t| t.schedule(from, composition));
        Ok(())
    }

    /// The input a `level` message is about, and its loudest channel's RMS in dBFS.
    pub fn audio_level(&self, message: &gst::Message) -> Option<(&str, f64)> {
        let gst::MessageView::Element(element) = message.view() else {
            return None;
        };
        let s = element.structure().filter(|s| s.name() == "level")?;
        let src = message.src()?;
        // The `level` element is the last of an audio track's head, after its decoder when the
        // track arrives encoded.
        let (id, _) = self.inputs.iter().find(|(_, input)| {
            input
                .head
                .last()
                .is_some_and(|e| e.upcast_ref::<gst::Object>() == src)
        })?;
        let rms = s.get::<gst::glib::ValueArray>("rms").ok()?;
        let loudest = rms
            .iter()
            .filter_map(|v| v.get::<f64>().ok())
            .fold(f64::NEG_INFINITY, f64::max);
        Some((id.as_str(), loudest))
    }

    /// Takes an input out of the mix and out of the pipeline, without disturbing the output, once
    /// the mix has reached call time `at` (now when `None`): what it sent before that is mixed.
    pub fn remove_input(&mut self, id: &str, at: Option<Duration>) {
        let Some(input) = self.inputs.remove(id) else {
            return;
        };
        // A screen share is a file of its own, which ends with the share.
        if let Some(key) = StageKey::of_input(id).filter(|k| k.track == StageTrack::ScreenShare) {
            self.end_stage(&key, at);
        }
        // Its raw file closes now; the branch stays in the pipeline (unlinked when the track's
        // elements go) so that its end cannot be cut short.
        if let Some((raw, until)) = &input.raw {
            let now = self
                .pipeline
                .current_running_time()
                .unwrap_or(gst::ClockTime::ZERO)
                .nseconds();
            until.store(
                at.map_or(now, |at| (at.as_nanos() as u64).min(now)),
                Ordering::Relaxed,
            );
            if let Some(pad) = raw.static_pad("sink") {
                end_stream_in_thread(pad);
            }
        }
        let after = at.map_or(0, |at| at.as_nanos() as RunningNs);
        // A render's recorded track ends with its file.
        if self.offline || after > self.mixed_until() {
            self.departing.push((after, input));
        } else {
            self.tear_down(input);
        }
    }

    /// Tears down the inputs removed at a call time the mix has now passed.
    pub fn reap_departed(&mut self) {
        let mixed = self.mixed_until();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.departing)
            .into_iter()
            .partition(|(after, _)| *after <= mixed);
        self.departing = waiting;
        for (_, input) in done {
            self.tear_down(input);
        }
    }

    /// How far every aggregator has mixed, in running time.
    fn mixed_until(&self) -> RunningNs {
        self.mixed
            .iter()
            .map(|position| position.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn tear_down(&self, input: Input) {
        for branch in &input.branches {
            if branch.pad.has_property("alpha") {
                branch.pad.set_property("alpha", 0.0f64);
            }
            // EOS on the aggregator pad first: upstream then stops with EOS, not "not linked".
            branch.pad.send_event(gst::event::Eos::new());
        }
        if let Some(capture) = &input.capture {
            let _ = capture.set_state(gst::State::Null);
            let _ = self.pipeline.remove(capture);
        }
        let elements: Vec<&gst::Element> = input
            .head
            .iter()
            .chain(input.branches.iter().flat_map(|b| b.elements.iter()))
            .collect();
        for element in &elements {
            let _ = element.set_state(gst::State::Null);
        }
        for branch in &input.branches {
            if let Some(parent) = branch.pad.parent_element() {
                parent.release_request_pad(&branch.pad);
            }
        }
        for element in elements {
            let _ = self.pipeline.remove(element);
        }
    }

    pub fn input_ids(&self) -> impl Iterator<Item = &str> {
        self.inputs.keys().map(String::as_str)
    }

    /// Ends the stream: every input and the live sources send EOS, so the muxers finalize.
    ///
    /// EOS into an aggregator pad waits for that pad's stream lock (up to a frame), so all are
    /// sent at once: sent one by one, the live sources would add frames past the end.
    /// Media from `at` on (running time; now when `None` or later than now) is dropped, so a
    /// call that ended at a known time ends on that frame.
    pub fn finish(&mut self, at: Option<std::time::Duration>) {
        let now = self
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
            .nseconds();
        let cut = at.map_or(now, |at| (at.as_nanos() as u64).min(now));
        self.cut_at.store(cut, Ordering::Relaxed);
        if self.skip_hidden_decodes {
            tracing::info!(
                frames = self.frames_not_decoded(),
                "video frames left undecoded while hidden"
            );
        }
        let mut targets: Vec<gst::Object> = Vec::new();
        let inputs: Vec<&Input> = self
            .inputs
            .values()
            .chain(self.departing.iter().map(|(_, input)| input))
            .collect();
        for branch in inputs.iter().flat_map(|i| i.branches.iter()) {
            targets.push(branch.pad.clone().upcast());
        }
        let captures = inputs.iter().filter_map(|i| i.capture.as_ref());
        targets.extend(captures.filter_map(|c| c.static_pad("sink")).map(|p| p.upcast()));
        let raws = inputs.iter().filter_map(|i| i.raw.as_ref().map(|(bin, _)| bin));
        targets.extend(raws.filter_map(|r| r.static_pad("sink")).map(|p| p.upcast()));
        targets.extend(self.live_sources.iter().map(|s| s.clone().upcast()));
        for stage in self.stages.values() {
            stage.end(cut);
        }
        // Not joined: a stuck stream must not stall the session, which times the end out itself.
        for target in targets {
            let send = move || {
                if let Some(pad) = target.downcast_ref::<gst::Pad>() {
                    pad.send_event(gst::event::Eos::new());
                } else if let Some(element) = target.downcast_ref::<gst::Element>() {
                    element.send_event(gst::event::Eos::new());
                }
            };
            if let Err(e) = std::thread::Builder::new().name("eos".into()).spawn(send) {
                tracing::warn!(error = %e, "cannot start a thread to end a stream");
            }
        }
    }
}

/// Branches the raw file of track `id` off its encoded stream's tee. The track's raw file alone
/// is lost when its branch cannot be made, not the track.
fn attach_raw(
    pipeline: &gst::Pipeline,
    id: &str,
    tee: &gst::Element,
    tap: &super::RawTap,
    cut_at: Arc<AtomicU64>,
) -> Option<(gst::Bin, Arc<AtomicU64>)> {
    let upstream = tee.static_pad("sink")?.downgrade();
    // Pushed from the tee's sink pad to the element before it, up to the sender (a PLI).
    let ask_keyframe = move || {
        if let Some(pad) = upstream.upgrade() {
            let request = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            pad.push_event(request);
        }
    };
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let attached = super::raw::raw_branch(id, tap, cut_at, until.clone(), ask_keyframe).and_then(|bin| {
        pipeline.add(&bin)?;
        tee.link(&bin)?;
        bin.sync_state_with_parent()?;
        Ok(bin)
    });
    match attached {
        Ok(bin) => Some((bin, until)),
        Err(e) => {
            tap.refuse(id, format!("the raw branch could not be made: {e:#}"));
            None
        }
    }
}

pub(super) fn raw_video_caps(size: (u32, u32)) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", size.0 as i32)
        .field("height", size.1 as i32)
        .field(
            "framerate",
            gst::Fraction::new(presets().video.framerate as i32, 1),
        )
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

fn build_mix(pipeline: &gst::Pipeline, spec: &MixSpec) -> anyhow::Result<(Mix, gst::Element)> {
    let raw = raw_video_caps(spec.size);
    let background = make("videotestsrc")?;
    background.set_property("is-live", true);
    background.set_property_from_str("pattern", "solid-color");
    background.set_property("foreground-color", 0xff00_0000 | spec.background_rgb);
    let background_caps = capsfilter(&raw)?;
    let compositor = make("compositor")?;
    let out_caps = capsfilter(&raw)?;
    let overlay = make("overlaycomposition")?;
    let composition = timeline::shared(None::<gst_video::VideoOverlayComposition>);
    let current = composition.clone();
    overlay.connect("draw", false, move |args| {
        let pts = args
            .get(1)
            .and_then(|v| v.get::<gst::Sample>().ok())
            .and_then(|sample| sample.buffer().and_then(|b| b.pts()))
            .map_or(0, |pts| pts.nseconds());
        let now = timeline::with(&current, |t| {
            t.advance(pts);
            t.current().clone()
        });
        Some(now.to_value())
    });
    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    pipeline.add_many([
        &background,
        &background_caps,
        &compositor,
        &out_caps,
        &overlay,
        &tee,
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
    gst::Element::link_many([&compositor, &out_caps, &overlay, &tee])?;
    let colour = timeline::shared(spec.background_rgb);
    recolour_between_frames(&background, colour.clone())?;
    let placements = timeline::shared(Vec::new());
    place_between_frames(&compositor, placements.clone());
    let mix = Mix {
        size: spec.size,
        compositor,
        tee,
        placements,
        background: colour,
        overlay: composition,
    };
    Ok((mix, background))
}

/// Scales the mix to `quality` when its size differs, then encodes H.264 with the preset.
pub(super) fn build_encoder(
    pipeline: &gst::Pipeline,
    mix_tee: &gst::Element,
    mix_size: (u32, u32),
    quality: Quality,
    first_frame_seen: Arc<AtomicBool>,
) -> anyhow::Result<(gst::Element, gst::Element)> {
    let p = presets();
    let mut chain = vec![make("queue")?];
    if quality.size() != mix_size {
        chain.push(make("videoscale")?);
        chain.push(capsfilter(&raw_video_caps(quality.size()))?);
    }
    let encoder = make("x264enc")?;
    encoder.set_property("bitrate", p.video.bitrate_kbps(quality));
    encoder.set_property_from_str("speed-preset", &p.video.x264_speed_preset);
    let gop = p.video.framerate * p.video.keyframe_interval_s;
    encoder.set_property("key-int-max", gop);
    // A fixed GOP with no scene-cut keyframes keeps segment boundaries aligned across renditions.
    encoder.set_property("option-string", format!("scenecut=0:min-keyint={gop}"));
    chain.push(encoder.clone());
    chain.push(capsfilter(
        &gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .field("level", p.video.h264_level(quality))
            .build(),
    )?);
    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    chain.push(tee.clone());
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    announce_first_buffer(&encoder, first_frame_seen)?;
    // Running before the mix tee feeds it (an encoder added mid-call): a branch still in NULL
    // answers FLUSHING, which the tee would pass up to the compositor.
    for element in &chain {
        element.sync_state_with_parent()?;
    }
    mix_tee.link(&chain[0])?;
    Ok((tee, encoder))
}

/// Silence (live) into a mixer, encoded to AAC: the mixer, the silence and the encoded tee.
pub(super) fn build_audio_chain(
    pipeline: &gst::Pipeline,
    encoder_name: Option<&str>,
) -> anyhow::Result<(gst::Element, gst::Element, gst::Element)> {
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
    if let Some(name) = encoder_name {
        encoder.set_property("name", name);
    }
    encoder.set_property("bitrate", (p.audio.aac_bitrate_kbps * 1000) as i32);
    let parse = make("aacparse")?;
    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    let chain = [&silence, &mixer, &caps, &convert, &queue, &encoder, &parse, &tee];
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    Ok((mixer, silence, tee))
}

pub(super) fn capsfilter(caps: &gst::Caps) -> anyhow::Result<gst::Element> {
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps);
    Ok(filter)
}

/// A sprite as an overlay rectangle (BGRA, straight alpha, as the overlay API expects).
fn overlay_rectangle(sprite: &Sprite) -> anyhow::Result<gst_video::VideoOverlayRectangle> {
    let (w, h) = sprite.image.dimensions();
    let mut bgra = sprite.image.as_raw().clone();
    for px in bgra.chunks_exact_mut(4) {
        px.swap(0, 2);
    }
    let mut buffer = gst::Buffer::from_mut_slice(bgra);
    gst_video::VideoMeta::add(
        buffer.get_mut().context("new buffer is writable")?,
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Bgra,
        w,
        h,
    )?;
    Ok(gst_video::VideoOverlayRectangle::new_raw(
        &buffer,
        sprite.x,
        sprite.y,
        w,
        h,
        gst_video::VideoOverlayFormatFlags::empty(),
    ))
}

/// Applies the canvas colour from the background source's own streaming thread, between two
/// frames: videotestsrc does not lock its colour against the thread painting with it.
fn recolour_between_frames(background: &gst::Element, colour: SharedTimeline<u32>) -> anyhow::Result<()> {
    let pad = background
        .static_pad("src")
        .context("background without src pad")?;
    let element = background.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let pts = info.buffer().and_then(|b| b.pts()).map_or(0, |t| t.nseconds());
        let changed = timeline::with(&colour, |t| t.advance(pts).then(|| *t.current()));
        if let (Some(rgb), Some(element)) = (changed, element.upgrade()) {
            element.set_property("foreground-color", 0xff00_0000 | rgb);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Moves the tiles when the compositor has picked the inputs of a frame and not yet drawn it,
/// so a scene starts on its own frame and all its tiles move together.
fn place_between_frames(compositor: &gst::Element, placements: SharedTimeline<Vec<(gst::Pad, Placement)>>) {
    compositor.set_property("emit-signals", true);
    compositor.connect("samples-selected", false, move |args| {
        let pts = args.get(2).and_then(|v| v.get::<u64>().ok()).unwrap_or(0);
        let due = timeline::with(&placements, |t| t.advance(pts).then(|| t.current().clone()));
        for (pad, placement) in due.into_iter().flatten() {
            match placement {
                Some((r, zorder)) => {
                    pad.set_property("xpos", r.x);
                    pad.set_property("ypos", r.y);
                    pad.set_property("width", r.w as i32);
                    pad.set_property("height", r.h as i32);
                    pad.set_property("zorder", zorder + 1);
                    pad.set_property("alpha", 1.0f64);
                }
                None => pad.set_property("alpha", 0.0f64),
            }
        }
        None
    });
}

/// Drops the aggregator's output buffers that start at or after `cut_at` (running time).
pub(super) fn drop_after_cut(aggregator: &gst::Element, cut_at: Arc<AtomicU64>) -> anyhow::Result<()> {
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

/// Nanoseconds on the monotonic clock since the first call.
fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// Keeps the arrival time of each buffer into `element`, starting from now.
fn note_arrivals(element: &gst::Element) -> anyhow::Result<Arc<AtomicU64>> {
    let last = Arc::new(AtomicU64::new(monotonic_ns()));
    let written = last.clone();
    element
        .static_pad("sink")
        .context("an input without sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            written.store(monotonic_ns(), Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    Ok(last)
}

/// The end (running time) of the last buffer the aggregator put out.
fn track_position(aggregator: &gst::Element) -> anyhow::Result<Arc<AtomicU64>> {
    let position = Arc::new(AtomicU64::new(0));
    let pad = aggregator.static_pad("src").context("mixer without src pad")?;
    let written = position.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer()
            && let Some(pts) = buffer.pts()
        {
            let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
            written.fetch_max(end.nseconds(), Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(position)
}

/// Posts a message on the bus when an encoder emits the first buffer of the job.
fn announce_first_buffer(encoder: &gst::Element, seen: Arc<AtomicBool>) -> anyhow::Result<()> {
    let pad = encoder.static_pad("src").context("encoder without src pad")?;
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
