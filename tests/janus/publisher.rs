//! Test publishers: GStreamer webrtcbin peers that join a Janus room under a display name and
//! publish a solid colour and a tone (or a moving pattern marked as a screen share), leave on
//! cue, and come back by themselves after Janus restarts, as a real client does.

use egress::source::janus::JanusClient;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Publishing {
    pub display: String,
    /// Solid colour `0xRRGGBB` of the video.
    pub colour: u32,
    /// Described to Janus as a screen share rather than a camera.
    pub screen: bool,
    /// Sine tone in Hz; `None` for no audio.
    pub tone_hz: Option<f64>,
    /// Width, height and frame rate of the video.
    pub video: (u32, u32, u32),
    /// Scrolling colour bars at a camera's bitrate instead of the solid colour (benchmarks).
    pub moving: bool,
    /// A WAV file spoken once, this many seconds after publishing starts (then silence), in
    /// place of the tone.
    pub speech: Option<(std::path::PathBuf, f64)>,
}

impl Publishing {
    pub fn camera(display: &str, colour: u32, tone_hz: f64) -> Self {
        Publishing {
            display: display.into(),
            colour,
            screen: false,
            tone_hz: Some(tone_hz),
            speech: None,
            video: (320, 240, 15),
            moving: false,
        }
    }

    pub fn speaking(display: &str, colour: u32, wav: &std::path::Path, after_s: f64) -> Self {
        Publishing {
            speech: Some((wav.to_owned(), after_s)),
            tone_hz: None,
            ..Self::camera(display, colour, 0.0)
        }
    }

    pub fn screen(display: &str, colour: u32) -> Self {
        Publishing {
            display: display.into(),
            colour,
            screen: true,
            tone_hz: None,
            speech: None,
            video: (320, 240, 15),
            moving: false,
        }
    }
}

pub struct Publisher {
    stop: Arc<AtomicBool>,
    published: Arc<AtomicBool>,
    /// While set, no video leaves the publisher; its signalling and sound go on.
    video_held: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing into `room`; returns once Janus has accepted the stream.
    pub fn join(url: &str, room: u64, what: Publishing) -> Publisher {
        gst::init().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicBool::new(false));
        let video_held = Arc::new(AtomicBool::new(false));
        let (flag, done, url) = (stop.clone(), published.clone(), url.to_owned());
        let held = video_held.clone();
        let thread = std::thread::spawn(move || {
            // Publish; after a lost connection, publish again, as a real client does.
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = publish(&url, room, &what, &flag, &done, &held) {
                    eprintln!("publisher {}: {e}; again shortly", what.display);
                }
                done.store(false, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let publisher = Publisher {
            stop,
            published,
            video_held,
            thread: Some(thread),
        };
        publisher.wait_published(Duration::from_secs(10));
        publisher
    }

    pub fn wait_published(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.published.load(Ordering::Relaxed) {
            assert!(
                Instant::now() < deadline,
                "the publisher was not accepted in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops sending video (`true`) or sends it again, staying in the room.
    pub fn hold_video(&self, held: bool) {
        self.video_held.store(held, Ordering::Relaxed);
    }

    /// Leaves the room (unpublishes and hangs up).
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn publish(
    url: &str,
    room: u64,
    what: &Publishing,
    stop: &AtomicBool,
    published: &AtomicBool,
    video_held: &AtomicBool,
) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let mut client = JanusClient::connect(url, timeout).map_err(|e| e.to_string())?;
    let handle = client
        .attach("janus.plugin.videoroom", timeout)
        .map_err(|e| e.to_string())?;
    client
        .message(
            handle,
            json!({"request": "join", "ptype": "publisher", "room": room, "display": what.display}),
            None,
            timeout,
        )
        .map_err(|e| e.to_string())?;
    let (pipeline, webrtc) = sending_pipeline(what)?;
    let offer = local_offer(&webrtc)?;
    let descriptions: Vec<Value> = mids(&offer)
        .into_iter()
        .filter(|(kind, _)| kind == "video")
        .map(|(_, mid)| {
            let description = if what.screen { "screen" } else { "camera" };
            json!({"mid": mid, "description": description})
        })
        .collect();
    let reply = client
        .message(
            handle,
            json!({"request": "publish", "descriptions": descriptions}),
            Some(json!({"type": "offer", "sdp": offer, "trickle": false})),
            timeout,
        )
        .map_err(|e| e.to_string())?;
    let answer = reply
        .jsep
        .as_ref()
        .and_then(|j| j["sdp"].as_str())
        .ok_or("no answer")?;
    let answer = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes()).map_err(|e| e.to_string())?;
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
    promise.wait();
    published.store(true, Ordering::Relaxed);
    let valve = pipeline.by_name("hold").ok_or("no valve")?;
    let outcome = loop {
        let held = video_held.load(Ordering::Relaxed);
        if valve.property::<bool>("drop") != held {
            valve.set_property("drop", held);
        }
        if stop.load(Ordering::Relaxed) {
            let _ = client.message(handle, json!({"request": "leave"}), None, timeout);
            break Ok(());
        }
        if let Err(e) = client.next_event(Duration::from_millis(100)) {
            break Err(e.to_string());
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    client.close();
    outcome
}

pub fn sending_pipeline(what: &Publishing) -> Result<(gst::Pipeline, gst::Element), String> {
    let (video, bitrate) = match what.moving {
        true => (
            "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ".to_owned(),
            600_000,
        ),
        false => (
            format!(
                "videotestsrc is-live=true pattern=solid-color foreground-color={} ",
                0xff00_0000u32 | what.colour
            ),
            200_000,
        ),
    };
    // Janus routes by the SSRCs announced in the offer, so they are fixed in the caps.
    let (video_ssrc, audio_ssrc) = (fastrand::u32(1..u32::MAX), fastrand::u32(1..u32::MAX));
    let (w, h, fps) = what.video;
    let mut description = format!(
        "webrtcbin name=webrtc bundle-policy=max-bundle \
         {video} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! valve name=hold ! videoconvert ! \
         vp8enc deadline=1 cpu-used=8 target-bitrate={bitrate} keyframe-max-dist=60 ! \
         rtpvp8pay pt=96 ssrc={video_ssrc} ! \
         application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000,ssrc=(uint){video_ssrc} ! webrtc. "
    );
    let raw_audio = "audio/x-raw,format=S16LE,rate=48000,channels=1";
    let audio = match (&what.speech, what.tone_hz) {
        (Some((wav, _)), _) => Some(format!(
            "audiotestsrc is-live=true wave=silence ! {raw_audio} ! amix. \
             filesrc location={} ! wavparse ! audioconvert ! audioresample ! {raw_audio} ! \
             identity name=speech ! amix. audiomixer name=amix",
            wav.display()
        )),
        (None, Some(hz)) => Some(format!(
            "audiotestsrc is-live=true wave=sine freq={hz} volume=0.4"
        )),
        (None, None) => None,
    };
    if let Some(audio) = audio {
        description.push_str(&format!(
            "{audio} ! audioconvert ! audioresample ! \
             opusenc ! rtpopuspay pt=111 ssrc={audio_ssrc} ! \
             application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,ssrc=(uint){audio_ssrc} ! webrtc. "
        ));
    }
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let webrtc = pipeline.by_name("webrtc").ok_or("no webrtcbin")?;
    if let (Some((_, after_s)), Some(speech)) = (&what.speech, pipeline.by_name("speech")) {
        // The mixer, paced by the live silence, plays the speech at this running time.
        let pad = speech.static_pad("src").ok_or("identity without src")?;
        pad.set_offset((after_s * 1e9) as i64);
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    Ok((pipeline, webrtc))
}

/// Creates the offer, sets it, waits for ICE gathering and returns it with the candidates.
fn local_offer(webrtc: &gst::Element) -> Result<String, String> {
    wait_for_caps(webrtc);
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    promise.wait();
    let offer = promise
        .get_reply()
        .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
        .ok_or("webrtcbin made no offer")?;
    gathered_local_description(webrtc, &offer)
}

/// Waits (up to 3 s) until every stream into webrtcbin has caps: an offer or answer made before
/// lacks their codecs.
pub fn wait_for_caps(webrtc: &gst::Element) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while webrtc.sink_pads().iter().any(|p| p.current_caps().is_none()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sets `description` as the local one and returns it with the candidates once ICE gathering
/// is complete (or after 3 s).
pub fn gathered_local_description(
    webrtc: &gst::Element,
    description: &gst_webrtc::WebRTCSessionDescription,
) -> Result<String, String> {
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-local-description", &[description, &promise]);
    promise.wait();
    let deadline = Instant::now() + Duration::from_secs(3);
    while webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
        != gst_webrtc::WebRTCICEGatheringState::Complete
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or("no local description")?;
    local.sdp().as_text().map_err(|e| e.to_string())
}

/// `(media, mid)` of each m-line of an SDP.
fn mids(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut media = String::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            media = m.split(' ').next().unwrap_or_default().to_owned();
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            out.push((media.clone(), mid.trim().to_owned()));
        }
    }
    out
}
