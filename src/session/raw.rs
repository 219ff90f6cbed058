//! The raw recording of a session: every encoded track as it arrived, in a file of its own
//! (no decode, no encode), stored and announced as it closes (`recording_type: raw`), and at
//! the end the manifest of the call's timeline beside the files, from which the call can be
//! composited again.

use super::frames::safe_segment;
use super::lifecycle::OutputId;
use super::output::{Live, SessionOutput};
use crate::events::{CallRecording, EventBody, RAW};
use crate::job::Job;
use crate::media::{Composite, RawFileEvent, RawTap};
use crate::storage::{self, Output};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// The manifest's format; readers refuse what they do not know.
pub const MANIFEST_VERSION: u32 = 1;

/// The timeline of a raw recording (`…/manifest.json`). Times are seconds of call time: from
/// the moment the worker's media graph started (`call_started_at` on the wall clock).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub version: u32,
    pub call_cid: String,
    pub egress_id: String,
    pub session_id: String,
    pub call_started_at: String,
    pub participants: Vec<Stay>,
    pub files: Vec<ManifestFile>,
}

/// One stay of a participant in the call (a return is a stay of its own).
#[derive(Debug, Clone, Serialize)]
pub struct Stay {
    pub user_id: String,
    pub joined_at_s: f64,
    /// Absent while still in the call when the recording ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_at_s: Option<f64>,
}

/// One raw file.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestFile {
    pub filename: String,
    pub user_id: String,
    /// `camera`, `microphone`, `screenshare` or `screenshare_audio`.
    pub track: String,
    /// `vp8`, `vp9`, `h264` or `opus`.
    pub codec: String,
    /// Call time of the file's first sample.
    pub start_offset_s: f64,
    /// Call time of its last sample; absent when it did not close (the worker stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_offset_s: Option<f64>,
}

pub struct RawRecordingOutput {
    dir: PathBuf,
    /// Storage key prefix: `PATH/raw/CALLTYPE_CALLID/SESSION`.
    prefix: String,
    happened: mpsc::Receiver<RawFileEvent>,
    files: BTreeMap<PathBuf, ManifestFile>,
    stays: Vec<Stay>,
    call_start: DateTime<Utc>,
    started: bool,
    failed_tracks: Vec<String>,
}

impl RawRecordingOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        session_id: &str,
        spool: &Path,
        wake: &super::Waker,
    ) -> anyhow::Result<RawRecordingOutput> {
        let dir = spool.join("raw");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let prefix = storage::object_key(
            job.storage.path.as_deref(),
            &format!(
                "raw/{}_{}/{}",
                safe_segment(job.call_type()),
                safe_segment(job.call_id()),
                safe_segment(session_id)
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
            call_start: Utc::now(),
            started: false,
            failed_tracks: Vec::new(),
        })
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
                    self.files.insert(
                        path.clone(),
                        ManifestFile {
                            filename,
                            user_id: user_id.to_owned(),
                            track: track.to_owned(),
                            codec,
                            start_offset_s: at.as_secs_f64(),
                            end_offset_s: None,
                        },
                    );
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
                    let ready = EventBody::RecordingReady {
                        recording_type: RAW.into(),
                        call_recording: CallRecording {
                            user_id: None,
                            track: None,
                            filename: file.filename.clone(),
                            url: live.uploader.url(&self.key(&file.filename)),
                            start_time: self.wall(Duration::from_secs_f64(file.start_offset_s)),
                            end_time: self.wall(at),
                            session_id: live.id.session_id.clone(),
                            recording_type: RAW.into(),
                            paused: Vec::new(),
                        },
                    };
                    live.uploader
                        .submit_file(Output::Raw, &path, &self.key(&file.filename), Some(ready))
                        .with_context(|| format!("storing the raw file {} failed", file.filename))?;
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

    /// Writes and stores the manifest, announced like the files.
    fn store_manifest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        let end = live.graph.end_time().unwrap_or_default().as_secs_f64();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            call_cid: live.job.call_cid.clone(),
            egress_id: live.id.egress_id.clone(),
            session_id: live.id.session_id.clone(),
            call_started_at: self
                .call_start
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            participants: self.stays.clone(),
            files: self.files.values().cloned().collect(),
        };
        let path = self.dir.join("manifest.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let ready = EventBody::RecordingReady {
            recording_type: RAW.into(),
            call_recording: CallRecording {
                user_id: None,
                track: None,
                filename: "manifest.json".into(),
                url: live.uploader.url(&self.key("manifest.json")),
                start_time: self.wall(Duration::ZERO),
                end_time: self.wall(Duration::from_secs_f64(end)),
                session_id: live.id.session_id.clone(),
                recording_type: RAW.into(),
                paused: Vec::new(),
            },
        };
        live.uploader
            .submit_file(Output::Raw, &path, &self.key("manifest.json"), Some(ready))
            .context("storing the raw recording's manifest failed")
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
        true
    }

    fn playing(&mut self, call_start: DateTime<Utc>) {
        self.call_start = call_start;
    }

    fn participant_joined(&mut self, user_id: &str, at: Duration) {
        self.stays.push(Stay {
            user_id: user_id.to_owned(),
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
            stay.left_at_s = Some(at.as_secs_f64());
        }
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.take_in(live)
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.take_in(live)?;
        if live.job_failed {
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
        if self.started {
            self.store_manifest(live)?;
        }
        Ok(())
    }
}
