//! Storage backends: where finished files end up: a local folder or an S3(-compatible) bucket;
//! and the spool and upload queue that get files there without losing any.

mod local;
mod s3;
mod spool;
mod uploader;

pub use local::LocalStorage;
pub use s3::S3Storage;
pub use spool::JobSpool;
pub use uploader::{Output, RetryPolicy, Uploader, resume};

use crate::job::{StorageConfig, StorageType};
use anyhow::Context;
use std::path::Path;

/// The storage a job names: `local` writes below `out_dir`.
pub fn open(config: &StorageConfig, out_dir: &Path) -> anyhow::Result<Box<dyn Storage>> {
    Ok(match config.storage_type {
        StorageType::Local => Box::new(LocalStorage::new(out_dir)),
        StorageType::S3 => {
            let bucket = config.bucket.as_deref().context("storage.bucket is missing")?;
            let s3 = config.aws_s3.as_ref().context("storage.aws_s3 is missing")?;
            let expiry = config
                .url_expiry_s
                .map(|s| std::time::Duration::from_secs(u64::from(s)));
            Box::new(S3Storage::new(bucket, s3)?.with_signed_urls(expiry))
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

#[cfg(test)]
mod tests {
    use super::*;

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
