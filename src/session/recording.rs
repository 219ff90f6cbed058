//! The recording output of a session: names its parts, notes each one down in the spool as it
//! opens (so that a part left by a dead worker can still be stored), stores each one when it
//! closes and announces it.

use super::control::{Answer, Running, announced, given, or_empty};
use super::lifecycle::{OutputId, recording_step};
use super::output::{Live, OutputModule, SessionOutput};
use super::{Emit, JobIdentity, OutputKind};
use crate::events::{COMPOSITE, CallRecording, EventBody, INDIVIDUAL, PausedSpan, RAW, now_rfc3339};
use crate::job::{Job, RecordingConfig};
use crate::media::{Composite, PartEvent, RecordingControl, RecordingSpec, attach_recording};
use crate::storage::{self, OpenPart, Output, Uploader};
use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a closed part would not play, if it would not: its index, read back.
pub(super) fn playable(path: &Path) -> Result<(), String> {
    let summary = crate::media::inspect_mp4(path)?;
    summary.unplayable().map_or(Ok(()), Err)
}

pub struct RecordingOutput {
    prefix: Option<String>,
    /// Each open part: its key and its ready event, end time to come.
    opened: HashMap<PathBuf, OpenPart>,
    /// Parts closed while the job was ending, announced after `stopped`.
    closing: Vec<PathBuf>,
    /// Closed parts that hold media (stored or on their way).
    playable_parts: usize,
    /// Why each part that was left out would not have played.
    unplayable: Vec<String>,
    pub started: bool,
    control: RecordingControl,
    /// Every pause of the recording, wall clock; the last one open while paused.
    pauses: Vec<PausedSpan>,
    /// Stopped by the coordinator before the end of the call (its stopped event is out).
    pub stopped_alone: bool,
    /// Started during the call: announced started when its first part opens.
    announce_first_part: bool,
    /// The mix and size of its pictures (none for audio only).
    video: Option<(usize, crate::job::Quality)>,
    /// Started during the call (not by the job): a call that ends before its first part
    /// fails this recording alone, not the job.
    pub joined_late: bool,
}

impl RecordingOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        config: &RecordingConfig,
        mix: Option<usize>,
        spool: &Path,
    ) -> anyhow::Result<RecordingOutput> {
        // Fail early on a bad prefix rather than at the end of a long call.
        storage::object_key(job.storage.path.as_deref(), "x")?;
        let extension = if config.audio_only { "m4a" } else { "mp4" };
        let (call_type, call_id, quality) = (
            job.call_type().to_owned(),
            job.call_id().to_owned(),
            config.quality.name(),
        );
        let dir = spool.to_owned();
        let part_path = Arc::new(move |_index: u32| {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            dir.join(format!("rec_{call_type}_{call_id}_{quality}_{stamp}.{extension}"))
        });
        let control = attach_recording(
            graph,
            &RecordingSpec {
                video: mix.map(|m| (m, config.quality)),
                max_part: Duration::from_secs(u64::from(config.max_file_duration_s)),
                part_path,
            },
        )?;
        Ok(RecordingOutput {
            prefix: job.storage.path.clone(),
            opened: HashMap::new(),
            closing: Vec::new(),
            playable_parts: 0,
            unplayable: Vec::new(),
            started: false,
            control,
            pauses: Vec::new(),
            stopped_alone: false,
            announce_first_part: false,
            video: mix.map(|m| (m, config.quality)),
            joined_late: false,
        })
    }

    /// Announces the recording started when its first part opens, for one that starts after
    /// media flows (added or started again during the call).
    pub fn started_during_the_call(&mut self) {
        self.announce_first_part = true;
        self.joined_late = true;
    }

    /// The mix and size of its pictures (none for audio only).
    pub fn video(&self) -> Option<(usize, crate::job::Quality)> {
        self.video
    }

    /// Records again after a stop alone, with the same settings; the next part opens at the
    /// next keyframe and is announced started then. False when it was not stopped.
    pub fn restart(&mut self) -> bool {
        if !self.stopped_alone || !self.control.restart() {
            return false;
        }
        self.stopped_alone = false;
        self.started = false;
        self.started_during_the_call();
        true
    }

    /// Ends the recording while the call runs on; its parts are stored and announced as they
    /// close. The stopped event, unless it had ended already.
    pub fn stop_alone(&mut self) -> Option<EventBody> {
        if self.stopped_alone || !self.control.stop() {
            return None;
        }
        self.stopped_alone = true;
        if let Some(open) = self.pauses.last_mut().filter(|p| p.end_time.is_none()) {
            open.end_time = Some(now_rfc3339());
        }
        Some(EventBody::RecordingStopped {
            recording_type: COMPOSITE.into(),
        })
    }

    /// Pauses the recording; the event when it was running.
    pub fn pause(&mut self) -> Option<EventBody> {
        if !self.control.pause() {
            return None;
        }
        self.pauses.push(PausedSpan {
            start_time: now_rfc3339(),
            end_time: None,
        });
        Some(EventBody::RecordingPaused {
            recording_type: COMPOSITE.into(),
        })
    }

    /// Resumes the recording; the event when it was paused.
    pub fn resume(&mut self) -> Option<EventBody> {
        if !self.control.resume() {
            return None;
        }
        if let Some(open) = self.pauses.last_mut() {
            open.end_time = Some(now_rfc3339());
        }
        Some(EventBody::RecordingResumed {
            recording_type: COMPOSITE.into(),
        })
    }

    /// The pauses that overlap a part open from `start` to `end` (RFC 3339 times, which sort).
    fn pauses_within(&self, start: &str, end: &str) -> Vec<PausedSpan> {
        self.pauses
            .iter()
            .filter(|p| p.start_time.as_str() < end && p.end_time.as_deref().is_none_or(|e| e > start))
            .cloned()
            .collect()
    }

    /// Handles a part opening or closing; a closed part is stored and announced at once,
    /// unless the job is ending (then after `stopped`).
    fn handle_part(
        &mut self,
        part: PartEvent,
        first_frame: Option<String>,
        ending: bool,
        uploader: &mut Uploader,
        id: &JobIdentity,
        emit: Emit,
    ) -> anyhow::Result<()> {
        match part {
            PartEvent::Opened { path, starts_at } => {
                tracing::info!(file = %path.display(), ?starts_at, "recording part opened");
                let open = self.describe(&path, uploader, id, first_frame)?;
                uploader.spool().note_open_part(&path, &open)?;
                self.opened.insert(path, open);
                if std::mem::take(&mut self.announce_first_part) && !self.started {
                    self.started = true;
                    emit(EventBody::RecordingStarted {
                        recording_type: COMPOSITE.into(),
                        warnings: Vec::new(),
                    });
                }
            }
            PartEvent::Closed(path) => {
                tracing::info!(file = %path.display(), "recording part closed");
                if let Err(reason) = playable(&path) {
                    // Announcing it would hand a user a file that does not open.
                    tracing::error!(file = %path.display(), %reason, "recording part holds no playable media; left out");
                    uploader.spool().forget_open_part(&path);
                    self.opened.remove(&path);
                    let _ = std::fs::remove_file(&path);
                    self.unplayable.push(reason);
                } else if ending {
                    self.playable_parts += 1;
                    self.closing.push(path);
                } else {
                    self.playable_parts += 1;
                    self.store(&path, uploader, id)?;
                }
            }
        }
        Ok(())
    }

    /// Why the recording holds nothing to play, when no part of it does.
    fn no_media(&self) -> Option<String> {
        if self.playable_parts > 0 || (self.stopped_alone && self.unplayable.is_empty()) {
            return None;
        }
        Some(match self.unplayable.first() {
            Some(reason) => format!("the recording holds no playable media ({reason})"),
            None => "the call ended before any media was recorded".to_owned(),
        })
    }

    /// Stores the parts that closed as the job ended.
    fn finish(&mut self, uploader: &mut Uploader, id: &JobIdentity) -> anyhow::Result<()> {
        for path in std::mem::take(&mut self.closing) {
            self.store(&path, uploader, id)?;
        }
        Ok(())
    }

    /// The key and ready event of a part opening now.
    /// The part's event, starting at `start_time` (its first frame; now when not known).
    fn describe(
        &self,
        path: &Path,
        uploader: &Uploader,
        id: &JobIdentity,
        start_time: Option<String>,
    ) -> anyhow::Result<OpenPart> {
        let filename = path
            .file_name()
            .context("part without a file name")?
            .to_string_lossy()
            .to_string();
        let key = storage::object_key(self.prefix.as_deref(), &filename)?;
        let start_time = start_time.unwrap_or_else(now_rfc3339);
        let ready = EventBody::RecordingReady {
            recording_type: COMPOSITE.into(),
            call_recording: CallRecording {
                user_id: None,
                track: None,
                filename,
                url: uploader.url(&key),
                end_time: start_time.clone(),
                start_time,
                session_id: id.session_id.clone(),
                recording_type: COMPOSITE.into(),
                paused: Vec::new(),
            },
        };
        Ok(OpenPart { key, ready })
    }

    /// Hands a closed part to the uploader; it is announced once stored.
    fn store(&mut self, path: &Path, uploader: &mut Uploader, id: &JobIdentity) -> anyhow::Result<()> {
        let open = match self.opened.remove(path) {
            Some(open) => open,
            None => self.describe(path, uploader, id, None)?,
        };
        let ended = now_rfc3339();
        match crate::media::remove_padding(path, crate::media::PADDING_WORTH_REMOVING) {
            Ok(0) => {}
            Ok(bytes) => tracing::info!(bytes, "unused index room taken out of the part"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "the part keeps its unused index room"),
        }
        let mut ready = open.ended_at(ended);
        if let EventBody::RecordingReady { call_recording, .. } = &mut ready {
            call_recording.paused = self.pauses_within(&call_recording.start_time, &call_recording.end_time);
        }
        uploader.submit_file(Output::Recording, path, &open.key, Some(ready))?;
        uploader.spool().forget_open_part(path);
        Ok(())
    }
}

impl SessionOutput for RecordingOutput {
    fn output_id(&self) -> OutputId {
        OutputId::Recording
    }

    fn running(&self) -> bool {
        !self.stopped_alone
    }

    fn media_flowing(&mut self, live: &mut Live) {
        if !self.stopped_alone && !self.started {
            self.started = true;
            (live.emit)(EventBody::RecordingStarted {
                recording_type: COMPOSITE.into(),
                warnings: std::mem::take(live.warnings),
            });
        }
    }

    fn on_part(&mut self, part: &PartEvent, live: &mut Live) -> anyhow::Result<()> {
        let (PartEvent::Opened { path, .. } | PartEvent::Closed(path)) = part;
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("rec_"))
        {
            return Ok(());
        }
        let ending = live.ending();
        let first_frame = match part {
            PartEvent::Opened { starts_at, .. } => Some(live.wall_clock_of(*starts_at)),
            PartEvent::Closed(_) => None,
        };
        self.handle_part(
            part.clone(),
            first_frame,
            ending,
            live.uploader,
            live.id,
            live.emit,
        )
    }

    /// A recording with nothing to play fails: the job, or itself alone when it was started
    /// during the call.
    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        if live.job_failed {
            return Ok(());
        }
        match self.no_media() {
            Some(error) if self.joined_late => (live.emit)(EventBody::RecordingFailed {
                recording_type: COMPOSITE.into(),
                error,
            }),
            Some(reason) => anyhow::bail!(reason),
            None if self.started && !self.stopped_alone => (live.emit)(EventBody::RecordingStopped {
                recording_type: COMPOSITE.into(),
            }),
            None => {}
        }
        Ok(())
    }

    fn store_rest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.finish(live.uploader, live.id)
    }
}

/// The composite recording, as the session knows it.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::Recording],
    asked: |job| job.recording.iter().map(|_| OutputId::Recording).collect(),
    attach: |at| {
        let Some(config) = &at.job.recording else {
            return Ok(vec![]);
        };
        let recording = RecordingOutput::attach(at.graph, at.job, config, at.mixes.recording, at.spool)?;
        Ok(vec![Box::new(recording)])
    },
    start,
    stop: |running, _| {
        Ok(announced(
            running
                .outputs
                .one::<RecordingOutput>()
                .and_then(|r| r.stop_alone()),
            running.emit,
            "recording stopped; its last part is stored and announced",
            "the recording is not running",
        ))
    },
    pause: Some(|running, pause| {
        let recording = running.outputs.one::<RecordingOutput>();
        match pause {
            true => announced(
                recording.and_then(|r| r.pause()),
                running.emit,
                "recording paused",
                "the recording is not running (nothing to pause)",
            ),
            false => announced(
                recording.and_then(|r| r.resume()),
                running.emit,
                "recording resumed",
                "the recording is not paused",
            ),
        }
    }),
    step_of: |body| match recording_step(body)? {
        (RAW | INDIVIDUAL, _) => None,
        (_, step) => Some((OutputId::Recording, step)),
    },
    failed: |output, error| {
        (*output == OutputId::Recording).then(|| EventBody::RecordingFailed {
            recording_type: COMPOSITE.into(),
            error: error.to_owned(),
        })
    },
};

/// Starts the composite recording: the job's own again after a stop (same settings, a new
/// part), or one the job did not have, from the section (`{}` for the defaults). Its first part
/// opens at the next keyframe of the shared encoder and is announced started then.
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    let given = given(&section);
    let section = or_empty(section);
    const STARTING: &str = "call.recording_started follows when its part opens, at the next keyframe (asked of the encoder at once unless HLS keeps its interval)";
    if let Some(stopped_alone) = running.outputs.one::<RecordingOutput>().map(|r| r.stopped_alone) {
        if !stopped_alone {
            return Err("the recording is running already".into());
        }
        let asked = running
            .checked_section(OutputKind::Recording, &section)?
            .recording;
        let same = |a: &Option<RecordingConfig>| serde_json::to_value(a).ok();
        if given && same(&asked) != same(&running.job.recording) {
            return Err("the recording section: a recording of this job starts again with the settings it had; give no section, or the same".into());
        }
        let Some(recording) = running.outputs.one::<RecordingOutput>() else {
            return Err("the recording is not there".into());
        };
        if !recording.restart() {
            return Err("the recording cannot start again: the call is ending".into());
        }
        let video = recording.video();
        running.lifecycles.register(OutputId::Recording);
        if let Some((mix, quality)) = video {
            running.graph.ask_keyframe(mix, quality);
        }
        return Ok(format!("recording starting again; {STARTING}"));
    }
    let with_recording = running.checked_section(OutputKind::Recording, &section)?;
    let config = with_recording
        .recording
        .as_ref()
        .ok_or_else(|| "the recording section: expected an object".to_owned())?;
    let mix = match config.audio_only {
        true => None,
        false => {
            let layout = section.get("layout").map(|_| &config.layout);
            Some(running.call.mix_for(layout, config.quality)?)
        }
    };
    let spool = running.spool();
    let mut recording = RecordingOutput::attach(running.graph, &with_recording, config, mix, &spool)
        .map_err(|e| format!("the recording cannot start: {e:#}"))?;
    recording.started_during_the_call();
    if let Some(mix) = mix {
        running.graph.ask_keyframe(mix, config.quality);
    }
    running.outputs.add_of(&MODULE, recording);
    running.lifecycles.register(OutputId::Recording);
    Ok(format!("recording starting; {STARTING}"))
}
