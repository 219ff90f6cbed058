//! The thumbnail of a call: a small JPEG of the composite, taken from the mix the other outputs
//! encode (nothing decoded for it), replaced every interval under one stable key,
//! `PATH/thumbnails/CALLTYPE_CALLID/thumbnail.jpg`, each one announced by `call.thumbnail_ready`.

use super::frames::safe_segment;
use super::lifecycle::OutputId;
use super::output::{Live, SessionOutput};
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
