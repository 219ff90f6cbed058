//! Raw recording of a track: its encoded stream as it arrived, with no decode and no encode,
//! in a container chosen by its codec (VP8, VP9 and Opus in WebM, H.264 in Matroska). The file
//! starts on a keyframe (one is asked for when the track starts) and is closed by the end of
//! the track's stream.

use super::make;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a track's raw file.
#[derive(Debug, Clone, PartialEq)]
pub enum RawFileEvent {
    /// The first sample is written: call time `at` (running time), the codec as named in the
    /// manifest.
    Opened {
        input: String,
        path: PathBuf,
        codec: String,
        at: Duration,
    },
    /// The file is complete (its stream ended): call time of its end.
    Closed {
        input: String,
        path: PathBuf,
        at: Duration,
    },
    /// From call time `at` on, the track's pictures have this size (known for VP8, from its
    /// keyframes).
    Resized {
        path: PathBuf,
        at: Duration,
        width: u32,
        height: u32,
    },
    /// The track's codec cannot be stored raw.
    Refused { input: String, caps: String },
}

/// The picture size a VP8 frame gives, when it is a keyframe (RFC 6386, 9.1: a 3-byte frame
/// tag whose lowest bit is 0 for a keyframe, the start code 9d 01 2a, then 14-bit width and
/// height).
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let header = frame.get(..10)?;
    if header[0] & 1 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([header[6], header[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([header[8], header[9]]) & 0x3fff);
    Some((width, height))
}

pub type RawHandler = Arc<dyn Fn(RawFileEvent) + Send + Sync>;

/// Raw files of every encoded track, written below `dir`.
#[derive(Clone)]
pub struct RawTap {
    dir: PathBuf,
    handler: RawHandler,
    /// Files opened so far per track: a track that comes back gets a file of its own.
    opened: Arc<Mutex<std::collections::HashMap<String, u32>>>,
}

impl RawTap {
    pub fn new(dir: PathBuf, handler: RawHandler) -> RawTap {
        RawTap {
            dir,
            handler,
            opened: Arc::default(),
        }
    }

    /// Says that track `input` cannot be recorded raw, and why.
    pub fn refuse(&self, input: &str, why: String) {
        (self.handler)(RawFileEvent::Refused {
            input: input.to_owned(),
            caps: why,
        });
    }

    /// `DIR/raw_INPUT.EXT` for a track's first file, `raw_INPUT_N.EXT` for its Nth.
    fn next_path(&self, input: &str, extension: &str) -> PathBuf {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        let n = opened.entry(input.to_owned()).or_insert(0);
        *n += 1;
        let name = input.replace('/', "_");
        match *n {
            1 => self.dir.join(format!("raw_{name}.{extension}")),
            n => self.dir.join(format!("raw_{name}_{n}.{extension}")),
        }
    }
}

/// The codec of a caps name as the manifest names it, the file extension and the muxer (with
/// the parser it needs first).
fn container_for(
    caps_name: &str,
) -> Option<(&'static str, &'static str, &'static str, Option<&'static str>)> {
    Some(match caps_name {
        "video/x-vp8" => ("vp8", "webm", "webmmux", None),
        "video/x-vp9" => ("vp9", "webm", "webmmux", None),
        "audio/x-opus" => ("opus", "webm", "webmmux", None),
        "video/x-h264" => ("h264", "mkv", "matroskamux", Some("h264parse")),
        _ => return None,
    })
}

/// The call time (running time) of a buffer on `pad`.
fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<Duration> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let at = segment.to_running_time(buffer.pts().or(buffer.dts())?)?;
    Some(Duration::from_nanos(at.nseconds()))
}

/// Where a packet at `at` must move so that its whole millisecond follows that of the packet
/// written before it at `last`; `None` when it may stay.
fn next_free_millisecond(last: Option<Duration>, at: Duration) -> Option<Duration> {
    let last_ms = last?.as_millis();
    (at.as_millis() <= last_ms).then(|| Duration::from_millis(last_ms as u64 + 1))
}

/// State of one branch, shared by its probes.
#[derive(Default)]
struct Progress {
    path: Option<PathBuf>,
    codec: &'static str,
    opened: bool,
    refused: bool,
    last: Duration,
    size: Option<(u32, u32)>,
}

/// A bin with a `sink` pad taking the encoded stream of track `input`: it waits for the stream's
/// caps, then writes it to `DIR/raw_INPUT_N.EXT` from its first keyframe. `ask_keyframe` is
/// called once when a video stream starts on a delta frame. Media from `cut_at` (the end of
/// the call) or `until` (the end of the track), running times in ns, on is left out, as the
/// other outputs leave it out.
pub fn raw_branch(
    input: &str,
    tap: &RawTap,
    cut_at: Arc<std::sync::atomic::AtomicU64>,
    until: Arc<std::sync::atomic::AtomicU64>,
    ask_keyframe: impl Fn() + Send + Sync + 'static,
) -> anyhow::Result<gst::Bin> {
    // A track that comes back gets a branch of its own while the last one finishes its file.
    static BRANCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BRANCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bin = gst::Bin::with_name(&format!("raw-{}-{n}", input.replace('/', "-")));
    let queue = make("queue")?;
    // A stalled disk must not hold the call back: old data goes first.
    queue.set_property("max-size-time", 2_000_000_000u64);
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property_from_str("leaky", "downstream");
    // Paced to the call, so that the end of the call or of the track (known only then) is
    // where the file ends, whatever a source that reads ahead has pushed already.
    let pace = make("clocksync")?;
    bin.add_many([&queue, &pace])?;
    queue.link(&pace)?;
    let sink = queue.static_pad("sink").context("queue without sink")?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&sink)?.name("sink").build())?;
    let out = pace.static_pad("src").context("clocksync without src")?;
    let shared = Arc::new(Mutex::new(Progress::default()));
    let progress = shared.clone();
    let weak_bin = bin.downgrade();
    let id = input.to_owned();
    let names = tap.clone();
    let handler = tap.handler.clone();
    let asked = std::sync::atomic::AtomicBool::new(false);
    out.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER,
        move |pad, info| {
            let mut progress = progress.lock().unwrap_or_else(|p| p.into_inner());
            if progress.refused {
                return gst::PadProbeReturn::Drop;
            }
            if let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) {
                if progress.path.is_some() {
                    return gst::PadProbeReturn::Ok;
                }
                let caps = caps.caps();
                let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
                let Some(bin) = weak_bin.upgrade() else {
                    return gst::PadProbeReturn::Drop;
                };
                match container_for(&name) {
                    Some((codec, extension, muxer, parser)) => {
                        let path = names.next_path(&id, extension);
                        // Opus from RTP says neither channels nor rate, which WebM needs:
                        // WebRTC's Opus is 48 kHz stereo (`opus/48000/2`).
                        let bare_opus = codec == "opus"
                            && caps
                                .structure(0)
                                .is_some_and(|s| !s.has_field("channels") || !s.has_field("rate"));
                        let parse = match (parser, bare_opus) {
                            (Some(parser), _) => make(parser).ok(),
                            (None, true) => make("capssetter").ok().inspect(|setter| {
                                setter.set_property(
                                    "caps",
                                    gst::Caps::builder("audio/x-opus")
                                        .field("channels", 2i32)
                                        .field("rate", 48_000i32)
                                        .build(),
                                );
                            }),
                            (None, false) => None,
                        };
                        let how = (muxer, parse, codec == "opus");
                        match open_file(&bin, pad, caps, &path, how, &id, &handler, &shared) {
                            Ok(()) => {
                                progress.path = Some(path);
                                progress.codec = codec;
                            }
                            Err(e) => {
                                tracing::error!(input = %id, error = %format!("{e:#}"), "raw file not opened");
                                progress.refused = true;
                                handler(RawFileEvent::Refused {
                                    input: id.clone(),
                                    caps: format!("{name} ({e:#})"),
                                });
                                return gst::PadProbeReturn::Drop;
                            }
                        }
                    }
                    None => {
                        progress.refused = true;
                        handler(RawFileEvent::Refused {
                            input: id.clone(),
                            caps: name,
                        });
                        return gst::PadProbeReturn::Drop;
                    }
                }
                return gst::PadProbeReturn::Ok;
            }
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if progress.path.is_none() {
                return gst::PadProbeReturn::Drop;
            }
            let at = running_time(pad, buffer).unwrap_or(progress.last);
            let end = cut_at
                .load(std::sync::atomic::Ordering::Relaxed)
                .min(until.load(std::sync::atomic::Ordering::Relaxed));
            if at.as_nanos() as u64 >= end {
                return gst::PadProbeReturn::Drop;
            }
            // A packet from before the last one written (reordered, or a sender's clock that
            // stepped back) would make the file's timestamps go backwards: it is left out.
            if progress.opened && at < progress.last {
                return gst::PadProbeReturn::Drop;
            }
            // Matroska keeps whole milliseconds: two packets within one (a burst after a loss)
            // would share a timestamp. The later one moves to the next millisecond.
            let later = next_free_millisecond(progress.opened.then_some(progress.last), at).map(|moved| moved - at);
            let at = at + later.unwrap_or_default();
            progress.last = at;
            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            if !progress.opened {
                if !keyframe {
                    if !asked.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        ask_keyframe();
                    }
                    return gst::PadProbeReturn::Drop;
                }
                progress.opened = true;
                let path = progress.path.clone().unwrap_or_default();
                handler(RawFileEvent::Opened {
                    input: id.clone(),
                    path,
                    codec: progress.codec.to_owned(),
                    at,
                });
            }
            if keyframe && progress.codec == "vp8" {
                let size = buffer.map_readable().ok().and_then(|m| vp8_keyframe_size(&m));
                if let Some(size) = size.filter(|s| progress.size != Some(*s)) {
                    progress.size = Some(size);
                    handler(RawFileEvent::Resized {
                        path: progress.path.clone().unwrap_or_default(),
                        at,
                        width: size.0,
                        height: size.1,
                    });
                }
            }
            if let Some(later) = later
                && let Some(buffer) = info.buffer_mut()
                && let Some(pts) = buffer.pts()
            {
                let buffer = buffer.make_mut();
                buffer.set_pts(pts + gst::ClockTime::from_nseconds(later.as_nanos() as u64));
                buffer.set_dts(gst::ClockTime::NONE);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(bin)
}

/// Adds `[parser !] muxer ! filesink` behind `pad` in `bin`; the file's end is reported when
/// the end of stream reaches the sink.
#[allow(clippy::too_many_arguments)]
fn open_file(
    bin: &gst::Bin,
    pad: &gst::Pad,
    caps: &gst::CapsRef,
    path: &Path,
    (muxer, parse, is_audio): (&str, Option<gst::Element>, bool),
    input: &str,
    handler: &RawHandler,
    progress: &Arc<Mutex<Progress>>,
) -> anyhow::Result<()> {
    let mux = make(muxer)?;
    let sink = make("filesink")?;
    sink.set_property("location", path.to_string_lossy().to_string());
    sink.set_property("async", false);
    sink.set_property("sync", false);
    // Written through as it comes: a worker that dies leaves every packet so far on disk, not
    // the last 64 KiB in its buffer (a camera sending a still picture takes minutes to fill it).
    sink.set_property_from_str("buffer-mode", "unbuffered");
    let chain: Vec<gst::Element> = parse.into_iter().chain([mux.clone(), sink.clone()]).collect();
    bin.add_many(&chain)?;
    mux.link(&sink)?;
    let template = if is_audio { "audio_%u" } else { "video_%u" };
    let mux_pad = mux
        .request_pad_simple(template)
        .context("the muxer takes no such stream")?;
    let entry = match chain.len() {
        // A parser (or caps setter) before the muxer.
        3 => {
            chain[0]
                .static_pad("src")
                .context("parser without src")?
                .link(&mux_pad)?;
            chain[0].static_pad("sink").context("parser without sink")?
        }
        _ => mux_pad,
    };
    // A stream the muxer would refuse must not reach it: its refusal would stop the track
    // for every output, not just this file.
    if !entry.query_accept_caps(&caps.to_owned()) {
        for element in chain.iter().rev() {
            let _ = bin.remove(element);
        }
        anyhow::bail!("the muxer does not take {caps}");
    }
    pad.link(&entry)
        .context("cannot link the raw stream to its muxer")?;
    let at_end = handler.clone();
    let id = input.to_owned();
    let file = path.to_owned();
    let progress = progress.clone();
    let end_pad = sink.static_pad("sink").context("filesink without sink")?;
    end_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Eos(_)) = info.event().map(|e| e.view()) {
            let at = progress.lock().unwrap_or_else(|p| p.into_inner()).last;
            at_end(RawFileEvent::Closed {
                input: id.clone(),
                path: file.clone(),
                at,
            });
        }
        gst::PadProbeReturn::Ok
    });
    for element in &chain {
        element.sync_state_with_parent()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_within_one_millisecond_of_the_last_move_to_the_next() {
        let ms = |m: f64| Duration::from_secs_f64(m / 1000.0);
        assert_eq!(next_free_millisecond(None, ms(14.8)), None);
        assert_eq!(next_free_millisecond(Some(ms(14_845.5)), ms(14_865.5)), None);
        assert_eq!(
            next_free_millisecond(Some(ms(14_845.5)), ms(14_845.8)),
            Some(ms(14_846.0))
        );
        assert_eq!(
            next_free_millisecond(Some(ms(14_846.0)), ms(14_845.9)),
            Some(ms(14_847.0))
        );
    }

    #[test]
    fn a_vp8_keyframe_says_its_size_and_a_delta_frame_does_not() {
        // Frame tag (keyframe, shown), start code, 640 x 360 with no scaling bits.
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0x00];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let scaled = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0xc1];
        assert_eq!(
            vp8_keyframe_size(&scaled),
            Some((640, 360)),
            "scaling bits are not size"
        );
        let delta = [0x51, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&key[..6]), None, "too short");
    }
}
