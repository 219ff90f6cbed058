//! End-to-end checks that the layout engine's scenes reach the recorded file: custom actions,
//! spotlight, single participant, speaking highlight, placeholders, scale modes and the logo.

mod common;

use common::*;
use egress::layout::{Rect, Scene};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

const RED: &str = "#e53935";
const BLUE: &str = "#1e88e5";
const GREEN: &str = "#43a047";
const GREY: &str = "#90a4ae";

fn person(id: &str, colour: &str, audio: &str, join_at_s: f64) -> Value {
    json!({ "user_id": id, "name": id, "video": { "color": colour }, "audio": audio, "join_at_s": join_at_s })
}

fn job(egress_id: &str, duration_s: f64, participants: Vec<Value>, layout: Value) -> Value {
    json!({
        "egress_id": egress_id,
        "call_cid": "default:layout-call",
        "source": { "type": "synthetic", "duration_s": duration_s, "participants": participants },
        "recording": { "quality": "720p", "layout": layout },
        "storage": { "storage_type": "local", "path": "recordings/" }
    })
}

fn rect_of<'a>(scene: &'a Scene, user: &str) -> &'a Rect {
    &scene
        .tiles
        .iter()
        .find(|t| t.user_id == user)
        .unwrap_or_else(|| panic!("{user} on screen"))
        .rect
}

fn assert_colour(frame: &Frame, (x, y): (i32, i32), colour: &str, what: &str) {
    let seen = frame.colour_at(x, y);
    assert!(
        close(seen, hex_rgb(colour)),
        "{what}: expected {colour} at ({x}, {y}), saw {seen:?}"
    );
}

#[test]
fn a_custom_action_switches_to_spotlight_when_the_third_participant_joins() {
    let scratch = Scratch::new("action-switch");
    let options = json!({
        "custom_actions": [{
            "action_type": "layout_override",
            "condition": { "participant_count": { "$gt": 2 } },
            "layout": "spotlight"
        }],
        "no.such_option": true
    });
    let people = vec![
        person("alice", RED, "silence", 0.0),
        person("bob", BLUE, "silence", 0.0),
        person("carol", GREEN, "silence", 2.5),
    ];
    let events = run_successfully(
        &scratch,
        &job(
            "eg_switch",
            5.0,
            people,
            json!({ "name": "grid", "options": options }),
        ),
    );
    let started = events
        .iter()
        .find(|e| e["type"] == "call.recording_started")
        .unwrap();
    assert!(
        started["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no.such_option"),
        "unknown option warned in the started event: {started}"
    );
    let file = ready_file(&events);

    let before = expected_scene("grid", &options, &["alice", "bob"], 1280, 720);
    let frame = Frame::at(&file, 1.5, 1280, 720);
    assert_colour(&frame, rect_of(&before, "alice").center(), RED, "grid, alice");
    assert_colour(&frame, rect_of(&before, "bob").center(), BLUE, "grid, bob");

    let after = expected_scene("grid", &options, &["alice", "bob", "carol"], 1280, 720);
    assert_eq!(after.layout, egress::layout::LayoutKind::Spotlight);
    let frame = Frame::at(&file, 4.0, 1280, 720);
    let main = rect_of(&after, "alice");
    assert!(main.w > 1000, "alice is in the spotlight: {main:?}");
    assert_colour(&frame, main.center(), RED, "spotlight, alice");
    assert_colour(&frame, rect_of(&after, "bob").center(), BLUE, "bar, bob");
    assert_colour(&frame, rect_of(&after, "carol").center(), GREEN, "bar, carol");
    // Where bob's grid tile was is now the spotlight.
    assert_colour(&frame, rect_of(&before, "bob").center(), RED, "bob's old place");
}

#[test]
fn the_speaking_participant_gets_the_highlight_border() {
    let scratch = Scratch::new("highlight");
    let options = json!({ "participant.video_border_width": 10, "participant.video_border_rounded": false });
    let people = vec![
        person("alice", RED, "sine", 0.0),
        person("bob", BLUE, "silence", 0.0),
    ];
    let events = run_successfully(
        &scratch,
        &job(
            "eg_highlight",
            4.0,
            people,
            json!({ "name": "grid", "options": options }),
        ),
    );
    let frame = Frame::at(&ready_file(&events), 3.0, 1280, 720);
    let scene = expected_scene("grid", &options, &["alice", "bob"], 1280, 720);
    let (alice, bob) = (rect_of(&scene, "alice"), rect_of(&scene, "bob"));
    let border = |r: &Rect| frame.pixel_at(r.x + 5, r.center().1);
    assert!(
        close(border(alice), hex_rgb("#7CFC00")),
        "speaker highlighted: {:?}",
        border(alice)
    );
    assert!(
        close(border(bob), hex_rgb("#CCCCCC")),
        "silent participant plain border: {:?}",
        border(bob)
    );
    assert_colour(&frame, alice.center(), RED, "alice's video inside the border");
}

#[test]
fn a_participant_without_video_gets_a_placeholder_and_fit_letterboxes() {
    let scratch = Scratch::new("placeholder");
    let options = json!({
        "participant.placeholder_background_color": "#ffe082",
        "participant.aspect_ratio": "1/1",
        "video.scale_mode": "fit",
        "video.background_color": "#263238",
    });
    let mut people = vec![
        person("alice", RED, "silence", 0.0),
        person("bob", BLUE, "sine", 0.0),
    ];
    people[1]["video"] = Value::Null;
    let events = run_successfully(
        &scratch,
        &job(
            "eg_placeholder",
            3.0,
            people,
            json!({ "name": "grid", "options": options }),
        ),
    );
    let frame = Frame::at(&ready_file(&events), 2.0, 1280, 720);
    let users = ["alice", "bob"];
    let scene = expected_scene("grid", &options, &users, 1280, 720);
    let (alice, bob) = (rect_of(&scene, "alice"), rect_of(&scene, "bob"));
    assert!(alice.w.abs_diff(alice.h) <= 2, "square tiles: {alice:?}");
    // Bob has no video: his tile is the placeholder colour (away from the initials).
    assert_colour(
        &frame,
        (bob.x + bob.w as i32 / 4, bob.y + bob.h as i32 / 4),
        "#ffe082",
        "placeholder",
    );
    // Alice's 16:9 video fits her square tile: bars of canvas above and below it.
    assert_colour(&frame, alice.center(), RED, "alice");
    assert_colour(
        &frame,
        (alice.center().0, alice.y + 20),
        "#263238",
        "letterbox above",
    );
    assert_colour(
        &frame,
        (alice.center().0, alice.bottom() - 20),
        "#263238",
        "letterbox below",
    );
}

#[test]
fn fill_crops_to_the_tile_so_the_tile_is_covered() {
    let scratch = Scratch::new("fill");
    let options = json!({ "participant.aspect_ratio": "1/1", "video.background_color": "#263238",
                          "participant.video_border_width": false, "participant.video_border_rounded": false,
                          "participant.label_display": false });
    let people = vec![person("alice", RED, "silence", 0.0)];
    let events = run_successfully(
        &scratch,
        &job(
            "eg_fill",
            3.0,
            people,
            json!({ "name": "grid", "options": options }),
        ),
    );
    let frame = Frame::at(&ready_file(&events), 2.0, 1280, 720);
    let scene = expected_scene("grid", &options, &["alice"], 1280, 720);
    let alice = rect_of(&scene, "alice");
    for (x, y) in [
        (alice.x + 6, alice.y + 6),
        (alice.right() - 7, alice.bottom() - 7),
        alice.center(),
    ] {
        assert_colour(&frame, (x, y), RED, "the whole square tile is video");
    }
    assert_colour(
        &frame,
        (alice.x - 10, alice.center().1),
        "#263238",
        "canvas beside the tile",
    );
}

#[test]
fn single_participant_shows_the_screen_share_with_the_presenter_inset() {
    let scratch = Scratch::new("single");
    let mut people = vec![
        person("alice", RED, "silence", 0.0),
        person("bob", BLUE, "silence", 0.0),
    ];
    people[1]["screenshare"] = json!({ "color": GREY });
    let options = json!({ "video.screenshare_scale_mode": "fill" });
    let events = run_successfully(
        &scratch,
        &job(
            "eg_single",
            3.0,
            people,
            json!({ "name": "single-participant", "options": options }),
        ),
    );
    let frame = Frame::at(&ready_file(&events), 2.0, 1280, 720);
    assert_colour(&frame, (400, 300), GREY, "bob's screen fills the output");
    let scene = egress::layout::LayoutPlan::new(
        "single-participant",
        &options.as_object().unwrap().clone().into_iter().collect(),
    )
    .unwrap()
    .scene(
        &[
            egress::layout::ParticipantView {
                user_id: "alice".into(),
                name: "alice".into(),
                camera: Some("alice/camera".into()),
                ..Default::default()
            },
            egress::layout::ParticipantView {
                user_id: "bob".into(),
                name: "bob".into(),
                camera: Some("bob/camera".into()),
                screenshare: Some("bob/screenshare".into()),
                ..Default::default()
            },
        ],
        1280,
        720,
    );
    let pip = scene.tile_of("bob/camera").expect("presenter inset").rect;
    assert_colour(&frame, pip.center(), BLUE, "presenter's camera inset");
    assert!(!frame_has(&frame, RED), "alice is not shown");
}

fn frame_has(frame: &Frame, colour: &str) -> bool {
    let want = hex_rgb(colour);
    (0..frame.height as i32).step_by(20).any(|y| {
        (0..frame.width as i32)
            .step_by(20)
            .any(|x| close(frame.pixel_at(x, y), want))
    })
}

/// A static file server on loopback for the logo.
struct Http {
    child: Child,
    port: u16,
}

impl Http {
    fn serve(dir: &std::path::Path) -> Http {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Http { child, port }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_logo_is_fetched_over_http_and_drawn_with_the_title() {
    let scratch = Scratch::new("logo");
    let server = Http::serve(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    let options = json!({
        "logo.image_url": format!("http://127.0.0.1:{}/logo.png", server.port),
        "logo.horizontal_position": "left",
        "title.text": "Quarterly review",
        "title.color": "#fdd835",
        "title.horizontal_position": "right",
        "video.background_color": "#f2f2f2",
    });
    let people = vec![person("alice", RED, "silence", 0.0)];
    let events = run_successfully(
        &scratch,
        &job(
            "eg_logo",
            3.0,
            people,
            json!({ "name": "grid", "options": options }),
        ),
    );
    drop(server);
    let frame = Frame::at(&ready_file(&events), 2.0, 1280, 720);
    // The logo is 72 px high (a tenth of 720) at 16 px from the top-left corner: its yellow
    // disc is centred 36 px in, on a blue badge.
    assert_colour(&frame, (16 + 36, 16 + 36), "#ffc107", "logo disc");
    assert_colour(&frame, (16 + 120, 16 + 36), "#3949ab", "logo badge");
    assert_colour(
        &frame,
        (16 + 190, 16 + 36),
        "#f2f2f2",
        "transparent end of the logo",
    );
    // The tile sits below the logo's band.
    let scene = expected_scene("grid", &options, &["alice"], 1280, 720);
    assert!(
        rect_of(&scene, "alice").y >= 16 + 72,
        "{:?}",
        rect_of(&scene, "alice")
    );
    assert_colour(&frame, rect_of(&scene, "alice").center(), RED, "alice");
    let title_band = (16..16 + 40).flat_map(|y| (900..1264).map(move |x| (x, y)));
    let yellow = title_band
        .filter(|&(x, y)| close(frame.pixel_at(x, y), hex_rgb("#fdd835")))
        .count();
    assert!(
        yellow > 200,
        "title text drawn at the top right: {yellow} yellow pixels"
    );
}

#[test]
fn fill_follows_the_tile_when_its_aspect_changes_mid_call() {
    // Alice alone fills the spotlight; when Bob joins, the bar takes space and her tile gets
    // wider. Her SMPTE bars must be cropped again, not stretched: the edge between the colour
    // bars (two thirds down the source) and the castellations lands where the crop puts it.
    let scratch = Scratch::new("refill");
    let mut people = vec![
        person("alice", RED, "silence", 0.0),
        person("bob", BLUE, "silence", 1.5),
    ];
    people[0]["video"] = json!({ "pattern": "smpte" });
    let options = json!({ "participant.label_display": false });
    let events = run_successfully(
        &scratch,
        &job(
            "eg_refill",
            3.5,
            people,
            json!({ "name": "spotlight", "options": options }),
        ),
    );
    let file = ready_file(&events);
    for (at, users) in [(1.0, vec!["alice"]), (3.0, vec!["alice", "bob"])] {
        let frame = Frame::at(&file, at, 1280, 720);
        let main = *rect_of(&expected_scene("spotlight", &options, &users, 1280, 720), "alice");
        // The source is 640x360, cropped top and bottom to the tile's aspect, then scaled.
        let kept = (640.0 * f64::from(main.h) / f64::from(main.w)).min(360.0);
        let top_cut = (360.0 - kept) / 2.0;
        let expected = f64::from(main.y) + (240.0 - top_cut) * f64::from(main.h) / kept;
        let x = main.x + 40;
        let edge = (main.y + 10..main.bottom())
            .find(|&y| close(frame.pixel_at(x, y), [0, 0, 255]))
            .unwrap_or_else(|| panic!("at {at}s no blue castellation below the white bar in {main:?}"));
        assert!(
            (f64::from(edge) - expected).abs() <= 6.0,
            "at {at}s: bars end at y={edge}, expected {expected:.0} for tile {main:?}"
        );
    }
}

#[test]
fn joins_and_leaves_relayout_on_the_next_frame_without_blank_frames() {
    let scratch = Scratch::new("smooth");
    let people = vec![
        person("alice", RED, "silence", 0.0),
        person("bob", BLUE, "silence", 0.0),
        json!({ "user_id": "carol", "name": "carol", "video": { "color": GREEN }, "audio": "silence",
                "join_at_s": 1.5, "leave_at_s": 3.0 }),
    ];
    let events = run_successfully(
        &scratch,
        &job("eg_smooth", 4.0, people, json!({ "name": "grid" })),
    );
    let frames = frames_between(&ready_file(&events), 1.0, 3.6, 160, 90);
    assert!(frames.len() >= 70, "{} frames", frames.len());
    for (i, frame) in frames.iter().enumerate() {
        for colour in [RED, BLUE] {
            let share = share_of(frame, hex_rgb(colour));
            assert!(
                share > 0.08,
                "frame {i} after 1.0 s: {colour} covers only {:.1}%",
                share * 100.0
            );
        }
    }
    // Carol appears within a frame or two of 1.5 s and is gone within a frame or two of 3.0 s.
    let with_green: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| share_of(f, hex_rgb(GREEN)) > 0.05)
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (with_green[0], *with_green.last().unwrap());
    assert!(
        (14..=17).contains(&first),
        "carol first seen at frame {first} (1.5 s is frame 15)"
    );
    assert!(
        (58..=61).contains(&last),
        "carol last seen at frame {last} (3.0 s is frame 60)"
    );
    assert_eq!(
        with_green.len(),
        last - first + 1,
        "carol shown in every frame of her stay"
    );
}

#[test]
fn single_participant_follows_a_speaker_whose_sound_arrives_encoded() {
    let scratch = Scratch::new("encoded-speaker");
    // Opus in WebM, as every Janus and WHEP track arrives: the level is measured after decoding.
    let speech = scratch.dir.join("tone.webm");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=8:sample_rate=48000",
        ])
        .args(["-c:a", "libopus", "-b:a", "48k"])
        .arg(&speech)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg made the Opus clip");
    let options = json!({ "participant.video_border_width": false, "participant.label_display": false });
    let mut bob = person("bob", BLUE, "silence", 0.0);
    bob["audio"] = json!({ "file": "tone.webm" });
    let people = vec![person("alice", RED, "silence", 0.0), bob];
    let events = run_successfully(
        &scratch,
        &job(
            "eg_encoded_speaker",
            5.0,
            people,
            json!({ "name": "single-participant", "options": options }),
        ),
    );
    let frame = Frame::at(&ready_file(&events), 4.0, 1280, 720);
    assert_colour(
        &frame,
        (640, 360),
        BLUE,
        "the speaker, heard through Opus, is shown",
    );
}

/// The white left half of a sender's intra copy: the tile was decoded from a keyframe the
/// worker asked for, not from the stream it would have decoded all along.
fn from_requested_keyframe(frame: &Frame) -> bool {
    close(
        frame.colour_at(frame.width as i32 / 4, frame.height as i32 / 2),
        [255, 255, 255],
    )
}

#[test]
fn a_participant_nobody_sees_is_not_decoded_and_shows_from_a_keyframe_asked_for() {
    let scratch = Scratch::new("hidden-decode");
    // Alice is featured until she leaves at 4 s; Bob, hidden until then, turns blue at 6 s.
    sender_clips(&scratch.dir, "alice", RED, RED, 10.0);
    sender_clips(&scratch.dir, "bob", GREEN, BLUE, 6.0);
    let keyed = |name: &str| json!({ "keyed_clip": { "clip": format!("{name}.webm"), "keyframes": format!("{name}-intra.webm") } });
    let options = json!({ "participant.video_border_width": false, "participant.label_display": false });
    let job = json!({
        "egress_id": "eg_hidden_decode",
        "call_cid": "default:hidden-decode",
        "source": { "type": "synthetic", "duration_s": 9, "participants": [
            { "user_id": "alice", "video": keyed("alice"), "audio": null, "leave_at_s": 4 },
            { "user_id": "bob", "video": keyed("bob"), "audio": null }
        ]},
        "recording": { "quality": "360p", "layout": { "name": "single-participant", "options": options } },
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "storage": { "storage_type": "local", "path": "recordings/" }
    });
    for decode_every_frame in [false, true] {
        let args: &[&str] = if decode_every_frame {
            &["--decode-every-frame"]
        } else {
            &[]
        };
        let what = if decode_every_frame {
            "decoding every frame"
        } else {
            "skipping hidden decodes"
        };
        let events = Running::spawn(&scratch, &job, args).finish(std::time::Duration::from_secs(60));
        let file = ready_file(&events);
        let before = Frame::at(&file, 3.0, 640, 360);
        assert_colour(
            &before,
            (480, 180),
            RED,
            &format!("{what}: alice featured at 3 s"),
        );
        assert!(
            !from_requested_keyframe(&before),
            "{what}: alice decoded throughout"
        );
        // Within a second of her leaving, Bob is on screen.
        let after = Frame::at(&file, 5.0, 640, 360);
        assert_colour(&after, (480, 180), GREEN, &format!("{what}: bob shown by 5 s"));
        assert_eq!(
            from_requested_keyframe(&after),
            !decode_every_frame,
            "{what}: bob's tile at 5 s from a keyframe asked for when he was shown"
        );
        // From that keyframe on his stream is decoded: his change of colour shows.
        let later = Frame::at(&file, 7.5, 640, 360);
        assert_colour(
            &later,
            (480, 180),
            BLUE,
            &format!("{what}: bob's stream decoded after he shows"),
        );
        // Stills of the hidden participant still come every 2 s, each from one keyframe.
        let stills: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "call.frame_recording_ready" && user_of(e) == "bob")
            .collect();
        let first = stills.iter().map(|e| captured_s(e)).fold(f64::INFINITY, f64::min);
        let hidden: Vec<&&Value> = stills.iter().filter(|e| captured_s(e) - first < 3.5).collect();
        assert_eq!(hidden.len(), 2, "{what}: bob's stills while hidden");
        let second = hidden
            .iter()
            .max_by(|a, b| captured_s(a).total_cmp(&captured_s(b)))
            .unwrap();
        let img = image_of(second);
        let white = close(
            img.get_pixel(img.width() / 4, img.height() / 2).0,
            [255, 255, 255],
        );
        assert_eq!(
            white, !decode_every_frame,
            "{what}: bob's second still from a keyframe asked for"
        );
    }
}
