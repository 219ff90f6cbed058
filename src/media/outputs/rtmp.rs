//! One RTMP(S) push: FLV over `rtmp2sink`, in a bin of its own so that it can be dropped and
//! attached again while everything else keeps running.

use super::super::make;
use crate::media::Composite;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::sync::{Arc, Mutex};

/// How much media a stalled connection may hold before its oldest data is dropped.
const BACKLOG: gst::ClockTime = gst::ClockTime::from_seconds(2);
/// How long the muxer waits for the later of the two streams.
const MUX_WAIT: gst::ClockTime = gst::ClockTime::from_seconds(1);

pub struct RtmpBranch {
    bin: gst::Bin,
    sink: gst::Element,
    /// The tee pads feeding the bin, released on detach.
    feeds: Vec<(gst::Element, gst::Pad)>,
}

impl RtmpBranch {
    /// Attaches a push of `mix` at `quality` to `url` (which holds the stream key: never log it).
    pub fn attach(
        composite: &mut Composite,
        mix: usize,
        quality: crate::job::Quality,
        url: &str,
        name: &str,
    ) -> anyhow::Result<RtmpBranch> {
        let video = composite.encoded_video(mix, quality)?;
        let audio = composite.encoded_audio();
        let bin = gst::Bin::with_name(&format!("rtmp-{name}"));
        let mux = make("flvmux")?;
        mux.set_property("streamable", true);
        // FLV has one timeline for both streams: a muxer that does not wait for the encoder's
        // pictures sends the sound ahead and then has to stamp the late pictures with the
        // sound's times (uneven, some after their display time), which players stumble over.
        mux.set_property("latency", MUX_WAIT.nseconds());
        let sink = make("rtmp2sink")?;
        sink.set_property("location", url);
        // The push follows the live pipeline's pace; it must never hold the pipeline back.
        sink.set_property("sync", false);
        sink.set_property("async", false);
        bin.add_many([&mux, &sink])?;
        mux.link(&sink)?;
        let mut feeds = Vec::new();
        let video_from: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
        for (tee, pad_template, is_video) in [(&video, "video", true), (&audio, "audio", false)] {
            let queue = make("queue")?;
            queue.set_property_from_str("leaky", "downstream");
            queue.set_property("max-size-time", BACKLOG.nseconds());
            queue.set_property("max-size-buffers", 0u32);
            queue.set_property("max-size-bytes", 0u32);
            let parse = make(if is_video { "h264parse" } else { "aacparse" })?;
            super::prepare_parser(&parse);
            bin.add_many([&queue, &parse])?;
            queue.link(&parse)?;
            let mux_pad = mux.request_pad_simple(pad_template).context("flvmux pad")?;
            parse.static_pad("src").context("parser src")?.link(&mux_pad)?;
            let entry = queue.static_pad("sink").context("queue sink")?;
            match is_video {
                true => start_at_keyframe(&entry, video_from.clone()),
                false => start_with_video(&entry, video_from.clone()),
            }
            let ghost = super::isolating_ghost_pad(&entry, pad_template)?;
            bin.add_pad(&ghost)?;
            feeds.push((tee.clone(), ghost));
        }
        composite.pipeline().add(&bin)?;
        // Playing before it is linked: a tee pad that meets a branch still in NULL gets FLUSHING
        // back, and a tee passes that upstream, which stalls every output of the composite.
        bin.sync_state_with_parent()?;
        let mut linked = Vec::new();
        for (tee, ghost) in feeds {
            let tee_pad = tee.request_pad_simple("src_%u").context("tee pad")?;
            tee_pad.link(&ghost)?;
            linked.push((tee, tee_pad));
        }
        // A push that joins a running encoder (started or reconnected during the call) starts
        // at once, not at the next scheduled keyframe.
        composite.ask_keyframe(mix, quality);
        Ok(RtmpBranch {
            bin,
            sink,
            feeds: linked,
        })
    }

    /// Bytes the server has taken so far (0 until connected).
    pub fn bytes_sent(&self) -> u64 {
        let stats = self.sink.property::<gst::Structure>("stats");
        stats.get::<u64>("out-bytes-total").unwrap_or(0)
    }

    /// True when a bus message comes from this push.
    pub fn owns(&self, source: &gst::Object) -> bool {
        source == self.bin.upcast_ref::<gst::Object>() || source.has_as_ancestor(&self.bin)
    }

    /// Sends EOS into the push so that the server sees a clean end of stream.
    pub fn end(&self) {
        for pad in self.bin.sink_pads() {
            pad.send_event(gst::event::Eos::new());
        }
    }

    /// Takes the push out of the pipeline; the tees carry on for the other outputs.
    ///
    /// The bin is shut down on a thread of its own: `rtmp2sink` may take long to stop (a
    /// connection attempt in flight), and the session loop must not wait for it.
    pub fn detach(self, pipeline: &gst::Pipeline) {
        for (tee, pad) in &self.feeds {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
            tee.release_request_pad(pad);
        }
        let pipeline = pipeline.clone();
        let bin = self.bin;
        let teardown = move || {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
        };
        if let Err(e) = std::thread::Builder::new()
            .name("rtmp-teardown".into())
            .spawn(teardown)
        {
            tracing::warn!(error = %e, "cannot start a thread to shut an rtmp push down");
        }
    }
}

/// Drops video until the first keyframe, so that a push attached mid-stream starts decodable,
/// and notes where it starts (the running time of its decoding time).
fn start_at_keyframe(pad: &gst::Pad, video_from: Arc<Mutex<Option<gst::ClockTime>>>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| match info.buffer() {
        Some(buffer) if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) => gst::PadProbeReturn::Drop,
        Some(buffer) => {
            *video_from.lock().unwrap_or_else(|e| e.into_inner()) =
                running_time(pad, buffer.dts().or(buffer.pts()));
            gst::PadProbeReturn::Remove
        }
        None => gst::PadProbeReturn::Ok,
    });
}

/// Drops sound from before the first picture: FLV has one timeline from its first tag, and
/// pictures decoded before it (a keyframe's decoding time runs ahead of its display time with
/// B-frames) would be clamped to one time, which players and servers refuse.
fn start_with_video(pad: &gst::Pad, video_from: Arc<Mutex<Option<gst::ClockTime>>>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let from = *video_from.lock().unwrap_or_else(|e| e.into_inner());
        match (from, running_time(pad, info.buffer().and_then(|b| b.pts()))) {
            (Some(from), Some(at)) if at >= from => gst::PadProbeReturn::Remove,
            _ => gst::PadProbeReturn::Drop,
        }
    });
}

/// The running time of a timestamp on `pad` (0 for one before the stream's start). The streams'
/// own times are not comparable: x264enc shifts its timestamps (by 1000 hours, so that no
/// decoding time is negative) and its segment with them.
fn running_time(pad: &gst::Pad, at: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?;
    match segment.to_running_time_full(at?)? {
        gst::Signed::Positive(time) => Some(time),
        gst::Signed::Negative(_) => Some(gst::ClockTime::ZERO),
    }
}
