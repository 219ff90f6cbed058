//! Who is speaking, from each participant's audio level, with hysteresis so that a cough does
//! not steal the spotlight and a breath does not end a sentence.

use std::collections::HashMap;
use std::time::Duration;

/// Level above which audio counts as voice, in dBFS (RMS over one level interval).
pub const VOICE_DB: f64 = -45.0;
/// Voice must last this long before a participant is speaking.
const ATTACK: Duration = Duration::from_millis(300);
/// Silence must last this long before a participant stops speaking.
const RELEASE: Duration = Duration::from_millis(1200);
/// A new dominant speaker must have spoken this long, and the current one be silent.
const DOMINANCE: Duration = Duration::from_millis(1000);

#[derive(Debug, Default)]
struct Voice {
    speaking: bool,
    /// Since when the level has been on the other side of the threshold.
    crossing_since: Option<Duration>,
    /// Since when the participant has been speaking.
    speaking_since: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct SpeakingDetector {
    voices: HashMap<String, Voice>,
    dominant: Option<String>,
}

impl SpeakingDetector {
    /// Feeds one level reading taken at `at` (call time); true when who is speaking, or who is
    /// the dominant speaker, changed.
    pub fn update(&mut self, user_id: &str, level_db: f64, at: Duration) -> bool {
        let voice = self.voices.entry(user_id.to_owned()).or_default();
        let loud = level_db > VOICE_DB;
        let mut changed = false;
        if loud == voice.speaking {
            voice.crossing_since = None;
        } else {
            let since = *voice.crossing_since.get_or_insert(at);
            let hold = if loud { ATTACK } else { RELEASE };
            if at.saturating_sub(since) >= hold {
                voice.speaking = loud;
                voice.speaking_since = loud.then_some(since);
                voice.crossing_since = None;
                changed = true;
            }
        }
        self.elect(at) || changed
    }

    /// Forgets a participant who left.
    pub fn remove(&mut self, user_id: &str) -> bool {
        self.voices.remove(user_id);
        if self.dominant.as_deref() == Some(user_id) {
            self.dominant = None;
            return true;
        }
        false
    }

    pub fn is_speaking(&self, user_id: &str) -> bool {
        self.voices.get(user_id).is_some_and(|v| v.speaking)
    }

    pub fn dominant(&self) -> Option<&str> {
        self.dominant.as_deref()
    }

    /// Who speaks, in user id order.
    pub fn speakers(&self) -> Vec<String> {
        let mut speakers: Vec<String> = self
            .voices
            .iter()
            .filter(|(_, v)| v.speaking)
            .map(|(id, _)| id.clone())
            .collect();
        speakers.sort();
        speakers
    }

    /// Takes who speaks and who is dominant as recorded (a render of a past call), not from levels.
    pub fn set(&mut self, speaking: &[String], dominant: Option<&str>) {
        self.voices.clear();
        for id in speaking {
            self.voices.insert(
                id.clone(),
                Voice {
                    speaking: true,
                    ..Voice::default()
                },
            );
        }
        self.dominant = dominant.map(str::to_owned);
    }

    /// The longest current speaker becomes dominant once the dominant one is silent.
    fn elect(&mut self, at: Duration) -> bool {
        let current_speaks = self.dominant.as_deref().is_some_and(|d| self.is_speaking(d));
        if current_speaks {
            return false;
        }
        let candidate = self
            .voices
            .iter()
            .filter_map(|(id, v)| v.speaking_since.filter(|_| v.speaking).map(|since| (since, id)))
            .filter(|(since, _)| at.saturating_sub(*since) >= DOMINANCE)
            .min()
            .map(|(_, id)| id.clone());
        match candidate {
            Some(id) if self.dominant.as_ref() != Some(&id) => {
                self.dominant = Some(id);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Feeds `levels` for one user, one reading every 100 ms from `start`.
    fn feed(d: &mut SpeakingDetector, user: &str, start: u64, levels: &[f64]) {
        for (i, level) in levels.iter().enumerate() {
            d.update(user, *level, ms(start + 100 * i as u64));
        }
    }

    #[test]
    fn a_short_cough_is_not_speech() {
        let mut d = SpeakingDetector::default();
        feed(&mut d, "a", 0, &[-80.0, -20.0, -20.0, -80.0, -80.0]);
        assert!(!d.is_speaking("a"));
        assert_eq!(d.dominant(), None);
    }

    #[test]
    fn sustained_voice_speaks_and_a_pause_does_not_end_it() {
        let mut d = SpeakingDetector::default();
        feed(&mut d, "a", 0, &[-20.0; 5]);
        assert!(d.is_speaking("a"));
        feed(&mut d, "a", 500, &[-80.0; 5]);
        assert!(d.is_speaking("a"), "a half-second pause keeps the floor");
        feed(&mut d, "a", 1000, &[-80.0; 10]);
        assert!(!d.is_speaking("a"));
    }

    #[test]
    fn dominance_moves_only_when_the_dominant_speaker_is_silent() {
        let mut d = SpeakingDetector::default();
        feed(&mut d, "a", 0, &[-20.0; 15]);
        assert_eq!(d.dominant(), Some("a"));
        feed(&mut d, "b", 0, &[-80.0; 5]);
        feed(&mut d, "b", 500, &[-20.0; 20]);
        assert_eq!(d.dominant(), Some("a"), "a still talks");
        feed(&mut d, "a", 1500, &[-80.0; 15]);
        d.update("b", -20.0, ms(3000));
        assert_eq!(d.dominant(), Some("b"));
        assert!(d.remove("b"));
        assert_eq!(d.dominant(), None);
    }
}
