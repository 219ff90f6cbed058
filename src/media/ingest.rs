//! Decoding of encoded tracks, and the keyframe gate that lets a frames-only job decode one
//! frame per capture instead of every frame.

use super::make;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a key-unit request may go unanswered before it is sent again (a lost PLI).
const REQUEST_AGAIN_AFTER: gst::ClockTime = gst::ClockTime::from_seconds(1);

/// A bin that decodes whatever codec its `sink` gets into raw video or audio on its `src`.
pub fn decoder(name: &str, is_video: bool) -> anyhow::Result<gst::Bin> {
    // A track that returns (or a render's second file of it) may meet its earlier decoder.
    static DECODERS: AtomicU64 = AtomicU64::new(0);
    let n = DECODERS.fetch_add(1, Ordering::Relaxed);
    let bin = gst::Bin::with_name(&format!("decode-{}-{n}", name.replace('/', "-")));
    // decodebin changes state asynchronously until it has found the codec; inside a playing
    // pipeline that must stay within this bin, or the whole pipeline would wait for it.
    bin.set_property("async-handling", true);
    let decode = make("decodebin")?;
    let chain = if is_video {
        vec![make("videoconvert")?]
    } else {
        vec![make("audioconvert")?, make("audioresample")?]
    };
    bin.add(&decode)?;
    bin.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let first = chain[0].static_pad("sink").context("converter without sink")?;
    decode.connect_pad_added(move |_, pad| {
        if !first.is_linked()
            && let Err(e) = pad.link(&first)
        {
            tracing::warn!(error = ?e, "cannot link a decoded stream");
        }
    });
    let entry = decode.static_pad("sink").context("decodebin without sink")?;
    let exit = chain[chain.len() - 1]
        .static_pad("src")
        .context("converter without src")?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&entry)?.name("sink").build())?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&exit)?.name("src").build())?;
    Ok(bin)
}

/// Lets out of `element` (which passes encoded video on to its decoder) only the keyframes that
/// are due for a capture: one every `interval` of running time. When a capture falls due it asks
/// the sender for a key unit (upstream force-key-unit, which a WebRTC receiver turns into a PLI)
/// and drops delta frames until the keyframe arrives. Nothing from running time `cut_at` (ns) on
/// passes.
pub fn keyframe_gate(element: &gst::Element, interval: Duration, cut_at: Arc<AtomicU64>) {
    // The probe sits on a real pad: dropping buffers on a ghost pad upsets GStreamer.
    let Some(pad) = element.static_pad("src") else {
        return;
    };
    let sender = element.downgrade();
    let interval = gst::ClockTime::from_nseconds(interval.as_nanos() as u64);
    let schedule = Mutex::new(Schedule::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(at) = running_time(pad, buffer) else {
            return gst::PadProbeReturn::Drop;
        };
        if at.nseconds() >= cut_at.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Drop;
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut schedule = schedule.lock().unwrap_or_else(|e| e.into_inner());
        match schedule.decide(at, keyframe, interval) {
            Decision::Pass => gst::PadProbeReturn::Ok,
            Decision::Drop => gst::PadProbeReturn::Drop,
            Decision::RequestAndDrop => {
                drop(schedule);
                tracing::debug!(pad = %pad.path_string(), %at, "key unit requested");
                // Without all_headers, webrtcbin asks with a PLI, which SFUs pass on; with it,
                // a FIR, which Janus 1.1.2 drops.
                let request = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                    .running_time(at)
                    .all_headers(false)
                    .build();
                if let Some(sender) = sender.upgrade() {
                    sender.send_event(request);
                }
                gst::PadProbeReturn::Drop
            }
        }
    });
}

#[derive(Default)]
struct Schedule {
    /// Running time of the next capture; `None` until the first keyframe passed.
    due: Option<gst::ClockTime>,
    /// When a key unit was last asked for, while waiting for it.
    requested_at: Option<gst::ClockTime>,
}

#[derive(Debug, PartialEq)]
enum Decision {
    Pass,
    Drop,
    RequestAndDrop,
}

impl Schedule {
    fn decide(&mut self, at: gst::ClockTime, keyframe: bool, interval: gst::ClockTime) -> Decision {
        let due = match self.due {
            // The first keyframe of the track is its first capture.
            None if keyframe => {
                self.due = Some(at + interval);
                return Decision::Pass;
            }
            None => return self.request(at),
            Some(due) => due,
        };
        // The answer to a request may be the frame just before the one that asked.
        let answer = keyframe && self.requested_at.is_some();
        if at < due && !answer {
            return Decision::Drop;
        }
        if keyframe {
            self.requested_at = None;
            // Keep the schedule; after a long wait, start again from now.
            let next = due + interval;
            self.due = Some(if next > at { next } else { at + interval });
            return Decision::Pass;
        }
        self.request(at)
    }

    fn request(&mut self, at: gst::ClockTime) -> Decision {
        match self.requested_at {
            Some(asked) if at < asked + REQUEST_AGAIN_AFTER => Decision::Drop,
            _ => {
                self.requested_at = Some(at);
                Decision::RequestAndDrop
            }
        }
    }
}

/// The running time of `buffer` on `pad` (its pts, or dts when it has none).
pub(super) fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let pts = buffer.pts().or(buffer.dts())?;
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds((seconds * 1e9) as u64)
    }

    #[test]
    fn passes_the_first_keyframe_then_one_keyframe_per_interval() {
        let mut schedule = Schedule::default();
        let interval = s(3.0);
        assert_eq!(schedule.decide(s(0.0), true, interval), Decision::Pass);
        assert_eq!(schedule.decide(s(0.033), false, interval), Decision::Drop);
        // A keyframe the sender sends on its own before the capture is due costs nothing.
        assert_eq!(schedule.decide(s(2.0), true, interval), Decision::Drop);
        assert_eq!(schedule.decide(s(3.0), false, interval), Decision::RequestAndDrop);
        assert_eq!(schedule.decide(s(3.033), false, interval), Decision::Drop);
        assert_eq!(schedule.decide(s(3.066), true, interval), Decision::Pass);
        assert_eq!(schedule.decide(s(3.1), false, interval), Decision::Drop);
        // The schedule keeps its beat: the next capture is due at 6 s, not 6.066 s.
        assert_eq!(schedule.decide(s(6.0), false, interval), Decision::RequestAndDrop);
        // A sender answers with the picture it was showing, a frame older than the request.
        assert_eq!(schedule.decide(s(5.967), true, interval), Decision::Pass);
        assert_eq!(schedule.decide(s(6.033), false, interval), Decision::Drop);
        assert_eq!(schedule.decide(s(9.0), false, interval), Decision::RequestAndDrop);
    }

    #[test]
    fn asks_again_when_a_request_goes_unanswered() {
        let mut schedule = Schedule::default();
        let interval = s(2.0);
        // A track that starts without a keyframe asks for one at once.
        assert_eq!(schedule.decide(s(0.0), false, interval), Decision::RequestAndDrop);
        assert_eq!(schedule.decide(s(0.5), false, interval), Decision::Drop);
        assert_eq!(schedule.decide(s(1.0), false, interval), Decision::RequestAndDrop);
        assert_eq!(schedule.decide(s(1.1), true, interval), Decision::Pass);
        assert_eq!(schedule.decide(s(3.0), false, interval), Decision::Drop);
        assert_eq!(schedule.decide(s(3.1), false, interval), Decision::RequestAndDrop);
    }

    /// A buffer of encoded video at `at` seconds, a keyframe or not.
    fn frame(at: f64, keyframe: bool) -> gst::Buffer {
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        let b = buffer.get_mut().unwrap();
        b.set_pts(s(at));
        if !keyframe {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        buffer
    }

    fn asked_for_key_units(h: &mut gstreamer_check::Harness) -> usize {
        std::iter::from_fn(|| h.try_pull_upstream_event())
            .filter(|e| gstreamer_video::UpstreamForceKeyUnitEvent::parse(e).is_ok())
            .count()
    }

    /// The gate on a real pad, fed as a live track feeds it: what passes, what is asked of the
    /// sender, and the cut at the end of the call.
    #[test]
    fn the_gate_on_a_pad_passes_due_keyframes_asks_the_sender_and_cuts() {
        gst::init().unwrap();
        let mut h = gstreamer_check::Harness::new("identity");
        let cut_at = Arc::new(AtomicU64::new(u64::MAX));
        keyframe_gate(&h.element().unwrap(), Duration::from_secs(2), cut_at.clone());
        h.set_src_caps_str("video/x-vp8");
        let passed = |h: &mut gstreamer_check::Harness, at: f64, keyframe: bool| {
            h.push(frame(at, keyframe)).unwrap();
            std::iter::from_fn(|| h.try_pull()).count()
        };
        assert_eq!(
            passed(&mut h, 0.0, true),
            1,
            "the first keyframe is the first capture"
        );
        assert_eq!(passed(&mut h, 0.033, false), 0);
        assert_eq!(
            asked_for_key_units(&mut h),
            0,
            "nothing asked before a capture is due"
        );
        assert_eq!(
            passed(&mut h, 2.0, false),
            0,
            "a delta frame when a capture is due"
        );
        assert_eq!(
            asked_for_key_units(&mut h),
            1,
            "the sender is asked for a key unit"
        );
        assert_eq!(passed(&mut h, 2.033, false), 0);
        assert_eq!(asked_for_key_units(&mut h), 0, "asked once, not on every frame");
        assert_eq!(passed(&mut h, 2.066, true), 1, "the answer passes");
        cut_at.store(s(3.0).nseconds(), Ordering::Relaxed);
        assert_eq!(passed(&mut h, 4.1, true), 0, "nothing passes from the cut on");
    }
}
