//! Broadcast outputs end to end: live HLS played by a real browser from the storage folder,
//! RTMP pushes to nginx-rtmp surviving a server restart, one encoder per size, and MP4 parts.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RED: &str = "#e53935";
const GREEN: &str = "#43a047";

fn participants() -> Value {
    json!([
        { "user_id": "alice", "name": "Alice", "video": { "color": RED }, "audio": "sine" },
        { "user_id": "bob", "name": "Bob", "video": { "pattern": "ball" }, "audio": "sine" },
        { "user_id": "carol", "name": "Carol", "video": { "color": GREEN } }
    ])
}

fn path_of(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").expect("a file:// url"))
}

/// The `#EXT-X-STREAM-INF` attributes and URI of each variant of a master playlist.
fn variants(master: &str) -> Vec<(BTreeMap<String, String>, String)> {
    let lines: Vec<&str> = master.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.strip_prefix("#EXT-X-STREAM-INF:").map(|a| (i, a)))
        .map(|(i, attributes)| {
            let mut map = BTreeMap::new();
            let mut rest = attributes;
            while let Some((key, after)) = rest.split_once('=') {
                let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                    let (v, n) = quoted.split_once('"').unwrap();
                    (v, n.trim_start_matches(','))
                } else {
                    after.split_once(',').unwrap_or((after, ""))
                };
                map.insert(key.to_owned(), value.to_owned());
                rest = next;
            }
            (map, lines[i + 1].to_owned())
        })
        .collect()
}

/// Segment file names and durations of a media playlist.
fn segments(playlist: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut duration = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse().ok());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push((
                line.trim().to_owned(),
                duration.take().expect("EXTINF before the URI"),
            ));
        }
    }
    out
}

/// Flags of the first video packet of a file ("K_" for a keyframe).
fn first_video_packet_flags(file: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags",
        ])
        .args(["-read_intervals", "%+#1", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Serves a folder over HTTP on loopback.
fn http_server(root: &Path) -> (Service, u16) {
    let port = free_port();
    let service = Service::start(
        "http.server",
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(root),
    );
    wait_for_port(port, Duration::from_secs(10));
    (service, port)
}

/// The live tests run one at a time: a 720p+360p ladder played in Chromium next to another
/// real-time encode overloads two cores, and a live pipeline starved of CPU drops media, which
/// is not what these tests are about.
static REAL_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn hls_ladder_plays_live_in_a_browser_and_ends_with_endlist() {
    let _alone = alone();
    let scratch = Scratch::new("hls");
    let call_s = 30.0;
    let job = json!({
        "egress_id": "eg_hls",
        "call_cid": "default:hls-call",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": participants() },
        "hls": { "quality_tracks": ["720p", "360p"], "layout": { "name": "grid" }, "segment_duration_s": 2 },
        "storage": { "storage_type": "local", "path": "broadcasts" }
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    let started = running.wait_for("call.hls_broadcasting_started", Duration::from_secs(20));
    let master_path = path_of(started["hls_playlist_url"].as_str().expect("hls_playlist_url"));
    assert!(
        master_path.starts_with(scratch.out().join("broadcasts/hls/eg_hls")),
        "master under the storage prefix: {}",
        master_path.display()
    );
    let master = std::fs::read_to_string(&master_path).unwrap();
    let variants = variants(&master);
    assert_eq!(variants.len(), 2, "two renditions: {master}");
    let expected = [
        ("1280x720", "avc1.64001f,mp4a.40.2"),
        ("640x360", "avc1.64001e,mp4a.40.2"),
    ];
    for ((attributes, _), (resolution, codecs)) in variants.iter().zip(expected) {
        assert_eq!(attributes["RESOLUTION"], resolution, "{master}");
        assert_eq!(attributes["CODECS"], codecs, "{master}");
    }
    let hls_root = master_path.parent().unwrap().to_owned();
    let playlist_of = |uri: &str| hls_root.join(uri);
    for (_, uri) in &variants {
        let live = std::fs::read_to_string(playlist_of(uri)).unwrap();
        assert!(
            !live.contains("#EXT-X-ENDLIST"),
            "a live playlist is open: {live}"
        );
        for (segment, _) in segments(&live) {
            assert!(
                playlist_of(uri).parent().unwrap().join(&segment).is_file(),
                "{segment} is listed before it is stored"
            );
        }
    }

    // A viewer plays from the storage folder while the call goes on.
    let (_server, port) = http_server(&scratch.out());
    let relative = master_path.strip_prefix(scratch.out()).unwrap();
    let report = play_in_browser(&format!("http://127.0.0.1:{port}/{}", relative.display()));
    assert_eq!(
        report["supported"], true,
        "MSE with H.264/AAC in Chromium: {report}"
    );
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["hlsErrors"], json!([]), "{report}");
    let heights: Vec<u64> = report["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["height"].as_u64().unwrap())
        .collect();
    assert_eq!(
        heights,
        [360, 720],
        "hls.js orders renditions by bitrate: {report}"
    );
    let times = playback_times(&report);
    assert!(
        times.last().unwrap() - times[0] >= 3.0,
        "currentTime advances: {times:?}"
    );
    assert!(times.windows(2).all(|w| w[1] >= w[0]), "{times:?}");
    assert_eq!(
        report["heightBefore"], 360,
        "started on the first rendition: {report}"
    );
    assert_eq!(report["switched"], 1, "switched rendition: {report}");
    assert_eq!(
        report["heightAfter"], 720,
        "the picture follows the switch: {report}"
    );

    let events = running.finish(Duration::from_secs(60));
    assert_eq!(
        event_types(&events),
        ["call.hls_broadcasting_started", "call.hls_broadcasting_stopped"]
    );

    // At the end: closed playlists, every rendition valid, aligned, and within its BANDWIDTH.
    let mut durations = Vec::new();
    for ((attributes, uri), (resolution, _)) in variants.iter().zip(expected) {
        let playlist_path = playlist_of(uri);
        let text = std::fs::read_to_string(&playlist_path).unwrap();
        assert!(
            text.trim_end().ends_with("#EXT-X-ENDLIST"),
            "closed at stop: {text}"
        );
        let list = segments(&text);
        let total: f64 = list.iter().map(|(_, d)| d).sum();
        assert!(
            (total - call_s).abs() <= 0.5,
            "{uri}: segments add up to {total} s for a {call_s} s call: {text}"
        );
        let info = probe(&playlist_path);
        let video = streams_of(&info, "video");
        assert_eq!(video[0]["codec_name"], "h264", "{uri}");
        assert_eq!(
            format!("{}x{}", video[0]["width"], video[0]["height"]),
            resolution,
            "{uri}"
        );
        assert_eq!(streams_of(&info, "audio")[0]["codec_name"], "aac", "{uri}");
        assert_eq!(decode_errors(&playlist_path), "", "{uri} decodes cleanly");
        let bandwidth: f64 = attributes["BANDWIDTH"].parse().unwrap();
        let dir = playlist_path.parent().unwrap();
        for (i, (segment, duration)) in list.iter().enumerate() {
            let file = dir.join(segment);
            assert_eq!(
                first_video_packet_flags(&file).chars().next(),
                Some('K'),
                "{segment} opens on a keyframe"
            );
            let bits = std::fs::metadata(&file).unwrap().len() as f64 * 8.0;
            // The last segment may be a short tail, where one keyframe weighs a lot.
            if i + 1 < list.len() {
                assert!(
                    bits / duration <= bandwidth,
                    "{uri} {segment}: {} bit/s over BANDWIDTH {bandwidth}",
                    bits / duration
                );
            }
        }
        durations.push(list.iter().map(|(_, d)| *d).collect::<Vec<_>>());
    }
    assert_eq!(
        durations[0].len(),
        durations[1].len(),
        "same segments in every rendition"
    );
    for (a, b) in durations[0].iter().zip(&durations[1]) {
        assert!(
            (a - b).abs() < 0.034,
            "boundaries aligned across renditions: {durations:?}"
        );
    }
}

/// Runs an HLS-only job of `call_s` seconds; returns the stored master playlist's path.
fn broadcast(scratch: &Scratch, tracks: Value, call_s: f64) -> PathBuf {
    let job = json!({
        "egress_id": "eg_hls_sound",
        "call_cid": "default:hls-sound",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": participants() },
        "hls": { "quality_tracks": tracks, "segment_duration_s": 2 },
        "storage": { "storage_type": "local", "path": "broadcasts" },
        // What the platform knows of the call, passed on in the events that carry it.
        "call": { "id": "hls-sound", "backstage": false, "created_by": { "id": "coordinator", "role": "admin" },
                  "settings": { "broadcasting": { "enabled": true } } }
    });
    let events = Running::spawn(scratch, &job, &[]).finish(Duration::from_secs(60));
    assert_eq!(
        event_types(&events),
        ["call.hls_broadcasting_started", "call.hls_broadcasting_stopped"]
    );
    assert_eq!(
        events[0]["call"],
        json!({ "cid": "default:hls-sound", "type": "default", "id": "hls-sound", "backstage": false,
                "created_by": { "id": "coordinator", "role": "admin" },
                "settings": { "broadcasting": { "enabled": true } } }),
        "the started event names its call, with what the platform said of it"
    );
    path_of(events[0]["hls_playlist_url"].as_str().expect("hls_playlist_url"))
}

#[test]
fn an_audio_only_rendition_is_aac_alone_and_listed_last_with_its_codec() {
    let call_s = 8.0;
    for (name, tracks) in [
        ("hls-ladder-and-sound", json!(["360p", "audio-only"])),
        ("hls-sound-only", json!(["audio-only"])),
    ] {
        let scratch = Scratch::new(name);
        let master_path = broadcast(&scratch, tracks.clone(), call_s);
        let master = std::fs::read_to_string(&master_path).unwrap();
        let variants = variants(&master);
        assert_eq!(variants.len(), tracks.as_array().unwrap().len(), "{master}");
        let (attributes, uri) = variants.last().unwrap();
        assert_eq!(attributes["CODECS"], "mp4a.40.2", "{master}");
        assert!(!attributes.contains_key("RESOLUTION"), "{master}");
        assert_eq!(uri, "audio-only/index.m3u8", "{master}");
        let playlist = master_path.parent().unwrap().join(uri);
        let text = std::fs::read_to_string(&playlist).unwrap();
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
        let list = segments(&text);
        let total: f64 = list.iter().map(|(_, d)| d).sum();
        assert!(
            (total - call_s).abs() <= 0.5,
            "{name}: the sound lasts the call: {total} s: {text}"
        );
        let info = probe(&playlist);
        assert!(streams_of(&info, "video").is_empty(), "{name}: no video: {info}");
        assert_eq!(streams_of(&info, "audio")[0]["codec_name"], "aac", "{name}");
        assert_eq!(decode_errors(&playlist), "", "{name} decodes cleanly");
        let level = mean_volume_db(&playlist, 1.0, call_s - 1.0);
        assert!(level > -40.0, "{name}: the call is heard: {level} dB");
        let bandwidth: f64 = attributes["BANDWIDTH"].parse().unwrap();
        let dir = playlist.parent().unwrap();
        for (segment, duration) in &list[..list.len() - 1] {
            let bits = std::fs::metadata(dir.join(segment)).unwrap().len() as f64 * 8.0;
            assert!(
                bits / duration <= bandwidth,
                "{name} {segment}: {} bit/s over BANDWIDTH {bandwidth}",
                bits / duration
            );
        }
    }
}

#[test]
fn rtmp_pushes_resume_after_a_server_restart_with_one_encoder_per_size() {
    let _alone = alone();
    let scratch = Scratch::new("rtmp");
    let mut server = RtmpServer::new(scratch.dir.join("nginx"));
    let call_s = 24.0;
    let keys = ["sk-alpha-5f2e9c", "sk-beta-83b1d4"];
    let job = json!({
        "egress_id": "eg_rtmp",
        "call_cid": "default:rtmp-call",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": participants() },
        "recording": { "quality": "720p" },
        "hls": { "quality_tracks": ["720p", "360p"] },
        "rtmp": [
            { "name": "alpha", "stream_url": format!("rtmp://127.0.0.1:{}/live", server.port), "stream_key": keys[0], "quality": "720p" },
            { "name": "beta", "stream_url": format!("rtmp://127.0.0.1:{}/live/", server.port), "stream_key": keys[1], "quality": "720p" }
        ],
        "storage": { "storage_type": "local" }
    });
    let dot = scratch.dir.join("graph.dot");
    let mut running = Running::spawn(&scratch, &job, &["--dot", dot.to_str().unwrap()]);
    running.wait_for("call.recording_started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(6));
    for key in keys {
        assert_eq!(server.received(key).len(), 1, "{key} pushed before the restart");
    }
    server.stop();
    std::thread::sleep(Duration::from_secs(3));
    server.start();
    let log_path = running.log.clone();
    let events = running.finish(Duration::from_secs(90));

    let types = event_types(&events);
    for name in ["alpha", "beta"] {
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e["type"] == kind && e["name"] == name)
                .count()
        };
        assert_eq!(of("call.rtmp_broadcast_started"), 1, "{name}: {types:?}");
        assert_eq!(of("call.rtmp_broadcast_stopped"), 1, "{name}: {types:?}");
        assert_eq!(of("call.rtmp_broadcast_failed"), 0, "{name}: {events:#?}");
    }
    for key in keys {
        let files = server.received(key);
        assert_eq!(
            files.len(),
            2,
            "{key}: one stream before and one after the restart"
        );
        let mut total = 0.0;
        for file in &files {
            let silent = seconds_without_sound(file);
            assert!(
                silent < 1.0,
                "{}: {silent} s of pictures without sound",
                file.display()
            );
            let info = probe(file);
            let video = streams_of(&info, "video");
            assert_eq!(video[0]["codec_name"], "h264", "{}", file.display());
            assert_eq!(
                (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
                (Some(1280), Some(720))
            );
            assert_eq!(streams_of(&info, "audio")[0]["codec_name"], "aac");
            // Viewers of a push that reconnected get even timestamps too.
            assert_eq!(decode_errors(file), "", "{} decodes cleanly", file.display());
            total += duration_s(&info);
        }
        let after = duration_s(&probe(&files[1]));
        assert!(
            after >= 6.0,
            "{key}: the push resumed and ran to the end ({after} s after the restart)"
        );
        assert!(
            total <= call_s + 0.5,
            "{key}: {total} s received for a {call_s} s call"
        );
    }

    // The recording did not notice.
    let file = ready_file(&events);
    let duration = duration_s(&probe(&file));
    assert!((duration - call_s).abs() <= 0.1, "recording lasted {duration} s");
    assert_eq!(decode_errors(&file), "", "recording decodes cleanly");

    // Recording 720p, HLS 720p+360p and two pushes at 720p: two encoders.
    let graph = std::fs::read_to_string(&dot).expect("pipeline graph written");
    let encoders = graph.lines().filter(|l| l.contains("GstX264Enc")).count();
    assert_eq!(encoders, 2, "x264 encoders in the pipeline graph");

    // Stream keys appear nowhere a user or operator reads.
    let log = std::fs::read_to_string(log_path).unwrap();
    let published = serde_json::to_string(&events).unwrap();
    for key in keys {
        for (what, text) in [("log", &log), ("events", &published), ("graph", &graph)] {
            assert!(!text.contains(key), "stream key in the {what}");
        }
    }
}

/// Runs `egress` where the system's CA bundle also holds `bundle`'s extra CA: a mount namespace
/// of its own, so the machine's trust store is left alone.
fn egress_trusting(bundle: &Path) -> Command {
    let mut command = Command::new("unshare");
    command.args([
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/ssl/certs/ca-certificates.crt && exec \"$@\"",
    ]);
    command.arg(bundle).arg(env!("CARGO_BIN_EXE_egress"));
    command
}

#[test]
fn rtmps_push_reaches_a_tls_ingest_and_an_untrusted_one_fails_by_name() {
    let _alone = alone();
    let scratch = Scratch::new("rtmps");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let certificates = TestCertificates::create(&scratch.dir.join("tls"));
    let front = TlsFront::start(&scratch.dir.join("tls-front"), &certificates, server.port);
    let bundle = certificates.system_bundle_with_ca(&scratch.dir.join("bundle.pem"));
    let key = "sk-secure-7d41aa";
    let job = |name: &str| {
        json!({
            "egress_id": format!("eg_{name}"),
            "call_cid": "default:rtmps-call",
            "source": { "type": "synthetic", "duration_s": 8.0, "participants": participants() },
            "rtmp": [{ "name": name, "stream_url": format!("rtmps://127.0.0.1:{}/live", front.port),
                       "stream_key": key, "quality": "360p" }],
            "storage": { "storage_type": "local" }
        })
    };

    let running = Running::spawn_with(egress_trusting(&bundle), &scratch, &job("trusted"), &[]);
    let log_path = running.log.clone();
    let events = running.finish(Duration::from_secs(60));
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["name"] == "trusted")
            .count()
    };
    assert_eq!(of("call.rtmp_broadcast_started"), 1, "{events:#?}");
    assert_eq!(of("call.rtmp_broadcast_stopped"), 1, "{events:#?}");
    let files = server.received(key);
    assert_eq!(files.len(), 1, "one stream received through TLS");
    let silent = seconds_without_sound(&files[0]);
    assert!(silent < 1.0, "{silent} s of pictures without sound");
    let info = probe(&files[0]);
    let video = streams_of(&info, "video");
    assert_eq!(video[0]["codec_name"], "h264");
    assert_eq!(
        (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(streams_of(&info, "audio")[0]["codec_name"], "aac");
    let received = duration_s(&info);
    assert!(received >= 6.0, "the push ran to the end: {received} s");

    // Without the CA the ingest's certificate is refused, and the output says so by name.
    let untrusted = Scratch::new("rtmps-untrusted");
    let mut running = Running::spawn(&untrusted, &job("untrusted"), &[]);
    let failed = running.wait_for("call.rtmp_broadcast_failed", Duration::from_secs(60));
    assert_eq!(failed["name"], "untrusted");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("TLS certificate is not trusted"), "{error}");
    let _ = running.child.kill();
    assert_eq!(
        server.received(key).len(),
        1,
        "nothing received from the untrusting worker"
    );
    for log in [log_path, running.log.clone()] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(!text.contains(key), "stream key in the log");
    }
    assert!(
        !events.iter().any(|e| e.to_string().contains(key)),
        "stream key in the events"
    );
}

#[test]
fn long_recording_is_cut_into_parts_that_add_up_to_the_call() {
    let _alone = alone();
    let scratch = Scratch::new("parts");
    let call_s = 23.0;
    let job = json!({
        "egress_id": "eg_parts",
        "call_cid": "default:parts-call",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": participants() },
        "recording": { "quality": "480p", "max_file_duration_s": 10 },
        "storage": { "storage_type": "local" }
    });
    let events = run_successfully(&scratch, &job);
    let ready: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_ready")
        .collect();
    assert_eq!(ready.len(), 3, "one ready event per part: {events:#?}");
    let files: Vec<PathBuf> = ready
        .iter()
        .map(|e| path_of(e["call_recording"]["url"].as_str().unwrap()))
        .collect();
    let mut unique = files.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3, "distinct files: {files:?}");
    let mut total = 0.0;
    let mut frames = 0;
    let mut parts = Vec::new();
    for file in &files {
        let info = probe(file);
        let video = &streams_of(&info, "video")[0];
        let duration = video["duration"].as_str().unwrap().parse::<f64>().unwrap();
        let count = video["nb_frames"].as_str().unwrap().parse::<u64>().unwrap();
        parts.push((duration, count));
        total += duration;
        // The sound of each part is the sound of its pictures: it starts with them.
        let audio = &streams_of(&info, "audio")[0];
        let audio_start = audio["start_time"].as_str().unwrap().parse::<f64>().unwrap();
        let audio_duration = audio["duration"].as_str().unwrap().parse::<f64>().unwrap();
        assert!(
            audio_start <= 0.05 && (audio_duration - duration).abs() <= 0.1,
            "{}: audio from {audio_start} s for {audio_duration} s, video {duration} s",
            file.display()
        );
        frames += count;
        assert_eq!(
            first_video_packet_flags(file).chars().next(),
            Some('K'),
            "{} opens on a keyframe",
            file.display()
        );
        assert_eq!(decode_errors(file), "", "{} decodes cleanly", file.display());
    }
    assert!(
        (total - call_s).abs() <= 1.0 / 30.0 + 1e-6,
        "parts add up to {total} s for a {call_s} s call: {parts:?}"
    );
    // Under load the live compositor may land one frame either side of the end cue.
    let expected = (call_s * 30.0) as i64;
    assert!(
        (frames as i64 - expected).abs() <= 1,
        "{frames} frames for {expected}: no media lost or repeated across parts: {parts:?}"
    );
}
