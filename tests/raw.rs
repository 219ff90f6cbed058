//! Raw recording: each encoded track as it arrived, in a file of its own, and the manifest of
//! the call's timeline beside them. What a user would check: the codecs and packets are the
//! sender's (nothing re-encoded), each file starts on a keyframe and decodes, and the manifest
//! says when each participant and file came and went.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn stored(event: &Value) -> PathBuf {
    let url = event["call_recording"]["url"].as_str().unwrap();
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

#[test]
fn raw_recording_keeps_each_track_as_sent_with_a_manifest_of_the_call() {
    let scratch = Scratch::new("raw-synthetic");
    vp8_opus_clips(&scratch.dir, "alice", "#e53935", 440);
    vp8_opus_clips(&scratch.dir, "bob", "#1e88e5", 660);
    let person = |name: &str, join: f64, leave: Option<f64>| {
        json!({ "user_id": name, "video": { "clip": format!("{name}.webm") },
                "audio": { "file": format!("{name}-voice.webm") }, "join_at_s": join, "leave_at_s": leave })
    };
    let job = json!({
        "egress_id": "eg_raw",
        "call_cid": "default:raw-call",
        "session_id": "se_raw",
        "source": { "type": "synthetic", "duration_s": 12.0, "participants": [
            person("alice", 0.0, None), person("bob", 4.0, Some(9.0)) ] },
        "raw_recording": {},
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "calls/" }
    });
    let events = run_successfully(&scratch, &job);
    let raw: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "raw")
        .collect();
    let types = event_types(&events);
    let count = |kind: &str, recording_type: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["recording_type"] == recording_type)
            .count()
    };
    for recording_type in ["raw", "composite"] {
        assert_eq!(count("call.recording_started", recording_type), 1, "{types:?}");
        assert_eq!(count("call.recording_stopped", recording_type), 1, "{types:?}");
    }
    assert!(!types.iter().any(|t| t.ends_with("_failed")), "{types:?}");
    // Four tracks and the manifest.
    assert_eq!(raw.len(), 5, "{raw:#?}");
    let manifest_event = raw
        .iter()
        .find(|e| e["call_recording"]["filename"] == "manifest.json")
        .expect("the manifest is announced");
    let manifest_path = stored(manifest_event);
    assert!(
        manifest_path.ends_with("calls/raw/default_raw-call/se_raw/manifest.json"),
        "{}",
        manifest_path.display()
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["version"], 1, "{manifest:#}");
    let stay = |user: &str| {
        manifest["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["user_id"] == user)
            .unwrap_or_else(|| panic!("{user} in {manifest:#}"))
            .clone()
    };
    let near = |value: &Value, expected: f64, what: &str| {
        let got = value.as_f64().unwrap_or_else(|| panic!("{what}: {value}"));
        assert!(
            (got - expected).abs() <= 0.04,
            "{what}: {got} s, expected {expected} s"
        );
    };
    near(&stay("alice")["joined_at_s"], 0.0, "alice joined");
    near(&stay("bob")["joined_at_s"], 4.0, "bob joined");
    near(&stay("bob")["left_at_s"], 9.0, "bob left");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 4, "{manifest:#}");
    for file in files {
        let user = file["user_id"].as_str().unwrap();
        let track = file["track"].as_str().unwrap();
        let (kind, codec, source) = match track {
            "camera" => ("v", "vp8", format!("{user}.webm")),
            "microphone" => ("a", "opus", format!("{user}-voice.webm")),
            other => panic!("unexpected track {other}"),
        };
        assert_eq!(file["codec"], codec, "{file}");
        let joined = if user == "bob" { 4.0 } else { 0.0 };
        near(&file["start_offset_s"], joined, &format!("{user} {track} starts"));
        let event = raw
            .iter()
            .find(|e| e["call_recording"]["filename"] == file["filename"])
            .unwrap_or_else(|| panic!("{file} announced"));
        let path = stored(event);
        let info = probe(&path);
        let stream = &info["streams"][0];
        assert_eq!(stream["codec_name"], codec, "{}: {info}", path.display());
        assert_eq!(decode_errors(&path), "", "{} decodes", path.display());
        let written = packets(&path, kind);
        let sent = packets(&scratch.dir.join(&source), kind);
        assert!(
            written.len() > 10,
            "{}: {} packets",
            path.display(),
            written.len()
        );
        if kind == "v" {
            assert!(written[0].1, "{} starts on a keyframe", path.display());
            // The camera's size, as its first keyframe says (the clips are 320x180).
            let sizes: Vec<(u64, u64)> = file["sizes"]
                .as_array()
                .map(|sizes| {
                    sizes
                        .iter()
                        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(sizes, [(320, 180)], "{file}");
            near(
                &file["sizes"][0]["at_s"],
                joined,
                &format!("{user}'s size from the start"),
            );
        } else {
            assert!(file.get("sizes").is_none(), "sound has no size: {file}");
        }
        // Nothing re-encoded: the packets are the sender's, in order, from its start.
        let sizes = |p: &[(u64, bool)]| p.iter().map(|(s, _)| *s).collect::<Vec<_>>();
        assert_eq!(
            sizes(&written),
            sizes(&sent[..written.len()]),
            "{} holds the sender's packets",
            path.display()
        );
        let seconds = duration_s(&info);
        let stayed = if user == "bob" { 5.0 } else { 12.0 };
        assert!(
            (seconds - stayed).abs() <= 0.3,
            "{}: {seconds} s, stayed {stayed} s",
            path.display()
        );
    }
}

#[test]
fn a_job_with_only_raw_recording_decodes_no_video() {
    let scratch = Scratch::new("raw-only");
    vp8_opus_clips(&scratch.dir, "alice", "#43a047", 550);
    let dot = scratch.dir.join("graph.dot");
    let job = json!({
        "call_cid": "default:raw-only",
        "source": { "type": "synthetic", "duration_s": 5.0, "participants": [
            { "user_id": "alice", "video": { "clip": "alice.webm" }, "audio": { "file": "alice-voice.webm" } } ] },
        "raw_recording": {},
        "storage": { "storage_type": "local" }
    });
    let mut running = Running::spawn(&scratch, &job, &["--dot", dot.to_str().unwrap()]);
    running.wait_for("call.recording_started", std::time::Duration::from_secs(20));
    let events = running.finish(std::time::Duration::from_secs(30));
    let ready: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == "raw")
        .collect();
    assert_eq!(ready.len(), 3, "camera, microphone, manifest: {ready:#?}");
    let graph = std::fs::read_to_string(&dot).expect("the graph is written");
    assert!(!graph.contains("GstVp8Dec"), "no VP8 decoder in a raw-only job");
    assert!(!graph.contains("GstX264Enc"), "no encoder in a raw-only job");
}

/// CPU seconds of a raw-only job of `people` participants (a VP8 and an Opus track each).
fn raw_job_cpu(scratch: &Scratch, people: usize, seconds: f64) -> f64 {
    let participants: Vec<Value> = (0..people)
        .map(|i| {
            json!({ "user_id": format!("p{i}"), "video": { "clip": format!("p{i}.webm") },
                    "audio": { "file": format!("p{i}-voice.webm") } })
        })
        .collect();
    let job = json!({
        "call_cid": "default:raw-bench",
        "source": { "type": "synthetic", "duration_s": seconds, "participants": participants },
        "raw_recording": {},
        "storage": { "storage_type": "local" }
    });
    let mut running = Running::spawn(scratch, &job, &[]);
    let pid = running.child.id();
    // The manifest is the job's last file: read the CPU then, while the process still runs.
    running.wait_for_where(
        "call.recording_ready",
        std::time::Duration::from_secs(seconds as u64 + 30),
        |e| e["call_recording"]["filename"] == "manifest.json",
    );
    let used = cpu_seconds(pid).expect("the job still runs as its last file is announced");
    running.finish(std::time::Duration::from_secs(30));
    used
}

/// Raw recording's cost per track: a call of ten participants (20 tracks) against one of one
/// (2 tracks), side by side, three runs each; the difference is what 18 more tracks cost.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_raw_recording_cost_per_track() {
    let scratch = Scratch::new("raw-bench");
    let colours = ["#e53935", "#1e88e5", "#43a047", "#fdd835", "#8e24aa"];
    for i in 0..10 {
        vp8_opus_clips(
            &scratch.dir,
            &format!("p{i}"),
            colours[i % colours.len()],
            300 + 50 * i as u32,
        );
    }
    let seconds = 20.0;
    let (mut one, mut ten) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        one.push(raw_job_cpu(&scratch, 1, seconds));
        ten.push(raw_job_cpu(&scratch, 10, seconds));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, ten) = (median(one), median(ten));
    let per_track = (ten - one) / 18.0 / seconds;
    println!(
        "raw recording: {seconds} s call, 2 tracks {one:.2} CPU s, 20 tracks {ten:.2} CPU s (ratio {:.2}); \
         {per_track:.4} core per track (goal <= 0.01)",
        ten / one
    );
}
