//! A replayed clip that answers key-unit requests as a WebRTC sender answers a PLI: the clip plays
//! as recorded (a keyframe at the start, then delta frames), and when a force-key-unit event comes
//! upstream the next frame is replaced by the frame of the same moment from an all-intra copy,
//! and the frames after it come from that copy too.
//!
//! The copy plays beside the clip, paced by the clock to the same call time, and ends in a probe
//! that keeps only the frames it answers with: no sink element, so it never holds up the end of the job.

use super::synthetic::build_bin;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A bin with one `src` pad of encoded video, from launch lines of the clip and of its all-intra
/// copy (each ending in an element named `out`). `starts_at`: call time of the track's start.
pub fn sender(clip: &str, keyframes: &str, starts_at: Duration) -> anyhow::Result<gst::Element> {
    let bin = gst::Bin::new();
    let normal = build_bin(clip)?;
    let intra = build_bin(keyframes)?;
    let pace = gst::ElementFactory::make("clocksync")
        .property("ts-offset", starts_at.as_nanos() as i64)
        .build()
        .context("GStreamer element clocksync is missing")?;
    bin.add_many([&normal, &intra, &pace])?;
    intra.link(&pace)?;
    let normal_bin = normal.downcast_ref::<gst::Bin>().context("clip is not a bin")?;
    // Probes on the real pad inside, not the ghost pad: dropping on a ghost pad upsets GStreamer.
    let out = normal_bin
        .by_name("out")
        .and_then(|e| e.static_pad("src"))
        .context("clip without out")?;
    let spare = pace.static_pad("src").context("clocksync without src")?;
    answer_key_unit_requests(&out, &spare);
    let exit = normal.static_pad("src").context("clip without src")?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&exit)?.name("src").build())?;
    Ok(bin.upcast())
}

/// `out` carries the clip; `spare` the intra copy, in step with it and otherwise dropped. Once
/// it has answered, the sender goes on from the copy, as an encoder restarted by a PLI would:
/// the clip's own delta frames do not follow a keyframe of another encoding.
fn answer_key_unit_requests(out: &gst::Pad, spare: &gst::Pad) {
    let wanted = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicBool::new(false));
    let answer = Arc::new(Mutex::new(None::<gst::Buffer>));

    let asked = wanted.clone();
    out.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let is_request = info
            .event()
            .is_some_and(|e| gstreamer_video::ForceKeyUnitEvent::is(e));
        if is_request {
            asked.store(true, Ordering::Release);
        }
        // The request goes on to the demuxer, which ignores it.
        gst::PadProbeReturn::Ok
    });

    let asked = wanted.clone();
    let restarted = answered.clone();
    let slot = answer.clone();
    spare.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if (asked.load(Ordering::Acquire) || restarted.load(Ordering::Acquire))
            && let Some(buffer) = info.buffer()
        {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(buffer.to_owned());
        }
        gst::PadProbeReturn::Drop
    });

    out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let restarted = answered.load(Ordering::Acquire);
        if !wanted.load(Ordering::Acquire) && !restarted {
            return gst::PadProbeReturn::Ok;
        }
        let Some(keyframe) = answer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            // A delta frame of the clip must not follow the copy's keyframes.
            return match restarted {
                true => gst::PadProbeReturn::Drop,
                false => gst::PadProbeReturn::Ok,
            };
        };
        if wanted.swap(false, Ordering::AcqRel) {
            tracing::debug!(pts = ?keyframe.pts(), "key unit request answered");
        }
        answered.store(true, Ordering::Release);
        info.data = Some(gst::PadProbeData::Buffer(keyframe));
        gst::PadProbeReturn::Ok
    });
}
