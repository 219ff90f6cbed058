//! Transcription of a session: every participant's audio is cut into utterances by voice
//! activity and transcribed by a pool of model threads; each finished utterance with words
//! becomes a live caption event and a line of the transcript, which is written to the spool as
//! the call goes and stored once at the end (JSONL, with WebVTT and SRT beside it).

use super::call::LiveCall;
use super::control::{Answer, Running, announced, given, or_empty};
use super::lifecycle::{OutputId, Step};
use super::output::{Live, OutputModule, SessionOutput};
use super::{Emit, JobIdentity, OutputKind, call_time_now, takes_sound};
use crate::events::{CallClosedCaption, CallTranscription, EventBody, UserObject};
use crate::job::{Job, TranscriptionConfig};
use crate::media::{Composite, SpeechTap};
use crate::storage::{self, Output, Uploader};
use crate::transcribe::{
    Heard, Outcome, Segmenter, SegmenterConfig, SpeechModel, TranscriberPool, Utterance,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `service` of every caption: the speech model, run by the worker itself.
const CAPTION_SERVICE: &str = "whisper";

type Feed = SyncSender<(String, Utterance, Instant)>;

/// One line of the transcript, in call time.
struct Line {
    start: Duration,
    end: Duration,
    speaker: String,
    text: String,
}

/// The call time left out of the transcript and captions (`egress pause --output transcription`).
#[derive(Debug, Default)]
struct Omissions {
    /// Paused since this call time.
    since: Option<Duration>,
    /// Earlier pauses, from and to.
    spans: Vec<(Duration, Duration)>,
}

impl Omissions {
    fn omits(&self, at: Duration) -> bool {
        self.since.is_some_and(|since| at >= since)
            || self.spans.iter().any(|&(from, to)| at >= from && at < to)
    }
}

pub struct TranscriptionOutput {
    omissions: Arc<Mutex<Omissions>>,
    segmenters: Arc<Mutex<HashMap<String, Segmenter>>>,
    /// Shared with the speech tap; emptied at the end, so the model threads can finish.
    feed: Arc<Mutex<Option<Feed>>>,
    pool: Option<TranscriberPool>,
    results: mpsc::Receiver<Outcome>,
    lines: Vec<Line>,
    /// The transcript as written so far, in the order captions finished.
    journal: Option<std::fs::File>,
    dir: PathBuf,
    prefix: String,
    /// Wall-clock time of call time zero.
    pub call_start: DateTime<Utc>,
    pub started: bool,
    /// Caption latencies (end of speech to event), for the log.
    latencies: Vec<Duration>,
    /// The transcript and the captions that still run (`egress stop --output` ends each).
    transcript_on: bool,
    captions_on: bool,
    /// The transcript stopped alone: what was said before this call time goes in, once the
    /// utterances handed over until the stop (this many) are transcribed.
    transcript_cut: Option<(Duration, u64)>,
    /// The transcript was stopped alone: it does not start again (its file is stored).
    transcript_stopped: bool,
    /// Utterances handed to the model threads, and outcomes received.
    handed: Arc<AtomicU64>,
    received: u64,
}

impl TranscriptionOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        config: &TranscriptionConfig,
        spool: &Path,
        model_path: &Path,
        wake: &super::Waker,
    ) -> anyhow::Result<TranscriptionOutput> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // One model thread per two cores, each computing with two: a 2-core machine runs one
        // utterance at a time, on both cores, between the media threads.
        let workers = (cores / 2).max(1);
        let model = SpeechModel::load(model_path, (cores / workers).max(1))?;
        let language = (config.language != "auto").then(|| config.language.clone());
        if language.as_deref().is_some_and(|l| l != "en") && !model.is_multilingual() {
            anyhow::bail!(
                "transcription.language {}: the model {} knows English only",
                config.language,
                model_path.display()
            );
        }
        if config.translates() && !model.is_multilingual() {
            anyhow::bail!(
                "transcription.translation: the model {} knows English only; translating needs a multilingual model",
                model_path.display()
            );
        }
        let (results_tx, results) = mpsc::channel();
        let pool = TranscriberPool::start(
            Arc::new(model),
            language,
            config.translates(),
            workers,
            results_tx,
            wake.clone(),
        )?;
        let feed = pool.sender().context("the transcription pool has no queue")?;
        let dir = spool.join("transcripts");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let journal = std::fs::File::create(dir.join("journal.jsonl")).ok();
        let segments = SegmenterConfig {
            max_speech: Duration::from_millis(u64::from(config.speech_segment_config.max_speech_caption_ms)),
            silence: Duration::from_millis(u64::from(config.speech_segment_config.silence_duration_ms)),
        };
        let segmenters: Arc<Mutex<HashMap<String, Segmenter>>> = Arc::default();
        let handler_segmenters = segmenters.clone();
        let feed = Arc::new(Mutex::new(Some(feed)));
        let handler_feed = feed.clone();
        let omissions: Arc<Mutex<Omissions>> = Arc::default();
        let handler_omissions = omissions.clone();
        let handed: Arc<AtomicU64> = Arc::default();
        let handler_handed = handed.clone();
        graph.tap_speech(SpeechTap {
            handler: Arc::new(move |input: &str, at: Duration, samples: &[f32]| {
                let omitted = handler_omissions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .omits(at);
                let utterances = {
                    let mut all = handler_segmenters.lock().unwrap_or_else(|e| e.into_inner());
                    let segmenter = all
                        .entry(input.to_owned())
                        .or_insert_with(|| Segmenter::new(segments));
                    // Paused: what was said up to the pause is captioned, nothing after it.
                    match samples.is_empty() || omitted {
                        true => segmenter.finish().into_iter().collect(),
                        false => segmenter.push(at, samples),
                    }
                };
                let feed = handler_feed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(feed) = feed.as_ref() {
                    for utterance in utterances {
                        hand_over(feed, input, utterance, &handler_handed);
                    }
                }
            }),
        })?;
        let prefix = storage::object_key(job.storage.path.as_deref(), "transcripts")?;
        Ok(TranscriptionOutput {
            omissions,
            segmenters,
            feed,
            pool: Some(pool),
            results,
            lines: Vec::new(),
            journal,
            dir,
            prefix,
            call_start: Utc::now(),
            started: false,
            latencies: Vec::new(),
            transcript_on: config.transcript,
            captions_on: config.closed_captions,
            transcript_cut: None,
            transcript_stopped: false,
            handed,
            received: 0,
        })
    }

    /// Adds the transcript to a running transcription (captions only so far), from now on;
    /// the started event, or why not.
    pub fn start_transcript(&mut self) -> Result<Option<EventBody>, String> {
        if self.transcript_on {
            return Err("the transcription is running already".into());
        }
        if self.transcript_cut.is_some() || self.transcript_stopped {
            return Err("the transcript of this job was stopped and stored; it does not start again".into());
        }
        self.listening()?;
        self.transcript_on = true;
        Ok(self.started.then_some(EventBody::TranscriptionStarted {}))
    }

    /// Adds the closed captions to a running transcription, from now on; the started event,
    /// or why not.
    pub fn start_captions(&mut self) -> Result<Option<EventBody>, String> {
        if self.captions_on {
            return Err("the closed captions are running already".into());
        }
        self.listening()?;
        self.captions_on = true;
        Ok(self.started.then_some(EventBody::ClosedCaptionsStarted {}))
    }

    /// Whether speech is still handed to the model (neither part has ended both).
    fn listening(&self) -> Result<(), String> {
        match self.feed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            true => Ok(()),
            false => Err(
                "the transcript and the captions of this job have both been stopped; the transcription does not start again"
                    .into(),
            ),
        }
    }

    /// Ends the closed captions while the call runs on; the stopped event when they ran.
    pub fn stop_captions(&mut self) -> Option<EventBody> {
        if !self.captions_on {
            return None;
        }
        self.captions_on = false;
        self.stop_listening_when_done();
        Some(EventBody::ClosedCaptionsStopped {})
    }

    /// Ends the transcript at call time `at` while the call runs on: what is being said is
    /// closed off and transcribed, then the transcript is stored and announced (`publish`).
    /// False when it had ended already.
    pub fn stop_transcript(&mut self, at: Duration) -> bool {
        if !self.transcript_on {
            return false;
        }
        self.transcript_on = false;
        self.transcript_stopped = true;
        let open: Vec<(String, Utterance)> = {
            let mut all = self.segmenters.lock().unwrap_or_else(|e| e.into_inner());
            all.iter_mut()
                .filter_map(|(input, s)| s.finish().map(|u| (input.clone(), u)))
                .collect()
        };
        if let Some(feed) = self.feed.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            for (input, utterance) in open {
                hand_over(feed, &input, utterance, &self.handed);
            }
        }
        self.transcript_cut = Some((at, self.handed.load(Ordering::Relaxed)));
        self.stop_listening_when_done();
        true
    }

    /// With neither the transcript nor the captions running, nothing more is handed over.
    fn stop_listening_when_done(&mut self) {
        if !self.transcript_on && !self.captions_on {
            self.feed.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Whether the transcript or the captions still run.
    pub fn running(&self) -> bool {
        self.transcript_on || self.captions_on
    }

    /// Stores the transcript stopped alone once everything said before the stop is in.
    fn store_stopped_transcript(
        &mut self,
        uploader: &mut Uploader,
        id: &JobIdentity,
        job: &Job,
        emit: Emit,
    ) -> anyhow::Result<()> {
        let Some((cut, handed)) = self.transcript_cut else {
            return Ok(());
        };
        if self.received < handed {
            return Ok(());
        }
        self.transcript_cut = None;
        self.lines.retain(|line| line.start < cut);
        if self.started {
            self.store(uploader, id, job)?;
        }
        emit(EventBody::TranscriptionStopped {});
        Ok(())
    }

    pub fn start(&mut self, emit: Emit) {
        if self.started {
            return;
        }
        self.started = true;
        if self.transcript_on {
            emit(EventBody::TranscriptionStarted {});
        }
        if self.captions_on {
            emit(EventBody::ClosedCaptionsStarted {});
        }
    }

    /// Leaves what is said from call time `at` out of the transcript and captions; the event
    /// when it was not paused.
    pub fn pause(&mut self, at: Duration) -> Option<EventBody> {
        let mut omissions = self.omissions.lock().unwrap_or_else(|e| e.into_inner());
        if omissions.since.is_some() {
            return None;
        }
        omissions.since = Some(at);
        Some(EventBody::TranscriptionPaused {})
    }

    /// Takes in what is said from call time `at` again; the event when it was paused.
    pub fn resume(&mut self, at: Duration) -> Option<EventBody> {
        let mut omissions = self.omissions.lock().unwrap_or_else(|e| e.into_inner());
        let since = omissions.since.take()?;
        omissions.spans.push((since, at.max(since)));
        Some(EventBody::TranscriptionResumed {})
    }

    /// Turns what the model has heard since the last call into captions and transcript lines.
    fn publish(&mut self, call: &LiveCall, emit: Emit) {
        let outcomes: Vec<Outcome> = self.results.try_iter().collect();
        self.received += outcomes.len() as u64;
        for outcome in outcomes {
            match outcome {
                Ok(heard) => self.caption(heard, call, emit),
                Err(failed) => {
                    tracing::warn!(speaker = %failed.speaker, error = %failed.error, "an utterance was not transcribed")
                }
            }
        }
    }

    fn caption(&mut self, heard: Heard, call: &LiveCall, emit: Emit) {
        if heard.text.is_empty() {
            return;
        }
        let speaker = heard.speaker.split('/').next().unwrap_or_default().to_owned();
        let line = Line {
            start: heard.utterance_start,
            end: heard.utterance_end,
            speaker: speaker.clone(),
            text: heard.text,
        };
        let spoken_end = self.wall_clock(line.end);
        let latency = (Utc::now() - spoken_end).to_std().unwrap_or_default();
        self.latencies.push(latency);
        tracing::info!(
            speaker = %speaker,
            latency_ms = latency.as_millis() as u64,
            queued_ms = heard.queued_at.elapsed().as_millis() as u64,
            "caption"
        );
        if self.captions_on {
            let user = call
                .participant(&speaker)
                .map_or_else(|| UserObject::unknown(&speaker), UserObject::of);
            let caption = |text: &str, language: &str, translated: bool| CallClosedCaption {
                id: format!("cc_{}", uuid::Uuid::new_v4().simple()),
                start_time: rfc3339(self.wall_clock(line.start)),
                end_time: rfc3339(spoken_end),
                speaker_id: speaker.clone(),
                text: text.to_owned(),
                language: language.to_owned(),
                translated,
                user: user.clone(),
                service: CAPTION_SERVICE.to_owned(),
            };
            emit(EventBody::ClosedCaption {
                closed_caption: caption(&line.text, &heard.language, false),
            });
            if let Some(english) = &heard.translation {
                emit(EventBody::ClosedCaption {
                    closed_caption: caption(english, "en", true),
                });
            }
        }
        if !self.transcript_on && self.transcript_cut.is_none() {
            return;
        }
        let text = self.jsonl(&line);
        if let Some(journal) = &mut self.journal {
            let _ = writeln!(journal, "{text}");
        }
        self.lines.push(line);
    }

    /// Ends the transcription: open utterances are closed and transcribed, the transcript files
    /// are written and handed to the uploader; the stopped events follow.
    fn finish(
        &mut self,
        uploader: &mut Uploader,
        call: &LiveCall,
        id: &JobIdentity,
        job: &Job,
        emit: Emit,
        job_failed: bool,
    ) -> anyhow::Result<()> {
        let open: Vec<(String, Utterance)> = {
            let mut all = self.segmenters.lock().unwrap_or_else(|e| e.into_inner());
            all.iter_mut()
                .filter_map(|(input, s)| s.finish().map(|u| (input.clone(), u)))
                .collect()
        };
        let feed = self.feed.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(feed) = feed {
            for (input, utterance) in open {
                if feed.send((input, utterance, Instant::now())).is_ok() {
                    self.handed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // With every sender gone, the model threads end once the queue is empty.
        if let Some(pool) = self.pool.take() {
            pool.drain();
        }
        self.publish(call, emit);
        self.log_latencies();
        // Everything handed over is in: a transcript stopped alone is stored as it was cut.
        self.received = self.received.max(self.handed.load(Ordering::Relaxed));
        self.store_stopped_transcript(uploader, id, job, emit)?;
        // A job that failed keeps what was said, but its outputs are announced failed; with
        // nothing said there is nothing to keep.
        if self.transcript_on && self.started && !(job_failed && self.lines.is_empty()) {
            self.store(uploader, id, job)?;
            if !job_failed {
                emit(EventBody::TranscriptionStopped {});
            }
        }
        if self.captions_on && self.started && !job_failed {
            emit(EventBody::ClosedCaptionsStopped {});
        }
        Ok(())
    }

    fn store(&mut self, uploader: &mut Uploader, id: &JobIdentity, job: &Job) -> anyhow::Result<()> {
        self.lines.sort_by_key(|l| (l.start, l.end));
        let start = self
            .lines
            .first()
            .map_or(self.call_start, |l| self.wall_clock(l.start));
        let end = self
            .lines
            .last()
            .map_or(self.call_start, |l| self.wall_clock(l.end));
        let stem = format!(
            "transcript_{}_{}_{}",
            safe(job.call_type()),
            safe(job.call_id()),
            self.call_start.format("%Y%m%dT%H%M%SZ")
        );
        let jsonl: String = self
            .lines
            .iter()
            .map(|l| format!("{}\n", self.jsonl(l)))
            .collect();
        let files = [
            (format!("{stem}.jsonl"), jsonl),
            (format!("{stem}.vtt"), webvtt(&self.lines)),
            (format!("{stem}.srt"), srt(&self.lines)),
        ];
        for (i, (name, text)) in files.iter().enumerate() {
            let path = self.dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            let key = format!("{}/{name}", self.prefix);
            // The JSONL is the transcript the event announces; the others come along.
            let ready = (i == 0).then(|| EventBody::TranscriptionReady {
                call_transcription: CallTranscription {
                    filename: name.clone(),
                    url: uploader.url(&key),
                    start_time: rfc3339(start),
                    end_time: rfc3339(end),
                    session_id: id.session_id.clone(),
                },
            });
            uploader.submit_file(Output::Transcript, &path, &key, ready)?;
        }
        let _ = std::fs::remove_file(self.dir.join("journal.jsonl"));
        Ok(())
    }

    fn wall_clock(&self, at: Duration) -> DateTime<Utc> {
        self.call_start + chrono::Duration::from_std(at).unwrap_or_default()
    }

    fn jsonl(&self, line: &Line) -> String {
        json!({
            "type": "speech",
            "start_time": rfc3339(self.wall_clock(line.start)),
            "stop_time": rfc3339(self.wall_clock(line.end)),
            "speaker_id": line.speaker,
            "text": line.text,
        })
        .to_string()
    }

    fn log_latencies(&self) {
        if self.latencies.is_empty() {
            return;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_millis() as u64;
        tracing::info!(
            captions = sorted.len(),
            median_ms = at(0.5),
            p95_ms = at(0.95),
            "caption latency from end of speech"
        );
    }
}

/// Hands an utterance to the model threads without ever blocking the streaming thread: when
/// the queue is full, the utterance is dropped and the log says so.
fn hand_over(feed: &Feed, input: &str, utterance: Utterance, handed: &AtomicU64) {
    match feed.try_send((input.to_owned(), utterance, Instant::now())) {
        Ok(()) => {
            handed.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Full((_, u, _))) => tracing::warn!(
            input,
            seconds = (u.end - u.start).as_secs_f32(),
            "transcription is behind; an utterance was dropped"
        ),
        Err(TrySendError::Disconnected(_)) => {}
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `HH:MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SRT), from call time.
fn timestamp(at: Duration, separator: char) -> String {
    let ms = at.as_millis();
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn webvtt(lines: &[Line]) -> String {
    let mut out = String::from("WEBVTT\n");
    for line in lines {
        out.push_str(&format!(
            "\n{} --> {}\n<v {}>{}\n",
            timestamp(line.start, '.'),
            timestamp(line.end, '.'),
            line.speaker,
            line.text
        ));
    }
    out
}

fn srt(lines: &[Line]) -> String {
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}: {}\n\n",
            n + 1,
            timestamp(line.start, ','),
            timestamp(line.end, ','),
            line.speaker,
            line.text
        ));
    }
    out
}

impl SessionOutput for TranscriptionOutput {
    fn output_id(&self) -> OutputId {
        OutputId::Transcription
    }

    fn running(&self) -> bool {
        TranscriptionOutput::running(self)
    }

    fn playing(&mut self, call_start: DateTime<Utc>) {
        self.call_start = call_start;
    }

    fn media_flowing(&mut self, live: &mut Live) {
        self.start(live.emit);
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.publish(live.call, live.emit);
        self.store_stopped_transcript(live.uploader, live.id, live.job, live.emit)
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.finish(
            live.uploader,
            live.call,
            live.id,
            live.job,
            live.emit,
            live.job_failed,
        )
    }
}

/// The transcription, as the session knows it: one output for the transcript and the closed
/// captions, each with a lifecycle of its own.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::Transcription, OutputKind::ClosedCaptions],
    asked: |job| {
        let Some(config) = &job.transcription else {
            return vec![];
        };
        let mut asked = vec![];
        if config.transcript {
            asked.push(OutputId::Transcription);
        }
        if config.closed_captions {
            asked.push(OutputId::ClosedCaptions);
        }
        asked
    },
    attach: |at| {
        let Some(config) = &at.job.transcription else {
            return Ok(vec![]);
        };
        let transcription =
            TranscriptionOutput::attach(at.graph, at.job, config, at.spool, at.whisper_model, at.waker)
                .context("transcription cannot start")?;
        Ok(vec![Box::new(transcription)])
    },
    start,
    stop: |running, which| {
        let at = call_time_now(running.graph);
        let transcription = running.outputs.one::<TranscriptionOutput>();
        Ok(match which.kind {
            OutputKind::ClosedCaptions => announced(
                transcription.and_then(|t| t.stop_captions()),
                running.emit,
                "closed captions stopped",
                "the closed captions are not running",
            ),
            _ => match transcription.is_some_and(|t| t.stop_transcript(at)) {
                true => Ok("transcription stopping; the transcript is stored and announced once what was said is transcribed".into()),
                false => Err("the transcription is not running".into()),
            },
        })
    },
    pause: Some(|running, pause| {
        let at = call_time_now(running.graph);
        let transcription = running.outputs.one::<TranscriptionOutput>();
        match pause {
            true => announced(
                transcription.and_then(|t| t.pause(at)),
                running.emit,
                "transcription paused",
                "the transcription is not running (nothing to pause)",
            ),
            false => announced(
                transcription.and_then(|t| t.resume(at)),
                running.emit,
                "transcription resumed",
                "the transcription is not paused",
            ),
        }
    }),
    step_of: |body| {
        use EventBody as E;
        Some(match body {
            E::TranscriptionStarted {} => (OutputId::Transcription, Step::Start),
            E::TranscriptionPaused {} => (OutputId::Transcription, Step::Pause),
            E::TranscriptionResumed {} => (OutputId::Transcription, Step::Resume),
            E::TranscriptionStopped {} => (OutputId::Transcription, Step::Stop),
            E::TranscriptionFailed { .. } => (OutputId::Transcription, Step::Fail),
            E::ClosedCaptionsStarted {} => (OutputId::ClosedCaptions, Step::Start),
            E::ClosedCaptionsStopped {} => (OutputId::ClosedCaptions, Step::Stop),
            E::ClosedCaptionsFailed { .. } => (OutputId::ClosedCaptions, Step::Fail),
            _ => return None,
        })
    },
    failed: |output, error| {
        let error = error.to_owned();
        match output {
            OutputId::Transcription => Some(EventBody::TranscriptionFailed { error }),
            OutputId::ClosedCaptions => Some(EventBody::ClosedCaptionsFailed { error }),
            _ => None,
        }
    },
};

/// Starts the transcript or the closed captions during the call: added to the transcription
/// that runs (from now on), or a transcription the job did not have, from the section (the
/// job's `transcription` shape; for `closed_captions`, captions without a transcript unless
/// the section asks for one). Speech from now on is heard; nothing said before.
fn start(running: &mut Running, output: OutputKind, section: serde_json::Value) -> Answer {
    let captions = output == OutputKind::ClosedCaptions;
    let given = given(&section);
    if let Some(transcription) = running.outputs.one::<TranscriptionOutput>() {
        if given {
            return Err(format!(
                "the {} section: the transcription runs with the settings it started with; give no section",
                output.name()
            ));
        }
        let (started, id) = match captions {
            true => (transcription.start_captions()?, OutputId::ClosedCaptions),
            false => (transcription.start_transcript()?, OutputId::Transcription),
        };
        running.lifecycles.register(id);
        if let Some(started) = started {
            (running.emit)(started);
        }
        return Ok(format!(
            "{} started; what is said from now on is in it",
            output.name()
        ));
    }
    if !takes_sound(running.job) {
        return Err(format!(
            "the {} cannot start: this job takes no sound from the call",
            output.name()
        ));
    }
    let mut section = or_empty(section);
    if captions && let Some(fields) = section.as_object_mut() {
        fields.insert("closed_captions".into(), serde_json::Value::Bool(true));
        fields
            .entry("transcript")
            .or_insert(serde_json::Value::Bool(false));
    }
    let with_transcription = running.checked_section(OutputKind::Transcription, &section)?;
    let config = with_transcription
        .transcription
        .as_ref()
        .ok_or_else(|| "the transcription section: expected an object".to_owned())?;
    if !config.transcript && !config.closed_captions {
        return Err(
            "the transcription section: transcript and closed_captions are both false; nothing to start"
                .into(),
        );
    }
    let spool = running.spool();
    let mut transcription = TranscriptionOutput::attach(
        running.graph,
        &with_transcription,
        config,
        &spool,
        running.whisper_model,
        running.waker,
    )
    .map_err(|e| format!("the transcription cannot start: {e:#}"))?;
    transcription.playing(running.call_start());
    if config.transcript {
        running.lifecycles.register(OutputId::Transcription);
    }
    if config.closed_captions {
        running.lifecycles.register(OutputId::ClosedCaptions);
    }
    transcription.start(running.emit);
    running.outputs.add_of(&MODULE, transcription);
    Ok(format!(
        "{} started; what is said from now on is in it",
        output.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<Line> {
        vec![
            Line {
                start: Duration::from_millis(1_200),
                end: Duration::from_millis(3_450),
                speaker: "alice".into(),
                text: "Hello there.".into(),
            },
            Line {
                start: Duration::from_millis(3_723_004),
                end: Duration::from_millis(3_725_000),
                speaker: "bob".into(),
                text: "Hi.".into(),
            },
        ]
    }

    #[test]
    fn a_pause_omits_from_its_start_until_the_resume() {
        let mut omissions = Omissions::default();
        let s = Duration::from_secs;
        assert!(!omissions.omits(s(5)));
        omissions.since = Some(s(5));
        assert!(omissions.omits(s(5)) && omissions.omits(s(60)) && !omissions.omits(s(4)));
        omissions.spans.push((s(5), s(9)));
        omissions.since = None;
        assert!(omissions.omits(s(8)) && !omissions.omits(s(9)) && !omissions.omits(s(4)));
    }

    #[test]
    fn subtitles_use_call_time() {
        assert_eq!(
            webvtt(&lines()),
            "WEBVTT\n\n00:00:01.200 --> 00:00:03.450\n<v alice>Hello there.\n\n01:02:03.004 --> 01:02:05.000\n<v bob>Hi.\n"
        );
        assert_eq!(
            srt(&lines()),
            "1\n00:00:01,200 --> 00:00:03,450\nalice: Hello there.\n\n2\n01:02:03,004 --> 01:02:05,000\nbob: Hi.\n\n"
        );
    }
}
