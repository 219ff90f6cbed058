//! `egress worker`: takes jobs from the durable queue while their estimated cost fits the
//! budget, runs each in its own session thread, and acks a job only once it has ended and its
//! files are stored. A job the worker cannot finish (SIGTERM past the grace period) is handed
//! back to the queue; a worker that dies leaves its jobs unacked, and RabbitMQ gives them to
//! another worker, which runs them again under the same `egress_id` (a new part). A job runs on
//! one worker at a time across the fleet: the one holding its [lease](super::lease).

use super::amqp::{self, AmqpDestination, SharedChannel};
use super::config::WorkerConfig;
use super::control::{ControlAnswer, ControlMessage};
use super::cost;
use super::lease;
use crate::backoff::{BackoffPolicy, SystemClock};
use crate::events::{EventSink, Journal, LaneSpec, WebhookDestination};
use crate::job::{self, ValidatedJob};
use crate::server::{SharedStatus, WorkerStatus};
use crate::session::{self, RunOptions};
use anyhow::Context;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job running on this worker.
struct RunningJob {
    stop: Arc<AtomicBool>,
    updates: session::ControlSender,
    cost: f64,
    /// The delivery to settle when the job ends (the latest, after a redelivery).
    delivery: Delivery,
    /// Set when the job is stopped for the worker's shutdown: it goes back to the queue.
    hand_back: bool,
    /// The delivery belongs to a channel lost in a reconnect: RabbitMQ has put the job back on
    /// the queue, and it is settled only if offered again (to this worker, as a duplicate).
    stale: bool,
    /// Stopped because another worker took the job over while this one was cut off.
    yielded: bool,
    /// What its events have said so far (`egress status`).
    status: Arc<Mutex<crate::events::JobStatus>>,
}

/// How long a job another worker finished is remembered, so that a second delivery of it is
/// not run again.
const FINISHED_MEMORY: Duration = Duration::from_secs(600);
/// How often a job held by another worker is looked at again.
const WATCH_PERIOD: Duration = Duration::from_secs(2);
/// A finished job's lease is kept this long after its end is announced, so that workers
/// watching it hear of the end before they could take the lease.
const RELEASE_DELAY: Duration = Duration::from_secs(2);

/// What became of a job offered by the broker.
enum Admission {
    Taken,
    /// Invalid (dead-lettered) or a duplicate of a running job.
    Refused,
    /// Runs on another worker; held unsettled here until it ends there (then acked) or its
    /// worker dies (then run here).
    Watching,
    /// Does not fit the budget now; given back to the queue.
    Full,
}

/// How a session thread reports its end.
struct Finished {
    egress_id: String,
    ok: bool,
}

pub struct Worker {
    config: WorkerConfig,
    events: Arc<dyn EventSink>,
    /// Where `events` wait for their destinations; it also knows which jobs ended here.
    journal: Arc<Journal>,
    publishing: SharedChannel,
    running: HashMap<String, RunningJob>,
    /// Deliveries of jobs that run on other workers.
    watching: HashMap<String, Delivery>,
    /// Jobs other workers (or this one) finished lately, by egress id.
    finished_elsewhere: HashMap<String, Instant>,
    /// Jobs that ended while the broker was out of reach: their end is announced on reconnecting.
    ended_while_away: Vec<String>,
    finished_tx: tokio::sync::mpsc::UnboundedSender<Finished>,
    finished_rx: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    shutdown: Arc<AtomicBool>,
    shutdown_since: Option<Instant>,
    status: SharedStatus,
}

/// A worker lives through many jobs, each with threads of its own; glibc gives threads malloc
/// arenas of their own, whose freed memory fragments and stays with the process. Measured over
/// 100 short jobs (the soak benchmark), the idle RSS grew from 622 to 873 MiB with the default
/// and stayed between 434 and 534 MiB with two arenas. `MALLOC_ARENA_MAX` still overrides it.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it is called before the
        // worker starts its threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The event journal in the spool, with RabbitMQ's events exchange and each webhook as its
/// destinations.
fn open_journal(
    config: &WorkerConfig,
    runtime: &tokio::runtime::Handle,
    publishing: &SharedChannel,
) -> anyhow::Result<Arc<Journal>> {
    let mut lanes = vec![LaneSpec {
        name: "amqp".into(),
        wants: Vec::new(),
        destination: Box::new(AmqpDestination::new(
            runtime,
            config.amqp.events_exchange.clone(),
            publishing.clone(),
        )),
    }];
    for webhook in &config.webhooks {
        let destination = WebhookDestination::new(webhook);
        lanes.push(LaneSpec {
            name: destination.lane_name(),
            wants: webhook.events.clone(),
            destination: Box::new(destination),
        });
    }
    Journal::open(
        &config.worker.journal_dir(),
        lanes,
        config.worker.journal_limit,
        config.worker.events_stdout,
    )
}

/// Runs the worker until SIGTERM/SIGINT (`shutdown`) and its jobs have ended or been handed back.
pub fn run(config: WorkerConfig, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("amqp")
        .enable_all()
        .build()
        .context("cannot start the worker's runtime")?;
    let publishing: SharedChannel = Arc::new(Mutex::new(None));
    let journal = open_journal(&config, runtime.handle(), &publishing)?;
    let (finished_tx, finished_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut worker = Worker {
        config,
        events: journal.clone(),
        journal,
        publishing,
        running: HashMap::new(),
        watching: HashMap::new(),
        finished_elsewhere: HashMap::new(),
        ended_while_away: Vec::new(),
        finished_tx,
        finished_rx,
        shutdown,
        shutdown_since: None,
        status: Arc::new(Mutex::new(WorkerStatus::default())),
    };
    worker.status().cpu_budget = worker.config.worker.cpu_budget();
    if let Some(address) = &worker.config.worker.ops_address {
        crate::server::serve(address, worker.status.clone(), worker.config.worker.spool_dir())?;
    }
    runtime.block_on(worker.serve())
}

impl Worker {
    fn status(&self) -> std::sync::MutexGuard<'_, WorkerStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes what runs now to the status the endpoints read.
    fn report(&self, taking_jobs: bool) {
        let running = self.running.len();
        let cost: f64 = self.running.values().map(|j| j.cost).sum();
        let mut status = self.status();
        status.running = running;
        status.cost_in_use = cost;
        status.taking_jobs = taking_jobs;
        status.events = self.journal.figures();
    }

    /// Gives the journal a moment to hand its events over before the connection closes; what
    /// is left stays in the journal for the next worker on this spool.
    async fn drain_events(&self) {
        let deadline = tokio::time::Instant::now() + EVENTS_DRAIN;
        while tokio::time::Instant::now() < deadline
            && self.journal.figures().iter().any(|lane| lane.pending > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn not_run(&self, reason: &'static str) {
        *self.status().not_run.entry(reason).or_default() += 1;
    }

    /// Notes the end of a job in the journal (a redelivery of it is settled, not run again).
    fn note_end(&self, egress_id: &str) {
        self.journal.note_job_ended(egress_id);
    }

    async fn serve(&mut self) -> anyhow::Result<()> {
        let resume = self.resume_uploads();
        let mut retry = RECONNECT.start(SystemClock);
        loop {
            let connected_before = self.status().connected;
            match self.serve_connection().await {
                Ok(()) => break,
                Err(e) => {
                    // A connection that was up starts the waits over.
                    if connected_before || self.status().connected {
                        retry.reset();
                    }
                    let wait = retry.next_delay().unwrap_or(RECONNECT.cap);
                    *self.publishing.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    // Their deliveries went with the channel.
                    self.watching.clear();
                    {
                        let mut status = self.status();
                        status.connected = false;
                        status.connection_error = Some(format!("{e:#}"));
                    }
                    if self.shutdown.load(Ordering::Relaxed) && self.running.is_empty() {
                        break;
                    }
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "RabbitMQ connection lost; jobs keep running");
                    self.wait_while_disconnected(wait).await;
                }
            }
        }
        if let Some(resume) = resume {
            let _ = resume.join();
        }
        self.journal.close(EVENTS_DRAIN);
        Ok(())
    }

    /// Finishes uploads a previous worker process left in the spool, beside new jobs.
    fn resume_uploads(&self) -> Option<std::thread::JoinHandle<()>> {
        let spool = self.config.worker.spool_dir();
        let backup = self.config.worker.backup_dir();
        let retry = self.config.worker.retry();
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name("resume-uploads".into())
            .spawn(
                move || match crate::storage::resume(&spool, events.as_ref(), retry, &backup) {
                    Ok(0) => {}
                    Ok(files) => tracing::info!(files, "uploads left by an earlier worker are done"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot resume earlier uploads"),
                },
            );
        // Left for the next start of a worker on this spool.
        spawned
            .inspect_err(|e| tracing::error!(error = %e, "cannot start resuming earlier uploads"))
            .ok()
    }

    /// While there is no connection, jobs still end; their deliveries are gone with the old
    /// channel (RabbitMQ has put them back on the queue), so nothing is settled.
    async fn wait_while_disconnected(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            tokio::select! {
                Some(finished) = self.finished_rx.recv() => {
                    self.status().jobs.remove(&finished.egress_id);
                    if let Some(job) = self.running.remove(&finished.egress_id)
                        && !job.hand_back
                        && !job.yielded
                    {
                        self.note_end(&finished.egress_id);
                        self.finished_elsewhere.insert(finished.egress_id.clone(), Instant::now());
                        self.ended_while_away.push(finished.egress_id);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => self.watch_shutdown(),
            }
        }
    }

    async fn serve_connection(&mut self) -> anyhow::Result<()> {
        let amqp = self.config.amqp.clone();
        let connection = Arc::new(amqp::connect(&amqp, "worker").await?);
        let setup = connection.create_channel().await?;
        amqp::declare(&setup, &amqp).await?;
        *self.publishing.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(amqp::confirming_channel(&connection).await?);

        let jobs_channel = connection.create_channel().await?;
        self.offer_one_more(&jobs_channel).await?;
        let mut jobs = Some(consume(&jobs_channel, &amqp.job_queue).await?);

        let control_channel = connection.create_channel().await?;
        let control_queue = control_channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        control_channel
            .queue_bind(
                control_queue.name().clone(),
                amqp.control_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut control = control_channel
            .basic_consume(
                control_queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for job in self.running.values_mut() {
            job.stale = true;
        }
        self.renew_leases(&connection).await?;
        for egress_id in std::mem::take(&mut self.ended_while_away) {
            self.announce_end(&egress_id, &connection).await;
        }
        {
            let mut status = self.status();
            status.connected = true;
            status.connection_error = None;
            status.connections += 1;
        }
        self.report(true);
        tracing::info!(
            queue = %amqp.job_queue,
            budget = self.config.worker.cpu_budget(),
            url = %amqp::without_password(&amqp.url),
            "worker ready"
        );

        let mut watch = tokio::time::interval(WATCH_PERIOD);
        loop {
            self.report(jobs.is_some());
            if self.shutdown.load(Ordering::Relaxed) {
                if let Some(consumer) = jobs.take() {
                    tracing::info!("shutting down: no new jobs");
                    stop_consuming(&jobs_channel, consumer).await;
                }
                if self.running.is_empty() {
                    self.drain_events().await;
                    let _ = connection.close(200, "worker shut down".into()).await;
                    return Ok(());
                }
            }
            tokio::select! {
                delivery = next(&mut jobs) => {
                    let delivery = delivery.context("the job consumer ended")??;
                    let admission = self.offer(delivery, &connection).await?;
                    self.admitted(admission, &jobs_channel, &mut jobs).await?;
                }
                message = control.next() => {
                    let message = message.context("the control consumer ended")??;
                    self.on_control(&message.data).await;
                }
                _ = watch.tick() => self.look_at_watched(&connection, &jobs_channel, &mut jobs).await?,
                Some(finished) = self.finished_rx.recv() => {
                    self.settle(finished, &connection).await;
                    self.offer_one_more(&jobs_channel).await?;
                    if jobs.is_none() && !self.shutdown.load(Ordering::Relaxed) {
                        jobs = Some(consume(&jobs_channel, &amqp.job_queue).await?);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => self.watch_shutdown(),
            }
        }
    }

    /// Looks at an offered job: refuses it (dead-letter) when invalid, drops a duplicate of a job
    /// running here, gives it back when it does not fit, or starts it.
    async fn offer(&mut self, delivery: Delivery, connection: &Connection) -> anyhow::Result<Admission> {
        let intake = self.config.worker.intake();
        let oversized = delivery.data.len() > intake.largest_job_bytes;
        // An oversized job is not even read, so it names no call to announce the refusal to.
        let text = match oversized {
            true => String::new(),
            false => String::from_utf8_lossy(&delivery.data).to_string(),
        };
        let parsed = match oversized {
            true => Err(vec![job::too_large(
                delivery.data.len(),
                intake.largest_job_bytes,
            )]),
            false => job::parse_and_validate(&text, &intake),
        };
        let validated = match parsed {
            Ok(validated) => validated,
            Err(problems) => {
                let listed = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let listed = crate::redact::redact(&listed, &session::secrets_of_refused(&text));
                tracing::error!(problems = %listed, "invalid job sent to the dead-letter queue");
                session::announce_refusal(&text, &problems, self.events.as_ref());
                self.status().refused += 1;
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .context("cannot reject an invalid job")?;
                return Ok(Admission::Refused);
            }
        };
        let mut validated = validated;
        if let Err(problem) = super::storages::resolve(
            &mut validated.job.storage,
            &self.config.storages,
            self.config.default_storage.as_deref(),
        ) {
            tracing::error!(%problem, "job names an unknown storage; sent to the dead-letter queue");
            session::announce_refusal(&text, &[problem], self.events.as_ref());
            self.status().refused += 1;
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .context("cannot reject a job")?;
            return Ok(Admission::Refused);
        }
        let egress_id = validated
            .job
            .egress_id
            .get_or_insert_with(|| stable_id(&delivery.data))
            .clone();
        if let Some(job) = self.running.get_mut(&egress_id) {
            // The broker offered a job that runs here (after a reconnect, say): not run twice;
            // its new delivery is settled when the job ends.
            tracing::warn!(%egress_id, "duplicate delivery of a running job; not run twice");
            *self
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .not_run
                .entry("running_here")
                .or_default() += 1;
            let old = std::mem::replace(&mut job.delivery, delivery);
            if !std::mem::replace(&mut job.stale, false) {
                let _ = old.ack(BasicAckOptions::default()).await;
            }
            return Ok(Admission::Refused);
        }
        self.finished_elsewhere
            .retain(|_, at| at.elapsed() < FINISHED_MEMORY);
        if self.finished_elsewhere.contains_key(&egress_id) || self.journal.job_ended(&egress_id) {
            tracing::warn!(%egress_id, "another delivery of a job already done; not run again");
            self.not_run("done");
            delivery
                .ack(BasicAckOptions::default())
                .await
                .context("cannot settle a job already done")?;
            return Ok(Admission::Refused);
        }
        let cost = cost::estimate(&validated.job, &self.config.cost);
        let in_use: f64 = self.running.values().map(|j| j.cost).sum();
        let budget = self.config.worker.cpu_budget();
        if !self.running.is_empty() && in_use + cost > budget {
            tracing::info!(%egress_id, cost, in_use, budget, "job does not fit; left to other workers");
            self.not_run("full");
            give_back(delivery).await;
            return Ok(Admission::Full);
        }
        if !lease::take(connection, &self.lease_name(&egress_id)).await? {
            tracing::warn!(%egress_id, "duplicate delivery of a job running on another worker; not run twice");
            self.not_run("running_elsewhere");
            self.watching.insert(egress_id, delivery);
            return Ok(Admission::Watching);
        }
        if delivery.redelivered {
            // Said in the first started event: the job ran before on a worker that stopped.
            validated.warnings.push(job::Problem {
                path: "job".into(),
                message: "resumed: redelivered after the worker that ran it stopped; this is a new part"
                    .into(),
            });
        }
        self.start(egress_id, validated, cost, delivery);
        Ok(Admission::Taken)
    }

    /// Acts on what became of an offered job.
    async fn admitted(
        &mut self,
        admission: Admission,
        jobs_channel: &Channel,
        jobs: &mut Option<Consumer>,
    ) -> anyhow::Result<()> {
        match admission {
            Admission::Full => {
                // Leave jobs to other workers until one of ours ends.
                if let Some(consumer) = jobs.take() {
                    stop_consuming(jobs_channel, consumer).await;
                }
            }
            Admission::Taken | Admission::Watching => self.offer_one_more(jobs_channel).await?,
            Admission::Refused => {}
        }
        Ok(())
    }

    /// A watched job whose lease is free again lost its worker (or has just ended there): it is
    /// offered here again, unless it is known to be done.
    async fn look_at_watched(
        &mut self,
        connection: &Connection,
        jobs_channel: &Channel,
        jobs: &mut Option<Consumer>,
    ) -> anyhow::Result<()> {
        for (egress_id, delivery) in std::mem::take(&mut self.watching) {
            let lease = self.lease_name(&egress_id);
            if !lease::take(connection, &lease).await? {
                self.watching.insert(egress_id, delivery);
                continue;
            }
            let admission = self.offer(delivery, connection).await?;
            if !matches!(admission, Admission::Taken) {
                lease::release(connection, &lease).await;
            }
            self.admitted(admission, jobs_channel, jobs).await?;
        }
        Ok(())
    }

    fn lease_name(&self, egress_id: &str) -> String {
        lease::name(&self.config.amqp.job_queue, egress_id)
    }

    /// After a reconnect: takes the leases of the jobs still running here again. A job whose
    /// lease another worker holds was given to it while this worker was cut off; it runs on
    /// there, and is stopped here (its part so far is stored).
    async fn renew_leases(&mut self, connection: &Connection) -> anyhow::Result<()> {
        for (egress_id, job) in &mut self.running {
            if job.yielded
                || lease::take(connection, &lease::name(&self.config.amqp.job_queue, egress_id)).await?
            {
                continue;
            }
            tracing::warn!(%egress_id, "another worker took this job over while the broker was out of reach; stopping it here");
            job.yielded = true;
            job.stop.store(true, Ordering::Relaxed);
            self.status.lock().unwrap_or_else(|p| p.into_inner()).yielded += 1;
        }
        Ok(())
    }

    /// Running jobs (and jobs watched on other workers) hold their deliveries unsettled; the
    /// broker may offer one more beyond them, so that admission looks at each job before the
    /// next is offered.
    async fn offer_one_more(&self, channel: &Channel) -> anyhow::Result<()> {
        let held = self.running.len() + self.watching.len();
        let prefetch = u16::try_from(held + 1).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions { global: true })
            .await
            .context("cannot set the prefetch")
    }

    fn start(&mut self, egress_id: String, validated: ValidatedJob, cost: f64, delivery: Delivery) {
        let stop = Arc::new(AtomicBool::new(false));
        let (updates, inbox) = session::inbox();
        let worker = &self.config.worker;
        let options = RunOptions {
            out_dir: worker.out_dir.clone(),
            spool_dir: worker.spool_dir(),
            backup_dir: worker.backup_dir(),
            media_dir: worker.media_dir.clone(),
            launched: Instant::now(),
            dot_file: worker
                .graph_dir
                .as_ref()
                .map(|dir| dir.join(format!("{egress_id}.dot"))),
            decode_every_frame: false,
            retry: worker.retry(),
            updates: Some(Mutex::new(inbox)),
            whisper_model: worker
                .whisper_model
                .clone()
                .unwrap_or_else(crate::transcribe::default_model_path),
        };
        tracing::info!(%egress_id, cost, redelivered = delivery.redelivered, "job taken");
        self.status().taken += 1;
        let stream_urls = validated
            .job
            .rtmp
            .iter()
            .map(|push| (push.name.clone(), crate::redact::url_userinfo(&push.stream_url)))
            .collect();
        let status = Arc::new(Mutex::new(crate::events::JobStatus::new(&egress_id, stream_urls)));
        self.status().jobs.insert(egress_id.clone(), status.clone());
        let events: Arc<dyn EventSink> = Arc::new(crate::events::StatusSink::new(
            self.events.clone(),
            status.clone(),
        ));
        let done = self.finished_tx.clone();
        let job_stop = stop.clone();
        let id = egress_id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("job-{egress_id}"))
            .spawn(move || {
                let sink: &dyn EventSink = events.as_ref();
                let result = session::run(&validated, &options, sink, job_stop);
                tracing::info!(egress_id = %id, ok = result.is_ok(), "job ended");
                let _ = done.send(Finished {
                    egress_id: id,
                    ok: result.is_ok(),
                });
            });
        // A worker the system refuses a thread lives on: the job goes back to the queue, for a
        // worker that can run it.
        let hand_back = match spawned {
            Ok(_) => false,
            Err(e) => {
                tracing::error!(%egress_id, error = %e, "cannot start a thread for the job; it goes back to the queue");
                let _ = self.finished_tx.send(Finished {
                    egress_id: egress_id.clone(),
                    ok: false,
                });
                true
            }
        };
        self.running.insert(
            egress_id,
            RunningJob {
                stop,
                updates,
                cost,
                delivery,
                hand_back,
                stale: false,
                yielded: false,
                status,
            },
        );
    }

    /// Acks a job that ended (it is done, failed or not: a failure has been announced), or hands
    /// it back to the queue when the worker's shutdown stopped it.
    async fn settle(&mut self, finished: Finished, connection: &Arc<Connection>) {
        self.status().jobs.remove(&finished.egress_id);
        let Some(job) = self.running.remove(&finished.egress_id) else {
            return;
        };
        if job.yielded {
            return;
        }
        if !job.hand_back {
            self.note_end(&finished.egress_id);
            self.announce_end(&finished.egress_id, connection).await;
        }
        {
            let mut status = self.status();
            match (job.hand_back, finished.ok) {
                (true, _) => status.handed_back += 1,
                (false, true) => status.succeeded += 1,
                (false, false) => status.failed += 1,
            }
        }
        if job.stale {
            return;
        }
        let settled = if job.hand_back {
            tracing::info!(egress_id = %finished.egress_id, "job handed back to the queue");
            // Free for the worker that takes it next.
            lease::release(connection, &self.lease_name(&finished.egress_id)).await;
            job.delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        } else {
            job.delivery.ack(BasicAckOptions::default()).await
        };
        if let Err(e) = settled {
            tracing::warn!(egress_id = %finished.egress_id, error = %e, "cannot settle the job's delivery");
        }
    }

    /// Tells the fleet the job is done (workers holding another delivery of it ack theirs), then
    /// gives its lease up.
    async fn announce_end(&self, egress_id: &str, connection: &Arc<Connection>) {
        let message = ControlMessage::Finished {
            egress_id: egress_id.to_owned(),
        };
        let channel = self.publishing.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(channel) = channel {
            let body = serde_json::to_vec(&message).unwrap_or_default();
            if let Err(e) = amqp::publish(&channel, &self.config.amqp.control_exchange, "", &body).await {
                tracing::warn!(%egress_id, error = %format!("{e:#}"), "cannot announce the end of the job");
            }
        }
        let (connection, lease) = (connection.clone(), self.lease_name(egress_id));
        tokio::spawn(async move {
            tokio::time::sleep(RELEASE_DELAY).await;
            lease::release(&connection, &lease).await;
        });
    }

    async fn on_control(&mut self, data: &[u8]) {
        match serde_json::from_slice::<ControlMessage>(data) {
            Ok(ControlMessage::Finished { egress_id }) => {
                if let Some(delivery) = self.watching.remove(&egress_id) {
                    tracing::info!(%egress_id, "the job another worker ran is done; its second delivery is settled");
                    self.status().held_settled += 1;
                    if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                        tracing::warn!(%egress_id, error = %e, "cannot settle a job done elsewhere");
                    }
                }
                self.finished_elsewhere.insert(egress_id, Instant::now());
            }
            Ok(ControlMessage::Stop {
                egress_id,
                output: None,
                reply_to,
            }) => {
                if let Some(job) = self.running.get(&egress_id) {
                    tracing::info!(%egress_id, "stop requested");
                    job.stop.store(true, Ordering::Relaxed);
                    let answer = ControlAnswer {
                        egress_id: egress_id.clone(),
                        ok: true,
                        message: "stopping: every output is finalized, stored and announced".into(),
                    };
                    self.answer(reply_to, answer).await;
                }
            }
            Ok(ControlMessage::Stop {
                egress_id,
                output: Some(output),
                reply_to,
            }) => self.forward(egress_id, session::JobControl::Stop(output), reply_to),
            Ok(ControlMessage::Update {
                egress_id,
                update,
                reply_to,
            }) => self.forward(egress_id, session::JobControl::Update(update), reply_to),
            Ok(ControlMessage::Pause {
                egress_id,
                output,
                reply_to,
            }) => self.forward(egress_id, session::JobControl::Pause(output), reply_to),
            Ok(ControlMessage::Resume {
                egress_id,
                output,
                reply_to,
            }) => self.forward(egress_id, session::JobControl::Resume(output), reply_to),
            Ok(ControlMessage::Start {
                egress_id,
                output,
                section,
                reply_to,
            }) => {
                // The status shows where a push started now sends, as for the job's own.
                if let (Some(job), Some(name), Some(url)) = (
                    self.running.get(&egress_id),
                    section.get("name").and_then(|n| n.as_str()),
                    section.get("stream_url").and_then(|u| u.as_str()),
                ) {
                    let mut status = job.status.lock().unwrap_or_else(|p| p.into_inner());
                    status
                        .stream_urls
                        .insert(name.to_owned(), crate::redact::url_userinfo(url));
                }
                self.forward(
                    egress_id,
                    session::JobControl::Start { output, section },
                    reply_to,
                )
            }
            Ok(ControlMessage::Status { egress_id, reply_to }) => {
                let Some(job) = self.running.get(&egress_id) else {
                    return;
                };
                let status = job.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let body = serde_json::to_vec(&status).unwrap_or_default();
                let channel = self.publishing.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(channel) = channel
                    && let Err(e) = amqp::publish(&channel, "", &reply_to, &body).await
                {
                    tracing::warn!(%egress_id, error = %format!("{e:#}"), "cannot answer a status request");
                }
            }
            Err(e) => tracing::warn!(error = %e, "control message not understood"),
        }
    }

    /// Hands a control message to the job it names, when it runs here; the job's answer goes
    /// back to `reply_to` (workers that do not run the job stay silent).
    fn forward(&self, egress_id: String, control: session::JobControl, reply_to: Option<String>) {
        let Some(job) = self.running.get(&egress_id) else {
            return;
        };
        tracing::info!(%egress_id, ?control, "control message for a running job");
        let Some(reply_to) = reply_to else {
            let _ = job.updates.send(session::ControlRequest::unanswered(control));
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<String, String>>();
        let request = session::ControlRequest {
            control,
            reply: Some(Box::new(move |answer| {
                let _ = tx.send(answer);
            })),
        };
        if job.updates.send(request).is_err() {
            return;
        }
        let channel = self.publishing.lock().unwrap_or_else(|p| p.into_inner()).clone();
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(CONTROL_ANSWER_WAIT, rx).await {
                Ok(Ok(Ok(done))) => ControlAnswer {
                    egress_id: egress_id.clone(),
                    ok: true,
                    message: done,
                },
                Ok(Ok(Err(refused))) => ControlAnswer {
                    egress_id: egress_id.clone(),
                    ok: false,
                    message: refused,
                },
                // The job ended before it got to the message.
                _ => ControlAnswer {
                    egress_id: egress_id.clone(),
                    ok: false,
                    message: format!("{egress_id} ended before it could act on the message"),
                },
            };
            if let Some(channel) = channel {
                publish_answer(&channel, &reply_to, &answer).await;
            }
        });
    }

    async fn answer(&self, reply_to: Option<String>, answer: ControlAnswer) {
        let channel = self.publishing.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Some(reply_to), Some(channel)) = (reply_to, channel) {
            publish_answer(&channel, &reply_to, &answer).await;
        }
    }

    /// After SIGTERM, running jobs get the grace period to end; then they are stopped (their
    /// files finalize and upload) and handed back to the queue.
    fn watch_shutdown(&mut self) {
        if !self.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let since = *self.shutdown_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= Duration::from_secs(self.config.worker.shutdown_grace_s) {
            for (egress_id, job) in &mut self.running {
                if !job.hand_back {
                    tracing::info!(%egress_id, "grace period over; stopping the job to hand it back");
                    job.hand_back = true;
                    job.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Waits between attempts to reach RabbitMQ.
const RECONNECT: BackoffPolicy = BackoffPolicy::new(Duration::from_millis(500), Duration::from_secs(10));

/// How long a stopping worker waits for its events to reach their destinations.
const EVENTS_DRAIN: Duration = Duration::from_secs(5);

/// How long a job may take to act on a control message before the sender hears it did not.
const CONTROL_ANSWER_WAIT: Duration = Duration::from_millis(1500);

async fn publish_answer(channel: &Channel, reply_to: &str, answer: &ControlAnswer) {
    let body = serde_json::to_vec(answer).unwrap_or_default();
    if let Err(e) = amqp::publish(channel, "", reply_to, &body).await {
        tracing::warn!(egress_id = %answer.egress_id, error = %format!("{e:#}"), "cannot answer a control message");
    }
}

/// Puts an offered job back on the queue for another worker.
async fn give_back(delivery: Delivery) {
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(e) = delivery.nack(requeue).await {
        tracing::warn!(error = %e, "cannot give a job back");
    }
}

/// Cancels the job consumer and gives back what the broker had already sent it: a delivery
/// left in a dropped consumer would stay unsettled on this worker until it disconnects.
async fn stop_consuming(channel: &Channel, mut consumer: Consumer) {
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    while let Ok(Some(Ok(delivery))) = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await
    {
        give_back(delivery).await;
    }
}

async fn consume(channel: &Channel, queue: &str) -> anyhow::Result<Consumer> {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("cannot consume from {queue}"))
}

/// The next job offered, or never while the worker is not taking jobs.
async fn next(jobs: &mut Option<Consumer>) -> Option<lapin::Result<Delivery>> {
    match jobs {
        Some(consumer) => consumer.next().await,
        None => std::future::pending().await,
    }
}

/// An egress id for a job that has none, the same for every delivery of the same message.
fn stable_id(body: &[u8]) -> String {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("eg_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::stable_id;

    #[test]
    fn ids_of_jobs_without_one_are_stable_and_distinct() {
        assert_eq!(stable_id(b"{\"a\":1}"), stable_id(b"{\"a\":1}"));
        assert_ne!(stable_id(b"{\"a\":1}"), stable_id(b"{\"a\":2}"));
        assert!(stable_id(b"x").starts_with("eg_"));
    }
}
