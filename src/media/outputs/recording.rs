//! The recording: MP4 (or M4A for audio only) cut into parts of at most `max_part`, at
//! keyframes. The encoded streams end in appsinks; each part is written by a pipeline of its
//! own (`part_file`), so a part gets every sample as soon as it is encoded (nothing gathered a
//! GOP at a time, as `splitmuxsink` does). A part that cannot be written is reported as an error
//! of the call's pipeline from the recording's appsink. Each part is announced on the call's bus
//! when it opens and when it is closed.

use super::branch;
use super::cutter::{Cutter, Route, Stream};
use super::part_file::{PartFile, running_ns};
use super::pause::{PauseGate, Verdict};
use crate::media::Composite;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a part may take to write its final index.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The room a part's index reserves beyond `max_part`: a part ends at the first keyframe past it.
const PART_OVERRUN: gst::ClockTime = gst::ClockTime::from_seconds(30);

const PART_OPENED: &str = "egress-recording-part-opened";
const PART_CLOSED: &str = "egress-recording-part-closed";

pub struct RecordingSpec {
    /// The mix and quality of the video; `None` for audio only.
    pub video: Option<(usize, crate::job::Quality)>,
    pub max_part: Duration,
    /// The path of part `n` (from 0), asked when the part opens.
    pub part_path: Arc<dyn Fn(u32) -> PathBuf + Send + Sync>,
}

/// A part opened or closed, from the recording's bus messages.
#[derive(Debug, Clone, PartialEq)]
pub enum PartEvent {
    /// A part opened; its first frame is at call time `starts_at` (running time).
    Opened {
        path: PathBuf,
        starts_at: Option<Duration>,
    },
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
            PART_OPENED => location().map(|path| PartEvent::Opened {
                path,
                starts_at: s.get::<u64>("starts_at_ns").ok().map(Duration::from_nanos),
            }),
            PART_CLOSED => location().map(PartEvent::Closed),
            _ => None,
        }
    }

    fn post(kind: &str, path: &std::path::Path, starts_at_ns: Option<u64>, from: &gst::Element) {
        let mut structure = gst::Structure::builder(kind)
            .field("location", path.to_string_lossy().as_ref())
            .build();
        if let Some(at) = starts_at_ns {
            structure.set("starts_at_ns", at);
        }
        let _ = from.post_message(gst::message::Element::builder(structure).src(from).build());
    }
}

/// Pauses and resumes a recording while it runs.
#[derive(Clone)]
pub struct RecordingControl {
    writer: Arc<Mutex<Writer>>,
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
}

impl RecordingControl {
    /// Leaves out of the file what the call shows from now on; false when already paused.
    pub fn pause(&self) -> bool {
        let at = self.now();
        lock(&self.writer).pause(at)
    }

    /// Takes the call into the file again from the next keyframe; false when not paused.
    pub fn resume(&self) -> bool {
        let at = self.now();
        lock(&self.writer).resume(at)
    }

    /// Finishes the recording now; the call and the other outputs go on. False when it had
    /// been stopped already.
    pub fn stop(&self) -> bool {
        lock(&self.writer).stop()
    }

    /// Ends the recording at running time `at`: samples from then on are left out; its last
    /// part closes when its streams end.
    pub fn end_at(&self, at: gst::ClockTime) {
        lock(&self.writer).end_at = Some(at);
    }

    /// Records again after a stop: a new part opens at the next keyframe. False when it was
    /// not stopped, or the call is ending.
    pub fn restart(&self) -> bool {
        lock(&self.writer).restart()
    }

    /// The call's running time now: samples with earlier times were captured before it.
    fn now(&self) -> gst::ClockTime {
        self.pipeline
            .upgrade()
            .and_then(|p| p.current_running_time())
            .unwrap_or(gst::ClockTime::ZERO)
    }
}

pub fn attach_recording(composite: &mut Composite, spec: &RecordingSpec) -> anyhow::Result<RecordingControl> {
    let video = match spec.video {
        Some((mix, quality)) => Some(composite.encoded_video(mix, quality)?),
        None => None,
    };
    let feeds = EncodedFeeds {
        video,
        audio: composite.encoded_audio(),
        name: "recording".into(),
        hold_back: Duration::ZERO,
    };
    attach_recording_to(
        composite.pipeline(),
        &feeds,
        spec.max_part,
        spec.part_path.clone(),
    )
}

/// The encoded streams a recording is made of: tees of an H.264 encoder (none for audio only)
/// and of an AAC encoder, and a name for its elements, unique in the pipeline.
pub struct EncodedFeeds {
    pub video: Option<gst::Element>,
    pub audio: gst::Element,
    pub name: String,
    /// How long samples wait before they are written, so that an end decided a moment late
    /// (`RecordingControl::end_at`) still leaves out what followed it.
    pub hold_back: Duration,
}

/// A recording of `feeds`, cut into parts of at most `max_part`.
pub fn attach_recording_to(
    pipeline: &gst::Pipeline,
    feeds: &EncodedFeeds,
    max_part: Duration,
    part_path: Arc<dyn Fn(u32) -> PathBuf + Send + Sync>,
) -> anyhow::Result<RecordingControl> {
    let with_video = feeds.video.is_some();
    let video_sink = with_video.then(|| {
        appsink(
            &format!("{}-video", feeds.name),
            "video/x-h264,stream-format=avc,alignment=au",
        )
    });
    let audio_sink = appsink(
        &format!("{}-audio", feeds.name),
        "audio/mpeg,mpegversion=4,stream-format=raw",
    );
    let announcer: gst::Element = audio_sink.clone().upcast();
    let writer = Arc::new(Mutex::new(Writer {
        cutter: Cutter::new(clock_time(max_part), with_video),
        max_part: clock_time(max_part),
        longest: clock_time(max_part) + PART_OVERRUN,
        with_video,
        part_path,
        next_index: 0,
        current: None,
        previous: None,
        held: Vec::new(),
        gate: PauseGate::new(with_video),
        stopped: false,
        end_at: None,
        gate_held: Vec::new(),
        closing: Vec::new(),
        ended: [!with_video, false],
        announcer: announcer.downgrade(),
    }));
    // Each sink plays before its branch is linked, for a recording started during the call.
    if let (Some(video), Some(sink)) = (&feeds.video, &video_sink) {
        pipeline.add(sink)?;
        feed(sink, Stream::Video, &writer);
        sink.sync_state_with_parent()?;
        branch(
            pipeline,
            video,
            "h264parse",
            &sink.static_pad("sink").context("appsink without sink")?,
            feeds.hold_back,
        )?;
    }
    pipeline.add(&audio_sink)?;
    feed(&audio_sink, Stream::Audio, &writer);
    audio_sink.sync_state_with_parent()?;
    branch(
        pipeline,
        &feeds.audio,
        "aacparse",
        &audio_sink.static_pad("sink").context("appsink without sink")?,
        feeds.hold_back,
    )?;
    Ok(RecordingControl {
        writer,
        pipeline: pipeline.downgrade(),
    })
}

fn appsink(name: &str, caps: &str) -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .name(name)
        .caps(&caps.parse::<gst::Caps>().expect("valid caps"))
        .sync(false)
        .async_(false)
        .enable_last_sample(false)
        .build()
}

fn clock_time(duration: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(duration.as_nanos().min(u128::from(u64::MAX)) as u64)
}

fn feed(sink: &gst_app::AppSink, stream: Stream, writer: &Arc<Mutex<Writer>>) {
    let (samples, ends) = (writer.clone(), writer.clone());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                lock(&samples).take(stream, sample);
                Ok(gst::FlowSuccess::Ok)
            })
            // The stream's EOS reaches the pipeline once this returns: the last part is
            // finished by then, so the end of the pipeline means the recording is whole.
            .eos(move |_| lock(&ends).end(stream))
            .build(),
    );
}

fn lock(writer: &Mutex<Writer>) -> std::sync::MutexGuard<'_, Writer> {
    writer.lock().unwrap_or_else(|p| p.into_inner())
}

/// The parts of one recording and where the samples go.
struct Writer {
    cutter: Cutter,
    max_part: gst::ClockTime,
    longest: gst::ClockTime,
    with_video: bool,
    part_path: Arc<dyn Fn(u32) -> PathBuf + Send + Sync>,
    next_index: u32,
    current: Option<PartFile>,
    /// The part before the last cut, while audio may still be due to it.
    previous: Option<PartFile>,
    held: Vec<gst::Sample>,
    gate: PauseGate,
    /// Stopped alone (`egress stop --output recording`): samples are dropped.
    stopped: bool,
    /// Samples from this running time on are dropped (where a participant left).
    end_at: Option<gst::ClockTime>,
    /// Sound waiting for the pictures to settle where a pause or resume falls.
    gate_held: Vec<gst::Sample>,
    /// Parts being finished on threads of their own.
    closing: Vec<JoinHandle<()>>,
    /// Whether each stream (video, audio) has ended.
    ended: [bool; 2],
    /// The element the part messages come from.
    announcer: gst::glib::WeakRef<gst::Element>,
}

impl Writer {
    /// Ends the recording while the call runs on: its parts are finished (and announced closed),
    /// nothing more is written.
    fn stop(&mut self) -> bool {
        if self.stopped {
            return false;
        }
        self.stopped = true;
        self.held.clear();
        self.gate_held.clear();
        self.close_previous();
        if let Some(part) = self.current.take() {
            self.close(part);
        }
        true
    }

    fn restart(&mut self) -> bool {
        if !self.stopped || self.ended[Stream::Audio as usize] {
            return false;
        }
        self.stopped = false;
        self.cutter = Cutter::new(self.max_part, self.with_video);
        self.gate = PauseGate::new(self.with_video);
        true
    }

    /// A sample from the encoders: through the pause gate, then to its part.
    fn take(&mut self, stream: Stream, sample: gst::Sample) {
        if self.stopped {
            return;
        }
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Some(at) = running_time(&sample, buffer.pts()) else {
            return;
        };
        if self.end_at.is_some_and(|end| at >= end) {
            return;
        }
        let verdict = match stream {
            Stream::Video => {
                let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let dts_ns = running_ns(&sample, buffer.dts()).unwrap_or(at.nseconds() as i64);
                self.gate.video(at, dts_ns, buffer.duration(), key)
            }
            Stream::Audio => self.gate.audio(at, buffer.duration()),
        };
        match verdict {
            Verdict::Drop => {}
            Verdict::Hold => self.gate_held.push(sample),
            Verdict::Keep => self.route(stream, sample),
        }
        if stream == Stream::Video && !self.gate_held.is_empty() {
            // The picture may have settled where a pause or resume falls.
            self.gate.release_held();
            for sample in std::mem::take(&mut self.gate_held) {
                self.take(Stream::Audio, sample);
            }
        }
    }

    pub fn pause(&mut self, at: gst::ClockTime) -> bool {
        self.gate.pause(at)
    }

    pub fn resume(&mut self, at: gst::ClockTime) -> bool {
        self.gate.resume(at)
    }

    fn route(&mut self, stream: Stream, sample: gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Some(at) = running_time(&sample, buffer.pts()) else {
            return;
        };
        let key = stream == Stream::Audio || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        match self.cutter.route(stream, at, key) {
            Route::Drop => {}
            Route::Hold => self.held.push(sample),
            Route::Previous => match &self.previous {
                Some(part) => part.push(stream, &sample, self.gate.removed_before(at)),
                None => self.push_current(stream, &sample),
            },
            Route::Current { close_previous } => {
                if close_previous {
                    self.close_previous();
                }
                self.push_current(stream, &sample);
            }
            Route::Open => {
                // The first frame is decoded first: its DTS is the part's 0.
                let at_ns = at.nseconds() as i64;
                let base = running_ns(&sample, buffer.dts()).map_or(at_ns, |dts| dts.min(at_ns));
                self.open(base, self.gate.removed_before(at));
                self.push_current(stream, &sample);
                self.route_held();
            }
        }
    }

    fn push_current(&self, stream: Stream, sample: &gst::Sample) {
        let at = sample.buffer().and_then(|b| running_time(sample, b.pts()));
        if let (Some(part), Some(at)) = (&self.current, at) {
            part.push(stream, sample, self.gate.removed_before(at));
        }
    }

    /// Held audio now knows its part (a cut was made, or the video ended).
    fn route_held(&mut self) {
        self.cutter.release_held();
        for sample in std::mem::take(&mut self.held) {
            self.route(Stream::Audio, sample);
        }
    }

    fn open(&mut self, base_ns: i64, removed_ns: i64) {
        self.close_previous();
        self.previous = self.current.take();
        if !self.with_video {
            // Audio alone is in order: nothing more can be due to the part before.
            self.close_previous();
        }
        let path = (self.part_path)(self.next_index);
        self.next_index += 1;
        let announcer = self.announcer.clone();
        let on_error = move |text: &str| {
            if let Some(element) = announcer.upgrade() {
                gst::element_error!(
                    element,
                    gst::ResourceError::Write,
                    ("the recording part cannot be written"),
                    ["{text}"]
                );
            }
        };
        match PartFile::open(
            &path,
            self.with_video,
            self.longest,
            base_ns,
            removed_ns,
            on_error,
        ) {
            Ok(part) => {
                if let Some(element) = self.announcer.upgrade() {
                    // The first frame's decode time may come before call time 0 (B-frames).
                    PartEvent::post(PART_OPENED, part.path(), Some(base_ns.max(0) as u64), &element);
                }
                self.current = Some(part);
            }
            Err(e) => {
                if let Some(element) = self.announcer.upgrade() {
                    gst::element_error!(
                        element,
                        gst::ResourceError::OpenWrite,
                        ("the recording part cannot be opened"),
                        ["{e:#}"]
                    );
                }
            }
        }
    }

    fn close_previous(&mut self) {
        if let Some(part) = self.previous.take() {
            self.close(part);
        }
    }

    /// Finishes a part away from the streaming thread; it is announced closed when finished.
    fn close(&mut self, part: PartFile) {
        let part = Arc::new(part);
        let (in_thread, announcer) = (part.clone(), self.announcer.clone());
        let spawned = std::thread::Builder::new()
            .name("part-finish".into())
            .spawn(move || finish(&in_thread, &announcer));
        match spawned {
            Ok(handle) => self.closing.push(handle),
            // Without a thread the part is finished here, holding up this stream a moment.
            Err(_) => finish(&part, &self.announcer),
        }
    }

    fn end(&mut self, stream: Stream) {
        self.ended[stream as usize] = true;
        if stream == Stream::Video {
            self.gate.video_ended();
            self.gate.release_held();
            for sample in std::mem::take(&mut self.gate_held) {
                self.take(Stream::Audio, sample);
            }
            self.cutter.video_ended();
            self.route_held();
        }
        if self.ended.iter().all(|&ended| ended) {
            // Sound held for a pause that the pictures never settled: the recording was paused.
            self.gate_held.clear();
            for sample in std::mem::take(&mut self.held) {
                self.push_current(Stream::Audio, &sample);
            }
            self.close_previous();
            if let Some(part) = self.current.take() {
                self.close(part);
            }
            for handle in self.closing.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

fn finish(part: &PartFile, announcer: &gst::glib::WeakRef<gst::Element>) {
    if let Err(reason) = part.finish(FINISH_TIMEOUT) {
        tracing::warn!(file = %part.path().display(), %reason, "recording part not finished cleanly");
    }
    if let Some(element) = announcer.upgrade() {
        PartEvent::post(PART_CLOSED, part.path(), None, &element);
    }
}

/// The running time of a sample's PTS (0 for one before the start).
fn running_time(sample: &gst::Sample, at: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    running_ns(sample, at).map(|ns| gst::ClockTime::from_nseconds(ns.max(0) as u64))
}
