//! The three storage emulators of the tests, started on loopback ports: moto (S3) and
//! gcp-storage-emulator (GCS) from the PyPI virtual environment of `scripts/test-deps.sh`,
//! Azurite (Azure Blob) from its npm folder. Each gives the storage configuration a job
//! carries, and reads back what was stored over plain HTTP, without the worker's code.

use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

pub const BUCKET: &str = "calls-bucket";
pub const PREFIX: &str = "tenant-7";

pub trait Emulator {
    /// The job's `storage` for `bucket` (the container for Azure).
    fn storage(&self, bucket: &str) -> Value;
    /// A plain HTTP URL reading `key` of the test bucket without credentials.
    fn read_url(&self, key: &str) -> String;
    /// Every key in the test bucket.
    fn keys(&self) -> Vec<String>;
    /// The secret the storage configuration carries, which must never be logged.
    fn secret(&self) -> String;
    fn service(&mut self) -> &mut Service;

    fn get(&self, key: &str) -> Vec<u8> {
        http_get(&self.read_url(key))
    }

    /// The object behind a URL from an event, which must be one of the test bucket's objects.
    fn fetch(&self, url: &str) -> Vec<u8> {
        let base = self.read_url("");
        let key = url
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("{url} is not an object below {base}"));
        let key = key.split('?').next().unwrap();
        self.get(&percent_decode(key))
    }

    fn pid(&mut self) -> u32 {
        self.service().child.id()
    }
}

pub fn http_get(url: &str) -> Vec<u8> {
    let mut response = ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The texts between `<tag>` and `</tag>` in an XML listing.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(v, _)| v.replace("&amp;", "&")))
        .collect()
}

fn venv_binary(name: &str) -> std::path::PathBuf {
    let binary = cache_dir().join("venv/bin").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run scripts/test-deps.sh",
        binary.display()
    );
    binary
}

/// Runs Python from the tests' virtual environment (boto3, the Azure SDK).
pub fn python(script: &str) -> String {
    let out = std::process::Command::new(venv_binary("python"))
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub struct Moto {
    service: Service,
    pub endpoint: String,
}

pub const S3_SECRET: &str = "sk-5d1e0c2a9b";

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let service = Service::start(
            "moto",
            std::process::Command::new(venv_binary("moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
        );
        wait_for_port(port, Duration::from_secs(30));
        let endpoint = format!("http://127.0.0.1:{port}");
        // moto takes unsigned requests until its IAM checks are switched on.
        ureq::put(&format!("{endpoint}/{BUCKET}"))
            .send_empty()
            .expect("the bucket is created");
        // Readable without credentials, so the tests read it as any HTTP client would.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Principal": "*",
                            "Action": ["s3:GetObject", "s3:ListBucket"],
                            "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")] }]
        });
        ureq::put(&format!("{endpoint}/{BUCKET}?policy"))
            .send(policy.to_string())
            .expect("the bucket policy is set");
        Moto { service, endpoint }
    }

    /// The ETag the store gives `key` (a multipart object's ends in its part count).
    pub fn etag(&self, key: &str) -> String {
        let response = ureq::head(&self.read_url(key)).call().unwrap();
        response.headers()["etag"].to_str().unwrap().to_owned()
    }
}

impl Emulator for Moto {
    fn storage(&self, bucket: &str) -> Value {
        json!({
            "storage_type": "s3",
            "bucket": bucket,
            "path": format!("{PREFIX}/"),
            "aws_s3": {
                "s3_region": "us-east-1",
                "s3_api_key": "AKIDTEST",
                "s3_secret": S3_SECRET,
                "s3_custom_endpoint_url": self.endpoint
            }
        })
    }

    fn read_url(&self, key: &str) -> String {
        format!("{}/{BUCKET}/{key}", self.endpoint)
    }

    fn keys(&self) -> Vec<String> {
        let listing = http_get(&format!("{}/{BUCKET}?list-type=2", self.endpoint));
        xml_values(&String::from_utf8(listing).unwrap(), "Key")
    }

    fn secret(&self) -> String {
        S3_SECRET.to_owned()
    }

    fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}

pub struct GcsEmulator {
    service: Service,
    pub endpoint: String,
    /// A service-account key with a freshly made RSA key: the worker signs in with it (the
    /// emulator does not check it) and signs URLs with it.
    pub credentials: String,
    private_key: String,
    pub log: std::path::PathBuf,
    _scratch: Scratch,
}

impl GcsEmulator {
    /// The emulator listens on port 80 of an address of its own in 127/8: the GCS client sends
    /// `Host` without a port, from which the emulator builds the URL of a resumable upload.
    pub fn start() -> GcsEmulator {
        let host = format!("127.77.{}.{}", fastrand::u8(1..255), fastrand::u8(1..255));
        let scratch = Scratch::new(&format!("gcs-emulator-{host}"));
        let log = scratch.dir.join("gcs-emulator.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(venv_binary("gcp-storage-emulator"))
            .args(["start", "--host", &host, "--port", "80", "--in-memory"])
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("gcp-storage-emulator starts");
        let service = Service {
            child,
            name: "gcp-storage-emulator",
        };
        let endpoint = format!("http://{host}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect((host.as_str(), 80)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "gcp-storage-emulator does not listen on {host}:80 (see {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ureq::post(&format!("{endpoint}/storage/v1/b?project=test"))
            .header("Content-Type", "application/json")
            .send(json!({ "name": BUCKET }).to_string())
            .expect("the bucket is created");
        let private_key = rsa_key();
        let credentials = json!({
            "type": "service_account",
            "project_id": "egress-tests",
            "private_key_id": "0123456789abcdef",
            "private_key": private_key,
            "client_email": "egress@egress-tests.iam.gserviceaccount.com",
            "client_id": "1000",
            "token_uri": "https://oauth2.googleapis.com/token"
        })
        .to_string();
        GcsEmulator {
            service,
            endpoint,
            credentials,
            private_key,
            log,
            _scratch: scratch,
        }
    }
}

/// A new RSA private key in PKCS#8 PEM, made by openssl.
fn rsa_key() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

impl Emulator for GcsEmulator {
    fn storage(&self, bucket: &str) -> Value {
        json!({
            "storage_type": "gcs",
            "bucket": bucket,
            "path": format!("{PREFIX}/"),
            "gcs_credentials": self.credentials,
            "gcs_endpoint_url": self.endpoint
        })
    }

    fn read_url(&self, key: &str) -> String {
        format!("{}/{BUCKET}/{key}", self.endpoint)
    }

    fn keys(&self) -> Vec<String> {
        let listing = http_get(&format!("{}/storage/v1/b/{BUCKET}/o", self.endpoint));
        let listing: Value = serde_json::from_slice(&listing).unwrap();
        listing["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|o| o["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A line from the middle of the private key.
    fn secret(&self) -> String {
        self.private_key.lines().nth(3).unwrap().to_owned()
    }

    fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}

pub struct Azurite {
    service: Service,
    pub endpoint: String,
    pub account: String,
    pub key: String,
}

impl Azurite {
    pub fn start() -> Azurite {
        let port = free_port();
        let binary = cache_dir().join("npm/node_modules/.bin/azurite-blob");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/test-deps.sh",
            binary.display()
        );
        // An account of the test's own, with a random key (not Azurite's well-known one).
        let account = "egresstests".to_owned();
        let key = {
            use base64::Engine;
            let bytes: Vec<u8> = (0..64).map(|_| fastrand::u8(..)).collect();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let service = Service::start(
            "azurite",
            std::process::Command::new(binary)
                .args([
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    &port.to_string(),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--silent",
                ])
                .env("AZURITE_ACCOUNTS", format!("{account}:{key}")),
        );
        wait_for_port(port, Duration::from_secs(30));
        let endpoint = format!("http://127.0.0.1:{port}/{account}");
        let azurite = Azurite {
            service,
            endpoint,
            account,
            key,
        };
        // Readable without credentials, so the tests read it as any HTTP client would.
        azurite.create_container(BUCKET, true);
        azurite
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            self.account, self.key, self.endpoint
        )
    }

    /// Creates a container with the Azure SDK for Python; `public` lets anyone read it.
    pub fn create_container(&self, name: &str, public: bool) {
        let access = if public { "'container'" } else { "None" };
        python(&format!(
            "from azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string('{}').create_container('{name}', public_access={access})",
            self.connection_string()
        ));
    }

    /// The number of committed blocks of a blob, from the Azure SDK for Python.
    pub fn block_count(&self, key: &str) -> usize {
        let count = python(&format!(
            "from azure.storage.blob import BlobServiceClient\n\
             blob = BlobServiceClient.from_connection_string('{}').get_blob_client('{BUCKET}', '{key}')\n\
             print(len(blob.get_block_list('committed')[0]))",
            self.connection_string()
        ));
        count.trim().parse().unwrap()
    }
}

impl Emulator for Azurite {
    fn storage(&self, bucket: &str) -> Value {
        json!({
            "storage_type": "abs",
            "bucket": bucket,
            "path": format!("{PREFIX}/"),
            "azure_blob": {
                "abs_account_name": self.account,
                "abs_account_key": self.key,
                "abs_endpoint_url": self.endpoint
            }
        })
    }

    fn read_url(&self, key: &str) -> String {
        format!("{}/{BUCKET}/{key}", self.endpoint)
    }

    fn keys(&self) -> Vec<String> {
        let listing = http_get(&format!("{}/{BUCKET}?restype=container&comp=list", self.endpoint));
        xml_values(&String::from_utf8(listing).unwrap(), "Name")
    }

    fn secret(&self) -> String {
        self.key.clone()
    }

    fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}

/// s3s-fs (crates.io), an S3 server over a folder that checks every request's SigV4 signature,
/// presigned URLs included, and refuses anonymous ones: the private bucket moto cannot be
/// (moto's IAM checks fail on presigned URLs with an internal error).
pub struct S3sFs {
    _service: Service,
    pub endpoint: String,
    _root: Scratch,
}

pub const S3S_KEY: &str = "AKIDS3SFS";
pub const S3S_SECRET: &str = "sk-3f0b9d7e51";

impl S3sFs {
    pub fn start() -> S3sFs {
        let binary = cache_dir().join("s3s-fs/bin/s3s-fs");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/test-deps.sh",
            binary.display()
        );
        let root = Scratch::new(&format!("s3s-fs-{}", fastrand::u32(..)));
        std::fs::create_dir_all(root.dir.join(BUCKET)).unwrap();
        let port = free_port();
        let service = Service::start(
            "s3s-fs",
            std::process::Command::new(binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", S3S_KEY, "--secret-key", S3S_SECRET])
                .arg(&root.dir),
        );
        wait_for_port(port, Duration::from_secs(30));
        S3sFs {
            _service: service,
            endpoint: format!("http://127.0.0.1:{port}"),
            _root: root,
        }
    }

    pub fn storage(&self, bucket: &str) -> Value {
        json!({
            "storage_type": "s3",
            "bucket": bucket,
            "path": format!("{PREFIX}/"),
            "aws_s3": {
                "s3_region": "us-east-1",
                "s3_api_key": S3S_KEY,
                "s3_secret": S3S_SECRET,
                "s3_custom_endpoint_url": self.endpoint
            }
        })
    }
}
