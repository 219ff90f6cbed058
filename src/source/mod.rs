//! Sources: where participants and their media come from. The session sees only this trait,
//! never which SFU (or test generator) is behind it.

pub mod janus;
mod keyed_clip;
mod synthetic;
pub mod webrtc;
mod whep;

pub use janus::{JanusSource, Subscriptions};
pub use synthetic::SyntheticSource;
pub use whep::WhepSource;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// The call's clock as the media graph sees it: time since the outputs started.
pub type CallClock = Arc<dyn Fn() -> Duration + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Camera,
    ScreenShare,
    Microphone,
}

impl TrackKind {
    pub fn is_video(self) -> bool {
        !matches!(self, TrackKind::Microphone)
    }

    pub fn label(self) -> &'static str {
        match self {
            TrackKind::Camera => "camera",
            TrackKind::ScreenShare => "screenshare",
            TrackKind::Microphone => "microphone",
        }
    }
}

/// Who a participant is, as the call knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantInfo {
    pub user_id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub pinned: bool,
}

/// What a source reports to the session.
#[derive(Debug)]
pub enum SourceEvent {
    Joined(ParticipantInfo),
    /// `at`, on every event that has it: the call time the change happened, when the source
    /// knows it exactly; `None` means now.
    Left {
        user_id: String,
        at: Option<std::time::Duration>,
    },
    /// Media for one track: a bin with one `src` pad of raw media or, when `encoded`, of an
    /// encoded stream (VP8, VP9, H.264, Opus…) that the session decodes as it needs.
    TrackAdded {
        user_id: String,
        kind: TrackKind,
        media: gstreamer::Element,
        encoded: bool,
        /// Call time of the track's first sample when the source knows it; tracks given the same
        /// time play in sync. `None`: from the moment the track is added.
        starts_at: Option<std::time::Duration>,
    },
    TrackRemoved {
        user_id: String,
        kind: TrackKind,
        at: Option<std::time::Duration>,
    },
    /// The call is over; no more events follow. `at` is the call time of the end when the
    /// source knows it exactly, so that the outputs end on that frame.
    Ended {
        at: Option<std::time::Duration>,
    },
    /// The source cannot go on; the job fails with this message.
    Failed(String),
}

/// A connector to a call. `start` returns at once; events arrive on the channel from the
/// source's own thread until it sends `Ended` or `Failed`, or `stop` is set.
pub trait Source: Send {
    /// How late, behind call time, the source's media arrive (a network jitter buffer); the
    /// session's mixers wait that long for their inputs.
    fn input_latency(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Whether a key-unit request on a track reaches its sender (a PLI). When it does, a job
    /// whose only video output is stills decodes just the keyframes it asks for.
    fn answers_key_unit_requests(&self) -> bool {
        true
    }

    fn start(
        self: Box<Self>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<()>;
}

/// Runs a connector's `follow` on a thread of its own and ends the event stream with its
/// outcome: `Ended` when it returns, `Failed` with the reason when it fails.
pub(crate) fn spawn_follower(
    name: &str,
    events: Sender<SourceEvent>,
    follow: impl FnOnce(&Sender<SourceEvent>) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let last = match follow(&events) {
            Ok(()) => SourceEvent::Ended { at: None },
            Err(e) => SourceEvent::Failed(format!("{e:#}")),
        };
        let _ = events.send(last);
    })?;
    Ok(())
}
