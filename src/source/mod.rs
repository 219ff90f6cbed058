//! Sources: where participants and their media come from. The session sees only this trait,
//! never which SFU (or test generator) is behind it.

mod synthetic;

pub use synthetic::SyntheticSource;

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
    Left {
        user_id: String,
    },
    /// Decoded media for one track: a bin with one `src` pad of raw video or raw audio.
    TrackAdded {
        user_id: String,
        kind: TrackKind,
        media: gstreamer::Element,
    },
    TrackRemoved {
        user_id: String,
        kind: TrackKind,
    },
    /// The call is over; no more events follow.
    Ended,
    /// The source cannot go on; the job fails with this message.
    Failed(String),
}

/// A connector to a call. `start` returns at once; events arrive on the channel from the
/// source's own thread until it sends `Ended` or `Failed`, or `stop` is set.
pub trait Source: Send {
    fn start(
        self: Box<Self>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<()>;
}
