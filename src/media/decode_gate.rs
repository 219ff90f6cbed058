//! Decodes only what is seen: a gate in front of a video track's decoder that drops the encoded
//! frames nobody would see. A track hidden in every mix (filtered out, outside a spotlight bar,
//! not the featured participant) costs no decode; when its tile shows again the gate asks the
//! sender for a key unit (a PLI) and lets the stream through from that keyframe on.
//!
//! Visibility is a timeline per mix, so a frame is judged by the scene of its own running time,
//! as the compositor will judge it. Stills of a hidden track are still taken: the gate lets
//! through one keyframe each time the still branch is due.

use super::timeline::{RunningNs, Timeline};
use gst::prelude::*;
use gstreamer as gst;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How long a key-unit request may go unanswered before it is sent again (a lost PLI).
const REQUEST_AGAIN_AFTER_NS: u64 = 500_000_000;

/// Running time (ns) of the next still a capture branch takes; `u64::MAX` until its first.
pub type StillDue = Arc<AtomicU64>;

pub fn still_due() -> StillDue {
    Arc::new(AtomicU64::new(u64::MAX))
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Decision {
    Pass,
    Drop,
    RequestAndDrop,
}

/// What the gate knows of a track: where each mix shows it, and who else needs it decoded.
#[derive(Debug)]
pub struct GateState {
    shown: Vec<Timeline<bool>>,
    /// Something needs every frame whatever the mixes show (an individual recording).
    every_frame: bool,
    /// The still branch's schedule, when stills are taken.
    stills: Option<StillDue>,
    /// The decoder has missed frames since the last keyframe it got.
    needs_keyframe: bool,
    requested_at: Option<RunningNs>,
    /// A first keyframe has been decoded: the track's caps and one picture are known downstream.
    primed: bool,
    /// Frames dropped in front of the decoder (for the metrics).
    dropped: u64,
}

impl GateState {
    pub fn new(mixes: usize) -> GateState {
        GateState {
            shown: (0..mixes).map(|_| Timeline::new(false)).collect(),
            every_frame: false,
            stills: None,
            needs_keyframe: true,
            requested_at: None,
            primed: false,
            dropped: 0,
        }
    }

    /// The track is shown (or not) in `mix` from running time `from` on (0: from now).
    pub fn schedule(&mut self, mix: usize, from: RunningNs, shown: bool) {
        if let Some(timeline) = self.shown.get_mut(mix) {
            timeline.schedule(from, shown);
        }
    }

    pub fn set_every_frame(&mut self, every_frame: bool) {
        self.every_frame = every_frame;
    }

    pub fn set_stills(&mut self, stills: Option<StillDue>) {
        self.stills = stills;
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the encoded frame at running time `at` goes on to the decoder.
    pub fn decide(&mut self, at: RunningNs, keyframe: bool) -> Decision {
        let mut shown = false;
        for timeline in &mut self.shown {
            timeline.advance(at);
            shown |= *timeline.current();
        }
        let still_due = self
            .stills
            .as_ref()
            .is_some_and(|due| at >= due.load(Ordering::Relaxed) || due.load(Ordering::Relaxed) == u64::MAX);
        let decision = if shown || self.every_frame {
            self.pass_after_keyframe(at, keyframe)
        } else if !self.primed {
            // A mixer input that has never had caps holds up the mixer's other inputs: a track
            // hidden from the start still has its first keyframe decoded.
            let decision = self.pass_after_keyframe(at, keyframe);
            self.needs_keyframe = true;
            decision
        } else if still_due {
            // One decoded keyframe for the still; the frames after it are not decoded.
            let decision = self.pass_after_keyframe(at, keyframe);
            self.needs_keyframe = true;
            decision
        } else {
            self.needs_keyframe = true;
            self.requested_at = None;
            Decision::Drop
        };
        match decision {
            Decision::Pass => self.primed = true,
            _ => self.dropped += 1,
        }
        decision
    }

    /// Passes everything once a keyframe has passed; until then asks for one.
    fn pass_after_keyframe(&mut self, at: RunningNs, keyframe: bool) -> Decision {
        if keyframe {
            self.needs_keyframe = false;
            self.requested_at = None;
            return Decision::Pass;
        }
        if !self.needs_keyframe {
            return Decision::Pass;
        }
        match self.requested_at {
            Some(asked) if at < asked.saturating_add(REQUEST_AGAIN_AFTER_NS) => Decision::Drop,
            _ => {
                self.requested_at = Some(at);
                Decision::RequestAndDrop
            }
        }
    }
}

pub type SharedGate = Arc<Mutex<GateState>>;

pub fn with<R>(gate: &SharedGate, read: impl FnOnce(&mut GateState) -> R) -> R {
    let mut guard = gate.lock().unwrap_or_else(|e| e.into_inner());
    read(&mut guard)
}

/// Installs the gate on `pad` (a real pad feeding the decoder); key units are asked for by an
/// upstream event pushed from `upstream` (a sink pad before it, towards the sender).
pub fn install(pad: &gst::Pad, upstream: &gst::Pad, gate: SharedGate) {
    let upstream = upstream.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(at) = super::ingest::running_time(pad, buffer).map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        match with(&gate, |g| g.decide(at, keyframe)) {
            Decision::Pass => gst::PadProbeReturn::Ok,
            Decision::Drop => gst::PadProbeReturn::Drop,
            Decision::RequestAndDrop => {
                tracing::debug!(pad = %pad.path_string(), at, "key unit requested for a tile shown again");
                if let Some(upstream) = upstream.upgrade() {
                    // Without all_headers webrtcbin sends a PLI, which Janus passes on.
                    let request = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(false)
                        .build();
                    upstream.push_event(request);
                }
                gst::PadProbeReturn::Drop
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_hidden_track_is_not_decoded_and_shows_again_from_a_keyframe_it_asks_for() {
        let mut gate = GateState::new(1);
        gate.schedule(0, 0, true);
        assert_eq!(gate.decide(0, true), Decision::Pass);
        assert_eq!(gate.decide(33 * MS, false), Decision::Pass);
        gate.schedule(0, 1000 * MS, false);
        assert_eq!(
            gate.decide(966 * MS, false),
            Decision::Pass,
            "still shown at its time"
        );
        assert_eq!(gate.decide(1000 * MS, false), Decision::Drop);
        assert_eq!(
            gate.decide(1500 * MS, true),
            Decision::Drop,
            "hidden keyframes too"
        );
        gate.schedule(0, 2000 * MS, true);
        assert_eq!(gate.decide(1966 * MS, false), Decision::Drop);
        assert_eq!(gate.decide(2000 * MS, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(2033 * MS, false), Decision::Drop);
        assert_eq!(gate.decide(2066 * MS, true), Decision::Pass);
        assert_eq!(gate.decide(2100 * MS, false), Decision::Pass);
        assert_eq!(gate.dropped(), 5);
    }

    #[test]
    fn a_track_hidden_from_the_start_decodes_its_first_keyframe_only() {
        let mut gate = GateState::new(1);
        assert_eq!(gate.decide(0, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(33 * MS, true), Decision::Pass);
        assert_eq!(gate.decide(66 * MS, false), Decision::Drop);
        assert_eq!(gate.decide(2000 * MS, true), Decision::Drop);
    }

    #[test]
    fn an_unanswered_request_is_sent_again() {
        let mut gate = GateState::new(1);
        gate.schedule(0, 0, true);
        assert_eq!(gate.decide(0, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(400 * MS, false), Decision::Drop);
        assert_eq!(gate.decide(500 * MS, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(533 * MS, true), Decision::Pass);
    }

    #[test]
    fn shown_in_any_mix_or_wanted_whole_means_decoded() {
        let mut gate = GateState::new(2);
        gate.schedule(1, 0, true);
        assert_eq!(gate.decide(0, true), Decision::Pass);
        gate.schedule(1, 100 * MS, false);
        assert_eq!(gate.decide(100 * MS, false), Decision::Drop);
        gate.set_every_frame(true);
        assert_eq!(gate.decide(133 * MS, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(166 * MS, true), Decision::Pass);
        assert_eq!(gate.decide(200 * MS, false), Decision::Pass);
    }

    #[test]
    fn a_hidden_track_with_stills_decodes_one_keyframe_when_a_still_is_due() {
        let mut gate = GateState::new(1);
        let due = still_due();
        gate.set_stills(Some(due.clone()));
        // Nothing captured yet: the first keyframe is decoded for the first still.
        assert_eq!(gate.decide(0, true), Decision::Pass);
        due.store(2000 * MS, Ordering::Relaxed);
        assert_eq!(gate.decide(33 * MS, false), Decision::Drop);
        assert_eq!(gate.decide(1000 * MS, true), Decision::Drop);
        assert_eq!(gate.decide(2000 * MS, false), Decision::RequestAndDrop);
        assert_eq!(gate.decide(2033 * MS, true), Decision::Pass);
        due.store(4000 * MS, Ordering::Relaxed);
        assert_eq!(
            gate.decide(2066 * MS, false),
            Decision::Drop,
            "deltas after the still are not decoded"
        );
    }

    /// The gate on a real pad: a tile hidden from 1 s and shown again at 2 s, fed as a live
    /// track feeds it.
    #[test]
    fn the_gate_on_a_pad_drops_what_is_hidden_and_asks_the_sender_when_it_shows_again() {
        gst::init().unwrap();
        let mut h = gstreamer_check::Harness::new("identity");
        let identity = h.element().unwrap();
        let gate: SharedGate = Arc::new(Mutex::new(GateState::new(1)));
        with(&gate, |g| {
            g.schedule(0, 0, true);
            g.schedule(0, 1000 * MS, false);
            g.schedule(0, 2000 * MS, true);
        });
        install(
            &identity.static_pad("src").unwrap(),
            &identity.static_pad("sink").unwrap(),
            gate.clone(),
        );
        h.set_src_caps_str("video/x-vp8");
        let mut passed = |at_ms: u64, keyframe: bool| {
            let mut buffer = gst::Buffer::with_size(16).unwrap();
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(at_ms));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
            h.push(buffer).unwrap();
            let out = std::iter::from_fn(|| h.try_pull()).count();
            let asked = std::iter::from_fn(|| h.try_pull_upstream_event())
                .filter(|e| gstreamer_video::UpstreamForceKeyUnitEvent::parse(e).is_ok())
                .count();
            (out, asked)
        };
        assert_eq!(passed(0, true), (1, 0));
        assert_eq!(passed(500, false), (1, 0), "shown: every frame is decoded");
        assert_eq!(passed(1200, false), (0, 0), "hidden: dropped before the decoder");
        assert_eq!(
            passed(2000, false),
            (0, 1),
            "shown again: a key unit is asked for"
        );
        assert_eq!(passed(2033, false), (0, 0), "deltas wait for the keyframe");
        assert_eq!(
            passed(2066, true),
            (1, 0),
            "the keyframe asked for shows the tile"
        );
        assert_eq!(passed(2100, false), (1, 0));
        assert_eq!(
            with(&gate, |g| g.dropped()),
            3,
            "the three frames the decoder never saw"
        );
    }
}
