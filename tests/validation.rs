//! Invalid jobs are refused with exit code 2 and messages naming every bad field.

mod common;

use common::*;
use serde_json::json;

fn refuse(name: &str, text: &str) -> (String, Vec<serde_json::Value>) {
    let scratch = Scratch::new(name);
    let path = scratch.dir.join("job.json");
    std::fs::write(&path, text).unwrap();
    let output = egress()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(scratch.out())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "exit code for {name}");
    assert!(
        !scratch.out().join(".spool").exists(),
        "nothing started for {name}"
    );
    (
        String::from_utf8_lossy(&output.stderr).into_owned(),
        parse_events(&output.stdout),
    )
}

fn valid_job() -> serde_json::Value {
    json!({
        "call_cid": "default:x",
        "source": { "type": "synthetic", "duration_s": 5, "participants": [{ "user_id": "a" }] },
        "recording": { "quality": "720p" }
    })
}

#[test]
fn bad_json_is_refused() {
    let (stderr, _) = refuse("bad-json", "{\"call_cid\": ");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
}

#[test]
fn every_bad_field_is_named_at_once() {
    let mut job = valid_job();
    job.as_object_mut().unwrap().remove("call_cid");
    job["recording"]["quality"] = json!("4k");
    job["source"]["duration_s"] = json!(-5);
    job["source"]["participants"][0]["colour"] = json!("red");
    let (stderr, events) = refuse("many", &job.to_string());
    for expected in [
        "call_cid: required field is missing",
        "recording.quality: expected one of 360p, 480p, 720p, 1080p, 1440p, portrait-360x640",
        "got \"4k\"",
        "source.duration_s: expected at least 0.5; got -5",
        "source.participants[0].colour: unknown field",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(events.is_empty(), "no call_cid, so no event: {events:?}");
}

#[test]
fn unknown_source_type_is_named() {
    let mut job = valid_job();
    job["source"] = json!({ "type": "zoom", "url": "x" });
    let (stderr, events) = refuse("source-type", &job.to_string());
    assert!(
        stderr.contains("source.type: expected one of synthetic, janus, whep, render; got \"zoom\""),
        "{stderr}"
    );
    assert_eq!(event_types(&events), ["call.recording_failed"]);
    assert!(events[0]["error"].as_str().unwrap().contains("source.type"));
}

#[test]
fn a_janus_source_needs_a_websocket_url_a_room_and_a_sane_timeout() {
    let mut job = valid_job();
    job["source"] = json!({
        "type": "janus", "url": "http://janus.example:8088/janus", "room": 0,
        "pin": "secret-pin-771", "inactivity_timeout_seconds": 2,
    });
    let (stderr, _) = refuse("janus-source", &job.to_string());
    for expected in [
        "source.url: expected text matching ^wss?://",
        "source.room: expected at least 1; got 0",
        "source.inactivity_timeout_seconds: expected at least 5; got 2",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("secret-pin-771"), "the PIN never shows");
    job["source"] = json!({"type": "janus", "url": "wss://janus.example:8989", "room": 5});
    let scratch = Scratch::new("janus-wss");
    let output = egress()
        .arg("validate")
        .arg(scratch.write_job(&job))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wss:// is taken: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn times_outside_the_call_are_refused() {
    let mut job = valid_job();
    job["source"]["participants"] = json!([{ "user_id": "a", "join_at_s": 3, "leave_at_s": 2 }, { "user_id": "a", "join_at_s": 9 },
               { "user_id": "a", "join_at_s": 1 }]);
    let (stderr, _) = refuse("times", &job.to_string());
    assert!(
        stderr.contains("source.participants[0].leave_at_s: expected a time after join_at_s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("source.participants[1].join_at_s: expected a time before the end"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "source.participants[2].user_id: expected a unique user id, or stays that do not overlap"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_media_files_are_named() {
    let mut job = valid_job();
    job["source"]["participants"][0]["video"] = json!({ "clip": "nowhere.webm" });
    let (stderr, _) = refuse("missing-clip", &job.to_string());
    assert!(
        stderr.contains("source.participants[0].video.clip: expected a readable media file"),
        "{stderr}"
    );
}

#[test]
fn bad_layout_option_values_name_the_key() {
    let mut job = valid_job();
    job["recording"]["layout"] = json!({ "name": "spotlight", "options": {
        "video.background_color": "blue-ish",
        "grid.position": "middle",
        "participant.filter": { "roles": { "$contains": 7 } },
        "custom_actions": [
            { "action_type": "layout_override", "layout": "carousel" },
            { "action_type": "options_override", "condition": { "participant_count": { "$gt": "two" } },
              "options": { "video.scale_mode": "stretch" } }
        ]
    } });
    let (stderr, _) = refuse("bad-option", &job.to_string());
    for expected in [
        "recording.layout.options.video.background_color: expected a CSS colour like",
        "recording.layout.options.grid.position: expected one of top, bottom, left, right; got \"middle\"",
        "recording.layout.options.participant.filter.roles.$contains: expected a string; got 7",
        "recording.layout.options.custom_actions[0].layout: expected one of grid, spotlight",
        "recording.layout.options.custom_actions[1].condition.participant_count.$gt: expected a number",
        "recording.layout.options.custom_actions[1].options.video.scale_mode: expected one of fit, fill",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn unknown_layout_options_are_warnings_not_errors() {
    let scratch = Scratch::new("warn");
    let mut job = valid_job();
    job["recording"]["layout"] = json!({ "name": "grid", "options": { "no.such_option": 1 } });
    let path = scratch.write_job(&job);
    let output = egress().arg("validate").arg(&path).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("warning: recording.layout.options.no.such_option")
    );
}

#[test]
fn the_demo_job_is_valid_and_the_schema_is_published() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jobs/demo.json");
    let output = egress().arg("validate").arg(demo).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A valid job is answered with what a worker's admission estimates it costs.
    let said = String::from_utf8_lossy(&output.stdout);
    let cores: f64 = said
        .split("estimated cost ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no estimate in {said:?}"));
    assert!(cores > 0.05 && cores < 3.0, "{said}");
    let schema = egress().arg("schema").output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        required.contains(&"call_cid") && required.contains(&"source"),
        "{required:?}"
    );
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn hls_segments_that_cannot_close_on_a_keyframe_are_a_warning() {
    let scratch = Scratch::new("segment-warn");
    let mut job = valid_job();
    job["hls"] = json!({ "quality_tracks": ["360p"], "segment_duration_s": 3 });
    let path = scratch.write_job(&job);
    let output = egress().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: hls.segment_duration_s: segments close on keyframes every 2 s; they will last 4 s"
        ),
        "{stderr}"
    );
    job["hls"]["segment_duration_s"] = json!(13);
    let (stderr, _) = refuse("segment-range", &job.to_string());
    assert!(stderr.contains("hls.segment_duration_s"), "{stderr}");
    job["hls"] = json!({ "quality_tracks": ["720p", "720p"] });
    let (stderr, _) = refuse("segment-tracks", &job.to_string());
    assert!(stderr.contains("hls.quality_tracks"), "{stderr}");
    job["hls"] = json!({ "quality_tracks": ["720p", "audio-only", "audio-only"] });
    let (stderr, _) = refuse("segment-sound-twice", &job.to_string());
    assert!(
        stderr.contains("hls.quality_tracks[2]: expected distinct qualities; audio-only is listed twice"),
        "{stderr}"
    );
    job["hls"] = json!({ "quality_tracks": ["900p"] });
    let (stderr, _) = refuse("segment-no-such-track", &job.to_string());
    assert!(
        stderr.contains("hls.quality_tracks[0]: expected one of 360p, ")
            && stderr.contains("portrait-1440x2560, audio-only; got \"900p\""),
        "every accepted name, audio-only too: {stderr}"
    );
}

#[test]
fn a_translation_target_without_a_model_is_refused_by_name() {
    let mut job = valid_job();
    job["transcription"] = json!({ "language": "auto", "closed_captions": true,
        "translation": { "enabled": true, "languages": ["en", "fr"] } });
    let (stderr, _) = refuse("translation-fr", &job.to_string());
    assert!(
        stderr.contains("transcription.translation.languages[1]: no translation model for \"fr\""),
        "{stderr}"
    );
    assert!(!stderr.contains("languages[0]"), "en is translated: {stderr}");
}

#[test]
fn frame_recording_settings_are_checked() {
    let mut job = valid_job();
    job.as_object_mut().unwrap().remove("recording");
    job["frame_recording"] = json!({ "capture_interval_in_seconds": 1, "quality": "portrait-720x1280" });
    let (stderr, _) = refuse("frames-bad", &job.to_string());
    assert!(
        stderr.contains("frame_recording.capture_interval_in_seconds"),
        "{stderr}"
    );
    job["frame_recording"] = json!({ "capture_interval_in_seconds": 5, "quality": "portrait-720x1280" });
    let (stderr, _) = refuse("frames-portrait", &job.to_string());
    assert!(
        stderr.contains("frame_recording.quality: expected one of 360p, 480p, 720p, 1080p, 1440p"),
        "{stderr}"
    );
}

#[test]
fn s3_storage_needs_a_bucket_a_region_and_whole_credentials() {
    let mut job = valid_job();
    job["storage"] = json!({ "storage_type": "s3", "aws_s3": {
        "s3_region": " ", "s3_api_key": "AKIDONLY", "s3_custom_endpoint_url": "minio:9000" } });
    let (stderr, _) = refuse("s3-incomplete", &job.to_string());
    for expected in [
        "storage.bucket: expected the bucket name for storage_type s3",
        "storage.aws_s3.s3_region: expected a region such as us-east-1",
        "storage.aws_s3: expected s3_api_key and s3_secret together, or neither",
        "storage.aws_s3.s3_custom_endpoint_url: expected an http(s) URL; got \"minio:9000\"",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("AKIDONLY"), "no key in messages: {stderr}");
    job["storage"] = json!({ "storage_type": "s3", "bucket": "b" });
    let (stderr, _) = refuse("s3-no-section", &job.to_string());
    assert!(stderr.contains("storage.aws_s3: expected"), "{stderr}");
    job["storage"] = json!({ "storage_type": "s3", "bucket": "b", "url_expiry_s": 700000,
        "aws_s3": { "s3_region": "us-east-1" } });
    let (stderr, _) = refuse("s3-expiry", &job.to_string());
    assert!(
        stderr.contains("storage.url_expiry_s: expected 1 to 604800 seconds (7 days); got 700000"),
        "{stderr}"
    );
    job["storage"] = json!({ "storage_type": "local", "url_expiry_s": 60 });
    let (stderr, _) = refuse("local-expiry", &job.to_string());
    assert!(
        stderr.contains("storage.url_expiry_s: signed URLs need storage_type s3"),
        "{stderr}"
    );
}

#[test]
fn gcs_and_azure_storage_name_what_is_missing_without_quoting_secrets() {
    let mut job = valid_job();
    job["storage"] = json!({ "storage_type": "gcs", "bucket": "b",
        "gcs_credentials": "{\"type\": \"authorized_user\", \"private_key\": \"-----BEGIN hunter2\"}",
        "aws_s3": { "s3_region": "us-east-1" } });
    let (stderr, _) = refuse("gcs-bad", &job.to_string());
    for expected in [
        "storage.gcs_credentials: expected a service-account key (\"type\": \"service_account\")",
        "storage.gcs_credentials: expected the service-account key's \"client_email\"",
        "storage.aws_s3: belongs to storage_type s3, not gcs",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "no key in messages: {stderr}");

    job["storage"] = json!({ "storage_type": "abs" });
    let (stderr, _) = refuse("abs-nothing", &job.to_string());
    assert!(
        stderr.contains("storage.bucket: expected the container name for storage_type abs"),
        "{stderr}"
    );
    assert!(stderr.contains("storage.azure_blob: expected {"), "{stderr}");

    job["storage"] = json!({ "storage_type": "abs", "bucket": "calls", "azure_blob": {
        "abs_account_name": "acct", "abs_tenant_id": "t", "abs_client_secret": "hunter2" } });
    let (stderr, _) = refuse("abs-half-principal", &job.to_string());
    assert!(
        stderr.contains(
            "storage.azure_blob: expected abs_tenant_id, abs_client_id and abs_client_secret together"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "no secret in messages: {stderr}");

    job["storage"] = json!({ "storage_type": "abs", "bucket": "calls", "azure_blob": {
        "abs_connection_string": "AccountName=acct;Password=hunter2" } });
    let (stderr, _) = refuse("abs-connection-string", &job.to_string());
    assert!(
        stderr.contains(
            "storage.azure_blob.abs_connection_string: expected an AccountKey or a SharedAccessSignature"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "no secret in messages: {stderr}");
}

#[test]
fn transcription_settings_are_checked_against_the_seed_ranges() {
    let mut job = valid_job();
    job["transcription"] = json!({
        "speech_segment_config": { "max_speech_caption_ms": 12000, "silence_duration_ms": 100 } });
    let (stderr, _) = refuse("transcription-ranges", &job.to_string());
    for expected in [
        "transcription.speech_segment_config.max_speech_caption_ms: expected at most 10000; got 12000",
        "transcription.speech_segment_config.silence_duration_ms: expected at least 300; got 100",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    job["transcription"] = json!({ "language": "xx", "transcript": false, "closed_captions": false });
    let (stderr, _) = refuse("transcription-language", &job.to_string());
    for expected in [
        "transcription.language: expected auto or one of en, fr,",
        "transcription: nothing to produce; expected transcript or closed_captions",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}

/// `egress validate` of a job file; returns its exit code and what it printed on stderr.
fn validate(path: &std::path::Path) -> (Option<i32>, String) {
    let output = egress().arg("validate").arg(path).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn local_files_are_read_only_below_the_job_folder() {
    let scratch = Scratch::new("confined");
    std::fs::write(scratch.dir.join("inside.wav"), b"RIFF").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", scratch.dir.join("link.webm")).unwrap();
    let mut job = valid_job();
    job["source"]["participants"] = json!([
        { "user_id": "a", "video": { "clip": "/etc/passwd" }, "audio": { "file": "inside.wav" } },
        { "user_id": "b", "video": { "clip": "../../../../etc/passwd" } },
        { "user_id": "c", "video": { "clip": "link.webm" }, "audio": { "file": "/dev/zero" } },
        { "user_id": "d", "video": { "color": "#00ff00" }, "audio": "sine" }
    ]);
    job["recording"]["layout"] =
        json!({ "name": "grid", "options": { "logo.image_url": "file:///dev/zero" } });
    let path = scratch.write_job(&job);
    let (code, stderr) = validate(&path);
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        "source.participants[0].video.clip: expected a file below the media folder",
        "source.participants[1].video.clip: expected a file below the media folder",
        "source.participants[2].video.clip: expected a file below the media folder",
        "source.participants[2].audio.file: expected a file below the media folder",
        "recording.layout.options.logo.image_url: expected a file below the media folder",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("participants[0].audio"),
        "a file inside is fine: {stderr}"
    );
    assert!(
        !stderr.contains("participants[3]"),
        "colours and tones read no file: {stderr}"
    );
}

#[test]
fn oversized_and_endless_jobs_are_refused_before_they_are_read_whole() {
    let scratch = Scratch::new("oversized");
    let mut job = valid_job();
    job["egress_id"] = json!("x".repeat(2 * 1024 * 1024));
    let path = scratch.write_job(&job);
    let (code, stderr) = validate(&path);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("job: expected a job of at most 1048576 bytes"),
        "{stderr}"
    );
    let (code, stderr) = validate(std::path::Path::new("/dev/zero"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("expected a job of at most"), "{stderr}");
}

#[test]
fn duplicate_keys_whole_floats_and_contradicting_storage_are_named() {
    let text = r#"{
        "call_cid": "default:x",
        "source": { "type": "synthetic", "duration_s": 5, "participants": [{ "user_id": "a", "user_id": "b" }] },
        "recording": { "quality": "720p", "max_file_duration_s": 60.0, "quality": "480p" },
        "hls": { "quality_tracks": ["720p"], "segment_duration_s": 1E+1 },
        "storage": { "aws_s3": { "s3_region": "us-east-1" } }
    }"#;
    let (stderr, _) = refuse("strict", text);
    for expected in [
        "source.participants[0].user_id: given twice",
        "recording.quality: given twice",
        "storage.aws_s3: belongs to storage_type s3, not local",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    for taken in ["max_file_duration_s", "segment_duration_s", "invalid type"] {
        assert!(
            !stderr.contains(taken),
            "a whole number written as a float is taken: {stderr}"
        );
    }
    // A fraction where a whole number belongs is named with the rest of the job's problems.
    let mut job = valid_job();
    job["frame_recording"] = json!({ "capture_interval_in_seconds": 2.5 });
    job["recording"]["quality"] = json!("4k");
    let (stderr, _) = refuse("fraction", &job.to_string());
    for expected in [
        "frame_recording.capture_interval_in_seconds: expected integer; got a number",
        "recording.quality: expected one of",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
}

#[test]
fn secrets_too_short_to_hide_are_refused() {
    let mut job = valid_job();
    job["rtmp"] = json!([{ "name": "a", "stream_url": "rtmp://127.0.0.1/live", "stream_key": "k" }]);
    let (stderr, _) = refuse("short-key", &job.to_string());
    assert!(
        stderr.contains("rtmp[0].stream_key: expected a secret of at least 4 characters"),
        "{stderr}"
    );
}

#[test]
fn a_call_object_that_names_another_call_is_refused() {
    let mut job = valid_job();
    let cid = job["call_cid"].as_str().unwrap().to_owned();
    job["call"] = json!({ "cid": "default:someone-else", "created_by": { "id": "coordinator" } });
    let (stderr, _) = refuse("other-call", &job.to_string());
    assert!(
        stderr.contains(&format!("call.cid: expected {cid:?} (from call_cid)")),
        "{stderr}"
    );
}

#[test]
fn a_title_longer_than_the_cap_is_refused() {
    let mut job = valid_job();
    job["recording"]["layout"] = json!({ "name": "grid", "options": { "title.text": "t".repeat(201) } });
    let (stderr, _) = refuse("long-title", &job.to_string());
    assert!(
        stderr.contains("recording.layout.options.title.text: expected a title of at most 200 characters"),
        "{stderr}"
    );
}

/// `egress validate` said either "valid" or, for each problem, a line `  path: what`.
fn assert_answered_with_paths(name: &str, code: Option<i32>, stderr: &str) {
    assert!(
        matches!(code, Some(0) | Some(2)),
        "{name}: exit {code:?} (a panic or a crash?):\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    if code == Some(2) {
        let problems: Vec<&str> = stderr.lines().skip(1).collect();
        assert!(
            !problems.is_empty(),
            "{name}: refused without a problem:\n{stderr}"
        );
        for line in problems {
            let (path, message) = line
                .trim()
                .split_once(": ")
                .unwrap_or_else(|| panic!("{name}: no path in {line:?}"));
            assert!(
                !path.is_empty() && !path.contains(' ') && !message.is_empty(),
                "{name}: {line:?}"
            );
        }
    }
}

#[test]
fn the_fuzz_corpus_is_answered_with_paths_and_never_a_panic() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is there: {}", corpus.display());
    for file in &files {
        let (code, stderr) = validate(file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert_answered_with_paths(&name, code, &stderr);
        let expected = if name.starts_with("valid-") { 0 } else { 2 };
        assert_eq!(code, Some(expected), "{name}:\n{stderr}");
    }
}

#[test]
fn mutated_jobs_are_answered_with_paths_and_never_a_panic() {
    let scratch = Scratch::new("mutations");
    let demo: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jobs/demo.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let odd = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1e300),
        json!(10.0),
        json!(""),
        json!("x".repeat(300)),
        json!("../../etc/passwd"),
        json!([]),
        json!({}),
        json!(true),
        json!("720p"),
    ];
    let mut rng = fastrand::Rng::with_seed(2121);
    fn leaves(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                map.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out))
            }
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }
    let mut pointers = Vec::new();
    leaves(&demo, String::new(), &mut pointers);
    pointers.retain(|p| !p.is_empty());
    for case in 0..150 {
        let mut job = demo.clone();
        for _ in 0..rng.usize(1..4) {
            let pointer = &pointers[rng.usize(0..pointers.len())];
            if let Some(slot) = job.pointer_mut(pointer) {
                *slot = odd[rng.usize(0..odd.len())].clone();
            }
        }
        let path = scratch.dir.join(format!("case{case}.json"));
        std::fs::write(&path, job.to_string()).unwrap();
        let (code, stderr) = validate(&path);
        assert_answered_with_paths(&format!("case {case}: {job}"), code, &stderr);
    }
}

#[test]
fn seed_values_once_refused_are_taken() {
    let scratch = Scratch::new("seed-values");
    for language in ["bg", "et", "sl", "sk"] {
        let mut job = valid_job();
        job["transcription"] = json!({ "language": language });
        job["recording"]["layout"] = json!({ "name": "single_participant" });
        job["limits"] = json!({ "max_duration_seconds": 0 });
        let path = scratch.write_job(&job);
        let (code, stderr) = validate(&path);
        assert_eq!(code, Some(0), "{language}: {stderr}");
    }
}

#[test]
fn an_invalid_job_is_announced_by_the_failed_event_of_each_output_it_asked_for() {
    let job = json!({
        "call_cid": "default:x",
        "source": { "type": "synthetic", "duration_s": -1, "participants": [{ "user_id": "a" }] },
        "rtmp": [{ "name": "yt", "stream_url": "rtmp://127.0.0.1/live", "stream_key": "sk-long-enough",
                   "quality": "sk-long-enough" }],
        "transcription": { "closed_captions": true }
    });
    let (stderr, events) = refuse("refusal-events", &job.to_string());
    assert!(stderr.contains("rtmp[0].quality: expected one of"), "{stderr}");
    assert!(
        !stderr.contains("sk-long-enough"),
        "no stream key in the report: {stderr}"
    );
    let announced: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        announced,
        [
            ("call.rtmp_broadcast_failed".to_owned(), "yt".to_owned()),
            ("call.transcription_failed".to_owned(), String::new()),
            ("call.closed_captions_failed".to_owned(), String::new()),
        ],
        "no recording was asked for: {events:#?}"
    );
    for event in &events {
        assert!(
            event["error"].as_str().unwrap().contains("source.duration_s"),
            "{event}"
        );
        assert!(
            !event.to_string().contains("sk-long-enough"),
            "no stream key in {event}"
        );
    }
}
