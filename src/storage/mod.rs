//! Storage backends: where finished files end up (a local folder, an S3(-compatible) or GCS
//! bucket, an Azure Blob container), and the spool and upload queue that get files there
//! without losing any.

mod azure;
mod azure_sas;
mod error;
mod gcs;
mod local;
mod s3;
mod spool;
mod uploader;

pub use azure::{AzureStorage, ConnectionString};
pub use error::{StoreError, StoreFailure, is_permanent};
pub use gcs::GcsStorage;
pub use local::LocalStorage;
pub use s3::S3Storage;
pub use spool::{JobSpool, OpenPart};
pub use uploader::{Output, RetryPolicy, Uploader, resume};

use crate::job::{StorageConfig, StorageType};
use anyhow::Context;
use std::path::Path;

/// The storage a job names: `local` writes below `out_dir`.
pub fn open(config: &StorageConfig, out_dir: &Path) -> anyhow::Result<Box<dyn Storage>> {
    let expiry = config
        .url_expiry_s
        .map(|s| std::time::Duration::from_secs(u64::from(s)));
    Ok(match config.storage_type {
        StorageType::Local => Box::new(LocalStorage::new(out_dir)),
        StorageType::S3 => {
            let bucket = config.bucket.as_deref().context("storage.bucket is missing")?;
            let s3 = config.aws_s3.as_ref().context("storage.aws_s3 is missing")?;
            Box::new(S3Storage::new(bucket, s3)?.with_signed_urls(expiry))
        }
        StorageType::Gcs => {
            let bucket = config.bucket.as_deref().context("storage.bucket is missing")?;
            let gcs = GcsStorage::new(
                bucket,
                config.gcs_credentials.as_deref(),
                config.gcs_endpoint_url.as_deref(),
            )?;
            Box::new(gcs.with_signed_urls(expiry))
        }
        StorageType::Abs => {
            let container = config.bucket.as_deref().context("storage.bucket is missing")?;
            let azure = config
                .azure_blob
                .as_ref()
                .context("storage.azure_blob is missing")?;
            Box::new(AzureStorage::new(container, azure)?.with_signed_urls(expiry))
        }
    })
}

/// A place finished files are copied to, by key.
pub trait Storage: Send + Sync {
    /// Copies the file at `file` to `key`; returns once the store holds all of it. The file is
    /// left in place.
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<()>;

    /// The URL a user fetches `key` from.
    fn url(&self, key: &str) -> String;

    /// What the check cannot prove but a user must know about this store's permissions.
    fn permission_caveats(&self) -> &'static [&'static str] {
        &[]
    }

    /// Writes a small check file under `key`, as a job's files would be written: an error says
    /// in plain words what is wrong (key, bucket, permission, endpoint).
    fn check(&self, key: &str) -> anyhow::Result<String> {
        let dir = tempfile_dir()?;
        let file = dir.join("egress-storage-check.txt");
        std::fs::write(&file, b"egress storage check\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
        let stored = self.store(&file, key);
        let _ = std::fs::remove_dir_all(&dir);
        stored.map(|()| self.url(key))
    }
}

/// The key of the check file below a storage's path prefix.
pub fn check_key(prefix: Option<&str>) -> anyhow::Result<String> {
    object_key(prefix, "egress-storage-check.txt")
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("egress-check-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Joins the job's path prefix and a file name into a key that cannot escape the prefix.
pub fn object_key(prefix: Option<&str>, filename: &str) -> anyhow::Result<String> {
    let prefix = prefix.unwrap_or("").trim_matches('/');
    for part in prefix.split('/').chain(std::iter::once(filename)) {
        if part == ".." || part == "." || part.contains('\\') {
            anyhow::bail!(
                "storage.path: expected a relative folder without '.' or '..' segments; got {prefix:?}"
            );
        }
    }
    Ok(if prefix.is_empty() {
        filename.to_owned()
    } else {
        format!("{prefix}/{filename}")
    })
}

/// The runtime a cloud client runs its requests on; the `Storage` calls block on it.
fn client_runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the {name} client's runtime"))
}

/// `len` bytes of `file` from `offset`: one part or block of a large upload.
fn read_range(file: &Path, offset: u64, len: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0; len as usize];
    f.read_exact(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    Ok(bytes)
}

/// The CRC32 of a whole file, read in pieces.
fn file_crc32(file: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}

/// A key as a URL path: each segment percent-encoded, the slashes kept.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_urls_are_encoded_per_segment() {
        assert_eq!(encode_key("tenant 7/a+b.mp4"), "tenant%207/a%2Bb.mp4");
    }

    #[test]
    fn keys_join_prefix_and_name() {
        assert_eq!(
            object_key(Some("recordings/"), "a.mp4").unwrap(),
            "recordings/a.mp4"
        );
        assert_eq!(object_key(Some("/x/y/"), "a.mp4").unwrap(), "x/y/a.mp4");
        assert_eq!(object_key(None, "a.mp4").unwrap(), "a.mp4");
    }

    #[test]
    fn keys_cannot_escape_the_prefix() {
        assert!(object_key(Some("../etc"), "a.mp4").is_err());
        assert!(object_key(Some("a/../../b"), "a.mp4").is_err());
        assert!(object_key(Some("a"), "..").is_err());
    }
}
