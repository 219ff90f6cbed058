//! The timeline manifest of a raw recording (`…/manifest.json`): what a later render needs to
//! composite the call again. Times are seconds of call time, from the moment the worker's media
//! graph started (`call_started_at` on the wall clock).

use crate::job::{LayoutConfig, Quality};
use crate::session::JobUpdate;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's format; readers refuse what they do not know.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub call_cid: String,
    pub egress_id: String,
    pub session_id: String,
    pub call_started_at: String,
    /// Call time the raw recording started at: 0 when it started with the job.
    #[serde(default)]
    pub start_s: f64,
    /// Call time the recording ended at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The layout the job's composite had when the call started, and its quality.
    #[serde(default)]
    pub layout: LayoutConfig,
    #[serde(default)]
    pub quality: Quality,
    pub participants: Vec<Stay>,
    pub files: Vec<ManifestFile>,
    /// Who spoke, each time that changed.
    #[serde(default)]
    pub speaking: Vec<SpeakingChange>,
    /// The coordinator's updates (pins, names, layout), as they arrived.
    #[serde(default)]
    pub updates: Vec<TimedUpdate>,
}

/// One stay of a participant in the call (a return is a stay of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stay {
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    pub joined_at_s: f64,
    /// Absent while still in the call when the recording ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at_s: Option<f64>,
}

/// One raw file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub filename: String,
    pub user_id: String,
    /// `camera`, `microphone`, `screenshare` or `screenshare_audio`.
    pub track: String,
    /// `vp8`, `vp9`, `h264` or `opus`.
    pub codec: String,
    /// Call time of the file's first sample.
    pub start_offset_s: f64,
    /// Call time of its last sample; absent when it did not close (the worker stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset_s: Option<f64>,
    /// The picture's size from its first frame on, and each time it changed (VP8 says it in
    /// every keyframe; empty for other codecs and for sound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<SizeChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeChange {
    pub at_s: f64,
    pub width: u32,
    pub height: u32,
}

/// From `at_s` on, these participants speak and `dominant` holds the floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakingChange {
    pub at_s: f64,
    pub speaking: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedUpdate {
    pub at_s: f64,
    pub update: JobUpdate,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("the manifest {path} is not a raw recording's manifest: {source}")]
    Malformed { path: String, source: serde_json::Error },
    #[error("the manifest {path} has version {found}; this worker reads version {MANIFEST_VERSION}")]
    Version { path: String, found: u32 },
    #[error("the manifest {path}: {field}: {problem}")]
    Field {
        path: String,
        field: String,
        problem: String,
    },
}

impl Manifest {
    /// Reads and checks a manifest: the version, and times that are finite and in order.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| ManifestError::Malformed {
                path: shown.clone(),
                source,
            })?;
        if manifest.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                path: shown,
                found: manifest.version,
            });
        }
        manifest
            .check()
            .map_err(|(field, problem)| ManifestError::Field {
                path: shown,
                field,
                problem,
            })?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let time = |field: String, value: f64| match value.is_finite() && value >= 0.0 {
            true => Ok(()),
            false => Err((
                field,
                format!("expected seconds of call time (0 or more), got {value}"),
            )),
        };
        for (i, stay) in self.participants.iter().enumerate() {
            time(format!("participants[{i}].joined_at_s"), stay.joined_at_s)?;
            if let Some(left) = stay.left_at_s {
                time(format!("participants[{i}].left_at_s"), left)?;
                if left < stay.joined_at_s {
                    return Err((
                        format!("participants[{i}].left_at_s"),
                        format!("left at {left} s, before joining at {} s", stay.joined_at_s),
                    ));
                }
            }
        }
        for (i, file) in self.files.iter().enumerate() {
            time(format!("files[{i}].start_offset_s"), file.start_offset_s)?;
            if file.filename.is_empty()
                || file.filename.contains(['/', '\\'])
                || file.filename.starts_with('.')
            {
                return Err((
                    format!("files[{i}].filename"),
                    format!(
                        "expected a file name beside the manifest, got {:?}",
                        file.filename
                    ),
                ));
            }
        }
        for (i, change) in self.speaking.iter().enumerate() {
            time(format!("speaking[{i}].at_s"), change.at_s)?;
        }
        for (i, update) in self.updates.iter().enumerate() {
            time(format!("updates[{i}].at_s"), update.at_s)?;
        }
        if let Some(duration) = self.duration_s {
            time("duration_s".into(), duration)?;
        }
        time("start_s".into(), self.start_s)?;
        Ok(())
    }

    /// The same recording with its times counted from its own start (`start_s`), not the
    /// call's: what a render's zero is.
    pub fn from_its_start(mut self) -> Manifest {
        let origin = self.start_s;
        let shift = |t: &mut f64| *t = (*t - origin).max(0.0);
        for stay in &mut self.participants {
            shift(&mut stay.joined_at_s);
            stay.left_at_s.iter_mut().for_each(shift);
        }
        for file in &mut self.files {
            shift(&mut file.start_offset_s);
            file.end_offset_s.iter_mut().for_each(shift);
            file.sizes.iter_mut().for_each(|s| shift(&mut s.at_s));
        }
        self.speaking.iter_mut().for_each(|c| shift(&mut c.at_s));
        self.updates.iter_mut().for_each(|u| shift(&mut u.at_s));
        self.duration_s.iter_mut().for_each(shift);
        self.start_s = 0.0;
        self
    }

    /// The call time the recording ends at: its duration, or else the last thing it holds.
    pub fn end_s(&self) -> f64 {
        self.duration_s.unwrap_or_else(|| {
            let stays = self
                .participants
                .iter()
                .map(|s| s.left_at_s.unwrap_or(s.joined_at_s));
            let files = self
                .files
                .iter()
                .map(|f| f.end_offset_s.unwrap_or(f.start_offset_s));
            stays.chain(files).fold(0.0, f64::max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            call_cid: "default:c".into(),
            egress_id: "eg".into(),
            session_id: "se".into(),
            call_started_at: "2026-12-03T10:00:00.000Z".into(),
            start_s: 0.0,
            duration_s: None,
            layout: LayoutConfig::default(),
            quality: Quality::default(),
            participants: vec![Stay {
                user_id: "alice".into(),
                name: "Alice".into(),
                roles: vec![],
                pinned: false,
                joined_at_s: 0.0,
                left_at_s: Some(8.0),
            }],
            files: vec![ManifestFile {
                filename: "raw_alice_camera.webm".into(),
                user_id: "alice".into(),
                track: "camera".into(),
                codec: "vp8".into(),
                start_offset_s: 0.1,
                end_offset_s: Some(7.9),
                sizes: vec![],
            }],
            speaking: vec![],
            updates: vec![],
        }
    }

    fn load_text(text: &str) -> Result<Manifest, ManifestError> {
        let dir = std::env::temp_dir().join(format!("manifest-test-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("manifest.json");
        std::fs::write(&path, text).unwrap();
        let loaded = Manifest::load(&path);
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    #[test]
    fn a_written_manifest_reads_back_the_same() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(load_text(&text).unwrap(), sample());
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["version"] = 7.into();
        let error = load_text(&value.to_string()).unwrap_err().to_string();
        assert!(error.contains("version 7"), "{error}");
    }

    #[test]
    fn a_file_outside_the_manifests_folder_is_refused() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["files"][0]["filename"] = "../secret.webm".into();
        let error = load_text(&value.to_string()).unwrap_err().to_string();
        assert!(error.contains("files[0].filename"), "{error}");
    }

    #[test]
    fn a_leave_before_the_join_is_refused() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["participants"][0]["left_at_s"] = (-1.0).into();
        let error = load_text(&value.to_string()).unwrap_err().to_string();
        assert!(error.contains("participants[0].left_at_s"), "{error}");
    }

    #[test]
    fn a_recording_started_during_the_call_counts_from_its_start() {
        let mut manifest = sample();
        manifest.start_s = 5.0;
        manifest.participants[0].joined_at_s = 5.0;
        manifest.participants[0].left_at_s = Some(8.0);
        manifest.files[0].start_offset_s = 5.1;
        manifest.duration_s = Some(12.0);
        let rebased = manifest.from_its_start();
        assert_eq!(rebased.participants[0].joined_at_s, 0.0);
        assert_eq!(rebased.participants[0].left_at_s, Some(3.0));
        assert!((rebased.files[0].start_offset_s - 0.1).abs() < 1e-9);
        assert_eq!(rebased.duration_s, Some(7.0));
        assert_eq!(rebased.start_s, 0.0);
    }

    #[test]
    fn the_end_is_the_duration_or_the_last_moment_held() {
        let mut manifest = sample();
        assert_eq!(manifest.end_s(), 8.0);
        manifest.duration_s = Some(9.5);
        assert_eq!(manifest.end_s(), 9.5);
    }
}
