//! Google Cloud Storage through `google-cloud-storage`. Small files go up in one request, large
//! ones as a resumable upload in 16 MiB requests; the client sends each file's CRC32C and MD5, which the service
//! checks. Sign-in: the service-account JSON of the storage configuration, or the Application
//! Default Credentials. Only object creation is needed (`roles/storage.objectCreator`): nothing
//! is read back, the size is checked on the object the upload returns.

use super::Storage;
use super::{StoreError, StoreFailure};
use anyhow::Context;
use google_cloud_auth::credentials::{self, Credentials, anonymous, service_account};
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage as Client;
use google_cloud_storage::retry_policy::RetryableErrors;
use std::path::Path;
use std::time::Duration;

/// Files from this size go up as resumable uploads.
const RESUMABLE_FROM: usize = 32 * 1024 * 1024;
/// Bytes sent per request of a resumable upload.
const RESUMABLE_CHUNK: usize = 16 * 1024 * 1024;
/// An upload may take this long plus one second per MB before it is given up and retried: a
/// store that stops answering must not hang the queue.
const BASE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct GcsStorage {
    client: Client,
    bucket: String,
    /// `https://storage.googleapis.com` or the configured endpoint, without a slash.
    endpoint: String,
    /// Present with a service-account key: signs download URLs.
    signer: Option<google_cloud_auth::signer::Signer>,
    url_expiry: Option<Duration>,
    runtime: tokio::runtime::Runtime,
}

impl GcsStorage {
    /// `credentials` is the service-account JSON; `endpoint` another endpoint (an emulator,
    /// reached without credentials when none are given).
    pub fn new(
        bucket: &str,
        credentials: Option<&str>,
        endpoint: Option<&str>,
    ) -> anyhow::Result<GcsStorage> {
        let runtime = super::client_runtime("gcs")?;
        // The credentials start a token refresh task on the current runtime.
        let (credentials, signer) = {
            let _inside = runtime.enter();
            sign_in(credentials, endpoint.is_some())?
        };
        if let Some(signer) = &signer {
            // The key is read only when first used: use it now, so that a bad one is told here.
            runtime
                .block_on(signer.sign("egress"))
                .map_err(|_| anyhow::anyhow!("gcs_credentials: not a usable service-account key"))?;
        }
        let mut builder = Client::builder()
            .with_credentials(credentials)
            // A few quick tries: the upload queue retries whole files with its own backoff.
            .with_retry_policy(
                RetryableErrors
                    .with_attempt_limit(3)
                    .with_time_limit(Duration::from_secs(20)),
            )
            .with_resumable_upload_threshold(RESUMABLE_FROM)
            .with_resumable_upload_buffer_size(RESUMABLE_CHUNK);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        let client = runtime
            .block_on(builder.build())
            .map_err(|e| anyhow::anyhow!("cannot set up the GCS client: {e}"))?;
        Ok(GcsStorage {
            client,
            bucket: bucket.to_owned(),
            endpoint: endpoint
                .unwrap_or("https://storage.googleapis.com")
                .trim_end_matches('/')
                .to_owned(),
            signer,
            url_expiry: None,
            runtime,
        })
    }

    /// Gives V4 signed download URLs valid for `expiry` (with a service-account key only).
    pub fn with_signed_urls(mut self, expiry: Option<Duration>) -> Self {
        self.url_expiry = expiry;
        self
    }

    fn signed_url(&self, key: &str, expiry: Duration) -> anyhow::Result<String> {
        let signer = self
            .signer
            .as_ref()
            .context("no service-account key to sign with")?;
        let builder = google_cloud_storage::builder::storage::SignedUrlBuilder::for_object(
            format!("projects/_/buckets/{}", self.bucket),
            key,
        )
        .with_expiration(expiry)
        .with_endpoint(&self.endpoint)
        .with_url_style(google_cloud_storage::signed_url::UrlStyle::PathStyle);
        self.runtime
            .block_on(builder.sign_with(signer))
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    async fn upload(&self, file: &Path, key: &str) -> anyhow::Result<i64> {
        let source = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let object = self
            .client
            .write_object(format!("projects/_/buckets/{}", self.bucket), key, source)
            // Writing the same bytes again is harmless: let the client retry its own requests.
            .with_idempotency(true)
            // Sent in requests of a known length (RESUMABLE_CHUNK), each retried on its own.
            .send_buffered()
            .await
            .map_err(|e| plain(&e, &self.bucket))?;
        Ok(object.size)
    }

    /// Writes the check file only where none is: replacing an object needs the delete
    /// permission, which a create-only service account lacks. A check file already there
    /// (precondition failed, after the service has checked the create permission) passes.
    async fn write_check_file(&self, key: &str) -> anyhow::Result<()> {
        let written = self
            .client
            .write_object(
                format!("projects/_/buckets/{}", self.bucket),
                key,
                bytes::Bytes::from_static(b"egress storage check\n"),
            )
            .set_if_generation_match(0)
            .send_buffered()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.http_status_code() == Some(412) => Ok(()),
            Err(e) => Err(plain(&e, &self.bucket)),
        }
    }
}

/// The credentials for requests and, with a service-account key, the signer for URLs.
fn sign_in(
    json: Option<&str>,
    has_endpoint: bool,
) -> anyhow::Result<(Credentials, Option<google_cloud_auth::signer::Signer>)> {
    let Some(json) = json else {
        if has_endpoint {
            // An emulator takes unsigned requests.
            return Ok((anonymous::Builder::new().build(), None));
        }
        let adc = credentials::Builder::default()
            .build()
            .map_err(|e| anyhow::anyhow!("no gcs_credentials and no Application Default Credentials: {e}"))?;
        return Ok((adc, None));
    };
    // The error never quotes the JSON: it holds the private key.
    let key: serde_json::Value = serde_json::from_str(json)
        .map_err(|_| anyhow::anyhow!("gcs_credentials: expected the service-account JSON"))?;
    let credentials = service_account::Builder::new(key.clone())
        .build()
        .map_err(|_| anyhow::anyhow!("gcs_credentials: not a usable service-account key"))?;
    let signer = service_account::Builder::new(key)
        .build_signer()
        .map_err(|_| anyhow::anyhow!("gcs_credentials: not a usable service-account key"))?;
    Ok((credentials, Some(signer)))
}

impl Storage for GcsStorage {
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<()> {
        let size = std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        let budget = BASE_TIMEOUT + Duration::from_secs(size / 1_000_000);
        let stored = self
            .runtime
            .block_on(async { tokio::time::timeout(budget, self.upload(file, key)).await })
            .map_err(|_| anyhow::anyhow!("unreachable endpoint: the store did not answer in {budget:?}"))??;
        anyhow::ensure!(
            stored == size as i64,
            "gs://{}/{key} holds {stored} bytes, expected {size}",
            self.bucket
        );
        Ok(())
    }

    fn permission_caveats(&self) -> &'static [&'static str] {
        &[
            "live HLS replaces its playlists in place, which GCS allows only with storage.objects.delete \
             (roles/storage.objectUser); recordings, stills and transcripts need storage.objects.create alone",
        ]
    }

    fn check(&self, key: &str) -> anyhow::Result<String> {
        self.runtime
            .block_on(async { tokio::time::timeout(BASE_TIMEOUT, self.write_check_file(key)).await })
            .map_err(|_| {
                anyhow::anyhow!("unreachable endpoint: the store did not answer in {BASE_TIMEOUT:?}")
            })??;
        Ok(self.url(key))
    }

    fn url(&self, key: &str) -> String {
        if let Some(expiry) = self.url_expiry
            && self.signer.is_some()
        {
            match self.signed_url(key, expiry) {
                Ok(url) => return url,
                Err(e) => {
                    tracing::warn!(%key, error = %format!("{e:#}"), "cannot sign a URL; giving the object URL")
                }
            }
        }
        format!("{}/{}/{}", self.endpoint, self.bucket, super::encode_key(key))
    }
}

/// The service's refusal in plain words.
fn plain(error: &google_cloud_storage::Error, bucket: &str) -> anyhow::Error {
    let (failure, message) = match error.http_status_code() {
        Some(401) => (
            StoreFailure::WrongKey,
            "wrong key: the store refused the service-account credentials".to_owned(),
        ),
        Some(403) => (
            StoreFailure::NoPermission,
            format!("no write permission on bucket {bucket}"),
        ),
        Some(404) => (
            StoreFailure::MissingBucket,
            format!("missing bucket: {bucket} does not exist"),
        ),
        Some(code) => (
            StoreFailure::Refused(Some(code)),
            format!(
                "the store refused: HTTP {code} ({})",
                error.status().map(|s| s.message.as_str()).unwrap_or("no message")
            ),
        ),
        None if error.is_authentication() => (
            StoreFailure::WrongKey,
            format!("wrong key: no token for the service account: {error}"),
        ),
        None if error.is_connect() || error.is_timeout() || error.is_io() || error.is_transport() => (
            StoreFailure::Unreachable,
            "unreachable endpoint: the store did not answer".to_owned(),
        ),
        None => (
            StoreFailure::Refused(None),
            format!("the request to the store failed: {error}"),
        ),
    };
    anyhow::Error::new(StoreError::new(failure, message))
}
