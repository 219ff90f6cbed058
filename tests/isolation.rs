//! One bad destination, option or kill never costs a recording: RTMP destinations that refuse,
//! are unreachable, reject the key or die mid-call fail alone; layout options at their limits
//! still record; a call without media is failed rather than announced; secrets in URLs stay
//! hidden and the spool stays private.

mod common;

use common::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Real-time jobs of this file run one at a time: two cores.
static REAL_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn participants() -> Value {
    json!([
        { "user_id": "alice", "name": "Alice", "video": { "color": "#e53935" }, "audio": "sine" },
        { "user_id": "bob", "name": "Bob", "video": { "pattern": "ball" }, "audio": "sine" }
    ])
}

fn of<'a>(events: &'a [Value], kind: &str, name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["name"] == name)
        .collect()
}

/// Segment durations of a media playlist, and whether it is closed.
fn hls_segments(playlist: &str) -> (Vec<f64>, bool) {
    let durations = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|d| d.trim_end_matches(',').split(',').next()?.parse().ok())
        .collect();
    (durations, playlist.contains("#EXT-X-ENDLIST"))
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rtmp_destinations_that_fail_in_every_way_cost_nothing_else() {
    let _alone = alone();
    let scratch = Scratch::new("isolation-rtmp");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let mut doomed = RtmpServer::new(scratch.dir.join("nginx-doomed"));
    let black_hole = BlackHole::create();
    let call_s = 16.0;
    let push = |name: &str, url: String| json!({ "name": name, "stream_url": url, "stream_key": format!("sk-{name}-31f7"), "quality": "360p" });
    let job = json!({
        "egress_id": "eg_isolation",
        "call_cid": "default:isolation",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": participants() },
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"] },
        "frame_recording": { "capture_interval_in_seconds": 4, "quality": "360p" },
        "rtmp": [
            push("refused-key", format!("rtmp://127.0.0.1:{}/locked", server.port)),
            push("nobody-listens", format!("rtmp://127.0.0.1:{}/live", free_port())),
            push("black-hole", format!("rtmp://{}:1935/live", black_hole.address)),
            push("dies-mid-call", format!("rtmp://127.0.0.1:{}/live", doomed.port)),
        ],
        "storage": { "storage_type": "local" }
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.rtmp_broadcast_started", Duration::from_secs(30));
    // The one destination that takes the stream has it for a while (HLS, on the same encoder,
    // has a whole segment by then), then goes away mid-call for good.
    running.wait_for("call.hls_broadcasting_started", Duration::from_secs(30));
    doomed.stop();
    let events = running.finish(Duration::from_secs(120));
    let types = event_types(&events);

    for name in ["refused-key", "nobody-listens", "black-hole", "dies-mid-call"] {
        let failed = of(&events, "call.rtmp_broadcast_failed", name);
        assert_eq!(failed.len(), 1, "{name} fails once: {types:?}");
        assert!(
            of(&events, "call.rtmp_broadcast_stopped", name).is_empty(),
            "{name} is failed, not stopped: {types:?}"
        );
        assert!(!failed[0]["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        of(&events, "call.rtmp_broadcast_started", "dies-mid-call").len(),
        1
    );
    assert!(
        server.log().contains("refuse") || server.log().contains("403"),
        "nginx refused the key through on_publish"
    );
    assert!(
        server.received("sk-refused-key-31f7").is_empty(),
        "nothing recorded for the refused key"
    );

    // The recording is whole.
    assert!(!types.iter().any(|t| t == "call.recording_failed"), "{types:?}");
    let file = ready_file(&events);
    let info = probe(&file);
    let duration = duration_s(&info);
    assert!((duration - call_s).abs() <= 0.2, "recording lasted {duration} s");
    assert_eq!(streams_of(&info, "video")[0]["height"], 360);
    assert_eq!(decode_errors(&file), "", "the recording decodes cleanly");

    // HLS is whole: every segment stored, the playlist closed.
    assert!(
        types.iter().any(|t| t == "call.hls_broadcasting_stopped"),
        "{types:?}"
    );
    assert!(
        !types.iter().any(|t| t == "call.hls_broadcasting_failed"),
        "{types:?}"
    );
    let playlist = files_below(&scratch.out())
        .into_iter()
        .find(|p| p.ends_with("360p/index.m3u8"))
        .expect("the rendition playlist is stored");
    let (segments, closed) = hls_segments(&std::fs::read_to_string(&playlist).unwrap());
    let total: f64 = segments.iter().sum();
    assert!(closed, "the playlist ends with ENDLIST");
    assert!((total - call_s).abs() <= 0.5, "HLS holds {total} s of {call_s}");

    // Stills every 4 s of both participants.
    assert!(
        types.iter().any(|t| t == "call.frame_recording_stopped"),
        "{types:?}"
    );
    let stills = types
        .iter()
        .filter(|t| *t == "call.frame_recording_ready")
        .count();
    assert!(stills >= 6, "stills taken all along: {stills}");
}

#[test]
fn layout_options_at_their_limits_still_record() {
    let _alone = alone();
    let crowd: Vec<Value> = (0..25)
        .map(|i| json!({ "user_id": format!("u{i}"), "name": format!("User {i}"), "video": { "color": "#1e88e5" } }))
        .collect();
    let cases = [
        (
            "padding",
            "360p",
            json!({ "name": "single-participant", "options": { "layout.single-participant.padding_inline": "640px" } }),
            participants(),
        ),
        (
            "aspect",
            "portrait-360x640",
            json!({ "name": "single-participant", "options": {
                "layout.single-participant.padding_inline": "45%", "participant.aspect_ratio": 10 } }),
            participants(),
        ),
        (
            "crowd",
            "360p",
            json!({ "name": "grid", "options": {
                "grid.columns": 10, "grid.rows": 10, "grid.margin": 200, "grid.cell_padding": 200 } }),
            json!(crowd),
        ),
    ];
    for (name, quality, layout, people) in cases {
        let scratch = Scratch::new(&format!("isolation-layout-{name}"));
        let job = json!({
            "call_cid": format!("default:{name}"),
            "source": { "type": "synthetic", "duration_s": 3.0, "participants": people },
            "recording": { "quality": quality, "layout": layout },
            "storage": { "storage_type": "local" }
        });
        let events = run_successfully(&scratch, &job);
        let file = ready_file(&events);
        let duration = duration_s(&probe(&file));
        assert!((duration - 3.0).abs() <= 0.2, "{name}: {duration} s");
        assert_eq!(decode_errors(&file), "", "{name} decodes");
    }
}

#[test]
fn a_call_that_ended_before_the_worker_came_is_failed_not_announced() {
    let _alone = alone();
    let scratch = Scratch::new("isolation-no-media");
    let long_ago = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let job = json!({
        "call_cid": "default:over",
        "source": { "type": "synthetic", "duration_s": 5.0, "started_at": long_ago, "participants": participants() },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local" }
    });
    let (output, events) = run_job(&scratch, &job);
    let types = event_types(&events);
    assert!(!output.status.success(), "the job reports its failure: {types:?}");
    assert!(!types.iter().any(|t| t == "call.recording_ready"), "{types:?}");
    let failed = events
        .iter()
        .find(|e| e["type"] == "call.recording_failed")
        .unwrap_or_else(|| panic!("a failed event: {types:?}"));
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("media"),
        "the reason names the missing media: {error}"
    );
    let mp4s: Vec<PathBuf> = files_below(&scratch.out())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert!(mp4s.is_empty(), "no unplayable file left: {mp4s:?}");
}

#[test]
fn urls_with_passwords_stay_hidden_and_the_spool_is_private() {
    let _alone = alone();
    let scratch = Scratch::new("isolation-secrets");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let password = "Pw9-unguessable";
    // A key that is also part of other words: only where it stands whole is it hidden.
    let key = "frame";
    let job = json!({
        "call_cid": "default:secrets",
        "source": { "type": "synthetic", "duration_s": 8.0, "participants": participants() },
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"] },
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "rtmp": [{ "name": "with-password", "stream_url": format!("rtmp://user:{password}@127.0.0.1:{}/live", server.port),
                   "stream_key": key, "quality": "360p" }],
        "storage": { "storage_type": "local" }
    });
    let dot = scratch.dir.join("graph.dot");
    let mut command = egress();
    command.env("RUST_LOG", "debug,lapin=off");
    let mut running = Running::spawn_with(command, &scratch, &job, &["--dot", dot.to_str().unwrap()]);
    running.wait_for("call.hls_broadcasting_started", Duration::from_secs(30));
    let spool = scratch.out().join(".spool");
    let spooled = files_below(&spool);
    assert!(
        !spooled.is_empty(),
        "the running job has files in {}",
        spool.display()
    );
    for file in &spooled {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
    for dir in spooled.iter().filter_map(|f| f.parent()).chain([spool.as_path()]) {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
    let log = running.log.clone();
    let events = running.finish(Duration::from_secs(60));
    let log = std::fs::read_to_string(log).unwrap();
    let graph = std::fs::read_to_string(&dot).unwrap();
    let published = serde_json::to_string(&events).unwrap();
    for (what, text) in [("log", &log), ("events", &published), ("graph", &graph)] {
        assert!(!text.contains(password), "the URL's password is in the {what}");
    }
    assert!(
        log.contains("rtmp://***@127.0.0.1"),
        "the URL is logged without its user-info"
    );
    let types = event_types(&events);
    for kind in [
        "call.frame_recording_started",
        "call.frame_recording_ready",
        "call.frame_recording_stopped",
    ] {
        assert!(
            types.iter().any(|t| t == kind),
            "{kind} survives the key's redaction: {types:?}"
        );
    }
    assert!(
        server.received(key).len() == 1,
        "the push reached the server under its key"
    );
    let started = of(&events, "call.rtmp_broadcast_started", "with-password");
    assert_eq!(started.len(), 1, "the push with user-info in its URL connects");
    let stored = ready_file(&events);
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "stored files are readable by the storage's readers");
}

/// A media pipeline error mid-job (here: the folder HLS writes its next segment to is gone,
/// a file in its place) fails the job: every output that ran is announced failed once, and
/// none is also announced stopped.
#[test]
fn a_pipeline_error_mid_job_fails_each_running_output_once_and_stops_none() {
    let _alone = alone();
    let scratch = Scratch::new("isolation-pipeline-error");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let job = json!({
        "egress_id": "eg_pipeline_error",
        "call_cid": "default:pipeline-error",
        "source": { "type": "synthetic", "duration_s": 60.0, "participants": participants() },
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "rtmp": [{ "name": "live", "stream_url": format!("rtmp://127.0.0.1:{}/live", server.port),
                   "stream_key": "sk-pipeline-error", "quality": "360p" }],
        "storage": { "storage_type": "local" }
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    for started in [
        "call.recording_started",
        "call.hls_broadcasting_started",
        "call.frame_recording_started",
        "call.rtmp_broadcast_started",
    ] {
        running.wait_for(started, Duration::from_secs(30));
    }
    let rendition = scratch.out().join(".spool/eg_pipeline_error/hls/360p");
    assert!(rendition.is_dir(), "{} is where HLS writes", rendition.display());
    std::fs::remove_dir_all(&rendition).unwrap();
    std::fs::write(&rendition, b"not a folder").unwrap();
    let (status, events) = running.end(Duration::from_secs(60));
    assert!(!status.success(), "the job reports its failure");
    let types = event_types(&events);
    let count = |t: &str| types.iter().filter(|x| x.as_str() == t).count();
    for output in ["recording", "hls_broadcasting", "frame_recording"] {
        assert_eq!(count(&format!("call.{output}_failed")), 1, "{output}: {types:?}");
        assert_eq!(count(&format!("call.{output}_stopped")), 0, "{output}: {types:?}");
    }
    assert_eq!(
        of(&events, "call.rtmp_broadcast_failed", "live").len(),
        1,
        "{types:?}"
    );
    assert_eq!(
        of(&events, "call.rtmp_broadcast_stopped", "live").len(),
        0,
        "{types:?}"
    );
    let failed = events
        .iter()
        .find(|e| e["type"] == "call.hls_broadcasting_failed")
        .unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("pipeline"),
        "the reason names the pipeline error: {error}"
    );
    assert!(!error.contains("sk-pipeline-error"), "{error}");
}
