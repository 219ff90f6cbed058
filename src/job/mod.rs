//! Job contract v1: the JSON a coordinator sends, as serde types.
//!
//! The JSON Schema published by `egress schema` is generated from these types, and
//! [`validate`] checks raw JSON against it before anything is deserialized, so the
//! types, the schema and the validation errors never disagree.

mod media_access;
mod quality;
mod strict_json;
mod validate;

pub use media_access::{LocalMedia, MediaAccessError};
pub use quality::{HlsTrack, Quality, SoundOnly};
pub use validate::{
    Intake, LARGEST_JOB_BYTES, Problem, ValidatedJob, parse_and_validate, schema_json, storage_problems,
    too_large, with_added_section,
};

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
    /// Live HLS broadcast; absent means none.
    #[serde(default)]
    pub hls: Option<HlsConfig>,
    /// RTMP(S) pushes, each to its own destination.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub rtmp: Vec<RtmpConfig>,
    /// Periodic still images of every participant's video, for moderation.
    #[serde(default)]
    pub frame_recording: Option<FrameRecordingConfig>,
    /// Live captions and a transcript of what every participant says.
    #[serde(default)]
    pub transcription: Option<TranscriptionConfig>,
    /// A small picture of the composite, replaced every interval (the call's thumbnail).
    #[serde(default)]
    pub thumbnails: Option<ThumbnailsConfig>,
    /// Every track as it arrived (no decode, no encode), with a timeline manifest.
    #[serde(default)]
    pub raw_recording: Option<RawRecordingConfig>,
    /// A file per participant and stay: their camera and microphone, and their screen share
    /// in a file of its own.
    #[serde(default)]
    pub individual_recording: Option<IndividualRecordingConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: Limits,
    /// The call as the platform describes it (the seed's `CallResponse`: settings, created_by,
    /// session...), repeated in the events whose model requires `call`. The worker knows only
    /// `cid`, `type` and `id` of its own; any of them given here must match `call_cid`.
    #[serde(default)]
    pub call: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Job {
    /// A job that starts with no output: it joins the call and waits for outputs to be started
    /// (`egress start`).
    pub fn has_no_output(&self) -> bool {
        self.recording.is_none()
            && self.hls.is_none()
            && self.rtmp.is_empty()
            && self.frame_recording.is_none()
            && self.transcription.is_none()
            && self.raw_recording.is_none()
            && self.individual_recording.is_none()
    }

    pub fn call_type(&self) -> &str {
        self.call_cid.split_once(':').map_or("", |(t, _)| t)
    }
    pub fn call_id(&self) -> &str {
        self.call_cid.split_once(':').map_or("", |(_, id)| id)
    }

    /// Every secret of the job (stream keys, storage keys, the PIN or token of the source),
    /// to be kept out of logs, events, errors and graphs.
    pub fn secrets(&self) -> Vec<String> {
        let keys = self.rtmp.iter().filter_map(|r| r.stream_key.as_deref());
        let mut secrets: Vec<String> = keys
            .chain(self.storage.secrets())
            .chain(self.source.secrets())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        secrets.extend(self.urls().into_iter().flat_map(url_password));
        secrets
    }

    /// Every URL of the job that may carry user-info.
    fn urls(&self) -> Vec<&str> {
        let source = match &self.source {
            SourceConfig::Janus(j) => Some(j.url.as_str()),
            SourceConfig::Whep(w) => Some(w.url.as_str()),
            SourceConfig::Synthetic(_) | SourceConfig::Render(_) => None,
        };
        let storage = [
            self.storage
                .aws_s3
                .as_ref()
                .and_then(|s| s.s3_custom_endpoint_url.as_deref()),
            self.storage.gcs_endpoint_url.as_deref(),
            self.storage
                .azure_blob
                .as_ref()
                .and_then(|a| a.abs_endpoint_url.as_deref()),
        ];
        self.rtmp
            .iter()
            .map(|r| r.stream_url.as_str())
            .chain(source)
            .chain(storage.into_iter().flatten())
            .collect()
    }
}

/// The password of a URL's user-info, as written and decoded (elements are handed either).
fn url_password(text: &str) -> Vec<String> {
    let Some(password) = url::Url::parse(text)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return Vec::new();
    };
    let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned());
    let mut found = vec![password];
    found.extend(decoded.filter(|d| !found.contains(d)));
    found.retain(|p| !p.is_empty());
    found
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
/// Where the media comes from.
pub enum SourceConfig {
    /// In-process test participants, for demos, tests and benchmarks.
    Synthetic(SyntheticSource),
    /// A Janus VideoRoom, joined as a hidden subscriber to every publisher.
    Janus(JanusSource),
    /// One stream from a WHEP endpoint, as one participant.
    Whep(WhepSource),
    /// A raw recording of a past call, composited again as fast as the machine allows into the
    /// job's `recording` (`egress render` as a job, so a fleet can render).
    Render(RenderSource),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderSource {
    /// The raw recording's `manifest.json`, a local media file (its raw files beside it).
    #[schemars(length(min = 1))]
    pub manifest: String,
    /// The layout to render with; absent: the one the call had (the manifest's).
    #[serde(default)]
    pub layout: Option<LayoutConfig>,
}

impl SourceConfig {
    /// The source's secrets (room PIN, bearer token), to keep out of logs and events.
    pub fn secrets(&self) -> Vec<&str> {
        let secret = match self {
            SourceConfig::Synthetic(_) | SourceConfig::Render(_) => None,
            SourceConfig::Janus(j) => j.pin.as_deref(),
            SourceConfig::Whep(w) => w.bearer_token.as_deref(),
        };
        secret.into_iter().filter(|s| !s.is_empty()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JanusSource {
    /// WebSocket address of the Janus API.
    #[schemars(regex(pattern = r"^wss?://[^\s]+$"))]
    pub url: String,
    /// VideoRoom room number.
    #[schemars(range(min = 1))]
    pub room: u64,
    /// Room PIN, when the room has one.
    #[serde(default)]
    pub pin: Option<String>,
    /// Who each publisher is, keyed by the publisher's `display` name.
    #[serde(default)]
    pub participants: BTreeMap<String, ParticipantMetadata>,
    /// The job ends once the room has had no publisher for this long.
    #[serde(default = "default_inactivity")]
    #[schemars(range(min = 5, max = 900))]
    pub inactivity_timeout_seconds: u32,
}

fn default_inactivity() -> u32 {
    30
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantMetadata {
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub user_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhepSource {
    /// The WHEP endpoint.
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Who the stream is.
    #[serde(default)]
    pub participant: ParticipantMetadata,
    /// The job ends once the stream has been gone for this long.
    #[serde(default = "default_inactivity")]
    #[schemars(range(min = 5, max = 900))]
    pub inactivity_timeout_seconds: u32,
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
    /// When the call began (RFC 3339). A worker that takes the job later (a redelivered job,
    /// say) joins the call as it stands then, as it would a real call; absent, the call begins
    /// when the worker joins.
    #[serde(default)]
    pub started_at: Option<String>,
}

impl SyntheticSource {
    /// How far into the call a worker joining now lands.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| (chrono::Utc::now() - t.to_utc()).to_std().ok())
            .unwrap_or_default()
    }
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
    /// An encoded clip whose sender answers key-unit requests (a PLI) as a WebRTC sender does:
    /// the answer is the frame of that moment taken from `keyframes`, an all-intra copy.
    #[serde(rename = "keyed_clip")]
    KeyedClip(KeyedClip),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyedClip {
    pub clip: String,
    pub keyframes: String,
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

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A live HLS broadcast: one rendition per quality, segments uploaded as they close.
pub struct HlsConfig {
    /// Renditions, e.g. `["720p", "360p", "audio-only"]`; `audio-only` is the sound alone (AAC).
    #[schemars(length(min = 1, max = 3))]
    pub quality_tracks: Vec<HlsTrack>,
    /// Layout of the broadcast; the recording's layout when absent.
    #[serde(default)]
    pub layout: Option<LayoutConfig>,
    /// Target length of a segment in seconds (a multiple of the 2 s keyframe interval works best).
    #[serde(default = "default_segment_duration")]
    #[schemars(range(min = 1, max = 12))]
    pub segment_duration_s: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Still images of each participant's camera and screen share, one per interval.
pub struct FrameRecordingConfig {
    /// Seconds between two images of one track.
    #[serde(default = "default_capture_interval")]
    #[schemars(range(min = 2, max = 60))]
    pub capture_interval_in_seconds: u32,
    /// The box the images are scaled to fit, keeping their aspect (landscape presets only).
    #[serde(default)]
    pub quality: Quality,
}

fn default_capture_interval() -> u32 {
    3
}

/// The seed's `RawRecordingSettingsRequest` as a job section: each track as it arrived, in a
/// file of its own, and the manifest of the call's timeline beside them. No options yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRecordingConfig {}

/// The seed's `IndividualRecordingSettingsRequest` as a job section, with the composite
/// recording's options: each participant's own picture (fitted to `quality`, never enlarged)
/// and sound, an MP4 per stay, cut into parts of at most `max_file_duration_s`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndividualRecordingConfig {
    #[serde(default)]
    pub audio_only: bool,
    #[serde(default)]
    pub quality: Quality,
    /// Longest part of a file, in seconds.
    #[serde(default = "default_max_file_duration")]
    #[schemars(range(min = 10, max = 86400))]
    pub max_file_duration_s: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// The seed's `ThumbnailsSettingsRequest`, with how often the picture is replaced.
pub struct ThumbnailsConfig {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Seconds between two thumbnails.
    #[serde(default = "default_thumbnail_interval")]
    #[schemars(range(min = 2, max = 60))]
    pub interval_s: u32,
}

impl ThumbnailsConfig {
    /// The width of a thumbnail; its height follows the composite's aspect.
    pub const WIDTH: u32 = 320;
}

fn enabled_by_default() -> bool {
    true
}

fn default_thumbnail_interval() -> u32 {
    10
}

fn default_segment_duration() -> u32 {
    2
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// One RTMP or RTMPS destination.
pub struct RtmpConfig {
    /// Name of this broadcast, carried by its events.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// `rtmp://host[:port]/app` or `rtmps://…`.
    #[schemars(regex(pattern = r"^rtmps?://[^/\s]+/\S+$"))]
    pub stream_url: String,
    /// Appended to the URL; a secret that never appears in logs or events.
    #[serde(default)]
    pub stream_key: Option<String>,
    #[serde(default)]
    pub quality: Quality,
    /// Layout of this stream; the recording's layout when absent.
    #[serde(default)]
    pub layout: Option<LayoutConfig>,
}

impl RtmpConfig {
    /// The full push URL (with the key); for the media graph only, never for logs.
    pub fn push_url(&self) -> String {
        match self.stream_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => format!("{}/{key}", self.stream_url.trim_end_matches('/')),
            None => self.stream_url.clone(),
        }
    }

    /// Removes the stream key from a text (an error message, a pipeline dump).
    pub fn redact(&self, text: &str) -> String {
        crate::redact::redact(text, self.stream_key.as_slice())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
/// The layout of composite outputs; `dominant-speaker` is single-participant by another name.
pub enum LayoutName {
    #[default]
    Grid,
    Spotlight,
    SingleParticipant,
    /// The spelling of the seed's prose; the same layout.
    #[serde(rename = "single_participant")]
    SingleParticipantUnderscored,
    Mobile,
    DominantSpeaker,
}

impl LayoutName {
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutName::Grid => "grid",
            LayoutName::Spotlight => "spotlight",
            LayoutName::SingleParticipant | LayoutName::SingleParticipantUnderscored => "single-participant",
            LayoutName::Mobile => "mobile",
            LayoutName::DominantSpeaker => "dominant-speaker",
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
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
    /// The bucket on the service provider (`s3`, `gcs`; the container for `abs`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Amazon S3 or an S3-compatible store, for `storage_type` `s3`.
    #[serde(default)]
    pub aws_s3: Option<S3Config>,
    /// The service-account JSON (the key file's content), for `storage_type` `gcs`; without it
    /// the Application Default Credentials are used.
    #[serde(default)]
    pub gcs_credentials: Option<String>,
    /// Another GCS endpoint (an emulator), for `storage_type` `gcs`.
    #[serde(default)]
    pub gcs_endpoint_url: Option<String>,
    /// Azure Blob Storage, for `storage_type` `abs`.
    #[serde(default)]
    pub azure_blob: Option<AzureConfig>,
    /// When set, URLs in events are signed download URLs valid for this many seconds (`s3`,
    /// `gcs` with a service account, `abs` with an account key; at most 604800, seven days);
    /// otherwise plain object URLs.
    #[serde(default)]
    pub url_expiry_s: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    #[default]
    Local,
    S3,
    Gcs,
    Abs,
}

#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub s3_region: String,
    /// Access key; without it the default AWS credential chain is used (environment, profile,
    /// web identity, instance role).
    #[serde(default)]
    pub s3_api_key: Option<String>,
    #[serde(default)]
    pub s3_secret: Option<String>,
    /// An S3-compatible endpoint (MinIO and others), addressed path-style.
    #[serde(default)]
    pub s3_custom_endpoint_url: Option<String>,
}

/// Never prints the key or the secret.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("s3_region", &self.s3_region)
            .field("s3_custom_endpoint_url", &self.s3_custom_endpoint_url)
            .finish_non_exhaustive()
    }
}

/// Never prints the service-account JSON (the other secrets hide in their own types).
impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("name", &self.name)
            .field("storage_type", &self.storage_type)
            .field("path", &self.path)
            .field("bucket", &self.bucket)
            .field("aws_s3", &self.aws_s3)
            .field("gcs_endpoint_url", &self.gcs_endpoint_url)
            .field("azure_blob", &self.azure_blob)
            .field("url_expiry_s", &self.url_expiry_s)
            .finish_non_exhaustive()
    }
}

/// Azure Blob Storage: a service principal (`abs_tenant_id`, `abs_client_id`,
/// `abs_client_secret`, as the seed asks), an account key, or a connection string.
#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The storage account; may be left out when a connection string names it.
    #[serde(default)]
    pub abs_account_name: Option<String>,
    #[serde(default)]
    pub abs_tenant_id: Option<String>,
    #[serde(default)]
    pub abs_client_id: Option<String>,
    #[serde(default)]
    pub abs_client_secret: Option<String>,
    /// The account's shared key (base64), instead of a service principal.
    #[serde(default)]
    pub abs_account_key: Option<String>,
    /// A connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`), instead of the above.
    #[serde(default)]
    pub abs_connection_string: Option<String>,
    /// Another blob endpoint (Azurite: `http://127.0.0.1:10000/devstoreaccount1`); the default is
    /// `https://ACCOUNT.blob.core.windows.net`.
    #[serde(default)]
    pub abs_endpoint_url: Option<String>,
}

/// Never prints the secret, the key or the connection string.
impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("abs_account_name", &self.abs_account_name)
            .field("abs_tenant_id", &self.abs_tenant_id)
            .field("abs_client_id", &self.abs_client_id)
            .field("abs_endpoint_url", &self.abs_endpoint_url)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    /// The secrets of this storage, to be kept out of logs and events. The S3 access key id is
    /// not one: it names the key, and every presigned URL carries it (hiding it breaks them).
    pub fn secrets(&self) -> Vec<&str> {
        let s3 = self.aws_s3.iter().map(|s| s.s3_secret.as_deref());
        let azure = self.azure_blob.iter().flat_map(|a| {
            [
                a.abs_client_secret.as_deref(),
                a.abs_account_key.as_deref(),
                a.abs_connection_string.as_deref(),
            ]
        });
        let gcs = self
            .gcs_credentials
            .as_deref()
            .into_iter()
            .flat_map(|c| [Some(c), gcs_private_key(c)]);
        s3.chain(azure)
            .chain(gcs)
            .flatten()
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The private key inside a service-account JSON, as it appears in the text (escaped newlines),
/// so that a message quoting only the key is redacted too.
fn gcs_private_key(credentials: &str) -> Option<&str> {
    let start = credentials.find("-----BEGIN")?;
    let end = credentials[start..].find("-----END")? + start;
    Some(&credentials[start..end])
}

/// Transcription and live closed captions (the seed's "Transcriptions & Captions").
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionConfig {
    /// Spoken language: a code of the seed's list (`en` by default), or `auto` to detect it.
    #[serde(default = "default_language")]
    pub language: String,
    /// Writes the transcript (JSONL, with WebVTT and SRT beside it), stored at the end.
    #[serde(default = "yes")]
    pub transcript: bool,
    /// Sends a `call.closed_caption` event per finished caption.
    #[serde(default)]
    pub closed_captions: bool,
    #[serde(default)]
    pub speech_segment_config: SpeechSegmentConfig,
    /// A second caption per utterance, translated (the seed's `TranslationSettings`).
    #[serde(default)]
    pub translation: Option<TranslationSettings>,
}

/// Captions translated by the speech model's own translate task, which writes English.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslationSettings {
    pub enabled: bool,
    /// Target languages; the model translates into `en` only.
    pub languages: Vec<String>,
}

impl TranscriptionConfig {
    /// Whether each caption also comes translated into English.
    pub fn translates(&self) -> bool {
        self.translation.as_ref().is_some_and(|t| t.enabled)
    }
}

/// How speech is cut into captions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeechSegmentConfig {
    /// Longest caption of continuous speech, in ms.
    #[serde(default = "default_max_speech_caption_ms")]
    #[schemars(range(min = 5000, max = 10000))]
    pub max_speech_caption_ms: u32,
    /// Silence that ends a caption, in ms.
    #[serde(default = "default_silence_duration_ms")]
    #[schemars(range(min = 300, max = 2000))]
    pub silence_duration_ms: u32,
}

impl Default for SpeechSegmentConfig {
    fn default() -> Self {
        SpeechSegmentConfig {
            max_speech_caption_ms: default_max_speech_caption_ms(),
            silence_duration_ms: default_silence_duration_ms(),
        }
    }
}

fn default_language() -> String {
    "en".to_owned()
}
fn yes() -> bool {
    true
}
fn default_max_speech_caption_ms() -> u32 {
    9000
}
fn default_silence_duration_ms() -> u32 {
    700
}

/// The transcription languages of the seed, by code.
pub const TRANSCRIPTION_LANGUAGES: [&str; 36] = [
    "en", "fr", "es", "de", "it", "nl", "pt", "pl", "ca", "cs", "da", "el", "fi", "id", "ja", "ru", "sv",
    "ta", "th", "tr", "hu", "ro", "zh", "ar", "tl", "he", "hi", "hr", "ko", "ms", "no", "uk", "bg", "et",
    "sl", "sk",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The job stops by itself after this many seconds; 0 (as in the seed) means no limit.
    #[serde(default)]
    #[schemars(range(min = 0, max = 86400))]
    pub max_duration_seconds: Option<u32>,
    /// Once every output has been stopped alone and none was started for this long, the worker
    /// leaves the call and the job ends.
    #[serde(default)]
    #[schemars(range(min = 1, max = 3600))]
    pub idle_output_timeout_s: Option<u32>,
}

impl Limits {
    /// `idle_output_timeout_s`, or its default.
    pub fn idle_output_timeout_s(&self) -> u32 {
        self.idle_output_timeout_s.unwrap_or(30)
    }
}
