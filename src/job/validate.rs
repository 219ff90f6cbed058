//! Validation of raw job JSON against the schema generated from the job types, reporting every
//! problem at once with its JSON path and what was expected.

use super::media_access::LocalMedia;
use super::{AudioSpec, Job, SourceConfig, VideoSpec};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::fmt;
use std::sync::OnceLock;

/// One thing wrong (or worth a warning) in a job, at a path like `recording.quality`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A job that passed validation, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct ValidatedJob {
    pub job: Job,
    pub warnings: Vec<Problem>,
}

/// The JSON Schema of the job contract, generated from the types.
pub fn schema_json() -> Value {
    serde_json::to_value(schemars::schema_for!(Job)).expect("a generated schema is valid JSON")
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(&schema_json()).expect("the generated job schema compiles"))
}

/// The largest job taken by default, in bytes; a larger one is refused before it is parsed.
pub const LARGEST_JOB_BYTES: usize = 1024 * 1024;

/// What a job is checked against beyond its contract: the files it may read and its size.
#[derive(Debug, Clone)]
pub struct Intake {
    pub media: LocalMedia,
    pub largest_job_bytes: usize,
}

impl Intake {
    /// Local media below `folder`, jobs up to the default size.
    pub fn below(folder: impl Into<std::path::PathBuf>) -> Intake {
        Intake {
            media: LocalMedia::Below(folder.into()),
            largest_job_bytes: LARGEST_JOB_BYTES,
        }
    }
}

/// Parses and validates a job.
pub fn parse_and_validate(text: &str, intake: &Intake) -> Result<ValidatedJob, Vec<Problem>> {
    if text.len() > intake.largest_job_bytes {
        return Err(vec![too_large(text.len(), intake.largest_job_bytes)]);
    }
    // Keys given twice are reported with whatever else is wrong, the contract's checks and the
    // semantic ones alike.
    let mut duplicates: Vec<Problem> = Vec::new();
    let value = super::strict_json::parse(text, &mut duplicates).map_err(|e| {
        vec![Problem::new(
            "job",
            format!("expected a JSON object; the text is not valid JSON ({e})"),
        )]
    })?;
    let mut problems = duplicates.clone();
    for error in validator().iter_errors(&value) {
        describe(&error, &mut problems);
    }
    if problems.len() > duplicates.len() {
        problems.dedup();
        return Err(problems);
    }
    let job: Job = serde_json::from_value(value).map_err(|e| {
        vec![Problem::new(
            "job",
            format!("does not match the job contract: {e}"),
        )]
    })?;
    check_semantics(&job, &intake.media, &mut problems);
    for (path, layout) in layouts_of(&job) {
        if let Err(errors) = crate::layout::LayoutPlan::new(layout.name.as_str(), &layout.options) {
            for (key, message) in errors {
                problems.push(Problem::new(format!("{path}.options.{key}"), message));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let warnings = collect_warnings(&job);
    Ok(ValidatedJob { job, warnings })
}

/// Checks an output section sent to a running job (`egress start`) as a part of that job: the
/// same contract and rules, its problems named as in a job (`rtmp[1].stream_url`, say). Returns
/// the job with the section added.
pub fn with_added_section(
    job: &Job,
    output: &str,
    section: &Value,
    intake: &Intake,
) -> Result<Job, Vec<Problem>> {
    let refused = |message: String| vec![Problem::new(output, message)];
    let mut value = serde_json::to_value(job)
        .map_err(|e| refused(format!("the running job cannot be read back: {e}")))?;
    let fields = value
        .as_object_mut()
        .ok_or_else(|| refused("the running job cannot be read back".into()))?;
    if output == "rtmp" {
        let pushes = fields.entry("rtmp").or_insert_with(|| Value::Array(Vec::new()));
        match pushes.as_array_mut() {
            Some(pushes) => pushes.push(section.clone()),
            None => *pushes = Value::Array(vec![section.clone()]),
        }
    } else {
        fields.insert(output.to_owned(), section.clone());
    }
    parse_and_validate(&value.to_string(), intake).map(|validated| validated.job)
}

/// Turns a JSON pointer (`/source/participants/0/user_id`) into `source.participants[0].user_id`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    if out.is_empty() { "job".to_owned() } else { out }
}

fn child(path: &str, key: &str) -> String {
    if path == "job" {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn got(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        other => other.to_string(),
    }
}

fn type_name(kind: &TypeKind) -> String {
    let names: Vec<String> = match kind {
        TypeKind::Single(t) => vec![t.to_string()],
        TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
    };
    names.join(" or ")
}

fn list(options: &Value) -> String {
    match options {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn describe(error: &ValidationError<'_>, out: &mut Vec<Problem>) {
    let path = dotted(error.instance_path().as_str());
    let instance = error.instance();
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(Problem::new(child(&path, name), "required field is missing"));
            return;
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                out.push(Problem::new(child(&path, name), "unknown field"));
            }
            return;
        }
        ValidationErrorKind::Enum { options } => {
            format!("expected one of {}; got {}", list(options), got(instance))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("expected {expected_value}; got {}", got(instance))
        }
        ValidationErrorKind::Type { kind } => {
            format!("expected {}; got {}", type_name(kind), json_kind(instance))
        }
        ValidationErrorKind::Minimum { limit } => format!("expected at least {limit}; got {instance}"),
        ValidationErrorKind::Maximum { limit } => format!("expected at most {limit}; got {instance}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("expected more than {limit}; got {instance}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("expected less than {limit}; got {instance}")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("expected at least {limit} characters; got {}", got(instance))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!(
                "expected at most {limit} characters; got {} characters",
                instance.as_str().map_or(0, |s| s.chars().count())
            )
        }
        ValidationErrorKind::MaxItems { limit } => format!("expected at most {limit} items"),
        ValidationErrorKind::MinItems { limit } => format!("expected at least {limit} items"),
        ValidationErrorKind::Pattern { pattern } => {
            format!("expected text matching {pattern}; got {}", got(instance))
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            describe_alternatives(&path, instance, context, out);
            return;
        }
        _ => error.to_string(),
    };
    out.push(Problem::new(path, message));
}

/// Explains a value that matched none of several accepted forms, by reporting the errors of the
/// form the value was evidently meant to have.
fn describe_alternatives(
    path: &str,
    instance: &Value,
    branches: &[Vec<ValidationError<'static>>],
    out: &mut Vec<Problem>,
) {
    let here = |e: &ValidationError<'_>| dotted(e.instance_path().as_str()) == path;
    // A branch whose only complaint is the value's JSON type at this very path is another form.
    let wrong_type = |errors: &Vec<ValidationError<'static>>| {
        errors
            .iter()
            .any(|e| here(e) && matches!(e.kind(), ValidationErrorKind::Type { .. }))
    };
    // A branch that rejects the discriminating `type` tag is another variant.
    let tag_path = child(path, "type");
    let wrong_tag = |errors: &Vec<ValidationError<'static>>| {
        errors.iter().any(|e| {
            dotted(e.instance_path().as_str()) == tag_path
                && matches!(e.kind(), ValidationErrorKind::Constant { .. })
        })
    };
    let candidates: Vec<&Vec<ValidationError<'static>>> = branches
        .iter()
        .filter(|b| !wrong_type(b) && !wrong_tag(b))
        .collect();

    if candidates.is_empty() {
        let tags: Vec<String> = branches
            .iter()
            .flat_map(|b| b.iter())
            .filter_map(|e| match e.kind() {
                ValidationErrorKind::Constant { expected_value }
                    if dotted(e.instance_path().as_str()) == tag_path =>
                {
                    expected_value.as_str().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        if !tags.is_empty() && instance.get("type").is_some() {
            let tag = instance.get("type").map(got).unwrap_or_default();
            out.push(Problem::new(
                tag_path,
                format!("expected one of {}; got {tag}", tags.join(", ")),
            ));
        } else if instance.is_object() && !tags.is_empty() {
            out.push(Problem::new(
                tag_path,
                format!("required field is missing (one of {})", tags.join(", ")),
            ));
        } else {
            let kinds: Vec<String> = branches
                .iter()
                .flat_map(|b| b.iter())
                .filter(|e| here(e))
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Type { kind } => Some(type_name(kind)),
                    _ => None,
                })
                .collect();
            out.push(Problem::new(
                path,
                format!("expected {}; got {}", kinds.join(" or "), json_kind(instance)),
            ));
        }
        return;
    }
    // Names from several lists (a quality or `audio-only`): one list of every accepted name.
    let names: Option<Vec<Value>> = candidates
        .iter()
        .map(|b| match b.as_slice() {
            [e] if here(e) => match e.kind() {
                ValidationErrorKind::Enum { options } => options.as_array().cloned(),
                ValidationErrorKind::Constant { expected_value } => Some(vec![(**expected_value).clone()]),
                _ => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<Vec<Value>>>>()
        .map(|lists| lists.concat());
    if let Some(names) = names {
        out.push(Problem::new(
            path,
            format!(
                "expected one of {}; got {}",
                list(&Value::Array(names)),
                got(instance)
            ),
        ));
        return;
    }
    let best = candidates.iter().min_by_key(|b| b.len()).expect("not empty");
    for e in best.iter() {
        describe(e, out);
    }
}

/// The problems of a storage configuration on its own (`egress storage check`).
pub fn storage_problems(storage: &super::StorageConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    check_storage(storage, &mut out);
    for p in &mut out {
        p.path = p.path.trim_start_matches("storage.").to_owned();
    }
    out
}

/// Longest validity of a signed URL: seven days (the S3 and GCS V4 limit).
const LONGEST_URL_EXPIRY_S: u32 = 604_800;

fn check_storage(storage: &super::StorageConfig, out: &mut Vec<Problem>) {
    use super::StorageType;
    if let Some(expiry) = storage.url_expiry_s {
        if storage.storage_type == StorageType::Local {
            out.push(Problem::new(
                "storage.url_expiry_s",
                "signed URLs need storage_type s3, gcs or abs",
            ));
        } else if !(1..=LONGEST_URL_EXPIRY_S).contains(&expiry) {
            out.push(Problem::new(
                "storage.url_expiry_s",
                format!("expected 1 to {LONGEST_URL_EXPIRY_S} seconds (7 days); got {expiry}"),
            ));
        }
    }
    let kind = match storage.storage_type {
        StorageType::Local => "local",
        StorageType::S3 => "s3",
        StorageType::Gcs => "gcs",
        StorageType::Abs => "abs",
    };
    let sections = [
        ("aws_s3", storage.aws_s3.is_some(), "s3"),
        ("gcs_credentials", storage.gcs_credentials.is_some(), "gcs"),
        ("gcs_endpoint_url", storage.gcs_endpoint_url.is_some(), "gcs"),
        ("azure_blob", storage.azure_blob.is_some(), "abs"),
    ];
    for (field, present, for_kind) in sections {
        if present && for_kind != kind {
            out.push(Problem::new(
                format!("storage.{field}"),
                format!("belongs to storage_type {for_kind}, not {kind}"),
            ));
        }
    }
    if kind == "local" {
        return;
    }
    if storage.bucket.as_deref().is_none_or(str::is_empty) {
        let what = if kind == "abs" {
            "the container name"
        } else {
            "the bucket name"
        };
        out.push(Problem::new(
            "storage.bucket",
            format!("expected {what} for storage_type {kind}"),
        ));
    }
    match storage.storage_type {
        StorageType::S3 => check_s3(storage, out),
        StorageType::Gcs => check_gcs(storage, out),
        StorageType::Abs => check_azure(storage, out),
        StorageType::Local => {}
    }
}

fn check_url(path: &str, url: Option<&String>, out: &mut Vec<Problem>) {
    if let Some(url) = url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        out.push(Problem::new(
            path,
            format!("expected an http(s) URL; got {url:?}"),
        ));
    }
}

fn check_s3(storage: &super::StorageConfig, out: &mut Vec<Problem>) {
    let Some(s3) = &storage.aws_s3 else {
        out.push(Problem::new(
            "storage.aws_s3",
            "expected {\"s3_region\": …} for storage_type s3",
        ));
        return;
    };
    if s3.s3_region.trim().is_empty() {
        out.push(Problem::new(
            "storage.aws_s3.s3_region",
            "expected a region such as us-east-1",
        ));
    }
    if s3.s3_api_key.is_some() != s3.s3_secret.is_some() {
        out.push(Problem::new(
            "storage.aws_s3",
            "expected s3_api_key and s3_secret together, or neither (default credential chain)",
        ));
    }
    check_url(
        "storage.aws_s3.s3_custom_endpoint_url",
        s3.s3_custom_endpoint_url.as_ref(),
        out,
    );
}

fn check_gcs(storage: &super::StorageConfig, out: &mut Vec<Problem>) {
    check_url("storage.gcs_endpoint_url", storage.gcs_endpoint_url.as_ref(), out);
    let Some(credentials) = &storage.gcs_credentials else {
        return;
    };
    // Never quote the value: it holds a private key.
    let parsed: Option<serde_json::Value> = serde_json::from_str(credentials).ok();
    let Some(parsed) = parsed.filter(serde_json::Value::is_object) else {
        out.push(Problem::new(
            "storage.gcs_credentials",
            "expected the content of a service-account JSON key file (a JSON object)",
        ));
        return;
    };
    if parsed["type"] != "service_account" {
        out.push(Problem::new(
            "storage.gcs_credentials",
            "expected a service-account key (\"type\": \"service_account\")",
        ));
    }
    for field in ["client_email", "private_key"] {
        if !parsed[field].is_string() {
            out.push(Problem::new(
                "storage.gcs_credentials",
                format!("expected the service-account key's {field:?}"),
            ));
        }
    }
}

fn check_azure(storage: &super::StorageConfig, out: &mut Vec<Problem>) {
    let Some(azure) = &storage.azure_blob else {
        out.push(Problem::new(
            "storage.azure_blob",
            "expected {\"abs_account_name\", \"abs_tenant_id\", \"abs_client_id\", \"abs_client_secret\"} \
             (or abs_account_key, or abs_connection_string) for storage_type abs",
        ));
        return;
    };
    let principal = [
        &azure.abs_tenant_id,
        &azure.abs_client_id,
        &azure.abs_client_secret,
    ];
    let principal_given = principal.iter().filter(|v| v.is_some()).count();
    let forms = usize::from(principal_given > 0)
        + usize::from(azure.abs_account_key.is_some())
        + usize::from(azure.abs_connection_string.is_some());
    if forms != 1 {
        out.push(Problem::new(
            "storage.azure_blob",
            "expected one way to sign in: abs_tenant_id + abs_client_id + abs_client_secret, \
             or abs_account_key, or abs_connection_string",
        ));
    } else if principal_given > 0 && principal_given < 3 {
        out.push(Problem::new(
            "storage.azure_blob",
            "expected abs_tenant_id, abs_client_id and abs_client_secret together",
        ));
    }
    if azure.abs_connection_string.is_none() && azure.abs_account_name.as_deref().is_none_or(str::is_empty) {
        out.push(Problem::new(
            "storage.azure_blob.abs_account_name",
            "expected the storage account name",
        ));
    }
    if let Some(text) = &azure.abs_connection_string
        && let Err(e) = crate::storage::ConnectionString::parse(text)
    {
        out.push(Problem::new("storage.azure_blob.abs_connection_string", e));
    }
    check_url(
        "storage.azure_blob.abs_endpoint_url",
        azure.abs_endpoint_url.as_ref(),
        out,
    );
}

/// Secrets too short to be told apart from other text could not be kept out of logs.
fn check_secret_lengths(job: &Job, out: &mut Vec<Problem>) {
    let mut secrets: Vec<(String, Option<&str>)> = job
        .rtmp
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("rtmp[{i}].stream_key"), r.stream_key.as_deref()))
        .collect();
    if let Some(s3) = &job.storage.aws_s3 {
        secrets.push(("storage.aws_s3.s3_api_key".into(), s3.s3_api_key.as_deref()));
        secrets.push(("storage.aws_s3.s3_secret".into(), s3.s3_secret.as_deref()));
    }
    if let Some(azure) = &job.storage.azure_blob {
        secrets.push((
            "storage.azure_blob.abs_client_secret".into(),
            azure.abs_client_secret.as_deref(),
        ));
        secrets.push((
            "storage.azure_blob.abs_account_key".into(),
            azure.abs_account_key.as_deref(),
        ));
    }
    match &job.source {
        SourceConfig::Janus(j) => secrets.push(("source.pin".into(), j.pin.as_deref())),
        SourceConfig::Whep(w) => secrets.push(("source.bearer_token".into(), w.bearer_token.as_deref())),
        SourceConfig::Synthetic(_) | SourceConfig::Render(_) => {}
    }
    let passwords: Vec<(String, Option<String>)> = job
        .rtmp
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let password = url::Url::parse(&r.stream_url)
                .ok()
                .and_then(|u| u.password().map(str::to_owned));
            (format!("rtmp[{i}].stream_url"), password)
        })
        .collect();
    secrets.extend(passwords.iter().map(|(path, p)| (path.clone(), p.as_deref())));
    let shortest = crate::redact::SHORTEST_SECRET;
    for (path, secret) in secrets {
        let length = secret.map_or(0, |s| s.chars().count());
        if (1..shortest).contains(&length) {
            out.push(Problem::new(
                path,
                format!("expected a secret of at least {shortest} characters (a shorter one cannot be kept out of logs); got {length}"),
            ));
        }
    }
}

/// The problem of a job larger than `largest` bytes.
pub fn too_large(size: usize, largest: usize) -> Problem {
    Problem::new(
        "job",
        format!("expected a job of at most {largest} bytes; got {size} or more"),
    )
}

/// The platform's call object may say more than the worker knows, never something else.
fn check_call_details(job: &Job, out: &mut Vec<Problem>) {
    let Some(call) = &job.call else {
        return;
    };
    let expected = [
        ("cid", job.call_cid.as_str()),
        ("type", job.call_type()),
        ("id", job.call_id()),
    ];
    for (field, value) in expected {
        if let Some(given) = call.get(field)
            && given.as_str() != Some(value)
        {
            out.push(Problem::new(
                format!("call.{field}"),
                format!("expected {value:?} (from call_cid); got {given}"),
            ));
        }
    }
}

fn check_semantics(job: &Job, media: &LocalMedia, out: &mut Vec<Problem>) {
    check_storage(&job.storage, out);
    check_call_details(job, out);
    let composite =
        job.recording.as_ref().is_some_and(|r| !r.audio_only) || job.hls.is_some() || !job.rtmp.is_empty();
    if job.thumbnails.as_ref().is_some_and(|t| t.enabled) && !composite {
        out.push(Problem::new(
            "thumbnails",
            "expected a composite output beside it (a recording with video, hls or rtmp): a thumbnail is a picture of the composite",
        ));
    }
    check_secret_lengths(job, out);
    check_logos(job, media, out);
    if let Some(t) = &job.transcription {
        if t.language != "auto" && !super::TRANSCRIPTION_LANGUAGES.contains(&t.language.as_str()) {
            out.push(Problem::new(
                "transcription.language",
                format!(
                    "expected auto or one of {}; got {:?}",
                    super::TRANSCRIPTION_LANGUAGES.join(", "),
                    t.language
                ),
            ));
        }
        if let Some(translation) = t.translation.as_ref().filter(|t| t.enabled) {
            if translation.languages.is_empty() {
                out.push(Problem::new(
                    "transcription.translation.languages",
                    "expected at least one target language (en)",
                ));
            }
            for (i, language) in translation.languages.iter().enumerate() {
                if language != "en" {
                    out.push(Problem::new(
                        format!("transcription.translation.languages[{i}]"),
                        format!(
                            "no translation model for {language:?}: the speech model translates into en only"
                        ),
                    ));
                }
            }
            if !t.closed_captions {
                out.push(Problem::new(
                    "transcription.translation",
                    "translations come as captions; expected closed_captions true",
                ));
            }
        }
        if !t.transcript && !t.closed_captions {
            out.push(Problem::new(
                "transcription",
                "nothing to produce; expected transcript or closed_captions (or both) true",
            ));
        }
    }
    if let Some(frames) = &job.frame_recording
        && frames.quality.landscape() != frames.quality
    {
        out.push(Problem::new(
            "frame_recording.quality",
            format!(
                "expected one of 360p, 480p, 720p, 1080p, 1440p; got {:?}",
                frames.quality.name()
            ),
        ));
    }
    if let Some(hls) = &job.hls {
        for (i, q) in hls.quality_tracks.iter().enumerate() {
            if hls.quality_tracks[..i].contains(q) {
                out.push(Problem::new(
                    format!("hls.quality_tracks[{i}]"),
                    format!("expected distinct qualities; {} is listed twice", q.name()),
                ));
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, r) in job.rtmp.iter().enumerate() {
        if names.contains(&r.name.as_str()) {
            out.push(Problem::new(
                format!("rtmp[{i}].name"),
                format!("expected a unique name; \"{}\" is used twice", r.name),
            ));
        }
        names.push(&r.name);
    }
    match &job.source {
        SourceConfig::Synthetic(source) => {
            if let Some(started) = &source.started_at
                && chrono::DateTime::parse_from_rfc3339(started).is_err()
            {
                out.push(Problem::new(
                    "source.started_at",
                    format!("expected an RFC 3339 time such as 2026-01-31T09:00:00Z; got \"{started}\""),
                ));
            }
            // A user id given twice is one participant who leaves and returns.
            let mut stays: std::collections::HashMap<&str, Vec<(f64, f64)>> = Default::default();
            for (i, p) in source.participants.iter().enumerate() {
                let at = format!("source.participants[{i}]");
                let stay = (p.join_at_s, p.leave_at_s.unwrap_or(f64::INFINITY));
                let earlier = stays.entry(p.user_id.as_str()).or_default();
                if earlier
                    .iter()
                    .any(|&(join, leave)| stay.0 < leave && join < stay.1)
                {
                    out.push(Problem::new(
                        format!("{at}.user_id"),
                        format!(
                            "expected a unique user id, or stays that do not overlap (one who leaves and returns); \"{}\" is in the call twice at once",
                            p.user_id
                        ),
                    ));
                }
                earlier.push(stay);
                if p.join_at_s >= source.duration_s {
                    out.push(Problem::new(
                        format!("{at}.join_at_s"),
                        format!(
                            "expected a time before the end of the call ({} s); got {}",
                            source.duration_s, p.join_at_s
                        ),
                    ));
                }
                if let Some(leave) = p.leave_at_s
                    && leave <= p.join_at_s
                {
                    out.push(Problem::new(
                        format!("{at}.leave_at_s"),
                        format!("expected a time after join_at_s ({}); got {leave}", p.join_at_s),
                    ));
                }
                for (field, spec) in [("video", &p.video), ("screenshare", &p.screenshare)] {
                    match spec {
                        Some(VideoSpec::Clip(file)) => {
                            check_file(&format!("{at}.{field}.clip"), file, media, out);
                        }
                        Some(VideoSpec::KeyedClip(keyed)) => {
                            let field = format!("{at}.{field}.keyed_clip");
                            check_file(&format!("{field}.clip"), &keyed.clip, media, out);
                            check_file(&format!("{field}.keyframes"), &keyed.keyframes, media, out);
                        }
                        _ => {}
                    }
                }
                if let Some(AudioSpec::File { file }) = &p.audio {
                    check_file(&format!("{at}.audio.file"), file, media, out);
                }
            }
        }
        SourceConfig::Janus(source) => {
            match url::Url::parse(&source.url) {
                Ok(url) if matches!(url.scheme(), "ws" | "wss") && url.host_str().is_some() => {}
                _ => out.push(Problem::new(
                    "source.url",
                    format!(
                        "expected the WebSocket URL of the Janus API, like ws://host:8188 or wss://host; got \"{}\"",
                        source.url
                    ),
                )),
            }
            let mut seen = std::collections::HashSet::new();
            for (display, meta) in &source.participants {
                if let Some(user_id) = meta.user_id.as_deref()
                    && !seen.insert(user_id)
                {
                    out.push(Problem::new(
                        format!("source.participants.{display}.user_id"),
                        format!("expected a unique user id; \"{user_id}\" is used twice"),
                    ));
                }
            }
        }
        SourceConfig::Render(source) => check_render(job, source, media, out),
        SourceConfig::Whep(source) => {
            if !url::Url::parse(&source.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                out.push(Problem::new(
                    "source.url",
                    format!(
                        "expected the http(s) URL of a WHEP endpoint; got \"{}\"",
                        source.url
                    ),
                ));
            }
        }
    }
}

/// A render job reads a manifest it may read and writes one composite recording.
fn check_render(job: &Job, source: &super::RenderSource, media: &LocalMedia, out: &mut Vec<Problem>) {
    match media.resolve(&source.manifest) {
        Ok(path) => {
            if let Err(e) = crate::manifest::Manifest::load(&path) {
                out.push(Problem::new("source.manifest", e.to_string()));
            }
        }
        Err(e) => out.push(Problem::new("source.manifest", e.to_string())),
    }
    if let Some(layout) = &source.layout
        && let Err(errors) = crate::layout::LayoutPlan::new(layout.name.as_str(), &layout.options)
    {
        for (key, problem) in errors {
            out.push(Problem::new(format!("source.layout.options.{key}"), problem));
        }
    }
    match &job.recording {
        Some(recording) if recording.audio_only => out.push(Problem::new(
            "recording.audio_only",
            "expected false: a render composites the call's video",
        )),
        Some(_) => {}
        None => out.push(Problem::new(
            "recording",
            "expected a recording section: a render source writes the composite recording",
        )),
    }
    let others = [
        ("hls", job.hls.is_some()),
        ("rtmp", !job.rtmp.is_empty()),
        ("frame_recording", job.frame_recording.is_some()),
        ("transcription", job.transcription.is_some()),
        ("thumbnails", job.thumbnails.is_some()),
        ("raw_recording", job.raw_recording.is_some()),
        ("individual_recording", job.individual_recording.is_some()),
    ];
    for (section, _) in others.iter().filter(|(_, asked)| *asked) {
        out.push(Problem::new(
            *section,
            "expected no such section: a render source writes the composite recording only",
        ));
    }
}

fn check_file(path: &str, file: &str, media: &LocalMedia, out: &mut Vec<Problem>) {
    if let Err(e) = media.resolve(file) {
        out.push(Problem::new(path, e.to_string()));
    }
}

/// Logos named as local files obey the same rule as clips.
fn check_logos(job: &Job, media: &LocalMedia, out: &mut Vec<Problem>) {
    for (path, layout) in layouts_of(job) {
        let mut urls = Vec::new();
        crate::layout::collect_logo_urls(
            &serde_json::to_value(&layout.options).unwrap_or_default(),
            &mut urls,
        );
        for url in urls.iter().filter(|u| super::media_access::is_local(u)) {
            check_file(&format!("{path}.options.logo.image_url"), url, media, out);
        }
    }
}

/// Every layout the job gives, with its path.
fn layouts_of(job: &Job) -> Vec<(String, &super::LayoutConfig)> {
    let mut layouts = Vec::new();
    if let Some(recording) = &job.recording {
        layouts.push(("recording.layout".to_owned(), &recording.layout));
    }
    if let Some(layout) = job.hls.as_ref().and_then(|h| h.layout.as_ref()) {
        layouts.push(("hls.layout".to_owned(), layout));
    }
    for (i, r) in job.rtmp.iter().enumerate() {
        if let Some(layout) = &r.layout {
            layouts.push((format!("rtmp[{i}].layout"), layout));
        }
    }
    layouts
}

fn collect_warnings(job: &Job) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for (path, layout) in layouts_of(job) {
        for key in layout.options.keys() {
            if !crate::layout::is_known(key) {
                warnings.push(Problem::new(
                    format!("{path}.options.{key}"),
                    "unknown layout option; ignored",
                ));
            }
        }
    }
    if let Some(hls) = &job.hls {
        // Segments close on keyframes, which come at a fixed interval.
        let gop = crate::media::presets().video.keyframe_interval_s;
        let asked = hls.segment_duration_s;
        if asked % gop != 0 {
            let actual = asked.div_ceil(gop) * gop;
            warnings.push(Problem::new(
                "hls.segment_duration_s",
                format!("segments close on keyframes every {gop} s; they will last {actual} s"),
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_job() -> Job {
        let text = serde_json::json!({
            "call_cid": "default:c1",
            "source": { "type": "synthetic", "duration_s": 5, "participants": [
                { "user_id": "alice", "video": { "color": "#ff0000" }, "audio": "sine" } ] },
            "recording": { "quality": "360p" },
            "rtmp": [ { "name": "a", "stream_url": "rtmp://127.0.0.1/live", "stream_key": "sk-one-77" } ],
            "storage": { "storage_type": "local" }
        })
        .to_string();
        parse_and_validate(&text, &Intake::below("/nonexistent"))
            .map(|v| v.job)
            .unwrap()
    }

    #[test]
    fn a_participant_may_return_but_not_be_in_the_call_twice_at_once() {
        let job = |second_join: f64| {
            serde_json::json!({
                "call_cid": "default:c1",
                "source": { "type": "synthetic", "duration_s": 20, "participants": [
                    { "user_id": "bob", "join_at_s": 2, "leave_at_s": 8 },
                    { "user_id": "bob", "join_at_s": second_join } ] },
                "recording": { "audio_only": true },
                "storage": { "storage_type": "local" }
            })
            .to_string()
        };
        assert!(parse_and_validate(&job(10.0), &Intake::below("/nonexistent")).is_ok());
        let problems = parse_and_validate(&job(6.0), &Intake::below("/nonexistent")).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("source.participants[1].user_id") && t.contains("twice at once")),
            "{text:?}"
        );
    }

    #[test]
    fn a_section_added_to_a_running_job_is_checked_as_a_part_of_it() {
        let job = running_job();
        let intake = Intake::below("/nonexistent");
        let push = serde_json::json!({ "name": "b", "stream_url": "rtmps://host/app", "quality": "360p" });
        let with_push = with_added_section(&job, "rtmp", &push, &intake).unwrap();
        assert_eq!(with_push.rtmp.len(), 2);
        assert_eq!(with_push.rtmp[1].name, "b");

        let bad = serde_json::json!({ "name": "c", "stream_url": "http://host/app", "colour": 1 });
        let problems = with_added_section(&job, "rtmp", &bad, &intake).unwrap_err();
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            said.iter().any(|p| p.starts_with("rtmp[1].stream_url")),
            "{said:?}"
        );
        assert!(said.iter().any(|p| p.contains("colour")), "{said:?}");

        let twice = serde_json::json!({ "name": "a", "stream_url": "rtmp://host/app" });
        let problems = with_added_section(&job, "rtmp", &twice, &intake).unwrap_err();
        assert!(
            problems.iter().any(|p| p.to_string().starts_with("rtmp[1].name")),
            "{problems:?}"
        );
    }
}
