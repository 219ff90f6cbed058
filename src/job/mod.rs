//! Job contract v1: the JSON a coordinator sends, as serde types.
//!
//! The JSON Schema published by `egress schema` is generated from these types, and
//! [`validate`] checks raw JSON against it before anything is deserialized, so the
//! types, the schema and the validation errors never disagree.

mod quality;
mod validate;

pub use quality::Quality;
pub use validate::{Problem, ValidatedJob, parse_and_validate, schema_json};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// One egress job: which call to join, what to produce, where to put it.
pub struct Job {
    /// Unique id of this egress; generated when absent.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub egress_id: Option<String>,
    /// The call, as `<type>:<id>`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+:[A-Za-z0-9_.-]+$"))]
    pub call_cid: String,
    /// Call session id; generated when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub session_id: Option<String>,
    pub source: SourceConfig,
    /// Composite recording; absent means no recording.
    #[serde(default)]
    pub recording: Option<RecordingConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: Limits,
}

impl Job {
    pub fn call_type(&self) -> &str {
        self.call_cid.split_once(':').map_or("", |(t, _)| t)
    }
    pub fn call_id(&self) -> &str {
        self.call_cid.split_once(':').map_or("", |(_, id)| id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
/// Where the media comes from.
pub enum SourceConfig {
    /// In-process test participants, for demos, tests and benchmarks.
    Synthetic(SyntheticSource),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSource {
    /// Length of the call in seconds.
    #[schemars(range(min = 0.5, max = 86400.0))]
    pub duration_s: f64,
    #[serde(default)]
    #[schemars(length(max = 49))]
    pub participants: Vec<SyntheticParticipant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticParticipant {
    #[schemars(length(min = 1, max = 128))]
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub pinned: bool,
    /// Camera track; `null` for none, absent for a distinct solid colour.
    #[serde(default = "default_video")]
    pub video: Option<VideoSpec>,
    /// Microphone track; `null` for none, absent for a sine tone.
    #[serde(default = "default_audio")]
    pub audio: Option<AudioSpec>,
    #[serde(default)]
    pub screenshare: Option<VideoSpec>,
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub join_at_s: f64,
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub leave_at_s: Option<f64>,
}

fn default_video() -> Option<VideoSpec> {
    Some(VideoSpec::Auto)
}

fn default_audio() -> Option<AudioSpec> {
    Some(AudioSpec::Builtin(BuiltinAudio::Sine))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// A synthetic video track.
pub enum VideoSpec {
    /// A solid colour picked from a palette by the participant's position.
    #[serde(skip)]
    Auto,
    /// A solid colour, `#rrggbb`.
    Color(#[schemars(regex(pattern = r"^#[0-9A-Fa-f]{6}$"))] String),
    /// A moving test pattern.
    Pattern(TestPattern),
    /// An encoded clip (WebM/Matroska), replayed as if it came from the network.
    Clip(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestPattern {
    Smpte,
    Ball,
    Snow,
    Checkers,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
/// A synthetic audio track: `"sine"`, `"silence"`, or `{"file": "x.wav"}`.
pub enum AudioSpec {
    Builtin(BuiltinAudio),
    File { file: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinAudio {
    Sine,
    Silence,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Composite recording settings (field names as in the recording settings model).
pub struct RecordingConfig {
    #[serde(default)]
    pub audio_only: bool,
    #[serde(default)]
    pub quality: Quality,
    #[serde(default)]
    pub layout: LayoutConfig,
    /// Longest part of a recording, in seconds.
    #[serde(default = "default_max_file_duration")]
    #[schemars(range(min = 10, max = 86400))]
    pub max_file_duration_s: u32,
}

fn default_max_file_duration() -> u32 {
    7200
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutConfig {
    #[serde(default)]
    pub name: LayoutName,
    /// Layout options by key (e.g. `grid.columns`); unknown keys are warnings, not errors.
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutName {
    #[default]
    Grid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Where files go. The embedded default is the local output folder.
pub struct StorageConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub storage_type: StorageType,
    /// Prefix of every key written (a folder below the output root for `local`).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    #[default]
    Local,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The job stops by itself after this many seconds.
    #[serde(default)]
    #[schemars(range(min = 1, max = 86400))]
    pub max_duration_seconds: Option<u32>,
}
