//! A recording stopped by a signal is finalized; one killed outright still plays.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn long_job(egress_id: &str) -> serde_json::Value {
    json!({
        "egress_id": egress_id,
        "call_cid": "default:stop-call",
        "source": { "type": "synthetic", "duration_s": 60, "participants": [
            { "user_id": "alice", "video": { "pattern": "ball" } },
            { "user_id": "bob" }
        ]},
        "recording": { "quality": "480p" }
    })
}

/// Starts a job and waits for its `call.recording_started` event; returns the child and a
/// reader of the rest of its events.
fn start(scratch: &Scratch, egress_id: &str) -> (Child, std::thread::JoinHandle<Vec<serde_json::Value>>) {
    let path = scratch.write_job(&long_job(egress_id));
    let mut child = egress()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(scratch.out())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut events = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            if event["type"] == "call.recording_started" {
                let _ = tx.send(());
            }
            events.push(event);
        }
        events
    });
    rx.recv_timeout(Duration::from_secs(15))
        .expect("recording started");
    (child, reader)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_finalizes_a_playable_progressive_file() {
    let scratch = Scratch::new("sigterm");
    let (mut child, reader) = start(&scratch, "eg_sigterm");
    std::thread::sleep(Duration::from_secs(4));
    let asked = Instant::now();
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(asked.elapsed() < Duration::from_secs(10), "stopped within 10 s");
    let events = reader.join().unwrap();
    assert_eq!(
        event_types(&events),
        [
            "call.recording_started",
            "call.recording_stopped",
            "call.recording_ready"
        ]
    );
    let file = ready_file(&events);
    let info = probe(&file);
    let duration = duration_s(&info);
    assert!(
        (3.5..=5.5).contains(&duration),
        "about 4 s recorded, got {duration}"
    );
    assert_eq!(decode_errors(&file), "");
    // Progressive: the index (moov) comes before the media data (mdat).
    let bytes = std::fs::read(&file).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") < find(b"mdat"), "moov before mdat");
}

#[test]
fn sigkill_leaves_a_file_that_plays_up_to_the_last_seconds() {
    let scratch = Scratch::new("sigkill");
    let (mut child, reader) = start(&scratch, "eg_sigkill");
    std::thread::sleep(Duration::from_secs(8));
    signal(&child, "KILL");
    let _ = child.wait();
    let events = reader.join().unwrap();
    assert_eq!(
        event_types(&events),
        ["call.recording_started"],
        "nothing after a kill"
    );
    let spool = scratch.out().join(".spool").join("eg_sigkill");
    let file = std::fs::read_dir(&spool)
        .expect("spool folder kept")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "mp4"))
        .expect("the partial recording is in the spool");
    let info = probe(&file);
    let duration = duration_s(&info);
    // What is lost: the keyframe interval being gathered (2 s) and the index update period (1 s).
    assert!(
        duration >= 8.0 - 2.0 - 1.0 - 0.5,
        "plays up to the last few seconds of ~8 s, got {duration}"
    );
    assert_eq!(streams_of(&info, "video").len(), 1);
    assert_eq!(streams_of(&info, "audio").len(), 1);
    assert_eq!(decode_errors(&file), "");
}
