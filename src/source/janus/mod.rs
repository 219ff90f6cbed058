//! Janus VideoRoom connector: joins the room without publishing (so no one sees it), subscribes
//! to every publisher's feed on a handle and WebRTC peer of its own (two, audio and video apart,
//! when the worker asks publishers for keyframes and takes their sound too), follows publishers
//! as they come, go and renegotiate, and rejoins after a lost connection while the outputs keep
//! running.

mod room;
pub mod signalling;

pub use signalling::{JanusClient, JanusError, PluginReply};

use super::{CallClock, Source, SourceEvent};
use crate::job;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

/// How a publisher's media are subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscriptions {
    /// Everything a publisher sends, in one PeerConnection.
    Together,
    /// Video alone (a job whose outputs take no sound).
    VideoOnly,
    /// Audio and video in PeerConnections of their own: a job that takes sound and asks the
    /// publishers for keyframes.
    Apart,
}

pub struct JanusSource {
    config: job::JanusSource,
    subscriptions: Subscriptions,
}

impl JanusSource {
    pub fn new(config: job::JanusSource) -> Self {
        super::webrtc::warm_up();
        JanusSource {
            config,
            subscriptions: Subscriptions::Together,
        }
    }

    pub fn subscriptions(mut self, subscriptions: Subscriptions) -> Self {
        self.subscriptions = subscriptions;
        self
    }
}

impl Source for JanusSource {
    /// The worker's PLIs (not FIRs: see ingest) reach the publishers through Janus 1.1.2 only
    /// from a PeerConnection without audio: Janus takes a compound RTCP packet as about the
    /// medium of the first SSRC it recognizes, often the audio's receiver report, and the
    /// plugin does not pass on a PLI about audio. So the worker asks for keyframes only where
    /// video travels alone.
    fn answers_key_unit_requests(&self) -> bool {
        self.subscriptions != Subscriptions::Together
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
            room::follow(&self.config, self.subscriptions, &clock, events, &stop)
        })
    }
}
