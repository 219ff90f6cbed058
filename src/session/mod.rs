//! One job from start to finish: joins the source, drives the media graph, publishes the
//! outputs and announces every step.

mod call;
mod control;
mod frames;
mod hls;
mod individual;
mod lifecycle;
mod output;
mod raw;
mod recording;
pub mod render;
mod rtmp;
mod rtmp_failure;
mod thumbnails;
mod transcription;

use crate::events::{COMPOSITE, Event, EventBody, EventSink};
use crate::job::{Job, SourceConfig, ValidatedJob};
use crate::media::{self, Composite, GraphNotice, PartEvent};
use crate::source::{
    CallClock, JanusSource, Source, SourceEvent, Subscriptions, SyntheticSource, WhepSource,
};
use crate::storage::{JobSpool, RetryPolicy, Uploader};
use anyhow::Context;
use call::{LayoutAssets, LiveCall, MixPlan, plan_mixes};
use gst::prelude::*;
use gstreamer as gst;
use lifecycle::{Lifecycles, OutputId};
use output::{Claim, Live, Outputs};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the muxers may take to finalize after the stream ends.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long stopping the pipeline may take before it is left behind.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped source may take to leave the call.
const SOURCE_GOODBYE: Duration = Duration::from_secs(3);
/// How often the session looks at its timers (the stop flag, the duration limits, idle
/// outputs, pushes to retry) when nothing wakes it.
const TICK: Duration = Duration::from_millis(100);
/// How often the cameras are checked for frames that stopped.
const MEDIA_CHECK: Duration = Duration::from_millis(250);

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
    /// Every frame of encoded video is decoded, even where keyframes alone would do (frame
    /// recording) or nobody sees it (video the mixes hide).
    pub decode_every_frame: bool,
    /// How long and how often files are retried before they go to `backup_dir`.
    pub retry: RetryPolicy,
    /// Where files the store would not take are kept, per egress id.
    pub backup_dir: PathBuf,
    /// Updates, pauses and resumes for the running job, when someone may send them.
    pub updates: Option<std::sync::Mutex<Inbox>>,
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
#[value(rename_all = "snake_case")]
pub enum OutputKind {
    Recording,
    Hls,
    Rtmp,
    FrameRecording,
    Transcription,
    ClosedCaptions,
    Thumbnails,
    IndividualRecording,
    RawRecording,
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
            OutputKind::IndividualRecording => "individual_recording",
            OutputKind::RawRecording => "raw_recording",
        }
    }
}

/// An output stopped alone (`egress stop EGRESS_ID --output KIND[:NAME]`), written as
/// `egress start` names it; `rtmp` stops every push, `rtmp:NAME` one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoppableOutput {
    pub kind: OutputKind,
    /// The push, for `rtmp:NAME`; `None`: every output of the kind.
    pub name: Option<String>,
}

impl StoppableOutput {
    /// Every output of `kind`.
    pub fn all(kind: OutputKind) -> Self {
        StoppableOutput { kind, name: None }
    }

    /// One push, by its name.
    pub fn push(name: &str) -> Self {
        StoppableOutput {
            kind: OutputKind::Rtmp,
            name: Some(name.to_owned()),
        }
    }
}

/// What `StoppableOutput` accepts, for its error.
fn stoppable() -> String {
    let kinds: Vec<&str> = <OutputKind as clap::ValueEnum>::value_variants()
        .iter()
        .filter(|&&k| k != OutputKind::Rtmp)
        .map(|k| k.name())
        .collect();
    format!("{}, rtmp or rtmp:NAME", kinds.join(", "))
}

impl std::str::FromStr for StoppableOutput {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refused = || format!("expected {}; got {text:?}", stoppable());
        let (kind, name) = match text.split_once(':') {
            None => (text, None),
            Some(("rtmp", name)) if !name.is_empty() => ("rtmp", Some(name.to_owned())),
            Some(_) => return Err(refused()),
        };
        let kind = <OutputKind as clap::ValueEnum>::from_str(kind, false).map_err(|_| refused())?;
        Ok(StoppableOutput { kind, name })
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
        match output.name {
            None => output.kind.name().into(),
            Some(name) => format!("{}:{name}", output.kind.name()),
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
    let lifecycles = Lifecycles::new(&redacting);
    for output in asked_outputs(job) {
        lifecycles.register(output);
    }
    let events: &dyn EventSink = &lifecycles;
    let losses = lifecycles.losses();
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
                &losses,
                options.retry,
                &options.backup_dir,
            );
            uploader.describe_call(job.call.clone());
            let result = match &job.source {
                SourceConfig::Render(source) => {
                    render::run_job(job, source, &id, options, warnings, &emit, &mut uploader)
                }
                _ => execute(
                    job,
                    &id,
                    options,
                    warnings,
                    &emit,
                    stop,
                    &mut uploader,
                    &lifecycles,
                ),
            };
            lost = uploader.finish(result.is_ok());
            result
        })
    });
    match result {
        Ok(ended) => {
            // Stopped once every file of the output is stored; an output that lost files to
            // the backup folder has announced its failure instead (and the lifecycle leaves a
            // second end out).
            for stopped in ended.stopped_once_stored {
                emit(stopped);
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
            lifecycles.fail_unfinished(&job.call_cid, &id.egress_id, &error, &|event| {
                event.with_call_details(job.call.as_ref())
            });
            Err(e)
        }
    }
}

/// The outputs a job asks for from its start: each must end with an event.
fn asked_outputs(job: &Job) -> Vec<OutputId> {
    output::MODULES.iter().flat_map(|m| (m.asked)(job)).collect()
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
    stopped_once_stored: Vec<EventBody>,
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
        || job.raw_recording.is_some()
        || job.individual_recording.is_some()
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

#[allow(clippy::too_many_arguments)]
fn execute(
    job: &Job,
    id: &JobIdentity,
    options: &RunOptions,
    warnings: Vec<String>,
    emit: Emit,
    stop: Arc<AtomicBool>,
    uploader: &mut Uploader,
    lifecycles: &Lifecycles,
) -> anyhow::Result<Ended> {
    let mut own_inbox = None;
    let mut given_inbox = options
        .updates
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
    let inbox: &Inbox = match given_inbox.as_deref_mut() {
        Some(inbox) => inbox,
        None => own_inbox.insert(inbox().1),
    };
    let waker = inbox.waker();
    let mut warnings = warnings;
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
        SourceConfig::Render(_) => anyhow::bail!("a render job replays a recording; it joins no call"),
    };
    let assets = LayoutAssets::load(&mixes, &options.media_dir);
    let specs: Vec<_> = mixes.iter().map(|m| m.spec()).collect();
    let mut graph = Composite::build(&specs)?;
    graph.set_input_latency(source.input_latency());
    graph.skip_hidden_decodes(!options.decode_every_frame && source.answers_key_unit_requests());
    let mut outputs = Outputs::default();
    let mut attaching = output::Attaching {
        graph: &mut graph,
        job,
        id,
        mixes: &assignment,
        spool: &spool,
        waker: &waker,
        whisper_model: &options.whisper_model,
        keyframes_on_request: !options.decode_every_frame && source.answers_key_unit_requests(),
    };
    for (index, module) in output::MODULES.iter().enumerate() {
        for attached in (module.attach)(&mut attaching)? {
            outputs.add(index, attached);
        }
    }
    let mut call = LiveCall::new(mixes, assets);
    call.relayout(&graph, None)?;

    let pipeline = graph.pipeline().clone();
    let bus = pipeline.bus().context("pipeline without bus")?;
    // The bus posts into the session's channel as messages arrive, from the media threads.
    let _bus_handler = BusForwarding::start(&bus, inbox.tx.clone());
    pipeline
        .set_state(gst::State::Playing)
        .context("the media pipeline did not start")?;
    let playing_since = Instant::now();
    let call_start = chrono::Utc::now();
    for output in outputs.each() {
        output.playing(call_start);
    }

    let source_stop = Arc::new(AtomicBool::new(false));
    let running = pipeline.clone();
    let clock: CallClock = Arc::new(move || {
        running
            .current_running_time()
            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()))
    });
    let source_events = forward_source_events(inbox.tx.clone())?;
    source.start(clock.clone(), source_events, source_stop.clone())?;

    let max_duration = match job.limits.max_duration_seconds {
        None | Some(0) => Duration::from_secs(u64::MAX / 4),
        Some(seconds) => Duration::from_secs(u64::from(seconds)),
    };
    let mut finishing: Option<Instant> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut media_flowing = false;
    let mut media_checked = playing_since;
    let mut next_tick = playing_since + TICK;
    let mut source_gone = false;
    // Since when no output has run (each stopped alone), for `limits.idle_output_timeout_s`.
    let mut idle_since: Option<Instant> = None;
    let idle_timeout = Duration::from_secs(u64::from(job.limits.idle_output_timeout_s()));
    // What the outputs may use of the session, made anew for each use.
    macro_rules! live {
        () => {
            Live {
                graph: &mut graph,
                call: &call,
                uploader: &mut *uploader,
                id,
                job,
                emit,
                warnings: &mut warnings,
                now: Some(clock()),
                ending_since: finishing,
                job_failed: false,
            }
        };
    }
    // Begins the end of the job once: the outputs end their streams, then the graph.
    macro_rules! end {
        ($reason:expr, $at:expr) => {
            if finishing.is_none() {
                tracing::info!(egress_id = %id.egress_id, reason = $reason, "stopping");
                finishing = Some(Instant::now());
                let mut live = live!();
                for output in outputs.each() {
                    output.job_ending(&mut live);
                }
                graph.finish($at);
            }
        };
    }
    let mut woken: std::collections::VecDeque<Wake> = std::collections::VecDeque::new();
    let mut graph_changed = false;
    'run: loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        if let Ok(wake) = inbox.rx.recv_timeout(wait) {
            woken.push_back(wake);
        }
        woken.extend(inbox.rx.try_iter());
        graph.reap_departed();
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            if stop.load(Ordering::Relaxed) {
                end!("stop requested", None);
            } else if playing_since.elapsed() >= max_duration {
                end!("maximum duration reached", None);
            }
            if finishing.is_none() && media_checked.elapsed() >= MEDIA_CHECK {
                media_checked = Instant::now();
                call.watch_media(&graph)?;
            }
            if finishing.is_none() && !outputs.each().any(|o| o.running()) {
                let idle = *idle_since.get_or_insert_with(Instant::now);
                if idle.elapsed() >= idle_timeout {
                    end!("every output stopped and none started", None);
                }
            } else {
                idle_since = None;
            }
            if let Some(since) = finishing
                && since.elapsed() > FINALIZE_TIMEOUT
            {
                failure.get_or_insert_with(|| {
                    anyhow::anyhow!("the outputs did not finalize within {FINALIZE_TIMEOUT:?}")
                });
                break 'run;
            }
        }
        while let Some(wake) = woken.pop_front() {
            match wake {
                Wake::Source(_) if finishing.is_some() => {}
                Wake::Source(event) => {
                    let ended_at = match &event {
                        SourceEvent::Ended { at } => *at,
                        _ => None,
                    };
                    match &event {
                        SourceEvent::Joined(info) => {
                            let now = clock();
                            for output in outputs.each() {
                                output.participant_joined(info, now);
                            }
                        }
                        SourceEvent::Left { user_id, at } => {
                            let at = at.unwrap_or_else(|| clock());
                            for output in outputs.each() {
                                output.participant_left(user_id, at);
                            }
                        }
                        _ => {}
                    }
                    match call.apply(event, &mut graph) {
                        Ok(true) => {}
                        Ok(false) => end!("call ended", ended_at),
                        Err(e) => {
                            failure = Some(e);
                            end!("source failed", None);
                        }
                    }
                }
                Wake::SourceGone => source_gone = true,
                Wake::OutputReady => {}
                Wake::Control(request) if finishing.is_some() => {
                    request.answer(Err("the job is ending".into()))
                }
                Wake::Control(request) => {
                    let starts = matches!(request.control, JobControl::Start { .. });
                    let mut running = control::Running {
                        graph: &mut graph,
                        call: &mut call,
                        outputs: &mut outputs,
                        uploader: &mut *uploader,
                        lifecycles,
                        warnings: &mut warnings,
                        waker: &waker,
                        whisper_model: &options.whisper_model,
                        job,
                        id,
                        media_dir: &options.media_dir,
                        emit,
                    };
                    let answer = control::apply_control(request.control, &mut running)?;
                    match &answer {
                        Ok(done) => tracing::info!(egress_id = %id.egress_id, %done, "control applied"),
                        Err(refused) => {
                            tracing::warn!(egress_id = %id.egress_id, %refused, "control refused")
                        }
                    }
                    graph_changed |= starts && answer.is_ok();
                    if let Some(reply) = request.reply {
                        reply(answer);
                    }
                }
                Wake::Bus(message) => {
                    if let Some((input, level_db)) = graph.audio_level(&message) {
                        let user_id = input.split('/').next().unwrap_or_default().to_owned();
                        if finishing.is_none() {
                            let now = clock();
                            if let Some((speaking, dominant)) = call.hear(&user_id, level_db, now, &graph)? {
                                for output in outputs.each() {
                                    output.speaking_changed(speaking.clone(), dominant.clone(), now);
                                }
                            }
                        }
                        continue;
                    }
                    if let Some(part) = PartEvent::from_message(&message) {
                        let mut live = live!();
                        for output in outputs.each() {
                            output.on_part(&part, &mut live)?;
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
                        let mut live = live!();
                        for output in outputs.each() {
                            output.media_flowing(&mut live);
                        }
                        continue;
                    }
                    let mut claimed = false;
                    {
                        let mut live = live!();
                        for output in outputs.each() {
                            if let Claim::Handled = output.on_message(&message, &mut live)? {
                                claimed = true;
                                break;
                            }
                        }
                    }
                    if claimed {
                        continue;
                    }
                    match message.view() {
                        gst::MessageView::Eos(_) => break 'run,
                        gst::MessageView::Error(err) => {
                            let text = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
                            let path = err.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                            tracing::error!(element = %path, details = %redact(job, &text), "media pipeline error");
                            failure =
                                Some(anyhow::anyhow!("media pipeline error in {path}: {}", err.error()));
                            break 'run;
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut live = live!();
        for output in outputs.each() {
            output.tick(&mut live)?;
        }
        // The graph again once an output started during the call has joined it (a push joins
        // on its first tick).
        if std::mem::take(&mut graph_changed)
            && let Some(path) = &options.dot_file
        {
            write_graph(&pipeline, path, job);
        }
    }
    source_stop.store(true, Ordering::Relaxed);
    // Let the source leave the call politely (Janus handles detached, the WHEP session
    // deleted); parts closed while the pipeline drained come in meanwhile.
    let mut late_parts = Vec::new();
    let mut sort_late = |wake: Wake, source_gone: &mut bool| match wake {
        Wake::SourceGone => *source_gone = true,
        Wake::Bus(message) => late_parts.extend(PartEvent::from_message(&message)),
        Wake::Control(request) => request.answer(Err("the job has ended".into())),
        Wake::Source(_) | Wake::OutputReady => {}
    };
    for wake in woken.drain(..) {
        sort_late(wake, &mut source_gone);
    }
    let goodbye = Instant::now() + SOURCE_GOODBYE;
    while !source_gone && let Some(left) = goodbye.checked_duration_since(Instant::now()) {
        match inbox.rx.recv_timeout(left) {
            Ok(wake) => sort_late(wake, &mut source_gone),
            Err(_) => break,
        }
    }
    shut_down(&pipeline);
    drop(_bus_handler);
    for wake in inbox.rx.try_iter() {
        sort_late(wake, &mut source_gone);
    }
    let mut live = Live {
        now: None,
        ending_since: Some(finishing.unwrap_or_else(Instant::now)),
        job_failed: failure.is_some(),
        ..live!()
    };
    for part in &late_parts {
        for output in outputs.each() {
            output.on_part(part, &mut live)?;
        }
    }
    // Every output winds up, whichever fails: what each made is announced and stored.
    for output in outputs.each() {
        if let Err(e) = output.wind_up(&mut live) {
            tracing::error!(output = %output.output_id(), error = %format!("{e:#}"), "output failed as the job ended");
            failure.get_or_insert(e);
            live.job_failed = true;
        }
    }
    if let Some(e) = failure {
        return Err(e.context(format!("what was written is kept in {}", spool.display())));
    }
    for output in outputs.each() {
        output.store_rest(&mut live)?;
    }
    if !media_flowing {
        tracing::warn!(egress_id = %id.egress_id, "the job ended before any media was encoded");
    }
    Ok(Ended {
        stopped_once_stored: outputs.each().filter_map(|o| o.stopped_once_stored()).collect(),
    })
}

/// What wakes a running job: everything it acts on comes through one channel.
pub enum Wake {
    Source(SourceEvent),
    /// The source's thread has let go of the call.
    SourceGone,
    Bus(gst::Message),
    Control(ControlRequest),
    /// A helper thread of an output has something for it (a still written, words heard).
    OutputReady,
}

/// The channel of a job's wakes. A worker keeps the `ControlSender` to pass control messages;
/// the session takes the rest.
pub struct Inbox {
    tx: mpsc::Sender<Wake>,
    rx: mpsc::Receiver<Wake>,
}

/// Passes control messages to a running job.
#[derive(Clone)]
pub struct ControlSender(mpsc::Sender<Wake>);

impl ControlSender {
    /// The request back when the job is gone.
    pub fn send(&self, request: ControlRequest) -> Result<(), ControlRequest> {
        self.0.send(Wake::Control(request)).map_err(|e| match e.0 {
            Wake::Control(request) => request,
            _ => unreachable!("only control messages are sent here"),
        })
    }
}

/// A new channel for a job's wakes.
pub fn inbox() -> (ControlSender, Inbox) {
    let (tx, rx) = mpsc::channel();
    (ControlSender(tx.clone()), Inbox { tx, rx })
}

impl Inbox {
    /// Lets a helper thread of an output wake the session.
    fn waker(&self) -> Waker {
        let tx = self.tx.clone();
        Arc::new(move || {
            let _ = tx.send(Wake::OutputReady);
        })
    }
}

/// Wakes the session from another thread, for an output that has something for it.
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

impl ControlRequest {
    /// Answers the sender, when one waits.
    fn answer(self, answer: Result<String, String>) {
        if let Some(reply) = self.reply {
            reply(answer);
        }
    }
}

/// Forwards the pipeline's bus into the session's channel while it lives.
struct BusForwarding(gst::Bus);

impl BusForwarding {
    fn start(bus: &gst::Bus, tx: mpsc::Sender<Wake>) -> BusForwarding {
        // Messages posted while the graph was built.
        while let Some(message) = bus.pop() {
            let _ = tx.send(Wake::Bus(message));
        }
        bus.set_sync_handler(move |_, message| {
            let _ = tx.send(Wake::Bus(message.clone()));
            gst::BusSyncReply::Drop
        });
        BusForwarding(bus.clone())
    }
}

impl Drop for BusForwarding {
    fn drop(&mut self) {
        self.0.unset_sync_handler();
    }
}

/// The sender a source reports on; its events reach the session's channel, and `SourceGone`
/// once the source has let go of it.
fn forward_source_events(tx: mpsc::Sender<Wake>) -> anyhow::Result<mpsc::Sender<SourceEvent>> {
    let (source_tx, source_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("source-events".into())
        .spawn(move || {
            for event in source_rx {
                if tx.send(Wake::Source(event)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Wake::SourceGone);
        })
        .context("cannot start the thread that passes the source's events on")?;
    Ok(source_tx)
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
    // The secrets of outputs started during the call are registered, not in the job.
    let dot = crate::redact::redact_registered(&redact(job, &dot));
    if let Err(e) = std::fs::write(path, dot) {
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
