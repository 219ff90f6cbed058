//! One job from start to finish: joins the source, drives the media graph, stores the result
//! and announces every step.

use crate::events::{COMPOSITE, CallRecording, Event, EventBody, EventSink};
use crate::job::{Job, SourceConfig, ValidatedJob};
use crate::layout;
use crate::media::{self, Composite, CompositeSpec, GraphNotice};
use crate::participants::{Roster, input_id};
use crate::source::{CallClock, Source, SourceEvent, SyntheticSource};
use crate::storage::{self, LocalStorage, Storage};
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the muxer may take to finalize after the stream ends.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the session loop looks at the source, the bus and the stop flag.
const POLL: Duration = Duration::from_millis(5);

pub struct RunOptions {
    /// Root folder of the local storage.
    pub out_dir: PathBuf,
    /// Where files are written while the job runs, before they are stored.
    pub spool_dir: PathBuf,
    /// Where relative media file names in the job are found.
    pub media_dir: PathBuf,
    /// When the command started, for the start-up latency figure.
    pub launched: Instant,
}

/// Identity of a running job, fixed at its start.
pub struct JobIdentity {
    pub egress_id: String,
    pub session_id: String,
}

impl JobIdentity {
    pub fn of(job: &Job) -> Self {
        let short = || uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        JobIdentity {
            egress_id: job.egress_id.clone().unwrap_or_else(|| format!("eg_{}", short())),
            session_id: job
                .session_id
                .clone()
                .unwrap_or_else(|| format!("se_{}", short())),
        }
    }
}

/// Runs a validated job to its end. Returns an error (already announced as a failed event) when
/// the job failed; files written so far stay in the spool.
pub fn run(
    validated: &ValidatedJob,
    options: &RunOptions,
    events: &dyn EventSink,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let job = &validated.job;
    let id = JobIdentity::of(job);
    let emit = |body| events.emit(&Event::new(&job.call_cid, &id.egress_id, body));
    for warning in &validated.warnings {
        tracing::warn!(egress_id = %id.egress_id, "{warning}");
    }
    match record(job, &id, options, &emit, stop) {
        Ok(()) => Ok(()),
        Err(e) => {
            let error = format!("{e:#}");
            tracing::error!(egress_id = %id.egress_id, %error, "recording failed");
            emit(EventBody::RecordingFailed {
                recording_type: COMPOSITE,
                error,
            });
            Err(e)
        }
    }
}

fn record(
    job: &Job,
    id: &JobIdentity,
    options: &RunOptions,
    emit: &dyn Fn(EventBody),
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let recording = job.recording.as_ref().context("job has no recording section")?;
    let start_time = chrono::Utc::now();
    let extension = if recording.audio_only { "m4a" } else { "mp4" };
    let filename = format!(
        "rec_{}_{}_{}_{}.{extension}",
        job.call_type(),
        job.call_id(),
        recording.quality.name(),
        start_time.format("%Y%m%dT%H%M%SZ")
    );
    let key = storage::object_key(job.storage.path.as_deref(), &filename)?;
    let spool = options.spool_dir.join(&id.egress_id);
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("cannot create spool folder {}", spool.display()))?;
    let spool_file = spool.join(&filename);

    let limit = job.limits.max_duration_seconds.map_or(u64::MAX, u64::from);
    let max_duration = Duration::from_secs(limit.min(u64::from(recording.max_file_duration_s)));
    let planned = match &job.source {
        SourceConfig::Synthetic(s) => Duration::from_secs_f64(s.duration_s).min(max_duration),
    };
    let grid_options = layout::GridOptions::resolve(&recording.layout.options)
        .map_err(|e| anyhow::anyhow!("layout options: {e:?}"))?;
    media::init()?;
    let mut graph = Composite::build(&CompositeSpec {
        quality: recording.quality,
        background_rgb: grid_options.background_rgb,
        audio_only: recording.audio_only,
        output: spool_file.clone(),
        max_duration: planned,
    })?;
    let canvas = recording.quality.size();
    let mut session = Session {
        graph: &mut graph,
        roster: Roster::default(),
        canvas,
        grid_options,
    };

    let pipeline = session.graph.pipeline().clone();
    let bus = pipeline.bus().context("pipeline without bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("the media pipeline did not start")?;
    let playing_since = Instant::now();

    let (tx, rx) = mpsc::channel();
    let source_stop = Arc::new(AtomicBool::new(false));
    let source: Box<dyn Source> = match &job.source {
        SourceConfig::Synthetic(s) => Box::new(SyntheticSource::new(s, &options.media_dir)),
    };
    let running = pipeline.clone();
    let clock: CallClock = Arc::new(move || {
        running
            .current_running_time()
            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()))
    });
    source.start(clock, tx, source_stop.clone())?;

    let mut finishing: Option<Instant> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut started = false;
    'run: loop {
        let end = |reason: &str, finishing: &mut Option<Instant>, graph: &mut Composite| {
            if finishing.is_none() {
                tracing::info!(egress_id = %id.egress_id, reason, "stopping");
                *finishing = Some(Instant::now());
                graph.finish();
            }
        };
        if stop.load(Ordering::Relaxed) {
            end("stop requested", &mut finishing, session.graph);
        } else if playing_since.elapsed() >= max_duration {
            end("maximum duration reached", &mut finishing, session.graph);
        }
        // Waiting on the source (not the bus) keeps cues within a few ms of their time.
        let mut events = Vec::new();
        match rx.recv_timeout(POLL) {
            Ok(event) => events.push(event),
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        events.extend(rx.try_iter());
        for event in events {
            if finishing.is_some() {
                break;
            }
            match session.apply(event) {
                Ok(true) => {}
                Ok(false) => end("call ended", &mut finishing, session.graph),
                Err(e) => {
                    failure = Some(e);
                    end("source failed", &mut finishing, session.graph);
                }
            }
        }
        if let Some(since) = finishing
            && since.elapsed() > FINALIZE_TIMEOUT
        {
            failure.get_or_insert_with(|| {
                anyhow::anyhow!("the recording did not finalize within {FINALIZE_TIMEOUT:?}")
            });
            break;
        }
        while let Some(message) = bus.pop() {
            if GraphNotice::from_message(&message) == Some(GraphNotice::FirstEncodedFrame) {
                started = true;
                tracing::info!(
                    egress_id = %id.egress_id,
                    ms_since_launch = options.launched.elapsed().as_millis() as u64,
                    "first encoded frame"
                );
                emit(EventBody::RecordingStarted {
                    recording_type: COMPOSITE,
                });
                continue;
            }
            match message.view() {
                gst::MessageView::Eos(_) => break 'run,
                gst::MessageView::Error(err) => {
                    let source = err.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    failure = Some(anyhow::anyhow!(
                        "media pipeline error in {source}: {}",
                        err.error()
                    ));
                    break 'run;
                }
                _ => {}
            }
        }
    }
    source_stop.store(true, Ordering::Relaxed);
    let _ = pipeline.set_state(gst::State::Null);
    let end_time = chrono::Utc::now();
    if started {
        emit(EventBody::RecordingStopped {
            recording_type: COMPOSITE,
        });
    }
    if let Some(e) = failure {
        return Err(e.context(format!("what was recorded is kept at {}", spool_file.display())));
    }
    let local = LocalStorage::new(&options.out_dir);
    let url = local.store(&spool_file, &key).with_context(|| {
        format!(
            "storing the recording failed; it is kept at {}",
            spool_file.display()
        )
    })?;
    let _ = std::fs::remove_dir(&spool);
    emit(EventBody::RecordingReady {
        recording_type: COMPOSITE,
        call_recording: CallRecording {
            filename,
            url,
            start_time: start_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            end_time: end_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            session_id: id.session_id.clone(),
            recording_type: COMPOSITE,
        },
    });
    Ok(())
}

/// The live state of a running composite: the graph and who is in it.
struct Session<'a> {
    graph: &'a mut Composite,
    roster: Roster,
    canvas: (u32, u32),
    grid_options: layout::GridOptions,
}

impl Session<'_> {
    /// Applies one source event; `Ok(false)` when the call has ended.
    fn apply(&mut self, event: SourceEvent) -> anyhow::Result<bool> {
        match event {
            SourceEvent::Joined(info) => {
                tracing::info!(user_id = %info.user_id, "participant joined");
                self.roster.join(info);
            }
            SourceEvent::Left { user_id } => {
                tracing::info!(%user_id, "participant left");
                let ids: Vec<String> = self
                    .graph
                    .input_ids()
                    .filter(|i| i.starts_with(&format!("{user_id}/")))
                    .map(str::to_owned)
                    .collect();
                for input in ids {
                    self.graph.remove_input(&input);
                }
                self.roster.leave(&user_id);
                self.relayout();
            }
            SourceEvent::TrackAdded { user_id, kind, media } => {
                if kind.is_video() && !self.graph.has_video() {
                    return Ok(true);
                }
                self.graph
                    .add_input(&input_id(&user_id, kind), media, kind.is_video())?;
                self.roster.add_track(&user_id, kind);
                self.relayout();
            }
            SourceEvent::TrackRemoved { user_id, kind } => {
                self.graph.remove_input(&input_id(&user_id, kind));
                self.roster.remove_track(&user_id, kind);
                self.relayout();
            }
            SourceEvent::Ended => return Ok(false),
            SourceEvent::Failed(message) => anyhow::bail!("source failed: {message}"),
        }
        Ok(true)
    }

    fn relayout(&self) {
        if !self.graph.has_video() {
            return;
        }
        let (w, h) = self.canvas;
        let tiles = self.roster.video_tiles();
        let rects = layout::grid(tiles.len(), w, h, self.grid_options.padding_px(h));
        for (input, rect) in tiles.iter().zip(rects) {
            self.graph.place(input, Some(rect));
        }
    }
}
