//! The worker's event journal: every event is written to the spool before it is sent, once per
//! destination (RabbitMQ, each webhook), and taken off only when that destination confirmed it
//! (a publisher confirm, a 2xx) or refused it for good. A worker that dies leaves its journal
//! behind; the next one on the same spool sends what it holds. Memory holds no event for longer
//! than a write, whatever the outage (a journal that cannot be written keeps a small bounded
//! reserve in memory instead), and the disk holds at most `limit` events per destination.
//!
//! The journal also remembers which jobs ended here, so that a job the broker offers again
//! after this worker (or its predecessor on the spool) finished it is settled, not run twice.

use super::{Event, EventSink, JsonLinesSink};
use crate::backoff::{BackoffPolicy, SystemClock};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// Events kept in memory per destination while the journal cannot be written.
const MEMORY_RESERVE: usize = 256;
/// How long a job's end is remembered for its redeliveries.
const DONE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Spacing of the retries of an event its destination could not take yet.
const RETRY: BackoffPolicy = BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(10));

/// What a destination made of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Confirmed,
    /// Refused for good (a 4xx): retrying cannot help; the event leaves the journal.
    Refused(String),
    /// Not taken now (no connection, 5xx, timeout): tried again later.
    Later(String),
}

/// A destination of events; `attempt` counts from 1 across every try of the event and is
/// advanced by the destination for each request it makes.
pub trait Destination: Send {
    fn send(&mut self, event: &Event, body: &[u8], attempt: &mut u32) -> Sent;
}

/// Where one destination's events wait.
struct Lane {
    name: String,
    dir: PathBuf,
    /// Event types it takes; empty: all.
    wants: Vec<String>,
    pending: AtomicUsize,
    dropped: AtomicU64,
    /// Events that could not be written, in order; sent before newer files.
    reserve: Mutex<VecDeque<(u64, Vec<u8>)>>,
    wake: (Mutex<bool>, Condvar),
}

/// Figures of one destination for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneFigures {
    pub name: String,
    pub pending: usize,
    pub dropped: u64,
}

pub struct Journal {
    root: PathBuf,
    lanes: Vec<Arc<Lane>>,
    next_seq: AtomicU64,
    limit: usize,
    stdout: Option<JsonLinesSink<std::io::Stdout>>,
    stopping: Arc<AtomicBool>,
    /// Held while this process lives: a journal whose lock is free belongs to a worker that is
    /// gone, and the next one to open takes it over.
    _lock: std::fs::File,
}

impl Lane {
    fn wants(&self, kind: &str) -> bool {
        self.wants.is_empty() || self.wants.iter().any(|w| w == kind)
    }

    fn notify(&self) {
        let (flag, condvar) = &self.wake;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        condvar.notify_one();
    }

    fn wait(&self, at_most: Duration) {
        let (flag, condvar) = &self.wake;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, at_most, |woken| !*woken)
            .unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }

    /// The events waiting, oldest first: files and the memory reserve, by sequence.
    fn waiting(&self) -> Vec<(u64, Waiting)> {
        let mut all: Vec<(u64, Waiting)> = event_files(&self.dir)
            .into_iter()
            .map(|(seq, path)| (seq, Waiting::File(path)))
            .collect();
        let reserve = self.reserve.lock().unwrap_or_else(|p| p.into_inner());
        all.extend(reserve.iter().map(|(seq, _)| (*seq, Waiting::Memory)));
        all.sort_by_key(|(seq, _)| *seq);
        all
    }

    fn body_of(&self, seq: u64, waiting: &Waiting) -> Option<Vec<u8>> {
        match waiting {
            Waiting::File(path) => std::fs::read(path).ok(),
            Waiting::Memory => self
                .reserve
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, body)| body.clone()),
        }
    }

    fn take_off(&self, seq: u64, waiting: &Waiting) {
        match waiting {
            Waiting::File(path) => {
                if std::fs::remove_file(path).is_ok() {
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Waiting::Memory => {
                let mut reserve = self.reserve.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(at) = reserve.iter().position(|(s, _)| *s == seq) {
                    reserve.remove(at);
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.load(Ordering::Relaxed) == 0
    }
}

enum Waiting {
    File(PathBuf),
    Memory,
}

/// The `{seq}.json` files of a folder, by sequence.
fn event_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let seq = path
                .file_name()?
                .to_str()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()?;
            Some((seq, path))
        })
        .collect();
    files.sort_by_key(|(seq, _)| *seq);
    files
}

/// A file name for any egress id: itself when it is plain, else its hex.
fn done_file_name(egress_id: &str) -> String {
    let plain = !egress_id.is_empty()
        && egress_id.len() <= 128
        && egress_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !egress_id.starts_with('.');
    match plain {
        true => egress_id.to_owned(),
        false => format!("x{}", hex::encode(egress_id.as_bytes())),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("event");
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    let written = file.write_all(bytes).and_then(|_| file.sync_data());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path)
}

/// A destination to open a lane for.
pub struct LaneSpec {
    /// Stable across restarts: names the lane's folder.
    pub name: String,
    pub wants: Vec<String>,
    pub destination: Box<dyn Destination>,
}

impl Journal {
    /// Opens this process's journal under `root` (beside those of other workers on the same
    /// spool), takes over the journals of workers that are gone, and starts one sending thread
    /// per destination; events left by an earlier process are sent first.
    pub fn open(
        root: &Path,
        lanes: Vec<LaneSpec>,
        limit: usize,
        stdout: bool,
    ) -> anyhow::Result<Arc<Journal>> {
        let cannot = |what: &Path, e: std::io::Error| {
            anyhow::anyhow!("cannot make the event journal folder {}: {e}", what.display())
        };
        let instance = root.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&instance).map_err(|e| cannot(&instance, e))?;
        let lock = std::fs::File::create(instance.join("lock")).map_err(|e| cannot(&instance, e))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("cannot lock the event journal {}: {e}", instance.display()))?;
        let abandoned = abandoned_journals(root, &instance);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut opened = Vec::new();
        let mut highest = 0u64;
        for spec in lanes {
            let dir = instance.join(&spec.name);
            std::fs::create_dir_all(&dir).map_err(|e| cannot(&dir, e))?;
            let adopted = adopt(&abandoned, &spec.name, &dir);
            highest = highest.max(adopted as u64);
            if adopted > 0 {
                tracing::info!(destination = %spec.name, events = adopted, "events left in the journal by an earlier worker are sent first");
            }
            let lane = Arc::new(Lane {
                name: spec.name.clone(),
                dir,
                wants: spec.wants,
                pending: AtomicUsize::new(adopted),
                dropped: AtomicU64::new(0),
                reserve: Mutex::new(VecDeque::new()),
                wake: (Mutex::new(false), Condvar::new()),
            });
            let (sender, stop) = (lane.clone(), stopping.clone());
            let mut destination = spec.destination;
            std::thread::Builder::new()
                .name(format!("events-{}", spec.name))
                .spawn(move || send_all(&sender, destination.as_mut(), &stop))
                .map_err(|e| {
                    anyhow::anyhow!("cannot start the thread sending events to {}: {e}", spec.name)
                })?;
            opened.push(lane);
        }
        for (_, dir) in &abandoned {
            let left: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir() && !event_files(&e.path()).is_empty())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            match left.is_empty() {
                true => {
                    let _ = std::fs::remove_dir_all(dir);
                }
                false => {
                    tracing::warn!(journal = %dir.display(), destinations = ?left, "an earlier worker's journal holds events for destinations this worker is not configured with; left in place")
                }
            }
        }
        let done = root.join("done");
        std::fs::create_dir_all(&done).map_err(|e| cannot(&done, e))?;
        forget_old_ends(&done);
        Ok(Arc::new(Journal {
            root: root.to_owned(),
            lanes: opened,
            next_seq: AtomicU64::new(highest + 1),
            limit: limit.max(1),
            stdout: stdout.then(|| JsonLinesSink::new(std::io::stdout())),
            stopping,
            _lock: lock,
        }))
    }

    /// Pending and dropped events per destination.
    pub fn figures(&self) -> Vec<LaneFigures> {
        self.lanes
            .iter()
            .map(|lane| LaneFigures {
                name: lane.name.clone(),
                pending: lane.pending.load(Ordering::Relaxed),
                dropped: lane.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Notes that a job ended here (done or failed, its end announced in the journal).
    pub fn note_job_ended(&self, egress_id: &str) {
        let path = self.root.join("done").join(done_file_name(egress_id));
        if let Err(e) = write_durably(&path, egress_id.as_bytes()) {
            tracing::warn!(%egress_id, error = %e, "cannot note the end of the job in the journal; a redelivery of it would run again");
        }
    }

    /// Whether a job ended here within the last day.
    pub fn job_ended(&self, egress_id: &str) -> bool {
        let path = self.root.join("done").join(done_file_name(egress_id));
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|at| SystemTime::now().duration_since(at).unwrap_or_default() < DONE_MEMORY)
    }

    /// Waits up to `at_most` for every destination to take what it holds, then lets the
    /// sending threads end; what is left stays in the journal for the next worker.
    pub fn close(&self, at_most: Duration) {
        let deadline = std::time::Instant::now() + at_most;
        while std::time::Instant::now() < deadline && !self.lanes.iter().all(|l| l.is_empty()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stopping.store(true, Ordering::Relaxed);
        for lane in &self.lanes {
            lane.notify();
        }
    }

    fn append(&self, lane: &Lane, seq: u64, body: &[u8], kind: &str) {
        if lane.pending.load(Ordering::Relaxed) >= self.limit {
            let dropped = lane.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(destination = %lane.name, limit = self.limit, dropped, event = %kind, "event journal full: events for this destination are dropped until it takes some");
            }
            return;
        }
        let path = lane.dir.join(format!("{seq:020}.json"));
        if let Err(e) = write_durably(&path, body) {
            let mut reserve = lane.reserve.lock().unwrap_or_else(|p| p.into_inner());
            if reserve.len() >= MEMORY_RESERVE {
                lane.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(destination = %lane.name, error = %e, event = %kind, "event journal cannot be written and its reserve is full: event dropped");
                return;
            }
            tracing::warn!(destination = %lane.name, error = %e, event = %kind, "event journal cannot be written: the event waits in memory");
            reserve.push_back((seq, body.to_vec()));
        }
        lane.pending.fetch_add(1, Ordering::Relaxed);
        lane.notify();
    }
}

impl EventSink for Journal {
    fn emit(&self, event: &Event) {
        if let Some(stdout) = &self.stdout {
            stdout.emit(event);
        }
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "event could not be serialized");
                return;
            }
        };
        let kind = event.type_name();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        for lane in self.lanes.iter().filter(|lane| lane.wants(&kind)) {
            self.append(lane, seq, &body, &kind);
        }
    }
}

/// The journals under `root` whose worker is gone (their lock is free, and now held here), the
/// oldest first.
fn abandoned_journals(root: &Path, own: &Path) -> Vec<(std::fs::File, PathBuf)> {
    let mut found: Vec<(SystemTime, std::fs::File, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|dir| dir != own && dir.join("lock").is_file())
        .filter_map(|dir| {
            let lock = std::fs::File::open(dir.join("lock")).ok()?;
            lock.try_lock().ok()?;
            let made = lock
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some((made, lock, dir))
        })
        .collect();
    found.sort_by_key(|(made, _, _)| *made);
    found.into_iter().map(|(_, lock, dir)| (lock, dir)).collect()
}

/// Moves the events of destination `name` out of the abandoned journals into `dir`, numbered
/// 1, 2, ... in their order; returns how many.
fn adopt(abandoned: &[(std::fs::File, PathBuf)], name: &str, dir: &Path) -> usize {
    let mut seq = 0usize;
    for (_, journal) in abandoned {
        for (_, file) in event_files(&journal.join(name)) {
            seq += 1;
            let target = dir.join(format!("{seq:020}.json"));
            if std::fs::rename(&file, &target).is_err() {
                seq -= 1;
                tracing::warn!(file = %file.display(), "cannot take over an event of an earlier worker's journal");
            }
        }
    }
    seq
}

fn forget_old_ends(done: &Path) {
    for entry in std::fs::read_dir(done).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| SystemTime::now().duration_since(at).unwrap_or_default() >= DONE_MEMORY);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A lane's sending thread: oldest event first, each until its destination confirms or refuses
/// it; an event not taken is tried again with a growing delay and holds back the newer ones, so
/// that a destination sees events in order.
fn send_all(lane: &Lane, destination: &mut dyn Destination, stopping: &AtomicBool) {
    while !stopping.load(Ordering::Relaxed) {
        let waiting = lane.waiting();
        if waiting.is_empty() {
            lane.wait(Duration::from_secs(1));
            continue;
        }
        for (seq, entry) in waiting {
            let Some(body) = lane.body_of(seq, &entry) else {
                continue;
            };
            let event: Event = match serde_json::from_slice(&body) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(destination = %lane.name, seq, error = %e, "unreadable event in the journal; removed");
                    lane.take_off(seq, &entry);
                    continue;
                }
            };
            if !send_one(lane, destination, &event, &body, stopping) {
                return;
            }
            lane.take_off(seq, &entry);
        }
    }
}

/// True once the event is confirmed or refused; false when the worker stops first.
fn send_one(
    lane: &Lane,
    destination: &mut dyn Destination,
    event: &Event,
    body: &[u8],
    stopping: &AtomicBool,
) -> bool {
    let mut attempt = 1u32;
    let mut backoff = RETRY.start(SystemClock);
    let mut warned = false;
    loop {
        // A destination that panics loses the attempt, not the lane.
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            destination.send(event, body, &mut attempt)
        }))
        .unwrap_or_else(|_| Sent::Later("the destination failed unexpectedly".into()));
        match sent {
            Sent::Confirmed => return true,
            Sent::Refused(reason) => {
                tracing::warn!(destination = %lane.name, event = %event.type_name(), event_id = %event.event_id, %reason, "event refused by its destination; not sent again");
                return true;
            }
            Sent::Later(reason) => {
                if !warned {
                    tracing::warn!(destination = %lane.name, event = %event.type_name(), %reason, "event not taken yet; it waits in the journal");
                    warned = true;
                }
            }
        }
        if stopping.load(Ordering::Relaxed) {
            return false;
        }
        let delay = backoff.next_delay().unwrap_or(RETRY.cap);
        lane.wait(delay);
        if stopping.load(Ordering::Relaxed) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBody;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn event(n: usize) -> Event {
        Event::new(
            "default:c",
            &format!("eg_{n}"),
            EventBody::RecordingStarted {
                recording_type: "composite".into(),
                warnings: vec![],
            },
        )
    }

    /// Takes events only while `open` is set; records what it took.
    struct Gate {
        open: Arc<AtomicBool>,
        taken: Arc<Mutex<Vec<String>>>,
    }

    impl Destination for Gate {
        fn send(&mut self, event: &Event, _body: &[u8], attempt: &mut u32) -> Sent {
            *attempt += 1;
            match self.open.load(Ordering::Relaxed) {
                true => {
                    self.taken.lock().unwrap().push(event.egress_id.clone());
                    Sent::Confirmed
                }
                false => Sent::Later("closed".into()),
            }
        }
    }

    fn gate(open: bool) -> (LaneSpec, Arc<AtomicBool>, Arc<Mutex<Vec<String>>>) {
        let open = Arc::new(AtomicBool::new(open));
        let taken = Arc::new(Mutex::new(Vec::new()));
        let spec = LaneSpec {
            name: "gate".into(),
            wants: vec![],
            destination: Box::new(Gate {
                open: open.clone(),
                taken: taken.clone(),
            }),
        };
        (spec, open, taken)
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn events_held_while_the_destination_is_away_are_sent_in_order_by_the_next_process() {
        let root = scratch("restart");
        let (spec, _, _) = gate(false);
        let first = Journal::open(&root, vec![spec], 100, false).unwrap();
        for n in 0..5 {
            first.emit(&event(n));
        }
        assert_eq!(first.figures()[0].pending, 5);
        first.close(Duration::ZERO);
        drop(first);
        // The next worker on the same spool, with the destination back.
        let (spec, _, taken) = gate(true);
        let second = Journal::open(&root, vec![spec], 100, false).unwrap();
        second.emit(&event(5));
        wait_for("every event sent", || taken.lock().unwrap().len() == 6);
        let order: Vec<String> = taken.lock().unwrap().clone();
        assert_eq!(order, (0..6).map(|n| format!("eg_{n}")).collect::<Vec<_>>());
        wait_for("the journal emptied", || second.figures()[0].pending == 0);
        assert!(event_files(&second.lanes[0].dir).is_empty());
        let journals = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("lock").is_file());
        assert_eq!(
            journals.count(),
            1,
            "the earlier worker's journal is taken over and removed"
        );
    }

    #[test]
    fn a_full_journal_drops_and_counts_instead_of_growing() {
        let root = scratch("full");
        let (spec, open, taken) = gate(false);
        let journal = Journal::open(&root, vec![spec], 3, false).unwrap();
        for n in 0..10 {
            journal.emit(&event(n));
        }
        let figures = &journal.figures()[0];
        assert_eq!((figures.pending, figures.dropped), (3, 7));
        open.store(true, Ordering::Relaxed);
        wait_for("the kept events sent", || taken.lock().unwrap().len() == 3);
        journal.close(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_journal_that_cannot_be_written_keeps_events_in_a_bounded_reserve() {
        let root = scratch("unwritable");
        let (spec, open, taken) = gate(false);
        let journal = Journal::open(&root, vec![spec], 10_000, false).unwrap();
        // The lane's folder turns into a file: writes fail as on a full disk.
        let dir = journal.lanes[0].dir.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"").unwrap();
        for n in 0..(MEMORY_RESERVE + 10) {
            journal.emit(&event(n));
        }
        let figures = &journal.figures()[0];
        assert_eq!((figures.pending, figures.dropped), (MEMORY_RESERVE, 10));
        open.store(true, Ordering::Relaxed);
        wait_for("the reserve sent", || {
            taken.lock().unwrap().len() == MEMORY_RESERVE
        });
        assert_eq!(taken.lock().unwrap()[0], "eg_0", "oldest first");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn jobs_that_ended_are_remembered_across_processes() {
        let root = scratch("done");
        let journal = Journal::open(&root, vec![], 10, false).unwrap();
        journal.note_job_ended("eg_one");
        journal.note_job_ended("odd/id with spaces");
        drop(journal);
        let again = Journal::open(&root, vec![], 10, false).unwrap();
        assert!(again.job_ended("eg_one") && again.job_ended("odd/id with spaces"));
        assert!(!again.job_ended("eg_two"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
