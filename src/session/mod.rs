//! One job from start to finish: joins the source, drives the media graph, publishes the
//! outputs and announces every step.

mod call;
mod control;
mod frames;
mod hls;
mod recording;
mod rtmp;
mod thumbnails;
mod transcription;

use crate::events::{COMPOSITE, Event, EventBody, EventSink};
use crate::job::{Job, SourceConfig, ValidatedJob};
use crate::media::{self, Composite, GraphNotice, PartEvent};
use crate::source::{
    CallClock, JanusSource, Source, SourceEvent, Subscriptions, SyntheticSource, WhepSource,
};
use crate::storage::{JobSpool, Output, RetryPolicy, Uploader};
use anyhow::Context;
use call::{LayoutAssets, LiveCall, MixPlan, plan_mixes};
use frames::FrameOutput;
use gst::prelude::*;
use gstreamer as gst;
use hls::HlsOutput;
use recording::RecordingOutput;
use rtmp::RtmpOutput;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thumbnails::ThumbnailOutput;
use transcription::TranscriptionOutput;

/// How long the muxers may take to finalize after the stream ends.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long RTMP pushes may take to pass the end of stream before they are closed anyway.
const RTMP_END_GRACE: Duration = Duration::from_secs(5);
/// How long stopping the pipeline may take before it is left behind.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped source may take to leave the call.
const SOURCE_GOODBYE: Duration = Duration::from_secs(3);
/// How often the session loop looks at the source, the bus and the stop flag.
const POLL: Duration = Duration::from_millis(5);
/// How often the cameras are checked for frames that stopped.
const MEDIA_CHECK: Duration = Duration::from_millis(250);
/// How often new HLS segments are looked for.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

pub struct RunOptions {
    /// Root folder of the local storage.
    pub out_dir: PathBuf,
    /// Where files are written while the job runs, before they are stored.
    pub spool_dir: PathBuf,
    /// Where relative media file names in the job are found.
    pub media_dir: PathBuf,
    /// When the command started, for the start-up latency figure.
    pub launched: Instant,
    /// Where to write the pipeline graph (Graphviz) once media flows.
    pub dot_file: Option<PathBuf>,
    /// Frame recording decodes every frame even where keyframes alone would do.
    pub decode_every_frame: bool,
    /// How long and how often files are retried before they go to `backup_dir`.
    pub retry: RetryPolicy,
    /// Where files the store would not take are kept, per egress id.
    pub backup_dir: PathBuf,
    /// Updates, pauses and resumes for the running job, when someone may send them.
    pub updates: Option<std::sync::Mutex<mpsc::Receiver<ControlRequest>>>,
    /// The Whisper model (ggml) for transcription.
    pub whisper_model: PathBuf,
}

/// What a coordinator asks of a running job, by control message.
#[derive(Debug, Clone, PartialEq)]
pub enum JobControl {
    Update(JobUpdate),
    Pause(PausableOutput),
    Resume(PausableOutput),
    /// Ends one output while the call and the others run on.
    Stop(StoppableOutput),
    /// Adds an output to the running call; `section` has the job's shape for that output.
    Start {
        output: OutputKind,
        section: serde_json::Value,
    },
}

/// A control message for the running job and, when the sender waits for it, where the answer
/// goes: `Ok` with what was done, or the error that names what was wrong.
pub struct ControlRequest {
    pub control: JobControl,
    pub reply: Option<Reply>,
}

pub type Reply = Box<dyn FnOnce(Result<String, String>) + Send>;

impl ControlRequest {
    /// A request nobody waits on.
    pub fn unanswered(control: JobControl) -> ControlRequest {
        ControlRequest { control, reply: None }
    }
}

/// The kinds of output of a job, as `egress start --output` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Recording,
    Hls,
    Rtmp,
    FrameRecording,
    Transcription,
    ClosedCaptions,
    Thumbnails,
}

impl OutputKind {
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Recording => "recording",
            OutputKind::Hls => "hls",
            OutputKind::Rtmp => "rtmp",
            OutputKind::FrameRecording => "frame_recording",
            OutputKind::Transcription => "transcription",
            OutputKind::ClosedCaptions => "closed_captions",
            OutputKind::Thumbnails => "thumbnails",
        }
    }
}

/// The outputs that can be stopped alone (`egress stop EGRESS_ID --output KIND[:NAME]`),
/// written as `egress start` names them; `rtmp` stops every push, `rtmp:NAME` one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoppableOutput {
    Recording,
    Hls,
    FrameRecording,
    Transcription,
    ClosedCaptions,
    /// One push by name, or all of them.
    Rtmp(Option<String>),
}

/// What `StoppableOutput` accepts, for its error.
const STOPPABLE: &str = "recording, hls, frame_recording, transcription, closed_captions, rtmp or rtmp:NAME";

impl std::str::FromStr for StoppableOutput {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None => match text {
                "recording" => Ok(StoppableOutput::Recording),
                "hls" => Ok(StoppableOutput::Hls),
                "frame_recording" => Ok(StoppableOutput::FrameRecording),
                "transcription" => Ok(StoppableOutput::Transcription),
                "closed_captions" => Ok(StoppableOutput::ClosedCaptions),
                "rtmp" => Ok(StoppableOutput::Rtmp(None)),
                _ => Err(format!("expected {STOPPABLE}; got {text:?}")),
            },
            Some(("rtmp", name)) if !name.is_empty() => Ok(StoppableOutput::Rtmp(Some(name.to_owned()))),
            _ => Err(format!("expected {STOPPABLE}; got {text:?}")),
        }
    }
}

impl TryFrom<String> for StoppableOutput {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<StoppableOutput> for String {
    fn from(output: StoppableOutput) -> String {
        match output {
            StoppableOutput::Recording => "recording".into(),
            StoppableOutput::Hls => "hls".into(),
            StoppableOutput::FrameRecording => "frame_recording".into(),
            StoppableOutput::Transcription => "transcription".into(),
            StoppableOutput::ClosedCaptions => "closed_captions".into(),
            StoppableOutput::Rtmp(None) => "rtmp".into(),
            StoppableOutput::Rtmp(Some(name)) => format!("rtmp:{name}"),
        }
    }
}

/// The outputs that can be paused (`egress pause EGRESS_ID --output recording`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PausableOutput {
    Recording,
    /// The transcript and the closed captions together.
    Transcription,
}

/// A change to a running job, sent by the coordinator (`egress update`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobUpdate {
    /// The user ids pinned from now on (replaces the pins of the job); absent: unchanged.
    #[serde(default)]
    pub pinned: Option<Vec<String>>,
    /// New names or roles, by user id; they apply to participants who join later too.
    #[serde(default)]
    pub participants: std::collections::BTreeMap<String, ParticipantPatch>,
    /// The layout (name and options) of every composite output from now on; sizes stay, and
    /// logos are those loaded at the start of the job.
    #[serde(default)]
    pub layout: Option<crate::job::LayoutConfig>,
}

impl JobUpdate {
    /// Checks what serde cannot: the layout's options.
    pub fn check(&self) -> Result<(), String> {
        if let Some(layout) = &self.layout {
            crate::layout::LayoutPlan::new(layout.name.as_str(), &layout.options).map_err(|errors| {
                let said: Vec<String> = errors
                    .iter()
                    .map(|(key, problem)| format!("layout.options.{key}: {problem}"))
                    .collect();
                said.join("; ")
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
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

pub(crate) type Emit<'a> = &'a dyn Fn(EventBody);

/// The outputs of a running job.
struct Outputs {
    recording: Option<RecordingOutput>,
    hls: Option<HlsOutput>,
    rtmp: Vec<RtmpOutput>,
    frames: Option<FrameOutput>,
    transcription: Option<TranscriptionOutput>,
    thumbnails: Option<ThumbnailOutput>,
    /// Validation warnings, carried by the first started event.
    warnings: Vec<String>,
    /// The secrets of outputs started during the call, kept out of the logs while it runs.
    started_secrets: Vec<crate::redact::Registration>,
}

/// Runs a validated job to its end. Returns an error (already announced as failed events) when
/// the job failed; files written so far stay in the spool or, when the store would not take them,
/// in the backup folder.
pub fn run(
    validated: &ValidatedJob,
    options: &RunOptions,
    events: &dyn EventSink,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let job = &validated.job;
    let id = JobIdentity::of(job);
    let _secrets_kept_out_of_logs = crate::redact::register(&job.secrets());
    let redacting = crate::events::RedactingSink::new(events, &job.secrets());
    let tracking = OutputTracking::new(&redacting);
    let events: &dyn EventSink = &tracking;
    // Every log line of the job's own thread names it.
    let _span = tracing::info_span!("job", egress_id = %id.egress_id).entered();
    let emit = |body: EventBody| {
        events.emit(&Event::new(&job.call_cid, &id.egress_id, body).with_call_details(job.call.as_ref()))
    };
    for warning in &validated.warnings {
        tracing::warn!(egress_id = %id.egress_id, "{warning}");
    }
    let warnings = validated.warnings.iter().map(ToString::to_string).collect();
    let mut lost = BTreeSet::new();
    let result = open_storage(job, &id, options).and_then(|(storage, spool)| {
        std::thread::scope(|scope| {
            let mut uploader = Uploader::start(
                scope,
                spool,
                storage.as_ref(),
                events,
                options.retry,
                &options.backup_dir,
            );
            uploader.describe_call(job.call.clone());
            let result = execute(job, &id, options, warnings, &emit, stop, &mut uploader);
            lost = uploader.finish(result.is_ok());
            result
        })
    });
    match result {
        Ok(ended) => {
            // Stopped once every file of the output is stored; an output that lost files to
            // the backup folder has announced its failure instead.
            if ended.hls_started && !lost.contains(&Output::Hls) {
                emit(EventBody::HlsStopped {});
            }
            if ended.frames_started && !lost.contains(&Output::Frames) {
                emit(EventBody::FrameRecordingStopped {});
            }
            match lost.is_empty() {
                true => Ok(()),
                false => Err(anyhow::anyhow!(
                    "some files could not be stored; they are kept in {}",
                    options.backup_dir.join(&id.egress_id).display()
                )),
            }
        }
        Err(e) => {
            let error = redact(job, &format!("{e:#}"));
            tracing::error!(egress_id = %id.egress_id, %error, "job failed");
            let running = |output: &str| !tracking.ended(output);
            let asked = |output: &str| tracking.started(output);
            if (job.recording.is_some() || asked("recording"))
                && !lost.contains(&Output::Recording)
                && running("recording")
            {
                emit(EventBody::RecordingFailed {
                    recording_type: COMPOSITE.into(),
                    error: error.clone(),
                });
            }
            if (job.hls.is_some() || asked("hls")) && !lost.contains(&Output::Hls) && running("hls") {
                emit(EventBody::HlsFailed { error: error.clone() });
            }
            let pushes: BTreeSet<String> = job
                .rtmp
                .iter()
                .map(|r| format!("rtmp:{}", r.name))
                .chain(tracking.started_pushes())
                .collect();
            for output in pushes.into_iter().filter(|output| running(output)) {
                emit(EventBody::RtmpFailed {
                    name: output.trim_start_matches("rtmp:").to_owned(),
                    error: error.clone(),
                });
            }
            if job.frame_recording.is_some() && !lost.contains(&Output::Frames) && running("frame_recording")
            {
                emit(EventBody::FrameRecordingFailed { error: error.clone() });
            }
            if let Some(t) = &job.transcription {
                if t.transcript && !lost.contains(&Output::Transcript) && running("transcription") {
                    emit(EventBody::TranscriptionFailed { error: error.clone() });
                }
                if t.closed_captions && running("closed_captions") {
                    emit(EventBody::ClosedCaptionsFailed { error: error.clone() });
                }
            }
            Err(e)
        }
    }
}

/// Passes a job's events on and notes which outputs have announced their end (whoever sent the
/// event: the session or the uploader), so that a failure of the job later does not end them
/// again, and which have started (those started during the call are not in the job). An output
/// that starts again is no longer ended.
struct OutputTracking<'a> {
    inner: &'a dyn EventSink,
    ended: std::sync::Mutex<BTreeSet<String>>,
    started: std::sync::Mutex<BTreeSet<String>>,
}

impl<'a> OutputTracking<'a> {
    fn new(inner: &'a dyn EventSink) -> Self {
        OutputTracking {
            inner,
            ended: Default::default(),
            started: Default::default(),
        }
    }

    fn ended(&self, output: &str) -> bool {
        lock(&self.ended).contains(output)
    }

    fn started(&self, output: &str) -> bool {
        lock(&self.started).contains(output)
    }

    /// `rtmp:NAME` of every push that started.
    fn started_pushes(&self) -> Vec<String> {
        let started = lock(&self.started);
        started
            .iter()
            .filter(|o| o.starts_with("rtmp:"))
            .cloned()
            .collect()
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventSink for OutputTracking<'_> {
    fn emit(&self, event: &Event) {
        if let Some(output) = event.body.ends_output() {
            lock(&self.ended).insert(output);
        }
        if let Some(output) = event.body.starts_output() {
            lock(&self.ended).remove(&output);
            lock(&self.started).insert(output);
        }
        self.inner.emit(event);
    }
}

/// Opens the job's storage, checks that it takes files (before anything is recorded) and
/// creates the job's spool folder.
fn open_storage(
    job: &Job,
    id: &JobIdentity,
    options: &RunOptions,
) -> anyhow::Result<(Box<dyn crate::storage::Storage>, JobSpool)> {
    let storage = crate::storage::open(&job.storage, &options.out_dir)?;
    if job.storage.storage_type != crate::job::StorageType::Local {
        let key = crate::storage::check_key(job.storage.path.as_deref())?;
        storage.check(&key).context("storage check failed")?;
    }
    let spool = JobSpool::create(
        &options.spool_dir,
        &id.egress_id,
        &job.call_cid,
        &job.storage,
        &options.out_dir,
    )?;
    Ok((storage, spool))
}

/// What a job that ran to its end still has to announce once its files are stored.
struct Ended {
    hls_started: bool,
    frames_started: bool,
}

/// Announces a job that cannot run (it did not validate): a failed event for each output the
/// job asked for (the recording's when it names none), when the job says which call it is for.
pub fn announce_refusal(text: &str, problems: &[crate::job::Problem], events: &dyn EventSink) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let Some(call_cid) = value.get("call_cid").and_then(|v| v.as_str()) else {
        return;
    };
    let egress_id = value.get("egress_id").and_then(|v| v.as_str()).unwrap_or("");
    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let secrets = secrets_of_refused(text);
    let error = crate::redact::redact(&format!("invalid job: {}", listed.join("; ")), &secrets);
    let asked = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
    let mut bodies = Vec::new();
    if asked("hls") {
        bodies.push(EventBody::HlsFailed { error: error.clone() });
    }
    if asked("frame_recording") {
        bodies.push(EventBody::FrameRecordingFailed { error: error.clone() });
    }
    for (i, push) in value
        .get("rtmp")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = push
            .get("name")
            .and_then(|n| n.as_str())
            .map_or_else(|| format!("rtmp[{i}]"), str::to_owned);
        bodies.push(EventBody::RtmpFailed {
            name,
            error: error.clone(),
        });
    }
    if let Some(transcription) = value.get("transcription").filter(|t| t.is_object()) {
        let flag = |key: &str, default: bool| {
            transcription
                .get(key)
                .and_then(|v| v.as_bool())
                .unwrap_or(default)
        };
        if flag("transcript", true) {
            bodies.push(EventBody::TranscriptionFailed { error: error.clone() });
        }
        if flag("closed_captions", false) {
            bodies.push(EventBody::ClosedCaptionsFailed { error: error.clone() });
        }
    }
    if asked("recording") || bodies.is_empty() {
        bodies.insert(
            0,
            EventBody::RecordingFailed {
                recording_type: COMPOSITE.into(),
                error: error.clone(),
            },
        );
    }
    for body in bodies {
        events.emit(&Event::new(call_cid, egress_id, body));
    }
}

/// Fields of the job contract that hold secrets.
const SECRET_FIELDS: [&str; 8] = [
    "stream_key",
    "s3_api_key",
    "s3_secret",
    "abs_client_secret",
    "abs_account_key",
    "abs_connection_string",
    "pin",
    "bearer_token",
];

/// The secrets of a job that did not parse into its types, found by their field names, so that
/// what is said of its problems leaves them out.
pub fn secrets_of_refused(text: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        secret_fields(&value, &mut secrets);
    }
    secrets
}

/// The text values of the secret fields anywhere in a job's JSON.
fn secret_fields(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, v) in fields {
                match (
                    SECRET_FIELDS.contains(&key.as_str()) || key == "gcs_credentials",
                    v.as_str(),
                ) {
                    (true, Some(text)) if !text.is_empty() => out.push(text.to_owned()),
                    _ => secret_fields(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| secret_fields(v, out)),
        _ => {}
    }
}

/// Removes every stream key, storage secret and URL user-info of the job from a text.
fn redact(job: &Job, text: &str) -> String {
    crate::redact::redact(text, &job.secrets())
}

/// Whether any output of the job uses the call's sound (any may, in a job that starts with none).
fn takes_sound(job: &Job) -> bool {
    job.recording.is_some()
        || job.hls.is_some()
        || !job.rtmp.is_empty()
        || job.transcription.is_some()
        || job.has_no_output()
}

/// Video apart from audio where the job's stills come from keyframes asked of the publishers
/// and it takes their sound too; video alone where it takes no sound.
fn janus_subscriptions(job: &Job, mixes: &[MixPlan], options: &RunOptions) -> Subscriptions {
    let asks_for_keyframes = job.frame_recording.is_some() && mixes.is_empty() && !options.decode_every_frame;
    match (takes_sound(job), asks_for_keyframes) {
        (false, _) => Subscriptions::VideoOnly,
        (true, true) => Subscriptions::Apart,
        (true, false) => Subscriptions::Together,
    }
}

fn execute(
    job: &Job,
    id: &JobIdentity,
    options: &RunOptions,
    warnings: Vec<String>,
    emit: Emit,
    stop: Arc<AtomicBool>,
    uploader: &mut Uploader,
) -> anyhow::Result<Ended> {
    let spool = uploader.spool().dir.clone();
    media::init()?;
    let (mixes, assignment) = plan_mixes(job)?;
    // Before the graph, so that a WebRTC source's one-off set-up runs while the graph is built.
    let source: Box<dyn Source> = match &job.source {
        SourceConfig::Synthetic(s) => Box::new(SyntheticSource::new(s, &options.media_dir)),
        SourceConfig::Janus(j) => {
            Box::new(JanusSource::new(j.clone()).subscriptions(janus_subscriptions(job, &mixes, options)))
        }
        SourceConfig::Whep(w) => Box::new(WhepSource::new(w.clone())),
    };
    let assets = LayoutAssets::load(&mixes, &options.media_dir);
    let specs: Vec<_> = mixes.iter().map(|m| m.spec()).collect();
    let mut graph = Composite::build(&specs)?;
    graph.set_input_latency(source.input_latency());
    let mut outputs = Outputs {
        recording: match &job.recording {
            Some(config) => Some(RecordingOutput::attach(
                &mut graph,
                job,
                config,
                assignment.recording,
                &spool,
            )?),
            None => None,
        },
        hls: match &job.hls {
            Some(config) => Some(HlsOutput::attach(
                &mut graph,
                job,
                &id.egress_id,
                config,
                assignment.hls,
                &spool,
            )?),
            None => None,
        },
        rtmp: job
            .rtmp
            .iter()
            .zip(&assignment.rtmp)
            .map(|(config, &mix)| RtmpOutput::new(config.clone(), mix))
            .collect(),
        frames: match &job.frame_recording {
            Some(config) => Some(FrameOutput::attach(
                &mut graph,
                job,
                id,
                config,
                &spool,
                !options.decode_every_frame && source.answers_key_unit_requests(),
            )?),
            None => None,
        },
        transcription: match &job.transcription {
            Some(config) => Some(
                TranscriptionOutput::attach(&mut graph, job, config, &spool, &options.whisper_model)
                    .context("transcription cannot start")?,
            ),
            None => None,
        },
        thumbnails: {
            // The picture of the first composite output.
            let mix = assignment
                .recording
                .or(assignment.hls)
                .or(assignment.rtmp.first().copied());
            match (&job.thumbnails, mix) {
                (Some(config), Some(mix)) if config.enabled => {
                    Some(ThumbnailOutput::attach(&mut graph, job, config, mix, &spool)?)
                }
                _ => None,
            }
        },
        warnings,
        started_secrets: Vec::new(),
    };
    let mut call = LiveCall::new(mixes, assets);
    call.relayout(&graph, None)?;

    let pipeline = graph.pipeline().clone();
    let bus = pipeline.bus().context("pipeline without bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("the media pipeline did not start")?;
    let playing_since = Instant::now();
    let mut media_checked = playing_since;
    if let Some(frames) = &mut outputs.frames {
        frames.call_start = chrono::Utc::now();
    }
    if let Some(transcription) = &mut outputs.transcription {
        transcription.call_start = chrono::Utc::now();
    }
    if let Some(thumbnails) = &mut outputs.thumbnails {
        thumbnails.call_start = chrono::Utc::now();
    }

    let (tx, rx) = mpsc::channel();
    let source_stop = Arc::new(AtomicBool::new(false));
    let running = pipeline.clone();
    let clock: CallClock = Arc::new(move || {
        running
            .current_running_time()
            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()))
    });
    source.start(clock.clone(), tx, source_stop.clone())?;

    let max_duration = match job.limits.max_duration_seconds {
        None | Some(0) => Duration::from_secs(u64::MAX / 4),
        Some(seconds) => Duration::from_secs(u64::from(seconds)),
    };
    let mut finishing: Option<Instant> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut media_flowing = false;
    let mut last_publish = Instant::now();
    // Since when no output has run (each stopped alone), for `limits.idle_output_timeout_s`.
    let mut idle_since: Option<Instant> = None;
    let idle_timeout = Duration::from_secs(u64::from(job.limits.idle_output_timeout_s()));
    'run: loop {
        let end = |reason: &str,
                   at: Option<Duration>,
                   finishing: &mut Option<Instant>,
                   graph: &mut Composite,
                   outputs: &mut Outputs| {
            if finishing.is_none() {
                tracing::info!(egress_id = %id.egress_id, reason, "stopping");
                *finishing = Some(Instant::now());
                for push in &mut outputs.rtmp {
                    push.finish(graph, emit);
                }
                graph.finish(at);
            }
        };
        if stop.load(Ordering::Relaxed) {
            end("stop requested", None, &mut finishing, &mut graph, &mut outputs);
        } else if playing_since.elapsed() >= max_duration {
            end(
                "maximum duration reached",
                None,
                &mut finishing,
                &mut graph,
                &mut outputs,
            );
        }
        // Waiting on the source (not the bus) keeps cues within a few ms of their time.
        let mut events = Vec::new();
        match rx.recv_timeout(POLL) {
            Ok(event) => events.push(event),
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        events.extend(rx.try_iter());
        graph.reap_departed();
        if finishing.is_none() && media_checked.elapsed() >= MEDIA_CHECK {
            media_checked = Instant::now();
            call.watch_media(&graph)?;
        }
        for event in events {
            if finishing.is_some() {
                break;
            }
            let ended_at = match &event {
                SourceEvent::Ended { at } => *at,
                _ => None,
            };
            match call.apply(event, &mut graph) {
                Ok(true) => {}
                Ok(false) => end("call ended", ended_at, &mut finishing, &mut graph, &mut outputs),
                Err(e) => {
                    failure = Some(e);
                    end("source failed", None, &mut finishing, &mut graph, &mut outputs);
                }
            }
        }
        if finishing.is_none()
            && let Some(updates) = &options.updates
        {
            let pending: Vec<ControlRequest> = updates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_iter()
                .collect();
            for request in pending {
                let mut running = control::Running {
                    graph: &mut graph,
                    call: &mut call,
                    outputs: &mut outputs,
                    uploader: &mut *uploader,
                };
                let answer =
                    control::apply_control(request.control, job, &options.media_dir, id, &mut running, emit)?;
                match &answer {
                    Ok(done) => tracing::info!(egress_id = %id.egress_id, %done, "control applied"),
                    Err(refused) => tracing::warn!(egress_id = %id.egress_id, %refused, "control refused"),
                }
                if let Some(reply) = request.reply {
                    reply(answer);
                }
            }
        }
        if finishing.is_none() && !outputs.any_running() {
            let idle = *idle_since.get_or_insert_with(Instant::now);
            if idle.elapsed() >= idle_timeout {
                end(
                    "every output stopped and none started",
                    None,
                    &mut finishing,
                    &mut graph,
                    &mut outputs,
                );
            }
        } else {
            idle_since = None;
        }
        if let Some(since) = finishing
            && since.elapsed() > RTMP_END_GRACE
        {
            for push in &mut outputs.rtmp {
                push.cut_short(&graph);
            }
        }
        if let Some(since) = finishing
            && since.elapsed() > FINALIZE_TIMEOUT
        {
            failure.get_or_insert_with(|| {
                anyhow::anyhow!("the outputs did not finalize within {FINALIZE_TIMEOUT:?}")
            });
            break;
        }
        if finishing.is_none() {
            for push in &mut outputs.rtmp {
                push.tick(&mut graph, emit, &mut outputs.warnings);
            }
        }
        if last_publish.elapsed() >= PUBLISH_EVERY
            && let Some(hls) = &mut outputs.hls
        {
            last_publish = Instant::now();
            hls.publish(uploader, &graph, emit, &mut outputs.warnings)?;
        }
        if let Some(frames) = &mut outputs.frames {
            frames.publish(
                uploader,
                &call,
                graph.end_time(),
                Some(clock()),
                id,
                emit,
                &mut outputs.warnings,
            )?;
        }
        if let Some(transcription) = &mut outputs.transcription {
            transcription.publish(&call, emit);
            transcription.store_stopped_transcript(uploader, id, job, emit)?;
        }
        if let Some(thumbnails) = &mut outputs.thumbnails {
            thumbnails.publish(uploader)?;
        }
        while let Some(message) = bus.pop() {
            if let Some((input, level_db)) = graph.audio_level(&message) {
                let user_id = input.split('/').next().unwrap_or_default().to_owned();
                if finishing.is_none() {
                    call.hear(&user_id, level_db, clock(), &graph)?;
                }
                continue;
            }
            if let Some(part) = PartEvent::from_message(&message) {
                if let Some(recording) = &mut outputs.recording {
                    recording.on_part(part, finishing.is_some(), uploader, id, emit)?;
                }
                continue;
            }
            if GraphNotice::from_message(&message) == Some(GraphNotice::FirstEncodedFrame) {
                media_flowing = true;
                tracing::info!(
                    egress_id = %id.egress_id,
                    ms_since_launch = options.launched.elapsed().as_millis() as u64,
                    "first encoded frame"
                );
                if let Some(path) = &options.dot_file {
                    write_graph(&pipeline, path, job);
                }
                if let Some(recording) = outputs
                    .recording
                    .as_mut()
                    .filter(|r| !r.stopped_alone && !r.started)
                {
                    recording.started = true;
                    emit(EventBody::RecordingStarted {
                        recording_type: COMPOSITE.into(),
                        warnings: std::mem::take(&mut outputs.warnings),
                    });
                }
                if let Some(frames) = &mut outputs.frames {
                    frames.start(emit, &mut outputs.warnings);
                }
                if let Some(transcription) = &mut outputs.transcription {
                    transcription.start(emit);
                }
                continue;
            }
            match message.view() {
                gst::MessageView::Eos(_) => break 'run,
                gst::MessageView::Error(err) => {
                    let source = err.src().cloned();
                    let text = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
                    if let Some(push) = source
                        .as_ref()
                        .and_then(|s| outputs.rtmp.iter_mut().find(|p| p.owns(s)))
                    {
                        push.dropped(&text, &graph, emit);
                        continue;
                    }
                    let path = source.map(|s| s.path_string().to_string()).unwrap_or_default();
                    tracing::error!(element = %path, details = %redact(job, &text), "media pipeline error");
                    failure = Some(anyhow::anyhow!("media pipeline error in {path}: {}", err.error()));
                    break 'run;
                }
                _ => {}
            }
        }
    }
    source_stop.store(true, Ordering::Relaxed);
    // Let the source leave the call politely (Janus handles detached, the WHEP session
    // deleted): its thread lets go of the channel when done.
    let goodbye = Instant::now() + SOURCE_GOODBYE;
    while let Some(left) = goodbye.checked_duration_since(Instant::now()) {
        if let Err(mpsc::RecvTimeoutError::Disconnected) = rx.recv_timeout(left) {
            break;
        }
    }
    // Parts closed while the pipeline drained are on the bus still.
    let late: Vec<PartEvent> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| PartEvent::from_message(&m))
        .collect();
    shut_down(&pipeline);
    if let Some(recording) = &mut outputs.recording {
        for part in late {
            recording.on_part(part, true, uploader, id, emit)?;
        }
        match recording.no_media() {
            Some(error) if failure.is_none() && recording.joined_late => emit(EventBody::RecordingFailed {
                recording_type: COMPOSITE.into(),
                error,
            }),
            Some(reason) if failure.is_none() => failure = Some(anyhow::anyhow!(reason)),
            _ if failure.is_none() && recording.started && !recording.stopped_alone => {
                emit(EventBody::RecordingStopped {
                    recording_type: COMPOSITE.into(),
                })
            }
            _ => {}
        }
    }
    for push in &outputs.rtmp {
        if let Some(stopped) = push.stopped() {
            emit(stopped);
        }
    }
    if let Some(frames) = &mut outputs.frames {
        frames.publish(
            uploader,
            &call,
            graph.end_time(),
            None,
            id,
            emit,
            &mut outputs.warnings,
        )?;
    }
    if let Some(thumbnails) = &mut outputs.thumbnails {
        thumbnails.publish(uploader)?;
    }
    if let Some(transcription) = &mut outputs.transcription {
        transcription.finish(uploader, &call, id, job, emit)?;
    }
    if let Some(e) = failure {
        return Err(e.context(format!("what was written is kept in {}", spool.display())));
    }
    if let Some(hls) = &mut outputs.hls {
        hls.publish(uploader, &graph, emit, &mut outputs.warnings)?;
    }
    if let Some(recording) = &mut outputs.recording {
        recording.finish(uploader, id)?;
    }
    if !media_flowing {
        tracing::warn!(egress_id = %id.egress_id, "the job ended before any media was encoded");
    }
    Ok(Ended {
        hls_started: outputs
            .hls
            .as_ref()
            .is_some_and(|h| h.started && !h.stopped_alone),
        frames_started: outputs
            .frames
            .as_ref()
            .is_some_and(|f| f.started && !f.stopped_alone),
    })
}

impl Outputs {
    /// Whether any output still runs (none stopped alone and none failed for good).
    fn any_running(&self) -> bool {
        self.recording.as_ref().is_some_and(|r| !r.stopped_alone)
            || self.hls.as_ref().is_some_and(HlsOutput::running)
            || self.rtmp.iter().any(RtmpOutput::running)
            || self.frames.as_ref().is_some_and(|f| !f.stopped_alone)
            || self
                .transcription
                .as_ref()
                .is_some_and(TranscriptionOutput::running)
    }
}

/// Stops the pipeline. An element that hangs in its shutdown (a network sink, say) cannot hold
/// the job: after a while the pipeline is left behind and the files, finished at EOS, go on.
fn shut_down(pipeline: &gst::Pipeline) {
    let (done_tx, done_rx) = mpsc::channel();
    let stopping = pipeline.clone();
    let spawned = std::thread::Builder::new()
        .name("pipeline-stop".into())
        .spawn(move || {
            let _ = stopping.set_state(gst::State::Null);
            let _ = done_tx.send(());
        });
    if spawned.is_err() {
        let _ = pipeline.set_state(gst::State::Null);
        return;
    }
    if done_rx.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
        tracing::error!(
            timeout_s = SHUTDOWN_TIMEOUT.as_secs(),
            "the media pipeline did not stop in time; left behind"
        );
    }
}

/// Writes the pipeline as a Graphviz file, without stream keys.
fn write_graph(pipeline: &gst::Pipeline, path: &std::path::Path, job: &Job) {
    let dot = pipeline.debug_to_dot_data(gst::DebugGraphDetails::all());
    if let Err(e) = std::fs::write(path, redact(job, &dot)) {
        tracing::warn!(error = %e, path = %path.display(), "cannot write the pipeline graph");
    }
}

/// The call time of the media graph now: what its sources capture from now on is later.
fn call_time_now(graph: &Composite) -> Duration {
    let now = graph
        .pipeline()
        .current_running_time()
        .unwrap_or(gst::ClockTime::ZERO);
    Duration::from_nanos(now.nseconds())
}
