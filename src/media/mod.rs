//! The media graph: GStreamer pipelines built from a job. Layout decisions come from `layout`.

mod composite;
mod crop;
mod decode_gate;
mod frames;
mod individual;
mod ingest;
mod mp4_inspect;
mod mp4_padding;
mod outputs;
mod presets;
mod raw;
mod speech;
mod tap;
mod timeline;

pub use composite::{Composite, GraphNotice, KeyframeIntervalHold, MixScene, MixSpec};
pub use frames::{FrameHandler, FrameTap, StillFrame};
pub use individual::{IndividualTap, StageKey, StageTrack};
pub use mp4_inspect::{Mp4Summary, TrackSummary, inspect as inspect_mp4};
pub use mp4_padding::{PADDING_WORTH_REMOVING, remove_padding};
pub use outputs::{
    HlsFeeds, HlsRendition, HlsSpec, PartEvent, RecordingControl, RecordingSpec, RtmpBranch, attach_hls,
    attach_recording, master_playlist,
};
pub use presets::{EncoderPresets, presets};
pub use raw::{RawFileEvent, RawHandler, RawTap};
pub use speech::{SPEECH_RATE, SpeechHandler, SpeechTap};

use gstreamer as gst;

/// Initializes GStreamer once; safe to call from anywhere.
pub fn init() -> anyhow::Result<()> {
    gst::init().map_err(|e| anyhow::anyhow!("GStreamer could not start: {e}"))
}

/// Creates a named element, with an error that says which plugin is missing.
pub(crate) fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| anyhow::anyhow!("GStreamer element {factory} is missing; run scripts/setup.sh"))
}
