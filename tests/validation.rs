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
        stderr.contains("source.type: expected one of synthetic; got \"zoom\""),
        "{stderr}"
    );
    assert_eq!(event_types(&events), ["call.recording_failed"]);
    assert!(events[0]["error"].as_str().unwrap().contains("source.type"));
}

#[test]
fn times_outside_the_call_are_refused() {
    let mut job = valid_job();
    job["source"]["participants"] =
        json!([{ "user_id": "a", "join_at_s": 3, "leave_at_s": 2 }, { "user_id": "a", "join_at_s": 9 }]);
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
        stderr.contains("source.participants[1].user_id: expected a unique user id"),
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
    job["recording"]["layout"] = json!({ "name": "grid", "options": { "video.background_color": "blue" } });
    let (stderr, _) = refuse("bad-option", &job.to_string());
    assert!(
        stderr.contains("recording.layout.options.video.background_color: expected a colour like"),
        "{stderr}"
    );
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
