use crate::job::Quality;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
pub struct EncoderPresets {
    pub video: VideoPresets,
    pub audio: AudioPreset,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VideoPresets {
    pub framerate: u32,
    pub keyframe_interval_s: u32,
    pub x264_speed_preset: String,
    bitrate_kbps: BTreeMap<String, u32>,
    h264_level: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioPreset {
    pub sample_rate: u32,
    pub channels: u32,
    pub aac_bitrate_kbps: u32,
}

impl VideoPresets {
    /// The H.264 level of a quality, e.g. "3.1".
    pub fn h264_level(&self, quality: Quality) -> &str {
        self.h264_level
            .get(&quality.landscape().name())
            .map_or("4", String::as_str)
    }

    /// The RFC 6381 codec string of the video of a quality (High profile).
    pub fn codec_string(&self, quality: Quality) -> String {
        let level = self.h264_level(quality);
        let idc = (level.parse::<f64>().unwrap_or(4.0) * 10.0).round() as u32;
        format!("avc1.6400{idc:02x}")
    }

    pub fn bitrate_kbps(&self, quality: Quality) -> u32 {
        self.bitrate_kbps
            .get(&quality.landscape().name())
            .copied()
            .unwrap_or(2500)
    }
}

/// The encoder presets of `pipelines/presets.toml`, embedded at build time.
pub fn presets() -> &'static EncoderPresets {
    static PRESETS: OnceLock<EncoderPresets> = OnceLock::new();
    PRESETS.get_or_init(|| {
        toml::from_str(include_str!("../../pipelines/presets.toml")).expect("pipelines/presets.toml is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings_carry_the_level() {
        let p = presets();
        assert_eq!(p.video.codec_string(Quality::P720), "avc1.64001f");
        assert_eq!(p.video.codec_string(Quality::P360), "avc1.64001e");
        assert_eq!(p.video.codec_string(Quality::P1080), "avc1.640028");
        assert_eq!(p.video.codec_string(Quality::Portrait1440), "avc1.640032");
    }

    #[test]
    fn every_landscape_quality_has_a_bitrate_and_higher_is_more() {
        let p = presets();
        let rates: Vec<u32> = [
            Quality::P360,
            Quality::P480,
            Quality::P720,
            Quality::P1080,
            Quality::P1440,
        ]
        .iter()
        .map(|q| {
            let name = q.name();
            *p.video
                .bitrate_kbps
                .get(&name)
                .unwrap_or_else(|| panic!("no bitrate for {name}"))
        })
        .collect();
        assert!(rates.windows(2).all(|w| w[0] < w[1]), "{rates:?}");
        assert_eq!(
            p.video.bitrate_kbps(Quality::Portrait720),
            p.video.bitrate_kbps(Quality::P720)
        );
    }
}
