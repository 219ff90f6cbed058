//! S3 storage against a real S3 emulator (moto, from PyPI, started on a loopback port): a call's
//! recording, HLS and stills land in the bucket; `egress storage check` and a job with a wrong
//! bucket fail in plain words; large files go up in parts; secrets stay out of logs and events.

mod common;

use aws_sdk_s3::Client;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const BUCKET: &str = "calls-bucket";
const SECRET: &str = "sk-5d1e0c2a9b";

struct Moto {
    _service: Service,
    endpoint: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let binary = cache_dir().join("venv/bin/moto_server");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/test-deps.sh",
            binary.display()
        );
        let service = Service::start(
            "moto",
            std::process::Command::new(binary).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        );
        wait_for_port(port, Duration::from_secs(30));
        let endpoint = format!("http://127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDTEST", SECRET, None, None, "test",
            ))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .build();
        let client = Client::from_conf(config);
        runtime
            .block_on(client.create_bucket().bucket(BUCKET).send())
            .expect("the bucket is created");
        Moto {
            _service: service,
            endpoint,
            client,
            runtime,
        }
    }

    fn storage(&self, bucket: &str) -> Value {
        json!({
            "storage_type": "s3",
            "bucket": bucket,
            "path": "tenant-7/",
            "aws_s3": {
                "s3_region": "us-east-1",
                "s3_api_key": "AKIDTEST",
                "s3_secret": SECRET,
                "s3_custom_endpoint_url": self.endpoint
            }
        })
    }

    /// The object behind a URL from an event.
    fn fetch(&self, url: &str) -> Vec<u8> {
        let prefix = format!("{}/{BUCKET}/", self.endpoint);
        let key = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} is not an object of {prefix}"));
        self.get(key)
    }

    fn get(&self, key: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
            object.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    fn keys(&self) -> Vec<String> {
        self.runtime.block_on(async {
            let listed = self.client.list_objects_v2().bucket(BUCKET).send().await.unwrap();
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect()
        })
    }
}

/// A call of alice (red, with a tone) and bob (blue) with the given outputs, stored in moto.
fn two_party_call(moto: &Moto, egress_id: &str, seconds: f64, outputs: Value) -> Value {
    let mut job = json!({
        "egress_id": egress_id,
        "call_cid": format!("default:{egress_id}"),
        "source": { "type": "synthetic", "duration_s": seconds, "participants": [
            { "user_id": "alice", "video": { "color": "#e53935" }, "audio": "sine" },
            { "user_id": "bob", "video": { "color": "#1e88e5" } }
        ]},
        "storage": moto.storage(BUCKET)
    });
    job.as_object_mut()
        .unwrap()
        .extend(outputs.as_object().unwrap().clone());
    job
}

impl Moto {
    /// Fetches the recording a ready event announces; checks it is whole and decodes cleanly.
    fn check_recording(&self, events: &[Value], scratch: &Scratch, seconds: f64) -> String {
        let ready = events
            .iter()
            .find(|e| e["type"] == "call.recording_ready")
            .expect("recording ready");
        let url = ready["call_recording"]["url"].as_str().unwrap().to_owned();
        let mp4 = scratch.dir.join("downloaded.mp4");
        std::fs::write(&mp4, self.fetch(&url)).unwrap();
        let duration = duration_s(&probe(&mp4));
        assert!(
            (duration - seconds).abs() <= 0.1,
            "the stored MP4 is whole: {duration} s"
        );
        assert_eq!(decode_errors(&mp4), "", "the stored MP4 decodes cleanly");
        url
    }

    /// Checks the final 360p playlist in the bucket: closed, at least `min` segments from the
    /// first, each of them in the bucket.
    fn check_playlist(&self, min: usize) {
        let keys = self.keys();
        let playlist_key = keys
            .iter()
            .find(|k| k.ends_with("360p/index.m3u8"))
            .expect("a media playlist in the bucket");
        let playlist = String::from_utf8(self.get(playlist_key)).unwrap();
        assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
        let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
        assert!(segments.len() >= min, "{playlist}");
        assert!(segments[0].ends_with("00000.ts"), "{playlist}");
        for segment in segments {
            let key = playlist_key.replace("index.m3u8", segment);
            assert!(keys.contains(&key), "{key} is in the bucket");
        }
    }
}

fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_call_lands_in_an_s3_bucket_with_every_output() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-call");
    let job = two_party_call(
        &moto,
        "eg_s3",
        7.0,
        json!({
            "recording": { "quality": "480p" },
            "hls": { "quality_tracks": ["360p"] },
            "frame_recording": { "capture_interval_in_seconds": 3, "quality": "360p" }
        }),
    );
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(20));
    let log = running.log.clone();
    let events = running.finish(Duration::from_secs(60));

    let url = moto.check_recording(&events, &scratch, 7.0);
    assert!(url.contains("/tenant-7/rec_"), "under the path prefix: {url}");

    let stills: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect();
    assert_eq!(stills.len(), 6, "3 stills each for 2 participants");
    for still in stills {
        let jpeg = moto.fetch(still["url"].as_str().unwrap());
        let img = image::load_from_memory(&jpeg).expect("a JPEG in the bucket");
        assert_eq!((img.width(), img.height()), (640, 360));
    }

    let started = events
        .iter()
        .find(|e| e["type"] == "call.hls_broadcasting_started")
        .expect("hls started");
    let master = String::from_utf8(moto.fetch(started["hls_playlist_url"].as_str().unwrap())).unwrap();
    assert!(master.contains("360p/index.m3u8"), "{master}");
    moto.check_playlist(3);

    let left: Vec<_> = files_below(&scratch.out());
    assert!(
        left.is_empty(),
        "nothing stays on the machine once stored: {left:?}"
    );
    let log = std::fs::read_to_string(log).unwrap();
    let all_events = serde_json::to_string(&events).unwrap();
    assert!(
        !log.contains(SECRET) && !all_events.contains(SECRET),
        "the secret leaked"
    );
}

#[test]
fn storage_problems_are_told_in_plain_words() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-check");
    let check = |storage: &Value| {
        let path = scratch.dir.join("storage.json");
        std::fs::write(&path, storage.to_string()).unwrap();
        let out = egress().args(["storage", "check"]).arg(&path).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
        (out.status.code(), text)
    };

    let (code, text) = check(&moto.storage(BUCKET));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("storage check passed"), "{text}");
    assert_eq!(
        moto.get("tenant-7/egress-storage-check.txt"),
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
        !stderr.contains(SECRET) && !error.contains(SECRET),
        "the secret leaked"
    );
}

#[test]
fn large_files_go_up_in_parts_and_arrive_byte_for_byte() {
    use egress::storage::Storage;
    let moto = Moto::start();
    let scratch = Scratch::new("s3-multipart");
    let file = scratch.dir.join("large.bin");
    // 300 MB of varied bytes, well above the single-request limit.
    let bytes: Vec<u8> = (0..300_000_000u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let config: egress::job::StorageConfig = serde_json::from_value(moto.storage(BUCKET)).unwrap();
    let storage = egress::storage::S3Storage::new(BUCKET, config.aws_s3.as_ref().unwrap()).unwrap();
    storage.store(&file, "tenant-7/large.bin").unwrap();
    let url = storage.url("tenant-7/large.bin");
    let stored = moto.fetch(&url);
    assert_eq!(stored.len(), bytes.len());
    assert!(stored == bytes, "the stored object differs from the file");
    let etag = moto.runtime.block_on(async {
        let head = moto
            .client
            .head_object()
            .bucket(BUCKET)
            .key("tenant-7/large.bin")
            .send()
            .await
            .unwrap();
        head.e_tag().unwrap().to_owned()
    });
    // A multipart object's ETag ends in the number of its parts.
    let parts: u32 = etag
        .trim_matches('"')
        .rsplit_once('-')
        .and_then(|(_, count)| count.parse().ok())
        .unwrap_or(1);
    assert!(parts >= 2, "a multipart upload: {etag}");
}

/// Freezes (SIGSTOP) or thaws (SIGCONT) a process: a store that stops answering mid-request.
fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits until the job's spool lists a file of `output` waiting for the store.
fn wait_for_pending(spool: &Path, output: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let waiting = files_below(spool).into_iter().any(|f| {
            f.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(&f).is_ok_and(|t| t.contains(&format!("\"output\":\"{output}\"")))
        });
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {output} upload waits in {}",
            spool.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_store_frozen_for_30_s_mid_job_loses_nothing() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-frozen");
    let job = two_party_call(
        &moto,
        "eg_frozen",
        16.0,
        json!({
            "recording": { "quality": "360p" },
            "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
            "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" }
        }),
    );
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.hls_broadcasting_started", Duration::from_secs(30));
    let pid = moto._service.child.id();
    signal(pid, "STOP");
    let frozen_at = std::time::Instant::now();
    // The call ends (16 s) while the store is still frozen; its files wait in the spool.
    std::thread::sleep(Duration::from_secs(30));
    signal(pid, "CONT");
    let events = running.finish(Duration::from_secs(120));
    assert!(frozen_at.elapsed() >= Duration::from_secs(30));

    let types = event_types(&events);
    assert!(!types.iter().any(|t| t.ends_with("_failed")), "{types:?}");
    moto.check_recording(&events, &scratch, 16.0);

    // Every still announced is in the bucket, and none is missing: one per 2 s of the call.
    let stills: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "call.frame_recording_ready")
        .collect();
    for user in ["alice", "bob"] {
        let count = stills.iter().filter(|e| e["users"][user].is_object()).count();
        assert!((8..=9).contains(&count), "{user}: {count} stills in 16 s");
    }
    for still in &stills {
        assert!(!moto.fetch(still["url"].as_str().unwrap()).is_empty());
    }
    // The final playlist lists every segment from the first, and each one is in the bucket.
    moto.check_playlist(7);
    let log = std::fs::read_to_string(scratch.dir.join("egress.log")).unwrap();
    assert!(!log.contains(SECRET), "the secret leaked");
    assert!(
        files_below(&scratch.out()).is_empty(),
        "the spool is empty once all is stored"
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
    moto._service.stop();
    let log = running.log.clone();
    let (status, events) = running.end(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(1),
        "the job reports that files were not stored"
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(!log.contains(SECRET), "the secret leaked");
    assert!(
        log.contains("store failed; retrying"),
        "retried before giving up: {log}"
    );
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
        assert!(!error.contains(SECRET));
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
    let jpegs = files_below(&backup)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jpg"))
        .count();
    assert_eq!(jpegs, 3, "every still is kept");
}

#[test]
fn uploads_a_killed_worker_left_are_resumed() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-killed");
    let job = json!({
        "egress_id": "eg_killed",
        "call_cid": "default:killed",
        "source": { "type": "synthetic", "duration_s": 5, "participants": [
            { "user_id": "alice", "video": { "color": "#43a047" }, "audio": "sine" }
        ]},
        "recording": { "quality": "360p" },
        "storage": moto.storage(BUCKET)
    });
    let mut running = Running::spawn(&scratch, &job, &[]);
    running.wait_for("call.recording_started", Duration::from_secs(30));
    let pid = moto._service.child.id();
    signal(pid, "STOP");
    // The call ends; its recording waits for the frozen store. The worker dies then.
    let spool = scratch.out().join(".spool/eg_killed");
    wait_for_pending(&spool, "recording", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    running.child.kill().unwrap();
    let (_, before) = running.end(Duration::from_secs(10));
    assert!(
        !before.iter().any(|e| e["type"] == "call.recording_ready"),
        "not stored before the kill"
    );
    signal(pid, "CONT");

    let resumed = egress()
        .args(["storage", "resume", "--out"])
        .arg(scratch.out())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET), "the secret leaked");
    let events = parse_events(&resumed.stdout);
    let ready = events
        .iter()
        .find(|e| e["type"] == "call.recording_ready")
        .unwrap_or_else(|| panic!("the resumed upload is announced: {events:?} {stderr}"));
    assert_eq!(ready["egress_id"], "eg_killed");
    let mp4 = scratch.dir.join("downloaded.mp4");
    std::fs::write(&mp4, moto.fetch(ready["call_recording"]["url"].as_str().unwrap())).unwrap();
    let duration = duration_s(&probe(&mp4));
    assert!(
        (duration - 5.0).abs() <= 0.1,
        "the stored MP4 is whole: {duration} s"
    );
    assert_eq!(decode_errors(&mp4), "");
    assert!(!spool.join("uploads").exists(), "the upload list is done");
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
print(json.dumps([user("writer", ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]),
                  user("reader", ["s3:GetObject"])]))
"#,
        endpoint = moto.endpoint,
        bucket = BUCKET
    );
    let python = cache_dir().join("venv/bin/python");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keys: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    (keys[0].clone(), keys[1].clone())
}

#[test]
fn wrong_keys_and_missing_permissions_are_told_in_plain_words() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-auth");
    let ((writer, writer_secret), (reader, reader_secret)) = iam_users(&moto);
    // From now on moto checks every request's signature and the user's policies.
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
    let check = |key: &str, secret: &str| {
        let mut storage = moto.storage(BUCKET);
        storage["aws_s3"]["s3_api_key"] = json!(key);
        storage["aws_s3"]["s3_secret"] = json!(secret);
        let path = scratch.dir.join("storage.json");
        std::fs::write(&path, storage.to_string()).unwrap();
        let out = egress().args(["storage", "check"]).arg(&path).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(secret), "the secret leaked: {text}");
        (out.status.code(), text)
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
    let file = scratch.dir.join("part.bin");
    std::fs::write(&file, vec![7u8; 40 * 1024 * 1024]).unwrap();
    let out = egress()
        .args(["storage", "upload"])
        .arg(scratch.dir.join("storage.json"))
        .arg(&file)
        .arg("part.bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "multipart upload with the minimal permissions: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn signed_urls_download_without_credentials() {
    let moto = Moto::start();
    let scratch = Scratch::new("s3-signed");
    let mut storage = moto.storage(BUCKET);
    storage["url_expiry_s"] = json!(600);
    let path = scratch.dir.join("signed.json");
    std::fs::write(&path, storage.to_string()).unwrap();
    let file = scratch.dir.join("still.jpg");
    std::fs::write(&file, b"a small file to fetch by its signed URL").unwrap();
    let out = egress()
        .args(["storage", "upload"])
        .arg(&path)
        .arg(&file)
        .arg("still.jpg")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.contains("/tenant-7/still.jpg?"), "{url}");
    assert!(
        url.contains("X-Amz-Expires=600") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(!url.contains(SECRET), "the secret is not in the URL");
    // A plain HTTP client, no credentials.
    let fetched = std::process::Command::new("curl")
        .args(["-sf", &url])
        .output()
        .unwrap();
    assert!(fetched.status.success(), "the signed URL downloads: {url}");
    assert_eq!(fetched.stdout, b"a small file to fetch by its signed URL");
}
