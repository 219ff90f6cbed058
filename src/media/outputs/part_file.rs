//! One MP4 part being written, in a pipeline of its own: an `appsrc` per stream, `mp4mux` with
//! robust muxing, a `filesink`. The index is rewritten into room reserved at the head of the
//! file twice a second, so a killed worker leaves a part that plays up to half a second before
//! the kill; a finished part has its index before its media (progressive).

use super::cutter::Stream;
use crate::media::make;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// How often the index at the head of the file is brought up to date: the most a kill costs of
/// what the muxer has been given.
const INDEX_UPDATE_PERIOD: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// What an appsrc may hold while the file is slow to write (a stalled disk): past it samples
/// are dropped rather than the call's encoders held up.
const MOST_QUEUED_BYTES: u64 = 256 * 1024 * 1024;

pub struct PartFile {
    pipeline: gst::Pipeline,
    video: Option<gst_app::AppSrc>,
    audio: gst_app::AppSrc,
    path: PathBuf,
    /// The running time (ns, negative before the stream's start) that is 0 in the file.
    base_ns: i64,
    /// The paused time taken out of the recording before this part opened (ns).
    removed_at_open: i64,
    /// The end of the writing: Ok at EOS, the error otherwise.
    ended: Mutex<mpsc::Receiver<Result<(), String>>>,
}

impl PartFile {
    /// Starts writing `path`; `longest` sizes the index room. `on_error` hears a write failure
    /// as it happens (the part still holds what was written before it).
    pub fn open(
        path: &Path,
        with_video: bool,
        longest: gst::ClockTime,
        base_ns: i64,
        removed_at_open: i64,
        on_error: impl Fn(&str) + Send + Sync + 'static,
    ) -> anyhow::Result<PartFile> {
        let pipeline = gst::Pipeline::with_name("recording-part");
        let mux = make("mp4mux")?;
        mux.set_property("reserved-max-duration", longest.nseconds());
        mux.set_property("reserved-moov-update-period", INDEX_UPDATE_PERIOD.nseconds());
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        pipeline.add_many([&mux, &sink])?;
        mux.link(&sink)?;
        let source = |pad: &str| -> anyhow::Result<gst_app::AppSrc> {
            let appsrc = gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .max_bytes(MOST_QUEUED_BYTES)
                .leaky_type(gst_app::AppLeakyType::Downstream)
                .build();
            pipeline.add(&appsrc)?;
            let sink_pad = mux
                .request_pad_simple(pad)
                .with_context(|| format!("mp4mux has no {pad} pad"))?;
            appsrc
                .static_pad("src")
                .context("appsrc without src")?
                .link(&sink_pad)?;
            Ok(appsrc)
        };
        let video = with_video.then(|| source("video_%u")).transpose()?;
        let audio = source("audio_%u")?;
        let (tell, ended) = mpsc::channel();
        let bus = pipeline.bus().context("pipeline without bus")?;
        bus.set_sync_handler(move |_, message| {
            match message.view() {
                gst::MessageView::Eos(_) => {
                    let _ = tell.send(Ok(()));
                }
                gst::MessageView::Error(err) => {
                    let text = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
                    on_error(&text);
                    let _ = tell.send(Err(text));
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        pipeline
            .set_state(gst::State::Playing)
            .with_context(|| format!("cannot start writing {}", path.display()))?;
        Ok(PartFile {
            pipeline,
            video,
            audio,
            path: path.to_owned(),
            base_ns,
            removed_at_open,
            ended: Mutex::new(ended),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands one sample to the muxer, its times made running times from the start of the part,
    /// less the paused time taken out of the recording so far (`removed_ns`).
    pub fn push(&self, stream: Stream, sample: &gst::Sample, removed_ns: i64) {
        let source = match stream {
            Stream::Video => self.video.as_ref(),
            Stream::Audio => Some(&self.audio),
        };
        let (Some(source), Some(buffer)) = (source, sample.buffer()) else {
            return;
        };
        let mut buffer = buffer.copy();
        {
            let buffer = buffer.make_mut();
            let shift = |t: Option<gst::ClockTime>| {
                let removed = removed_ns - self.removed_at_open;
                let from_start = running_ns(sample, t)? - self.base_ns - removed;
                Some(gst::ClockTime::from_nseconds(from_start.max(0) as u64))
            };
            let (pts, dts) = (shift(buffer.pts()), shift(buffer.dts()));
            buffer.set_pts(pts);
            buffer.set_dts(dts);
        }
        let mut shifted = gst::Sample::builder().buffer(&buffer);
        let caps = sample.caps_owned();
        if let Some(caps) = &caps {
            shifted = shifted.caps(caps);
        }
        // A part that failed to write has said so through `on_error`; the rest of it is lost.
        let _ = source.push_sample(&shifted.build());
    }

    /// Ends the part: the muxer writes its final index. Waits `timeout` at most; the file plays
    /// either way (up to its last index update if the muxer did not finish).
    pub fn finish(&self, timeout: Duration) -> Result<PathBuf, String> {
        for source in self.video.iter().chain(std::iter::once(&self.audio)) {
            let _ = source.end_of_stream();
        }
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match ended.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("the part was not finished within {timeout:?}")),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        outcome.map(|()| self.path.clone())
    }
}

impl Drop for PartFile {
    /// A part dropped unfinished (its job torn down) is left as a kill would leave it.
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The running time of `at` in the sample's segment, in nanoseconds; negative for a time before
/// the segment's start (the DTS of the first frames of an encoder that reorders).
pub(super) fn running_ns(sample: &gst::Sample, at: Option<gst::ClockTime>) -> Option<i64> {
    let at = at?;
    let Some(segment) = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>()) else {
        return Some(at.nseconds() as i64);
    };
    Some(match segment.to_running_time_full(at)? {
        gst::Signed::Positive(t) => t.nseconds() as i64,
        gst::Signed::Negative(t) => -(t.nseconds() as i64),
    })
}
