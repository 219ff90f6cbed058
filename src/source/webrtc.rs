//! A receive-only WebRTC peer (webrtcbin in a pipeline of its own) whose tracks are handed to the
//! session as encoded streams. The peer's pipeline runs on the session's clock and base time, so
//! the timestamps it hands over are already call time; key-unit requests from the session go back
//! to the sender as PLIs. Errors inside one peer never stop the recording.

use super::CallClock;
use anyhow::{Context, anyhow, bail};
use gst::glib;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Jitter buffer depth: deep enough to repair losses with NACKs on a real network, short enough
/// for live outputs.
pub const JITTER_LATENCY: Duration = Duration::from_millis(200);
/// How much later than its capture a received frame reaches the session: the jitter buffer and
/// the hand-over. The session's mixers wait this long for their inputs.
pub const RECEIVE_LATENCY: Duration = Duration::from_millis(400);
/// Samples kept for a track until the session has taken it into its graph (a few seconds).
const EARLY_SAMPLES: usize = 300;

/// Gets the first peer's one-off costs out of the way in the background: loading the WebRTC
/// plugins and generating the DTLS certificate (once per process), which would otherwise delay
/// the first subscription by a few hundred milliseconds.
pub fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("webrtc-warm-up".into())
            .spawn(|| {
                let outcome = (|| -> anyhow::Result<()> {
                    let pipeline = gst::Pipeline::new();
                    let webrtc = gst::ElementFactory::make("webrtcbin").build()?;
                    pipeline.add(&webrtc)?;
                    pipeline.set_state(gst::State::Playing)?;
                    let caps = gst::Caps::from_str(
                        "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
                    )?;
                    webrtc.emit_by_name::<glib::Object>(
                        "add-transceiver",
                        &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
                    );
                    let promise = gst::Promise::new();
                    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
                    let offer = reply_description(&promise, "offer")?;
                    let promise = gst::Promise::new();
                    webrtc.emit_by_name::<()>("set-local-description", &[&offer, &promise]);
                    promise.wait();
                    pipeline.set_state(gst::State::Null)?;
                    Ok(())
                })();
                if let Err(e) = outcome {
                    tracing::debug!(error = %format!("{e:#}"), "WebRTC warm-up failed");
                }
            });
        match spawned {
            Ok(handle) => *WARM_UP.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
            Err(e) => tracing::debug!(error = %e, "no WebRTC warm-up"),
        }
    });
}

static WARM_UP: std::sync::Mutex<Option<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(None);

/// Longest wait for the warm-up at exit: a stuck one must not keep the process alive.
const WARM_UP_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits (a few seconds at most) for the warm-up to end. Called before the process exits: a job
/// that fails at once (an untrusted certificate) would otherwise exit while the warm-up still
/// makes its DTLS certificate, with OpenSSL torn down under it by the exit handlers (a crash).
pub fn finish_warm_up() {
    let handle = WARM_UP.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(handle) = handle else { return };
    let deadline = std::time::Instant::now() + WARM_UP_AT_EXIT;
    while !handle.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if handle.is_finished() {
        let _ = handle.join();
    } else {
        tracing::warn!("the WebRTC warm-up did not end; exiting without it");
    }
}

/// A track the peer started receiving.
pub struct ReceivedTrack {
    /// The transceiver's `mid` in the negotiated SDP.
    pub mid: String,
    pub is_video: bool,
    /// A live `appsrc` of encoded media, in call time, for the session's graph.
    pub media: gst::Element,
}

pub struct ReceivingPeer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    failed: Arc<AtomicBool>,
    /// Local ICE candidates `(m-line, candidate)` not yet taken, for trickle ICE.
    candidates: Mutex<std::sync::mpsc::Receiver<(u32, String)>>,
}

impl ReceivingPeer {
    /// A peer named `name` whose tracks go to `on_track` as they start.
    pub fn new(
        name: &str,
        clock: &CallClock,
        on_track: impl Fn(ReceivedTrack) + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let pipeline = gst::Pipeline::with_name(&format!("peer-{name}"));
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", JITTER_LATENCY.as_millis() as u32)
            .build()
            .context("webrtcbin is missing (gstreamer1.0-plugins-bad, gstreamer1.0-nice)")?;
        pipeline.add(&webrtc)?;
        webrtc.connect("on-new-transceiver", false, |values| {
            if let Some(transceiver) = values.get(1).and_then(|v| v.get::<glib::Object>().ok()) {
                transceiver.set_property("do-nack", true);
            }
            None
        });
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        webrtc.connect_notify(Some("ice-connection-state"), move |webrtc, _| {
            let state = webrtc.property::<gst_webrtc::WebRTCICEConnectionState>("ice-connection-state");
            if state == gst_webrtc::WebRTCICEConnectionState::Failed {
                flag.store(true, Ordering::Relaxed);
            }
        });
        let (found, candidates) = std::sync::mpsc::channel();
        let found = Mutex::new(found);
        webrtc.connect("on-ice-candidate", false, move |values| {
            let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
            let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
            if let (Some(mline), Some(candidate)) = (mline, candidate) {
                let _ = found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send((mline, candidate));
            }
            None
        });
        let on_track = Arc::new(on_track);
        let bin = pipeline.clone();
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            match receive(&bin, pad) {
                Ok(track) => on_track(track),
                Err(e) => tracing::warn!(pad = %pad.name(), error = %format!("{e:#}"), "a received track is left out"),
            }
        });
        // Same clock and base time as the session: running times mean call time in both.
        let system = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&system));
        pipeline.set_start_time(gst::ClockTime::NONE);
        let now = system.time();
        let call_time = gst::ClockTime::from_nseconds(clock().as_nanos() as u64);
        pipeline.set_base_time(now.saturating_sub(call_time));
        pipeline
            .set_state(gst::State::Playing)
            .context("the WebRTC peer did not start")?;
        Ok(ReceivingPeer {
            pipeline,
            webrtc,
            failed,
            candidates: Mutex::new(candidates),
        })
    }

    /// Answers a remote offer; returns the answer with our candidates in it (no trickle).
    pub fn answer(&self, offer: &str, timeout: Duration) -> anyhow::Result<String> {
        self.answer_now(offer)?;
        self.local_description(timeout)
    }

    /// Answers a remote offer at once; the candidates follow through [`Self::new_candidates`].
    pub fn answer_now(&self, offer: &str) -> anyhow::Result<String> {
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).context("the offer is not SDP")?;
        let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        self.set_description("set-remote-description", &offer)?;
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        let answer = reply_description(&promise, "answer")?;
        self.set_description("set-local-description", &answer)?;
        Ok(answer.sdp().as_text()?)
    }

    /// Local candidates found since the last call, and whether gathering is complete.
    pub fn new_candidates(&self) -> (Vec<(u32, String)>, bool) {
        // Read the state first: a candidate found after it is still taken below or next time.
        let complete = self
            .webrtc
            .property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            == gst_webrtc::WebRTCICEGatheringState::Complete;
        let found = self
            .candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_iter()
            .collect();
        (found, complete)
    }

    /// An offer to receive one audio and one video track (for WHEP), with our candidates.
    pub fn offer(&self, timeout: Duration) -> anyhow::Result<String> {
        for caps in [
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000",
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
        ] {
            let caps = gst::Caps::from_str(caps)?;
            self.webrtc.emit_by_name::<glib::Object>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        }
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        let offer = reply_description(&promise, "offer")?;
        self.set_description("set-local-description", &offer)?;
        self.local_description(timeout)
    }

    /// Takes the remote answer to our offer.
    pub fn accept_answer(&self, answer: &str) -> anyhow::Result<()> {
        let answer = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes()).context("the answer is not SDP")?;
        let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
        self.set_description("set-remote-description", &answer)
    }

    /// True once ICE has failed: the connection is gone and must be made again.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn set_description(
        &self,
        signal: &str,
        description: &gst_webrtc::WebRTCSessionDescription,
    ) -> anyhow::Result<()> {
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>(signal, &[description, &promise]);
        promise.wait();
        if let Some(error) = promise
            .get_reply()
            .and_then(|r| r.get::<glib::Error>("error").ok())
        {
            bail!("{signal}: {error}");
        }
        Ok(())
    }

    /// The local description once ICE gathering is complete (or `timeout` has passed).
    fn local_description(&self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        while self
            .webrtc
            .property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            != gst_webrtc::WebRTCICEGatheringState::Complete
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let description = self
            .webrtc
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| anyhow!("no local description"))?;
        Ok(description.sdp().as_text()?)
    }
}

impl Drop for ReceivingPeer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn reply_description(
    promise: &gst::Promise,
    field: &str,
) -> anyhow::Result<gst_webrtc::WebRTCSessionDescription> {
    promise.wait();
    let reply = promise
        .get_reply()
        .ok_or_else(|| anyhow!("webrtcbin gave no {field}"))?;
    if let Ok(error) = reply.get::<glib::Error>("error") {
        bail!("cannot create the {field}: {error}");
    }
    reply
        .get::<gst_webrtc::WebRTCSessionDescription>(field)
        .map_err(|e| anyhow!("webrtcbin gave no {field}: {e}"))
}

/// Depayloads the RTP of `pad` into an appsink whose samples feed a new appsrc, retimed to call
/// time; key-unit requests on the appsrc go upstream to webrtcbin (a PLI to the sender).
fn receive(pipeline: &gst::Pipeline, pad: &gst::Pad) -> anyhow::Result<ReceivedTrack> {
    let caps = pad
        .current_caps()
        .or_else(|| Some(pad.query_caps(None)))
        .context("no caps")?;
    let s = caps.structure(0).context("empty caps")?;
    let media = s.get::<&str>("media").unwrap_or_default();
    let encoding = s
        .get::<&str>("encoding-name")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mid = pad
        .property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
        .and_then(|t| t.mid())
        .map(|m| m.to_string())
        .unwrap_or_else(|| pad.name().to_string());
    let chain: Vec<&str> = match encoding.as_str() {
        "VP8" => vec!["rtpvp8depay"],
        "VP9" => vec!["rtpvp9depay"],
        "H264" => vec!["rtph264depay", "h264parse"],
        "OPUS" => vec!["rtpopusdepay"],
        other => bail!("{media} codec {other} is not supported"),
    };
    let elements = chain
        .iter()
        .map(|factory| {
            gst::ElementFactory::make(factory)
                .build()
                .with_context(|| format!("{factory} is missing"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    let source = gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        .min_latency(RECEIVE_LATENCY.as_nanos() as i64)
        .build();
    pipeline.add_many(&elements)?;
    pipeline.add(&sink)?;
    let mut linked: Vec<&gst::Element> = elements.iter().collect();
    linked.push(sink.upcast_ref());
    gst::Element::link_many(linked)?;
    for element in elements.iter().chain(std::iter::once(sink.upcast_ref())) {
        element.sync_state_with_parent()?;
    }
    pad.link(
        &elements[0]
            .static_pad("sink")
            .context("depayloader without sink")?,
    )?;

    let into = source.clone();
    let early = Mutex::new(Vec::new());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(sample) = retime(&sample) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // Until the session has put the appsrc in its graph, an appsrc drops what it
                // gets; keep the first samples (the keyframe among them) for it.
                let mut early = early.lock().unwrap_or_else(|e| e.into_inner());
                if into.current_state() < gst::State::Paused {
                    if early.len() < EARLY_SAMPLES {
                        early.push(sample);
                    }
                    return Ok(gst::FlowSuccess::Ok);
                }
                for held in early.drain(..) {
                    let _ = into.push_sample(&held);
                }
                // Flushing once the session has let the track go; nothing to do about it here.
                let _ = into.push_sample(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    // Straight to webrtcbin's pad, where the RTP session turns it into a PLI.
    let upstream = elements[0]
        .static_pad("sink")
        .context("depayloader without sink")?
        .downgrade();
    source.static_pad("src").context("appsrc without src")?.add_probe(
        gst::PadProbeType::EVENT_UPSTREAM,
        move |_, info| {
            if let Some(event) = info.event()
                && gstreamer_video::ForceKeyUnitEvent::is(event)
                && let Some(pad) = upstream.upgrade()
            {
                let sent = pad.push_event(event.clone());
                tracing::debug!(sent, "key unit requested from the sender");
            }
            gst::PadProbeReturn::Ok
        },
    );
    tracing::info!(%mid, media, encoding = %encoding, "the peer receives a track");
    Ok(ReceivedTrack {
        mid,
        is_video: media == "video",
        media: source.upcast(),
    })
}

/// A received sample with its running time (call time) as timestamp.
fn retime(sample: &gst::Sample) -> Option<gst::Sample> {
    let buffer = sample.buffer_owned()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let at = buffer.pts().and_then(|pts| segment.to_running_time(pts))?;
    let mut buffer = buffer;
    {
        let buffer = buffer.make_mut();
        buffer.set_pts(at);
        buffer.set_dts(gst::ClockTime::NONE);
    }
    let caps = sample.caps_owned();
    let mut retimed = gst::Sample::builder().buffer(&buffer);
    if let Some(caps) = &caps {
        retimed = retimed.caps(caps);
    }
    Some(retimed.build())
}
