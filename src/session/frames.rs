//! The frame recording of a session: a still of every participant's camera and screen share per
//! interval, encoded off the media threads, stored under a predictable key and announced with the
//! time it was shown in the call.

use super::call::LiveCall;
use super::control::{Answer, Running, or_empty};
use super::lifecycle::{OutputId, Step};
use super::output::{Live, OutputModule, SessionOutput};
use super::{Emit, JobIdentity, OutputKind};
use crate::events::{EventBody, UserObject};
use crate::job::{FrameRecordingConfig, Job};
use crate::media::{Composite, FrameTap, StillFrame};
use crate::storage::{self, Output, Uploader};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long the call runs past a still before it is announced: a still taken at the instant the
/// call ends, before the end reached the session, is then left out like the rest of that media.
const HOLD: Duration = Duration::from_millis(250);

/// A still written to the spool, waiting to be stored.
struct Captured {
    input: String,
    at: Duration,
    path: PathBuf,
}

pub struct FrameOutput {
    /// Storage key prefix: `PATH/frames/CALLTYPE_CALLID/SESSION`.
    prefix: String,
    /// Stopped alone (`egress stop --output frame_recording`): stills from then on are dropped.
    stopped: Arc<std::sync::atomic::AtomicBool>,
    pub stopped_alone: bool,
    captured: mpsc::Receiver<Captured>,
    /// Stills not announced yet: the call has not run `HOLD` past them.
    held: Vec<Captured>,
    /// Wall-clock time of call time zero (set when the pipeline starts playing).
    pub call_start: DateTime<Utc>,
    pub started: bool,
}

impl FrameOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        id: &JobIdentity,
        config: &FrameRecordingConfig,
        spool: &Path,
        keyframes_only: bool,
        wake: &super::Waker,
    ) -> anyhow::Result<FrameOutput> {
        tracing::info!(
            keyframes_only,
            "stills of tracks nothing else decodes come from {}",
            if keyframes_only {
                "keyframes asked of their senders"
            } else {
                "every decoded frame"
            }
        );
        let dir = spool.join("frames");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let prefix = storage::object_key(
            job.storage.path.as_deref(),
            &format!(
                "frames/{}_{}/{}",
                safe_segment(job.call_type()),
                safe_segment(job.call_id()),
                safe_segment(&id.session_id)
            ),
        )?;
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let fit = config.quality.size();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler_stopped = stopped.clone();
        let wake = wake.clone();
        let handler = Arc::new(move |frame: StillFrame| {
            if handler_stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let path = dir.join(format!(
                "{}-{}.jpg",
                frame.input.replace('/', "-"),
                frame.at.as_millis()
            ));
            let written = crate::render::jpeg_fitting(frame.width, frame.height, frame.rgb, fit)
                .and_then(|jpeg| std::fs::write(&path, jpeg).context("cannot write the image"));
            match written {
                Ok(()) => {
                    let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = tx.send(Captured {
                        input: frame.input,
                        at: frame.at,
                        path,
                    });
                    wake();
                }
                Err(e) => {
                    tracing::warn!(input = %frame.input, error = %format!("{e:#}"), "frame not captured")
                }
            }
        });
        graph.capture_frames(FrameTap {
            interval: Duration::from_secs(u64::from(config.capture_interval_in_seconds)),
            handler,
            keyframes_only,
        })?;
        Ok(FrameOutput {
            prefix,
            stopped,
            stopped_alone: false,
            captured: rx,
            held: Vec::new(),
            call_start: Utc::now(),
            started: false,
        })
    }

    /// Ends the stills while the call runs on: none is taken from now, those taken are stored
    /// and announced, and the stopped event follows the last of them. False if it had ended
    /// already.
    pub fn stop_alone(
        &mut self,
        uploader: &mut Uploader,
        call: &LiveCall,
        id: &JobIdentity,
        emit: Emit,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<bool> {
        if self.stopped_alone {
            return Ok(false);
        }
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        self.publish(uploader, call, None, None, id, emit, warnings)?;
        self.stopped_alone = true;
        uploader.announce_after(Output::Frames, EventBody::FrameRecordingStopped {});
        Ok(true)
    }

    /// Announces the start once (with the job's warnings if no other output took them).
    pub fn start(&mut self, emit: Emit, warnings: &mut Vec<String>) {
        if !self.started && !self.stopped_alone {
            self.started = true;
            emit(EventBody::FrameRecordingStarted {
                warnings: std::mem::take(warnings),
            });
        }
    }

    /// Stores the stills the call has run `HOLD` past (all of them when `now` is `None`, once
    /// the call is over) and announces each one. Stills from `end` on (captured while the end
    /// was on its way) are left out, as the other outputs leave that media out.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        uploader: &mut Uploader,
        call: &LiveCall,
        end: Option<Duration>,
        now: Option<Duration>,
        id: &JobIdentity,
        emit: Emit,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        if self.stopped_alone {
            // Stills that were being encoded when the stop came.
            for late in self.captured.try_iter() {
                let _ = std::fs::remove_file(&late.path);
            }
            return Ok(());
        }
        self.held.extend(self.captured.try_iter());
        let (due, later): (Vec<Captured>, Vec<Captured>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|still| end.is_some() || now.is_none_or(|now| now >= still.at + HOLD));
        self.held = later;
        for still in due {
            if end.is_some_and(|end| still.at >= end) {
                let _ = std::fs::remove_file(&still.path);
                continue;
            }
            let Some((user_id, track)) = still.input.rsplit_once('/') else {
                continue;
            };
            let captured_at = self.call_start + chrono::Duration::from_std(still.at).unwrap_or_default();
            let stamp = captured_at.format("%Y%m%dT%H%M%S%.3fZ");
            let key = format!("{}/{}/{track}/{stamp}.jpg", self.prefix, safe_segment(user_id));
            self.start(emit, warnings);
            let user = call
                .participant(user_id)
                .map_or_else(|| UserObject::unknown(user_id), UserObject::of);
            let users = std::collections::BTreeMap::from([(user_id.to_owned(), user)]);
            let ready = EventBody::FrameRecordingReady {
                captured_at: captured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                session_id: id.session_id.clone(),
                track_type: if track == "screenshare" {
                    "TRACK_TYPE_SCREEN_SHARE"
                } else {
                    "TRACK_TYPE_VIDEO"
                }
                .into(),
                url: uploader.url(&key),
                users,
            };
            uploader
                .submit_file(Output::Frames, &still.path, &key, Some(ready))
                .with_context(|| format!("storing the frame of {user_id} failed"))?;
        }
        Ok(())
    }
}

impl SessionOutput for FrameOutput {
    fn output_id(&self) -> OutputId {
        OutputId::FrameRecording
    }

    fn running(&self) -> bool {
        !self.stopped_alone
    }

    fn playing(&mut self, call_start: DateTime<Utc>) {
        self.call_start = call_start;
    }

    fn media_flowing(&mut self, live: &mut Live) {
        self.start(live.emit, live.warnings);
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        let end = live.graph.end_time();
        self.publish(
            live.uploader,
            live.call,
            end,
            live.now,
            live.id,
            live.emit,
            live.warnings,
        )
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        let end = live.graph.end_time();
        self.publish(
            live.uploader,
            live.call,
            end,
            None,
            live.id,
            live.emit,
            live.warnings,
        )
    }

    fn stopped_once_stored(&self) -> Option<EventBody> {
        (self.started && !self.stopped_alone).then_some(EventBody::FrameRecordingStopped {})
    }
}

/// A name usable as one segment of a storage key: anything but letters, digits, `-`, `_` and
/// `.` becomes `_`, and a name of dots only is prefixed, so it cannot climb out of its folder.
pub(super) fn safe_segment(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.chars().all(|c| c == '.') {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

/// The frame recording, as the session knows it.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::FrameRecording],
    asked: |job| {
        job.frame_recording
            .iter()
            .map(|_| OutputId::FrameRecording)
            .collect()
    },
    attach: |at| {
        let Some(config) = &at.job.frame_recording else {
            return Ok(vec![]);
        };
        let frames = FrameOutput::attach(
            at.graph,
            at.job,
            at.id,
            config,
            at.spool,
            at.keyframes_on_request,
            at.waker,
        )?;
        Ok(vec![Box::new(frames)])
    },
    start,
    stop: |running, _| {
        let Running {
            outputs,
            uploader,
            call,
            id,
            emit,
            warnings,
            ..
        } = running;
        let stopped = match outputs.one::<FrameOutput>() {
            Some(frames) => frames.stop_alone(uploader, call, id, *emit, warnings)?,
            None => false,
        };
        Ok(match stopped {
            true => Ok(
                "frame recording stopped; call.frame_recording_stopped follows the stills taken until now"
                    .into(),
            ),
            false => Err("the frame recording is not running".into()),
        })
    },
    pause: None,
    step_of: |body| {
        Some(match body {
            EventBody::FrameRecordingStarted { .. } => (OutputId::FrameRecording, Step::Start),
            EventBody::FrameRecordingStopped {} => (OutputId::FrameRecording, Step::Stop),
            EventBody::FrameRecordingFailed { .. } => (OutputId::FrameRecording, Step::Fail),
            _ => return None,
        })
    },
    failed: |output, error| {
        (*output == OutputId::FrameRecording).then(|| EventBody::FrameRecordingFailed {
            error: error.to_owned(),
        })
    },
};

/// Starts the frame recording during the call: a still of every camera and screen share per
/// interval from now, taken from the tracks the composite decodes already. One stopped before
/// starts again with the section given (the job's when none is).
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    let existing = running.outputs.one::<FrameOutput>().map(|f| f.stopped_alone);
    if existing == Some(false) {
        return Err("the frame recording is running already".into());
    }
    if running.graph.mix_count() == 0 && existing.is_none() {
        return Err("the frame recording cannot start: this job takes no video from the call (it has no composite output)".into());
    }
    let section = match (&section, &running.job.frame_recording) {
        (serde_json::Value::Null, Some(config)) => {
            serde_json::to_value(config).map_err(|e| format!("the frame_recording section: {e}"))?
        }
        _ => or_empty(section),
    };
    let with_frames = running.checked_section(OutputKind::FrameRecording, &section)?;
    let config = with_frames
        .frame_recording
        .as_ref()
        .ok_or_else(|| "the frame_recording section: expected an object".to_owned())?;
    let spool = running.spool();
    let mut frames = FrameOutput::attach(
        running.graph,
        &with_frames,
        running.id,
        config,
        &spool,
        false,
        running.waker,
    )
    .map_err(|e| format!("the frame recording cannot start: {e:#}"))?;
    frames.playing(running.call_start());
    running.lifecycles.register(OutputId::FrameRecording);
    frames.start(running.emit, running.warnings);
    // The one stopped before has stored and announced its stills; this one takes its place.
    running.outputs.remove_where::<FrameOutput>(|_| true);
    running.outputs.add_of(&MODULE, frames);
    Ok("frame recording started; a still of every camera and screen share follows each interval".into())
}

#[cfg(test)]
mod tests {
    use super::safe_segment;

    #[test]
    fn key_segments_cannot_escape_their_folder() {
        assert_eq!(safe_segment("alice"), "alice");
        assert_eq!(safe_segment("../etc/passwd"), ".._etc_passwd");
        assert_eq!(safe_segment(".."), "_..");
        assert_eq!(safe_segment("a b/c"), "a_b_c");
    }
}
