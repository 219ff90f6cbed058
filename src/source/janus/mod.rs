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
}

impl JanusSource {
    pub fn new(config: job::JanusSource) -> Self {
        super::webrtc::warm_up();
        JanusSource { config }
    }
}

impl Source for JanusSource {
    /// Our PLIs leave webrtcbin (the WHEP test shows senders answering them), but Debian's
    /// Janus 1.1.2 does not pass them on to the publisher, so stills come from decoded frames.
    fn answers_key_unit_requests(&self) -> bool {
        false
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
            room::follow(&self.config, &clock, events, &stop)
        })
    }
}
