//! In-process test participants: solid colours, test patterns or encoded clips replayed as if
//! they came from the network, with tones, silence or recorded speech, joining and leaving on cue.

use super::{CallClock, ParticipantInfo, Source, SourceEvent, TrackKind};
use crate::job::{AudioSpec, BuiltinAudio, SyntheticParticipant, TestPattern, VideoSpec};
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Distinct colours for participants whose video is not given.
pub const PALETTE: [&str; 8] = [
    "#e53935", "#1e88e5", "#43a047", "#fdd835", "#8e24aa", "#fb8c00", "#00acc1", "#6d4c41",
];

pub struct SyntheticSource {
    duration_s: f64,
    /// How much of the call had gone by when the worker joined (`started_at`), in seconds.
    joined_at_s: f64,
    participants: Vec<SyntheticParticipant>,
    media_dir: PathBuf,
}

impl SyntheticSource {
    /// `media_dir` is where relative clip and audio file names are found.
    pub fn new(config: &crate::job::SyntheticSource, media_dir: &Path) -> Self {
        SyntheticSource {
            duration_s: config.duration_s,
            joined_at_s: config.elapsed().as_secs_f64(),
            participants: config.participants.clone(),
            media_dir: media_dir.to_owned(),
        }
    }
}

/// What happens at one moment of the synthetic call.
#[derive(Debug, PartialEq)]
enum Cue {
    Join(usize),
    Leave(usize),
    End,
}

impl Source for SyntheticSource {
    fn start(
        self: Box<Self>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<()> {
        let cues = cues(&self.participants, self.duration_s, self.joined_at_s);
        if self.joined_at_s > 0.0 {
            tracing::info!(
                joined_at_s = self.joined_at_s,
                "joining the synthetic call in progress"
            );
        }
        std::thread::Builder::new()
            .name("synthetic-source".into())
            .spawn(move || self.play(cues, clock, events, stop))
            .context("cannot start the synthetic source thread")?;
        Ok(())
    }
}

/// The call's cues on the clock of a worker that joined `joined` seconds in: what happened
/// before is skipped, and whoever is there already is there from the start.
fn cues(participants: &[SyntheticParticipant], duration_s: f64, joined: f64) -> Vec<(f64, Cue)> {
    let mut cues: Vec<(f64, Cue)> = vec![((duration_s - joined).max(0.0), Cue::End)];
    for (i, p) in participants.iter().enumerate() {
        if p.leave_at_s.is_some_and(|t| t <= joined) {
            continue;
        }
        cues.push(((p.join_at_s - joined).max(0.0), Cue::Join(i)));
        if let Some(leave) = p.leave_at_s.filter(|&t| t < duration_s) {
            cues.push((leave - joined, Cue::Leave(i)));
        }
    }
    // Stable sort: at equal times, leaves and the end come after joins listed before them.
    cues.sort_by(|a, b| a.0.total_cmp(&b.0));
    cues
}

impl SyntheticSource {
    /// Plays the cues on the call's clock, so joins, leaves and the end land on the right frame.
    fn play(
        self,
        cues: Vec<(f64, Cue)>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) {
        for (at, cue) in cues {
            let due = Duration::from_secs_f64(at);
            while clock() < due {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(due.saturating_sub(clock()).min(Duration::from_millis(5)));
            }
            let result = match cue {
                Cue::Join(i) => self.join(i, due, &events),
                Cue::Leave(i) => self.leave(i, due, &events),
                Cue::End => {
                    let _ = events.send(SourceEvent::Ended { at: Some(due) });
                    return;
                }
            };
            if let Err(e) = result {
                let _ = events.send(SourceEvent::Failed(format!("{e:#}")));
                return;
            }
        }
    }

    fn join(&self, index: usize, at: Duration, events: &Sender<SourceEvent>) -> anyhow::Result<()> {
        let p = &self.participants[index];
        let info = ParticipantInfo {
            user_id: p.user_id.clone(),
            name: p.name.clone().unwrap_or_else(|| p.user_id.clone()),
            roles: p.roles.clone(),
            pinned: p.pinned,
        };
        let _ = events.send(SourceEvent::Joined(info));
        let tracks = [
            (
                TrackKind::Camera,
                p.video.as_ref().map(|v| self.video_bin(v, index, false, at)),
            ),
            (
                TrackKind::ScreenShare,
                p.screenshare.as_ref().map(|v| self.video_bin(v, index, true, at)),
            ),
            (
                TrackKind::Microphone,
                p.audio.as_ref().map(|a| self.audio_bin(a, index)),
            ),
        ];
        for (kind, media) in tracks {
            if let Some(media) = media {
                let media = media.with_context(|| format!("{} of {}", kind.label(), p.user_id))?;
                let _ = events.send(SourceEvent::TrackAdded {
                    user_id: p.user_id.clone(),
                    kind,
                    media: media.element,
                    encoded: media.encoded,
                    starts_at: Some(at),
                });
            }
        }
        Ok(())
    }

    fn leave(&self, index: usize, at: Duration, events: &Sender<SourceEvent>) -> anyhow::Result<()> {
        let p = &self.participants[index];
        for (kind, present) in [
            (TrackKind::Camera, p.video.is_some()),
            (TrackKind::ScreenShare, p.screenshare.is_some()),
            (TrackKind::Microphone, p.audio.is_some()),
        ] {
            if present {
                let _ = events.send(SourceEvent::TrackRemoved {
                    user_id: p.user_id.clone(),
                    kind,
                    at: Some(at),
                });
            }
        }
        let _ = events.send(SourceEvent::Left {
            user_id: p.user_id.clone(),
            at: Some(at),
        });
        Ok(())
    }

    fn resolve(&self, file: &str) -> String {
        let path = self.media_dir.join(file);
        path.to_string_lossy().replace('\\', "\\\\").replace('"', "\\\"")
    }

    fn video_bin(
        &self,
        spec: &VideoSpec,
        index: usize,
        screen: bool,
        at: Duration,
    ) -> anyhow::Result<TrackMedia> {
        let (w, h, fps) = if screen { (1280, 720, 15) } else { (640, 360, 30) };
        let raw = format!("capsfilter name=out caps=\"video/x-raw,width={w},height={h},framerate={fps}/1\"");
        let description = match spec {
            VideoSpec::Auto => solid(PALETTE[index % PALETTE.len()], &raw),
            VideoSpec::Color(colour) => solid(colour, &raw),
            VideoSpec::Pattern(pattern) => {
                let name = match pattern {
                    TestPattern::Smpte => "smpte",
                    TestPattern::Ball => "ball",
                    TestPattern::Snow => "snow",
                    TestPattern::Checkers => "checkers-8",
                };
                format!("videotestsrc pattern={name} ! {raw}")
            }
            VideoSpec::Clip(file) => {
                let paced = demuxed(&self.resolve(file), "video", Some(at));
                return TrackMedia::encoded(build_bin(&paced)?);
            }
            VideoSpec::KeyedClip(keyed) => {
                let bin = super::keyed_clip::sender(
                    &demuxed(&self.resolve(&keyed.clip), "video", Some(at)),
                    &demuxed(&self.resolve(&keyed.keyframes), "video", None),
                    at,
                )?;
                return TrackMedia::encoded(bin);
            }
        };
        TrackMedia::raw(build_bin(&description)?)
    }

    fn audio_bin(&self, spec: &AudioSpec, index: usize) -> anyhow::Result<TrackMedia> {
        let description = match spec {
            AudioSpec::Builtin(BuiltinAudio::Sine) => {
                // A distinct pitch per participant, so each is recognisable in the mix.
                let freq = 330 + 110 * (index % 8);
                format!("audiotestsrc name=out wave=sine freq={freq} volume=0.2 samplesperbuffer=480")
            }
            AudioSpec::Builtin(BuiltinAudio::Silence) => {
                "audiotestsrc name=out wave=silence samplesperbuffer=480".to_owned()
            }
            AudioSpec::File { file } if file.to_ascii_lowercase().ends_with(".wav") => {
                format!(
                    "filesrc location=\"{}\" ! wavparse ! audioconvert ! audioresample name=out",
                    self.resolve(file)
                )
            }
            AudioSpec::File { file } => {
                return TrackMedia::encoded(build_bin(&demuxed(&self.resolve(file), "audio", None))?);
            }
        };
        TrackMedia::raw(build_bin(&description)?)
    }
}

/// A track's media bin and whether its stream is still encoded.
struct TrackMedia {
    element: gst::Element,
    encoded: bool,
}

impl TrackMedia {
    fn raw(element: gst::Element) -> anyhow::Result<TrackMedia> {
        Ok(TrackMedia {
            element,
            encoded: false,
        })
    }

    fn encoded(element: gst::Element) -> anyhow::Result<TrackMedia> {
        Ok(TrackMedia {
            element,
            encoded: true,
        })
    }
}

/// The encoded `kind` (video, audio) stream of a WebM/Matroska file, as a launch line whose
/// last element is named `out`. `paced_from`: sent at the pace of the call from that call time
/// on, as a live sender sends; without it the stream goes as fast as the graph takes it (which
/// a decoder nobody watches would not hold back: see the composite's decode gate).
fn demuxed(location: &str, kind: &str, paced_from: Option<Duration>) -> String {
    let out = match paced_from {
        Some(at) => format!("clocksync name=out ts-offset={}", at.as_nanos()),
        None => "identity name=out".to_owned(),
    };
    format!("filesrc location=\"{location}\" ! matroskademux name=demux demux.{kind}_0 ! {out}")
}

fn solid(colour: &str, raw: &str) -> String {
    let rgb = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap_or(0x808080);
    format!(
        "videotestsrc pattern=solid-color foreground-color={} ! {raw}",
        0xff00_0000u32 | rgb
    )
}

/// Builds a bin from a launch line whose last element is named `out`, exposing its src pad.
/// (Ghosting every unlinked pad would also grab sink pads still waiting for a dynamic link.)
pub(super) fn build_bin(description: &str) -> anyhow::Result<gst::Element> {
    let bin = gst::parse::bin_from_description(description, false)
        .with_context(|| format!("cannot build media for: {description}"))?;
    let out = bin
        .by_name("out")
        .context("media description has no element named out")?;
    let target = out.static_pad("src").context("the out element has no src pad")?;
    let ghost = gst::GhostPad::builder_with_target(&target)?.name("src").build();
    bin.add_pad(&ghost)?;
    Ok(bin.upcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(join: f64, leave: Option<f64>) -> SyntheticParticipant {
        serde_json::from_value(serde_json::json!({ "user_id": "u", "join_at_s": join, "leave_at_s": leave }))
            .unwrap()
    }

    #[test]
    fn a_worker_joining_late_sees_the_call_as_it_stands() {
        let people = [
            participant(0.0, None),
            participant(2.0, Some(5.0)),
            participant(8.0, Some(12.0)),
        ];
        assert_eq!(
            cues(&people, 20.0, 0.0),
            [
                (0.0, Cue::Join(0)),
                (2.0, Cue::Join(1)),
                (5.0, Cue::Leave(1)),
                (8.0, Cue::Join(2)),
                (12.0, Cue::Leave(2)),
                (20.0, Cue::End)
            ]
        );
        // Six seconds in: the one who left is gone, the first is there at once, the rest shift.
        assert_eq!(
            cues(&people, 20.0, 6.0),
            [
                (0.0, Cue::Join(0)),
                (2.0, Cue::Join(2)),
                (6.0, Cue::Leave(2)),
                (14.0, Cue::End)
            ]
        );
        assert_eq!(
            cues(&people, 20.0, 25.0)[0],
            (0.0, Cue::End),
            "a call already over ends at once"
        );
    }
}
