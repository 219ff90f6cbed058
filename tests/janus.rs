//! Real calls: Janus (Debian) in a network namespace of its own, publishers that are GStreamer
//! WebRTC peers, and the worker joining as a hidden subscriber. What a user would check: the
//! tiles and their colours in the MP4, the sound of each publisher in the mix, the layout when
//! someone shares a screen, the recording surviving a Janus restart, and clear failures.

#[path = "janus/bed.rs"]
mod bed;
mod common;
#[path = "janus/publisher.rs"]
mod publisher;
#[path = "janus/whep.rs"]
mod whep;

use bed::{JanusBed, no_test_beds};
use common::*;
use publisher::{Publisher, Publishing};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use whep::WhepServer;

const RED: u32 = 0xd03030;
const GREEN: u32 = 0x30a040;
const BLUE: u32 = 0x3050d0;
const YELLOW: u32 = 0xe0c020;
const PLACEHOLDER: u32 = 0x6a4c88;

fn rgb(colour: u32) -> [u8; 3] {
    [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8]
}

fn janus_job(url: &str, room: u64, seconds: u32) -> Value {
    json!({
        "call_cid": "default:janus-call",
        "source": {
            "type": "janus", "url": url, "room": room,
            "participants": {
                "alice": {"user_id": "alice", "name": "Alice", "roles": ["host"]},
                "bob": {"user_id": "bob", "name": "Bob"},
            },
        },
        "recording": {"quality": "720p", "layout": {"name": "grid"}},
        "limits": {"max_duration_seconds": seconds},
    })
}

/// Mean level (dB) of the part of the sound within 40 Hz of `hz`, between two times.
fn tone_level_db(file: &Path, hz: f64, from_s: f64, to_s: f64) -> f64 {
    let band = format!("bandpass=f={hz}:width_type=h:w=40,");
    filtered_volume_db(file, from_s, to_s, &band.repeat(2))
}

/// The tiles of a grid of `colours.len()` participants show exactly these colours, in any order
/// (the order is the order the worker saw them join).
fn assert_tiles(frame: &Frame, colours: &[u32], what: &str) {
    let names: Vec<String> = (0..colours.len()).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let scene = expected_scene("grid", &json!({}), &names, 1280, 720);
    let mut seen: Vec<[u8; 3]> = scene
        .tiles
        .iter()
        .filter(|t| t.rect.w > 50)
        .map(|t| {
            let (x, y) = t.rect.center();
            frame.colour_at(x, y)
        })
        .collect();
    assert_eq!(seen.len(), colours.len(), "{what}: tiles {seen:?}");
    for colour in colours {
        let found = seen.iter().position(|c| close(*c, rgb(*colour)));
        let Some(index) = found else {
            panic!("{what}: no tile of colour {colour:06x} among {seen:?}");
        };
        seen.remove(index);
    }
}

fn sleep_until(start: Instant, at_s: f64) {
    let at = start + Duration::from_secs_f64(at_s);
    if let Some(wait) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

#[test]
fn a_janus_call_is_recorded_with_its_tiles_reflow_screen_share_and_sound() {
    let bed = JanusBed::start();
    bed.create_room(1001, None);
    let alice = Publisher::join(&bed.url, 1001, Publishing::camera("alice", RED, 400.0));
    let bob = Publisher::join(&bed.url, 1001, Publishing::camera("bob", GREEN, 700.0));
    let carol = Publisher::join(&bed.url, 1001, Publishing::camera("carol", BLUE, 1000.0));
    let scratch = Scratch::new("janus-call");
    let mut job = Running::spawn(&scratch, &janus_job(&bed.url, 1001, 23), &[]);
    job.wait_for("call.recording_started", Duration::from_secs(10));
    let start = Instant::now();
    sleep_until(start, 9.0);
    carol.leave();
    sleep_until(start, 15.0);
    let screen = Publisher::join(&bed.url, 1001, Publishing::screen("alice", YELLOW));
    let events = job.finish(Duration::from_secs(40));
    drop((alice, bob, screen));
    let file = ready_file(&events);
    let probe = probe(&file);
    let duration = duration_s(&probe);
    assert!((21.0..25.0).contains(&duration), "duration {duration}");
    assert_eq!(decode_errors(&file), "", "the recording decodes cleanly");

    // Three tiles where the grid puts three, each its publisher's colour; then two.
    assert_tiles(
        &Frame::at(&file, 6.5, 1280, 720),
        &[RED, GREEN, BLUE],
        "three publishers",
    );
    let two = Frame::at(&file, 13.0, 1280, 720);
    assert_tiles(&two, &[RED, GREEN], "carol gone, the grid re-flowed");
    assert!(share_of(&two, rgb(BLUE)) < 0.005, "carol's tile is gone");
    // Alice shares her screen: the screen-share layout (spotlight) features it.
    let shared = Frame::at(&file, 20.5, 1280, 720);
    let screen_share = share_of(&shared, rgb(YELLOW));
    assert!(
        screen_share > 0.3,
        "the screen share is featured: share {screen_share}"
    );

    // Each publisher is heard while in the call; carol not after leaving.
    let heard = -50.0;
    for (hz, name) in [(400.0, "alice"), (700.0, "bob")] {
        for (from, to) in [(4.5, 8.0), (11.0, 14.0), (17.0, 21.0)] {
            let level = tone_level_db(&file, hz, from, to);
            assert!(level > heard, "{name} ({hz} Hz) at {from}-{to} s: {level} dB");
        }
    }
    let carol_in = tone_level_db(&file, 1000.0, 4.5, 8.0);
    let carol_out = tone_level_db(&file, 1000.0, 12.0, 21.0);
    assert!(carol_in > heard, "carol heard while in the call: {carol_in} dB");
    assert!(
        carol_out < carol_in - 20.0,
        "carol silent after leaving: {carol_out} vs {carol_in} dB"
    );
}

#[test]
fn the_participant_who_speaks_takes_the_single_participant_layout() {
    let bed = JanusBed::start();
    bed.create_room(1004, None);
    let scratch = Scratch::new("janus-speaker");
    let wav = speak(
        &scratch,
        "alice",
        "I will take the question about the quarterly figures now.",
    );
    // Bob is in first and says nothing; alice joins silent and speaks two seconds later. Her
    // sound arrives as Opus over RTP, as every real call's does.
    let quiet = Publishing {
        tone_hz: None,
        ..Publishing::camera("bob", GREEN, 0.0)
    };
    let bob = Publisher::join(&bed.url, 1004, quiet);
    bob.wait_published(Duration::from_secs(10));
    let mut job = janus_job(&bed.url, 1004, 16);
    job["recording"]["layout"] = json!({
        "name": "single-participant",
        "options": { "participant.video_border_width": false, "participant.label_display": false }
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(10));
    let alice = Publisher::join(&bed.url, 1004, Publishing::speaking("alice", RED, &wav, 2.0));
    let events = running.finish(Duration::from_secs(40));
    drop((alice, bob));
    let file = ready_file(&events);
    let duration = duration_s(&probe(&file));
    let centre = |at: f64| Frame::at(&file, at, 1280, 720).colour_at(640, 360);
    // Alice speaks no sooner than 2 s after joining and takes over a second after that; bob's
    // first keyframe may take a moment to come (under load, past 2.5 s): any frame before alice
    // can have spoken will do.
    let before: Vec<[u8; 3]> = [1.0, 1.5, 2.0, 2.5, 2.9].into_iter().map(centre).collect();
    assert!(
        before.iter().any(|c| close(*c, rgb(GREEN))),
        "bob is shown before anyone speaks: {before:?}"
    );
    let after = centre(duration - 1.0);
    assert!(
        close(after, rgb(RED)),
        "alice, who spoke, is shown at the end: {after:?}"
    );
}

fn epoch_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_camera_whose_frames_stop_shows_its_placeholder_and_comes_back_by_itself() {
    let bed = JanusBed::start();
    bed.create_room(1005, None);
    let alice = Publisher::join(&bed.url, 1005, Publishing::camera("alice", RED, 400.0));
    let bob = Publisher::join(&bed.url, 1005, Publishing::camera("bob", GREEN, 700.0));
    let scratch = Scratch::new("janus-stall");
    let mut job = janus_job(&bed.url, 1005, 16);
    job["recording"]["layout"]["options"] =
        json!({ "participant.placeholder_background_color": format!("#{PLACEHOLDER:06x}") });
    job["frame_recording"] = json!({"capture_interval_in_seconds": 2, "quality": "360p"});
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(10));
    let start = Instant::now();
    sleep_until(start, 4.0);
    // Alice's camera stops sending; her signalling and sound go on.
    let held_at = epoch_s();
    alice.hold_video(true);
    sleep_until(start, 9.0);
    let resumed_at = epoch_s();
    alice.hold_video(false);
    let events = running.finish(Duration::from_secs(40));
    drop((alice, bob));
    let file = ready_file(&events);

    assert_tiles(&Frame::at(&file, 3.0, 1280, 720), &[RED, GREEN], "both cameras");
    let stalled = Frame::at(&file, 7.5, 1280, 720);
    let red = share_of(&stalled, rgb(RED));
    assert!(red < 0.005, "alice's last frame is not kept: {red}");
    assert!(share_of(&stalled, rgb(GREEN)) > 0.1, "bob's tile goes on");
    // The grid keeps alice's tile, now her placeholder.
    let scene = expected_scene("grid", &json!({}), &["alice", "bob"], 1280, 720);
    let others: Vec<[u8; 3]> = scene
        .tiles
        .iter()
        .map(|t| {
            let (x, y) = t.rect.center();
            // Below the initials in the middle of the tile.
            stalled.colour_at(x, y + t.rect.h as i32 / 4)
        })
        .filter(|c| !close(*c, rgb(GREEN)))
        .collect();
    assert!(
        matches!(others.as_slice(), [c] if close(*c, rgb(PLACEHOLDER))),
        "alice's tile shows her placeholder: {others:?}"
    );
    assert_tiles(
        &Frame::at(&file, 13.5, 1280, 720),
        &[RED, GREEN],
        "alice's frames are back",
    );

    let alice_stills: Vec<f64> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready" && e["users"].get("alice").is_some())
        .map(captured_s)
        .collect();
    let during: Vec<&f64> = alice_stills
        .iter()
        .filter(|&&at| at > held_at + 1.0 && at < resumed_at)
        .collect();
    assert!(
        during.is_empty(),
        "no stills of a camera sending nothing: {during:?}"
    );
    assert!(
        alice_stills.iter().any(|&at| at > resumed_at),
        "stills again once frames return: {alice_stills:?}"
    );
}

#[test]
fn janus_behind_tls_is_joined_with_the_operators_ca_and_an_untrusted_one_fails_clearly() {
    let bed = JanusBed::start();
    bed.create_room(1006, None);
    let alice = Publisher::join(&bed.url, 1006, Publishing::camera("alice", RED, 400.0));
    let scratch = Scratch::new("janus-wss");
    let certificates = TestCertificates::create(&scratch.dir.join("pki"));
    let janus = url::Url::parse(&bed.url).unwrap();
    let backend = format!("{}:{}", janus.host_str().unwrap(), janus.port().unwrap());
    let front = TlsFront::start_to(&scratch.dir.join("tls-front"), &certificates, &backend);
    let job = janus_job(&format!("wss://127.0.0.1:{}", front.port), 1006, 5);

    // A certificate from a CA the worker was not told of.
    let (status, events) = Running::spawn(&scratch, &job, &[]).end(Duration::from_secs(40));
    assert_eq!(status.code(), Some(1), "{events:#?}");
    let failed = events
        .iter()
        .find(|e| e["type"] == "call.recording_failed")
        .unwrap_or_else(|| panic!("a failed event: {events:#?}"));
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "the error says the certificate is not trusted: {error}"
    );

    // The operator's CA, worker-wide.
    let trusted = Scratch::new("janus-wss-trusted");
    let mut command = egress();
    command.env("EGRESS_TLS_CA_FILE", &certificates.ca);
    let events = Running::spawn_with(command, &trusted, &job, &[]).finish(Duration::from_secs(40));
    drop(alice);
    let file = ready_file(&events);
    assert_tiles(&Frame::at(&file, 3.0, 1280, 720), &[RED], "alice over wss://");
}

#[test]
fn the_recording_survives_a_janus_restart() {
    let bed = JanusBed::start();
    // Room 1234 is in the test configuration, so it is there again after the restart.
    let alice = Publisher::join(&bed.url, 1234, Publishing::camera("alice", RED, 400.0));
    let bob = Publisher::join(&bed.url, 1234, Publishing::camera("bob", GREEN, 700.0));
    let scratch = Scratch::new("janus-restart");
    let mut job = Running::spawn(&scratch, &janus_job(&bed.url, 1234, 26), &[]);
    job.wait_for("call.recording_started", Duration::from_secs(10));
    let start = Instant::now();
    sleep_until(start, 8.0);
    bed.kill();
    sleep_until(start, 9.0);
    bed.restart();
    alice.wait_published(Duration::from_secs(10));
    bob.wait_published(Duration::from_secs(10));
    let back_at = start.elapsed().as_secs_f64();
    let events = job.finish(Duration::from_secs(40));
    drop((alice, bob));
    assert!(back_at < 16.0, "publishers back at {back_at} s");
    let file = ready_file(&events);
    let duration = duration_s(&probe(&file));
    assert!(
        (24.0..28.0).contains(&duration),
        "the file kept going: {duration} s"
    );
    let before = Frame::at(&file, 6.5, 1280, 720);
    let after = Frame::at(&file, 22.0, 1280, 720);
    for colour in [RED, GREEN] {
        assert!(share_of(&before, rgb(colour)) > 0.05, "tile before the restart");
        assert!(
            share_of(&after, rgb(colour)) > 0.05,
            "tile back after the restart (publishers back at {back_at:.1} s)"
        );
    }
    assert!(
        !event_types(&events).iter().any(|t| t.ends_with("_failed")),
        "no failure: {events:#?}"
    );
}

#[test]
fn a_wrong_room_a_wrong_pin_or_no_janus_fail_the_job_quickly_and_clearly() {
    let bed = JanusBed::start();
    bed.create_room(2002, Some("right-pin-4471"));
    let cases = [
        (janus_job(&bed.url, 9999, 20), "No such room"),
        (
            {
                let mut job = janus_job(&bed.url, 2002, 20);
                job["source"]["pin"] = json!("wrong-pin-9321");
                job
            },
            "Unauthorized",
        ),
        (
            janus_job(&bed.url.replace(":8188", ":8199"), 2002, 20),
            "cannot reach Janus",
        ),
    ];
    for (index, (job, cause)) in cases.iter().enumerate() {
        let scratch = Scratch::new(&format!("janus-refused-{index}"));
        let started = Instant::now();
        let (output, events) = run_job(&scratch, job);
        let took = started.elapsed();
        assert!(!output.status.success(), "case {index} must fail");
        assert!(took < Duration::from_secs(10), "case {index} took {took:?}");
        let failed = events
            .iter()
            .find(|e| e["type"] == "call.recording_failed")
            .unwrap_or_else(|| panic!("no recording_failed: {events:#?}"));
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(cause),
            "case {index}: {error:?} should name {cause:?}"
        );
        let everything = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!everything.contains("wrong-pin-9321"), "the PIN never shows");
    }
}

fn still_of(event: &Value) -> image::RgbImage {
    let url = event["url"].as_str().unwrap();
    image::open(url.strip_prefix("file://").unwrap())
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .to_rgb8()
}

/// Stills taken from keyframes the worker asks for, every 2 s: an answer may come late (a PLI
/// lost or slow over the network), so each gap is loose, and the mean is close to 2 s (the
/// publishers' own keyframes come every 4 s).
fn assert_keyframe_spacing(what: &str, times: &[f64]) {
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (1.0..3.3).contains(&gap),
            "{what}: stills {gap:.3} s apart ({times:?})"
        );
    }
    let mean = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
    let gaps: Vec<String> = times.windows(2).map(|p| format!("{:.2}", p[1] - p[0])).collect();
    println!("janus keyframe stills of {what}: gaps {gaps:?}, mean {mean:.3} s");
    assert!(
        (mean - 2.0).abs() <= 0.25,
        "{what}: stills {mean:.3} s apart on average ({times:?})"
    );
}

#[test]
fn a_janus_call_gets_stills_of_every_publisher_and_captions_of_what_they_say() {
    let bed = JanusBed::start();
    bed.create_room(3003, None);
    let scratch = Scratch::new("janus-stills-captions");
    let model = model_path();
    let sentence = "Please send the recording to the compliance team before Friday.";
    let wav = speak(&scratch, "alice", sentence);
    let bob = Publisher::join(&bed.url, 3003, Publishing::camera("bob", GREEN, 700.0));
    let mut job = janus_job(&bed.url, 3003, 20);
    job.as_object_mut().unwrap().remove("recording");
    job["frame_recording"] = json!({"capture_interval_in_seconds": 2, "quality": "360p"});
    job["transcription"] = json!({"language": "en", "closed_captions": true});
    let mut running = Running::spawn(&scratch, &job, &["--whisper-model", model.to_str().unwrap()]);
    running.wait_for("call.frame_recording_started", Duration::from_secs(10));
    let start = Instant::now();
    sleep_until(start, 1.0);
    let alice = Publisher::join(&bed.url, 3003, Publishing::speaking("alice", RED, &wav, 4.0));
    sleep_until(start, 6.0);
    let screen = Publisher::join(&bed.url, 3003, Publishing::screen("alice", YELLOW));
    sleep_until(start, 9.0);
    let joining = epoch_s();
    let late = Publisher::join(&bed.url, 3003, Publishing::camera("erin", BLUE, 1000.0));
    let joined = epoch_s();
    let log = running.log.clone();
    let events = running.finish(Duration::from_secs(60));
    drop((alice, bob, screen, late));
    let log = std::fs::read_to_string(log).unwrap();
    // The job takes sound too: video comes apart, where the worker's PLIs reach the publishers.
    assert!(log.contains("keyframes_only=true"), "on the keyframe path: {log}");
    assert!(log.contains("part=\"audio\""), "sound subscribed apart: {log}");

    // Stills: every publisher's camera and alice's screen, each its own colour.
    let mut by_track: std::collections::BTreeMap<(String, String), Vec<&Value>> = Default::default();
    for event in events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
    {
        let user = event["users"].as_object().unwrap().keys().next().unwrap().clone();
        let track = event["track_type"].as_str().unwrap().to_owned();
        by_track.entry((user, track)).or_default().push(event);
    }
    let expected = [
        ("alice", "TRACK_TYPE_SCREEN_SHARE", YELLOW),
        ("alice", "TRACK_TYPE_VIDEO", RED),
        ("bob", "TRACK_TYPE_VIDEO", GREEN),
        ("erin", "TRACK_TYPE_VIDEO", BLUE),
    ];
    let keys: Vec<(String, String)> = by_track.keys().cloned().collect();
    assert_eq!(
        keys,
        expected
            .iter()
            .map(|(u, t, _)| (u.to_string(), t.to_string()))
            .collect::<Vec<_>>(),
        "a still series per video track"
    );
    for (user, track, colour) in expected {
        let stills = &by_track[&(user.to_string(), track.to_string())];
        assert!(stills.len() >= 3, "{user} {track}: {} stills", stills.len());
        let times: Vec<f64> = stills.iter().map(|e| captured_s(e)).collect();
        assert_keyframe_spacing(&format!("{user} {track}"), &times);
        for event in stills {
            let share = image_share_of(&still_of(event), rgb(colour));
            assert!(share > 0.8, "{user} {track}: {:.0} % its colour", share * 100.0);
        }
    }
    // captured_at is the wall-clock time the frame was shown.
    let erin_first = captured_s(by_track[&("erin".to_string(), "TRACK_TYPE_VIDEO".to_string())][0]);
    assert!(
        erin_first >= joining - 0.2 && erin_first <= joined + 3.0,
        "the late joiner's stills start when she joins: first at {erin_first:.2}, joining {joining:.2}–{joined:.2}"
    );

    // Captions: alice's sentence, under her name; nothing for the tones.
    let captions: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.closed_caption")
        .collect();
    let heard: Vec<&str> = captions
        .iter()
        .filter(|c| c["closed_caption"]["speaker_id"] == "alice")
        .map(|c| c["closed_caption"]["text"].as_str().unwrap())
        .collect();
    let wer = word_error_rate(sentence, &heard.join(" "));
    println!("alice over Janus: WER {wer:.2} {heard:?}");
    assert!(wer <= 0.3, "alice said {sentence:?}, captions say {heard:?}");
    let others: Vec<String> = captions
        .iter()
        .filter(|c| c["closed_caption"]["speaker_id"] != "alice")
        .map(|c| {
            format!(
                "{}: {}",
                c["closed_caption"]["speaker_id"], c["closed_caption"]["text"]
            )
        })
        .collect();
    assert!(others.is_empty(), "tones are no speech: {others:?}");
    assert_eq!(captions[0]["closed_caption"]["user"]["name"], "Alice");
    assert!(
        event_types(&events)
            .iter()
            .any(|t| t == "call.transcription_ready"),
        "the transcript is stored"
    );
}

#[test]
fn a_whep_endpoint_over_https_is_trusted_through_the_operators_ca() {
    let token = "viewer-token-6612";
    let _alone = no_test_beds();
    let server = WhepServer::start(Publishing::camera("stage", BLUE, 700.0), token);
    let scratch = Scratch::new("whep-https");
    let certificates = TestCertificates::create(&scratch.dir.join("pki"));
    let plain = url::Url::parse(&server.url).unwrap();
    let front = TlsFront::start(
        &scratch.dir.join("tls-front"),
        &certificates,
        plain.port().unwrap(),
    );
    let job = json!({
        "call_cid": "default:whep-https",
        "source": {
            "type": "whep", "url": format!("https://127.0.0.1:{}{}", front.port, plain.path()),
            "bearer_token": token, "participant": {"user_id": "stage"},
        },
        "recording": {"quality": "720p", "layout": {"name": "grid"}},
        "limits": {"max_duration_seconds": 6},
    });
    let mut command = egress();
    command.env("EGRESS_TLS_CA_FILE", &certificates.ca);
    let events = Running::spawn_with(command, &scratch, &job, &[]).finish(Duration::from_secs(40));
    let file = ready_file(&events);
    assert_tiles(
        &Frame::at(&file, 4.0, 1280, 720),
        &[BLUE],
        "the WHEP stream over https",
    );
    assert_eq!(
        server.seen().first().map(String::as_str),
        Some("POST /whep/call"),
        "the offer went through TLS"
    );
}

#[test]
fn a_whep_stream_is_recorded_as_one_participant_and_its_session_deleted() {
    let token = "viewer-token-5521";
    let _alone = no_test_beds();
    let server = WhepServer::start(Publishing::camera("stage", BLUE, 700.0), token);
    let scratch = Scratch::new("whep");
    let job = json!({
        "call_cid": "default:whep-call",
        "source": {
            "type": "whep", "url": server.url, "bearer_token": token,
            "participant": {"user_id": "stage", "name": "Main stage"},
        },
        "recording": {"quality": "720p", "layout": {"name": "grid"}},
        "limits": {"max_duration_seconds": 10},
    });
    let (output, events) = run_job(&scratch, &job);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    let file = ready_file(&events);
    assert_tiles(&Frame::at(&file, 6.0, 1280, 720), &[BLUE], "the WHEP stream");
    let level = tone_level_db(&file, 700.0, 4.0, 9.0);
    assert!(
        level > -50.0,
        "the stream's sound is in the mix: {level} dB; log:\n{log}"
    );
    let seen = server.seen();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("POST /whep/call"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|r| r.starts_with("DELETE /whep/session/")),
        "the session is deleted at the end: {seen:?}"
    );
    let everything = format!("{}{log}", String::from_utf8_lossy(&output.stdout));
    assert!(!everything.contains(token), "the bearer token never shows");

    // A token the endpoint refuses fails the job at once, in plain words.
    let mut refused = job.clone();
    refused["source"]["bearer_token"] = json!("not-the-token-8830");
    let started = Instant::now();
    let (output, events) = run_job(&Scratch::new("whep-refused"), &refused);
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let failed = events
        .iter()
        .find(|e| e["type"] == "call.recording_failed")
        .expect("recording_failed");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!format!("{events:?}{}", String::from_utf8_lossy(&output.stderr)).contains("not-the-token-8830"));
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let per_second: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ticks / per_second
}

/// Milliseconds from launch to the first encoded frame, from the worker's log.
fn first_frame_ms(log: &str) -> f64 {
    log.lines()
        .find_map(|l| l.split("ms_since_launch=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the log tells when the first frame was encoded")
}

/// When (ms of the log's clock) the first log line containing `what` was written.
fn log_time(log: &str, what: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in the log"));
    let stamp = line.split_whitespace().next().unwrap();
    chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap()
        .timestamp_micros() as f64
        / 1000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Join latency (job received to the first encoded frame showing a publisher) and the CPU the
/// ingest path costs per participant (WebRTC, depayloading, decoding, scaling into the grid).
#[test]
#[ignore = "benchmark; scripts/bench.sh runs it"]
fn bench_join_latency_and_ingest_cpu() {
    let bed = JanusBed::start();
    bed.create_room(4004, None);
    let alice = Publisher::join(&bed.url, 4004, Publishing::camera("alice", RED, 400.0));
    let mut joins = Vec::new();
    let mut firsts = Vec::new();
    for run in 0..7 {
        let scratch = Scratch::new(&format!("bench-join-{run}"));
        let mut job = janus_job(&bed.url, 4004, 6);
        job["egress_id"] = json!(format!("eg_join_{run}"));
        let running = Running::spawn(&scratch, &job, &[]);
        let log_path = running.log.clone();
        let events = running.finish(Duration::from_secs(30));
        let log = std::fs::read_to_string(log_path).unwrap();
        let first = first_frame_ms(&log);
        let frames = frames_between(&ready_file(&events), 0.0, 5.0, 160, 90);
        let shown = frames
            .iter()
            .position(|f| share_of(f, rgb(RED)) > 0.05)
            .expect("the publisher shows up in the recording");
        let join = first + shown as f64 * 1000.0 / 30.0;
        let launch = log_time(&log, "ms_since_launch=") - first;
        let since = |what: &str| log_time(&log, what) - launch;
        println!(
            "run {run}: after launch, in ms: in the room {:.0}, subscribed {:.0}, camera received {:.0}, first encoded frame {first:.0}, first frame showing the publisher {join:.0}",
            since("joined the Janus room"),
            since("subscribed to a publisher"),
            since("kind=\"camera\""),
        );
        joins.push(join);
        firsts.push(first);
    }
    drop(alice);
    println!(
        "join latency (job received to the first encoded frame of the call): median {:.0} ms, max {:.0} ms over {} runs; first encoded frame median {:.0} ms",
        median(&mut joins.clone()),
        joins.iter().copied().fold(0.0, f64::max),
        joins.len(),
        median(&mut firsts)
    );

    // Ingest CPU: the worker with 1 and with 5 publishers (640x360, 30 fps, moving picture,
    // 600 kb/s), recording 720p; CPU over 20 s of steady state. The difference over 4 is what
    // one more participant costs.
    let mut cpu = Vec::new();
    for count in [1usize, 5] {
        let room = 5000 + count as u64;
        bed.create_room(room, None);
        let publishers: Vec<Publisher> = (0..count)
            .map(|i| {
                let mut what = Publishing::camera(&format!("p{i}"), RED, 300.0 + 100.0 * i as f64);
                what.video = (640, 360, 30);
                what.moving = true;
                Publisher::join(&bed.url, room, what)
            })
            .collect();
        let scratch = Scratch::new(&format!("bench-ingest-{count}"));
        let mut running = Running::spawn(&scratch, &janus_job(&bed.url, room, 32), &[]);
        running.wait_for("call.recording_started", Duration::from_secs(10));
        let pid = running.child.id();
        std::thread::sleep(Duration::from_secs(8));
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(20));
        let used = cpu_seconds(pid) - before;
        running.finish(Duration::from_secs(30));
        drop(publishers);
        println!(
            "{count} publisher(s): worker {:.3} CPU s per media s",
            used / 20.0
        );
        cpu.push(used / 20.0);
    }
    println!(
        "ingest per participant (WebRTC receive, depayload, VP8 decode 640x360@30, scale into a 720p grid): {:.3} cores",
        (cpu[1] - cpu[0]) / 4.0
    );
}

#[test]
fn the_job_ends_once_the_room_has_had_no_publisher_for_the_inactivity_timeout() {
    let bed = JanusBed::start();
    bed.create_room(6006, None);
    let alice = Publisher::join(&bed.url, 6006, Publishing::camera("alice", RED, 400.0));
    let scratch = Scratch::new("janus-inactive");
    let mut job = janus_job(&bed.url, 6006, 60);
    job["source"]["inactivity_timeout_seconds"] = json!(5);
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    let left_at = Instant::now();
    alice.leave();
    let events = running.finish(Duration::from_secs(30));
    let ended_after = left_at.elapsed().as_secs_f64();
    assert!(
        (4.5..9.0).contains(&ended_after),
        "the job ended {ended_after:.1} s after the last publisher left (timeout 5 s)"
    );
    let duration = duration_s(&probe(&ready_file(&events)));
    assert!((8.0..14.0).contains(&duration), "recording of {duration:.1} s");
}

#[test]
fn whep_stills_come_at_the_interval_from_keyframes_the_worker_asks_for() {
    // The sender's own keyframes come every 4 s (60 frames at 15 fps); stills every 2 s need
    // the worker's key-unit requests to reach it as PLIs.
    let _alone = no_test_beds();
    let token = "stills-token-0417";
    let server = WhepServer::start(Publishing::camera("stage", GREEN, 500.0), token);
    let scratch = Scratch::new("whep-stills");
    let job = json!({
        "call_cid": "default:whep-stills",
        "source": {"type": "whep", "url": server.url, "bearer_token": token},
        "frame_recording": {"capture_interval_in_seconds": 2, "quality": "360p"},
        "limits": {"max_duration_seconds": 13},
    });
    let events = run_successfully(&scratch, &job);
    let stills: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect();
    let times: Vec<f64> = stills.iter().map(|e| captured_s(e)).collect();
    let gaps: Vec<String> = times.windows(2).map(|p| format!("{:.2}", p[1] - p[0])).collect();
    println!("whep keyframe stills: gaps {gaps:?}");
    // 13 s from launch, less the connection and the first keyframe: 5 or 6 on an idle machine.
    assert!(stills.len() >= 4, "{} stills: {times:?}", stills.len());
    // Each still is the sender's answer to a PLI, which comes a round trip, an encoded frame and
    // the RTP session's feedback timing after the beat (0.1 to 0.9 s here): the beat holds on
    // average and no still waits for the sender's own keyframe, 4 s after the last.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((1.0..3.3).contains(&gap), "stills {gap:.3} s apart ({times:?})");
    }
    let mean = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
    assert!(
        (mean - 2.0).abs() <= 0.25,
        "stills {mean:.3} s apart on average ({times:?})"
    );
}

#[test]
fn janus_stills_only_job_takes_keyframes_the_worker_asks_the_publishers_for() {
    // The publishers' own keyframes come every 4 s; stills every 2 s need the worker's key-unit
    // requests to reach them through Janus, as PLIs. (A job with no sound subscribes to video
    // alone.)
    let bed = JanusBed::start();
    bed.create_room(3005, None);
    let scratch = Scratch::new("janus-keyframe-stills");
    let bob = Publisher::join(&bed.url, 3005, Publishing::camera("bob", GREEN, 700.0));
    let alice = Publisher::join(&bed.url, 3005, Publishing::camera("alice", RED, 500.0));
    let mut job = janus_job(&bed.url, 3005, 13);
    job.as_object_mut().unwrap().remove("recording");
    job["frame_recording"] = json!({"capture_interval_in_seconds": 2, "quality": "360p"});
    let (output, events) = run_job(&scratch, &job);
    drop((alice, bob));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("keyframes_only=true"), "on the keyframe path: {log}");
    for (user, colour) in [("bob", GREEN), ("alice", RED)] {
        let stills: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "call.frame_recording_ready" && e["users"].get(user).is_some())
            .collect();
        let times: Vec<f64> = stills.iter().map(|e| captured_s(e)).collect();
        assert!(stills.len() >= 4, "{user}: {} stills: {times:?}", stills.len());
        assert_keyframe_spacing(user, &times);
        for event in stills {
            let share = image_share_of(&still_of(event), rgb(colour));
            assert!(share > 0.8, "{user}: {:.0} % its colour", share * 100.0);
        }
    }
}

/// Raw recording of a Janus call of three: every publisher's VP8 and Opus as Janus forwarded
/// them, a file per stay (one publisher leaves and comes back), each starting on a keyframe and
/// decoding cleanly, and the manifest with both of that publisher's stays; the raw recording
/// rendered again shows what the live composite showed.
#[test]
fn a_janus_call_is_recorded_raw_and_individually_with_a_file_per_track_and_stay() {
    let bed = JanusBed::start();
    let alice = Publisher::join(&bed.url, 1234, Publishing::camera("alice", RED, 400.0));
    let bob = Publisher::join(&bed.url, 1234, Publishing::camera("bob", GREEN, 700.0));
    let carol = Publisher::join(&bed.url, 1234, Publishing::camera("carol", BLUE, 550.0));
    alice.wait_published(Duration::from_secs(10));
    bob.wait_published(Duration::from_secs(10));
    carol.wait_published(Duration::from_secs(10));
    let scratch = Scratch::new("janus-raw");
    let mut job = janus_job(&bed.url, 1234, 22);
    job["raw_recording"] = json!({});
    job["individual_recording"] = json!({ "quality": "360p" });
    job["recording"] = json!({ "quality": "360p" });
    job["frame_recording"] = json!({ "capture_interval_in_seconds": 2, "quality": "360p" });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(15));
    let raw_file = |file: &'static str| {
        move |e: &Value| e["recording_type"] == "raw" && e["call_recording"]["filename"] == file
    };
    // Stills of the call say how far it has got.
    let first = running.wait_for("call.frame_recording_ready", Duration::from_secs(15));
    let call_start = captured_s(&first);
    running.wait_for_where("call.frame_recording_ready", Duration::from_secs(20), |e| {
        captured_s(e) - call_start >= 6.0
    });
    // Bob leaves (his files close and are stored) and comes back.
    bob.leave();
    running.wait_for_where(
        "call.recording_ready",
        Duration::from_secs(20),
        raw_file("raw_bob_camera.webm"),
    );
    // Away for a while: the render is compared with the live composite while he is gone.
    running.wait_for_where("call.frame_recording_ready", Duration::from_secs(20), |e| {
        captured_s(e) - call_start >= 10.0
    });
    let bob = Publisher::join(&bed.url, 1234, Publishing::camera("bob", GREEN, 700.0));
    bob.wait_published(Duration::from_secs(10));
    let events = running.finish(Duration::from_secs(40));
    drop((alice, bob, carol));
    let raw: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "raw")
        .collect();
    let names: Vec<&str> = raw
        .iter()
        .map(|e| e["call_recording"]["filename"].as_str().unwrap())
        .collect();
    for name in [
        "raw_alice_camera.webm",
        "raw_alice_microphone.webm",
        "raw_carol_camera.webm",
        "raw_carol_microphone.webm",
        "raw_bob_camera.webm",
        "raw_bob_microphone.webm",
        "raw_bob_camera_2.webm",
        "raw_bob_microphone_2.webm",
        "manifest.json",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for event in &raw {
        let name = event["call_recording"]["filename"].as_str().unwrap();
        let url = event["call_recording"]["url"].as_str().unwrap();
        let path = Path::new(url.strip_prefix("file://").unwrap()).to_owned();
        if name == "manifest.json" {
            let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let stays = manifest["participants"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["user_id"] == "bob")
                .count();
            assert_eq!(stays, 2, "bob's two stays: {manifest:#}");
            continue;
        }
        let info = probe(&path);
        let codec = if name.contains("camera") { "vp8" } else { "opus" };
        assert_eq!(info["streams"][0]["codec_name"], codec, "{name}: {info}");
        assert_eq!(decode_errors(&path), "", "{name} decodes");
        let seconds = duration_s(&info);
        assert!(seconds > 2.0, "{name}: {seconds} s");
        if codec == "vp8" {
            let first = packets(&path, "v").first().copied();
            assert!(first.is_some_and(|(_, key)| key), "{name} starts on a keyframe");
        }
    }
    // Individually: a file per stay, whole, showing its publisher.
    let individual: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "individual")
        .collect();
    let owners: Vec<&str> = individual
        .iter()
        .map(|e| e["call_recording"]["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners.iter().filter(|&&u| u == "alice").count(), 1, "{owners:?}");
    assert_eq!(owners.iter().filter(|&&u| u == "carol").count(), 1, "{owners:?}");
    assert_eq!(owners.iter().filter(|&&u| u == "bob").count(), 2, "{owners:?}");
    for event in &individual {
        let url = event["call_recording"]["url"].as_str().unwrap();
        let path = Path::new(url.strip_prefix("file://").unwrap()).to_owned();
        let name = path.display().to_string();
        assert_eq!(decode_errors(&path), "", "{name} decodes");
        let info = probe(&path);
        let seconds = duration_s(&info);
        assert!(seconds > 2.0, "{name}: {seconds} s");
        let colour = match event["call_recording"]["user_id"].as_str() {
            Some("alice") => RED,
            Some("carol") => BLUE,
            _ => GREEN,
        };
        let frames = frames_between(&path, 1.0, seconds - 0.5, 64, 36);
        let showing = frames.iter().filter(|f| share_of(f, rgb(colour)) >= 0.2).count();
        assert!(
            showing * 10 >= frames.len() * 8,
            "{name}: {showing} of {} frames show its publisher",
            frames.len()
        );
    }
    assert!(
        !event_types(&events).iter().any(|t| t.ends_with("_failed")),
        "no failure: {events:#?}"
    );
    assert_render_shows_the_live_composite(&scratch, &events);
}

/// Renders a Janus call's raw recording again and compares it with the live composite where
/// the call stood still: everyone in, bob away, bob back.
fn assert_render_shows_the_live_composite(scratch: &Scratch, events: &[Value]) {
    let stored = |filename_is: &dyn Fn(&str) -> bool, recording_type: &str| {
        let event = events
            .iter()
            .find(|e| {
                e["type"] == "call.recording_ready"
                    && e["recording_type"] == recording_type
                    && filename_is(e["call_recording"]["filename"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("a {recording_type} file: {:?}", event_types(events)));
        let url = event["call_recording"]["url"].as_str().unwrap();
        Path::new(url.strip_prefix("file://").unwrap()).to_owned()
    };
    let live = stored(&|_| true, "composite");
    let manifest_path = stored(&|name| name == "manifest.json", "raw");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let rendered = render_manifest(&manifest_path, &scratch.dir.join("rendered"), &[]);
    assert_eq!(decode_errors(&rendered), "", "the render decodes");
    let stays = manifest["participants"].as_array().unwrap();
    let joined = |s: &Value| s["joined_at_s"].as_f64().unwrap();
    let bob: Vec<&Value> = stays.iter().filter(|s| s["user_id"] == "bob").collect();
    let everyone_in = stays.iter().take(3).map(joined).fold(0.0, f64::max) + 2.0;
    let bob_left = bob[0]["left_at_s"].as_f64().unwrap();
    let bob_back = joined(bob[1]);
    let end = manifest["duration_s"].as_f64().unwrap();
    assert!(
        bob_back - bob_left >= 2.0,
        "bob away {bob_left} s to {bob_back} s"
    );
    assert!(bob_back + 2.5 < end, "bob back at {bob_back} s of {end} s");
    let moments = [
        everyone_in.min(bob_left - 0.5),
        (bob_left + bob_back) / 2.0,
        bob_back + 2.0,
    ];
    for at in moments {
        let shown = Frame::at(&live, at, 640, 360);
        let again = Frame::at(&rendered, at, 640, 360);
        for colour in [RED, GREEN, BLUE] {
            let (a, b) = (share_of(&shown, rgb(colour)), share_of(&again, rgb(colour)));
            assert!(
                (a - b).abs() <= 0.04,
                "at {at:.2} s, {colour:06x}: live {a:.3} of the frame, rendered {b:.3}"
            );
        }
        for y in [60, 180, 300] {
            for x in [80, 240, 400, 560] {
                let (a, b) = (shown.colour_at(x, y), again.colour_at(x, y));
                assert!(
                    close(a, b),
                    "at {at:.2} s, ({x}, {y}): live {a:?}, rendered {b:?}"
                );
            }
        }
    }
}
