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

#[test]
fn a_killed_workers_individual_and_raw_files_are_stored_by_storage_resume() {
    let scratch = Scratch::new("individual-kill");
    vp8_opus_clips(&scratch.dir, "alice", ALICE.0, ALICE.1);
    vp8_opus_clips(&scratch.dir, "bob", BOB.0, BOB.1);
    let person = |name: &str| {
        json!({ "user_id": name, "video": { "clip": format!("{name}.webm") },
                "audio": { "file": format!("{name}-voice.webm") } })
    };
    let job = json!({
        "egress_id": "eg_individual_kill",
        "call_cid": "default:individual-kill",
        "source": { "type": "synthetic", "duration_s": 60.0, "participants": [ person("alice"), person("bob") ] },
        "individual_recording": { "quality": "360p" },
        "raw_recording": {},
        "storage": { "storage_type": "local", "path": "kept/" }
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for_where(
        "call.recording_started",
        std::time::Duration::from_secs(15),
        |e| e["recording_type"] == "individual",
    );
    // Killed once each participant's open file in the spool plays a few seconds.
    let spool = scratch.out().join(".spool").join("eg_individual_kill");
    poll(
        "two individual files playing 3 s",
        std::time::Duration::from_secs(30),
        || {
            let files = individual_parts_playing(&spool);
            match files.iter().filter(|(_, s)| *s >= 3.0).count() {
                2 => Ok(()),
                _ => Err(format!("{files:?}")),
            }
        },
    );
    running.child.kill().unwrap();
    let _ = running.child.wait();
    let events = storage_resume(&scratch.out());
    let mut owners = Vec::new();
    let ready = |recording_type: &str| {
        events
            .iter()
            .filter(|e| e["type"] == "call.recording_ready" && e["recording_type"] == recording_type)
            .collect::<Vec<_>>()
    };
    for event in ready("individual") {
        let path = stored(event);
        assert!(path.to_string_lossy().contains("/kept/"), "{}", path.display());
        assert_eq!(decode_errors(&path), "", "{} decodes", path.display());
        let seconds = duration_s(&probe(&path));
        assert!(seconds >= 3.0, "{}: {seconds} s", path.display());
        owners.push(event["call_recording"]["user_id"].as_str().unwrap().to_owned());
    }
    owners.sort();
    assert_eq!(owners, ["alice", "bob"], "{events:#?}");
    // Each track's raw file as far as it was written, and the manifest as it stood.
    let raw = ready("raw");
    assert_eq!(
        announced_names(&raw),
        [
            "manifest.json",
            "raw_alice_camera.webm",
            "raw_alice_microphone.webm",
            "raw_bob_camera.webm",
            "raw_bob_microphone.webm"
        ],
        "{events:#?}"
    );
    for event in raw
        .iter()
        .filter(|e| e["call_recording"]["filename"] != "manifest.json")
    {
        let path = stored(event);
        let kind = if path.to_string_lossy().contains("camera") {
            "video"
        } else {
            "audio"
        };
        let packets = packets(&path, &kind[..1]).len();
        // 30 frames or 50 Opus packets a second.
        let least = if kind == "video" { 90 } else { 150 };
        assert!(packets >= least, "{}: {packets} packets", path.display());
    }
    let manifest = raw
        .iter()
        .find(|e| e["call_recording"]["filename"] == "manifest.json")
        .map(|e| stored(e))
        .unwrap();
    let file = render_manifest(&manifest, &scratch.dir.join("rendered"), &["--quality", "360p"]);
    let seconds = duration_s(&probe(&file));
    assert!(seconds >= 3.0, "the killed call renders {seconds} s");
    let frame = Frame::at(&file, seconds - 0.5, 640, 360);
    for colour in [ALICE.0, BOB.0] {
        assert!(
            share_of(&frame, hex_rgb(colour)) >= 0.05,
            "the render shows {colour}"
        );
    }
}

/// CPU seconds of a job of `people` participants with a 360p composite and, when given, an
/// individual recording at `individual` quality.
fn individual_job_cpu(scratch: &Scratch, people: usize, seconds: f64, individual: Option<&str>) -> f64 {
    let participants: Vec<Value> = (0..people)
        .map(|i| {
            json!({ "user_id": format!("p{i}"), "video": { "clip": format!("p{i}.webm") },
                    "audio": { "file": format!("p{i}-voice.webm") } })
        })
        .collect();
    let mut job = json!({
        "call_cid": "default:individual-bench",
        "source": { "type": "synthetic", "duration_s": seconds, "participants": participants },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local" }
    });
    if let Some(quality) = individual {
        job["individual_recording"] = json!({ "quality": quality });
    }
    let mut running = Running::spawn(scratch, &job, &[]);
    let pid = running.child.id();
    // The composite is stored last of the job's files (it closes after the individual ones).
    running.wait_for_where(
        "call.recording_ready",
        std::time::Duration::from_secs(seconds as u64 + 60),
        |e| e["recording_type"] == "composite",
    );
    let used = cpu_seconds(pid).expect("the job still runs as its composite is announced");
    running.finish(std::time::Duration::from_secs(30));
    used
}

/// CPU seconds ffmpeg takes to make the same per-participant files from the same clips (decode,
/// fit, encode with the worker's x264 preset and bitrate, AAC): the baseline.
fn ffmpeg_cpu(dir: &std::path::Path, people: usize, size: (u32, u32), kbps: u32) -> f64 {
    let mut total = 0.0;
    for i in 0..people {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "TIMEFORMAT='%U %S'; time ffmpeg -v error -y -i {d}/p{i}.webm -i {d}/p{i}-voice.webm \
                 -vf 'scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2' \
                 -c:v libx264 -preset veryfast -b:v {kbps}k -g 60 -c:a aac -b:a 128k {d}/ffmpeg-p{i}.mp4",
                d = dir.display(),
                w = size.0,
                h = size.1,
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let line = text.lines().last().unwrap_or_default();
        total += line
            .split_whitespace()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

/// Individual recording's cost per participant at 360p and 720p: the same call of four
/// (640x360 VP8 cameras with motion) with and without it, side by side, three runs each, and
/// ffmpeg making the same files from the same clips.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_individual_recording_cost_per_participant() {
    let scratch = Scratch::new("individual-bench");
    let (people, seconds) = (4, 20.0);
    for i in 0..people {
        moving_clip(&scratch.dir, &format!("p{i}"), 300 + 100 * i as u32, seconds);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut without, mut p360, mut p720) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(individual_job_cpu(&scratch, people, seconds, None));
        p360.push(individual_job_cpu(&scratch, people, seconds, Some("360p")));
        p720.push(individual_job_cpu(&scratch, people, seconds, Some("720p")));
    }
    let (without, p360, p720) = (median(without), median(p360), median(p720));
    for (quality, with, size, kbps) in [("360p", p360, (640, 360), 800), ("720p", p720, (1280, 720), 2500)] {
        let per_participant = (with - without) / people as f64 / seconds;
        let ffmpeg = ffmpeg_cpu(&scratch.dir, people, size, kbps) / people as f64 / seconds;
        println!(
            "individual recording {quality}: {people} participants, {seconds} s; job {without:.2} CPU s without, \
             {with:.2} with; {per_participant:.3} core per participant; ffmpeg making the same file \
             {ffmpeg:.3} core per participant (ratio {:.2})",
            per_participant / ffmpeg
        );
    }
}
