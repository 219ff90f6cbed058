//! The individual recording of a session: an MP4 per participant and stay (their camera and
//! microphone; their screen share in a file of its own), each part noted down in the spool as it
//! opens, stored as it closes and announced with `recording_type: individual`, the participant's
//! `user_id` and the track.

use super::OutputKind;
use super::control::{Answer, Running, announced, or_empty};
use super::frames::safe_segment;
use super::lifecycle::{OutputId, recording_step};
use super::output::{Live, OutputModule, SessionOutput};
use super::recording::playable;
use crate::events::{CallRecording, EventBody, INDIVIDUAL, now_rfc3339};
use crate::job::{IndividualRecordingConfig, Job};
use crate::media::{Composite, IndividualTap, PartEvent, StageKey};
use crate::storage::{self, OpenPart, Output, Uploader};
use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a participant's camera is off (the layout engine's placeholder colour).
const PLACEHOLDER_RGB: u32 = 0x1f1f1f;

/// The file name prefix of individual parts: the composite recording's are `rec_`.
const PART_PREFIX: &str = "ind_";

pub struct IndividualRecordingOutput {
    prefix: Option<String>,
    /// Whose each part is, from its path (set when the graph names the part).
    owners: Arc<Mutex<HashMap<PathBuf, StageKey>>>,
    opened: HashMap<PathBuf, OpenPart>,
    /// Parts closed while the job was ending, stored after `stopped`.
    closing: Vec<PathBuf>,
    playable_parts: usize,
    unplayable: Vec<String>,
    started: bool,
    /// Stopped by the coordinator before the end of the call (its stopped event is out).
    stopped_alone: bool,
    /// What it asks of the graph, to start again after a stop.
    tap: IndividualTap,
}

impl IndividualRecordingOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        config: &IndividualRecordingConfig,
        spool: &Path,
    ) -> anyhow::Result<IndividualRecordingOutput> {
        storage::object_key(job.storage.path.as_deref(), "x")?;
        let owners: Arc<Mutex<HashMap<PathBuf, StageKey>>> = Arc::default();
        let named = owners.clone();
        let (call_type, call_id, dir) = (
            safe_segment(job.call_type()),
            safe_segment(job.call_id()),
            spool.to_owned(),
        );
        let extension = if config.audio_only { "m4a" } else { "mp4" };
        let part_path = Arc::new(move |key: &StageKey, stay: u32, index: u32| {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let path = dir.join(format!(
                "{PART_PREFIX}{call_type}_{call_id}_{}_{}_{}_{}_{stamp}.{extension}",
                safe_segment(&key.user_id),
                key.track.label(),
                stay + 1,
                index + 1,
            ));
            lock(&named).insert(path.clone(), key.clone());
            path
        });
        let tap = IndividualTap {
            quality: config.quality,
            audio_only: config.audio_only,
            max_part: Duration::from_secs(u64::from(config.max_file_duration_s)),
            placeholder_rgb: PLACEHOLDER_RGB,
            part_path,
        };
        graph.record_individually(tap.clone())?;
        Ok(IndividualRecordingOutput {
            prefix: job.storage.path.clone(),
            owners,
            opened: HashMap::new(),
            closing: Vec::new(),
            playable_parts: 0,
            unplayable: Vec::new(),
            started: false,
            stopped_alone: false,
            tap,
        })
    }

    /// Ends every participant's file now while the call runs on; their last parts are stored
    /// and announced as they close. The stopped event, unless it had stopped already.
    pub fn stop_alone(&mut self, graph: &mut Composite) -> Option<EventBody> {
        if self.stopped_alone {
            return None;
        }
        self.stopped_alone = true;
        graph.stop_individually();
        self.started.then(|| EventBody::RecordingStopped {
            recording_type: INDIVIDUAL.into(),
        })
    }

    /// Records again after a stop alone, with the same settings: a new file per participant,
    /// announced started when the first opens.
    pub fn restart(&mut self, graph: &mut Composite) -> anyhow::Result<()> {
        graph.record_individually(self.tap.clone())?;
        self.stopped_alone = false;
        self.started = false;
        Ok(())
    }

    /// The key and ready event of a part opening now.
    /// The part's event, starting at `start_time` (its first frame; now when not known).
    fn describe(
        &self,
        path: &Path,
        uploader: &Uploader,
        session_id: &str,
        start_time: Option<String>,
    ) -> anyhow::Result<OpenPart> {
        let filename = path
            .file_name()
            .context("part without a file name")?
            .to_string_lossy()
            .to_string();
        let owner = lock(&self.owners).get(path).cloned();
        let key = storage::object_key(self.prefix.as_deref(), &filename)?;
        let start_time = start_time.unwrap_or_else(now_rfc3339);
        Ok(OpenPart {
            key: key.clone(),
            ready: EventBody::RecordingReady {
                recording_type: INDIVIDUAL.into(),
                call_recording: CallRecording {
                    filename,
                    url: uploader.url(&key),
                    end_time: start_time.clone(),
                    start_time,
                    session_id: session_id.to_owned(),
                    recording_type: INDIVIDUAL.into(),
                    user_id: owner.as_ref().map(|k| k.user_id.clone()),
                    track: owner.map(|k| k.track.label().to_owned()),
                    paused: Vec::new(),
                },
            },
        })
    }

    fn store(&mut self, path: &Path, uploader: &mut Uploader, session_id: &str) -> anyhow::Result<()> {
        let open = match self.opened.remove(path) {
            Some(open) => open,
            None => self.describe(path, uploader, session_id, None)?,
        };
        if let Err(e) = crate::media::remove_padding(path, crate::media::PADDING_WORTH_REMOVING) {
            tracing::warn!(error = %format!("{e:#}"), "the part keeps its unused index room");
        }
        uploader.submit_file(
            Output::Individual,
            path,
            &open.key,
            Some(open.ended_at(now_rfc3339())),
        )?;
        uploader.spool().forget_open_part(path);
        lock(&self.owners).remove(path);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_mine(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(PART_PREFIX))
}

impl SessionOutput for IndividualRecordingOutput {
    fn output_id(&self) -> OutputId {
        OutputId::IndividualRecording
    }

    fn running(&self) -> bool {
        !self.stopped_alone
    }

    fn on_part(&mut self, part: &PartEvent, live: &mut Live) -> anyhow::Result<()> {
        match part {
            PartEvent::Opened { path, starts_at } if is_mine(path) => {
                tracing::info!(file = %path.display(), "individual part opened");
                let first_frame = Some(live.wall_clock_of(*starts_at));
                let open = self.describe(path, live.uploader, &live.id.session_id, first_frame)?;
                live.uploader.spool().note_open_part(path, &open)?;
                self.opened.insert(path.clone(), open);
                if !self.started {
                    self.started = true;
                    (live.emit)(EventBody::RecordingStarted {
                        recording_type: INDIVIDUAL.into(),
                        warnings: std::mem::take(live.warnings),
                    });
                }
            }
            PartEvent::Closed(path) if is_mine(path) => {
                tracing::info!(file = %path.display(), "individual part closed");
                if let Err(reason) = playable(path) {
                    tracing::error!(file = %path.display(), %reason, "individual part holds no playable media; left out");
                    live.uploader.spool().forget_open_part(path);
                    self.opened.remove(path);
                    let _ = std::fs::remove_file(path);
                    self.unplayable.push(reason);
                } else if live.ending() {
                    self.playable_parts += 1;
                    self.closing.push(path.clone());
                } else {
                    self.playable_parts += 1;
                    self.store(path, live.uploader, &live.id.session_id)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        if live.job_failed || self.stopped_alone {
            return Ok(());
        }
        if self.playable_parts == 0 {
            let error = match self.unplayable.first() {
                Some(reason) => format!("no individual file holds playable media ({reason})"),
                None => "the call ended before any participant was recorded".to_owned(),
            };
            (live.emit)(EventBody::RecordingFailed {
                recording_type: INDIVIDUAL.into(),
                error,
            });
            return Ok(());
        }
        (live.emit)(EventBody::RecordingStopped {
            recording_type: INDIVIDUAL.into(),
        });
        Ok(())
    }

    fn store_rest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        for path in std::mem::take(&mut self.closing) {
            self.store(&path, live.uploader, &live.id.session_id)?;
        }
        Ok(())
    }
}

/// The individual recording, as the session knows it.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::IndividualRecording],
    asked: |job| {
        job.individual_recording
            .iter()
            .map(|_| OutputId::IndividualRecording)
            .collect()
    },
    attach: |at| {
        let Some(config) = &at.job.individual_recording else {
            return Ok(vec![]);
        };
        let individual = IndividualRecordingOutput::attach(at.graph, at.job, config, at.spool)?;
        Ok(vec![Box::new(individual)])
    },
    start,
    stop: |running, _| {
        let graph = &mut *running.graph;
        Ok(announced(
            running
                .outputs
                .one::<IndividualRecordingOutput>()
                .and_then(|i| i.stop_alone(graph)),
            running.emit,
            "individual recording stopped; each participant's last part is stored and announced",
            "the individual recording is not running",
        ))
    },
    pause: None,
    step_of: |body| match recording_step(body)? {
        (INDIVIDUAL, step) => Some((OutputId::IndividualRecording, step)),
        _ => None,
    },
    failed: |output, error| {
        (*output == OutputId::IndividualRecording).then(|| EventBody::RecordingFailed {
            recording_type: INDIVIDUAL.into(),
            error: error.to_owned(),
        })
    },
};

/// Starts the individual recording during the call: every participant whose tracks are in the
/// call gets a file from now on, and those who join later too. One stopped during the call
/// starts again with the settings it had.
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    const STARTING: &str = "call.recording_started (individual) follows when the first file opens";
    let graph = &mut *running.graph;
    if let Some(individual) = running.outputs.one::<IndividualRecordingOutput>() {
        if individual.running() {
            return Err("the individual recording is running already".into());
        }
        individual
            .restart(graph)
            .map_err(|e| format!("the individual recording cannot start again: {e:#}"))?;
        running.lifecycles.register(OutputId::IndividualRecording);
        return Ok(format!("individual recording starting again; {STARTING}"));
    }
    let with_individual = running.checked_section(OutputKind::IndividualRecording, &or_empty(section))?;
    let config = with_individual
        .individual_recording
        .as_ref()
        .ok_or_else(|| "the individual_recording section: expected an object".to_owned())?;
    // Pictures come from the tracks the composite decodes; without one, none is decoded.
    if !config.audio_only && running.graph.mix_count() == 0 {
        return Err("the individual recording cannot start with video: this job decodes no video (it has no composite output); ask for audio_only".into());
    }
    let spool = running.spool();
    let individual = IndividualRecordingOutput::attach(running.graph, &with_individual, config, &spool)
        .map_err(|e| format!("the individual recording cannot start: {e:#}"))?;
    running.outputs.add_of(&MODULE, individual);
    running.lifecycles.register(OutputId::IndividualRecording);
    Ok(format!("individual recording starting; {STARTING}"))
}
