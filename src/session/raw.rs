//! The raw recording of a session: every encoded track as it arrived, in a file of its own
//! (no decode, no encode), stored and announced as it closes (`recording_type: raw`), and at
//! the end the manifest of the call's timeline beside the files, from which the call can be
//! composited again.

use super::control::{Answer, Running, or_empty};
use super::frames::safe_segment;
use super::lifecycle::{OutputId, recording_step};
use super::output::{Live, OutputModule, SessionOutput};
use super::{OutputKind, call_time_now};
use crate::events::{CallRecording, EventBody, RAW};
use crate::job::Job;
use crate::job::{LayoutConfig, Quality};
use crate::manifest::{
    MANIFEST_VERSION, Manifest, ManifestFile, SizeChange, SpeakingChange, Stay, TimedUpdate,
};
use crate::media::{Composite, RawFileEvent, RawTap};
use crate::source::ParticipantInfo;
use crate::storage::{self, OpenPart, Output};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

pub struct RawRecordingOutput {
    dir: PathBuf,
    /// Storage key prefix: `PATH/raw/CALLTYPE_CALLID/SESSION`.
    prefix: String,
    happened: mpsc::Receiver<RawFileEvent>,
    files: BTreeMap<PathBuf, ManifestFile>,
    stays: Vec<Stay>,
    speaking: Vec<SpeakingChange>,
    updates: Vec<TimedUpdate>,
    /// The composite's layout and quality at the start, which a render takes by default.
    layout: LayoutConfig,
    quality: Quality,
    call_start: DateTime<Utc>,
    started: bool,
    failed_tracks: Vec<String>,
    /// The manifest as the call stands is rewritten in the spool as it changes, so that a
    /// worker that dies leaves one for `egress storage resume` beside its files.
    manifest_changed: bool,
    manifest_written: Option<std::time::Instant>,
    /// Which raw recording of the job this is: one started again after a stop is the second,
    /// with a folder and a manifest of its own.
    run: u32,
    /// Call time it started at (0 with the job).
    start: Duration,
    /// Stopped alone during the call: since when its files have been closing.
    stopping_since: Option<std::time::Instant>,
    /// Its files and manifest are stored and its end announced.
    done: bool,
}

/// How long the files of a raw recording stopped alone may take to close before its manifest
/// is stored without their ends.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the manifest in the spool is rewritten during the call when it changed,
/// and how often at least (its duration grows).
const MANIFEST_EVERY: Duration = Duration::from_secs(1);
const MANIFEST_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

impl RawRecordingOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        session_id: &str,
        spool: &Path,
        wake: &super::Waker,
        run: u32,
    ) -> anyhow::Result<RawRecordingOutput> {
        let (folder, session) = match run {
            1 => ("raw".to_owned(), safe_segment(session_id)),
            n => (format!("raw-{n}"), format!("{}_{n}", safe_segment(session_id))),
        };
        let dir = spool.join(folder);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let prefix = storage::object_key(
            job.storage.path.as_deref(),
            &format!(
                "raw/{}_{}/{session}",
                safe_segment(job.call_type()),
                safe_segment(job.call_id()),
            ),
        )?;
        let (tx, happened) = mpsc::channel();
        let tx = Mutex::new(tx);
        let wake = wake.clone();
        graph.record_raw(RawTap::new(
            dir.clone(),
            std::sync::Arc::new(move |event| {
                let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(event);
                wake();
            }),
        ));
        Ok(RawRecordingOutput {
            dir,
            prefix,
            happened,
            files: BTreeMap::new(),
            stays: Vec::new(),
            speaking: Vec::new(),
            updates: Vec::new(),
            layout: job
                .recording
                .as_ref()
                .map(|r| r.layout.clone())
                .unwrap_or_default(),
            quality: job.recording.as_ref().map(|r| r.quality).unwrap_or_default(),
            call_start: Utc::now(),
            started: false,
            failed_tracks: Vec::new(),
            manifest_changed: false,
            manifest_written: None,
            run,
            start: Duration::ZERO,
            stopping_since: None,
            done: false,
        })
    }

    /// Started during the call at call time `at`: the participants in the call are in it from now.
    pub fn starting_during_the_call(
        &mut self,
        present: &[ParticipantInfo],
        at: Duration,
        call_start: DateTime<Utc>,
    ) {
        self.call_start = call_start;
        self.start = at;
        for info in present {
            self.participant_joined(info, at);
        }
    }

    pub fn run(&self) -> u32 {
        self.run
    }

    /// Stopped alone, and everything stored and announced.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Stops it alone: the files close, then they and the manifest are stored and
    /// `call.recording_stopped` follows them. False when it is not running.
    pub fn stop_alone(&mut self, graph: &mut Composite) -> bool {
        if self.stopping_since.is_some() || self.done {
            return false;
        }
        graph.stop_raw();
        self.stopping_since = Some(std::time::Instant::now());
        true
    }

    /// Once the files of a recording stopped alone have closed (or took too long): stores the
    /// manifest and announces the end after every file.
    fn finish_alone(&mut self, live: &mut Live) -> anyhow::Result<()> {
        let Some(since) = self.stopping_since else {
            return Ok(());
        };
        let open = self.files.values().any(|f| f.end_offset_s.is_none());
        if self.done || (open && since.elapsed() < CLOSING_TIMEOUT) {
            return Ok(());
        }
        self.done = true;
        if !self.started {
            (live.emit)(EventBody::RecordingFailed {
                recording_type: RAW.into(),
                error: "stopped before any encoded track was recorded raw".into(),
            });
            return Ok(());
        }
        self.store_manifest(live)?;
        live.uploader.announce_after(
            Output::Raw,
            EventBody::RecordingStopped {
                recording_type: RAW.into(),
            },
        );
        Ok(())
    }

    fn wall(&self, at: Duration) -> String {
        (self.call_start + chrono::Duration::from_std(at).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn key(&self, filename: &str) -> String {
        format!("{}/{filename}", self.prefix)
    }

    /// Notes what the tracks' files did since the last call; a closed file is stored.
    fn take_in(&mut self, live: &mut Live) -> anyhow::Result<()> {
        for event in self.happened.try_iter().collect::<Vec<_>>() {
            match event {
                RawFileEvent::Opened {
                    input,
                    path,
                    codec,
                    at,
                } => {
                    let (user_id, track) = input.rsplit_once('/').unwrap_or((input.as_str(), ""));
                    let filename = file_name(&path);
                    tracing::info!(%input, file = %filename, %codec, "raw file opened");
                    let file = ManifestFile {
                        filename,
                        user_id: user_id.to_owned(),
                        track: track.to_owned(),
                        codec,
                        start_offset_s: at.as_secs_f64(),
                        end_offset_s: None,
                        sizes: Vec::new(),
                    };
                    let open = OpenPart {
                        key: self.key(&file.filename),
                        ready: self.ready(&file.filename, at, at, live),
                    };
                    live.uploader.spool().note_open_part(&path, &open)?;
                    self.files.insert(path.clone(), file);
                    self.manifest_changed = true;
                    if !self.started {
                        self.started = true;
                        (live.emit)(EventBody::RecordingStarted {
                            recording_type: RAW.into(),
                            warnings: std::mem::take(live.warnings),
                        });
                    }
                }
                RawFileEvent::Closed { path, at, .. } => {
                    let Some(file) = self.files.get_mut(&path) else {
                        // Never opened (no keyframe came): nothing was written.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    };
                    file.end_offset_s = Some(at.as_secs_f64().max(file.start_offset_s));
                    let file = file.clone();
                    self.manifest_changed = true;
                    let started = Duration::from_secs_f64(file.start_offset_s);
                    let ready = self.ready(&file.filename, started, at, live);
                    live.uploader
                        .submit_file(Output::Raw, &path, &self.key(&file.filename), Some(ready))
                        .with_context(|| format!("storing the raw file {} failed", file.filename))?;
                    live.uploader.spool().forget_open_part(&path);
                }
                RawFileEvent::Resized {
                    path,
                    at,
                    width,
                    height,
                } => {
                    if let Some(file) = self.files.get_mut(&path) {
                        file.sizes.push(SizeChange {
                            at_s: at.as_secs_f64(),
                            width,
                            height,
                        });
                        self.manifest_changed = true;
                    }
                }
                RawFileEvent::Refused { input, caps } => {
                    tracing::error!(%input, %caps, "track cannot be recorded raw");
                    let problem = format!("{input}: {caps} cannot be stored raw");
                    live.warnings.push(problem.clone());
                    self.failed_tracks.push(problem);
                }
            }
        }
        Ok(())
    }

    /// The ready event of one of its files, from call time `start` to `end`.
    fn ready(&self, filename: &str, start: Duration, end: Duration, live: &Live) -> EventBody {
        EventBody::RecordingReady {
            recording_type: RAW.into(),
            call_recording: CallRecording {
                user_id: None,
                track: None,
                filename: filename.to_owned(),
                url: live.uploader.url(&self.key(filename)),
                start_time: self.wall(start),
                end_time: self.wall(end),
                session_id: live.id.session_id.clone(),
                recording_type: RAW.into(),
                paused: Vec::new(),
            },
        }
    }

    /// Writes the manifest of the call so far (up to call time `end`) in the spool, atomically;
    /// the first time, notes it down as open, to be stored if the worker dies.
    fn write_manifest(&mut self, end: Duration, live: &mut Live) -> anyhow::Result<PathBuf> {
        let manifest = self.manifest(live, end.as_secs_f64());
        let path = self.dir.join("manifest.json");
        let partial = self.dir.join("manifest.json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(&manifest)?)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if self.manifest_written.is_none() {
            let open = OpenPart {
                key: self.key("manifest.json"),
                ready: self.ready("manifest.json", Duration::ZERO, end, live),
            };
            live.uploader.spool().note_open_part(&path, &open)?;
        }
        self.manifest_written = Some(std::time::Instant::now());
        self.manifest_changed = false;
        Ok(path)
    }

    /// Writes and stores the manifest, announced like the files.
    fn store_manifest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        // Stopped alone, the call goes on: the recording ends now.
        let end = live.graph.end_time().or(live.now).unwrap_or_default();
        let path = self.write_manifest(end, live)?;
        let ready = self.ready("manifest.json", Duration::ZERO, end, live);
        live.uploader
            .submit_file(Output::Raw, &path, &self.key("manifest.json"), Some(ready))
            .context("storing the raw recording's manifest failed")?;
        live.uploader.spool().forget_open_part(&path);
        Ok(())
    }

    fn manifest(&self, live: &Live, end: f64) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            call_cid: live.job.call_cid.clone(),
            egress_id: live.id.egress_id.clone(),
            session_id: live.id.session_id.clone(),
            call_started_at: self
                .call_start
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            start_s: self.start.as_secs_f64(),
            duration_s: Some(end),
            layout: self.layout.clone(),
            quality: self.quality,
            participants: self.stays.clone(),
            files: self.files.values().cloned().collect(),
            speaking: self.speaking.clone(),
            updates: self.updates.clone(),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

impl SessionOutput for RawRecordingOutput {
    fn output_id(&self) -> OutputId {
        OutputId::RawRecording
    }

    fn running(&self) -> bool {
        self.stopping_since.is_none() && !self.done
    }

    fn playing(&mut self, call_start: DateTime<Utc>) {
        self.call_start = call_start;
    }

    fn participant_joined(&mut self, info: &ParticipantInfo, at: Duration) {
        self.manifest_changed = true;
        self.stays.push(Stay {
            user_id: info.user_id.clone(),
            name: info.name.clone(),
            roles: info.roles.clone(),
            pinned: info.pinned,
            joined_at_s: at.as_secs_f64(),
            left_at_s: None,
        });
    }

    fn participant_left(&mut self, user_id: &str, at: Duration) {
        if let Some(stay) = self
            .stays
            .iter_mut()
            .rev()
            .find(|s| s.user_id == user_id && s.left_at_s.is_none())
        {
            self.manifest_changed = true;
            stay.left_at_s = Some(at.as_secs_f64());
        }
    }

    fn speaking_changed(&mut self, speaking: Vec<String>, dominant: Option<String>, at: Duration) {
        self.manifest_changed = true;
        self.speaking.push(SpeakingChange {
            at_s: at.as_secs_f64(),
            speaking,
            dominant,
        });
    }

    fn updated(&mut self, update: &super::JobUpdate, at: Duration) {
        self.manifest_changed = true;
        self.updates.push(TimedUpdate {
            at_s: at.as_secs_f64(),
            update: update.clone(),
        });
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.take_in(live)?;
        self.finish_alone(live)?;
        if self.done {
            return Ok(());
        }
        let since = self.manifest_written.map(|at| at.elapsed());
        let due = match since {
            None => true,
            Some(since) => {
                (self.manifest_changed && since >= MANIFEST_EVERY) || since >= MANIFEST_AT_LEAST_EVERY
            }
        };
        if let (true, true, Some(now)) = (self.started, due, live.now) {
            self.write_manifest(now, live)?;
        }
        Ok(())
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.take_in(live)?;
        if live.job_failed || self.done {
            return Ok(());
        }
        if !self.started {
            let why = match self.failed_tracks.first() {
                Some(problem) => format!("no track could be recorded raw ({problem})"),
                None => "the call ended before any encoded track was recorded raw".to_owned(),
            };
            (live.emit)(EventBody::RecordingFailed {
                recording_type: RAW.into(),
                error: why,
            });
            return Ok(());
        }
        (live.emit)(EventBody::RecordingStopped {
            recording_type: RAW.into(),
        });
        Ok(())
    }

    fn store_rest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        if self.started && !self.done {
            self.store_manifest(live)?;
        }
        Ok(())
    }
}

/// The raw recording, as the session knows it.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::RawRecording],
    asked: |job| job.raw_recording.iter().map(|_| OutputId::RawRecording).collect(),
    attach: |at| match at.job.raw_recording {
        Some(_) => Ok(vec![Box::new(RawRecordingOutput::attach(
            at.graph,
            at.job,
            &at.id.session_id,
            at.spool,
            at.waker,
            1,
        )?)]),
        None => Ok(vec![]),
    },
    start,
    stop: |running, _| {
        let graph = &mut *running.graph;
        Ok(match running.outputs.one::<RawRecordingOutput>().is_some_and(|r| r.stop_alone(graph)) {
            true => Ok("raw recording stopping; its files and manifest are stored and announced, then call.recording_stopped (raw)".into()),
            false => Err("the raw recording is not running".into()),
        })
    },
    pause: None,
    step_of: |body| match recording_step(body)? {
        (RAW, step) => Some((OutputId::RawRecording, step)),
        _ => None,
    },
    failed: |output, error| {
        (*output == OutputId::RawRecording).then(|| EventBody::RecordingFailed {
            recording_type: RAW.into(),
            error: error.to_owned(),
        })
    },
};

/// Starts a raw recording during the call: every encoded track in the call gets a file from its
/// next keyframe (asked of its sender), and tracks added later too. One started again after a
/// stop is a new raw recording beside the first (`SESSION_2`, its own manifest).
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    let run = match running.outputs.one::<RawRecordingOutput>() {
        Some(raw) if raw.running() => return Err("the raw recording is running already".into()),
        Some(raw) if !raw.finished() => {
            return Err("the raw recording is still closing its files; start it again once call.recording_stopped (raw) is announced".into());
        }
        Some(raw) => raw.run() + 1,
        None => 1,
    };
    running.checked_section(OutputKind::RawRecording, &or_empty(section))?;
    let spool = running.spool();
    let mut raw = RawRecordingOutput::attach(
        running.graph,
        running.job,
        &running.id.session_id,
        &spool,
        running.waker,
        run,
    )
    .map_err(|e| format!("the raw recording cannot start: {e:#}"))?;
    let at = call_time_now(running.graph);
    let call_start = chrono::Utc::now() - chrono::Duration::from_std(at).unwrap_or_default();
    raw.starting_during_the_call(&running.call.participants(), at, call_start);
    // A stopped one has stored and announced everything; this one takes its place.
    running.outputs.remove_where::<RawRecordingOutput>(|_| true);
    running.outputs.add_of(&MODULE, raw);
    running.lifecycles.register(OutputId::RawRecording);
    Ok("raw recording starting; call.recording_started (raw) follows when the first file opens".into())
}
