//! Amazon S3 and S3-compatible stores (MinIO, moto…) through `aws-sdk-s3`. Small files go up in
//! one request, large ones as a multipart upload with parts sent in parallel. Every body carries
//! its CRC32 in a header the store verifies; computed here rather than by the SDK, whose
//! streaming form (a checksum trailer in a chunked body) halves the throughput to some stores.

use super::Storage;
use super::{StoreError, StoreFailure};
use crate::job::S3Config;
use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use std::path::Path;
use std::time::Duration;

/// Files above this size go up in parts.
const MULTIPART_FROM: u64 = 32 * 1024 * 1024;
/// Size of one part (S3 wants at least 5 MiB for all but the last).
const PART_SIZE: u64 = 16 * 1024 * 1024;
/// Parts in flight at once.
const PARALLEL_PARTS: usize = 4;

pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Base of object URLs in events: `https://BUCKET.s3.REGION.amazonaws.com` or
    /// `ENDPOINT/BUCKET` for a custom endpoint.
    url_base: String,
    /// Over TLS the body is protected in transit and by its CRC32 header (which is signed), so
    /// it is not hashed for the signature, as the AWS CLI does; over plain HTTP it is.
    sign_payload: bool,
    /// URLs given out are signed download URLs valid this long.
    url_expiry: Option<Duration>,
    runtime: tokio::runtime::Runtime,
}

impl S3Storage {
    pub fn new(bucket: &str, config: &S3Config) -> anyhow::Result<S3Storage> {
        let runtime = super::client_runtime("s3")?;
        let region = aws_config::Region::new(config.s3_region.clone());
        // A store that stops answering must fail the attempt (to be retried) rather than hang it.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(20))
            // A 16 MiB part at 300 kB/s; a half-open connection ends here at the latest.
            .operation_attempt_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts);
        if let (Some(key), Some(secret)) = (&config.s3_api_key, &config.s3_secret) {
            let credentials = aws_sdk_s3::config::Credentials::new(key, secret, None, None, "job");
            loader = loader.credentials_provider(credentials);
        }
        let shared = runtime.block_on(loader.load());
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        let url_base = match &config.s3_custom_endpoint_url {
            Some(endpoint) => {
                builder = builder.endpoint_url(endpoint).force_path_style(true);
                format!("{}/{bucket}", endpoint.trim_end_matches('/'))
            }
            None => format!("https://{bucket}.s3.{}.amazonaws.com", config.s3_region),
        };
        Ok(S3Storage {
            client: Client::from_conf(
                builder
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .build(),
            ),
            bucket: bucket.to_owned(),
            sign_payload: !url_base.starts_with("https://"),
            url_base,
            url_expiry: None,
            runtime,
        })
    }

    /// Gives signed download URLs valid for `expiry` instead of object URLs.
    pub fn with_signed_urls(mut self, expiry: Option<Duration>) -> Self {
        self.url_expiry = expiry;
        self
    }

    fn signed_url(&self, key: &str, expiry: Duration) -> anyhow::Result<String> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expiry)?;
        let request = self.runtime.block_on(
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .presigned(config),
        )?;
        Ok(request.uri().to_owned())
    }

    /// Stores a file in one request. The store checks the CRC32 sent with the body and refuses
    /// a body that does not match it, so nothing needs reading back (which would need
    /// `s3:GetObject`, a permission a writer should not have to hold).
    async fn put_whole(&self, file: &Path, key: &str) -> anyhow::Result<()> {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let checksum = crc32(&bytes);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_crc32(checksum.clone())
            .body(ByteStream::from(bytes))
            .customize();
        let request = if self.sign_payload {
            request
        } else {
            request.disable_payload_signing()
        };
        let sent = request.send().await.map_err(|e| plain(e, &self.bucket))?;
        if let Some(stored) = sent.checksum_crc32() {
            anyhow::ensure!(
                stored == checksum,
                "s3://{}/{key} was stored with CRC32 {stored}, expected {checksum}",
                self.bucket
            );
        }
        Ok(())
    }

    async fn put_in_parts(&self, file: &Path, key: &str, size: u64) -> anyhow::Result<()> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| plain(e, &self.bucket))?;
        let upload_id = started
            .upload_id()
            .context("the store gave no upload id")?
            .to_owned();
        let result = self.send_parts(file, key, size, &upload_id).await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                // Parts already stored would otherwise be kept (and billed) by the store.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(e);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| plain(e, &self.bucket))?;
        Ok(())
    }

    async fn send_parts(
        &self,
        file: &Path,
        key: &str,
        size: u64,
        upload_id: &str,
    ) -> anyhow::Result<Vec<CompletedPart>> {
        let count = size.div_ceil(PART_SIZE);
        let mut done = Vec::new();
        let mut in_flight = tokio::task::JoinSet::new();
        for index in 0..count {
            if in_flight.len() >= PARALLEL_PARTS
                && let Some(part) = in_flight.join_next().await
            {
                done.push(part.context("a part upload stopped")??);
            }
            let bytes = super::read_range(file, index * PART_SIZE, PART_SIZE.min(size - index * PART_SIZE))?;
            let number = i32::try_from(index + 1).context("too many parts")?;
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_crc32(crc32(&bytes))
                .body(ByteStream::from(bytes));
            let bucket = self.bucket.clone();
            let sign_payload = self.sign_payload;
            in_flight.spawn(async move {
                let request = request.customize();
                let request = if sign_payload {
                    request
                } else {
                    request.disable_payload_signing()
                };
                let sent = request.send().await.map_err(|e| plain(e, &bucket))?;
                Ok::<_, anyhow::Error>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(sent.e_tag().map(str::to_owned))
                        .set_checksum_crc32(sent.checksum_crc32().map(str::to_owned))
                        .build(),
                )
            });
        }
        while let Some(part) = in_flight.join_next().await {
            done.push(part.context("a part upload stopped")??);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }
}

impl Storage for S3Storage {
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<()> {
        let size = std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        self.runtime.block_on(async {
            if size >= MULTIPART_FROM {
                self.put_in_parts(file, key, size).await
            } else {
                self.put_whole(file, key).await
            }
        })?;
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        if let Some(expiry) = self.url_expiry {
            match self.signed_url(key, expiry) {
                Ok(url) => return url,
                Err(e) => {
                    tracing::warn!(%key, error = %format!("{e:#}"), "cannot sign a URL; giving the object URL")
                }
            }
        }
        format!("{}/{key}", self.url_base)
    }
}

/// The CRC32 of a body as S3 headers carry it: big-endian, base64.
fn crc32(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(bytes).to_be_bytes())
}

/// The store's refusal in plain words.
fn plain<E>(error: SdkError<E, HttpResponse>, bucket: &str) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().unwrap_or_default().to_owned();
    let status = match &error {
        SdkError::ServiceError(_) => error.raw_response().map(|r| r.status().as_u16()),
        _ => None,
    };
    let (failure, message) = match code.as_str() {
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken" => (
            StoreFailure::WrongKey,
            format!("wrong key: the store refused the access key or secret ({code})"),
        ),
        "NoSuchBucket" => (
            StoreFailure::MissingBucket,
            format!("missing bucket: {bucket} does not exist"),
        ),
        "AccessDenied" | "AllAccessDisabled" => (
            StoreFailure::NoPermission,
            format!("no write permission on bucket {bucket} ({code})"),
        ),
        _ => match &error {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
                StoreFailure::Unreachable,
                "unreachable endpoint: the store did not answer".to_owned(),
            ),
            SdkError::ServiceError(_) => (
                StoreFailure::Refused(status),
                format!(
                    "the store refused: {} ({code})",
                    error.message().unwrap_or("no message")
                ),
            ),
            _ => (
                StoreFailure::Refused(None),
                format!("the request to the store failed: {error}"),
            ),
        },
    };
    anyhow::Error::new(StoreError::new(failure, message))
}
