//! The thumbnail of a call: a small JPEG of the composite, taken from the mix the other outputs
//! encode (nothing decoded for it), replaced every interval under one stable key,
//! `PATH/thumbnails/CALLTYPE_CALLID/thumbnail.jpg`, each one announced by `call.thumbnail_ready`.

use super::OutputKind;
use super::control::{Answer, Running, or_empty};
use super::frames::safe_segment;
use super::lifecycle::OutputId;
use super::output::{Live, OutputModule, SessionOutput};
use crate::events::EventBody;
use crate::job::{Job, ThumbnailsConfig};
use crate::media::{Composite, FrameTap, StillFrame};
use crate::storage::{self, Output, Uploader};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A thumbnail written to the spool, waiting to be stored.
struct Taken {
    at: Duration,
    path: PathBuf,
}

pub struct ThumbnailOutput {
    key: String,
    taken: mpsc::Receiver<Taken>,
    /// Wall-clock time of call time zero.
    pub call_start: DateTime<Utc>,
    /// Stopped alone (`egress stop --output thumbnails`): none is taken from then on.
    stopped: Arc<AtomicBool>,
}

impl ThumbnailOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        config: &ThumbnailsConfig,
        mix: usize,
        spool: &Path,
        wake: &super::Waker,
    ) -> anyhow::Result<ThumbnailOutput> {
        let dir = spool.join("thumbnails");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = storage::object_key(
            job.storage.path.as_deref(),
            &format!(
                "thumbnails/{}_{}/thumbnail.jpg",
                safe_segment(job.call_type()),
                safe_segment(job.call_id())
            ),
        )?;
        let (tx, taken) = mpsc::channel();
        let tx = Mutex::new(tx);
        let stopped = Arc::new(AtomicBool::new(false));
        let stopped_in_handler = stopped.clone();
        let wake = wake.clone();
        let handler = Arc::new(move |frame: StillFrame| {
            if stopped_in_handler.load(Ordering::Relaxed) {
                return;
            }
            let width = ThumbnailsConfig::WIDTH;
            let height =
                (u64::from(width) * u64::from(frame.height) / u64::from(frame.width.max(1))).max(1) as u32;
            // Each in a file of its own: the one before may still be on its way to the store.
            let path = dir.join(format!("thumbnail-{}.jpg", frame.at.as_millis()));
            let written = crate::render::jpeg_fitting(frame.width, frame.height, frame.rgb, (width, height))
                .and_then(|jpeg| std::fs::write(&path, jpeg).context("cannot write the thumbnail"));
            match written {
                Ok(()) => {
                    let _ = tx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .send(Taken { at: frame.at, path });
                    wake();
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "thumbnail not taken"),
            }
        });
        graph.capture_mix(
            mix,
            &FrameTap {
                interval: Duration::from_secs(u64::from(config.interval_s)),
                handler,
                keyframes_only: false,
            },
        )?;
        Ok(ThumbnailOutput {
            key,
            taken,
            call_start: Utc::now(),
            stopped,
        })
    }

    /// Takes no more thumbnails; the last one stays stored. False when it had stopped.
    pub fn stop_alone(&mut self) -> bool {
        !self.stopped.swap(true, Ordering::Relaxed)
    }

    /// Stores the thumbnails taken since the last call, each replacing the one before.
    fn publish(&mut self, uploader: &mut Uploader) -> anyhow::Result<()> {
        for taken in self.taken.try_iter() {
            let captured_at = self.call_start + chrono::Duration::from_std(taken.at).unwrap_or_default();
            let ready = EventBody::ThumbnailReady {
                image_url: uploader.url(&self.key),
                captured_at: captured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            };
            uploader
                .submit_file(Output::Thumbnails, &taken.path, &self.key, Some(ready))
                .context("storing the thumbnail failed")?;
        }
        Ok(())
    }
}

impl SessionOutput for ThumbnailOutput {
    fn output_id(&self) -> OutputId {
        OutputId::Thumbnails
    }

    fn running(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }

    fn playing(&mut self, call_start: DateTime<Utc>) {
        self.call_start = call_start;
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.publish(live.uploader)
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.publish(live.uploader)
    }
}

/// The thumbnails, as the session knows them. The seeds give them no lifecycle events.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::Thumbnails],
    asked: |job| match &job.thumbnails {
        Some(config) if config.enabled => vec![OutputId::Thumbnails],
        _ => vec![],
    },
    attach: |at| {
        // The picture of the first composite output.
        let mix = at
            .mixes
            .recording
            .or(at.mixes.hls)
            .or(at.mixes.rtmp.first().copied());
        match (&at.job.thumbnails, mix) {
            (Some(config), Some(mix)) if config.enabled => Ok(vec![Box::new(ThumbnailOutput::attach(
                at.graph, at.job, config, mix, at.spool, at.waker,
            )?)]),
            _ => Ok(vec![]),
        }
    },
    start,
    stop: |running, _| {
        Ok(
            match running
                .outputs
                .one::<ThumbnailOutput>()
                .is_some_and(|t| t.stop_alone())
            {
                true => Ok("thumbnails stopped; the last one stays stored".into()),
                false => Err("the thumbnails are not running".into()),
            },
        )
    },
    pause: None,
    step_of: |_| None,
    failed: |_, _| None,
};

/// Starts the call's thumbnail during the call, from the first composite's picture.
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    if running
        .outputs
        .one::<ThumbnailOutput>()
        .is_some_and(|t| t.running())
    {
        return Err("the thumbnails are running already".into());
    }
    if running.graph.mix_count() == 0 {
        return Err(
            "the thumbnails cannot start: this job has no composite picture to take them from".into(),
        );
    }
    let with_thumbnails = running.checked_section(OutputKind::Thumbnails, &or_empty(section))?;
    let config = with_thumbnails
        .thumbnails
        .as_ref()
        .ok_or_else(|| "the thumbnails section: expected an object".to_owned())?;
    if !config.enabled {
        return Err("thumbnails.enabled: false asks for no thumbnails".into());
    }
    let spool = running.spool();
    let mut thumbnails =
        ThumbnailOutput::attach(running.graph, &with_thumbnails, config, 0, &spool, running.waker)
            .map_err(|e| format!("the thumbnails cannot start: {e:#}"))?;
    thumbnails.playing(running.call_start());
    running.lifecycles.register(OutputId::Thumbnails);
    running.outputs.remove_where::<ThumbnailOutput>(|_| true);
    running.outputs.add_of(&MODULE, thumbnails);
    Ok("thumbnails started; call.thumbnail_ready follows each one stored".into())
}
