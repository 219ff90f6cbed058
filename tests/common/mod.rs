//! Helpers for the integration tests: run the real `egress` binary, read its events, and inspect
//! its files with ffprobe and ffmpeg as a user would.
#![allow(dead_code)]

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
        if !std::thread::panicking() {
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
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}")))
        .collect()
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

/// Decodes the whole file; returns what ffmpeg reported as errors (empty when clean).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("\nffmpeg exit status {}", out.status));
    }
    text
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
        .args(["-vn", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no mean_volume in ffmpeg output: {text}"))
}
