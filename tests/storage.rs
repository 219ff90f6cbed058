//! Storage backends against real emulators on loopback ports: S3 (moto), GCS
//! (gcp-storage-emulator) and Azure Blob (Azurite). Every backend passes the same checks (a
//! call's outputs arrive byte for byte, a store frozen for 30 s loses nothing, a killed
//! worker's uploads are resumed, 300 MB go up in pieces) and tells its problems in plain words
//! without leaking its secret.

mod common;
mod storage {
    pub mod checks;
    pub mod emulators;
}

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use storage::checks::*;
use storage::emulators::*;

// S3 (moto)

#[test]
fn s3_a_call_lands_with_every_output() {
    a_call_lands_with_every_output(&Moto::start(), "s3");
}

#[test]
fn s3_a_store_frozen_for_30_s_loses_nothing() {
    a_store_frozen_for_30_s_loses_nothing(&mut Moto::start(), "s3");
}

#[test]
fn s3_uploads_a_killed_worker_left_are_resumed() {
    uploads_a_killed_worker_left_are_resumed(&mut Moto::start(), "s3");
}

#[test]
fn s3_large_files_go_up_in_parts() {
    let moto = Moto::start();
    let key = a_large_file_arrives_byte_for_byte(&moto, "s3");
    // A multipart object's ETag ends in the number of its parts.
    let etag = moto.etag(&key);
    let parts: u32 = etag
        .trim_matches('"')
        .rsplit_once('-')
        .and_then(|(_, count)| count.parse().ok())
        .unwrap_or(1);
    assert!(parts >= 2, "a multipart upload: {etag}");
}

#[test]
fn s3_problems_are_told_in_plain_words() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-check");
    let check = |storage: &Value| storage_check(&scratch, storage, S3_SECRET);

    let (code, text) = check(&moto.storage(BUCKET));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("storage check passed"), "{text}");
    assert_eq!(
        moto.get(&format!("{PREFIX}/egress-storage-check.txt")),
        b"egress storage check\n"
    );

    let (code, text) = check(&moto.storage("no-such-bucket"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("missing bucket: no-such-bucket does not exist"),
        "{text}"
    );

    let mut unreachable = moto.storage(BUCKET);
    unreachable["aws_s3"]["s3_custom_endpoint_url"] = json!(format!("http://127.0.0.1:{}", free_port()));
    let (code, text) = check(&unreachable);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unreachable endpoint"), "{text}");

    let mut incomplete = moto.storage(BUCKET);
    incomplete["aws_s3"].as_object_mut().unwrap().remove("s3_secret");
    let (code, text) = check(&incomplete);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("aws_s3: expected s3_api_key and s3_secret together"),
        "{text}"
    );

    // A job whose bucket does not exist fails before it records anything, and says why.
    let job = json!({
        "egress_id": "eg_nobucket",
        "call_cid": "default:nobucket",
        "source": { "type": "synthetic", "duration_s": 3, "participants": [{ "user_id": "alice" }] },
        "recording": { "quality": "360p" },
        "storage": moto.storage("no-such-bucket")
    });
    let (output, events) = run_job(&scratch, &job);
    assert!(!output.status.success());
    let failed = events
        .iter()
        .find(|e| e["type"] == "call.recording_failed")
        .unwrap_or_else(|| panic!("a failed event: {events:?}"));
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("missing bucket: no-such-bucket does not exist"),
        "{error}"
    );
    assert!(
        !events.iter().any(|e| e["type"] == "call.recording_started"),
        "nothing started: {events:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(S3_SECRET) && !error.contains(S3_SECRET),
        "the secret leaked"
    );
}

#[test]
fn files_a_store_never_takes_stay_in_the_backup_folder() {
    let mut moto = Moto::start();
    let scratch = Scratch::new("s3-down");
    let job = json!({
        "egress_id": "eg_down",
        "call_cid": "default:down",
        "source": { "type": "synthetic", "duration_s": 6, "participants": [
            { "user_id": "alice", "video": { "color": "#e53935" }, "audio": "sine" }
        ]},
        "recording": { "quality": "360p" },
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "storage": moto.storage(BUCKET)
    });
    let mut running = Running::spawn(&scratch, &job, &["--upload-deadline", "4"]);
    running.wait_for("call.recording_started", Duration::from_secs(30));
    // The store goes away for good.
    moto.service().stop();
    let log = running.log.clone();
    let (status, events) = running.end(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(1),
        "the job reports that files were not stored"
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(!log.contains(S3_SECRET), "the secret leaked");

    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().ends_with("_failed"))
        .collect();
    let types: Vec<&str> = failed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.len(),
        2,
        "one failure for the recording, one for the frames: {events:#?}"
    );
    assert!(types.contains(&"call.recording_failed") && types.contains(&"call.frame_recording_failed"));
    for event in &failed {
        let error = event["error"].as_str().unwrap();
        assert!(
            error.contains(".backup/eg_down"),
            "says where the files are: {error}"
        );
        assert!(
            error.contains("failed for 4 s"),
            "retried until the deadline: {error}"
        );
        assert!(!error.contains(S3_SECRET));
    }
    assert!(
        !events.iter().any(|e| e["type"] == "call.recording_ready"),
        "nothing is announced as stored"
    );
    let backup = scratch.out().join(".backup/eg_down");
    let mp4 = files_below(&backup)
        .into_iter()
        .find(|f| f.extension().is_some_and(|e| e == "mp4"))
        .unwrap_or_else(|| panic!("the recording is in {}", backup.display()));
    assert!(
        mp4.starts_with(backup.join("tenant-7")),
        "kept under its key: {}",
        mp4.display()
    );
    let duration = duration_s(&probe(&mp4));
    assert!(
        (duration - 6.0).abs() <= 0.1,
        "the kept MP4 is whole: {duration} s"
    );
    // Stills at 0, 2 and 4 s: each either stored before the store went away (and announced) or
    // kept in the backup folder.
    let jpegs = files_below(&backup)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jpg"))
        .count();
    let announced = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .count();
    assert!(
        jpegs >= 2,
        "the stills taken after the store went away are kept: {jpegs}"
    );
    assert_eq!(jpegs + announced, 3, "every still is stored or kept");
}

#[test]
fn a_key_revoked_during_the_call_fails_the_output_at_once_not_after_the_deadline() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-revoked");
    let ((writer, writer_secret), _) = iam_users(&moto);
    let (admin, admin_secret) = iam_user(
        &moto,
        "admin",
        json!([{ "Effect": "Allow", "Action": "*", "Resource": "*" }]),
    );
    enforce_iam(&moto);
    let mut storage = moto.storage(BUCKET);
    storage["aws_s3"]["s3_api_key"] = json!(writer);
    storage["aws_s3"]["s3_secret"] = json!(writer_secret);
    let job = json!({
        "egress_id": "eg_revoked",
        "call_cid": "default:revoked",
        "source": { "type": "synthetic", "duration_s": 4, "participants": [
            { "user_id": "alice", "video": { "color": "#3949ab" }, "audio": "sine" }
        ]},
        "recording": { "quality": "360p" },
        "storage": storage
    });
    // The default deadline: a store that refuses for a while would be retried for 10 minutes.
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(30));
    let started = std::time::Instant::now();
    python(&format!(
        r#"
import boto3
iam = boto3.client("iam", endpoint_url="{endpoint}", region_name="us-east-1",
                   aws_access_key_id="{admin}", aws_secret_access_key="{admin_secret}")
iam.delete_access_key(UserName="writer", AccessKeyId="{writer}")
"#,
        endpoint = moto.endpoint
    ));
    // The call's file is the first the store is asked to take, when the 4 s call ends.
    let failed = running.wait_for("call.recording_failed", Duration::from_secs(60));
    let took = started.elapsed();
    let (status, events) = running.end(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "the job reports the file was not stored");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("wrong key"), "the plain reason: {error}");
    assert!(
        !error.contains("failed for"),
        "not retried until a deadline: {error}"
    );
    assert!(!error.contains(&writer_secret));
    assert!(!events.iter().any(|e| e["type"] == "call.recording_ready"));
    let kept = files_below(&scratch.out().join(".backup/eg_revoked"))
        .into_iter()
        .find(|f| f.extension().is_some_and(|e| e == "mp4"))
        .expect("the recording is kept in the backup folder");
    assert!((duration_s(&probe(&kept)) - 4.0).abs() <= 0.1);
    println!(
        "permanent store error: the failed event {:.1} s after the recording started, in a 4 s call (upload deadline 600 s)",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(20),
        "failed within seconds of the end: {took:?}"
    );
}

/// Makes two IAM users in moto with boto3 (from moto's own virtual environment): `writer` with
/// the minimal permissions the README lists, `reader` allowed to read only. Returns their keys
/// as (id, secret) pairs.
fn iam_users(moto: &Moto) -> ((String, String), (String, String)) {
    let script = format!(
        r#"
import boto3, json
iam = boto3.client("iam", endpoint_url="{endpoint}", region_name="us-east-1",
                   aws_access_key_id="AKIDTEST", aws_secret_access_key="x")
def user(name, actions):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="egress", PolicyDocument=json.dumps({{
        "Version": "2012-10-17",
        "Statement": [{{"Effect": "Allow", "Action": actions,
                        "Resource": "arn:aws:s3:::{bucket}/tenant-7/*"}}]}}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return [key["AccessKeyId"], key["SecretAccessKey"]]
print(json.dumps([user("writer", ["s3:PutObject", "s3:AbortMultipartUpload"]),
                  user("reader", ["s3:GetObject"])]))
"#,
        endpoint = moto.endpoint,
        bucket = BUCKET
    );
    let out = python(&script);
    let keys: Vec<(String, String)> = serde_json::from_str(&out).unwrap();
    (keys[0].clone(), keys[1].clone())
}

/// Makes an IAM user in moto with boto3 whose policy has `statements`; returns its key as an
/// (id, secret) pair.
fn iam_user(moto: &Moto, name: &str, statements: Value) -> (String, String) {
    let script = format!(
        r#"
import boto3, json
iam = boto3.client("iam", endpoint_url="{endpoint}", region_name="us-east-1",
                   aws_access_key_id="AKIDTEST", aws_secret_access_key="x")
iam.create_user(UserName="{name}")
iam.put_user_policy(UserName="{name}", PolicyName="egress", PolicyDocument=json.dumps({{
    "Version": "2012-10-17", "Statement": json.loads('{statements}')}}))
key = iam.create_access_key(UserName="{name}")["AccessKey"]
print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
"#,
        endpoint = moto.endpoint,
    );
    serde_json::from_str(&python(&script)).unwrap()
}

/// Switches moto's signature and policy checks on.
fn enforce_iam(moto: &Moto) {
    let reset = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "0",
        ])
        .arg(format!("{}/moto-api/reset-auth", moto.endpoint))
        .output()
        .unwrap();
    assert!(reset.status.success(), "auth switched on");
}

/// A synthetic call of `call_s` seconds recorded, broadcast over HLS and captured in stills.
fn recording_hls_and_stills(egress_id: &str, call_s: f64, storage: Value) -> Value {
    json!({
        "egress_id": egress_id,
        "call_cid": format!("default:{egress_id}"),
        "source": { "type": "synthetic", "duration_s": call_s, "participants": [
            { "user_id": "alice", "video": { "color": "#e53935" }, "audio": "sine" }
        ]},
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"] },
        "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
        "storage": storage
    })
}

#[test]
fn an_hls_store_that_refuses_costs_the_recording_nothing() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-hls-refused");
    let objects = format!("arn:aws:s3:::{BUCKET}/{PREFIX}/*");
    let hls = format!("arn:aws:s3:::{BUCKET}/{PREFIX}/hls/*");
    let (key, secret) = iam_user(
        &moto,
        "no-hls",
        json!([
            { "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"], "Resource": objects },
            { "Effect": "Deny", "Action": ["s3:PutObject"], "Resource": hls }
        ]),
    );
    let auditor = auditor(&moto);
    enforce_iam(&moto);
    let mut storage = moto.storage(BUCKET);
    storage["aws_s3"]["s3_api_key"] = json!(key);
    storage["aws_s3"]["s3_secret"] = json!(secret);
    let call_s = 8.0;
    let job = recording_hls_and_stills("eg_hls_refused", call_s, storage);
    let running = Running::spawn(&scratch, &job, &["--upload-deadline", "3"]);
    let (status, events) = running.end(Duration::from_secs(120));
    let types = event_types(&events);
    assert_eq!(
        status.code(),
        Some(1),
        "the job reports the lost HLS files: {types:?}"
    );
    let failed: Vec<&str> = types
        .iter()
        .filter(|t| t.ends_with("_failed"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        failed,
        ["call.hls_broadcasting_failed"],
        "only HLS fails: {events:#?}"
    );
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("the recording is stored: {types:?}"));
    // Read back as an auditor would, with credentials: IAM checks are on.
    let url = ready["call_recording"]["url"].as_str().unwrap();
    let stored = scratch.dir.join("stored.mp4");
    let keys = audit(&moto, &auditor, url, &stored);
    let duration = duration_s(&probe(&stored));
    assert!(
        (duration - call_s).abs() <= 0.1,
        "the stored recording is whole: {duration} s"
    );
    assert!(
        types.iter().any(|t| t == "call.frame_recording_stopped"),
        "{types:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with(".jpg")),
        "the stills are stored: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.contains("/hls/")),
        "nothing of HLS stored: {keys:?}"
    );
    let kept = files_below(&scratch.out().join(".backup/eg_hls_refused"));
    assert!(
        kept.iter().any(|f| f.extension().is_some_and(|e| e == "ts")),
        "the segments are kept: {kept:?}"
    );
}

/// Reads back, as an auditor with its own credentials, the object behind `url` into `to`; returns
/// every key of the bucket.
fn audit(moto: &Moto, auditor: &(String, String), url: &str, to: &std::path::Path) -> Vec<String> {
    let key_of_file = url
        .strip_prefix(&moto.read_url(""))
        .expect("an object of the bucket");
    let listing = python(&format!(
        r#"
import boto3, json
s3 = boto3.client("s3", endpoint_url="{endpoint}", region_name="us-east-1",
                  aws_access_key_id="{reader}", aws_secret_access_key="{reader_secret}")
s3.download_file("{BUCKET}", "{key_of_file}", "{stored}")
print(json.dumps([o["Key"] for o in s3.list_objects_v2(Bucket="{BUCKET}").get("Contents", [])]))
"#,
        endpoint = moto.endpoint,
        reader = auditor.0,
        reader_secret = auditor.1,
        stored = to.display(),
    ));
    serde_json::from_str(&listing).unwrap()
}

fn auditor(moto: &Moto) -> (String, String) {
    let bucket_arn = format!("arn:aws:s3:::{BUCKET}");
    iam_user(
        moto,
        "auditor",
        json!([{ "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                 "Resource": [bucket_arn, format!("{bucket_arn}/*")] }]),
    )
}

#[test]
fn s3_put_object_alone_is_enough_for_every_output_and_the_check() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-put-only");
    let objects = format!("arn:aws:s3:::{BUCKET}/{PREFIX}/*");
    let writer = iam_user(
        &moto,
        "put-only",
        json!([{ "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": objects }]),
    );
    let auditor = auditor(&moto);
    enforce_iam(&moto);
    let mut storage = moto.storage(BUCKET);
    storage["aws_s3"]["s3_api_key"] = json!(writer.0);
    storage["aws_s3"]["s3_secret"] = json!(writer.1);

    let (code, text) = storage_check(&scratch, &storage, &writer.1);
    assert_eq!(code, Some(0), "the check passes with PutObject alone: {text}");

    let call_s = 8.0;
    let job = recording_hls_and_stills("eg_put_only", call_s, storage);
    let running = Running::spawn(&scratch, &job, &["--upload-deadline", "5"]);
    let (status, events) = running.end(Duration::from_secs(120));
    let types = event_types(&events);
    assert_eq!(status.code(), Some(0), "{events:#?}");
    assert!(
        !types.iter().any(|t| t.ends_with("_failed")),
        "no output fails: {types:?}"
    );
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("the recording is stored: {types:?}"));
    let stored = scratch.dir.join("stored.mp4");
    let url = ready["call_recording"]["url"].as_str().unwrap();
    let keys = audit(&moto, &auditor, url, &stored);
    let duration = duration_s(&probe(&stored));
    assert!(
        (duration - call_s).abs() <= 0.1,
        "the stored recording is whole: {duration} s"
    );
    assert!(
        keys.iter().any(|k| k.ends_with(".jpg")),
        "the stills are stored: {keys:?}"
    );
    let playlists = keys
        .iter()
        .filter(|k| k.contains("/hls/") && k.ends_with(".m3u8"));
    assert!(playlists.count() >= 2, "master and rendition playlists: {keys:?}");
    assert!(
        keys.iter().any(|k| k.contains("/hls/") && k.ends_with(".ts")),
        "the segments are stored: {keys:?}"
    );
    // The rendition playlist, replaced in place as it grew, ends the stream.
    let rendition = keys
        .iter()
        .find(|k| k.contains("/hls/") && k.ends_with(".m3u8") && !k.ends_with("master.m3u8"))
        .unwrap_or_else(|| panic!("a rendition playlist: {keys:?}"));
    let playlist = scratch.dir.join("rendition.m3u8");
    audit(&moto, &auditor, &moto.read_url(rendition), &playlist);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "the final playlist: {text}");

    // A file large enough to go up in parts needs nothing more.
    let out = upload_40_mb(&scratch);
    assert!(
        out.status.success(),
        "multipart upload with PutObject alone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The URIs of a playlist, in order.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn abs_private_hls_plays_in_a_browser_from_the_signed_master_url_alone() {
    let azurite = Azurite::start();
    azurite.create_container("private", false);
    private_hls_plays_from_the_master_url_alone("abs-private-hls", azurite.storage("private"), |url| {
        url.contains("sp=r") && url.contains("sig=")
    });
}

#[test]
fn s3_private_hls_plays_in_a_browser_from_the_signed_master_url_alone() {
    let s3 = S3sFs::start();
    private_hls_plays_from_the_master_url_alone("s3-private-hls", s3.storage(BUCKET), |url| {
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=900")
    });
}

/// An HLS call stored with `url_expiry_s` in a store that serves nothing unsigned: every URI a
/// player follows from the master is signed, and hls.js in Chromium plays the call from the
/// master URL alone.
fn private_hls_plays_from_the_master_url_alone(name: &str, mut storage: Value, signed: fn(&str) -> bool) {
    let scratch = Scratch::new(name);
    storage["url_expiry_s"] = json!(900);
    let job = json!({
        "egress_id": "eg_private_hls",
        "call_cid": "default:private-hls",
        "source": { "type": "synthetic", "duration_s": 10, "participants": [
            { "user_id": "alice", "video": { "pattern": "ball" }, "audio": "sine" }
        ]},
        "hls": { "quality_tracks": ["360p"] },
        "storage": storage
    });
    let events = Running::spawn(&scratch, &job, &[]).finish(Duration::from_secs(120));
    let started = events
        .iter()
        .find(|e| e["type"] == "call.hls_broadcasting_started")
        .unwrap_or_else(|| panic!("HLS started: {events:#?}"));
    let master_url = started["hls_playlist_url"].as_str().unwrap();
    assert!(signed(master_url), "{master_url}");
    let master = String::from_utf8(curl(master_url).expect("the master by its URL")).unwrap();
    let renditions = uris(&master);
    assert_eq!(renditions.len(), 1, "{master}");
    assert!(signed(&renditions[0]), "the rendition URI is signed: {master}");
    let playlist = String::from_utf8(curl(&renditions[0]).expect("the rendition")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let segments = uris(&playlist);
    assert!(segments.len() >= 4, "{playlist}");
    assert!(
        segments.iter().all(|u| signed(u)),
        "every segment URI is signed: {playlist}"
    );
    let first = curl(&segments[0]).expect("a segment by its signed URI");
    assert!(first.len() > 10_000, "a whole segment: {} bytes", first.len());
    let unsigned = segments[0].split('?').next().unwrap();
    assert!(
        curl(unsigned).is_none(),
        "the store is private: {unsigned} was served"
    );

    let report = play_in_browser(master_url);
    assert_eq!(report["supported"], true, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["hlsErrors"], json!([]), "{report}");
    let times = playback_times(&report);
    assert!(
        times.last().unwrap() - times[0] >= 3.0,
        "a viewer with only the master URL plays the call: {times:?}"
    );
}

/// Stores 40 MB, enough to go up in parts, with the scratch folder's `storage.json` (written by
/// the last `storage_check`).
fn upload_40_mb(scratch: &Scratch) -> std::process::Output {
    let file = scratch.dir.join("part.bin");
    std::fs::write(&file, vec![7u8; 40 * 1024 * 1024]).unwrap();
    egress()
        .args(["storage", "upload"])
        .arg(scratch.dir.join("storage.json"))
        .arg(&file)
        .arg("part.bin")
        .output()
        .unwrap()
}

#[test]
fn s3_wrong_keys_and_missing_permissions_are_told_in_plain_words() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-auth");
    let ((writer, writer_secret), (reader, reader_secret)) = iam_users(&moto);
    // From now on moto checks every request's signature and the user's policies.
    enforce_iam(&moto);
    let check = |key: &str, secret: &str| {
        let mut storage = moto.storage(BUCKET);
        storage["aws_s3"]["s3_api_key"] = json!(key);
        storage["aws_s3"]["s3_secret"] = json!(secret);
        storage_check(&scratch, &storage, secret)
    };

    let (code, text) = check("AKIDNOSUCHKEY000", "not-a-secret-at-all");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("wrong key"), "an unknown key: {text}");

    let (code, text) = check(&writer, "the-wrong-secret-for-writer");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("wrong key"), "a wrong secret: {text}");

    let (code, text) = check(&reader, &reader_secret);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("no write permission on bucket {BUCKET}")),
        "{text}"
    );

    // The minimal permissions of the README are enough for the check and for a whole upload.
    let (code, text) = check(&writer, &writer_secret);
    assert_eq!(code, Some(0), "{text}");
    let out = upload_40_mb(&scratch);
    assert!(
        out.status.success(),
        "multipart upload with the minimal permissions: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn s3_signed_urls_download_without_credentials() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-signed");
    let mut storage = moto.storage(BUCKET);
    storage["url_expiry_s"] = json!(600);
    let url = upload_small_file(&scratch, &storage);
    assert!(
        url.contains("X-Amz-Expires=600") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(!url.contains(S3_SECRET), "the secret is not in the URL");
    assert_eq!(
        curl(&url).as_deref(),
        Some(SMALL_FILE),
        "the signed URL downloads: {url}"
    );
}

const SMALL_FILE: &[u8] = b"a small file to fetch by its signed URL";

/// Stores a small file with `egress storage upload`; returns the URL it prints.
fn upload_small_file(scratch: &Scratch, storage: &Value) -> String {
    let path = scratch.dir.join("upload.json");
    std::fs::write(&path, storage.to_string()).unwrap();
    let file = scratch.dir.join("still.jpg");
    std::fs::write(&file, SMALL_FILE).unwrap();
    let out = egress()
        .args(["storage", "upload"])
        .arg(&path)
        .arg(&file)
        .arg("still.jpg")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.contains(&format!("/{PREFIX}/still.jpg")), "{url}");
    url
}

/// The body at `url` fetched by a plain HTTP client without credentials, if it answers 2xx.
fn curl(url: &str) -> Option<Vec<u8>> {
    let fetched = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()
        .unwrap();
    fetched.status.success().then_some(fetched.stdout)
}

// Google Cloud Storage (gcp-storage-emulator)

#[test]
fn gcs_a_call_lands_with_every_output() {
    a_call_lands_with_every_output(&GcsEmulator::start(), "gcs");
}

#[test]
fn gcs_a_store_frozen_for_30_s_loses_nothing() {
    a_store_frozen_for_30_s_loses_nothing(&mut GcsEmulator::start(), "gcs");
}

#[test]
fn gcs_uploads_a_killed_worker_left_are_resumed() {
    uploads_a_killed_worker_left_are_resumed(&mut GcsEmulator::start(), "gcs");
}

#[test]
fn gcs_large_files_go_up_as_resumable_uploads() {
    let gcs = GcsEmulator::start();
    a_large_file_arrives_byte_for_byte(&gcs, "gcs");
    let requests = std::fs::read_to_string(&gcs.log).unwrap();
    let chunks = requests
        .lines()
        .filter(|l| l.contains("PUT /upload/storage/v1/b/") && l.contains("upload_id="))
        .count();
    assert!(
        requests.contains("uploadType=resumable") && chunks >= 2,
        "a resumable upload in pieces: {chunks} chunks\n{requests}"
    );
}

#[test]
fn gcs_problems_are_told_in_plain_words() {
    let scratch = Scratch::new("gcs-check");
    let gcs = GcsEmulator::start();
    let secret = gcs.secret();
    let check = |storage: &Value| storage_check(&scratch, storage, &secret);

    let (code, text) = check(&gcs.storage(BUCKET));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("storage.objects.delete"),
        "the check says what HLS needs beyond creating objects: {text}"
    );
    assert_eq!(
        gcs.get(&format!("{PREFIX}/egress-storage-check.txt")),
        b"egress storage check\n"
    );

    let (code, text) = check(&gcs.storage("no-such-bucket"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("missing bucket: no-such-bucket does not exist"),
        "{text}"
    );

    let mut unreachable = gcs.storage(BUCKET);
    unreachable["gcs_endpoint_url"] = json!(format!("http://127.0.0.1:{}", free_port()));
    let (code, text) = check(&unreachable);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unreachable endpoint"), "{text}");

    // The emulator takes any signature, so a wrong key can only be caught when it is not a key.
    let mut not_a_key = gcs.storage(BUCKET);
    let mut credentials: Value = serde_json::from_str(&gcs.credentials).unwrap();
    credentials["private_key"] = json!(format!(
        "-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"
    ));
    not_a_key["gcs_credentials"] = json!(credentials.to_string());
    let (code, text) = check(&not_a_key);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("gcs_credentials: not a usable service-account key"),
        "{text}"
    );

    let mut not_json = gcs.storage(BUCKET);
    not_json["gcs_credentials"] = json!(format!("{{ {secret}"));
    let (code, text) = check(&not_json);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("gcs_credentials: expected the content of a service-account JSON key file"),
        "{text}"
    );
}

#[test]
fn gcs_signed_urls_are_v4_signed_by_the_service_account() {
    let scratch = Scratch::new("gcs-signed");
    let gcs = GcsEmulator::start();
    let mut storage = gcs.storage(BUCKET);
    storage["url_expiry_s"] = json!(600);
    let url = upload_small_file(&scratch, &storage);
    assert!(url.starts_with(&gcs.endpoint), "{url}");
    for part in [
        "X-Goog-Algorithm=GOOG4-RSA-SHA256",
        "X-Goog-Expires=600",
        "X-Goog-Credential=egress%40egress-tests.iam.gserviceaccount.com",
        "X-Goog-Signature=",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    assert!(!url.contains(&gcs.secret()), "the key is not in the URL");
    assert_eq!(
        curl(&url).as_deref(),
        Some(SMALL_FILE),
        "the URL downloads: {url}"
    );
}

// Azure Blob Storage (Azurite)

#[test]
fn abs_a_call_lands_with_every_output() {
    a_call_lands_with_every_output(&Azurite::start(), "abs");
}

#[test]
fn abs_a_store_frozen_for_30_s_loses_nothing() {
    a_store_frozen_for_30_s_loses_nothing(&mut Azurite::start(), "abs");
}

#[test]
fn abs_uploads_a_killed_worker_left_are_resumed() {
    uploads_a_killed_worker_left_are_resumed(&mut Azurite::start(), "abs");
}

#[test]
fn abs_large_files_go_up_as_blocks() {
    let azurite = Azurite::start();
    let key = a_large_file_arrives_byte_for_byte(&azurite, "abs");
    let blocks = azurite.block_count(&key);
    assert!(blocks >= 2, "a block upload: {blocks} blocks");
}

#[test]
fn abs_problems_are_told_in_plain_words() {
    let azurite = Azurite::start();
    let scratch = Scratch::new("abs-check");
    let check = |storage: &Value| storage_check(&scratch, storage, &azurite.key);

    let (code, text) = check(&azurite.storage(BUCKET));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        azurite.get(&format!("{PREFIX}/egress-storage-check.txt")),
        b"egress storage check\n"
    );

    // The connection-string form signs in the same way.
    let mut connection = azurite.storage(BUCKET);
    connection["azure_blob"] = json!({ "abs_connection_string": azurite.connection_string() });
    let (code, text) = check(&connection);
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = check(&azurite.storage("no-such-container"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("missing bucket: container no-such-container does not exist"),
        "{text}"
    );

    let mut wrong_key = azurite.storage(BUCKET);
    let other_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 64])
    };
    wrong_key["azure_blob"]["abs_account_key"] = json!(other_key);
    let (code, text) = storage_check(&scratch, &wrong_key, &other_key);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("wrong key"), "{text}");

    let mut unreachable = azurite.storage(BUCKET);
    unreachable["azure_blob"]["abs_endpoint_url"] =
        json!(format!("http://127.0.0.1:{}/{}", free_port(), azurite.account));
    let (code, text) = check(&unreachable);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unreachable endpoint"), "{text}");

    let mut two_ways = azurite.storage(BUCKET);
    two_ways["azure_blob"]["abs_client_secret"] = json!(azurite.key);
    let (code, text) = check(&two_ways);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("azure_blob: expected one way to sign in"), "{text}");
}

#[test]
fn abs_signed_urls_read_a_private_container() {
    let azurite = Azurite::start();
    azurite.create_container("private", false);
    let scratch = Scratch::new("abs-signed");
    let mut storage = azurite.storage("private");
    storage["url_expiry_s"] = json!(600);
    let url = upload_small_file(&scratch, &storage);
    assert!(url.contains("sp=r") && url.contains("sig="), "{url}");
    assert!(!url.contains(&azurite.key), "the key is not in the URL");
    assert_eq!(
        curl(&url).as_deref(),
        Some(SMALL_FILE),
        "the SAS URL downloads: {url}"
    );
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(curl(unsigned), None, "the container is private: {unsigned}");
}
