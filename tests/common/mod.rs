//! Helpers for the integration tests: run the real `egress` binary, read its events, and inspect
//! its files with ffprobe and ffmpeg as a user would.
#![allow(dead_code)]

mod netns;
mod rtmp;
mod speech;
mod tls;

#[allow(unused_imports)]
pub use netns::*;
#[allow(unused_imports)]
pub use rtmp::*;
#[allow(unused_imports)]
pub use speech::*;
#[allow(unused_imports)]
pub use tls::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn egress() -> Command {
    Command::new(env!("CARGO_BIN_EXE_egress"))
}

/// A fresh folder under the target dir, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("egress-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn write_job(&self, job: &Value) -> PathBuf {
        let path = self.dir.join("job.json");
        std::fs::write(&path, serde_json::to_vec_pretty(job).unwrap()).unwrap();
        path
    }

    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // EGRESS_KEEP_SCRATCH=1 keeps every test's files and logs for a look afterwards.
        if !std::thread::panicking() && std::env::var_os("EGRESS_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a job to its end; returns the process output and the parsed events.
pub fn run_job(scratch: &Scratch, job: &Value) -> (Output, Vec<Value>) {
    let path = scratch.write_job(job);
    let output = egress()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(scratch.out())
        .stdin(Stdio::null())
        .output()
        .expect("egress runs");
    let events = parse_events(&output.stdout);
    (output, events)
}

/// Runs a job that must succeed; returns its events.
pub fn run_successfully(scratch: &Scratch, job: &Value) -> Vec<Value> {
    let (output, events) = run_job(scratch, job);
    assert!(
        output.status.success(),
        "egress failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    events
}

pub fn parse_events(stdout: &[u8]) -> Vec<Value> {
    let events = parse_json_lines(stdout);
    assert_events_follow_the_schema(&events);
    events
}

/// One JSON value per non-empty line.
pub fn parse_json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

/// Every event is valid against the schema the worker publishes (`egress schema --events`).
pub fn assert_events_follow_the_schema(events: &[Value]) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let out = egress().args(["schema", "--events"]).output().unwrap();
        assert!(out.status.success(), "egress schema --events");
        let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
        jsonschema::validator_for(&schema).expect("the event schema compiles")
    });
    for event in events {
        let problems: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "an event does not follow the published schema: {problems:?}\n{event:#}"
        );
    }
}

pub fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The file a `call.recording_ready` event points at.
pub fn ready_file(events: &[Value]) -> PathBuf {
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("no recording_ready event in {events:#?}"));
    let url = ready["call_recording"]["url"].as_str().expect("url");
    PathBuf::from(url.strip_prefix("file://").expect("a file:// url"))
}

/// ffprobe's view of a media file.
pub fn probe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn streams_of(probe: &Value, kind: &str) -> Vec<Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .cloned()
        .collect()
}

pub fn duration_s(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a duration")
}

/// How many seconds of a file's pictures have no sound beside them: the span of its video
/// packets less the span of its audio packets (all of it when there is no sound).
pub fn seconds_without_sound(file: &Path) -> f64 {
    let span = |stream: &str| {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(file)
            .output()
            .expect("ffprobe runs");
        let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
            .collect();
        let (low, high) = times
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &t| (l.min(t), h.max(t)));
        if times.is_empty() { 0.0 } else { high - low }
    };
    span("v:0") - span("a:0")
}

/// Decodes the whole file; returns what ffmpeg reported as errors (empty when clean). Frames
/// keep their own timestamps (`-fps_mode passthrough`): a raw file holds frames as they arrived,
/// whose spacing a constant output rate would fold onto one tick.
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-fps_mode", "passthrough", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("\nffmpeg exit status {}", out.status));
    }
    if !text.is_empty() {
        text.push_str(&timing_summary(file));
    }
    text
}

/// Where each stream starts and the first packets of each, in file order: what a report of a
/// file that does not decode cleanly needs to be understood without the file.
fn timing_summary(file: &Path) -> String {
    let probe = |args: &[&str]| {
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .arg(file)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let streams = probe(&[
        "-show_entries",
        "stream=index,codec_name,start_time,duration,nb_frames,has_b_frames",
        "-of",
        "compact",
    ]);
    let packets = probe(&[
        "-show_entries",
        "packet=stream_index,pts,dts,flags",
        "-read_intervals",
        "%+#40",
        "-of",
        "compact",
    ]);
    format!("\n-- streams:\n{streams}-- first packets:\n{packets}")
}

/// One decoded RGB frame of the file at `at_s` seconds.
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn at(file: &Path, at_s: f64, width: u32, height: u32) -> Frame {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i"])
            .arg(file)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("ffmpeg runs");
        assert_eq!(
            out.stdout.len(),
            (width * height * 3) as usize,
            "frame at {at_s}s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Frame {
            width,
            height,
            rgb: out.stdout,
        }
    }

    /// The colour of one pixel.
    pub fn pixel_at(&self, x: i32, y: i32) -> [u8; 3] {
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The average colour of a 9x9 patch around (x, y).
    pub fn colour_at(&self, x: i32, y: i32) -> [u8; 3] {
        let mut sum = [0u32; 3];
        let mut n = 0;
        for dy in -4..=4 {
            for dx in -4..=4 {
                let (px, py) = (
                    (x + dx).clamp(0, self.width as i32 - 1),
                    (y + dy).clamp(0, self.height as i32 - 1),
                );
                let i = ((py as u32 * self.width + px as u32) * 3) as usize;
                for (total, value) in sum.iter_mut().zip(&self.rgb[i..i + 3]) {
                    *total += u32::from(*value);
                }
                n += 1;
            }
        }
        sum.map(|s| (s / n) as u8)
    }
}

/// A VP8 clip as a WebRTC sender streams it (one keyframe, then delta frames) and an Opus clip.
pub fn vp8_opus_clips(dir: &Path, name: &str, colour: &str, tone_hz: u32) {
    let video = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("color=c=0x{}:s=320x180:r=30:d=20", &colour[1..]))
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
        .args(["-b:v", "300k", "-g", "100000"])
        .arg(dir.join(format!("{name}.webm")))
        .status()
        .unwrap();
    assert!(video.success(), "ffmpeg made {name}.webm");
    let audio = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={tone_hz}:duration=20:sample_rate=48000"))
        .args(["-c:a", "libopus", "-b:a", "32k"])
        .arg(dir.join(format!("{name}-voice.webm")))
        .status()
        .unwrap();
    assert!(audio.success(), "ffmpeg made {name}-voice.webm");
}

pub fn hex_rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// True when two colours match within a tolerance that absorbs YUV 4:2:0 round trips.
pub fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| (i32::from(*x) - i32::from(*y)).abs() <= 24)
}

/// Mean volume in dB of the audio between `from_s` and `to_s`.
pub fn mean_volume_db(file: &Path, from_s: f64, to_s: f64) -> f64 {
    filtered_volume_db(file, from_s, to_s, "")
}

/// Mean volume in dB of the audio between `from_s` and `to_s` after the ffmpeg filters
/// `filters` (each ending in a comma), e.g. a band-pass around one tone.
pub fn filtered_volume_db(file: &Path, from_s: f64, to_s: f64, filters: &str) -> f64 {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "info",
            "-ss",
            &format!("{from_s}"),
            "-to",
            &format!("{to_s}"),
            "-i",
        ])
        .arg(file)
        .args(["-vn", "-af", &format!("{filters}volumedetect"), "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no mean_volume in ffmpeg output: {text}"))
}

/// The scene the layout engine gives `users` (all with cameras, in join order) for a layout,
/// so tests probe the pixels where the engine put each tile.
pub fn expected_scene(
    layout: &str,
    options: &Value,
    users: &[&str],
    width: u32,
    height: u32,
) -> egress::layout::Scene {
    let options = options
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let plan = egress::layout::LayoutPlan::new(layout, &options).expect("valid layout");
    let views: Vec<egress::layout::ParticipantView> = users
        .iter()
        .map(|u| egress::layout::ParticipantView {
            user_id: u.to_string(),
            name: u.to_string(),
            has_audio: true,
            camera: Some(format!("{u}/camera")),
            ..Default::default()
        })
        .collect();
    plan.scene(&views, width, height)
}

/// Every frame between `from_s` and `to_s`, decoded at `width` x `height`.
pub fn frames_between(file: &Path, from_s: f64, to_s: f64, width: u32, height: u32) -> Vec<Frame> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-ss",
            &format!("{from_s:.3}"),
            "-to",
            &format!("{to_s:.3}"),
            "-i",
        ])
        .arg(file)
        .args([
            "-vf",
            &format!("scale={width}:{height}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let size = (width * height * 3) as usize;
    assert!(
        out.stdout.len() >= size,
        "no frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(size)
        .map(|rgb| Frame {
            width,
            height,
            rgb: rgb.to_vec(),
        })
        .collect()
}

/// The share of a frame's pixels close to `colour`.
pub fn share_of(frame: &Frame, colour: [u8; 3]) -> f64 {
    let pixels = frame
        .rgb
        .chunks_exact(3)
        .filter(|p| close([p[0], p[1], p[2]], colour))
        .count();
    pixels as f64 / f64::from(frame.width * frame.height)
}

/// The share of an image's pixels close to `colour`.
pub fn image_share_of(img: &image::RgbImage, colour: [u8; 3]) -> f64 {
    let matching = img.pixels().filter(|p| close(p.0, colour)).count();
    matching as f64 / f64::from(img.width() * img.height())
}

/// When a still was captured (`captured_at` of its event), in seconds since the epoch.
pub fn captured_s(event: &Value) -> f64 {
    let at = chrono::DateTime::parse_from_rfc3339(event["captured_at"].as_str().unwrap()).unwrap();
    at.timestamp_millis() as f64 / 1000.0
}

/// A job running in the background: its events as they come, its log in a file.
pub struct Running {
    pub child: std::process::Child,
    events: std::sync::mpsc::Receiver<Value>,
    seen: Vec<Value>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub log: PathBuf,
}

impl Running {
    pub fn spawn(scratch: &Scratch, job: &Value, extra_args: &[&str]) -> Running {
        Running::spawn_with(egress(), scratch, job, extra_args)
    }

    /// As `spawn`, with `command` running the `egress` binary (itself, or a wrapper that ends
    /// with it and passes on the arguments that follow).
    pub fn spawn_with(mut command: Command, scratch: &Scratch, job: &Value, extra_args: &[&str]) -> Running {
        use std::io::BufRead;
        let path = scratch.write_job(job);
        let log = scratch.dir.join("egress.log");
        let mut child = command
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(scratch.out())
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("egress starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            events: rx,
            seen: Vec::new(),
            reader: Some(reader),
            log,
        }
    }

    /// Waits for the first event of `kind`; panics with the log after `timeout`.
    pub fn wait_for(&mut self, kind: &str, timeout: std::time::Duration) -> Value {
        self.wait_for_where(kind, timeout, |_| true)
    }

    /// Waits for the first event of `kind` for which `pred` holds; panics with the log after
    /// `timeout`.
    pub fn wait_for_where(
        &mut self,
        kind: &str,
        timeout: std::time::Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(e) = self.seen.iter().find(|e| e["type"] == kind && pred(e)) {
            return e.clone();
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if event["type"] == kind && pred(&event) {
                        return event;
                    }
                }
                Err(_) => panic!(
                    "no such {kind} event within {timeout:?}; events {:#?}; log:\n{}",
                    self.seen,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    /// Waits for the job to end; it must succeed. Returns every event.
    pub fn finish(self, timeout: std::time::Duration) -> Vec<Value> {
        let log = self.log.clone();
        let (status, events) = self.end(timeout);
        assert!(
            status.success(),
            "egress failed ({status}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        events
    }

    /// Waits for the job to end, however it ends. Returns its exit status and every event.
    pub fn end(mut self, timeout: std::time::Duration) -> (std::process::ExitStatus, Vec<Value>) {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the job did not end within {timeout:?}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.seen.extend(self.events.try_iter());
        assert_events_follow_the_schema(&self.seen);
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sizes and key flags of a file's packets of one stream kind (`v` or `a`), in order.
pub fn packets(file: &Path, kind: &str) -> Vec<(u64, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            kind,
            "-show_entries",
            "packet=size,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (size, flags) = l.split_once(',')?;
            Some((size.trim().parse().ok()?, flags.starts_with('K')))
        })
        .collect()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A helper process (a server of the test bed), killed when dropped.
pub struct Service {
    pub child: std::process::Child,
    pub name: &'static str,
}

impl Service {
    pub fn start(name: &'static str, command: &mut Command) -> Service {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Service { child, name }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something listens on `port` at loopback.
pub fn wait_for_port(port: u16, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The cache folder of the scripts (npm packages live there).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("EGRESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/egress"))
}

/// Plays a master playlist in headless Chromium with hls.js; returns the player's report
/// (`tests/browser/play_hls.js`).
pub fn play_in_browser(master_url: &str) -> Value {
    let npm = cache_dir().join("npm/node_modules");
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/play_hls.js"))
        .arg(master_url)
        .arg(npm.join("hls.js/dist/hls.min.js"))
        .arg("/usr/bin/chromium")
        .env("NODE_PATH", &npm)
        .output()
        .expect("node runs (scripts/test-deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!(
            "player report unreadable ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The `currentTime` readings of a player report, in order.
pub fn playback_times(report: &Value) -> Vec<f64> {
    report["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect()
}

/// Checks `state` every 100 ms until it holds (`Ok`), for at most `timeout`; the last `Err` says
/// what was seen instead.
pub fn poll<T>(what: &str, timeout: std::time::Duration, mut state: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match state() {
            Ok(value) => return value,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "{what} within {timeout:?}; {seen}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// CPU seconds the process has used so far, or `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// How many seconds each individual part open in a job's spool folder plays so far (its index
/// is rewritten as it grows, so ffprobe reads it while it is written).
pub fn individual_parts_playing(spool: &Path) -> Vec<(PathBuf, f64)> {
    std::fs::read_dir(spool)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("ind_"))
                })
                .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                .map(|p| {
                    let seconds = probe(&p)["format"]["duration"]
                        .as_str()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0.0);
                    (p, seconds)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `egress storage resume` on a worker's output folder; the events it announced.
pub fn storage_resume(out: &Path) -> Vec<Value> {
    let resumed = egress()
        .args(["storage", "resume", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    parse_events(&resumed.stdout)
}

/// A 640x360 VP8 clip with motion (what a camera sends) and an Opus voice, for the benchmark.
pub fn moving_clip(dir: &std::path::Path, name: &str, tone_hz: u32, seconds: f64) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {args:?}");
    };
    let video = dir.join(format!("{name}.webm"));
    let voice = dir.join(format!("{name}-voice.webm"));
    run(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=s=640x360:r=30:d={seconds}"),
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "800k",
        "-g",
        "100000",
        video.to_str().unwrap(),
    ]);
    run(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={tone_hz}:duration={seconds}:sample_rate=48000"),
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        voice.to_str().unwrap(),
    ]);
}

/// Runs `egress render MANIFEST --out DIR EXTRA…`; its one line of output, or the exit code and
/// error text.
pub fn try_render(manifest: &Path, out: &Path, extra: &[&str]) -> Result<Value, (i32, String)> {
    let done = egress()
        .arg("render")
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("egress runs");
    match done.status.success() {
        true => Ok(parse_json_lines(&done.stdout).remove(0)),
        false => Err((
            done.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&done.stderr).to_string(),
        )),
    }
}

/// Runs `egress render`, which must succeed; the file it wrote.
pub fn render_manifest(manifest: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let done = try_render(manifest, out, extra).unwrap_or_else(|e| panic!("render failed: {e:?}"));
    PathBuf::from(done["file"].as_str().expect("the render names its file"))
}

/// The file names the events announce, sorted.
pub fn announced_names<'a>(events: &[&'a Value]) -> Vec<&'a str> {
    let mut names: Vec<&str> = events
        .iter()
        .map(|e| e["call_recording"]["filename"].as_str().expect("a file name"))
        .collect();
    names.sort();
    names
}

/// Encodes a clip that is `first` for `switch_s` seconds and `then` after, as a WebRTC sender
/// streams it (one keyframe, then delta frames only), and its all-intra copy. The copy has its
/// left half painted white, so that a still shows which of the two it was decoded from.
pub fn sender_clips(dir: &std::path::Path, name: &str, first: &str, then: &str, switch_s: f64) {
    let colours = format!(
        "color=c=0x{}:s=320x180:r=30:d={switch_s}[a];color=c=0x{}:s=320x180:r=30:d=20[b];[a][b]concat=n=2:v=1:a=0",
        &first[1..],
        &then[1..]
    );
    for (file, filter, gop) in [
        (format!("{name}.webm"), colours.clone(), "100000"),
        (
            format!("{name}-intra.webm"),
            format!("{colours},drawbox=x=0:y=0:w=160:h=180:color=white:t=fill"),
            "1",
        ),
    ] {
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                &format!("{filter}[out]"),
            ])
            .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
            .args(["-b:v", "400k", "-g", gop])
            .arg(dir.join(&file))
            .status()
            .expect("ffmpeg runs");
        assert!(made.success(), "ffmpeg made {file}");
    }
    let keyframes = packets(&dir.join(format!("{name}.webm")), "v")
        .iter()
        .filter(|(_, key)| *key)
        .count();
    assert_eq!(keyframes, 1, "{name}.webm streams like a WebRTC sender");
}

/// The one participant a still (`call.frame_recording_ready`) shows.
pub fn user_of(event: &Value) -> String {
    let users = event["users"].as_object().unwrap();
    assert_eq!(users.len(), 1, "one participant per image: {event}");
    users.keys().next().unwrap().clone()
}

/// The picture of a still stored in a local folder.
pub fn image_of(event: &Value) -> image::RgbImage {
    let url = event["url"].as_str().unwrap();
    let path = PathBuf::from(url.strip_prefix("file://").unwrap());
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}
