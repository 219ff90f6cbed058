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
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioPreset {
    pub sample_rate: u32,
    pub channels: u32,
    pub aac_bitrate_kbps: u32,
}

impl VideoPresets {
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
