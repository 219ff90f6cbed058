//! End-to-end composite recordings from the synthetic source, checked with ffprobe, ffmpeg and
//! pixel probes the way a user would check the file.

mod common;

use common::*;
use egress::layout::Rect;
use serde_json::{Value, json};

const RED: &str = "#e53935";
const BLUE: &str = "#1e88e5";
const GREEN: &str = "#43a047";

fn participant(id: &str, colour: &str) -> Value {
    json!({ "user_id": id, "name": id, "video": { "color": colour }, "audio": "sine" })
}

fn job(egress_id: &str, duration_s: f64, participants: Vec<Value>) -> Value {
    json!({
        "egress_id": egress_id,
        "call_cid": "default:test-call",
        "source": { "type": "synthetic", "duration_s": duration_s, "participants": participants },
        "recording": { "quality": "720p", "layout": { "name": "grid" } },
        "storage": { "storage_type": "local", "path": "recordings/" }
    })
}

/// The tiles the default grid gives `count` participants on a frame.
fn default_tiles(count: usize, width: u32, height: u32) -> Vec<Rect> {
    let users: Vec<String> = (0..count).map(|i| format!("u{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    expected_scene("grid", &json!({}), &users, width, height)
        .tiles
        .iter()
        .map(|t| t.rect)
        .collect()
}

/// Asserts each colour is at the centre of the tile the grid gives its position.
fn assert_tiles(frame: &Frame, colours: &[&str], when: &str) {
    let tiles = default_tiles(colours.len(), frame.width, frame.height);
    for (colour, tile) in colours.iter().zip(&tiles) {
        let (x, y) = tile.center();
        let seen = frame.colour_at(x, y);
        assert!(
            close(seen, hex_rgb(colour)),
            "{when}: expected {colour} at {tile:?}, saw {seen:?}"
        );
    }
}

#[test]
fn grid_recording_is_h264_and_aac_at_the_preset_size_and_length() {
    let scratch = Scratch::new("grid");
    let events = run_successfully(
        &scratch,
        &job(
            "eg_grid",
            6.0,
            vec![
                participant("alice", RED),
                participant("bob", BLUE),
                participant("carol", GREEN),
            ],
        ),
    );
    assert_eq!(
        event_types(&events),
        [
            "call.recording_started",
            "call.recording_stopped",
            "call.recording_ready"
        ]
    );
    for e in &events {
        assert_eq!(e["call_cid"], "default:test-call");
        assert_eq!(e["egress_id"], "eg_grid");
        assert_eq!(e["recording_type"], "composite");
        assert!(
            chrono_like(e["created_at"].as_str().unwrap()),
            "created_at: {}",
            e["created_at"]
        );
    }
    let recording = &events[2]["call_recording"];
    for field in [
        "filename",
        "url",
        "start_time",
        "end_time",
        "session_id",
        "recording_type",
    ] {
        assert!(
            recording[field].as_str().is_some_and(|v| !v.is_empty()),
            "call_recording.{field} missing: {recording}"
        );
    }

    let file = ready_file(&events);
    assert!(
        file.starts_with(scratch.out().join("recordings")),
        "stored under the job's path prefix: {}",
        file.display()
    );
    let info = probe(&file);
    let video = streams_of(&info, "video");
    let audio = streams_of(&info, "audio");
    assert_eq!((video.len(), audio.len()), (1, 1), "streams: {info}");
    assert_eq!(video[0]["codec_name"], "h264");
    assert_eq!(
        (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(audio[0]["codec_name"], "aac");
    let duration = duration_s(&info);
    assert!(
        (duration - 6.0).abs() <= 0.1,
        "duration {duration}: the call lasted 6 s (5% would be 0.3 s; the cut is frame-exact)"
    );
    assert_eq!(decode_errors(&file), "", "decode errors");
    // Robust muxing reserves index room for a 2-hour part; a 6 s recording does not keep it.
    let bytes = std::fs::read(&file).unwrap();
    let media = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(
        media < 64 * 1024,
        "the media data starts {media} bytes in: the unused index room was kept"
    );
    assert!(
        bytes.windows(4).position(|w| w == b"moov").unwrap() < media,
        "progressive"
    );

    assert_tiles(
        &Frame::at(&file, 3.0, 1280, 720),
        &[RED, BLUE, GREEN],
        "middle of the call",
    );
    let volume = mean_volume_db(&file, 1.0, 5.0);
    assert!(
        volume > -40.0,
        "the participants' tones are in the mix: mean volume {volume} dB"
    );
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && (s.ends_with('Z') || s.contains('+'))
}

#[test]
fn grid_reflows_when_participants_join_and_leave() {
    let scratch = Scratch::new("reflow");
    let mut carol = participant("carol", GREEN);
    carol["join_at_s"] = json!(2.0);
    carol["leave_at_s"] = json!(5.0);
    let events = run_successfully(
        &scratch,
        &job(
            "eg_reflow",
            7.0,
            vec![participant("alice", RED), participant("bob", BLUE), carol],
        ),
    );
    let file = ready_file(&events);
    assert_tiles(
        &Frame::at(&file, 1.0, 1280, 720),
        &[RED, BLUE],
        "before carol joins",
    );
    assert_tiles(
        &Frame::at(&file, 3.5, 1280, 720),
        &[RED, BLUE, GREEN],
        "while carol is in",
    );
    let after = Frame::at(&file, 6.3, 1280, 720);
    assert_tiles(&after, &[RED, BLUE], "after carol left");
    let (x, y) = default_tiles(3, 1280, 720)[2].center();
    assert!(
        !close(after.colour_at(x, y), hex_rgb(GREEN)),
        "carol's tile is gone after she left"
    );
    // No gap in the output: frames are continuous across the joins and leaves.
    let info = probe(&file);
    let video = &streams_of(&info, "video")[0];
    let frames: f64 = video["nb_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        (frames / 30.0 - 7.0).abs() < 0.4,
        "{frames} frames for 7 s at 30 fps"
    );
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn audio_only_recording_carries_aac_only() {
    let scratch = Scratch::new("audio-only");
    let mut job = job(
        "eg_audio",
        4.0,
        vec![participant("alice", RED), participant("bob", BLUE)],
    );
    job["recording"]["audio_only"] = json!(true);
    let events = run_successfully(&scratch, &job);
    let file = ready_file(&events);
    let info = probe(&file);
    assert!(streams_of(&info, "video").is_empty(), "no video stream: {info}");
    let audio = streams_of(&info, "audio");
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0]["codec_name"], "aac");
    assert!((duration_s(&info) - 4.0).abs() <= 0.2);
    assert!(mean_volume_db(&file, 0.5, 3.5) > -40.0);
}

#[test]
fn clip_participants_are_decoded_and_shown() {
    let scratch = Scratch::new("clip");
    let clip = scratch.dir.join("green.webm");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=0x43a047:s=640x360:r=30:d=6",
            "-f",
            "lavfi",
            "-i",
            "sine=f=500:d=6",
        ])
        .args([
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-b:v",
            "500k",
            "-c:a",
            "libopus",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    let from_clip =
        json!({ "user_id": "dave", "video": { "clip": "green.webm" }, "audio": { "file": "green.webm" } });
    let events = run_successfully(
        &scratch,
        &job("eg_clip", 4.0, vec![participant("alice", RED), from_clip]),
    );
    let file = ready_file(&events);
    assert_tiles(
        &Frame::at(&file, 2.0, 1280, 720),
        &[RED, GREEN],
        "clip participant",
    );
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn portrait_quality_records_a_portrait_file() {
    let scratch = Scratch::new("portrait");
    let mut job = job(
        "eg_portrait",
        3.0,
        vec![participant("alice", RED), participant("bob", BLUE)],
    );
    job["recording"]["quality"] = json!("portrait-360x640");
    let events = run_successfully(&scratch, &job);
    let file = ready_file(&events);
    let video = &streams_of(&probe(&file), "video")[0];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(360), Some(640))
    );
    assert_tiles(&Frame::at(&file, 1.5, 360, 640), &[RED, BLUE], "portrait grid");
}

#[test]
fn background_colour_and_cell_padding_options_take_effect() {
    let scratch = Scratch::new("options");
    let mut job = job(
        "eg_options",
        3.0,
        vec![participant("alice", RED), participant("bob", BLUE)],
    );
    job["recording"]["quality"] = json!("360p");
    job["recording"]["layout"]["options"] =
        json!({ "video.background_color": "#f2f2f2", "grid.cell_padding": 60, "grid.size_percentage": 100 });
    let events = run_successfully(&scratch, &job);
    let frame = Frame::at(&ready_file(&events), 1.5, 640, 360);
    assert!(
        close(frame.colour_at(6, 6), hex_rgb("#f2f2f2")),
        "background: {:?}",
        frame.colour_at(6, 6)
    );
    // 60 px at 720 lines is 30 px at 360: the first tile starts 30 px in, with background before it.
    let tiles = egress::layout::grid(2, 640, 360, 30);
    let first = tiles[0];
    assert!((30..=32).contains(&first.x), "{tiles:?}");
    assert!(close(frame.colour_at(first.x + 6, first.y + 6), hex_rgb(RED)));
    assert!(
        close(
            frame.colour_at(first.x - 12, first.center().1),
            hex_rgb("#f2f2f2")
        ),
        "padding left of the first tile"
    );
    let gap_x = (first.x + first.w as i32 + tiles[1].x) / 2;
    assert!(
        close(frame.colour_at(gap_x, first.center().1), hex_rgb("#f2f2f2")),
        "padding between tiles"
    );
    assert!(close(
        frame.colour_at(tiles[1].center().0, tiles[1].center().1),
        hex_rgb(BLUE)
    ));
}
