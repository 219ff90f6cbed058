//! HLS: one `hlssink2` per rendition (MPEG-TS segments and a live media playlist), and the
//! master playlist that lists them.

use super::super::{make, presets};
use super::branch;
use crate::job::Quality;
use crate::media::Composite;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::{Path, PathBuf};

pub struct HlsSpec {
    pub mix: usize,
    pub renditions: Vec<Quality>,
    pub segment_duration_s: u32,
    /// Spool folder; each rendition gets a sub-folder named after its quality.
    pub dir: PathBuf,
}

/// Where a rendition's files are written.
#[derive(Debug, Clone)]
pub struct HlsRendition {
    pub quality: Quality,
    pub dir: PathBuf,
    pub playlist: PathBuf,
}

pub fn attach_hls(composite: &mut Composite, spec: &HlsSpec) -> anyhow::Result<Vec<HlsRendition>> {
    let mut renditions = Vec::new();
    for &quality in &spec.renditions {
        let dir = spec.dir.join(quality.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let playlist = dir.join("index.m3u8");
        let sink = make("hlssink2")?;
        sink.set_property(
            "location",
            dir.join("segment%05d.ts").to_string_lossy().to_string(),
        );
        sink.set_property("playlist-location", playlist.to_string_lossy().to_string());
        sink.set_property("target-duration", spec.segment_duration_s);
        // Keep every segment in the playlist and on disk: the broadcast is also a replay.
        sink.set_property("playlist-length", 0u32);
        sink.set_property("max-files", 0u32);
        // Keyframes come at a fixed interval from the shared encoder; requests from one
        // rendition would misalign the others.
        sink.set_property("send-keyframe-requests", false);
        composite.pipeline().add(&sink)?;
        let video = composite.encoded_video(spec.mix, quality)?;
        branch(
            composite.pipeline(),
            &video,
            "h264parse",
            &sink.request_pad_simple("video").context("hlssink2 video pad")?,
        )?;
        branch(
            composite.pipeline(),
            &composite.encoded_audio(),
            "aacparse",
            &sink.request_pad_simple("audio").context("hlssink2 audio pad")?,
        )?;
        renditions.push(HlsRendition {
            quality,
            dir,
            playlist,
        });
    }
    Ok(renditions)
}

/// The peak bits per second of a rendition: x264's VBV (600 ms at the target rate) lets a
/// 2 s segment run up to 30% over; MPEG-TS adds about 8%.
fn bandwidth(quality: Quality) -> u64 {
    let p = presets();
    let video = u64::from(p.video.bitrate_kbps(quality)) * 1300;
    let audio = u64::from(p.audio.aac_bitrate_kbps) * 1000;
    (video + audio) * 108 / 100
}

fn average_bandwidth(quality: Quality) -> u64 {
    let p = presets();
    (u64::from(p.video.bitrate_kbps(quality)) + u64::from(p.audio.aac_bitrate_kbps)) * 1000 * 108 / 100
}

/// The master playlist, highest rendition first, with paths relative to `root`.
pub fn master_playlist(renditions: &[HlsRendition], root: &Path) -> String {
    let p = presets();
    let mut sorted: Vec<&HlsRendition> = renditions.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.quality.size().0 * r.quality.size().1));
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in sorted {
        let (w, h) = r.quality.size();
        let relative = r.playlist.strip_prefix(root).unwrap_or(&r.playlist);
        text.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={w}x{h},CODECS=\"{},mp4a.40.2\",FRAME-RATE={:.3}\n{}\n",
            bandwidth(r.quality),
            average_bandwidth(r.quality),
            p.video.codec_string(r.quality),
            f64::from(p.video.framerate),
            relative.to_string_lossy()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_lists_renditions_highest_first_with_codecs_and_sizes() {
        let root = Path::new("/spool/hls");
        let renditions: Vec<HlsRendition> = [Quality::P360, Quality::P720]
            .into_iter()
            .map(|q| HlsRendition {
                quality: q,
                dir: root.join(q.name()),
                playlist: root.join(q.name()).join("index.m3u8"),
            })
            .collect();
        let text = master_playlist(&renditions, root);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert!(lines[3].contains("RESOLUTION=1280x720") && lines[3].contains("avc1.64001f,mp4a.40.2"));
        assert_eq!(lines[4], "720p/index.m3u8");
        assert!(lines[5].contains("RESOLUTION=640x360") && lines[5].contains("BANDWIDTH=1261440,"));
        assert_eq!(lines[6], "360p/index.m3u8");
    }
}
