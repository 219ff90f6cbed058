//! Azure Blob Storage through `azure_storage_blob`. Every file goes up as staged blocks (16 MiB,
//! four in flight, each with its MD5 checked by the service) committed as one block blob.
//! Sign-in: a service principal (Entra ID, needs https), or the account key, with which this
//! worker signs a short-lived container SAS per upload, or a connection string holding either.

use super::Storage;
use super::azure_sas::{SasScope, service_sas};
use super::{StoreError, StoreFailure};
use crate::job::AzureConfig;
use anyhow::Context;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, StatusCode, Url};
use azure_storage_blob::models::BlockLookupList;
use azure_storage_blob::{BlockBlobClient, BlockBlobClientOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Size of one block.
const BLOCK_SIZE: u64 = 16 * 1024 * 1024;
/// Blocks in flight at once.
const PARALLEL_BLOCKS: usize = 4;
/// One request may take this long (a 16 MiB block at 300 kB/s) before it is given up and the
/// upload retried: a store that stops answering must not hang the queue.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Validity of the SAS this worker signs for its own uploads.
const UPLOAD_SAS_VALIDITY: chrono::TimeDelta = chrono::TimeDelta::hours(2);

enum SignIn {
    Principal(Arc<dyn azure_core::credentials::TokenCredential>),
    AccountKey(String),
    /// A SAS given in a connection string, used as it is.
    Sas(String),
}

pub struct AzureStorage {
    account: String,
    container: String,
    /// `https://ACCOUNT.blob.core.windows.net` or the configured endpoint, without a slash.
    endpoint: String,
    sign_in: SignIn,
    url_expiry: Option<Duration>,
    runtime: tokio::runtime::Runtime,
}

/// The parts of an Azure Storage connection string this worker uses.
#[derive(Default)]
pub struct ConnectionString {
    pub account_name: Option<String>,
    pub account_key: Option<String>,
    pub blob_endpoint: Option<String>,
    pub sas: Option<String>,
    protocol: Option<String>,
    suffix: Option<String>,
}

impl ConnectionString {
    /// Parses `Key=value;…`; the error never quotes the text (it holds the key).
    pub fn parse(text: &str) -> Result<ConnectionString, String> {
        let mut parsed = ConnectionString::default();
        for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err("expected Name=value pairs separated by ';'".to_owned());
            };
            let value = Some(value.to_owned());
            match name.trim() {
                "AccountName" => parsed.account_name = value,
                "AccountKey" => parsed.account_key = value,
                "BlobEndpoint" => parsed.blob_endpoint = value,
                "SharedAccessSignature" => parsed.sas = value,
                "DefaultEndpointsProtocol" => parsed.protocol = value,
                "EndpointSuffix" => parsed.suffix = value,
                _ => {}
            }
        }
        if parsed.account_key.is_none() && parsed.sas.is_none() {
            return Err("expected an AccountKey or a SharedAccessSignature".to_owned());
        }
        if parsed.account_name.is_none() && parsed.blob_endpoint.is_none() {
            return Err("expected an AccountName or a BlobEndpoint".to_owned());
        }
        Ok(parsed)
    }

    fn endpoint(&self) -> Option<String> {
        self.blob_endpoint.clone().or_else(|| {
            let account = self.account_name.as_ref()?;
            let protocol = self.protocol.as_deref().unwrap_or("https");
            let suffix = self.suffix.as_deref().unwrap_or("core.windows.net");
            Some(format!("{protocol}://{account}.blob.{suffix}"))
        })
    }
}

impl AzureStorage {
    pub fn new(container: &str, config: &AzureConfig) -> anyhow::Result<AzureStorage> {
        let runtime = super::client_runtime("azure")?;
        let connection = match &config.abs_connection_string {
            Some(text) => Some(
                ConnectionString::parse(text)
                    .map_err(|e| anyhow::anyhow!("azure_blob.abs_connection_string: {e}"))?,
            ),
            None => None,
        };
        let account = config
            .abs_account_name
            .clone()
            .or_else(|| connection.as_ref().and_then(|c| c.account_name.clone()))
            .context("azure_blob.abs_account_name is missing")?;
        let endpoint = config
            .abs_endpoint_url
            .clone()
            .or_else(|| connection.as_ref().and_then(ConnectionString::endpoint))
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let sign_in = if let Some(connection) = connection {
            match (connection.account_key, connection.sas) {
                (Some(key), _) => SignIn::AccountKey(key),
                (None, Some(sas)) => SignIn::Sas(sas.trim_start_matches('?').to_owned()),
                (None, None) => unreachable!("parse demands one"),
            }
        } else if let Some(key) = &config.abs_account_key {
            SignIn::AccountKey(key.clone())
        } else {
            let (Some(tenant), Some(client), Some(secret)) = (
                &config.abs_tenant_id,
                &config.abs_client_id,
                &config.abs_client_secret,
            ) else {
                anyhow::bail!("azure_blob: expected abs_tenant_id, abs_client_id and abs_client_secret");
            };
            let credential = azure_identity::ClientSecretCredential::new(
                tenant,
                client.clone(),
                secret.clone().into(),
                None,
            )
            .map_err(|e| anyhow::anyhow!("azure_blob: {e}"))?;
            SignIn::Principal(credential)
        };
        Ok(AzureStorage {
            account,
            container: container.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            sign_in,
            url_expiry: None,
            runtime,
        })
    }

    /// Gives read-only SAS download URLs valid for `expiry` (with an account key only).
    pub fn with_signed_urls(mut self, expiry: Option<Duration>) -> Self {
        self.url_expiry = expiry;
        self
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/{}/{}", self.endpoint, self.container, super::encode_key(key))
    }

    /// A client for one blob, signed for writing.
    fn client(&self, key: &str) -> anyhow::Result<BlockBlobClient> {
        let mut url = Url::parse(&self.object_url(key))
            .with_context(|| format!("azure_blob.abs_endpoint_url: not a URL: {}", self.endpoint))?;
        let credential = match &self.sign_in {
            SignIn::Principal(credential) => Some(credential.clone()),
            SignIn::AccountKey(account_key) => {
                let expiry = chrono::Utc::now() + UPLOAD_SAS_VALIDITY;
                url.set_query(Some(&service_sas(
                    &self.account,
                    account_key,
                    &self.container,
                    SasScope::Container,
                    "rcw",
                    expiry,
                )?));
                None
            }
            SignIn::Sas(sas) => {
                url.set_query(Some(sas));
                None
            }
        };
        let options = BlockBlobClientOptions {
            // The upload queue retries whole files with its own backoff.
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            ..BlockBlobClientOptions::default()
        };
        BlockBlobClient::new(url, credential, Some(options)).map_err(|e| plain(e, &self.container))
    }

    async fn upload(&self, file: &Path, key: &str, size: u64) -> anyhow::Result<()> {
        let client = Arc::new(self.client(key)?);
        let count = size.div_ceil(BLOCK_SIZE).max(1);
        let mut ids = Vec::new();
        let mut in_flight = tokio::task::JoinSet::new();
        for index in 0..count {
            if in_flight.len() >= PARALLEL_BLOCKS
                && let Some(done) = in_flight.join_next().await
            {
                done.context("a block upload stopped")??;
            }
            let offset = index * BLOCK_SIZE;
            let bytes = super::read_range(file, offset, BLOCK_SIZE.min(size - offset))?;
            // Block ids must all have the same length.
            let id = format!("block-{index:08}").into_bytes();
            ids.push(id.clone());
            let client = client.clone();
            let container = self.container.clone();
            in_flight.spawn(async move {
                let options = azure_storage_blob::models::BlockBlobClientStageBlockOptions {
                    transactional_content_md5: Some(md5::compute(&bytes).0.to_vec()),
                    ..Default::default()
                };
                let length = bytes.len() as u64;
                let sent = client.stage_block(&id, length, RequestContent::from(bytes), Some(options));
                timed(sent, &container).await.map(drop)
            });
        }
        while let Some(done) = in_flight.join_next().await {
            done.context("a block upload stopped")??;
        }
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        let list: RequestContent<BlockLookupList, _> = list
            .try_into()
            .map_err(|e: azure_core::Error| anyhow::anyhow!("cannot write the block list: {e}"))?;
        timed(client.commit_block_list(list, None), &self.container).await?;
        Ok(())
    }
}

impl Storage for AzureStorage {
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<()> {
        let size = std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        self.runtime.block_on(self.upload(file, key, size))
    }

    fn url(&self, key: &str) -> String {
        let url = self.object_url(key);
        if let (Some(expiry), SignIn::AccountKey(account_key)) = (self.url_expiry, &self.sign_in) {
            let until = chrono::Utc::now() + expiry;
            match service_sas(
                &self.account,
                account_key,
                &self.container,
                SasScope::Blob(key),
                "r",
                until,
            ) {
                Ok(sas) => return format!("{url}?{sas}"),
                Err(e) => {
                    tracing::warn!(%key, error = %format!("{e:#}"), "cannot sign a URL; giving the blob URL")
                }
            }
        }
        url
    }
}

async fn timed<T>(
    request: impl Future<Output = azure_core::Result<T>>,
    container: &str,
) -> anyhow::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|e| plain(e, container)),
        Err(_) => anyhow::bail!("unreachable endpoint: the store did not answer in {REQUEST_TIMEOUT:?}"),
    }
}

/// The service's refusal in plain words.
fn plain(error: azure_core::Error, container: &str) -> anyhow::Error {
    let (failure, message) = match error.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = error_code.as_deref().unwrap_or_default();
            let body = raw_response
                .as_ref()
                .map(|r| String::from_utf8_lossy(r.body().as_ref()).into_owned())
                .unwrap_or_default();
            // A signature the service cannot verify comes as AuthenticationFailed from Azure,
            // as AuthorizationFailure "failed to authenticate" from Azurite.
            let unauthenticated = code.starts_with("Authentication")
                || code == "InvalidAuthenticationInfo"
                || body.contains("failed to authenticate");
            match (code, *status) {
                _ if unauthenticated => (
                    StoreFailure::WrongKey,
                    format!("wrong key: the store refused the credentials ({code})"),
                ),
                ("ContainerNotFound", _) => (
                    StoreFailure::MissingBucket,
                    format!("missing bucket: container {container} does not exist"),
                ),
                (
                    "AuthorizationPermissionMismatch"
                    | "AuthorizationFailure"
                    | "AuthorizationResourceTypeMismatch",
                    _,
                )
                | (_, StatusCode::Forbidden) => (
                    StoreFailure::NoPermission,
                    format!("no write permission on container {container} ({code})"),
                ),
                _ => (
                    StoreFailure::Refused(Some(u16::from(*status))),
                    format!("the store refused: HTTP {status} ({code})"),
                ),
            }
        }
        ErrorKind::Connection | ErrorKind::Io => (
            StoreFailure::Unreachable,
            "unreachable endpoint: the store did not answer".to_owned(),
        ),
        ErrorKind::Credential => (
            StoreFailure::WrongKey,
            format!("wrong key: no token for the service principal: {error}"),
        ),
        _ => (
            StoreFailure::Refused(None),
            format!("the request to the store failed: {error}"),
        ),
    };
    anyhow::Error::new(StoreError::new(failure, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_give_account_key_and_endpoint() {
        let parsed = ConnectionString::parse(
            "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/dev;",
        )
        .unwrap();
        assert_eq!(parsed.account_name.as_deref(), Some("dev"));
        assert_eq!(parsed.account_key.as_deref(), Some("a2V5"));
        assert_eq!(parsed.endpoint().as_deref(), Some("http://127.0.0.1:10000/dev"));
        let cloud =
            ConnectionString::parse("AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn")
                .unwrap();
        assert_eq!(
            cloud.endpoint().as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
    }

    #[test]
    fn connection_strings_without_a_key_are_refused_without_quoting_them() {
        let error = ConnectionString::parse("AccountName=acct;Secret=hunter2")
            .err()
            .unwrap();
        assert!(
            error.contains("AccountKey") && !error.contains("hunter2"),
            "{error}"
        );
        assert!(ConnectionString::parse("no pairs here").is_err());
    }
}
