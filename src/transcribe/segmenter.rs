//! Cuts one speaker's 16 kHz audio into utterances by voice activity: an utterance starts with
//! the first voiced 20 ms frame (with a little audio before it) and closes after
//! `silence` without voice, or once it has lasted `max_speech`.
//!
//! Voice activity is the frame's loudness against a floor that follows the speaker's quiet
//! level, so steady background noise does not count as speech. Tones count as voice here; the
//! model finds no words in them and no caption is made.

use super::model::SAMPLE_RATE;
use std::time::Duration;

const FRAME: usize = (SAMPLE_RATE / 50) as usize;
/// Audio kept before the first voiced frame, so the first syllable is not clipped.
const PRE_ROLL_FRAMES: usize = 10;
/// A frame is voiced when this much louder than the noise floor, and above the absolute floor.
const ABOVE_FLOOR_DB: f32 = 12.0;
const ABSOLUTE_FLOOR_DB: f32 = -50.0;
/// Shorter bursts (a click, a cough) are not sent to the model.
const SHORTEST_SPEECH: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    pub max_speech: Duration,
    pub silence: Duration,
}

/// A stretch of speech and when it was said (call time of its first and last sample).
#[derive(Debug, Clone)]
pub struct Utterance {
    pub start: Duration,
    pub end: Duration,
    pub samples: Vec<f32>,
}

pub struct Segmenter {
    config: SegmenterConfig,
    /// Call time of the next sample expected.
    next_at: Option<Duration>,
    /// Samples not yet making a whole frame.
    partial: Vec<f32>,
    partial_at: Duration,
    /// Recent unvoiced frames, the pre-roll of the next utterance.
    recent: std::collections::VecDeque<(Duration, Vec<f32>)>,
    current: Option<Open>,
    noise_floor_db: f32,
}

struct Open {
    start: Duration,
    samples: Vec<f32>,
    voiced: Duration,
    /// End of the last voiced frame.
    last_voice_end: Duration,
    /// Samples up to the end of the last voiced frame.
    voiced_len: usize,
    silent_for: Duration,
}

fn frame_duration() -> Duration {
    Duration::from_millis(20)
}

fn duration_of(samples: usize) -> Duration {
    Duration::from_nanos(samples as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE))
}

fn loudness_db(frame: &[f32]) -> f32 {
    let power = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * power.max(1e-12).log10()
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Segmenter {
        Segmenter {
            config,
            next_at: None,
            partial: Vec::new(),
            partial_at: Duration::ZERO,
            recent: std::collections::VecDeque::new(),
            current: None,
            noise_floor_db: ABSOLUTE_FLOOR_DB,
        }
    }

    /// Takes samples whose first belongs at call time `at`; returns the utterances they close.
    pub fn push(&mut self, at: Duration, samples: &[f32]) -> Vec<Utterance> {
        let mut closed = Vec::new();
        // A jump in time (a track that paused): what was open ends where it was.
        let expected = self.next_at.unwrap_or(at);
        let gap = at.saturating_sub(expected) > Duration::from_millis(100);
        if gap {
            closed.extend(self.close());
            self.partial.clear();
            self.recent.clear();
        }
        if self.partial.is_empty() {
            self.partial_at = at;
        }
        self.next_at = Some(at + duration_of(samples.len()));
        self.partial.extend_from_slice(samples);
        let mut offset = 0;
        while self.partial.len() - offset >= FRAME {
            let frame: Vec<f32> = self.partial[offset..offset + FRAME].to_vec();
            let frame_at = self.partial_at + duration_of(offset);
            closed.extend(self.frame(frame_at, frame));
            offset += FRAME;
        }
        self.partial.drain(..offset);
        self.partial_at += duration_of(offset);
        closed
    }

    /// Ends the stream: the open utterance, if any, is closed.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.close()
    }

    fn frame(&mut self, at: Duration, frame: Vec<f32>) -> Option<Utterance> {
        let level = loudness_db(&frame);
        let voiced = level > ABSOLUTE_FLOOR_DB && level > self.noise_floor_db + ABOVE_FLOOR_DB;
        if !voiced {
            // The floor follows quiet frames quickly and loud ones slowly.
            let rate = if level < self.noise_floor_db { 0.3 } else { 0.02 };
            self.noise_floor_db += (level.max(-90.0) - self.noise_floor_db) * rate;
        }
        let end = at + frame_duration();
        let mut done = None;
        match &mut self.current {
            None if voiced => {
                let mut samples = Vec::new();
                let start = self.recent.front().map_or(at, |(t, _)| *t);
                for (_, earlier) in self.recent.drain(..) {
                    samples.extend(earlier);
                }
                samples.extend(&frame);
                self.current = Some(Open {
                    start,
                    voiced_len: samples.len(),
                    samples,
                    voiced: frame_duration(),
                    last_voice_end: end,
                    silent_for: Duration::ZERO,
                });
            }
            None => {
                self.recent.push_back((at, frame));
                if self.recent.len() > PRE_ROLL_FRAMES {
                    self.recent.pop_front();
                }
            }
            Some(open) => {
                open.samples.extend(&frame);
                if voiced {
                    open.voiced += frame_duration();
                    open.last_voice_end = end;
                    open.voiced_len = open.samples.len();
                    open.silent_for = Duration::ZERO;
                } else {
                    open.silent_for += frame_duration();
                }
                let length = end.saturating_sub(open.start);
                if open.silent_for >= self.config.silence || length >= self.config.max_speech {
                    done = self.close();
                }
            }
        }
        done
    }

    fn close(&mut self) -> Option<Utterance> {
        let mut open = self.current.take()?;
        if open.voiced < SHORTEST_SPEECH {
            return None;
        }
        // Trailing silence is not part of what was said.
        open.samples.truncate(open.voiced_len);
        Some(Utterance {
            start: open.start,
            end: open.last_voice_end,
            samples: open.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(silence_ms: u64, max_ms: u64) -> SegmenterConfig {
        SegmenterConfig {
            silence: Duration::from_millis(silence_ms),
            max_speech: Duration::from_millis(max_ms),
        }
    }

    /// `ms` of a 200 Hz tone at amplitude 0.3 (voiced) or of near-silence.
    fn sound(ms: u64, voiced: bool) -> Vec<f32> {
        let n = (ms * u64::from(SAMPLE_RATE) / 1000) as usize;
        (0..n)
            .map(|i| {
                if voiced {
                    0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 200.0 / SAMPLE_RATE as f32).sin()
                } else {
                    0.0005 * ((i * 7919 % 13) as f32 / 13.0 - 0.5)
                }
            })
            .collect()
    }

    /// Feeds the pieces in 10 ms buffers from call time zero; returns all utterances.
    fn run(segmenter: &mut Segmenter, pieces: &[(u64, bool)]) -> Vec<Utterance> {
        let audio: Vec<f32> = pieces.iter().flat_map(|&(ms, v)| sound(ms, v)).collect();
        let mut out = Vec::new();
        for (i, chunk) in audio.chunks(160).enumerate() {
            out.extend(segmenter.push(Duration::from_millis(i as u64 * 10), chunk));
        }
        out.extend(segmenter.finish());
        out
    }

    #[test]
    fn a_pause_longer_than_the_silence_setting_splits_speech() {
        let mut s = Segmenter::new(config(700, 9000));
        let found = run(
            &mut s,
            &[
                (500, false),
                (1500, true),
                (1000, false),
                (1200, true),
                (300, false),
            ],
        );
        assert_eq!(found.len(), 2, "{found:?}");
        // Starts a little before the voice (pre-roll), ends with it.
        assert_eq!(found[0].start, Duration::from_millis(300));
        assert_eq!(found[0].end, Duration::from_millis(2000));
        assert_eq!(found[1].end, Duration::from_millis(4200));
    }

    #[test]
    fn a_pause_shorter_than_the_silence_setting_does_not() {
        let mut s = Segmenter::new(config(700, 9000));
        let found = run(&mut s, &[(1500, true), (400, false), (1500, true), (800, false)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].end, Duration::from_millis(3400));
    }

    #[test]
    fn continuous_speech_is_cut_at_the_longest_caption() {
        let mut s = Segmenter::new(config(700, 5000));
        let found = run(&mut s, &[(25_000, true)]);
        assert!(found.len() >= 5, "{}", found.len());
        for u in &found {
            assert!(
                u.end - u.start <= Duration::from_millis(5000),
                "{:?}",
                u.end - u.start
            );
        }
        let covered: Duration = found.iter().map(|u| u.end - u.start).sum();
        assert!(covered >= Duration::from_millis(24_900), "{covered:?}");
    }

    #[test]
    fn silence_and_clicks_give_nothing() {
        let mut s = Segmenter::new(config(300, 9000));
        assert!(run(&mut s, &[(3000, false), (60, true), (3000, false)]).is_empty());
    }
}
