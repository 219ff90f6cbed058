//! Individual recording: a file per participant and stay, beside the composite and the raw
//! recording of the same call. What a user would check: one file per stay, as long as the stay,
//! showing that person (fitted, not enlarged) and sounding of them alone.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn stored(event: &Value) -> PathBuf {
    let url = event["call_recording"]["url"].as_str().unwrap();
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

const ALICE: (&str, u32) = ("#e53935", 440);
const BOB: (&str, u32) = ("#1e88e5", 660);

#[test]
fn each_stay_is_a_file_of_that_participant_alone_beside_the_composite_and_raw() {
    let scratch = Scratch::new("individual-synthetic");
    vp8_opus_clips(&scratch.dir, "alice", ALICE.0, ALICE.1);
    vp8_opus_clips(&scratch.dir, "bob", BOB.0, BOB.1);
    let person = |name: &str, join: f64, leave: Option<f64>| {
        json!({ "user_id": name, "video": { "clip": format!("{name}.webm") },
                "audio": { "file": format!("{name}-voice.webm") }, "join_at_s": join, "leave_at_s": leave })
    };
    let job = json!({
        "egress_id": "eg_individual",
        "call_cid": "default:individual-call",
        "session_id": "se_individual",
        "source": { "type": "synthetic", "duration_s": 14.0, "participants": [
            person("alice", 0.0, None), person("bob", 4.0, Some(8.0)), person("bob", 10.0, None) ] },
        "individual_recording": { "quality": "360p" },
        "raw_recording": {},
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "calls/" }
    });
    let events = run_successfully(&scratch, &job);
    let types = event_types(&events);
    assert!(!types.iter().any(|t| t.ends_with("_failed")), "{types:?}");
    let count = |kind: &str, recording_type: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["recording_type"] == recording_type)
            .count()
    };
    for recording_type in ["individual", "raw", "composite"] {
        assert_eq!(count("call.recording_started", recording_type), 1, "{types:?}");
        assert_eq!(count("call.recording_stopped", recording_type), 1, "{types:?}");
    }
    let mut files: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "individual")
        .collect();
    files.sort_by_key(|e| {
        (
            e["call_recording"]["user_id"].as_str().unwrap().to_owned(),
            e["call_recording"]["start_time"].as_str().unwrap().to_owned(),
        )
    });
    let owners: Vec<(&str, &str)> = files
        .iter()
        .map(|e| {
            (
                e["call_recording"]["user_id"].as_str().unwrap(),
                e["call_recording"]["track"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [("alice", "camera"), ("bob", "camera"), ("bob", "camera")],
        "a file per stay: {files:#?}"
    );
    let stays = [(ALICE, 14.0), (BOB, 4.0), (BOB, 4.0)];
    for (event, ((colour, tone), length)) in files.iter().zip(stays) {
        let path = stored(event);
        let name = path.display().to_string();
        assert_eq!(decode_errors(&path), "", "{name} decodes");
        let info = probe(&path);
        let video = &streams_of(&info, "video")[0];
        assert_eq!(video["codec_name"], "h264", "{name}: {info}");
        assert_eq!(
            (video["width"].as_u64(), video["height"].as_u64()),
            (Some(640), Some(360))
        );
        let duration = duration_s(&info);
        assert!(
            (duration - length).abs() <= 0.1,
            "{name}: {duration} s for a stay of {length} s"
        );
        // The 320x180 camera sits in the middle, not enlarged; the placeholder around it.
        let own = hex_rgb(colour);
        let frames = frames_between(&path, 0.5, length - 0.5, 64, 36);
        let showing = frames.iter().filter(|f| share_of(f, own) >= 0.2).count();
        assert!(
            showing * 10 >= frames.len() * 9,
            "{name}: {showing} of {} frames show its participant",
            frames.len()
        );
        let framed = frames.iter().filter(|f| share_of(f, own) <= 0.3).count();
        assert!(
            framed * 10 >= frames.len() * 9,
            "{name}: {framed} of {} frames keep the camera at its own size",
            frames.len()
        );
        let other = if tone == ALICE.1 { BOB.1 } else { ALICE.1 };
        let band = |hz: u32| format!("bandpass=f={hz}:width_type=h:w=60,bandpass=f={hz}:width_type=h:w=60,");
        let mine = filtered_volume_db(&path, 0.5, length - 0.5, &band(tone));
        let theirs = filtered_volume_db(&path, 0.5, length - 0.5, &band(other));
        assert!(
            mine - theirs >= 20.0,
            "{name}: its own tone at {mine} dB, the other's at {theirs} dB"
        );
    }
    // Bob's two stays are two files, started where he joined and returned.
    let start = |e: &Value| {
        chrono::DateTime::parse_from_rfc3339(e["call_recording"]["start_time"].as_str().unwrap()).unwrap()
    };
    let gap = (start(files[2]) - start(files[1])).num_milliseconds();
    assert!((5800..=6200).contains(&gap), "bob's stays start {gap} ms apart");
    // The raw recording's manifest knows both of his stays.
    let manifest_event = events
        .iter()
        .find(|e| e["recording_type"] == "raw" && e["call_recording"]["filename"] == "manifest.json")
        .expect("the manifest is announced");
    let manifest: Value = serde_json::from_slice(&std::fs::read(stored(manifest_event)).unwrap()).unwrap();
    let bob_stays: Vec<(f64, Option<f64>)> = manifest["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["user_id"] == "bob")
        .map(|s| (s["joined_at_s"].as_f64().unwrap(), s["left_at_s"].as_f64()))
        .collect();
    assert_eq!(bob_stays.len(), 2, "{manifest:#}");
    assert!(
        (bob_stays[0].0 - 4.0).abs() <= 0.04 && (bob_stays[1].0 - 10.0).abs() <= 0.04,
        "{bob_stays:?}"
    );
    assert!(
        bob_stays[0].1.is_some_and(|left| (left - 8.0).abs() <= 0.04),
        "{bob_stays:?}"
    );
    let raw_files = manifest["files"].as_array().unwrap();
    assert_eq!(raw_files.len(), 6, "two tracks per stay: {manifest:#}");
}

#[test]
fn an_audio_only_individual_recording_is_each_voice_alone() {
    let scratch = Scratch::new("individual-audio");
    vp8_opus_clips(&scratch.dir, "alice", ALICE.0, ALICE.1);
    vp8_opus_clips(&scratch.dir, "bob", BOB.0, BOB.1);
    let job = json!({
        "egress_id": "eg_individual_audio",
        "call_cid": "default:individual-audio",
        "source": { "type": "synthetic", "duration_s": 6.0, "participants": [
            { "user_id": "alice", "audio": { "file": "alice-voice.webm" } },
            { "user_id": "bob", "audio": { "file": "bob-voice.webm" }, "join_at_s": 2.0 } ] },
        "individual_recording": { "audio_only": true },
        "storage": { "storage_type": "local", "path": "voices/" }
    });
    let events = run_successfully(&scratch, &job);
    let files: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "individual")
        .collect();
    assert_eq!(files.len(), 2, "{files:#?}");
    for event in files {
        let path = stored(event);
        assert!(path.extension().is_some_and(|e| e == "m4a"), "{}", path.display());
        let info = probe(&path);
        assert!(streams_of(&info, "video").is_empty(), "{info}");
        let user = event["call_recording"]["user_id"].as_str().unwrap();
        let (length, tone, other) = match user {
            "alice" => (6.0, ALICE.1, BOB.1),
            _ => (4.0, BOB.1, ALICE.1),
        };
        let duration = duration_s(&info);
        assert!((duration - length).abs() <= 0.1, "{user}: {duration} s");
        let band = |hz: u32| format!("bandpass=f={hz}:width_type=h:w=60,bandpass=f={hz}:width_type=h:w=60,");
        let mine = filtered_volume_db(&path, 0.5, length - 0.5, &band(tone));
        let theirs = filtered_volume_db(&path, 0.5, length - 0.5, &band(other));
        assert!(mine - theirs >= 20.0, "{user}: {mine} dB against {theirs} dB");
    }
}
