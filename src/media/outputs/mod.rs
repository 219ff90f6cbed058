//! The outputs of a job, each fed from the shared encoders: MP4 parts, HLS renditions, RTMP pushes.

mod cutter;
mod hls;
mod part_file;
mod pause;
mod recording;
mod rtmp;

pub use hls::{HlsFeeds, HlsRendition, HlsSpec, attach_hls, master_playlist};
pub use recording::{
    EncodedFeeds, PartEvent, RecordingControl, RecordingSpec, attach_recording, attach_recording_to,
};
pub use rtmp::RtmpBranch;

use super::make;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;

/// Links a new branch of an encoder's `tee` to `sink_pad` through a queue and a parser of the
/// stream (`h264parse`, `aacparse`): each muxer then gets the stream format it wants (avc or
/// byte-stream) from one shared encoder.
/// (A queue that holds `hold_back` of the stream before it lets it on, when not zero.)
pub(crate) fn branch(
    bin: &impl IsA<gst::Bin>,
    tee: &gst::Element,
    parser: &str,
    sink_pad: &gst::Pad,
    hold_back: std::time::Duration,
) -> anyhow::Result<()> {
    let queue = make("queue")?;
    if !hold_back.is_zero() {
        let ns = hold_back.as_nanos() as u64;
        queue.set_property("min-threshold-time", ns);
        queue.set_property("max-size-time", ns * 3);
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
    }
    let parse = make(parser)?;
    prepare_parser(&parse);
    bin.as_ref().add_many([&queue, &parse])?;
    queue.link(&parse)?;
    parse
        .static_pad("src")
        .context("parser without src")?
        .link(sink_pad)?;
    // Playing before the tee feeds it (a branch added during the call): one still in NULL
    // answers FLUSHING, which a tee passes up to the encoder.
    queue.sync_state_with_parent()?;
    parse.sync_state_with_parent()?;
    tee.link(&queue)?;
    Ok(())
}

/// The entry of an output's bin that can neither fail nor hold up its feed, so that a push that
/// cannot connect (or a sink shutting down) costs no other output of the shared encoder:
/// - a `tee` passes a branch's flow error up to the encoder, which would stop every output; the
///   failing output reports on the bus instead, and its data is dropped until it is taken out;
/// - serialized queries (the allocation query an encoder sends through the tee when a branch is
///   linked, a drain) wait in the branch's queue until its sink takes them, which a push still
///   connecting (seconds, to a host that drops packets) or already failing may never do; they
///   are answered here, so the encoder's buffers come from the other outputs' proposals.
pub(crate) fn isolating_ghost_pad(target: &gst::Pad, name: &str) -> anyhow::Result<gst::GhostPad> {
    let ghost = gst::GhostPad::builder_with_target(target)?
        .name(name)
        .query_function(|pad, parent, query| match query.view_mut() {
            gst::QueryViewMut::Allocation(_) => false,
            gst::QueryViewMut::Drain(_) => true,
            _ => gst::Pad::query_default(pad, parent, query),
        })
        .chain_function(|pad, parent, buffer| {
            let _ = gst::ProxyPad::chain_default(pad, parent, buffer);
            Ok(gst::FlowSuccess::Ok)
        })
        .chain_list_function(|pad, parent, list| {
            let _ = gst::ProxyPad::chain_list_default(pad, parent, list);
            Ok(gst::FlowSuccess::Ok)
        })
        .build();
    Ok(ghost)
}

/// Drops the pictures that reach `pad` before the first keyframe: a branch linked to an encoder
/// mid-GOP then starts decodable.
pub(crate) fn drop_until_keyframe(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |_, info| match info.buffer() {
        Some(buffer) if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) => gst::PadProbeReturn::Drop,
        Some(_) => gst::PadProbeReturn::Remove,
        None => gst::PadProbeReturn::Ok,
    });
}

/// A parser of a shared encoder's stream: H.264 gets its parameter sets before every keyframe,
/// so that an output which starts late (a reconnecting push) can start at any keyframe.
pub(crate) fn prepare_parser(parse: &gst::Element) {
    if parse.factory().is_some_and(|f| f.name() == "h264parse") {
        parse.set_property("config-interval", -1i32);
    }
    if let Some(src) = parse.static_pad("src") {
        repair_missing_timestamps(&src);
    }
}

/// Parsers (baseparse) now and then push a buffer without PTS, around the start of a stream
/// under load; mp4mux then fails the whole recording ("Buffer has no PTS"). Such a buffer gets
/// the time it must have had: its DTS, or the end of the buffer before it.
fn repair_missing_timestamps(pad: &gst::Pad) {
    let last_end = std::sync::Mutex::new(None::<gst::ClockTime>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut last_end = last_end.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.pts().is_none() {
            let Some(pts) = buffer.dts().or(*last_end) else {
                tracing::warn!(pad = %pad.path_string(), "dropped a buffer without timestamps");
                return gst::PadProbeReturn::Drop;
            };
            tracing::warn!(pad = %pad.path_string(), %pts, "a buffer without PTS was given one");
            buffer.make_mut().set_pts(pts);
        }
        if let Some(pts) = buffer.pts() {
            *last_end = Some(pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO));
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(pts: Option<u64>, dts: Option<u64>, delta: bool) -> gst::Buffer {
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        let b = buffer.get_mut().unwrap();
        b.set_pts(pts.map(gst::ClockTime::from_mseconds));
        b.set_dts(dts.map(gst::ClockTime::from_mseconds));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        if delta {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        buffer
    }

    fn harness(install: fn(&gst::Pad)) -> gstreamer_check::Harness {
        gst::init().unwrap();
        let mut h = gstreamer_check::Harness::new("identity");
        install(&h.element().unwrap().static_pad("src").unwrap());
        h.set_src_caps_str("video/x-h264");
        h
    }

    /// What comes out for one buffer pushed: its PTS in ms, or `None` when it was dropped.
    fn through(h: &mut gstreamer_check::Harness, buffer: gst::Buffer) -> Option<Option<u64>> {
        h.push(buffer).unwrap();
        h.try_pull().map(|b| b.pts().map(|t| t.mseconds()))
    }

    #[test]
    fn buffers_without_pts_get_their_dts_or_the_end_of_the_one_before() {
        let mut h = harness(repair_missing_timestamps);
        assert_eq!(
            through(&mut h, buffer(None, None, false)),
            None,
            "nothing to go by: dropped"
        );
        assert_eq!(through(&mut h, buffer(Some(1000), None, false)), Some(Some(1000)));
        assert_eq!(
            through(&mut h, buffer(None, Some(1030), true)),
            Some(Some(1030)),
            "its DTS"
        );
        assert_eq!(
            through(&mut h, buffer(None, None, true)),
            Some(Some(1070)),
            "the end of the one before"
        );
    }

    #[test]
    fn a_branch_starts_at_its_first_keyframe() {
        let mut h = harness(drop_until_keyframe);
        assert_eq!(through(&mut h, buffer(Some(0), None, true)), None);
        assert_eq!(through(&mut h, buffer(Some(40), None, true)), None);
        assert_eq!(through(&mut h, buffer(Some(80), None, false)), Some(Some(80)));
        assert_eq!(
            through(&mut h, buffer(Some(120), None, true)),
            Some(Some(120)),
            "then everything"
        );
    }
}
