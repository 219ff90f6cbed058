//! Which local files a job may read (clips, audio files, logos): regular files below the media
//! folder, of a bounded size, or none at all. Colours, patterns and tones read no file.

use std::path::{Path, PathBuf};

/// The largest local media file a job may name.
pub const LARGEST_MEDIA_FILE: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalMedia {
    /// Regular files below this folder (`egress run`: the job's folder; a worker that allows
    /// local media: its `media_dir`).
    Below(PathBuf),
    /// No local file at all (a worker without `allow_local_media`).
    Refused,
}

/// Why a job may not read a file it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaAccessError {
    #[error("expected no local file: this worker reads none for a job ([worker] allow_local_media is off)")]
    NotAllowed,
    #[error("expected a readable media file; {0} does not exist")]
    Missing(String),
    #[error("expected a file below the media folder {folder}; {name} is outside it")]
    Outside { name: String, folder: String },
    #[error("expected a regular file; {0} is not one")]
    NotRegular(String),
    #[error("expected a file of at most {largest} bytes; {name} has {size}")]
    TooLarge { name: String, size: u64, largest: u64 },
}

impl LocalMedia {
    /// Where a job's file name (a path relative to the media folder, or a `file://` URL) leads,
    /// when the job may read it.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, MediaAccessError> {
        let LocalMedia::Below(folder) = self else {
            return Err(MediaAccessError::NotAllowed);
        };
        let name = name.strip_prefix("file://").unwrap_or(name);
        let missing = || MediaAccessError::Missing(folder.join(name).display().to_string());
        let root = std::fs::canonicalize(folder).map_err(|_| missing())?;
        // Links are followed first, so that one below the folder cannot lead out of it.
        let resolved = std::fs::canonicalize(root.join(name)).map_err(|_| missing())?;
        if !resolved.starts_with(&root) {
            return Err(MediaAccessError::Outside {
                name: name.to_owned(),
                folder: root.display().to_string(),
            });
        }
        let metadata = std::fs::metadata(&resolved).map_err(|_| missing())?;
        if !metadata.is_file() {
            return Err(MediaAccessError::NotRegular(name.to_owned()));
        }
        if metadata.len() > LARGEST_MEDIA_FILE {
            return Err(MediaAccessError::TooLarge {
                name: name.to_owned(),
                size: metadata.len(),
                largest: LARGEST_MEDIA_FILE,
            });
        }
        Ok(resolved)
    }

    /// The folder relative names are found in, when local media is allowed.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            LocalMedia::Below(folder) => Some(folder),
            LocalMedia::Refused => None,
        }
    }
}

/// True when a logo address names a local file rather than an http(s) URL.
pub fn is_local(url: &str) -> bool {
    !(url.starts_with("http://") || url.starts_with("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (PathBuf, LocalMedia) {
        let dir = std::env::temp_dir().join(format!(
            "egress-media-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("clips")).unwrap();
        std::fs::write(dir.join("clips/a.webm"), b"clip").unwrap();
        (dir.clone(), LocalMedia::Below(dir))
    }

    #[test]
    fn files_below_the_folder_are_read_and_nothing_else() {
        let (dir, access) = folder();
        assert_eq!(
            access.resolve("clips/a.webm").unwrap(),
            std::fs::canonicalize(dir.join("clips/a.webm")).unwrap()
        );
        assert!(access.resolve("file://clips/a.webm").is_ok());
        assert!(matches!(
            access.resolve("/etc/passwd"),
            Err(MediaAccessError::Outside { .. })
        ));
        assert!(matches!(
            access.resolve("clips/../../../../etc/passwd"),
            Err(MediaAccessError::Outside { .. })
        ));
        assert!(matches!(
            access.resolve("clips"),
            Err(MediaAccessError::NotRegular(_))
        ));
        assert!(matches!(
            access.resolve("nowhere.webm"),
            Err(MediaAccessError::Missing(_))
        ));
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
        assert!(matches!(
            access.resolve("link"),
            Err(MediaAccessError::Outside { .. })
        ));
        assert_eq!(
            LocalMedia::Refused.resolve("clips/a.webm"),
            Err(MediaAccessError::NotAllowed)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn devices_are_not_media() {
        let access = LocalMedia::Below("/dev".into());
        assert!(matches!(
            access.resolve("zero"),
            Err(MediaAccessError::NotRegular(_))
        ));
    }
}
