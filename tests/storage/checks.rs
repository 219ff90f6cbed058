//! What every storage backend must do, written once and run against each emulator: a call's
//! outputs arrive byte for byte, a store frozen for 30 s loses nothing, uploads a killed worker
//! left are resumed, large files go up in pieces.

use super::emulators::{BUCKET, Emulator, PREFIX, http_get};
use crate::common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A call of alice (red, with a tone) and bob (blue) with the given outputs and storage.
pub fn two_party_call(storage: Value, egress_id: &str, seconds: f64, outputs: Value) -> Value {
    let mut job = json!({
        "egress_id": egress_id,
        "call_cid": format!("default:{egress_id}"),
        "source": { "type": "synthetic", "duration_s": seconds, "participants": [
            { "user_id": "alice", "video": { "color": "#e53935" }, "audio": "sine" },
            { "user_id": "bob", "video": { "color": "#1e88e5" } }
        ]},
        "storage": storage
    });
    job.as_object_mut()
        .unwrap()
        .extend(outputs.as_object().unwrap().clone());
    job
}

/// Fetches the recording a ready event announces; checks it is whole and decodes cleanly.
pub fn check_recording(store: &dyn Emulator, events: &[Value], scratch: &Scratch, seconds: f64) -> String {
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("recording ready: {events:#?}"));
    let url = ready["call_recording"]["url"].as_str().unwrap().to_owned();
    let mp4 = scratch.dir.join("downloaded.mp4");
    std::fs::write(&mp4, store.fetch(&url)).unwrap();
    let duration = duration_s(&probe(&mp4));
    assert!(
        (duration - seconds).abs() <= 0.1,
        "the stored MP4 is whole: {duration} s"
    );
    assert_eq!(decode_errors(&mp4), "", "the stored MP4 decodes cleanly");
    url
}

/// Checks the final 360p playlist in the bucket: closed, at least `min` segments from the
/// first, each of them in the bucket.
pub fn check_playlist(store: &dyn Emulator, min: usize) {
    let keys = store.keys();
    let playlist_key = keys
        .iter()
        .find(|k| k.ends_with("360p/index.m3u8"))
        .unwrap_or_else(|| panic!("a media playlist in the bucket: {keys:?}"));
    let playlist = String::from_utf8(store.get(playlist_key)).unwrap();
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= min, "{playlist}");
    assert!(segments[0].ends_with("00000.ts"), "{playlist}");
    for segment in segments {
        let key = playlist_key.replace("index.m3u8", segment);
        assert!(keys.contains(&key), "{key} is in the bucket");
    }
}

/// Every file the worker's log says it stored (key and CRC32 of the file it wrote) is in the
/// bucket with the same bytes. Returns how many were compared.
pub fn check_stored_bytes(store: &dyn Emulator, log: &str) -> usize {
    // A key stored more than once (a live playlist) holds its last version.
    let mut last = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(" stored key=")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|token| token.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                .to_owned()
        };
        last.insert(field("key"), (field("bytes"), field("crc32")));
    }
    for (key, (bytes, crc32)) in &last {
        let stored = store.get(key);
        assert_eq!(&stored.len().to_string(), bytes, "{key}: size");
        let written = u32::from_str_radix(crc32, 16).unwrap();
        assert_eq!(
            crc32fast::hash(&stored),
            written,
            "{key}: the stored bytes differ"
        );
    }
    last.len()
}

/// The keys of the bucket but the check file a job writes before it starts.
fn job_keys(store: &dyn Emulator) -> Vec<String> {
    let mut keys = store.keys();
    keys.retain(|k| !k.ends_with("egress-storage-check.txt"));
    keys
}

pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Freezes (SIGSTOP) or thaws (SIGCONT) a process: a store that stops answering mid-request.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits until the job's spool lists a file of `output` waiting for the store.
pub fn wait_for_pending(spool: &Path, output: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let waiting = files_below(spool).into_iter().any(|f| {
            f.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(&f).is_ok_and(|t| t.contains(&format!("\"output\":\"{output}\"")))
        });
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {output} upload waits in {}",
            spool.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A call with every output lands in the bucket: the recording whole, the stills as JPEGs of
/// the asked size, the HLS playlists with every segment, the transcript (JSONL, WebVTT, SRT)
/// with what was said, each file byte for byte as written;
/// nothing stays on the machine and the secret is in no log or event.
pub fn a_call_lands_with_every_output(store: &dyn Emulator, name: &str) {
    let scratch = Scratch::new(&format!("{name}-call"));
    let egress_id = format!("eg_{name}");
    // Alice says a sentence, for the transcript.
    let spoken = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(scratch.dir.join("speech.wav"))
        .arg("Please send the recording to the compliance team.")
        .status()
        .expect("espeak-ng runs");
    assert!(spoken.success());
    let mut job = two_party_call(
        store.storage(BUCKET),
        &egress_id,
        7.0,
        json!({
            "recording": { "quality": "480p" },
            "hls": { "quality_tracks": ["360p"] },
            "frame_recording": { "capture_interval_in_seconds": 3, "quality": "360p" },
            "transcription": { "language": "en" }
        }),
    );
    job["source"]["participants"][0]["audio"] = json!({ "file": "speech.wav" });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(20));
    let log = running.log.clone();
    let events = running.finish(Duration::from_secs(60));

    let url = check_recording(store, &events, &scratch, 7.0);
    assert!(
        url.contains(&format!("/{PREFIX}/rec_")),
        "under the path prefix: {url}"
    );

    let stills: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect();
    assert_eq!(stills.len(), 6, "3 stills each for 2 participants");
    for still in stills {
        let jpeg = store.fetch(still["url"].as_str().unwrap());
        let img = image::load_from_memory(&jpeg).expect("a JPEG in the bucket");
        assert_eq!((img.width(), img.height()), (640, 360));
    }

    let started = events
        .iter()
        .find(|e| e["type"] == "call.hls_broadcasting_started")
        .expect("hls started");
    let master = String::from_utf8(store.fetch(started["hls_playlist_url"].as_str().unwrap())).unwrap();
    assert!(master.contains("360p/index.m3u8"), "{master}");
    check_playlist(store, 3);

    let ready = events
        .iter()
        .find(|e| e["type"] == "call.transcription_ready")
        .unwrap_or_else(|| panic!("transcript ready: {events:#?}"));
    let url = ready["call_transcription"]["url"].as_str().unwrap();
    let transcript = String::from_utf8(store.fetch(url)).unwrap();
    assert!(
        transcript.contains("\"speaker_id\":\"alice\"") && transcript.contains("compliance team"),
        "the transcript in the bucket: {transcript}"
    );

    let log = std::fs::read_to_string(log).unwrap();
    let compared = check_stored_bytes(store, &log);
    let objects = job_keys(store).len();
    assert_eq!(compared, objects, "every object in the bucket was compared");
    assert!(
        compared >= 1 + 6 + 2 + 3 + 3,
        "recording, stills, playlists, segments, transcript files: {compared}"
    );

    let left: Vec<_> = files_below(&scratch.out());
    assert!(
        left.is_empty(),
        "nothing stays on the machine once stored: {left:?}"
    );
    let all_events = serde_json::to_string(&events).unwrap();
    let secret = store.secret();
    assert!(
        !log.contains(&secret) && !all_events.contains(&secret),
        "the secret leaked"
    );
}

/// The store stops answering (SIGSTOP) for 30 s in the middle of a call that ends meanwhile:
/// once it answers again, every file arrives, none is announced twice or failed.
pub fn a_store_frozen_for_30_s_loses_nothing(store: &mut dyn Emulator, name: &str) {
    let scratch = Scratch::new(&format!("{name}-frozen"));
    let seconds = 12.0;
    let job = two_party_call(
        store.storage(BUCKET),
        &format!("eg_{name}_frozen"),
        seconds,
        json!({
            "recording": { "quality": "360p" },
            "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
            "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" }
        }),
    );
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.hls_broadcasting_started", Duration::from_secs(30));
    let pid = store.pid();
    signal(pid, "STOP");
    let frozen_at = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    signal(pid, "CONT");
    let log = running.log.clone();
    let events = running.finish(Duration::from_secs(150));
    assert!(frozen_at.elapsed() >= Duration::from_secs(30));

    let types = event_types(&events);
    assert!(!types.iter().any(|t| t.ends_with("_failed")), "{types:?}");
    // The bytes first: a recording that does not decode is then known to be as it was written.
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(check_stored_bytes(store, &log), job_keys(store).len());
    check_recording(store, &events, &scratch, seconds);
    let stills: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect();
    for user in ["alice", "bob"] {
        let count = stills.iter().filter(|e| e["users"][user].is_object()).count();
        assert!((6..=7).contains(&count), "{user}: {count} stills in {seconds} s");
    }
    let mut urls: Vec<&str> = stills.iter().map(|e| e["url"].as_str().unwrap()).collect();
    urls.sort_unstable();
    urls.dedup();
    assert_eq!(urls.len(), stills.len(), "no still announced twice");
    check_playlist(store, 5);
    assert!(!log.contains(&store.secret()), "the secret leaked");
    assert!(
        files_below(&scratch.out()).is_empty(),
        "the spool is empty once all is stored"
    );
}

/// The worker dies while its recording waits for a frozen store; `egress storage resume`
/// stores it and announces it, whole.
pub fn uploads_a_killed_worker_left_are_resumed(store: &mut dyn Emulator, name: &str) {
    let scratch = Scratch::new(&format!("{name}-killed"));
    let egress_id = format!("eg_{name}_killed");
    let job = json!({
        "egress_id": egress_id,
        "call_cid": "default:killed",
        "source": { "type": "synthetic", "duration_s": 5, "participants": [
            { "user_id": "alice", "video": { "color": "#43a047" }, "audio": "sine" }
        ]},
        "recording": { "quality": "360p" },
        "storage": store.storage(BUCKET)
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(30));
    let pid = store.pid();
    signal(pid, "STOP");
    let spool = scratch.out().join(".spool").join(&egress_id);
    wait_for_pending(&spool, "recording", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    running.child.kill().unwrap();
    let (_, before) = running.end(Duration::from_secs(10));
    assert!(
        !before.iter().any(|e| e["type"] == "call.recording_ready"),
        "not stored before the kill"
    );
    signal(pid, "CONT");

    let resumed = egress()
        .args(["storage", "resume", "--out"])
        .arg(scratch.out())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(!stderr.contains(&store.secret()), "the secret leaked");
    let events = parse_events(&resumed.stdout);
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("the resumed upload is announced: {events:?} {stderr}"));
    assert_eq!(ready["egress_id"], egress_id.as_str());
    check_recording(store, &events, &scratch, 5.0);
    assert_eq!(check_stored_bytes(store, &stderr), 1, "{stderr}");
    assert!(!spool.join("uploads").exists(), "the upload list is done");
}

/// Stores 300 MB of varied bytes through the backend as the uploader does; checks they arrive
/// byte for byte. Returns the key.
pub fn a_large_file_arrives_byte_for_byte(store: &dyn Emulator, name: &str) -> String {
    let scratch = Scratch::new(&format!("{name}-large"));
    let file = scratch.dir.join("large.bin");
    let bytes: Vec<u8> = (0..300_000_000u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let config: egress::job::StorageConfig = serde_json::from_value(store.storage(BUCKET)).unwrap();
    let storage = egress::storage::open(&config, &scratch.out()).unwrap();
    let key = format!("{PREFIX}/large.bin");
    storage.store(&file, &key).unwrap();
    let stored = http_get(&storage.url(&key));
    assert_eq!(stored.len(), bytes.len());
    assert!(stored == bytes, "the stored object differs from the file");
    key
}

/// Runs `egress storage check` on `storage`; returns the exit code and all it printed, which
/// must not hold `secret`.
pub fn storage_check(scratch: &Scratch, storage: &Value, secret: &str) -> (Option<i32>, String) {
    let path = scratch.dir.join("storage.json");
    std::fs::write(&path, storage.to_string()).unwrap();
    let out = egress().args(["storage", "check"]).arg(&path).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(secret), "the secret leaked: {text}");
    (out.status.code(), text)
}
