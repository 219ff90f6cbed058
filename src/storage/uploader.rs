//! The queue between the spool and the storage. Each output has its own lane, so a large
//! recording never holds up HLS segments or frames, and files of one output reach the store in
//! the order they were handed in (a playlist never lands before its segments). Every file is
//! written down in the spool (`uploads/N.json` beside `uploads/N.data`) before it is queued, and
//! taken out only once the store has confirmed it: a worker that dies leaves the list behind for
//! [`resume`](super::resume) to finish. A file the store would not take before the deadline is
//! moved to the backup folder and its output's failed event says where.

use super::Storage;
use super::spool::{JobSpool, Pending};
use crate::backoff::{BackoffPolicy, SystemClock};
use crate::events::{COMPOSITE, Event, EventBody, EventSink};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// How long and how often a file is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// After this long without success a file goes to the backup folder.
    pub deadline: Duration,
    /// The first wait; each next one doubles, up to `longest_wait`.
    pub first_wait: Duration,
    pub longest_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(600),
            first_wait: Duration::from_millis(500),
            longest_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The waits between attempts: doubling, with jitter over the lower half so that many
    /// workers retrying against one store do not knock in step. The deadline is the file's own
    /// (it counts from when the file was written, across restarts), so it is not the backoff's.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            jitter: 0.5,
            ..BackoffPolicy::new(self.first_wait, self.longest_wait)
        }
    }
}

/// The output a file belongs to: its lane, and the event that announces its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Recording,
    Hls,
    Frames,
    Transcript,
    Thumbnails,
    /// Raw recording: each track's file and the manifest.
    Raw,
    /// Individual recording: a file per participant and stay.
    Individual,
}

impl Output {
    fn failed(self, error: String) -> EventBody {
        match self {
            Output::Recording => EventBody::RecordingFailed {
                recording_type: COMPOSITE.into(),
                error,
            },
            Output::Hls => EventBody::HlsFailed { error },
            Output::Frames => EventBody::FrameRecordingFailed { error },
            Output::Transcript => EventBody::TranscriptionFailed { error },
            Output::Thumbnails => EventBody::ThumbnailFailed { error },
            Output::Individual => EventBody::RecordingFailed {
                recording_type: crate::events::INDIVIDUAL.into(),
                error,
            },
            Output::Raw => EventBody::RecordingFailed {
                recording_type: crate::events::RAW.into(),
                error,
            },
        }
    }
}

/// One file on its way to the store.
struct Item {
    id: u64,
    pending: Pending,
}

/// What a lane carries, in order: files to store, and events to announce once every file
/// queued before them on the lane is stored (or backed up).
enum LaneItem {
    File(Item),
    Announce(Event),
}

/// What the lanes share: which outputs lost files, and who to tell.
struct Shared<'env> {
    storage: &'env dyn Storage,
    events: &'env dyn EventSink,
    policy: RetryPolicy,
    spool: JobSpool,
    backup_dir: PathBuf,
    failed: Mutex<BTreeSet<Output>>,
}

pub struct Uploader<'scope, 'env> {
    /// One lane a output; `None`: its thread could not be started, items are carried out inline.
    lanes: HashMap<Output, Option<mpsc::Sender<LaneItem>>>,
    handles: Vec<ScopedJoinHandle<'scope, ()>>,
    shared: Arc<Shared<'env>>,
    next_id: AtomicU64,
    scope: &'scope Scope<'scope, 'env>,
    /// The platform's description of the call, added to the events that carry `call`.
    call_details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'scope, 'env> Uploader<'scope, 'env> {
    pub fn start(
        scope: &'scope Scope<'scope, 'env>,
        spool: JobSpool,
        storage: &'env dyn Storage,
        events: &'env dyn EventSink,
        policy: RetryPolicy,
        backup_dir: &Path,
    ) -> Self {
        let next_id = AtomicU64::new(spool.next_upload_id());
        Uploader {
            lanes: HashMap::new(),
            handles: Vec::new(),
            shared: Arc::new(Shared {
                storage,
                events,
                policy,
                spool,
                backup_dir: backup_dir.to_owned(),
                failed: Mutex::new(BTreeSet::new()),
            }),
            next_id,
            scope,
            call_details: None,
        }
    }

    /// Events announced once their file is stored carry this description of the call too.
    pub fn describe_call(&mut self, details: Option<serde_json::Map<String, serde_json::Value>>) {
        self.call_details = details;
    }

    /// The job's folder in the spool.
    pub fn spool(&self) -> &JobSpool {
        &self.shared.spool
    }

    /// The URL a key will have once stored, for events announced before the upload ends.
    pub fn url(&self, key: &str) -> String {
        self.shared.storage.url(key)
    }

    /// Queues a finished file: it is moved into the spool's upload list at once, so the caller
    /// may reuse its name. `ready` is announced once the store holds the file.
    pub fn submit_file(
        &mut self,
        output: Output,
        file: &Path,
        key: &str,
        ready: Option<EventBody>,
    ) -> anyhow::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = self.shared.spool.data_path(id);
        std::fs::rename(file, &data)
            .with_context(|| format!("cannot move {} into the upload spool", file.display()))?;
        self.queue(id, output, key, ready)
    }

    /// Queues bytes (a playlist that is rewritten in place, say) as a file of their own.
    pub fn submit_bytes(
        &mut self,
        output: Output,
        bytes: &[u8],
        key: &str,
        ready: Option<EventBody>,
    ) -> anyhow::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = self.shared.spool.data_path(id);
        std::fs::write(&data, bytes).with_context(|| format!("cannot write {}", data.display()))?;
        self.queue(id, output, key, ready)
    }

    /// Re-queues a file a dead worker left in the spool.
    fn requeue(&mut self, id: u64, pending: Pending) {
        self.send(pending.output, LaneItem::File(Item { id, pending }));
    }

    fn queue(&mut self, id: u64, output: Output, key: &str, ready: Option<EventBody>) -> anyhow::Result<()> {
        let data = self.shared.spool.data_path(id);
        let size = std::fs::metadata(&data)
            .with_context(|| format!("cannot read {}", data.display()))?
            .len();
        let pending = Pending {
            key: key.to_owned(),
            size,
            output,
            submitted_at: chrono::Utc::now(),
            ready: ready.map(|body| {
                Event::new(&self.shared.spool.call_cid, &self.shared.spool.egress_id, body)
                    .with_call_details(self.call_details.as_ref())
            }),
        };
        self.shared.spool.write_pending(id, &pending)?;
        self.send(output, LaneItem::File(Item { id, pending }));
        Ok(())
    }

    /// Announces `body` once every file of `output` queued so far has been stored or backed up:
    /// an output that ends while its files are on their way is announced stopped after them.
    pub fn announce_after(&mut self, output: Output, body: EventBody) {
        let event = Event::new(&self.shared.spool.call_cid, &self.shared.spool.egress_id, body)
            .with_call_details(self.call_details.as_ref());
        self.send(output, LaneItem::Announce(event));
    }

    /// Hands an item to its output's lane, started on first use. A lane whose thread cannot be
    /// started (the system refuses threads) works in the caller's thread instead: slower for
    /// the call, but nothing is dropped.
    fn send(&mut self, output: Output, item: LaneItem) {
        let shared = &self.shared;
        let handles = &mut self.handles;
        let scope = self.scope;
        let lane = self.lanes.entry(output).or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<LaneItem>();
            let lane_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("upload-{output:?}").to_lowercase())
                .spawn_scoped(scope, move || {
                    for item in rx {
                        carry_out(&lane_shared, item);
                    }
                });
            match spawned {
                Ok(handle) => {
                    handles.push(handle);
                    Some(tx)
                }
                Err(e) => {
                    tracing::error!(?output, error = %e, "cannot start an upload thread; storing from the job's thread");
                    None
                }
            }
        });
        match lane {
            Some(tx) => {
                if let Err(mpsc::SendError(item)) = tx.send(item) {
                    carry_out(shared, item);
                }
            }
            None => carry_out(shared, item),
        }
    }

    /// Waits until every queued file is stored or backed up; returns the outputs that lost files
    /// to the backup folder (their failed events are already out). When all went well the
    /// upload list is removed, and with `whole_folder` the job's spool folder with it.
    pub fn finish(mut self, whole_folder: bool) -> BTreeSet<Output> {
        self.lanes.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
        let failed = std::mem::take(&mut *self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()));
        if failed.is_empty() && !self.shared.spool.has_pending() {
            self.shared.spool.remove(whole_folder);
        }
        failed
    }
}

/// How long a store that refuses a file for good is still tried.
const PERMANENT_GRACE: Duration = Duration::from_secs(5);

/// Stores one file, retrying until the deadline; then backs it up.
fn deliver(shared: &Shared, item: Item) {
    let Item { id, pending } = item;
    let data = shared.spool.data_path(id);
    let deadline = shared.policy.deadline;
    let age = |pending: &Pending| {
        (chrono::Utc::now() - pending.submitted_at)
            .to_std()
            .unwrap_or_default()
    };
    let mut attempt = 0u32;
    let mut backoff = shared.policy.backoff().start(SystemClock);
    let mut refused_since: Option<Instant> = None;
    let started = Instant::now();
    loop {
        let result = std::fs::metadata(&data)
            .with_context(|| format!("the spooled file {} is gone", data.display()))
            .and_then(|meta| {
                anyhow::ensure!(
                    meta.len() == pending.size,
                    "the spooled file {} is {} bytes, {} were written",
                    data.display(),
                    meta.len(),
                    pending.size
                );
                shared.storage.store(&data, &pending.key)
            });
        match result {
            Ok(()) => {
                // Lets an operator (and the tests) compare what the store holds with what was
                // written, byte for byte.
                let crc32 = super::file_crc32(&data).map_or_else(|_| "?".to_owned(), |c| format!("{c:08x}"));
                tracing::info!(
                    key = %pending.key,
                    bytes = pending.size,
                    %crc32,
                    attempts = attempt + 1,
                    ms = started.elapsed().as_millis() as u64,
                    "stored"
                );
                shared.spool.forget(id);
                if let Some(mut event) = pending.ready {
                    event.created_at = crate::events::now_rfc3339();
                    shared.events.emit(&event);
                }
                return;
            }
            Err(e) => {
                let wait = backoff.next_delay().unwrap_or(shared.policy.longest_wait);
                // Retrying cannot help a refusal for good (a wrong key, a missing bucket): the
                // output fails within seconds. Not on the first answer, though: stores take a
                // few seconds to accept new keys and permissions everywhere.
                if super::is_permanent(&e) {
                    let refused_since = *refused_since.get_or_insert_with(Instant::now);
                    if refused_since.elapsed() + wait >= PERMANENT_GRACE {
                        back_up(shared, id, &pending, &format!("{e:#}"), None);
                        return;
                    }
                }
                if age(&pending) + wait >= deadline {
                    back_up(shared, id, &pending, &format!("{e:#}"), Some(deadline));
                    return;
                }
                tracing::warn!(
                    key = %pending.key,
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    error = %format!("{e:#}"),
                    "store failed; retrying"
                );
                std::thread::sleep(wait);
                attempt += 1;
            }
        }
    }
}

/// Moves a file the store would not take out of the spool into the backup folder, under its key;
/// `tried_for` is the deadline it was retried for, `None` when the store refused it for good.
fn back_up(shared: &Shared, id: u64, pending: &Pending, error: &str, tried_for: Option<Duration>) {
    let target = shared.backup_dir.join(&shared.spool.egress_id).join(&pending.key);
    let moved = target
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| move_file(&shared.spool.data_path(id), &target));
    let kept = match moved {
        Ok(()) => {
            shared.spool.forget(id);
            target.display().to_string()
        }
        // Left in the spool, where the next start of the worker tries again.
        Err(_) => shared.spool.data_path(id).display().to_string(),
    };
    tracing::error!(key = %pending.key, %error, kept = %kept, "the store did not take the file");
    let first = shared
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pending.output);
    if first {
        let folder = shared.backup_dir.join(&shared.spool.egress_id);
        let how = match tried_for {
            Some(deadline) => format!(" for {} s", deadline.as_secs()),
            None => String::new(),
        };
        let body = pending.output.failed(format!(
            "storing {} failed{how} ({error}); files that could not be stored are kept in {}",
            pending.key,
            folder.display()
        ));
        shared
            .events
            .emit(&Event::new(&shared.spool.call_cid, &shared.spool.egress_id, body));
    }
}

fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        // Another file system: copy, then remove.
        Err(_) => std::fs::copy(from, to).and_then(|_| std::fs::remove_file(from)),
    }
}

/// Finishes the uploads of jobs whose worker died: every job folder in `spool_root` that no live
/// process holds is queued again, in the order it was written, to the storage it names.
pub fn resume(
    spool_root: &Path,
    events: &dyn EventSink,
    policy: RetryPolicy,
    backup_dir: &Path,
) -> anyhow::Result<usize> {
    let mut resumed = 0;
    for spool in JobSpool::abandoned(spool_root)? {
        let pending = spool.pending();
        let open_parts = spool.open_parts();
        if pending.is_empty() && open_parts.is_empty() {
            spool.remove(false);
            continue;
        }
        let storage = match spool.open_storage() {
            Ok(storage) => storage,
            Err(e) => {
                tracing::error!(egress_id = %spool.egress_id, error = %format!("{e:#}"), "cannot resume uploads");
                continue;
            }
        };
        tracing::info!(egress_id = %spool.egress_id, files = pending.len(), open_parts = open_parts.len(), "resuming uploads left by a stopped worker");
        resumed += pending.len() + open_parts.len();
        std::thread::scope(|scope| {
            let mut uploader = Uploader::start(scope, spool, storage.as_ref(), events, policy, backup_dir);
            for (id, item) in pending {
                uploader.requeue(id, item);
            }
            for (part, open) in open_parts {
                uploader.recover_part(&part, &open);
            }
            uploader.finish(false);
        });
    }
    Ok(resumed)
}

impl Uploader<'_, '_> {
    /// Stores a recording part a dead worker was writing: the muxer kept it playable up to its
    /// last index update, and its event ends where that index does. A part with nothing
    /// playable is announced as failed instead.
    fn recover_part(&mut self, part: &Path, open: &super::OpenPart) {
        if let EventBody::RecordingReady { recording_type, .. } = &open.ready
            && recording_type == crate::events::RAW
        {
            return self.recover_raw_file(part, open);
        }
        let output = match &open.ready {
            EventBody::RecordingReady { recording_type, .. }
                if recording_type == crate::events::INDIVIDUAL =>
            {
                Output::Individual
            }
            _ => Output::Recording,
        };
        let summary = crate::media::inspect_mp4(part).and_then(|s| s.unplayable().map_or(Ok(s), Err));
        let summary = match summary {
            Ok(summary) => summary,
            Err(reason) => {
                tracing::error!(file = %part.display(), %reason, "the part a stopped worker was writing holds no playable media");
                let body = output.failed(format!(
                    "the worker stopped before the recording held playable media ({reason})"
                ));
                let spool = &self.shared.spool;
                self.shared
                    .events
                    .emit(&Event::new(&spool.call_cid, &spool.egress_id, body));
                self.spool().forget_open_part(part);
                let _ = std::fs::remove_file(part);
                return;
            }
        };
        if let Err(e) = crate::media::remove_padding(part, crate::media::PADDING_WORTH_REMOVING) {
            tracing::warn!(error = %format!("{e:#}"), "the part keeps its unused index room");
        }
        let end_time = end_of(open, summary.duration());
        tracing::info!(file = %part.display(), %end_time, "storing the recording part a stopped worker was writing");
        match self.submit_file(output, part, &open.key, Some(open.ended_at(end_time))) {
            Ok(()) => self.spool().forget_open_part(part),
            Err(e) => {
                tracing::error!(file = %part.display(), error = %format!("{e:#}"), "cannot store the part")
            }
        }
    }
}

impl Uploader<'_, '_> {
    /// Stores a raw file (or the manifest) a dead worker was writing, as it is: Matroska written
    /// live stays readable up to its last cluster. Its end time is when it was last written.
    fn recover_raw_file(&mut self, part: &Path, open: &super::OpenPart) {
        let written = std::fs::metadata(part).ok().filter(|m| m.len() > 0);
        let Some(written) = written else {
            tracing::warn!(file = %part.display(), "the raw file a stopped worker opened is empty; left out");
            self.spool().forget_open_part(part);
            let _ = std::fs::remove_file(part);
            return;
        };
        let end_time = written
            .modified()
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tracing::info!(file = %part.display(), %end_time, "storing the raw file a stopped worker was writing");
        match self.submit_file(Output::Raw, part, &open.key, Some(open.ended_at(end_time))) {
            Ok(()) => self.spool().forget_open_part(part),
            Err(e) => {
                tracing::error!(file = %part.display(), error = %format!("{e:#}"), "cannot store the raw file")
            }
        }
    }
}

/// Stores a file (or backs it up), or sends an announcement once the files before it are done.
fn carry_out(shared: &Shared, item: LaneItem) {
    match item {
        LaneItem::File(item) => deliver(shared, item),
        LaneItem::Announce(mut event) => {
            event.created_at = crate::events::now_rfc3339();
            shared.events.emit(&event);
        }
    }
}

/// The end time of a part that started at its event's start time and holds `duration`.
fn end_of(open: &super::OpenPart, duration: Duration) -> String {
    let start = match &open.ready {
        EventBody::RecordingReady { call_recording, .. } => {
            chrono::DateTime::parse_from_rfc3339(&call_recording.start_time).ok()
        }
        _ => None,
    };
    let end = match (start, chrono::Duration::from_std(duration)) {
        (Some(start), Ok(duration)) => start.with_timezone(&chrono::Utc) + duration,
        _ => chrono::Utc::now(),
    };
    end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_exponentially_up_to_the_ceiling_with_jitter() {
        let policy = RetryPolicy {
            deadline: Duration::from_secs(60),
            first_wait: Duration::from_millis(100),
            longest_wait: Duration::from_secs(2),
        };
        for _ in 0..50 {
            let mut backoff = policy.backoff().start(SystemClock);
            let waits: Vec<Duration> = (0..8).map(|_| backoff.next_delay().unwrap()).collect();
            assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
            assert!(waits[2] >= Duration::from_millis(200) && waits[2] <= Duration::from_millis(400));
            assert!(waits[7] >= Duration::from_secs(1) && waits[7] <= Duration::from_secs(2));
        }
        let spread: BTreeSet<_> = (0..20)
            .map(|_| {
                policy
                    .backoff()
                    .start(SystemClock)
                    .next_delay()
                    .unwrap()
                    .as_micros()
            })
            .collect();
        assert!(spread.len() > 10, "jitter spreads the waits: {spread:?}");
    }
}
