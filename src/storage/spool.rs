//! A job's folder in the spool: its files being written, the list of files waiting for the
//! store (`uploads/`), the storage they go to (`storage.json`, readable by the worker's user
//! only, as it holds the job's keys) and a lock held while the job's worker lives.

use super::uploader::Output;
use crate::events::Event;
use crate::job::StorageConfig;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// One file waiting for the store, as written down in the spool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub key: String,
    pub size: u64,
    pub output: Output,
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    /// Announced once the store holds the file.
    pub ready: Option<Event>,
}

/// Where a job's storage is written down, for resuming after the worker died.
#[derive(Serialize, Deserialize)]
struct StorageRecord {
    storage: StorageConfig,
    /// Root of `local` storage.
    out_dir: PathBuf,
}

pub struct JobSpool {
    pub dir: PathBuf,
    pub egress_id: String,
    pub call_cid: String,
    /// Held (locked) while the job's worker runs; released by the OS when it dies.
    _lock: File,
}

impl JobSpool {
    /// Creates (or reopens) the folder of a starting job and takes its lock.
    pub fn create(
        spool_root: &Path,
        egress_id: &str,
        call_cid: &str,
        storage: &StorageConfig,
        out_dir: &Path,
    ) -> anyhow::Result<JobSpool> {
        let dir = spool_root.join(egress_id);
        std::fs::create_dir_all(dir.join("uploads"))
            .with_context(|| format!("cannot create spool folder {}", dir.display()))?;
        let lock = lock_file(&dir)?;
        lock.try_lock()
            .map_err(|_| anyhow::anyhow!("egress_id {egress_id}: another process runs this job"))?;
        let record = StorageRecord {
            storage: storage.clone(),
            out_dir: out_dir.to_owned(),
        };
        write_private(&dir.join("storage.json"), &serde_json::to_vec(&record)?)?;
        std::fs::write(dir.join("call_cid"), call_cid)?;
        Ok(JobSpool {
            dir,
            egress_id: egress_id.to_owned(),
            call_cid: call_cid.to_owned(),
            _lock: lock,
        })
    }

    /// The job folders in `spool_root` whose worker is gone (nobody holds their lock).
    pub fn abandoned(spool_root: &Path) -> anyhow::Result<Vec<JobSpool>> {
        let Ok(entries) = std::fs::read_dir(spool_root) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join("storage.json").is_file() {
                continue;
            }
            let lock = lock_file(&dir)?;
            if lock.try_lock().is_err() {
                continue;
            }
            let egress_id = entry.file_name().to_string_lossy().to_string();
            let call_cid = std::fs::read_to_string(dir.join("call_cid")).unwrap_or_default();
            found.push(JobSpool {
                dir,
                egress_id,
                call_cid,
                _lock: lock,
            });
        }
        Ok(found)
    }

    pub fn open_storage(&self) -> anyhow::Result<Box<dyn super::Storage>> {
        let path = self.dir.join("storage.json");
        let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let record: StorageRecord =
            serde_json::from_slice(&text).with_context(|| format!("{} is damaged", path.display()))?;
        super::open(&record.storage, &record.out_dir)
    }

    pub fn data_path(&self, id: u64) -> PathBuf {
        self.dir.join("uploads").join(format!("{id:08}.data"))
    }

    fn pending_path(&self, id: u64) -> PathBuf {
        self.dir.join("uploads").join(format!("{id:08}.json"))
    }

    /// Writes the entry down (atomically) before the file is queued.
    pub fn write_pending(&self, id: u64, pending: &Pending) -> anyhow::Result<()> {
        let path = self.pending_path(id);
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec(pending)?)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Takes a stored (or backed up) file off the list.
    pub fn forget(&self, id: u64) {
        let _ = std::fs::remove_file(self.pending_path(id));
        let _ = std::fs::remove_file(self.data_path(id));
    }

    /// The files still waiting, oldest first.
    pub fn pending(&self) -> Vec<(u64, Pending)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("uploads")) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, Pending)> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                let id: u64 = name.strip_suffix(".json")?.parse().ok()?;
                let text = std::fs::read(entry.path()).ok()?;
                match serde_json::from_slice(&text) {
                    Ok(pending) => Some((id, pending)),
                    Err(e) => {
                        tracing::error!(file = %entry.path().display(), error = %e, "damaged upload entry left alone");
                        None
                    }
                }
            })
            .collect();
        found.sort_by_key(|(id, _)| *id);
        found
    }

    pub fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    /// The next free upload number (after a restart, past the ones left behind).
    pub fn next_upload_id(&self) -> u64 {
        self.pending().last().map_or(0, |(id, _)| id + 1)
    }

    /// Removes what the uploads needed once nothing waits for the store; with `whole_folder`
    /// the job's own files too. Without it, files a failed job left stay where they are.
    pub fn remove(&self, whole_folder: bool) {
        if whole_folder {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the spool folder");
            }
            return;
        }
        let _ = std::fs::remove_dir(self.dir.join("uploads"));
        for name in ["storage.json", "call_cid", "lock"] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn lock_file(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
