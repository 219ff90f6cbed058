//! HLS: one `hlssink2` per rendition (MPEG-TS segments and a live media playlist), and the
//! master playlist that lists them.

use super::super::{make, presets};
use crate::job::{HlsTrack, Quality};
use crate::media::Composite;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::PathBuf;

pub struct HlsSpec {
    /// The mix the video renditions show; `None` when there is only sound.
    pub mix: Option<usize>,
    pub renditions: Vec<HlsTrack>,
    pub segment_duration_s: u32,
    /// Spool folder; each rendition gets a sub-folder named after its quality.
    pub dir: PathBuf,
}

/// Where a rendition's files are written.
#[derive(Debug, Clone)]
pub struct HlsRendition {
    pub track: HlsTrack,
    pub dir: PathBuf,
    pub playlist: PathBuf,
}

/// The branches that feed the renditions from the shared encoders, so that HLS can be ended
/// while the other outputs run on.
#[derive(Default)]
pub struct HlsFeeds {
    /// Each tee pad and the branch entry it feeds.
    feeds: Vec<(gst::Element, gst::Pad, gst::Pad)>,
    elements: Vec<gst::Element>,
    /// The encoders' fixed keyframe interval, kept until the feeds are removed.
    holds: Vec<crate::media::KeyframeIntervalHold>,
}

impl HlsFeeds {
    /// Cuts the branches off their encoders and sends each an end of stream: the sinks close
    /// their last segment and end their playlists (`#EXT-X-ENDLIST`).
    pub fn end(&self) {
        for (_, tee_pad, entry) in &self.feeds {
            let entry = entry.clone();
            // Between two buffers, so that no segment gets half a frame.
            tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                entry.send_event(gst::event::Eos::new());
                gst::PadProbeReturn::Remove
            });
        }
    }

    /// Takes the ended branches out of the pipeline (after their playlists were ended).
    pub fn remove(self, pipeline: &gst::Pipeline) {
        for (tee, tee_pad, _) in &self.feeds {
            tee.release_request_pad(tee_pad);
        }
        let pipeline = pipeline.clone();
        let elements = self.elements;
        let teardown = move || {
            for element in &elements {
                let _ = element.set_state(gst::State::Null);
                let _ = pipeline.remove(element);
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("hls-teardown".into())
            .spawn(teardown)
        {
            tracing::warn!(error = %e, "cannot start a thread to take the hls branches out");
        }
    }
}

/// A queue and a parser from a tee of a shared encoder to a sink pad, noted in `feeds`.
fn feed(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    parser: &str,
    sink_pad: &gst::Pad,
    feeds: &mut HlsFeeds,
) -> anyhow::Result<()> {
    let queue = make("queue")?;
    let parse = make(parser)?;
    super::prepare_parser(&parse);
    pipeline.add_many([&queue, &parse])?;
    queue.link(&parse)?;
    parse
        .static_pad("src")
        .context("parser without src")?
        .link(sink_pad)?;
    let entry = queue.static_pad("sink").context("queue without sink")?;
    if parser == "h264parse" {
        // Started during the call, the branch may join mid-GOP: its first segment must open
        // on a keyframe.
        super::drop_until_keyframe(&entry);
    }
    // Playing before the tee feeds it (HLS started during the call).
    queue.sync_state_with_parent()?;
    parse.sync_state_with_parent()?;
    let tee_pad = tee.request_pad_simple("src_%u").context("tee pad")?;
    tee_pad.link(&entry)?;
    feeds.feeds.push((tee.clone(), tee_pad, entry));
    feeds.elements.extend([queue, parse]);
    Ok(())
}

pub fn attach_hls(
    composite: &mut Composite,
    spec: &HlsSpec,
) -> anyhow::Result<(Vec<HlsRendition>, HlsFeeds)> {
    let mut renditions = Vec::new();
    let mut feeds = HlsFeeds::default();
    for &track in &spec.renditions {
        let dir = spec.dir.join(track.name());
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
        // splitmuxsink's own sinks are not async: a sink added to the playing pipeline does not
        // make it lose its state.
        sink.sync_state_with_parent()?;
        if let Some(quality) = track.video() {
            let mix = spec.mix.context("a video rendition without a mix")?;
            let video = composite.encoded_video(mix, quality)?;
            feeds.holds.extend(composite.keep_keyframe_interval(mix, quality));
            feed(
                composite.pipeline(),
                &video,
                "h264parse",
                &sink.request_pad_simple("video").context("hlssink2 video pad")?,
                &mut feeds,
            )?;
        }
        feed(
            composite.pipeline(),
            &composite.encoded_audio(),
            "aacparse",
            &sink.request_pad_simple("audio").context("hlssink2 audio pad")?,
            &mut feeds,
        )?;
        feeds.elements.push(sink);
        renditions.push(HlsRendition { track, dir, playlist });
    }
    Ok((renditions, feeds))
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

/// The sound alone: MPEG-TS carries each AAC frame (about 350 bytes) in its own PES over two or
/// three 188-byte packets, about 1.6 times the AAC rate (measured: 206 kbit/s for 128 kbit/s).
fn audio_bandwidth() -> u64 {
    u64::from(presets().audio.aac_bitrate_kbps) * 1000 * 175 / 100
}

/// The master playlist, highest rendition first and the sound alone last; `uri_of` gives the
/// URI of a rendition's playlist (a path relative to the master, or a signed URL).
pub fn master_playlist(renditions: &[HlsRendition], uri_of: impl Fn(&HlsRendition) -> String) -> String {
    let p = presets();
    let mut sorted: Vec<&HlsRendition> = renditions.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.track.video().map_or(0, |q| q.size().0 * q.size().1)));
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in sorted {
        let stream = match r.track.video() {
            Some(quality) => {
                let (w, h) = quality.size();
                format!(
                    "BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={w}x{h},CODECS=\"{},mp4a.40.2\",FRAME-RATE={:.3}",
                    bandwidth(quality),
                    average_bandwidth(quality),
                    p.video.codec_string(quality),
                    f64::from(p.video.framerate),
                )
            }
            None => format!("BANDWIDTH={},CODECS=\"mp4a.40.2\"", audio_bandwidth()),
        };
        text.push_str(&format!("#EXT-X-STREAM-INF:{stream}\n{}\n", uri_of(r)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn master_lists_renditions_highest_first_with_codecs_and_sizes() {
        let root = Path::new("/spool/hls");
        let renditions: Vec<HlsRendition> = [
            HlsTrack::AUDIO_ONLY,
            HlsTrack::Video(Quality::P360),
            HlsTrack::Video(Quality::P720),
        ]
        .into_iter()
        .map(|t| HlsRendition {
            track: t,
            dir: root.join(t.name()),
            playlist: root.join(t.name()).join("index.m3u8"),
        })
        .collect();
        let text = master_playlist(&renditions, |r| {
            r.playlist
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert!(lines[3].contains("RESOLUTION=1280x720") && lines[3].contains("avc1.64001f,mp4a.40.2"));
        assert_eq!(lines[4], "720p/index.m3u8");
        assert!(lines[5].contains("RESOLUTION=640x360") && lines[5].contains("BANDWIDTH=1261440,"));
        assert_eq!(lines[6], "360p/index.m3u8");
        assert_eq!(
            lines[7],
            "#EXT-X-STREAM-INF:BANDWIDTH=224000,CODECS=\"mp4a.40.2\""
        );
        assert_eq!(lines[8], "audio-only/index.m3u8");
    }
}
