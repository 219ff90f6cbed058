use super::Storage;
use anyhow::Context;
use std::path::{Path, PathBuf};

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
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create folder {}", dir.display()))?;
        }
        let partial = target.with_extension("partial");
        // Copy under another name, then rename: a reader never sees half a file.
        std::fs::copy(file, &partial)
            .with_context(|| format!("cannot copy {} to {}", file.display(), partial.display()))?;
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
