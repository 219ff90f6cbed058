//! A job's folder in the spool: its files being written, the list of files waiting for the
//! store (`uploads/`), the storage they go to (`storage.json`, readable by the worker's user
//! only, as it holds the job's keys), a note beside each recording part still being written
//! (`*.open.json`) and a lock held while the job's worker lives. Each run of a job gets a
//! folder of its own, so a job started again never adopts, or removes, what an earlier run left.

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

/// A recording part being written: where it goes and how it will be announced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenPart {
    pub key: String,
    /// The `call.recording_ready` event, its end time still to be set.
    pub ready: crate::events::EventBody,
}

impl OpenPart {
    /// The ready event of the part, closed at `end_time`.
    pub fn ended_at(&self, end_time: String) -> crate::events::EventBody {
        let mut ready = self.ready.clone();
        if let crate::events::EventBody::RecordingReady { call_recording, .. } = &mut ready {
            call_recording.end_time = end_time;
        }
        ready
    }
}

const OPEN_NOTE: &str = ".open.json";

fn open_note_path(part: &Path) -> PathBuf {
    PathBuf::from(format!("{}{OPEN_NOTE}", part.display()))
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
    /// Creates a new folder for a starting job (`EGRESS_ID`, or `EGRESS_ID.N` when an earlier
    /// run's folder is still there) and takes its lock.
    pub fn create(
        spool_root: &Path,
        egress_id: &str,
        call_cid: &str,
        storage: &StorageConfig,
        out_dir: &Path,
    ) -> anyhow::Result<JobSpool> {
        std::fs::create_dir_all(spool_root)
            .with_context(|| format!("cannot create spool folder {}", spool_root.display()))?;
        let dir = unused_folder(spool_root, egress_id)?;
        std::fs::create_dir_all(dir.join("uploads"))
            .with_context(|| format!("cannot create spool folder {}", dir.display()))?;
        let lock = lock_file(&dir)?;
        lock.try_lock()
            .map_err(|_| anyhow::anyhow!("egress_id {egress_id}: cannot lock {}", dir.display()))?;
        let record = StorageRecord {
            storage: storage.clone(),
            out_dir: out_dir.to_owned(),
        };
        write_private(&dir.join("storage.json"), &serde_json::to_vec(&record)?)?;
        std::fs::write(dir.join("call_cid"), call_cid)?;
        std::fs::write(dir.join("egress_id"), egress_id)?;
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
            let egress_id = std::fs::read_to_string(dir.join("egress_id"))
                .unwrap_or_else(|_| entry.file_name().to_string_lossy().to_string());
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

    /// Notes down a recording part as it opens, with the event that will announce it: if the
    /// worker dies, the part (kept playable by the muxer) is stored from this note.
    pub fn note_open_part(&self, part: &Path, note: &OpenPart) -> anyhow::Result<()> {
        let path = open_note_path(part);
        write_private(&path, &serde_json::to_vec(note)?)
    }

    /// Forgets the note of a part that closed normally.
    pub fn forget_open_part(&self, part: &Path) {
        let _ = std::fs::remove_file(open_note_path(part));
    }

    /// Parts a dead worker was still writing, with their notes: in the job's folder and in
    /// the folders of its outputs (raw files are written in `raw/`).
    pub fn open_parts(&self) -> Vec<(PathBuf, OpenPart)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
        let nested = entries
            .iter()
            .filter(|e| e.path().is_dir() && e.file_name() != "uploads")
            .filter_map(|e| std::fs::read_dir(e.path()).ok())
            .flat_map(|inner| inner.flatten().collect::<Vec<_>>());
        let all: Vec<std::fs::DirEntry> = nested.collect();
        let mut found: Vec<(PathBuf, OpenPart)> = entries
            .into_iter()
            .chain(all)
            .filter_map(|entry| {
                let note = entry.path();
                let part = PathBuf::from(note.to_string_lossy().strip_suffix(OPEN_NOTE)?);
                let parsed = std::fs::read(&note)
                    .ok()
                    .and_then(|text| serde_json::from_slice(&text).ok());
                match (part.is_file(), parsed) {
                    (true, Some(open)) => Some((part, open)),
                    _ => {
                        let _ = std::fs::remove_file(&note);
                        None
                    }
                }
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
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
        for name in ["storage.json", "call_cid", "egress_id", "lock"] {
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

/// Creates `ROOT/EGRESS_ID` (or `ROOT/EGRESS_ID.N` when a run before left that one): a folder
/// that cannot be made for another reason (permissions, a full disk) is an error, not a search
/// without end.
fn unused_folder(root: &Path, egress_id: &str) -> anyhow::Result<PathBuf> {
    for n in 1..=1000 {
        let dir = match n {
            1 => root.join(egress_id),
            n => root.join(format!("{egress_id}.{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot create spool folder {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    anyhow::bail!(
        "cannot create a spool folder for {egress_id} in {}: 1000 are taken already",
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CallRecording, EventBody};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_spool_folder_that_cannot_be_made_is_an_error_not_an_endless_search() {
        let root = scratch("blocked");
        std::fs::create_dir_all(&root).unwrap();
        // A file where the job's folder would go, and where its parent should be.
        let parent = root.join("not-a-folder");
        std::fs::write(&parent, b"x").unwrap();
        let error = unused_folder(&parent, "eg_1").unwrap_err().to_string();
        assert!(error.contains("cannot create spool folder"), "{error}");
        let taken = unused_folder(&root, "eg_2").unwrap();
        assert_eq!(taken, root.join("eg_2"));
        assert_eq!(unused_folder(&root, "eg_2").unwrap(), root.join("eg_2.2"));
    }

    fn create(root: &Path) -> JobSpool {
        JobSpool::create(root, "eg_1", "default:c", &StorageConfig::default(), root).unwrap()
    }

    #[test]
    fn each_run_of_a_job_gets_a_folder_of_its_own() {
        let root = scratch("runs");
        let first = create(&root);
        let second = create(&root);
        assert_eq!(first.dir, root.join("eg_1"));
        assert_eq!(second.dir, root.join("eg_1.2"));
        assert_eq!(second.egress_id, "eg_1");
        drop(first);
        let abandoned = JobSpool::abandoned(&root).unwrap();
        assert_eq!(abandoned.len(), 1, "the running one is not abandoned");
        assert_eq!(abandoned[0].dir, root.join("eg_1"));
        assert_eq!(
            abandoned[0].egress_id, "eg_1",
            "read from the folder, not its name"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_part_noted_open_is_found_with_its_event_once_its_worker_is_gone() {
        let root = scratch("open");
        let spool = create(&root);
        let (closed, open) = (spool.dir.join("a.mp4"), spool.dir.join("b.mp4"));
        let note = |file: &str| OpenPart {
            key: format!("rec/{file}"),
            ready: EventBody::RecordingReady {
                recording_type: "composite".into(),
                call_recording: CallRecording {
                    user_id: None,
                    track: None,
                    filename: file.into(),
                    url: String::new(),
                    start_time: "2026-01-01T00:00:00.000Z".into(),
                    end_time: "2026-01-01T00:00:00.000Z".into(),
                    session_id: "s".into(),
                    recording_type: "composite".into(),
                    paused: Vec::new(),
                },
            },
        };
        for (path, name) in [(&closed, "a.mp4"), (&open, "b.mp4")] {
            std::fs::write(path, b"media").unwrap();
            spool.note_open_part(path, &note(name)).unwrap();
        }
        spool.forget_open_part(&closed);
        drop(spool);
        let abandoned = JobSpool::abandoned(&root).unwrap();
        let parts = abandoned[0].open_parts();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, open);
        assert_eq!(parts[0].1.key, "rec/b.mp4");
        let EventBody::RecordingReady { call_recording, .. } =
            parts[0].1.ended_at("2026-01-01T00:00:09.000Z".into())
        else {
            panic!("a ready event");
        };
        assert_eq!(call_recording.end_time, "2026-01-01T00:00:09.000Z");
        assert_eq!(call_recording.start_time, "2026-01-01T00:00:00.000Z");
        let _ = std::fs::remove_dir_all(&root);
    }
}
