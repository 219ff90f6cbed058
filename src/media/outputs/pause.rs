//! Pausing a recording: nothing captured while it is paused enters the file, and the file runs on
//! across the pause with no gap. The pause takes hold at the first picture at or past the pause
//! time that no picture kept needs for decoding (the next one in display order, so the pictures
//! kept are a whole run); the recording resumes at the first keyframe at or past the resume time,
//! placed right after the last picture kept. The sound follows the pictures: it stops where the
//! last picture kept ends and starts again with the keyframe. An audio-only recording pauses and
//! resumes at the first sample past each time.

use gstreamer as gst;

/// What to do with one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
    /// Sound past the pictures while the video has not yet chosen where the pause falls.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Recording,
    Pausing {
        at: gst::ClockTime,
    },
    /// Paused; what was kept ends at `kept_until` (running time).
    Paused {
        kept_until: gst::ClockTime,
    },
    Resuming {
        at: gst::ClockTime,
        kept_until: gst::ClockTime,
    },
}

/// How much sound may wait for the video (about 10 s of AAC).
const MOST_HELD: usize = 480;
/// A picture's length when its buffer does not say (30 fps).
const PICTURE: gst::ClockTime = gst::ClockTime::from_nseconds(33_333_333);

#[derive(Debug)]
pub struct PauseGate {
    state: State,
    with_video: bool,
    /// The latest display time kept (video) and where the last kept sample ends.
    frontier: Option<gst::ClockTime>,
    kept_end: Option<gst::ClockTime>,
    /// The DTS (ns, running time) of the last picture kept and its length.
    last_decode: Option<(i64, gst::ClockTime)>,
    /// Each time taken out: from `kept_until` to `resumed_at`, and the total taken out so far.
    gaps: Vec<Gap>,
    held: usize,
    video_ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Gap {
    kept_until: gst::ClockTime,
    resumed_at: gst::ClockTime,
    removed_ns: i64,
}

impl PauseGate {
    pub fn new(with_video: bool) -> PauseGate {
        PauseGate {
            state: State::Recording,
            with_video,
            frontier: None,
            kept_end: None,
            last_decode: None,
            gaps: Vec::new(),
            held: 0,
            video_ended: false,
        }
    }

    #[cfg(test)]
    fn is_paused(&self) -> bool {
        matches!(self.state, State::Pausing { .. } | State::Paused { .. })
    }

    /// Pauses from running time `at`; false when already paused.
    pub fn pause(&mut self, at: gst::ClockTime) -> bool {
        match self.state {
            State::Recording => self.state = State::Pausing { at },
            State::Resuming { kept_until, .. } => self.state = State::Paused { kept_until },
            State::Pausing { .. } | State::Paused { .. } => return false,
        }
        true
    }

    /// Resumes from running time `at`; false when not paused.
    pub fn resume(&mut self, at: gst::ClockTime) -> bool {
        match self.state {
            // The pause never took hold: nothing was left out.
            State::Pausing { .. } => self.state = State::Recording,
            State::Paused { kept_until } => self.state = State::Resuming { at, kept_until },
            State::Recording | State::Resuming { .. } => return false,
        }
        true
    }

    /// How much time was taken out before running time `at` (ns): what to subtract from it.
    pub fn removed_before(&self, at: gst::ClockTime) -> i64 {
        self.gaps
            .iter()
            .rev()
            .find(|gap| gap.resumed_at <= at)
            .map_or(0, |gap| gap.removed_ns)
    }

    /// The held sound may now be decided (the video chose where the pause or resume falls).
    pub fn release_held(&mut self) {
        self.held = 0;
    }

    /// A picture, in decode order: its running times (DTS in ns, negative before the start).
    pub fn video(
        &mut self,
        pts: gst::ClockTime,
        dts_ns: i64,
        duration: Option<gst::ClockTime>,
        key: bool,
    ) -> Verdict {
        let duration = duration.filter(|d| !d.is_zero()).unwrap_or(PICTURE);
        match self.state {
            State::Recording => {}
            State::Pausing { at } => {
                let new_frontier = self.frontier.is_none_or(|f| pts > f);
                if new_frontier && pts >= at {
                    let kept_until = self.kept_end.unwrap_or(at);
                    self.state = State::Paused { kept_until };
                    return Verdict::Drop;
                }
            }
            State::Paused { .. } => return Verdict::Drop,
            State::Resuming { at, kept_until } => {
                if !(key && pts >= at) {
                    return Verdict::Drop;
                }
                // The keyframe is decoded right after the last picture kept.
                let removed_ns = match self.last_decode {
                    Some((last, length)) => dts_ns - (last + length.nseconds() as i64),
                    None => pts.nseconds() as i64 - kept_until.nseconds() as i64,
                };
                let before = self.gaps.last().map_or(0, |g| g.removed_ns);
                self.gaps.push(Gap {
                    kept_until,
                    resumed_at: pts,
                    removed_ns: before + removed_ns.max(0),
                });
                self.state = State::Recording;
            }
        }
        self.frontier = Some(self.frontier.map_or(pts, |f| f.max(pts)));
        self.kept_end = self.frontier.map(|f| f + duration);
        self.last_decode = Some((dts_ns, duration));
        Verdict::Keep
    }

    /// A sound sample at running time `at`.
    pub fn audio(&mut self, at: gst::ClockTime, duration: Option<gst::ClockTime>) -> Verdict {
        if !self.with_video {
            return self.lead_audio(at, duration);
        }
        if let Some(gap) = self.gaps.last()
            && at >= gap.kept_until
            && at < gap.resumed_at
        {
            return Verdict::Drop;
        }
        // The sound goes in no further than the pictures: a pause then cuts both at one time.
        let pictured = self.video_ended || self.kept_end.is_some_and(|end| at < end);
        match self.state {
            State::Recording if pictured => Verdict::Keep,
            // A video that stopped must not cost the sound.
            State::Recording => self.hold().unwrap_or(Verdict::Keep),
            State::Pausing { .. } if pictured => Verdict::Keep,
            State::Pausing { .. } => self.hold().unwrap_or(Verdict::Drop),
            State::Paused { kept_until } if at < kept_until => Verdict::Keep,
            State::Paused { .. } => Verdict::Drop,
            State::Resuming { kept_until, .. } if at < kept_until => Verdict::Keep,
            State::Resuming { at: resume_at, .. } if at >= resume_at => self.hold().unwrap_or(Verdict::Drop),
            State::Resuming { .. } => Verdict::Drop,
        }
    }

    fn lead_audio(&mut self, at: gst::ClockTime, duration: Option<gst::ClockTime>) -> Verdict {
        match self.state {
            State::Recording => {}
            State::Pausing { at: pause_at } => {
                if at >= pause_at {
                    let kept_until = self.kept_end.unwrap_or(pause_at);
                    self.state = State::Paused { kept_until };
                    return Verdict::Drop;
                }
            }
            State::Paused { .. } => return Verdict::Drop,
            State::Resuming {
                at: resume_at,
                kept_until,
            } => {
                if at < resume_at {
                    return Verdict::Drop;
                }
                let removed_ns = at.nseconds() as i64 - kept_until.nseconds() as i64;
                let before = self.gaps.last().map_or(0, |g| g.removed_ns);
                self.gaps.push(Gap {
                    kept_until,
                    resumed_at: at,
                    removed_ns: before + removed_ns.max(0),
                });
                self.state = State::Recording;
            }
        }
        self.kept_end = Some(at + duration.unwrap_or(gst::ClockTime::ZERO));
        Verdict::Keep
    }

    fn hold(&mut self) -> Option<Verdict> {
        (self.held < MOST_HELD).then(|| {
            self.held += 1;
            Verdict::Hold
        })
    }

    /// The pictures have ended: the sound no longer waits for them.
    pub fn video_ended(&mut self) {
        self.video_ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(n)
    }

    /// x264's order with two B-pictures: I0 P3 B1 B2 P6 B4 B5 …, 100 ms apart, DTS two behind.
    fn decode_order(from: u64, count: u64) -> Vec<(u64, bool)> {
        let mut order = Vec::new();
        let mut n = from;
        while order.len() < count as usize {
            if n == from {
                order.push((n, true));
                n += 1;
                continue;
            }
            order.push((n + 2, false));
            order.push((n, false));
            order.push((n + 1, false));
            n += 3;
        }
        order
    }

    fn feed(gate: &mut PauseGate, pictures: &[(u64, bool)], first_dts: u64) -> Vec<u64> {
        let mut kept = Vec::new();
        for (i, &(n, key)) in pictures.iter().enumerate() {
            let dts = (first_dts + i as u64) as i64 * 100_000_000 - 200_000_000;
            if gate.video(ms(n * 100), dts, Some(ms(100)), key) == Verdict::Keep {
                kept.push(n);
            }
        }
        kept
    }

    #[test]
    fn the_pictures_kept_before_a_pause_are_a_whole_run_ending_before_it() {
        let mut gate = PauseGate::new(true);
        let pictures = decode_order(0, 10);
        assert_eq!(feed(&mut gate, &pictures[..2], 0), [0, 3]);
        gate.pause(ms(200));
        let mut kept = feed(&mut gate, &pictures[2..], 2);
        kept.sort();
        // P3 is kept already, so B1 and B2 before it are too; P6 is the first new picture past 200 ms.
        assert_eq!(kept, [1, 2]);
        assert_eq!(
            gate.audio(ms(350), None),
            Verdict::Keep,
            "sound of the last picture kept"
        );
        assert_eq!(gate.audio(ms(400), None), Verdict::Drop, "sound past it");
    }

    #[test]
    fn a_resume_waits_for_a_keyframe_and_closes_the_gap() {
        let mut gate = PauseGate::new(true);
        let before = decode_order(0, 7); // 0, 3, 1, 2, 6, 4, 5
        feed(&mut gate, &before, 0);
        gate.pause(ms(700));
        gate.video(ms(900), 500_000_000, Some(ms(100)), false);
        assert!(gate.is_paused());
        assert_eq!(gate.audio(ms(800), None), Verdict::Drop);
        gate.resume(ms(1000));
        assert_eq!(
            gate.video(ms(1200), 1_000_000_000, Some(ms(100)), false),
            Verdict::Drop
        );
        assert_eq!(
            gate.audio(ms(1300), None),
            Verdict::Hold,
            "sound waits for the keyframe"
        );
        // The keyframe at 2000 ms (DTS 1800) follows the last picture kept (DTS 400, 100 ms long).
        assert_eq!(
            gate.video(ms(2000), 1_800_000_000, Some(ms(100)), true),
            Verdict::Keep
        );
        assert_eq!(gate.removed_before(ms(2000)), 1_300_000_000);
        assert_eq!(gate.removed_before(ms(600)), 0);
        gate.release_held();
        assert_eq!(
            gate.audio(ms(1300), None),
            Verdict::Drop,
            "sound of the pause stays out"
        );
        assert_eq!(gate.audio(ms(2000), None), Verdict::Keep);
        assert_eq!(
            gate.audio(ms(650), None),
            Verdict::Keep,
            "late sound from before the pause"
        );
    }

    #[test]
    fn sound_ahead_of_the_pictures_waits_for_them() {
        let mut gate = PauseGate::new(true);
        assert_eq!(gate.audio(ms(0), None), Verdict::Hold, "no picture yet");
        feed(&mut gate, &decode_order(0, 2), 0);
        gate.release_held();
        assert_eq!(gate.audio(ms(0), None), Verdict::Keep);
        assert_eq!(
            gate.audio(ms(390), None),
            Verdict::Keep,
            "P3 is shown until 400 ms"
        );
        assert_eq!(gate.audio(ms(400), None), Verdict::Hold);
        gate.video_ended();
        gate.release_held();
        assert_eq!(gate.audio(ms(400), None), Verdict::Keep, "the pictures ended");
    }

    #[test]
    fn a_resume_before_the_pause_took_hold_leaves_nothing_out() {
        let mut gate = PauseGate::new(true);
        feed(&mut gate, &decode_order(0, 2), 0);
        assert!(gate.pause(ms(5000)));
        assert!(!gate.pause(ms(5000)), "already paused");
        assert!(gate.resume(ms(5100)));
        assert!(!gate.resume(ms(5100)), "not paused");
        assert_eq!(gate.video(ms(6000), 5_800_000_000, None, false), Verdict::Keep);
        assert_eq!(gate.removed_before(ms(6000)), 0);
    }

    #[test]
    fn sound_alone_pauses_and_resumes_at_the_first_sample_past_each_time() {
        let mut gate = PauseGate::new(false);
        let frame = Some(ms(20));
        assert_eq!(gate.audio(ms(0), frame), Verdict::Keep);
        assert_eq!(gate.audio(ms(20), frame), Verdict::Keep);
        gate.pause(ms(30));
        assert_eq!(gate.audio(ms(40), frame), Verdict::Drop);
        gate.resume(ms(100));
        assert_eq!(gate.audio(ms(80), frame), Verdict::Drop);
        assert_eq!(gate.audio(ms(100), frame), Verdict::Keep);
        assert_eq!(
            gate.removed_before(ms(100)),
            60_000_000,
            "40 ms kept up to, 100 resumed at"
        );
        for at in [120, 140, 160, 180] {
            assert_eq!(gate.audio(ms(at), frame), Verdict::Keep);
        }
        gate.pause(ms(200));
        gate.audio(ms(200), frame);
        gate.resume(ms(300));
        gate.audio(ms(300), frame);
        assert_eq!(gate.removed_before(ms(300)), 160_000_000, "both pauses taken out");
    }

    #[test]
    fn sound_stops_waiting_for_a_video_that_stopped() {
        let mut gate = PauseGate::new(true);
        feed(&mut gate, &decode_order(0, 1), 0);
        gate.pause(ms(50));
        for n in 0..MOST_HELD as u64 {
            assert_eq!(gate.audio(ms(200 + n), None), Verdict::Hold);
        }
        assert_eq!(gate.audio(ms(900), None), Verdict::Drop);
    }
}
