//! `egress render`: a raw recording composited again after the call. What a user would check:
//! rendered with the call's layout it shows what the live composite showed, at the same moments;
//! rendered with another layout it shows that layout; a manifest that does not check out is
//! refused with the field named.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const ALICE: &str = "#e53935";
const BOB: &str = "#1e88e5";

fn stored(event: &Value) -> PathBuf {
    let url = event["call_recording"]["url"].as_str().unwrap();
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

fn wall(text: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(text).unwrap()
}

/// Who the frame shows: the share of each participant's colour.
fn shares(frame: &Frame) -> (f64, f64) {
    (share_of(frame, hex_rgb(ALICE)), share_of(frame, hex_rgb(BOB)))
}

/// The call time, within a frame, at which `appears` first holds between `from` and `to` (call
/// time), in a file whose zero is call time `zero`.
fn first_frame_where(file: &Path, zero: f64, from: f64, to: f64, appears: impl Fn(&Frame) -> bool) -> f64 {
    let frames = frames_between(file, from - zero, to - zero, 64, 36);
    let index = frames
        .iter()
        .position(appears)
        .unwrap_or_else(|| panic!("{}: no such frame between {from} and {to} s", file.display()));
    from + index as f64 / 30.0
}

#[test]
fn a_raw_recording_rendered_again_shows_the_live_composite_and_other_layouts() {
    let scratch = Scratch::new("render");
    vp8_opus_clips(&scratch.dir, "alice", ALICE, 440);
    vp8_opus_clips(&scratch.dir, "bob", BOB, 660);
    let person = |name: &str, join: f64, leave: Option<f64>| {
        json!({ "user_id": name, "video": { "clip": format!("{name}.webm") },
                "audio": { "file": format!("{name}-voice.webm") }, "join_at_s": join, "leave_at_s": leave })
    };
    let job = json!({
        "egress_id": "eg_render",
        "call_cid": "default:render-call",
        "session_id": "se_render",
        "source": { "type": "synthetic", "duration_s": 14.0, "participants": [
            person("alice", 0.0, None), person("bob", 4.0, Some(8.0)), person("bob", 10.0, None) ] },
        "raw_recording": {},
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "calls/" }
    });
    let events = run_successfully(&scratch, &job);
    let ready = |filename_is: &dyn Fn(&str) -> bool, recording_type: &str| {
        events
            .iter()
            .find(|e| {
                e["type"] == "call.recording_ready"
                    && e["recording_type"] == recording_type
                    && filename_is(e["call_recording"]["filename"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("a {recording_type} file is announced: {:?}", event_types(&events)))
    };
    let live_event = ready(&|_| true, "composite");
    let live = stored(live_event);
    let manifest_path = stored(ready(&|name| name == "manifest.json", "raw"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    // A recording that starts with the job starts on the mix's first frame, call time 0, and
    // its event says so.
    let live_zero = 0.0;
    let announced = (wall(live_event["call_recording"]["start_time"].as_str().unwrap())
        - wall(manifest["call_started_at"].as_str().unwrap()))
    .num_milliseconds();
    assert!(
        announced.abs() <= 100,
        "the composite is dated {announced} ms into the call"
    );
    assert_eq!(manifest["layout"]["name"], "grid", "{manifest:#}");
    assert_eq!(manifest["quality"], "360p", "{manifest:#}");
    assert!(
        manifest["duration_s"]
            .as_f64()
            .is_some_and(|d| (d - 14.0).abs() < 0.2),
        "{manifest:#}"
    );

    // With the call's layout, at its quality.
    let out = scratch.dir.join("rendered");
    let done = try_render(&manifest_path, &out, &[]).unwrap_or_else(|e| panic!("render failed: {e:?}"));
    let rendered = PathBuf::from(done["file"].as_str().unwrap());
    assert_eq!(decode_errors(&rendered), "", "the render decodes");
    let info = probe(&rendered);
    let video = &streams_of(&info, "video")[0];
    assert_eq!(video["codec_name"], "h264", "{info}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(streams_of(&info, "audio")[0]["codec_name"], "aac", "{info}");
    let length = duration_s(&info);
    assert!((length - 14.0).abs() <= 0.2, "the render lasts {length} s");
    println!(
        "rendered {length:.2} s at {:.1}x real time",
        done["speed"].as_f64().unwrap()
    );

    // The same participants in the same tiles at sampled moments.
    for at in [2.0, 6.0, 9.0, 12.0] {
        let shown = Frame::at(&live, at - live_zero, 640, 360);
        let again = Frame::at(&rendered, at, 640, 360);
        for (x, y) in [(160, 180), (480, 180), (320, 180), (100, 60), (540, 300)] {
            let (a, b) = (shown.colour_at(x, y), again.colour_at(x, y));
            assert!(close(a, b), "at {at} s, ({x}, {y}): live {a:?}, rendered {b:?}");
        }
        let ((la, lb), (ra, rb)) = (shares(&shown), shares(&again));
        assert!(
            (la - ra).abs() <= 0.03 && (lb - rb).abs() <= 0.03,
            "at {at} s: live shows alice {la:.3} bob {lb:.3}, the render {ra:.3} {rb:.3}"
        );
    }
    // Bob's joins and leave happen on the same frame, within one frame of 30 fps.
    let bob_shows = |f: &Frame| share_of(f, hex_rgb(BOB)) >= 0.05;
    let bob_gone = |f: &Frame| share_of(f, hex_rgb(BOB)) < 0.01;
    for (what, from, to, holds) in [
        ("joins", 3.5, 4.6, &bob_shows as &dyn Fn(&Frame) -> bool),
        ("leaves", 7.5, 8.6, &bob_gone),
        ("returns", 9.5, 10.6, &bob_shows),
    ] {
        let in_live = first_frame_where(&live, live_zero, from, to, holds);
        let in_render = first_frame_where(&rendered, 0.0, from, to, holds);
        assert!(
            (in_live - in_render).abs() <= 1.0 / 30.0 + 0.005,
            "bob {what} at {in_live:.3} s live, {in_render:.3} s in the render"
        );
    }

    // With spotlight, at 720p: one large tile and a small one.
    std::fs::write(scratch.dir.join("spotlight.json"), r#"{"name": "spotlight"}"#).unwrap();
    let layout = scratch.dir.join("spotlight.json");
    let done = try_render(
        &manifest_path,
        &out,
        &["--layout", layout.to_str().unwrap(), "--quality", "720p"],
    )
    .unwrap_or_else(|e| panic!("render failed: {e:?}"));
    assert_eq!(done["layout"], "spotlight");
    let spotlit = PathBuf::from(done["file"].as_str().unwrap());
    let video = &streams_of(&probe(&spotlit), "video")[0];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let scene = expected_scene("spotlight", &json!({}), &["alice", "bob"], 1280, 720);
    let frame = Frame::at(&spotlit, 6.0, 1280, 720);
    let mut areas = Vec::new();
    for (user, colour) in [("alice", ALICE), ("bob", BOB)] {
        let tile = scene.tile_of(&format!("{user}/camera")).expect("both have tiles");
        let (x, y) = tile.rect.center();
        let seen = frame.colour_at(x, y);
        assert!(
            close(seen, hex_rgb(colour)),
            "{user}'s spotlight tile at ({x}, {y}) shows {seen:?}"
        );
        areas.push(tile.rect.w * tile.rect.h);
    }
    assert!(
        areas[0] >= 4 * areas[1] || areas[1] >= 4 * areas[0],
        "spotlight tiles: {areas:?}"
    );
    let (a, b) = shares(&frame);
    assert!(
        (a - b).abs() >= 0.2,
        "one participant fills the picture: alice {a:.3}, bob {b:.3}"
    );

    // The same as a job (what a fleet's worker runs): stored and announced as a composite.
    let manifest_in_job_folder = manifest_path.strip_prefix(&scratch.dir).unwrap();
    let render_job = json!({
        "egress_id": "eg_render_job",
        "call_cid": "default:render-call",
        "session_id": "se_render_job",
        "source": { "type": "render", "manifest": manifest_in_job_folder, "layout": { "name": "spotlight" } },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "rendered-by-job/" }
    });
    let events = run_successfully(&scratch, &render_job);
    assert_eq!(
        event_types(&events),
        [
            "call.recording_started",
            "call.recording_ready",
            "call.recording_stopped"
        ],
        "{events:#?}"
    );
    assert!(
        events.iter().all(|e| e["recording_type"] == "composite"),
        "{events:#?}"
    );
    let ready = &events[1];
    assert_eq!(
        ready["call_recording"]["start_time"], manifest["call_started_at"],
        "the render is dated to the call it replays"
    );
    let by_job = stored(ready);
    assert!(
        by_job.starts_with(scratch.out().join("rendered-by-job")),
        "{}",
        by_job.display()
    );
    let info = probe(&by_job);
    assert!((duration_s(&info) - 14.0).abs() <= 0.2, "{info}");
    let scene = expected_scene("spotlight", &json!({}), &["alice", "bob"], 640, 360);
    let frame = Frame::at(&by_job, 6.0, 640, 360);
    for (user, colour) in [("alice", ALICE), ("bob", BOB)] {
        let (x, y) = scene.tile_of(&format!("{user}/camera")).unwrap().rect.center();
        let seen = frame.colour_at(x, y);
        assert!(
            close(seen, hex_rgb(colour)),
            "{user}'s tile at ({x}, {y}) shows {seen:?}"
        );
    }
}

#[test]
fn a_render_that_cannot_be_done_says_which_field_is_wrong() {
    let scratch = Scratch::new("render-refused");
    let manifest = json!({
        "version": 1, "call_cid": "default:c", "egress_id": "eg", "session_id": "se",
        "call_started_at": "2026-12-03T10:00:00.000Z",
        "participants": [{ "user_id": "alice", "joined_at_s": 0.0 }],
        "files": [{ "filename": "raw_alice_camera.webm", "user_id": "alice", "track": "camera",
                    "codec": "vp8", "start_offset_s": 0.0, "end_offset_s": 4.0 }]
    });
    let path = scratch.dir.join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = scratch.dir.join("rendered");
    let (code, said) = try_render(&path, &out, &[]).expect_err("the file is missing");
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("files[0]") && said.contains("raw_alice_camera.webm"),
        "{said}"
    );

    let (code, said) = try_render(&path, &out, &["--quality", "4k"]).expect_err("no such quality");
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("--quality"), "{said}");

    std::fs::write(
        scratch.dir.join("layout.json"),
        r#"{"name": "grid", "options": {"grid.columns": "many"}}"#,
    )
    .unwrap();
    let layout = scratch.dir.join("layout.json");
    let (code, said) =
        try_render(&path, &out, &["--layout", layout.to_str().unwrap()]).expect_err("a bad option");
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("grid.columns"), "{said}");

    let mut newer = manifest.clone();
    newer["version"] = 2.into();
    std::fs::write(&path, newer.to_string()).unwrap();
    let (code, said) = try_render(&path, &out, &[]).expect_err("an unknown version");
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("version 2"), "{said}");
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing was written"
    );

    // A render job names its own mistakes: the manifest, and outputs a render cannot make.
    let job = json!({
        "call_cid": "default:c",
        "source": { "type": "render", "manifest": "manifest.json" },
        "recording": { "quality": "360p" },
        "raw_recording": {},
        "storage": { "storage_type": "local" }
    });
    let refused = egress()
        .arg("validate")
        .arg(scratch.write_job(&job))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("source.manifest") && said.contains("version 2"),
        "{said}"
    );
    assert!(said.contains("raw_recording"), "{said}");
}

/// Wall and CPU seconds of a child process run to its end (CPU from `time`).
fn timed(command: &str) -> (f64, f64) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("TIMEFORMAT='%U %S'; time ( {command} ) > /dev/null"))
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{command}: {text}");
    let cpu = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    (wall, cpu)
}

/// Render speed of a 60 s call of four (640x360 VP8 cameras with motion, Opus voices) into a
/// 720p grid, against ffmpeg doing the same work from the same raw files (decode four VP8 and
/// four Opus, scale into a 2x2 grid, mix, x264 at the worker's preset and bitrate, AAC), three
/// runs each, medians.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_render_speed_of_a_720p_grid_of_four() {
    let scratch = Scratch::new("render-bench");
    let (people, seconds) = (4, 60.0);
    for i in 0..people {
        moving_clip(&scratch.dir, &format!("p{i}"), 300 + 100 * i as u32, seconds);
    }
    let participants: Vec<Value> = (0..people)
        .map(|i| {
            json!({ "user_id": format!("p{i}"), "video": { "clip": format!("p{i}.webm") },
                    "audio": { "file": format!("p{i}-voice.webm") } })
        })
        .collect();
    let job = json!({
        "egress_id": "eg_render_bench",
        "call_cid": "default:render-bench",
        "source": { "type": "synthetic", "duration_s": seconds, "participants": participants },
        "raw_recording": {},
        "storage": { "storage_type": "local" }
    });
    let events = run_successfully(&scratch, &job);
    let manifest = events
        .iter()
        .find(|e| e["call_recording"]["filename"] == "manifest.json")
        .map(stored)
        .expect("the manifest is stored");
    let folder = manifest.parent().unwrap().to_owned();
    let render = format!(
        "{} render {} --out {} --quality 720p",
        env!("CARGO_BIN_EXE_egress"),
        manifest.display(),
        scratch.dir.join("rendered").display()
    );
    let inputs: String = (0..people)
        .map(|i| {
            format!(
                "-i {d}/raw_p{i}_camera.webm -i {d}/raw_p{i}_microphone.webm ",
                d = folder.display()
            )
        })
        .collect();
    let ffmpeg = format!(
        "ffmpeg -v error -y {inputs} -filter_complex \
         '[0:v]scale=640:360[a];[2:v]scale=640:360[b];[4:v]scale=640:360[c];[6:v]scale=640:360[d];\
          [a][b][c][d]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[v];[1:a][3:a][5:a][7:a]amix=inputs=4[s]' \
         -map '[v]' -map '[s]' -r 30 -c:v libx264 -preset veryfast -b:v 2500k -g 60 -c:a aac -b:a 128k \
         {}/ffmpeg-grid.mp4",
        scratch.dir.display()
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut ours, mut ours_cpu, mut theirs, mut theirs_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let (wall, cpu) = timed(&render);
        ours.push(wall);
        ours_cpu.push(cpu);
        let (wall, cpu) = timed(&ffmpeg);
        theirs.push(wall);
        theirs_cpu.push(cpu);
    }
    let (ours, ours_cpu, theirs, theirs_cpu) =
        (median(ours), median(ours_cpu), median(theirs), median(theirs_cpu));
    println!(
        "render: {seconds} s call of {people} into a 720p grid in {ours:.1} s ({:.2}x real time, {ours_cpu:.1} CPU s); \
         ffmpeg the same work in {theirs:.1} s ({:.2}x, {theirs_cpu:.1} CPU s); speed ratio {:.2} (goal >= 2x real time)",
        seconds / ours,
        seconds / theirs,
        theirs / ours
    );
}
