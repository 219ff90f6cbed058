//! Storage backends: where finished files end up. Only the local folder exists so far.

mod local;

pub use local::LocalStorage;

use std::path::Path;

/// A place finished files are copied to, by key.
pub trait Storage: Send + Sync {
    /// Stores the file at `file` under `key` and returns the URL a user fetches it from.
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<String>;
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
