//! Rendering a raw recording again after the call (`egress render`): the recorded tracks are
//! replayed, as fast as they decode, through the same layout engine and compositor as a live
//! call, following the manifest's joins, leaves, speakers and updates.

use super::JobUpdate;
use super::call::{LayoutAssets, LiveCall, MixPlan};
use super::frames::safe_segment;
use crate::events::{COMPOSITE, CallRecording, EventBody};
use crate::job::{Job, LayoutConfig, LocalMedia, Quality, RenderSource};
use crate::manifest::{Manifest, ManifestError, ManifestFile, Stay};
use crate::media::Composite;
use crate::source::{ParticipantInfo, SourceEvent, TrackKind};
use crate::storage::{self, Output, Uploader};
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A camera file that ends this long before its participant leaves was turned off in the call.
const TRACK_ENDED_EARLY: f64 = 0.2;
/// How long before its participant's join is noted a track's first packet may come.
const JOIN_SLACK: f64 = 0.5;

/// What to render, and how.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub manifest: PathBuf,
    pub out_dir: PathBuf,
    /// Another layout than the call's (the manifest's), and another quality.
    pub layout: Option<LayoutConfig>,
    pub quality: Option<Quality>,
    /// The file's name in `out_dir`; absent: `render_CALL_LAYOUT_WxH.mp4`.
    pub file_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    /// Call time covered.
    pub duration: Duration,
    /// How long rendering took.
    pub took: Duration,
    pub layout: LayoutConfig,
    pub quality: Quality,
    /// When the rendered picture's first frame happened in the call, on the wall clock.
    pub starts_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("layout: {0}")]
    Layout(String),
    #[error("files[{index}] ({filename}): {problem}")]
    File {
        index: usize,
        filename: String,
        problem: String,
    },
    #[error("the manifest holds nothing to render (no participant and no file)")]
    Empty,
    #[error("rendering failed: {0:#}")]
    Media(anyhow::Error),
}

/// One thing that happened in the recorded call, at its call time.
enum Moment {
    Source(SourceEvent),
    Speaking(Vec<String>, Option<String>),
    Update(JobUpdate),
}

impl Moment {
    /// At one instant, a participant joins before their tracks start, and tracks stop before
    /// their participant leaves.
    fn rank(&self) -> u8 {
        match self {
            Moment::Source(SourceEvent::Joined(_)) => 0,
            Moment::Update(_) => 1,
            Moment::Source(SourceEvent::TrackAdded { .. }) => 2,
            Moment::Speaking(..) => 3,
            Moment::Source(SourceEvent::TrackRemoved { .. }) => 4,
            Moment::Source(_) => 5,
        }
    }
}

pub fn render(request: &RenderRequest) -> Result<Rendered, RenderError> {
    crate::media::init().map_err(RenderError::Media)?;
    let manifest = Manifest::load(&request.manifest)?;
    let starts_at = chrono::DateTime::parse_from_rfc3339(&manifest.call_started_at)
        .map(|t| t.to_utc() + chrono::Duration::milliseconds((manifest.start_s * 1000.0) as i64))
        .unwrap_or_else(|_| chrono::Utc::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let manifest = manifest.from_its_start();
    if manifest.participants.is_empty() && manifest.files.is_empty() {
        return Err(RenderError::Empty);
    }
    let dir = request
        .manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let layout = request.layout.clone().unwrap_or_else(|| manifest.layout.clone());
    let quality = request.quality.unwrap_or(manifest.quality);
    let plan = MixPlan::new(&layout, quality).map_err(|e| RenderError::Layout(format!("{e:#}")))?;
    let end = Duration::from_secs_f64(manifest.end_s());
    let moments = moments_of(&manifest, &dir, request.layout.is_some())?;

    let mut graph = Composite::build_offline(&[plan.spec()], end).map_err(RenderError::Media)?;
    let assets = LayoutAssets::load(std::slice::from_ref(&plan), &dir);
    let mut call = LiveCall::new(vec![plan], assets);
    call.relayout(&graph, Some(Duration::ZERO))
        .map_err(RenderError::Media)?;
    for (at_s, moment) in moments {
        let at = Duration::from_secs_f64(at_s.min(end.as_secs_f64()));
        let applied = match moment {
            Moment::Source(event) => call.replay(event, &mut graph, at).map(|_| ()),
            Moment::Speaking(speaking, dominant) => {
                call.replay_speaking(&speaking, dominant.as_deref(), &graph, at)
            }
            Moment::Update(update) => call.replay_update(&update, &graph, at),
        };
        applied.map_err(RenderError::Media)?;
    }
    std::fs::create_dir_all(&request.out_dir)
        .with_context(|| format!("cannot create {}", request.out_dir.display()))
        .map_err(RenderError::Media)?;
    let path = request.out_dir.join(request.file_name.clone().unwrap_or_else(|| {
        format!(
            "render_{}_{}_{}x{}.mp4",
            safe_segment(&manifest.call_cid.replace(':', "_")),
            layout.name.as_str(),
            quality.size().0,
            quality.size().1
        )
    }));
    let started = Instant::now();
    write_mp4(&mut graph, quality, &path, end).map_err(RenderError::Media)?;
    Ok(Rendered {
        path,
        duration: end,
        took: started.elapsed(),
        layout,
        quality,
        starts_at,
    })
}

/// Runs a job whose source is a raw recording: renders it into the job's recording, then
/// stores and announces the file as the composite recording of the call it replays.
pub(super) fn run_job(
    job: &Job,
    source: &RenderSource,
    id: &super::JobIdentity,
    options: &super::RunOptions,
    warnings: Vec<String>,
    emit: super::Emit,
    uploader: &mut Uploader,
) -> anyhow::Result<super::Ended> {
    let recording = job
        .recording
        .as_ref()
        .context("a render job has a recording section")?;
    let manifest = LocalMedia::Below(options.media_dir.clone())
        .resolve(&source.manifest)
        .context("source.manifest")?;
    emit(EventBody::RecordingStarted {
        recording_type: COMPOSITE.into(),
        warnings,
    });
    let filename = format!(
        "rec_{}_{}_{}_{}.mp4",
        safe_segment(job.call_type()),
        safe_segment(job.call_id()),
        recording.quality.name(),
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let request = RenderRequest {
        manifest,
        out_dir: uploader.spool().dir.clone(),
        layout: source.layout.clone(),
        quality: Some(recording.quality),
        file_name: Some(filename.clone()),
    };
    let done = render(&request)?;
    tracing::info!(file = %done.path.display(), took = ?done.took, "rendered");
    let key = storage::object_key(job.storage.path.as_deref(), &filename)?;
    let call_start = chrono::DateTime::parse_from_rfc3339(&done.starts_at)
        .map(|t| t.to_utc())
        .unwrap_or_else(|_| chrono::Utc::now());
    let wall = |at: Duration| {
        (call_start + chrono::Duration::from_std(at).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let ready = EventBody::RecordingReady {
        recording_type: COMPOSITE.into(),
        call_recording: CallRecording {
            user_id: None,
            track: None,
            filename,
            url: uploader.url(&key),
            start_time: wall(Duration::ZERO),
            end_time: wall(done.duration),
            session_id: id.session_id.clone(),
            recording_type: COMPOSITE.into(),
            paused: Vec::new(),
        },
    };
    uploader
        .submit_file(Output::Recording, &done.path, &key, Some(ready))
        .context("storing the render failed")?;
    Ok(super::Ended {
        stopped_once_stored: vec![EventBody::RecordingStopped {
            recording_type: COMPOSITE.into(),
        }],
    })
}

/// What happened in the recorded call, in the order it happened: joins, tracks (each file's
/// media ready to play), speakers and updates. With `other_layout`, the call's layout updates
/// are left out.
fn moments_of(
    manifest: &Manifest,
    dir: &Path,
    other_layout: bool,
) -> Result<Vec<(f64, Moment)>, RenderError> {
    let mut moments = Vec::new();
    for stay in &manifest.participants {
        let info = ParticipantInfo {
            user_id: stay.user_id.clone(),
            name: match stay.name.is_empty() {
                true => stay.user_id.clone(),
                false => stay.name.clone(),
            },
            roles: stay.roles.clone(),
            pinned: stay.pinned,
        };
        moments.push((stay.joined_at_s, Moment::Source(SourceEvent::Joined(info))));
        if let Some(left) = stay.left_at_s {
            let left_event = SourceEvent::Left {
                user_id: stay.user_id.clone(),
                at: Some(Duration::from_secs_f64(left)),
            };
            moments.push((left, Moment::Source(left_event)));
        }
    }
    for (index, file) in manifest.files.iter().enumerate() {
        let problem = |problem: String| RenderError::File {
            index,
            filename: file.filename.clone(),
            problem,
        };
        let Some(kind) = track_kind(&file.track) else {
            tracing::warn!(file = %file.filename, track = %file.track, "a track the composite does not show; left out");
            continue;
        };
        let path = dir.join(&file.filename);
        if !path.is_file() {
            return Err(problem(format!("expected the file at {}", path.display())));
        }
        let media = recorded_track(&path).map_err(|e| problem(format!("{e:#}")))?;
        // A track's first packet can come a moment before its participant's join is noted; it
        // joins the participant's tile once they are in (its media still plays from its start).
        let joined = stay_of(file, manifest).map_or(file.start_offset_s, |s| s.joined_at_s);
        moments.push((
            file.start_offset_s.max(joined),
            Moment::Source(SourceEvent::TrackAdded {
                user_id: file.user_id.clone(),
                kind,
                media,
                encoded: true,
                starts_at: Some(Duration::from_secs_f64(file.start_offset_s)),
            }),
        ));
        if let Some(ended) = ended_before_leaving(file, manifest) {
            moments.push((
                ended,
                Moment::Source(SourceEvent::TrackRemoved {
                    user_id: file.user_id.clone(),
                    kind,
                    at: Some(Duration::from_secs_f64(ended)),
                }),
            ));
        }
    }
    for change in &manifest.speaking {
        moments.push((
            change.at_s,
            Moment::Speaking(change.speaking.clone(), change.dominant.clone()),
        ));
    }
    for timed in &manifest.updates {
        let mut update = timed.update.clone();
        // A layout asked for instead of the call's stays for the whole render.
        if other_layout {
            update.layout = None;
        }
        moments.push((timed.at_s, Moment::Update(update)));
    }
    moments.sort_by(|(a, x), (b, y)| a.total_cmp(b).then(x.rank().cmp(&y.rank())));
    Ok(moments)
}

/// The stay a file belongs to: its participant's last join before it started (give or take
/// the moment between a join and its first packet).
fn stay_of<'m>(file: &ManifestFile, manifest: &'m Manifest) -> Option<&'m Stay> {
    manifest
        .participants
        .iter()
        .rfind(|s| s.user_id == file.user_id && s.joined_at_s <= file.start_offset_s + JOIN_SLACK)
}

/// The end of a file whose track stopped while its participant stayed in the call.
fn ended_before_leaving(file: &ManifestFile, manifest: &Manifest) -> Option<f64> {
    let ended = file.end_offset_s?;
    let stay = stay_of(file, manifest)?;
    let leaves = stay.left_at_s.unwrap_or(manifest.end_s());
    (ended + TRACK_ENDED_EARLY < leaves).then_some(ended)
}

fn track_kind(track: &str) -> Option<TrackKind> {
    match track {
        "camera" => Some(TrackKind::Camera),
        "microphone" => Some(TrackKind::Microphone),
        "screenshare" => Some(TrackKind::ScreenShare),
        _ => None,
    }
}

/// A bin with one `src` pad giving a raw file's encoded track, its first sample at running time
/// zero (the compositor places it at its call time): the raw files keep call time, and the
/// Matroska demuxer starts its segment at a file's first timestamp.
fn recorded_track(path: &Path) -> anyhow::Result<gst::Element> {
    let bin = gst::Bin::new();
    let source = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().to_string())
        .build()
        .context("GStreamer element filesrc is missing")?;
    let demux = gst::ElementFactory::make("matroskademux")
        .build()
        .context("GStreamer element matroskademux is missing")?;
    bin.add_many([&source, &demux])?;
    source.link(&demux)?;
    let exit = gst::GhostPad::builder(gst::PadDirection::Src).name("src").build();
    bin.add_pad(&exit)?;
    let ghost = exit.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let Some(ghost) = ghost.upgrade() else { return };
        if ghost.target().is_some() {
            return;
        }
        if let Err(e) = ghost.set_target(Some(pad)) {
            tracing::warn!(error = ?e, "cannot expose a recorded track");
        }
    });
    Ok(bin.upcast())
}

/// Encodes the mix and the sound into an MP4 at `path` and runs the graph to its end.
fn write_mp4(graph: &mut Composite, quality: Quality, path: &Path, end: Duration) -> anyhow::Result<()> {
    let pipeline = graph.pipeline().clone();
    let video = graph.encoded_video(0, quality)?;
    let audio = graph.encoded_audio();
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .with_context(|| format!("GStreamer element {factory} is missing"))
    };
    let video_queue = make("queue")?;
    let audio_queue = make("queue")?;
    let mux = make("mp4mux")?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", path.to_string_lossy().to_string())
        .property("sync", false)
        .build()
        .context("GStreamer element filesink is missing")?;
    pipeline.add_many([&video_queue, &audio_queue, &mux, &sink])?;
    video.link(&video_queue)?;
    audio.link(&audio_queue)?;
    video_queue.link_pads(None, &mux, Some("video_%u"))?;
    audio_queue.link_pads(None, &mux, Some("audio_%u"))?;
    mux.link(&sink)?;
    let bus = pipeline.bus().context("pipeline without bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("the render would not start")?;
    // Far more than decoding takes on a loaded machine; a stuck graph must not hang the command.
    let limit = gst::ClockTime::from_seconds(120 + 10 * end.as_secs());
    let outcome = match bus.timed_pop_filtered(limit, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        Some(message) => match message.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(anyhow::anyhow!(
                "{} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => Ok(()),
        },
        None => Err(anyhow::anyhow!("the render did not end within {limit}")),
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::MANIFEST_VERSION;

    fn manifest(stays: Vec<Stay>, files: Vec<ManifestFile>) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            call_cid: "default:c".into(),
            egress_id: "eg".into(),
            session_id: "se".into(),
            call_started_at: "2026-12-03T10:00:00.000Z".into(),
            start_s: 0.0,
            duration_s: Some(20.0),
            layout: LayoutConfig::default(),
            quality: Quality::default(),
            participants: stays,
            files,
            speaking: vec![],
            updates: vec![],
        }
    }

    fn stay(user_id: &str, joined: f64, left: Option<f64>) -> Stay {
        Stay {
            user_id: user_id.into(),
            name: String::new(),
            roles: vec![],
            pinned: false,
            joined_at_s: joined,
            left_at_s: left,
        }
    }

    fn file(user_id: &str, start: f64, end: Option<f64>) -> ManifestFile {
        ManifestFile {
            filename: "f.webm".into(),
            user_id: user_id.into(),
            track: "camera".into(),
            codec: "vp8".into(),
            start_offset_s: start,
            end_offset_s: end,
            sizes: vec![],
        }
    }

    #[test]
    fn a_camera_that_ends_with_its_stay_is_not_turned_off_before() {
        let m = manifest(vec![stay("a", 0.0, Some(8.0))], vec![file("a", 0.02, Some(7.97))]);
        assert_eq!(ended_before_leaving(&m.files[0], &m), None);
    }

    #[test]
    fn a_camera_turned_off_during_the_stay_ends_where_its_file_ends() {
        let m = manifest(vec![stay("a", 0.0, None)], vec![file("a", 0.0, Some(5.0))]);
        assert_eq!(ended_before_leaving(&m.files[0], &m), Some(5.0));
    }

    #[test]
    fn a_file_of_the_second_stay_is_measured_against_the_second_stay() {
        let m = manifest(
            vec![stay("a", 0.0, Some(4.0)), stay("a", 10.0, Some(15.0))],
            vec![file("a", 10.05, Some(14.95))],
        );
        assert_eq!(ended_before_leaving(&m.files[0], &m), None);
    }

    #[test]
    fn tracks_the_composite_does_not_show_are_named_as_such() {
        assert_eq!(track_kind("camera"), Some(TrackKind::Camera));
        assert_eq!(track_kind("screenshare_audio"), None);
    }
}
