//! Where each encoded sample of a recording goes: which part, and when a new part opens. Parts
//! open at a keyframe of the video (any sample of an audio-only recording) once the part has
//! lasted `max_part`; audio follows the cut by its own timestamps, so a part holds the sound of
//! exactly the pictures it holds, whichever stream reaches the writer first.

use gstreamer as gst;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Video,
    Audio,
}

/// What to do with one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Before the first keyframe: nothing could play it.
    Drop,
    /// Audio past the point where a cut is due, before the video has chosen the cut: kept until
    /// it knows which part it belongs to.
    Hold,
    /// Open a new part starting with this sample; the part before stays open for the audio
    /// that is still due to it.
    Open,
    /// Audio from before the last cut, arriving after it: it belongs to the part before.
    Previous,
    /// Into the current part; `close_previous` once no more audio can belong to the part before.
    Current { close_previous: bool },
}

/// How many audio samples may wait for the video to cut (about 10 s of AAC): past that the
/// video has stopped, and the audio goes on in the current part.
const MOST_HELD: usize = 480;

#[derive(Debug)]
pub struct Cutter {
    max_part: gst::ClockTime,
    /// Whether the video leads the cuts (false for audio only, and once the video has ended).
    video_leads: bool,
    part_start: Option<gst::ClockTime>,
    /// Where the last cut was, while the part before it still takes audio.
    previous_until: Option<gst::ClockTime>,
    held: usize,
}

impl Cutter {
    pub fn new(max_part: gst::ClockTime, with_video: bool) -> Cutter {
        Cutter {
            max_part,
            video_leads: with_video,
            part_start: None,
            previous_until: None,
            held: 0,
        }
    }

    /// Routes one sample by its running time; `key` when it can start a file.
    pub fn route(&mut self, stream: Stream, at: gst::ClockTime, key: bool) -> Route {
        let leads = match stream {
            Stream::Video => self.video_leads,
            Stream::Audio => !self.video_leads,
        };
        if leads {
            return self.lead(at, key);
        }
        if stream == Stream::Video {
            // Video after it stopped leading (it ended): nothing to place it in.
            return Route::Drop;
        }
        let Some(start) = self.part_start else {
            // The encoder's delay puts the sound ahead of the first picture: it waits for it.
            return self.hold().unwrap_or(Route::Drop);
        };
        if let Some(cut) = self.previous_until {
            if at < cut {
                return Route::Previous;
            }
            self.previous_until = None;
            return Route::Current { close_previous: true };
        }
        if at < start {
            return Route::Drop;
        }
        if at >= start + self.max_part
            && let Some(hold) = self.hold()
        {
            return hold;
        }
        Route::Current {
            close_previous: false,
        }
    }

    fn hold(&mut self) -> Option<Route> {
        (self.held < MOST_HELD).then(|| {
            self.held += 1;
            Route::Hold
        })
    }

    /// The video ended first: the audio cuts its parts from now on. Held audio is routed again.
    pub fn video_ended(&mut self) {
        self.video_leads = false;
    }

    /// The held audio is about to be routed again (after a cut, or when the video ended).
    pub fn release_held(&mut self) {
        self.held = 0;
    }

    fn lead(&mut self, at: gst::ClockTime, key: bool) -> Route {
        match self.part_start {
            None if key => {
                self.part_start = Some(at);
                Route::Open
            }
            None => Route::Drop,
            Some(start) if key && at >= start + self.max_part => {
                self.part_start = Some(at);
                // Audio that leads opens its own parts and is never late for the one before.
                self.previous_until = self.video_leads.then_some(at);
                Route::Open
            }
            Some(_) => Route::Current {
                close_previous: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds((seconds * 1e9) as u64)
    }

    #[test]
    fn nothing_is_kept_before_the_first_keyframe_and_sound_waits_for_it() {
        let mut cutter = Cutter::new(s(10.0), true);
        assert_eq!(cutter.route(Stream::Audio, s(0.0), true), Route::Hold);
        assert_eq!(cutter.route(Stream::Audio, s(0.2), true), Route::Hold);
        assert_eq!(cutter.route(Stream::Video, s(0.0), false), Route::Drop);
        assert_eq!(cutter.route(Stream::Video, s(0.1), true), Route::Open);
        cutter.release_held();
        assert_eq!(cutter.route(Stream::Audio, s(0.0), true), Route::Drop);
        assert_eq!(
            cutter.route(Stream::Audio, s(0.2), true),
            Route::Current {
                close_previous: false
            }
        );
    }

    #[test]
    fn the_cut_waits_for_a_keyframe_and_early_audio_waits_for_the_cut() {
        let mut cutter = Cutter::new(s(10.0), true);
        assert_eq!(cutter.route(Stream::Video, s(0.0), true), Route::Open);
        assert_eq!(
            cutter.route(Stream::Video, s(10.5), false),
            Route::Current {
                close_previous: false
            }
        );
        // The audio is ahead of the video: it cannot know yet where the cut falls.
        assert_eq!(cutter.route(Stream::Audio, s(10.6), true), Route::Hold);
        assert_eq!(cutter.route(Stream::Audio, s(12.1), true), Route::Hold);
        assert_eq!(cutter.route(Stream::Video, s(12.0), true), Route::Open);
        cutter.release_held();
        assert_eq!(cutter.route(Stream::Audio, s(10.6), true), Route::Previous);
        assert_eq!(
            cutter.route(Stream::Audio, s(12.1), true),
            Route::Current { close_previous: true }
        );
        assert_eq!(
            cutter.route(Stream::Audio, s(12.2), true),
            Route::Current {
                close_previous: false
            }
        );
    }

    #[test]
    fn late_audio_goes_to_the_part_before_the_cut() {
        let mut cutter = Cutter::new(s(2.0), true);
        cutter.route(Stream::Video, s(0.0), true);
        assert_eq!(cutter.route(Stream::Video, s(2.0), true), Route::Open);
        assert_eq!(cutter.route(Stream::Audio, s(1.9), true), Route::Previous);
        assert_eq!(
            cutter.route(Stream::Audio, s(2.0), true),
            Route::Current { close_previous: true }
        );
    }

    #[test]
    fn audio_alone_cuts_at_any_sample() {
        let mut cutter = Cutter::new(s(2.0), false);
        assert_eq!(cutter.route(Stream::Audio, s(0.0), true), Route::Open);
        assert_eq!(
            cutter.route(Stream::Audio, s(1.99), true),
            Route::Current {
                close_previous: false
            }
        );
        assert_eq!(cutter.route(Stream::Audio, s(2.0), true), Route::Open);
        assert_eq!(
            cutter.route(Stream::Audio, s(2.02), true),
            Route::Current {
                close_previous: false
            }
        );
    }

    #[test]
    fn audio_stops_waiting_when_the_video_stops() {
        let mut cutter = Cutter::new(s(1.0), true);
        cutter.route(Stream::Video, s(0.0), true);
        for n in 0..MOST_HELD {
            assert_eq!(
                cutter.route(Stream::Audio, s(1.0 + n as f64 * 0.02), true),
                Route::Hold
            );
        }
        assert_eq!(
            cutter.route(Stream::Audio, s(20.0), true),
            Route::Current {
                close_previous: false
            }
        );
    }

    #[test]
    fn once_the_video_ends_the_audio_cuts() {
        let mut cutter = Cutter::new(s(2.0), true);
        cutter.route(Stream::Video, s(0.0), true);
        assert_eq!(cutter.route(Stream::Audio, s(2.5), true), Route::Hold);
        cutter.video_ended();
        cutter.release_held();
        assert_eq!(cutter.route(Stream::Audio, s(2.5), true), Route::Open);
        assert_eq!(cutter.route(Stream::Video, s(2.6), true), Route::Drop);
    }
}
