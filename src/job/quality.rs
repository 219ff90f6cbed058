use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Output quality presets of the recording settings model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Quality {
    #[serde(rename = "360p")]
    P360,
    #[serde(rename = "480p")]
    P480,
    #[default]
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "1080p")]
    P1080,
    #[serde(rename = "1440p")]
    P1440,
    #[serde(rename = "portrait-360x640")]
    Portrait360,
    #[serde(rename = "portrait-480x854")]
    Portrait480,
    #[serde(rename = "portrait-720x1280")]
    Portrait720,
    #[serde(rename = "portrait-1080x1920")]
    Portrait1080,
    #[serde(rename = "portrait-1440x2560")]
    Portrait1440,
}

impl Quality {
    /// Output width and height in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Quality::P360 => (640, 360),
            Quality::P480 => (854, 480),
            Quality::P720 => (1280, 720),
            Quality::P1080 => (1920, 1080),
            Quality::P1440 => (2560, 1440),
            Quality::Portrait360 => (360, 640),
            Quality::Portrait480 => (480, 854),
            Quality::Portrait720 => (720, 1280),
            Quality::Portrait1080 => (1080, 1920),
            Quality::Portrait1440 => (1440, 2560),
        }
    }

    /// The preset's name as it appears in jobs, e.g. `720p`.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The landscape preset with the same number of lines, which carries the encoder settings.
    pub fn landscape(self) -> Quality {
        match self {
            Quality::Portrait360 => Quality::P360,
            Quality::Portrait480 => Quality::P480,
            Quality::Portrait720 => Quality::P720,
            Quality::Portrait1080 => Quality::P1080,
            Quality::Portrait1440 => Quality::P1440,
            q => q,
        }
    }
}

/// One rendition of an HLS broadcast: a video quality with its sound, or the sound alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HlsTrack {
    Video(Quality),
    Audio(SoundOnly),
}

/// The rendition without video (AAC only), which app stores ask HLS apps to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SoundOnly {
    #[serde(rename = "audio-only")]
    AudioOnly,
}

impl HlsTrack {
    pub const AUDIO_ONLY: HlsTrack = HlsTrack::Audio(SoundOnly::AudioOnly);

    /// The name as it appears in jobs, and as the rendition's folder.
    pub fn name(self) -> String {
        match self {
            HlsTrack::Video(q) => q.name(),
            HlsTrack::Audio(_) => "audio-only".to_owned(),
        }
    }

    pub fn video(self) -> Option<Quality> {
        match self {
            HlsTrack::Video(q) => Some(q),
            HlsTrack::Audio(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_tracks_are_qualities_or_audio_only() {
        let tracks: Vec<HlsTrack> = serde_json::from_str(r#"["720p", "audio-only"]"#).unwrap();
        assert_eq!(tracks, [HlsTrack::Video(Quality::P720), HlsTrack::AUDIO_ONLY]);
        assert_eq!(tracks[1].name(), "audio-only");
        assert_eq!(
            serde_json::to_string(&tracks).unwrap(),
            r#"["720p","audio-only"]"#
        );
    }

    #[test]
    fn portrait_presets_swap_the_landscape_size() {
        for q in [Quality::Portrait360, Quality::Portrait720, Quality::Portrait1440] {
            let (w, h) = q.size();
            assert_eq!(q.landscape().size(), (h, w), "{}", q.name());
        }
        assert_eq!(Quality::Portrait480.size(), (480, 854));
    }

    #[test]
    fn names_round_trip_through_serde() {
        let q: Quality = serde_json::from_str("\"portrait-1080x1920\"").unwrap();
        assert_eq!(q, Quality::Portrait1080);
        assert_eq!(Quality::P720.name(), "720p");
    }
}
