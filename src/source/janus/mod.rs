//! Janus VideoRoom connector: joins the room without publishing (so no one sees it), subscribes
//! to every publisher's feed on a handle and WebRTC peer of its own, follows publishers as they
//! come, go and renegotiate, and rejoins after a lost connection while the outputs keep running.

mod room;
pub mod signalling;

pub use signalling::{JanusClient, JanusError, PluginReply};

use super::{CallClock, Source, SourceEvent};
use crate::job;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

pub struct JanusSource {
    config: job::JanusSource,
    video_only: bool,
}

impl JanusSource {
    pub fn new(config: job::JanusSource) -> Self {
        super::webrtc::warm_up();
        JanusSource {
            config,
            video_only: false,
        }
    }

    /// Subscribes to the publishers' video only, for a job whose outputs take no sound.
    pub fn video_only(mut self, video_only: bool) -> Self {
        self.video_only = video_only;
        self
    }
}

impl Source for JanusSource {
    /// The worker's PLIs (not FIRs: see ingest) reach the publishers through Janus 1.1.2 only
    /// from a PeerConnection without audio: Janus takes a compound RTCP packet as about the
    /// medium of the first SSRC it recognizes, often the audio's receiver report, and the
    /// plugin does not pass on a PLI about audio. So stills come from keyframes the worker asks
    /// for in video-only subscriptions (jobs with no sound), and from decoded frames otherwise.
    fn answers_key_unit_requests(&self) -> bool {
        self.video_only
    }

    fn input_latency(&self) -> std::time::Duration {
        super::webrtc::RECEIVE_LATENCY
    }

    fn start(
        self: Box<Self>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<()> {
        super::spawn_follower("janus", events, move |events| {
            room::follow(&self.config, self.video_only, &clock, events, &stop)
        })
    }
}
