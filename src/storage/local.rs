use super::Storage;
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing parents readable by all (0755), whatever the worker's umask.
fn create_readable_dirs(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_readable_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A folder on this machine; the embedded default storage.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }
}

impl Storage for LocalStorage {
    fn store(&self, file: &Path, key: &str) -> anyhow::Result<()> {
        let target = self.root.join(key);
        if let Some(dir) = target.parent() {
            create_readable_dirs(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
        }
        let partial = target.with_extension("partial");
        // Copy under another name, then rename: a reader never sees half a file.
        std::fs::copy(file, &partial)
            .with_context(|| format!("cannot copy {} to {}", file.display(), partial.display()))?;
        // The spool keeps its files to the worker (0600); stored files are the deliverable.
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))?;
        let (expected, written) = (std::fs::metadata(file)?.len(), std::fs::metadata(&partial)?.len());
        anyhow::ensure!(
            expected == written,
            "copy of {} is {written} bytes, expected {expected}",
            file.display()
        );
        std::fs::rename(&partial, &target)?;
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        let root = std::fs::canonicalize(&self.root)
            .unwrap_or_else(|_| std::path::absolute(&self.root).unwrap_or(self.root.clone()));
        format!("file://{}", root.join(key).display())
    }
}
