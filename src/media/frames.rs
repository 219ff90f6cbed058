//! Still frames of a decoded video track, one per interval: a leaky branch of the track's tee
//! lets one frame through when its time comes and hands it over as RGB. Between captures nothing
//! is converted or copied.

use super::decode_gate::StillDue;
use super::make;
use super::tap::{Backlog, tap_bin};
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One captured frame, tightly packed RGB.
pub struct StillFrame {
    /// The input it came from (`user/camera`, `user/screenshare`).
    pub input: String,
    /// Running time of the frame in the pipeline (call time).
    pub at: Duration,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Receives captured frames on the capture branch's own thread.
pub type FrameHandler = Arc<dyn Fn(StillFrame) + Send + Sync>;

#[derive(Clone)]
pub struct FrameTap {
    pub interval: Duration,
    pub handler: FrameHandler,
    /// Encoded tracks that nothing else decodes get only their due keyframes decoded.
    pub keyframes_only: bool,
}

/// A capture branch: a bin with a `sink` pad, to be linked to the track's tee. Frames from
/// running time `cut_at` (ns) on are not captured: the call has ended there. `every_frame`:
/// the track is already thinned to one frame per capture (the keyframe path). `due` is kept at
/// the running time of the next still, for the decode gate of a hidden track.
pub fn capture_branch(
    input: &str,
    tap: &FrameTap,
    cut_at: Arc<AtomicU64>,
    every_frame: bool,
    due: StillDue,
) -> anyhow::Result<gst::Bin> {
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw").field("format", "RGB").build(),
    );
    let handler = tap.handler.clone();
    let id = input.to_owned();
    // Never hold the track back: keep only the newest frame while a capture is converted.
    let (bin, queue) = tap_bin(
        &format!("frames-{}", input.replace('/', "-")),
        Backlog::Buffers(1),
        &[make("videoconvert")?, caps],
        move |sample| {
            if let Some(frame) = still_of(&id, sample) {
                handler(frame);
            }
        },
    )?;
    let gate = queue.static_pad("src").context("queue without src")?;
    if !every_frame {
        pass_one_per_interval(&gate, tap.interval, cut_at, due);
    }
    Ok(bin)
}

/// Drops every buffer but the first at or after each capture time (running time), so that
/// frames between captures cost nothing.
fn pass_one_per_interval(pad: &gst::Pad, interval: Duration, cut_at: Arc<AtomicU64>, due: StillDue) {
    let next = Mutex::new(None::<gst::ClockTime>);
    let interval = gst::ClockTime::from_nseconds(interval.as_nanos() as u64);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(at) = info.buffer().and_then(|b| running_time(pad, b)) else {
            return gst::PadProbeReturn::Drop;
        };
        if at.nseconds() >= cut_at.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Drop;
        }
        let mut next = next.lock().unwrap_or_else(|e| e.into_inner());
        let decision = match *next {
            Some(due) if at < due => gst::PadProbeReturn::Drop,
            Some(due) => {
                // Keep the schedule; if frames stopped for a while, start again from now.
                let following = due + interval;
                *next = Some(if following > at { following } else { at + interval });
                gst::PadProbeReturn::Ok
            }
            None => {
                *next = Some(at + interval);
                gst::PadProbeReturn::Ok
            }
        };
        if let Some(next) = *next {
            due.store(next.nseconds(), Ordering::Relaxed);
        }
        decision
    });
}

fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let pts = buffer.pts()?;
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts)
}

fn still_of(input: &str, sample: &gst::Sample) -> Option<StillFrame> {
    let buffer = sample.buffer()?;
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let at = segment.to_running_time(buffer.pts()?)?;
    let map = buffer.map_readable().ok()?;
    let (width, height) = (info.width(), info.height());
    let stride = info.stride()[0] as usize;
    let row = width as usize * 3;
    let mut rgb = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        rgb.extend_from_slice(map.get(y * stride..y * stride + row)?);
    }
    Some(StillFrame {
        input: input.to_owned(),
        at: Duration::from_nanos(at.nseconds()),
        width,
        height,
        rgb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds((seconds * 1e9) as u64)
    }

    /// Pushes one frame at `at` s; returns whether it passed the gate.
    fn passes(h: &mut gstreamer_check::Harness, at: f64) -> bool {
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        buffer.get_mut().unwrap().set_pts(s(at));
        h.push(buffer).unwrap();
        std::iter::from_fn(|| h.try_pull()).count() == 1
    }

    #[test]
    fn one_frame_passes_per_interval_on_schedule_and_none_from_the_cut() {
        gst::init().unwrap();
        let mut h = gstreamer_check::Harness::new("identity");
        let cut_at = Arc::new(AtomicU64::new(u64::MAX));
        let due = crate::media::decode_gate::still_due();
        let pad = h.element().unwrap().static_pad("src").unwrap();
        pass_one_per_interval(&pad, Duration::from_secs(1), cut_at.clone(), due.clone());
        h.set_src_caps_str("video/x-raw");
        // 10 fps for 3 s: the first frame at or after each whole second.
        let passed: Vec<f64> = (0..30)
            .map(|n| f64::from(n) / 10.0)
            .filter(|at| passes(&mut h, *at))
            .collect();
        assert_eq!(passed, [0.0, 1.0, 2.0]);
        assert_eq!(
            due.load(Ordering::Relaxed),
            s(3.0).nseconds(),
            "the next still is due at 3 s"
        );
        // Frames stop for a while: the schedule starts again from the next frame.
        assert!(passes(&mut h, 5.5));
        assert!(!passes(&mut h, 6.0));
        assert!(passes(&mut h, 6.5));
        cut_at.store(s(7.0).nseconds(), Ordering::Relaxed);
        assert!(!passes(&mut h, 7.5), "nothing from the cut on");
    }
}
