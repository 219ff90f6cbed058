//! Frame recording for moderation: a still of every participant's video per interval, stored
//! and announced one event per image.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const RED: &str = "#e53935";
const BLUE: &str = "#1e88e5";
const GREEN: &str = "#43a047";

fn ready(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect()
}

#[test]
fn every_participant_gets_a_still_per_interval_with_one_event_each() {
    let scratch = Scratch::new("frames");
    let job = json!({
        "egress_id": "eg_frames",
        "call_cid": "default:frames-call",
        "session_id": "se_frames",
        "source": { "type": "synthetic", "duration_s": 12, "participants": [
            { "user_id": "alice", "name": "Alice", "roles": ["host"], "video": { "color": RED } },
            { "user_id": "bob", "video": { "color": BLUE }, "screenshare": { "color": "#fdd835" } },
            { "user_id": "carol", "video": { "color": GREEN } },
            { "user_id": "dave", "video": null },
            { "user_id": "erin", "video": { "color": RED }, "join_at_s": 5 }
        ]},
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "storage": { "storage_type": "local", "path": "moderation" }
    });
    let events = run_successfully(&scratch, &job);
    let types = event_types(&events);
    assert_eq!(
        types.first().map(String::as_str),
        Some("call.frame_recording_started"),
        "{types:?}"
    );
    assert_eq!(
        types.last().map(String::as_str),
        Some("call.frame_recording_stopped"),
        "{types:?}"
    );

    let mut by_track: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for event in ready(&events) {
        assert_eq!(event["session_id"], "se_frames");
        assert_eq!(event["egress_id"], "eg_frames");
        by_track
            .entry((user_of(event), event["track_type"].as_str().unwrap().to_owned()))
            .or_default()
            .push(event);
    }
    let tracks: Vec<(&str, &str)> = by_track.keys().map(|(u, t)| (u.as_str(), t.as_str())).collect();
    assert_eq!(
        tracks,
        [
            ("alice", "TRACK_TYPE_VIDEO"),
            ("bob", "TRACK_TYPE_SCREEN_SHARE"),
            ("bob", "TRACK_TYPE_VIDEO"),
            ("carol", "TRACK_TYPE_VIDEO"),
            ("erin", "TRACK_TYPE_VIDEO"),
        ],
        "a still of every video track, none for a participant without video"
    );
    let colours = [("alice", RED), ("bob", BLUE), ("carol", GREEN), ("erin", RED)];
    for ((user, track), list) in &by_track {
        let expected = if user == "erin" { 3..=4 } else { 5..=6 };
        let times: Vec<f64> = list.iter().map(|e| captured_s(e)).collect();
        assert!(
            expected.contains(&list.len()),
            "{user} {track}: {} images ({times:?})",
            list.len()
        );
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                (gap - 2.0).abs() <= 0.3,
                "{user} {track}: stills {gap:.3} s apart ({times:?})"
            );
        }
        for event in list {
            let img = image_of(event);
            let colour = match track.as_str() {
                "TRACK_TYPE_SCREEN_SHARE" => "#fdd835",
                _ => colours.iter().find(|(u, _)| u == user).unwrap().1,
            };
            let share = image_share_of(&img, hex_rgb(colour));
            assert!(
                share > 0.9,
                "{user} {track}: {:.0} % of the image is {colour}",
                share * 100.0
            );
            assert_eq!(img.dimensions(), (640, 360), "fits the 360p box keeping 16:9");
        }
    }
    let erin_first = captured_s(by_track[&("erin".into(), "TRACK_TYPE_VIDEO".into())][0]);
    let alice_first = captured_s(by_track[&("alice".into(), "TRACK_TYPE_VIDEO".into())][0]);
    assert!(
        (erin_first - alice_first - 5.0).abs() <= 0.3,
        "a late joiner's stills start when she joins ({:.3} s after the first)",
        erin_first - alice_first
    );
    let alice = by_track[&("alice".into(), "TRACK_TYPE_VIDEO".into())][0];
    assert_eq!(alice["users"]["alice"]["name"], "Alice");
    assert_eq!(alice["users"]["alice"]["role"], "host");

    // Events and stored files match one to one, under the predictable key.
    let announced: BTreeSet<PathBuf> = ready(&events)
        .iter()
        .map(|e| PathBuf::from(e["url"].as_str().unwrap().strip_prefix("file://").unwrap()))
        .collect();
    assert_eq!(announced.len(), ready(&events).len(), "one file per event");
    let root = scratch
        .out()
        .join("moderation/frames/default_frames-call/se_frames");
    let stored: BTreeSet<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    assert_eq!(
        stored, announced,
        "every stored image is announced and every announced one stored"
    );
    for path in &stored {
        let relative = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = relative.split('/').collect();
        assert_eq!(parts.len(), 3, "USER/TRACK/TIME.jpg: {relative}");
        assert!(["camera", "screenshare"].contains(&parts[1]), "{relative}");
    }
}

#[test]
fn stills_come_with_a_recording_in_the_same_job() {
    let scratch = Scratch::new("frames-rec");
    let job = json!({
        "egress_id": "eg_frames_rec",
        "call_cid": "default:frames-rec",
        "source": { "type": "synthetic", "duration_s": 7, "participants": [
            { "user_id": "alice", "video": { "color": RED } },
            { "user_id": "bob", "video": { "color": BLUE } }
        ]},
        "recording": { "quality": "480p" },
        "frame_recording": { "capture_interval_in_seconds": 3, "quality": "720p" }
    });
    let events = run_successfully(&scratch, &job);
    let stills = ready(&events);
    for user in ["alice", "bob"] {
        let count = stills.iter().filter(|e| user_of(e) == user).count();
        assert_eq!(count, 3, "{user}: stills at 0, 3 and 6 s of a 7 s call");
    }
    let file = ready_file(&events);
    let duration = duration_s(&probe(&file));
    assert!(
        (duration - 7.0).abs() <= 0.1,
        "the recording is whole: {duration} s"
    );
    let types = event_types(&events);
    for kind in [
        "call.recording_started",
        "call.frame_recording_started",
        "call.recording_ready",
        "call.frame_recording_stopped",
    ] {
        assert!(types.iter().any(|t| t == kind), "{kind} in {types:?}");
    }
}

/// Which copy a still came from (white left half: the intra copy) and its colour (right half).
fn origin_and_colour(img: &image::RgbImage) -> (bool, [u8; 3]) {
    let (w, h) = img.dimensions();
    let left = img.get_pixel(w / 4, h / 2).0;
    let right = img.get_pixel(3 * w / 4, h / 2).0;
    (close(left, [255, 255, 255]), right)
}

#[test]
fn frames_only_jobs_decode_just_the_keyframes_they_ask_the_sender_for() {
    let scratch = Scratch::new("frames-keyed");
    sender_clips(&scratch.dir, "alice", RED, BLUE, 5.0);
    sender_clips(&scratch.dir, "bob", GREEN, "#fdd835", 3.0);
    let keyed = |name: &str| json!({ "keyed_clip": { "clip": format!("{name}.webm"), "keyframes": format!("{name}-intra.webm") } });
    let job = json!({
        "egress_id": "eg_keyed",
        "call_cid": "default:keyed",
        "source": { "type": "synthetic", "duration_s": 11, "participants": [
            { "user_id": "alice", "video": keyed("alice"), "audio": null },
            { "user_id": "bob", "video": keyed("bob"), "audio": null, "join_at_s": 3 }
        ]},
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" }
    });
    // (user, colour before the switch, after it, switch time after joining, join time)
    let clips = [
        ("alice", RED, BLUE, 5.0, 0.0),
        ("bob", GREEN, "#fdd835", 3.0, 3.0),
    ];
    for decode_every_frame in [false, true] {
        let args: &[&str] = if decode_every_frame {
            &["--decode-every-frame"]
        } else {
            &[]
        };
        let events = Running::spawn(&scratch, &job, args).finish(std::time::Duration::from_secs(60));
        let stills = ready(&events);
        let first_s = stills.iter().map(|e| captured_s(e)).fold(f64::INFINITY, f64::min);
        for (user, before, after, switch_s, join_s) in clips {
            let mine: Vec<&&Value> = stills.iter().filter(|e| user_of(e) == user).collect();
            let expected = if user == "alice" { 5..=6 } else { 4..=5 };
            assert!(expected.contains(&mine.len()), "{user}: {} stills", mine.len());
            let times: Vec<f64> = mine.iter().map(|e| captured_s(e) - first_s).collect();
            assert!(
                (times[0] - join_s).abs() <= 0.3,
                "{user}: first still at {times:?}"
            );
            for pair in times.windows(2) {
                assert!(
                    (pair[1] - pair[0] - 2.0).abs() <= 0.3,
                    "{user}: stills at {times:?}"
                );
            }
            for (i, event) in mine.iter().enumerate() {
                let (from_intra, colour) = origin_and_colour(&image_of(event));
                let since_join = times[i] - join_s;
                // The first still is the sender's own first keyframe. After it, the keyframe path
                // has only what it asked for: the sender's answers from the intra copy.
                let expect_intra = !decode_every_frame && i > 0;
                assert_eq!(
                    from_intra, expect_intra,
                    "{user} still {i} at {since_join:.2} s (decode every frame: {decode_every_frame})"
                );
                if (since_join - switch_s).abs() > 0.2 {
                    let shown = if since_join < switch_s { before } else { after };
                    assert!(
                        close(colour, hex_rgb(shown)),
                        "{user} still {i} at {since_join:.2} s is {colour:?}, the clip shows {shown} then"
                    );
                }
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_thumbnail_is_the_composite_replaced_under_one_key_every_interval() {
    let scratch = Scratch::new("thumbnails");
    // Red alone, then red and blue side by side from 5 s.
    let job = json!({
        "egress_id": "eg_thumbs",
        "call_cid": "default:thumbs",
        "source": { "type": "synthetic", "duration_s": 9, "participants": [
            { "user_id": "alice", "video": { "color": RED } },
            { "user_id": "bob", "video": { "color": BLUE }, "join_at_s": 5 } ] },
        "recording": { "quality": "720p", "layout": { "name": "grid" } },
        "thumbnails": { "enabled": true, "interval_s": 2 },
        "storage": { "storage_type": "local", "path": "calls/" }
    });
    let events = run_successfully(&scratch, &job);
    let thumbnails: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.thumbnail_ready")
        .collect();
    assert!(
        (4..=5).contains(&thumbnails.len()),
        "one every 2 s of a 9 s call: {thumbnails:#?}"
    );
    let urls: BTreeSet<&str> = thumbnails
        .iter()
        .map(|t| t["image_url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 1, "one stable key: {urls:?}");
    let url = *urls.iter().next().unwrap();
    assert!(
        url.ends_with("/calls/thumbnails/default_thumbs/thumbnail.jpg"),
        "{url}"
    );
    // The stored one is the last: red and blue side by side, 320 px wide at the composite's aspect.
    let path = PathBuf::from(url.strip_prefix("file://").unwrap());
    let last = image::open(&path).unwrap().to_rgb8();
    assert_eq!(last.dimensions(), (320, 180));
    let at = |x: u32| {
        let p = last.get_pixel(x, 90);
        [p[0], p[1], p[2]]
    };
    assert!(
        close(at(80), hex_rgb(RED)) && close(at(240), hex_rgb(BLUE)),
        "{:?} {:?}",
        at(80),
        at(240)
    );
    let times: Vec<&str> = thumbnails
        .iter()
        .map(|t| t["captured_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "announced in the order taken");
    // A thumbnail is a picture of the composite: without one the job is refused.
    let mut alone = job.clone();
    alone.as_object_mut().unwrap().remove("recording");
    alone["frame_recording"] = json!({});
    let path = scratch.dir.join("alone.json");
    std::fs::write(&path, alone.to_string()).unwrap();
    let out = egress().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("thumbnails: expected a composite output"),
        "{stderr}"
    );
}
