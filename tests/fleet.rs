//! The fleet against the real RabbitMQ on 127.0.0.1:5672: workers (`egress worker`) take jobs
//! from a durable queue, jobs are done exactly once, a killed worker's job is done by another,
//! invalid jobs land in the dead-letter queue with a failed event, and `egress stop` reaches the
//! right job. Each test has its own queue and exchange names.

#[allow(dead_code)]
#[path = "janus/bed.rs"]
mod bed;
mod common;
#[allow(dead_code)]
#[path = "janus/publisher.rs"]
mod publisher;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The broker restart test takes this for writing; every other test for reading, so that none
/// sees the broker go away under it.
static BROKER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Queue and exchange names of one test, and the environment that points a process at them.
struct Fleet {
    broker: Option<BrokerUse>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    /// Every event published to the events exchange, in arrival order.
    events: Arc<Mutex<Vec<Value>>>,
}

impl Fleet {
    fn new(test: &str) -> Fleet {
        Fleet::using(
            test,
            BrokerUse::Shared(BROKER.read().unwrap_or_else(|p| p.into_inner())),
        )
    }

    fn using(test: &str, broker: BrokerUse) -> Fleet {
        let prefix = format!("test.{test}.{}", std::process::id());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let connection = runtime
            .block_on(Connection::connect(AMQP_URL, ConnectionProperties::default()))
            .expect("RabbitMQ listens on 127.0.0.1:5672 (scripts/test-deps.sh starts it)");
        let fleet = Fleet {
            broker: Some(broker),
            prefix,
            runtime,
            connection,
            events: Arc::new(Mutex::new(Vec::new())),
        };
        fleet.listen_to_events();
        fleet
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("EGRESS_AMQP_URL", AMQP_URL.to_owned()),
            ("EGRESS_JOB_QUEUE", format!("{}.jobs", self.prefix)),
            ("EGRESS_DEAD_LETTER_QUEUE", format!("{}.dead", self.prefix)),
            ("EGRESS_EVENTS_EXCHANGE", format!("{}.events", self.prefix)),
            ("EGRESS_CONTROL_EXCHANGE", format!("{}.control", self.prefix)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Binds a queue of the test's own to the events exchange (all routing keys).
    fn listen_to_events(&self) {
        let exchange = format!("{}.events", self.prefix);
        let events = self.events.clone();
        let channel = self.runtime.block_on(self.connection.create_channel()).unwrap();
        self.runtime.block_on(async {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    lapin::ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let queue = channel
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.as_str().into(),
                    "call.#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let mut consumer = channel
                .basic_consume(
                    queue.name().clone(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let mut event: Value = serde_json::from_slice(&delivery.data).unwrap();
                    // The routing key must be the event type.
                    event["routing_key"] = json!(delivery.routing_key.as_str());
                    // The message id must be the event's id.
                    let message_id = delivery.properties.message_id().as_ref().map(|id| id.to_string());
                    event["message_id"] = json!(message_id);
                    events.lock().unwrap().push(event);
                }
            });
        });
    }

    fn worker(&self, scratch: &Scratch, name: &str, budget: f64) -> WorkerProcess {
        self.worker_with(scratch, name, budget, &[])
    }

    fn worker_with(
        &self,
        scratch: &Scratch,
        name: &str,
        budget: f64,
        env: &[(&str, String)],
    ) -> WorkerProcess {
        let worker = self.start_worker(scratch, name, budget, env);
        worker.wait_ready(Duration::from_secs(20));
        worker
    }

    /// Starts a worker without waiting for it to be ready.
    fn start_worker(
        &self,
        scratch: &Scratch,
        name: &str,
        budget: f64,
        env: &[(&str, String)],
    ) -> WorkerProcess {
        let log = scratch.dir.join(format!("{name}.log"));
        let mut command = egress();
        command
            .arg("worker")
            .envs(self.env())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("EGRESS_CPU_BUDGET", budget.to_string())
            .env("EGRESS_OUT_DIR", scratch.out())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        WorkerProcess::spawn(command, log)
    }

    fn submit(&self, scratch: &Scratch, job: &Value) -> String {
        let path = scratch.dir.join(format!("job-{}.json", uuid_like()));
        std::fs::write(&path, job.to_string()).unwrap();
        let out = egress()
            .arg("submit")
            .arg(&path)
            .envs(self.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn publish_raw(&self, body: &[u8]) {
        let queue = format!("{}.jobs", self.prefix);
        self.runtime.block_on(async {
            let channel = self.connection.create_channel().await.unwrap();
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .unwrap();
        });
    }

    /// Jobs still on the test's job queue (not acked).
    fn jobs_waiting(&self) -> u32 {
        self.message_count(&format!("{}.jobs", self.prefix))
    }

    fn message_count(&self, queue: &str) -> u32 {
        self.runtime.block_on(async {
            let channel = self.connection.create_channel().await.unwrap();
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap()
                .message_count()
        })
    }

    /// Waits until no job is left on the test's queue: every one acked.
    fn wait_acked(&self, what: &str) {
        poll(what, Duration::from_secs(20), || match self.jobs_waiting() {
            0 => Ok(()),
            n => Err(format!("{n} jobs not acked")),
        });
    }

    /// Hands the hold on the broker to a new `Fleet` (after the broker restarted).
    fn take_broker(&mut self) -> BrokerUse {
        self.broker.take().unwrap()
    }

    /// The events seen so far, each checked against the published schema (`egress schema --events`).
    fn events(&self) -> Vec<Value> {
        let events = self.events.lock().unwrap().clone();
        let as_sent: Vec<Value> = events
            .iter()
            .cloned()
            .map(|mut event| {
                event.as_object_mut().map(|e| {
                    e.remove("routing_key");
                    e.remove("message_id")
                });
                event
            })
            .collect();
        assert_events_follow_the_schema(&as_sent);
        events
    }

    /// Waits until `pred` holds for the events seen so far.
    fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        poll(what, timeout, || {
            let events = self.events();
            match pred(&events) {
                true => Ok(events),
                false => Err(format!("events: {events:#?}")),
            }
        })
    }

    /// Runs the CLI against this fleet's broker; it must succeed.
    fn cli_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = egress().args(args).envs(self.env()).output().unwrap();
        assert!(
            out.status.success(),
            "egress {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

enum BrokerUse {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let _ = self.runtime.block_on(async {
            let channel = self.connection.create_channel().await?;
            for queue in ["jobs", "dead"] {
                let _ = channel
                    .queue_delete(
                        format!("{prefix}.{queue}").as_str().into(),
                        QueueDeleteOptions::default(),
                    )
                    .await;
            }
            for exchange in ["events", "control"] {
                let _ = channel
                    .exchange_delete(
                        format!("{prefix}.{exchange}").as_str().into(),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
            Ok::<(), lapin::Error>(())
        });
    }
}

struct WorkerProcess {
    child: Child,
    log: std::path::PathBuf,
    /// Its `/healthz`, `/readyz`, `/metrics` and `/jobs`.
    ops_port: u16,
}

impl WorkerProcess {
    /// Starts `command` (an `egress worker`) with its operations endpoints on a port of its own.
    fn spawn(mut command: std::process::Command, log: std::path::PathBuf) -> WorkerProcess {
        let ops_port = free_port();
        let child = command
            .env("EGRESS_OPS_ADDRESS", format!("127.0.0.1:{ops_port}"))
            .spawn()
            .expect("egress worker starts");
        WorkerProcess { child, log, ops_port }
    }

    /// Waits until `/readyz` says the worker is connected and taking jobs.
    fn wait_ready(&self, timeout: Duration) {
        poll("the worker ready", timeout, || match self.get("/readyz") {
            Some((200, _)) => Ok(()),
            seen => Err(format!("{seen:?}\n{}", self.log())),
        });
    }

    /// Status and body of a GET on the ops port; `None` while nothing answers there.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        std::net::TcpStream::connect(("127.0.0.1", self.ops_port)).ok()?;
        Some(http_get(self.ops_port, path))
    }

    /// The value of one series of `/metrics` (`name{labels}`), 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until a series of `/metrics` reaches `at_least`.
    fn wait_metric(&self, series: &str, at_least: f64, timeout: Duration) {
        poll(series, timeout, || match self.metric(series) {
            value if value >= at_least => Ok(()),
            value => Err(format!("{value}")),
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the worker to exit by itself.
    fn terminate(&mut self, timeout: Duration) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the worker did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status code and body of a GET on loopback.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (code, body)
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
    ) + &format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_digit(), "")
        + &std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_string()
}

fn short_call(egress_id: &str, seconds: f64, colour: &str) -> Value {
    json!({
        "egress_id": egress_id,
        "call_cid": format!("default:{egress_id}"),
        "source": { "type": "synthetic", "duration_s": seconds, "participants": [
            { "user_id": "alice", "video": { "color": colour }, "audio": "sine" } ] },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "fleet/" }
    })
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn recording_file(event: &Value) -> std::path::PathBuf {
    let url = event["call_recording"]["url"].as_str().unwrap();
    Path::new(url.strip_prefix("file://").unwrap()).to_owned()
}

#[test]
fn ten_jobs_across_two_workers_are_each_done_exactly_once() {
    let fleet = Fleet::new("ten");
    let scratch = Scratch::new("fleet-ten");
    // Budgets that fit two of these jobs (0.285 cores each by the default cost model) at a time on
    // each worker.
    let a = fleet.worker(&scratch, "a", 0.6);
    let ops_port = a.ops_port;
    assert_eq!(http_get(ops_port, "/readyz").0, 200, "ready once connected");
    let b = fleet.worker(&scratch, "b", 0.6);
    let published = Instant::now();
    let mut submitted = HashMap::new();
    let ids: Vec<String> = (0..10)
        .map(|i| {
            let at = chrono::Utc::now();
            let id = fleet.submit(&scratch, &short_call(&format!("eg_ten_{i}"), 3.0, "#1e88e5"));
            submitted.insert(id.clone(), at);
            id
        })
        .collect();
    fleet.wait_until("10 recordings ready", Duration::from_secs(120), |events| {
        of_type(events, "call.recording_ready").len() >= 10
    });
    std::thread::sleep(Duration::from_secs(2));
    let events = fleet.events();
    let mut ready_per_job: HashMap<String, usize> = HashMap::new();
    for ready in of_type(&events, "call.recording_ready") {
        *ready_per_job
            .entry(ready["egress_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(ready["routing_key"], "call.recording_ready");
        let file = recording_file(ready);
        let duration = duration_s(&probe(&file));
        assert!((duration - 3.0).abs() <= 0.1, "{}: {duration} s", file.display());
    }
    for id in &ids {
        assert_eq!(
            ready_per_job.get(id),
            Some(&1),
            "{id} done exactly once: {ready_per_job:?}"
        );
    }
    assert_eq!(of_type(&events, "call.recording_started").len(), 10);
    let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["event_id"].as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event has an id of its own");
    for event in &events {
        assert_eq!(
            event["message_id"], event["event_id"],
            "the AMQP message id is the event's id"
        );
    }
    let taken_by_a = a.metric("egress_jobs_taken_total") as usize;
    let taken_by_b = b.metric("egress_jobs_taken_total") as usize;
    assert_eq!(taken_by_a + taken_by_b, 10, "a: {taken_by_a}, b: {taken_by_b}");
    assert!(
        taken_by_a >= 2 && taken_by_b >= 2,
        "both workers work: a {taken_by_a}, b {taken_by_b}"
    );
    assert!(
        a.metric("egress_deliveries_not_run_total{reason=\"full\"}")
            + b.metric("egress_deliveries_not_run_total{reason=\"full\"}")
            > 0.0,
        "a full worker leaves jobs to the other"
    );
    assert_eq!(fleet.jobs_waiting(), 0);
    let (code, metrics) = http_get(ops_port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains(&format!(
            "egress_jobs_ended_total{{outcome=\"succeeded\"}} {taken_by_a}\n"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("egress_jobs_running 0\n"), "{metrics}");
    assert!(metrics.contains("egress_cpu_budget 0.6\n"), "{metrics}");
    // From `egress submit` to the job's started event (which waits for the first encoded frame),
    // for the jobs a worker had room for at once.
    let mut delays: Vec<f64> = of_type(&events, "call.recording_started")
        .iter()
        .filter_map(|e| {
            let started = chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str()?).ok()?;
            let at = submitted.get(e["egress_id"].as_str()?)?;
            Some((started.with_timezone(&chrono::Utc) - *at).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    eprintln!(
        "fleet: 10 jobs of 3 s on 2 workers in {:.1} s; submit to started: fastest {:.2} s, \
         first four {:?}",
        published.elapsed().as_secs_f64(),
        delays[0],
        &delays[..4]
    );
}

/// Parses an event's RFC 3339 time.
fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[test]
fn a_killed_workers_job_is_done_by_another_and_the_parts_cover_the_call() {
    const CALL_S: f64 = 16.0;
    let fleet = Fleet::new("kill");
    let scratch = Scratch::new("fleet-kill");
    let mut a = fleet.worker(&scratch, "a", 1.6);
    let mut job = short_call("eg_kill", CALL_S, "#e53935");
    let call_began = chrono::Utc::now();
    job["source"]["started_at"] = json!(call_began.to_rfc3339());
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("started on a", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    std::thread::sleep(Duration::from_secs(5));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    let killed_at = chrono::Utc::now();
    // A worker sharing a's spool (another process on the same volume, or a's container
    // restarted) stores the part a was writing; b also takes the job a left unacked.
    let _b = fleet.worker(&scratch, "b", 1.6);
    let events = fleet.wait_until("resumed on b", Duration::from_secs(60), |events| {
        of_type(events, "call.recording_started").len() >= 2
    });
    let recovery = killed.elapsed();
    let resumed = of_type(&events, "call.recording_started")[1].clone();
    assert_eq!(resumed["egress_id"], id.as_str(), "the same egress id");
    let warnings = resumed["warnings"].to_string();
    assert!(
        warnings.contains("resumed"),
        "the started event says so: {resumed}"
    );
    let events = fleet.wait_until("both parts ready", Duration::from_secs(60), |events| {
        of_type(events, "call.recording_ready").len() >= 2
    });
    let mut parts: Vec<(chrono::DateTime<chrono::Utc>, f64, &Value)> =
        of_type(&events, "call.recording_ready")
            .into_iter()
            .map(|ready| {
                assert_eq!(ready["egress_id"], id.as_str());
                let file = recording_file(ready);
                assert_eq!(decode_errors(&file), "", "{} plays", file.display());
                let start = time_of(&ready["call_recording"]["start_time"]);
                (start, duration_s(&probe(&file)), ready)
            })
            .collect();
    parts.sort_by_key(|p| p.0);
    let [(start_a, length_a, _), (start_b, length_b, _)] = parts[..] else {
        panic!("two parts: {parts:#?}");
    };
    let seconds = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let end_a = seconds(start_a - call_began) + length_a;
    let (begin_b, end_b) = (
        seconds(start_b - call_began),
        seconds(start_b - call_began) + length_b,
    );
    let gap = begin_b - end_a;
    let kill = seconds(killed_at - call_began);
    eprintln!(
        "fleet: call 0–{CALL_S} s, a killed at {kill:.2} s; part a {:.2}–{end_a:.2} s, part b {begin_b:.2}–{end_b:.2} s; gap {gap:.2} s; job started again {:.2} s after the kill",
        seconds(start_a - call_began),
        recovery.as_secs_f64()
    );
    // What a killed worker loses: the keyframe interval the splitter was gathering (2 s) and
    // the last index update (1 s).
    assert!(
        end_a >= kill - 3.5,
        "a's part holds what a recorded until shortly before the kill at {kill:.2} s: ends at {end_a:.2} s"
    );
    assert!(
        (-0.5..=4.0).contains(&gap),
        "the parts meet with a gap of a few seconds at most: {gap} s"
    );
    assert!(
        (end_b - CALL_S).abs() <= 1.5,
        "b's part runs to the end of the call: ends at {end_b} s"
    );
    fleet.wait_acked("acked");
}

#[test]
fn the_same_job_published_twice_runs_once_across_two_workers() {
    let fleet = Fleet::new("twice");
    let scratch = Scratch::new("fleet-twice");
    let of_job = |events: &[Value], kind: &str, id: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["egress_id"] == id)
            .count()
    };
    // a has room for one job: it runs the first delivery, and a filler job offered next makes
    // it stop taking jobs, so the second delivery can only go to b.
    let _a = fleet.worker(&scratch, "a", 0.5);
    let job = short_call("eg_twice", 8.0, "#1e88e5");
    fleet.submit(&scratch, &job);
    fleet.wait_until("started on a", Duration::from_secs(30), |events| {
        of_job(events, "call.recording_started", "eg_twice") == 1
    });
    fleet.submit(&scratch, &short_call("eg_filler", 2.0, "#43a047"));
    std::thread::sleep(Duration::from_secs(1));
    let b = fleet.worker(&scratch, "b", 1.6);
    fleet.submit(&scratch, &job);
    b.wait_metric(
        "egress_deliveries_not_run_total{reason=\"running_elsewhere\"}",
        1.0,
        Duration::from_secs(20),
    );
    b.wait_metric(
        "egress_held_deliveries_settled_total",
        1.0,
        Duration::from_secs(30),
    );
    // Room for a second run to show itself, had the second delivery started one.
    std::thread::sleep(Duration::from_secs(3));
    let events = fleet.events();
    assert_eq!(
        of_job(&events, "call.recording_started", "eg_twice"),
        1,
        "{events:#?}"
    );
    assert_eq!(
        of_job(&events, "call.recording_ready", "eg_twice"),
        1,
        "{events:#?}"
    );
    assert_eq!(
        of_job(&events, "call.recording_ready", "eg_filler"),
        1,
        "{events:#?}"
    );
    assert_eq!(fleet.jobs_waiting(), 0, "both deliveries acked");
}

/// Closes the broker's side of the connection of the worker process `pid`.
fn cut_off_from_the_broker(pid: u32) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let name = format!("egress worker pid {pid}");
    let connection = listing
        .lines()
        .find(|line| line.contains(&name))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no connection named {name:?} in:\n{listing}"));
    rabbitmqctl(&["close_connection", connection, "test cuts the worker off"]);
}

#[test]
fn a_worker_cut_off_from_the_broker_never_runs_its_job_beside_another() {
    let fleet = Fleet::new("cut");
    let scratch = Scratch::new("fleet-cut");
    let a = fleet.worker(&scratch, "a", 1.6);
    let job = short_call("eg_cut", 14.0, "#8e24aa");
    fleet.submit(&scratch, &job);
    fleet.wait_until("started on a", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let b = fleet.worker(&scratch, "b", 1.6);
    std::thread::sleep(Duration::from_secs(2));
    cut_off_from_the_broker(a.child.id());
    // The broker gives the job to b. Either a's lease went with its connection first, and b
    // runs the job while a, back within a second, finds b holding it and stops its own run; or
    // the broker had not dropped a's lease yet, b holds the delivery, a takes its lease back on
    // reconnecting and runs on, and b settles the delivery when a announces the end.
    let took_over = poll("b takes or holds the job", Duration::from_secs(20), || {
        let taken = b.metric("egress_jobs_taken_total");
        let held = b.metric("egress_deliveries_not_run_total{reason=\"running_elsewhere\"}");
        match (taken > 0.0, held > 0.0) {
            (true, _) => Ok(true),
            (false, true) => Ok(false),
            (false, false) => Err(b.log()),
        }
    });
    // Held, the second delivery may still come back to b, and then b takes the job: a's lease
    // went with its connection after all.
    let took_over = took_over
        || poll("b settles or takes the job", Duration::from_secs(40), || {
            match (
                b.metric("egress_jobs_taken_total") > 0.0,
                b.metric("egress_held_deliveries_settled_total") > 0.0,
            ) {
                (true, _) => Ok(true),
                (false, true) => Ok(false),
                (false, false) => Err(b.log()),
            }
        });
    if !took_over {
        let events = fleet.events();
        assert_eq!(of_type(&events, "call.recording_started").len(), 1, "{events:#?}");
        assert_eq!(of_type(&events, "call.recording_ready").len(), 1, "{events:#?}");
        assert_eq!(
            a.metric("egress_jobs_ended_total{outcome=\"yielded\"}"),
            0.0,
            "a ran on: {}",
            a.log()
        );
        eprintln!(
            "fleet: the cut-off worker kept its job; the other held the second delivery until it ended"
        );
    } else {
        a.wait_metric(
            "egress_jobs_ended_total{outcome=\"yielded\"}",
            1.0,
            Duration::from_secs(20),
        );
        let events = fleet.wait_until("both parts ready", Duration::from_secs(60), |events| {
            of_type(events, "call.recording_ready").len() >= 2
        });
        let started = of_type(&events, "call.recording_started");
        assert_eq!(started.len(), 2, "{events:#?}");
        assert!(started[1]["warnings"].to_string().contains("resumed"));
        let mut parts: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
            of_type(&events, "call.recording_ready")
                .into_iter()
                .map(|ready| {
                    let recording = &ready["call_recording"];
                    (time_of(&recording["start_time"]), time_of(&recording["end_time"]))
                })
                .collect();
        parts.sort();
        let overlap = (parts[0].1 - parts[1].0).num_milliseconds() as f64 / 1000.0;
        eprintln!(
            "fleet: a cut-off worker and its successor ran the same job side by side for {overlap:.2} s"
        );
        assert!(
            overlap <= 3.0,
            "the job ran twice for a few seconds at most: {overlap} s; parts {parts:?}"
        );
    }
    fleet.wait_acked("acked");
}

#[test]
fn a_worker_takes_jobs_over_amqps_and_refuses_an_untrusted_broker() {
    let fleet = Fleet::new("tls");
    let scratch = Scratch::new("fleet-tls");
    let certificates = TestCertificates::create(&scratch.dir.join("tls"));
    // TLS terminated in front of the real broker, as a load balancer does.
    let front = TlsFront::start(&scratch.dir.join("tls-front"), &certificates, 5672);
    let url = format!("amqps://guest:guest@127.0.0.1:{}/%2f", front.port);

    let mut untrusting = fleet.start_worker(&scratch, "untrusting", 1.6, &[("EGRESS_AMQP_URL", url.clone())]);
    // Not ready, and /readyz says why.
    poll(
        "the untrusting worker tells why",
        Duration::from_secs(20),
        || match untrusting.get("/readyz") {
            Some((503, body)) if body.contains("certificate") => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );
    assert_eq!(untrusting.metric("egress_amqp_connections_total"), 0.0);
    untrusting.terminate(Duration::from_secs(20));

    let ca = certificates.ca.to_string_lossy().to_string();
    let mut worker = fleet.worker_with(
        &scratch,
        "tls",
        1.6,
        &[("EGRESS_AMQP_URL", url), ("EGRESS_AMQP_TLS_CA_FILE", ca)],
    );
    fleet.submit(&scratch, &short_call("eg_tls", 2.0, "#00acc1"));
    let events = fleet.wait_until("done over TLS", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    assert_eq!(of_type(&events, "call.recording_ready")[0]["egress_id"], "eg_tls");
    fleet.wait_acked("acked over TLS");
    assert_eq!(worker.metric("egress_amqp_connected"), 1.0);
    let log = worker.log();
    assert!(!log.contains("guest:guest"), "the password is not logged");
    worker.terminate(Duration::from_secs(20));
}

#[test]
fn sigterm_hands_a_running_job_back_and_another_worker_takes_it_at_once() {
    let fleet = Fleet::new("term");
    let scratch = Scratch::new("fleet-term");
    let mut a = fleet.worker_with(&scratch, "a", 1.6, &[("EGRESS_SHUTDOWN_GRACE_S", "1".into())]);
    let mut job = short_call("eg_term", 16.0, "#fb8c00");
    job["source"]["started_at"] = json!(chrono::Utc::now().to_rfc3339());
    fleet.submit(&scratch, &job);
    fleet.wait_until("started on a", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let b = fleet.worker(&scratch, "b", 1.6);
    std::thread::sleep(Duration::from_secs(3));
    let terminated = Instant::now();
    a.terminate(Duration::from_secs(30));
    let exited = terminated.elapsed();
    // a gives its lease up with the job, so b does not wait for a's connection to close.
    b.wait_metric("egress_jobs_taken_total", 1.0, Duration::from_secs(10));
    let taken = terminated.elapsed();
    let events = fleet.wait_until("both parts ready", Duration::from_secs(60), |events| {
        of_type(events, "call.recording_ready").len() >= 2
    });
    let started = of_type(&events, "call.recording_started");
    assert_eq!(started.len(), 2, "{events:#?}");
    assert!(started[1]["warnings"].to_string().contains("resumed"));
    assert_eq!(
        b.metric("egress_deliveries_not_run_total{reason=\"running_elsewhere\"}"),
        0.0,
        "b never found the job held: {}",
        b.log()
    );
    eprintln!(
        "fleet: SIGTERM → a exited after {:.2} s, b took the job {:.2} s after the signal",
        exited.as_secs_f64(),
        taken.as_secs_f64()
    );
    fleet.wait_acked("acked by b");
}

#[test]
fn invalid_jobs_go_to_the_dead_letter_queue_with_a_failed_event() {
    let fleet = Fleet::new("dead");
    let scratch = Scratch::new("fleet-dead");
    let mut worker = fleet.worker(&scratch, "a", 1.6);
    fleet.publish_raw(b"this is not json");
    let mut bad = short_call("eg_bad", 3.0, "#43a047");
    bad["recording"]["quality"] = json!("4k");
    fleet.publish_raw(bad.to_string().as_bytes());
    let mut unknown_storage = short_call("eg_nostore", 3.0, "#43a047");
    unknown_storage["storage"] = json!({ "name": "nope" });
    fleet.publish_raw(unknown_storage.to_string().as_bytes());
    // A worker reads no local file for a job unless its configuration allows it.
    let mut local_file = short_call("eg_local", 3.0, "#43a047");
    local_file["source"]["participants"][0]["video"] = json!({ "clip": "/etc/passwd" });
    fleet.publish_raw(local_file.to_string().as_bytes());
    // Larger than the 1 MiB a worker takes: refused unread, so it names no call to tell.
    let mut oversized = short_call("eg_huge", 3.0, "#43a047");
    oversized["session_id"] = json!("s".repeat(2 * 1024 * 1024));
    fleet.publish_raw(oversized.to_string().as_bytes());
    fleet.submit(&scratch, &short_call("eg_good", 2.0, "#43a047"));
    let events = fleet.wait_until("the good job done", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let failed = of_type(&events, "call.recording_failed");
    assert_eq!(failed.len(), 3, "{events:#?}");
    assert_eq!(failed[0]["egress_id"], "eg_bad");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("recording.quality"), "names the field: {error}");
    assert_eq!(failed[1]["egress_id"], "eg_nostore");
    let error = failed[1]["error"].as_str().unwrap();
    assert!(error.contains("storage.name"), "names the field: {error}");
    assert_eq!(failed[2]["egress_id"], "eg_local");
    let error = failed[2]["error"].as_str().unwrap();
    assert!(
        error.contains("source.participants[0].video.clip: expected no local file"),
        "names the field: {error}"
    );
    assert_eq!(
        fleet.message_count(&format!("{}.dead", fleet.prefix)),
        5,
        "all five in the DLQ"
    );
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker lives on");
    worker.terminate(Duration::from_secs(20));
}

#[test]
fn stop_reaches_the_job_it_names_on_whichever_worker() {
    let fleet = Fleet::new("stop");
    let scratch = Scratch::new("fleet-stop");
    let _a = fleet.worker(&scratch, "a", 0.5);
    let _b = fleet.worker(&scratch, "b", 0.5);
    let first = fleet.submit(&scratch, &short_call("eg_stop_1", 60.0, "#e53935"));
    let second = fleet.submit(&scratch, &short_call("eg_stop_2", 60.0, "#1e88e5"));
    fleet.wait_until("both started", Duration::from_secs(30), |events| {
        of_type(events, "call.recording_started").len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let stopped_at = Instant::now();
    let out = egress()
        .args(["stop", &first])
        .envs(fleet.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = fleet.wait_until("the first ready", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let ready = of_type(&events, "call.recording_ready");
    assert_eq!(ready[0]["egress_id"], first.as_str());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        of_type(&fleet.events(), "call.recording_ready").len(),
        1,
        "the other job runs on"
    );
    let out = egress()
        .args(["stop", &second])
        .envs(fleet.env())
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = fleet.wait_until("the second ready", Duration::from_secs(30), |events| {
        of_type(events, "call.recording_ready").len() >= 2
    });
    let duration = duration_s(&probe(&recording_file(
        of_type(&events, "call.recording_ready")[0],
    )));
    assert!(duration < 30.0, "the first job ended when stopped: {duration} s");
    eprintln!("fleet: stop to ready {:.2} s", stopped_at.elapsed().as_secs_f64());
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    id: String,
    attempt: u32,
    api_key: String,
    signature_ok: bool,
    event: Value,
}

/// An HTTP endpoint on loopback that checks signatures and answers 500 to the first attempt of
/// every webhook call when `flaky`.
fn webhook_receiver(secret: &'static str, flaky: bool) -> (u16, Arc<Mutex<Vec<Hook>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, webhook_receiver_on(listener, secret, flaky))
}

fn webhook_receiver_on(
    listener: std::net::TcpListener,
    secret: &'static str,
    flaky: bool,
) -> Arc<Mutex<Vec<Hook>>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let hook = Hook {
                id: headers.get("x-webhook-id").cloned().unwrap_or_default(),
                attempt: headers
                    .get("x-webhook-attempt")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                api_key: headers.get("x-api-key").cloned().unwrap_or_default(),
                signature_ok: headers.get("x-signature").map(String::as_str)
                    == Some(egress::events::signature(secret, &body).as_str()),
                event: serde_json::from_slice(&body).unwrap_or(Value::Null),
            };
            let status = if flaky && hook.attempt == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            record.lock().unwrap().push(hook);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    seen
}

#[test]
fn webhooks_are_signed_filtered_and_retried_after_a_500() {
    let fleet = Fleet::new("hooks");
    let scratch = Scratch::new("fleet-hooks");
    let (flaky_port, flaky) = webhook_receiver("hook-secret-1", true);
    let (ready_port, ready_only) = webhook_receiver("hook-secret-2", false);
    let config = scratch.dir.join("egress.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:{flaky_port}/hook\"\napi_key = \"key-1\"\n\
             api_secret = \"hook-secret-1\"\n\n[[webhooks]]\nurl = \"http://127.0.0.1:{ready_port}/\"\n\
             api_key = \"key-2\"\napi_secret = \"hook-secret-2\"\nevents = [\"call.recording_ready\"]\n\n\
             [storages.archive]\nstorage_type = \"local\"\npath = \"archive/\"\n"
        ),
    )
    .unwrap();
    let log = scratch.dir.join("worker.log");
    let mut worker = WorkerProcess::spawn(
        {
            let mut command = egress();
            command
                .arg("worker")
                .arg("--config")
                .arg(&config)
                .envs(fleet.env())
                .env("EGRESS_OUT_DIR", scratch.out())
                .env("EGRESS_LOG_FORMAT", "json")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            command
        },
        log,
    );
    worker.wait_ready(Duration::from_secs(20));
    // The job names a storage of the worker's config.
    let mut job = short_call("eg_hooks", 2.0, "#8e24aa");
    job["storage"] = json!({ "name": "archive" });
    fleet.submit(&scratch, &job);
    let events = fleet.wait_until("the job done", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let file = recording_file(of_type(&events, "call.recording_ready")[0]);
    assert!(
        file.starts_with(scratch.out().join("archive")),
        "stored in the named storage: {}",
        file.display()
    );
    poll("every webhook delivered", Duration::from_secs(30), || {
        let second_tries = flaky.lock().unwrap().iter().filter(|h| h.attempt == 2).count();
        let ready = ready_only.lock().unwrap().len();
        match (second_tries, ready) {
            (3, 1) => Ok(()),
            _ => Err(format!("{second_tries} second tries, {ready} ready")),
        }
    });

    let flaky = flaky.lock().unwrap().clone();
    let types: Vec<&str> = flaky
        .iter()
        .filter(|h| h.attempt == 2)
        .map(|h| h.event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "call.recording_started",
            "call.recording_stopped",
            "call.recording_ready"
        ],
        "every event, in order, delivered on the second attempt: {flaky:#?}"
    );
    let delivered: Vec<Value> = flaky.iter().map(|h| h.event.clone()).collect();
    assert_events_follow_the_schema(&delivered);
    for hook in &flaky {
        assert!(hook.signature_ok, "X-SIGNATURE is the HMAC of the body: {hook:?}");
        assert_eq!(hook.api_key, "key-1");
        let attempts: Vec<u32> = flaky
            .iter()
            .filter(|h| h.id == hook.id)
            .map(|h| h.attempt)
            .collect();
        assert_eq!(attempts, [1, 2], "one id across the retry of {hook:?}");
        assert_eq!(
            hook.event["event_id"].as_str(),
            Some(hook.id.as_str()),
            "X-WEBHOOK-ID is the event's own id"
        );
    }
    let ready_only = ready_only.lock().unwrap().clone();
    assert_eq!(ready_only.len(), 1, "{ready_only:#?}");
    assert_eq!(ready_only[0].event["type"], "call.recording_ready");
    assert!(ready_only[0].signature_ok && ready_only[0].attempt == 1);
    let log = worker.log();
    assert!(
        !log.contains("hook-secret"),
        "the API secret stays out of the log"
    );
    // Structured logs: every line one JSON object; the job's lines carry its egress id.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(
            |l| l["span"]["egress_id"] == "eg_hooks" && l["fields"]["message"] == "recording part opened"
        ),
        "{log}"
    );
    worker.terminate(Duration::from_secs(20));
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn workers_reconnect_after_rabbitmq_restarts_and_lose_nothing() {
    let mut fleet = Fleet::using(
        "restart",
        BrokerUse::Alone(BROKER.write().unwrap_or_else(|p| p.into_inner())),
    );
    let scratch = Scratch::new("fleet-restart");
    let worker = fleet.worker(&scratch, "a", 1.6);
    let first = fleet.submit(&scratch, &short_call("eg_through", 25.0, "#fb8c00"));
    fleet.wait_until("started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    // The broker goes away for a few seconds while the job runs.
    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(Duration::from_secs(4));
    rabbitmqctl(&["start_app"]);
    wait_for_port(5672, Duration::from_secs(60));
    worker.wait_metric("egress_amqp_connections_total", 2.0, Duration::from_secs(60));
    // The test's own event listener lost its connection too; a new one hears the rest.
    let broker = fleet.take_broker();
    drop(fleet);
    let fleet = Fleet::using("restart", broker);
    let second = fleet.submit(&scratch, &short_call("eg_after", 2.0, "#00897b"));
    let events = fleet.wait_until("both ready", Duration::from_secs(90), |events| {
        let ready = of_type(events, "call.recording_ready");
        ready.iter().any(|e| e["egress_id"] == first.as_str())
            && ready.iter().any(|e| e["egress_id"] == second.as_str())
    });
    let first_ready = of_type(&events, "call.recording_ready")
        .into_iter()
        .find(|e| e["egress_id"] == first.as_str())
        .unwrap();
    let duration = duration_s(&probe(&recording_file(first_ready)));
    assert!(
        (duration - 25.0).abs() <= 0.1,
        "the job ran through the restart: {duration} s"
    );
    assert_eq!(
        worker.metric("egress_jobs_taken_total"),
        2.0,
        "the job offered again after the reconnect is not run twice:\n{}",
        worker.log()
    );
    fleet.wait_acked("both jobs acked");
}

#[test]
fn updates_reach_the_running_job_pins_then_layout() {
    let fleet = Fleet::new("update");
    let scratch = Scratch::new("fleet-update");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let (red, blue) = ("#e53935", "#1e88e5");
    let job = json!({
        "egress_id": "eg_pins",
        "call_cid": "default:pins",
        "source": { "type": "synthetic", "duration_s": 20, "participants": [
            { "user_id": "alice", "video": { "color": red } },
            { "user_id": "bob", "video": { "color": blue } } ] },
        "recording": { "quality": "360p", "layout": { "name": "single-participant" } },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let send_update = |json: &str| {
        let update = scratch.dir.join("update.json");
        std::fs::write(&update, json).unwrap();
        let out = egress()
            .arg("update")
            .arg(&id)
            .arg(&update)
            .envs(fleet.env())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Late enough that the composite has passed the first frames even on a loaded machine (it may
    // run seconds behind the clock when other jobs share the cores).
    std::thread::sleep(Duration::from_secs(4));
    let (code, stderr) = send_update(r#"{"pinned": ["bob"], "participants": {"bob": {"name": "Bob B."}}}"#);
    assert_eq!(code, Some(0), "{stderr}");
    std::thread::sleep(Duration::from_secs(6));
    let (code, stderr) =
        send_update(r##"{"layout": {"name": "grid", "options": {"video.background_color": "#000000"}}}"##);
    assert_eq!(code, Some(0), "{stderr}");
    let events = fleet.wait_until("ready", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let file = recording_file(of_type(&events, "call.recording_ready")[0]);
    let first = Frame::at(&file, 0.2, 640, 360).colour_at(320, 180);
    assert!(close(first, hex_rgb(red)), "alice shown first: {first:?}");
    let pinned = Frame::at(&file, 9.0, 640, 360).colour_at(320, 180);
    assert!(close(pinned, hex_rgb(blue)), "bob shown once pinned: {pinned:?}");
    let last = Frame::at(&file, 19.5, 640, 360);
    let halves = [last.colour_at(160, 180), last.colour_at(480, 180)];
    assert!(
        halves.iter().any(|c| close(*c, hex_rgb(red))) && halves.iter().any(|c| close(*c, hex_rgb(blue))),
        "both side by side once the layout is a grid: {halves:?}"
    );

    // Malformed updates are refused by the helper, naming what it expects.
    let (code, stderr) = send_update(r#"{"pins": ["bob"]}"#);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("pinned"), "{stderr}");
    let (code, stderr) = send_update(r#"{"layout": {"name": "grid", "options": {"grid.columns": "many"}}}"#);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("layout.options.grid.columns"), "{stderr}");
}

/// How far into the call the stills seen so far go (s): the newest still's time less the
/// first's. The first still is of the call's first picture.
fn call_time_of_stills(events: &[Value]) -> Option<f64> {
    let times: Vec<chrono::DateTime<chrono::Utc>> = of_type(events, "call.frame_recording_ready")
        .iter()
        .map(|e| time_of(&e["captured_at"]))
        .collect();
    let (first, last) = (times.iter().min()?, times.iter().max()?);
    Some((*last - *first).num_milliseconds() as f64 / 1000.0)
}

/// The display times of a file's video packets, in order.
fn video_times(file: &std::path::Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

#[test]
fn a_paused_recording_leaves_the_pause_out_of_the_same_file() {
    let fleet = Fleet::new("pause");
    let scratch = Scratch::new("fleet-pause");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let (red, blue) = ("#e53935", "#1e88e5");
    let call_s = 20.0;
    // Bob is in the call from 8 s to 12 s of it; the pause spans his visit with room either side.
    let job = json!({
        "egress_id": "eg_pause",
        "call_cid": "default:pause",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": [
            { "user_id": "alice", "video": { "color": red }, "audio": "sine" },
            { "user_id": "bob", "video": { "color": blue }, "join_at_s": 8, "leave_at_s": 12 } ] },
        "recording": { "quality": "360p" },
        // The stills say how far the call has got: the pause and the resume wait on them.
        "frame_recording": { "capture_interval_in_seconds": 2 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty() && call_time_of_stills(events) >= Some(0.0)
    });
    let control = |verb: &str| fleet.cli_ok(&[verb, &id, "--output", "recording"]);
    control("pause");
    fleet.wait_until("paused", Duration::from_secs(10), |events| {
        !of_type(events, "call.recording_paused").is_empty()
    });
    let status: Value = serde_json::from_slice(&fleet.cli_ok(&["status", &id])).unwrap();
    assert_eq!(status["composite_recording"]["status"], "paused", "{status}");
    fleet.wait_until("the call past bob's visit", Duration::from_secs(30), |events| {
        call_time_of_stills(events) >= Some(13.0)
    });
    control("resume");
    let events = fleet.wait_until("ready", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_pause")
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| t.starts_with("call.recording_"))
        .collect();
    assert_eq!(
        types,
        [
            "call.recording_started",
            "call.recording_paused",
            "call.recording_resumed",
            "call.recording_stopped",
            "call.recording_ready"
        ]
    );
    let paused_at = time_of(&of_type(&events, "call.recording_paused")[0]["created_at"]);
    let resumed_at = time_of(&of_type(&events, "call.recording_resumed")[0]["created_at"]);
    let pause_s = (resumed_at - paused_at).num_milliseconds() as f64 / 1000.0;
    let ready = of_type(&events, "call.recording_ready")[0];
    let spans = ready["call_recording"]["paused"]
        .as_array()
        .expect("the paused spans");
    assert_eq!(spans.len(), 1, "{ready}");
    assert!(
        spans[0]["start_time"].is_string() && spans[0]["end_time"].is_string(),
        "{ready}"
    );

    let file = recording_file(ready);
    assert_eq!(decode_errors(&file), "", "the file decodes across the seam");
    let info = probe(&file);
    let duration = duration_s(&info);
    // The recording resumes at the next keyframe (2 s apart) after the resume.
    assert!(
        duration <= call_s - pause_s + 0.5 && duration >= call_s - pause_s - 2.5,
        "{duration} s recorded of a {call_s} s call paused {pause_s} s"
    );
    let times = video_times(&file);
    let longest_step = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        longest_step < 0.05,
        "no gap and no held picture at the seam: longest step {longest_step} s"
    );
    let audio = &streams_of(&info, "audio")[0];
    let audio_s: f64 = audio["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (audio_s - duration).abs() < 0.15,
        "sound {audio_s} s for {duration} s of pictures"
    );
    // Bob's visit was paused: no picture of the file shows him.
    let mut at = 0.1;
    while at < duration - 0.1 {
        let frame = Frame::at(&file, at, 640, 360);
        for x in [160, 320, 480] {
            let colour = frame.colour_at(x, 180);
            assert!(
                !close(colour, hex_rgb(blue)),
                "bob shown at {at} s ({x}, 180): {colour:?}"
            );
        }
        at += 0.25;
    }
    let last = Frame::at(&file, duration - 0.2, 640, 360).colour_at(320, 180);
    assert!(close(last, hex_rgb(red)), "alice after the resume: {last:?}");
}

/// A worker that may read local media, with the sentences spoken into `s0.wav`, `s1.wav`, …
/// of the scratch folder.
fn speaking_call_worker(fleet: &Fleet, scratch: &Scratch, sentences: &[&str]) -> WorkerProcess {
    model_path();
    for (i, sentence) in sentences.iter().enumerate() {
        speak(scratch, &format!("s{i}"), sentence);
    }
    fleet.worker_with(
        scratch,
        "a",
        1.6,
        &[
            ("EGRESS_ALLOW_LOCAL_MEDIA", "true".into()),
            ("EGRESS_MEDIA_DIR", scratch.dir.display().to_string()),
        ],
    )
}

/// The text of every caption of `speaker`, in order.
fn captions_of(events: &[Value], speaker: &str) -> String {
    of_type(events, "call.closed_caption")
        .iter()
        .filter(|c| c["closed_caption"]["speaker_id"] == speaker)
        .map(|c| c["closed_caption"]["text"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored transcript of the first `call.transcription_ready`.
fn stored_transcript(events: &[Value]) -> String {
    let ready = of_type(events, "call.transcription_ready")[0];
    let url = ready["call_transcription"]["url"].as_str().unwrap();
    std::fs::read_to_string(url.strip_prefix("file://").unwrap_or(url)).unwrap()
}

#[test]
fn a_paused_transcription_leaves_out_the_pause_and_a_stopped_one_is_stored_while_captions_go_on() {
    let fleet = Fleet::new("pause-words");
    let scratch = Scratch::new("fleet-pause-words");
    let sentences = [
        "The quarterly report is ready for review.",
        "Please send the card number to the payments team.",
        "We will meet again next week to discuss the budget.",
        "The train leaves the station at nine in the morning.",
    ];
    let _worker = speaking_call_worker(&fleet, &scratch, &sentences);
    // Bob speaks from 9 s of the call, inside the pause; alice before it, carol after it; dave
    // after the transcript was stopped, while the captions go on.
    let job = json!({
        "egress_id": "eg_pause_words",
        "call_cid": "default:pause-words",
        "source": { "type": "synthetic", "duration_s": 34, "participants": [
            { "user_id": "alice", "video": null, "audio": { "file": "s0.wav" }, "join_at_s": 1 },
            { "user_id": "bob", "video": null, "audio": { "file": "s1.wav" }, "join_at_s": 9 },
            { "user_id": "carol", "video": null, "audio": { "file": "s2.wav" }, "join_at_s": 16 },
            { "user_id": "dave", "video": null, "audio": { "file": "s3.wav" }, "join_at_s": 25 },
            { "user_id": "clock", "video": { "pattern": "ball" } } ] },
        "transcription": { "language": "en", "closed_captions": true },
        // The stills (of the clock) say how far the call has got: the pause and the resume wait on them.
        "frame_recording": { "capture_interval_in_seconds": 2 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("started", Duration::from_secs(30), |events| {
        !of_type(events, "call.transcription_started").is_empty()
    });
    let control = |verb: &str| fleet.cli_ok(&[verb, &id, "--output", "transcription"]);
    // After alice's sentence (1 s to about 4 s of the call), before bob's (from 9 s).
    fleet.wait_until(
        "the call past alice's sentence",
        Duration::from_secs(30),
        |events| call_time_of_stills(events) >= Some(5.5),
    );
    control("pause");
    fleet.wait_until("paused", Duration::from_secs(10), |events| {
        !of_type(events, "call.transcription_paused").is_empty()
    });
    // After bob's sentence (to about 12 s), before carol's (from 16 s).
    fleet.wait_until(
        "the call past bob's sentence",
        Duration::from_secs(30),
        |events| call_time_of_stills(events) >= Some(13.5),
    );
    control("resume");
    // After carol's sentence (to about 19 s), before dave's (from 25 s).
    fleet.wait_until(
        "the call past carol's sentence",
        Duration::from_secs(30),
        |events| call_time_of_stills(events) >= Some(22.5),
    );
    fleet.cli_ok(&["stop", &id, "--output", "transcription"]);
    let stored = fleet.wait_until("the transcript stored", Duration::from_secs(30), |events| {
        !of_type(events, "call.transcription_ready").is_empty()
    });
    assert!(
        of_type(&stored, "call.frame_recording_stopped").is_empty(),
        "stored while the call runs: {stored:#?}"
    );
    let events = fleet.wait_until("the end of the call", Duration::from_secs(90), |events| {
        !of_type(events, "call.closed_captions_stopped").is_empty()
            && !of_type(events, "call.frame_recording_stopped").is_empty()
    });
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_pause_words")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count("call.transcription_stopped"), 1, "{types:?}");
    assert_eq!(count("call.transcription_ready"), 1, "{types:?}");
    assert_eq!(count("call.closed_captions_stopped"), 1, "{types:?}");
    assert_eq!(of_type(&events, "call.transcription_resumed").len(), 1);
    let said = |speaker: &str| captions_of(&events, speaker);
    assert!(
        word_error_rate(sentences[0], &said("alice")) <= 0.3,
        "alice: {}",
        said("alice")
    );
    assert_eq!(said("bob"), "", "nothing said during the pause is captioned");
    assert!(
        word_error_rate(sentences[2], &said("carol")) <= 0.3,
        "carol: {}",
        said("carol")
    );
    let transcript = stored_transcript(&events);
    assert!(
        !transcript.contains("\"bob\""),
        "bob is not in the transcript: {transcript}"
    );
    assert!(transcript.contains("\"carol\""), "carol is: {transcript}");
    assert!(
        word_error_rate(sentences[3], &said("dave")) <= 0.3,
        "captions go on after the transcript stopped: {}",
        said("dave")
    );
    assert!(
        !transcript.contains("\"dave\""),
        "dave spoke after the transcript stopped: {transcript}"
    );
}

#[test]
fn a_transcription_and_captions_started_during_the_call_hear_only_what_follows() {
    let fleet = Fleet::new("start-words");
    let scratch = Scratch::new("fleet-start-words");
    let sentences = [
        "The quarterly report is ready for review.",
        "We will meet again next week to discuss the budget.",
    ];
    let _worker = speaking_call_worker(&fleet, &scratch, &sentences);
    // Alice speaks before the transcription starts, bob (from 12 s) after it.
    let job = json!({
        "egress_id": "eg_start_words",
        "call_cid": "default:start-words",
        "source": { "type": "synthetic", "duration_s": 22, "participants": [
            { "user_id": "alice", "video": null, "audio": { "file": "s0.wav" }, "join_at_s": 1 },
            { "user_id": "bob", "video": null, "audio": { "file": "s1.wav" }, "join_at_s": 12 },
            { "user_id": "clock", "video": { "pattern": "ball" } } ] },
        "recording": { "quality": "360p" },
        // The stills (of the clock) say how far the call has got.
        "frame_recording": { "capture_interval_in_seconds": 2 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until(
        "the call past alice's sentence",
        Duration::from_secs(40),
        |events| call_time_of_stills(events) >= Some(6.5),
    );
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "transcription"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "closed_captions"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "closed_captions"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("running already"), "{stderr}");
    let status = serde_json::from_slice::<Value>(&fleet.cli_ok(&["status", &id])).unwrap();
    assert_eq!(status["transcription"]["status"], "running", "{status}");
    assert_eq!(status["closed_captions"]["status"], "running", "{status}");
    let events = fleet.wait_until("the end of the call", Duration::from_secs(90), |events| {
        !of_type(events, "call.transcription_ready").is_empty()
            && !of_type(events, "call.closed_captions_stopped").is_empty()
            && !of_type(events, "call.recording_ready").is_empty()
    });
    let said = |speaker: &str| captions_of(&events, speaker);
    assert_eq!(said("alice"), "", "alice spoke before the start");
    assert!(
        word_error_rate(sentences[1], &said("bob")) <= 0.3,
        "bob: {}",
        said("bob")
    );
    let transcript = stored_transcript(&events);
    assert!(
        transcript.contains("\"bob\""),
        "bob is in the transcript: {transcript}"
    );
    assert!(!transcript.contains("\"alice\""), "alice is not: {transcript}");
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_start_words")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count("call.transcription_started"), 1, "{types:?}");
    assert_eq!(count("call.closed_captions_started"), 1, "{types:?}");
    assert_eq!(count("call.transcription_stopped"), 1, "{types:?}");
    assert_eq!(count("call.closed_captions_stopped"), 1, "{types:?}");
    let failures = types.iter().filter(|t| t.ends_with("_failed")).count();
    assert_eq!(failures, 0, "{types:?}");
}

#[test]
fn outputs_stopped_alone_end_while_the_call_and_the_others_run_on() {
    let fleet = Fleet::new("stop-output");
    let scratch = Scratch::new("fleet-stop-output");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let worker = fleet.worker(&scratch, "a", 1.6);
    let ops_port = worker.ops_port;
    let call_s = 20.0;
    let keys = ["sk-first-4c1d9e", "sk-second-a07b3f"];
    let url = format!("rtmp://127.0.0.1:{}/live", server.port);
    let job = json!({
        "egress_id": "eg_stop_output",
        "call_cid": "default:stop-output",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": [
            { "user_id": "alice", "video": { "pattern": "ball" }, "audio": "sine" } ] },
        "recording": { "quality": "360p" },
        "frame_recording": { "capture_interval_in_seconds": 2 },
        "rtmp": [
            { "name": "a", "stream_url": url, "stream_key": keys[0], "quality": "360p" },
            { "name": "b", "stream_url": url, "stream_key": keys[1], "quality": "360p" }
        ],
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("both pushes started", Duration::from_secs(30), |events| {
        of_type(events, "call.rtmp_broadcast_started").len() == 2
    });
    let stop = |output: &str| {
        let out = egress()
            .args(["stop", &id, "--output", output])
            .envs(fleet.env())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Each output runs a while before it is stopped: nginx has some of push a.
    poll("nginx receives push a", Duration::from_secs(20), || {
        let size = server
            .received(keys[0])
            .first()
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len());
        if size >= 200_000 {
            Ok(())
        } else {
            Err(format!("{size} bytes"))
        }
    });
    assert_eq!(stop("rtmp:a").0, Some(0));
    fleet.wait_until("push a stopped", Duration::from_secs(10), |events| {
        of_type(events, "call.rtmp_broadcast_stopped")
            .iter()
            .any(|e| e["name"] == "a")
    });
    let status = || serde_json::from_slice::<Value>(&fleet.cli_ok(&["status", &id])).unwrap();
    let now = status();
    assert_eq!(now["composite_recording"]["status"], "running", "{now}");
    assert_eq!(now["broadcasting"], true, "{now}");
    let pushes = now["rtmps"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{now}");
    assert_eq!(pushes[0]["name"], "b");
    assert_eq!(
        pushes[0]["stream_url"],
        url.as_str(),
        "the URL, without the key: {now}"
    );
    assert!(
        !now.to_string().contains(keys[1]),
        "no stream key in the status: {now}"
    );
    // The ops server says the same.
    let (code, body) = http_get(ops_port, &format!("/jobs/{id}"));
    assert_eq!(code, 200, "{body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["rtmps"], now["rtmps"], "{body}");
    let (_, all) = http_get(ops_port, "/jobs");
    assert_eq!(
        serde_json::from_str::<Value>(&all)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1),
        "{all}"
    );
    assert_eq!(http_get(ops_port, "/jobs/eg_nobody").0, 404);
    fleet.wait_until("a few stills", Duration::from_secs(20), |events| {
        of_type(events, "call.frame_recording_ready").len() >= 2
    });
    assert_eq!(stop("frame_recording").0, Some(0));
    let frames_stopped = fleet.wait_until("stills stopped", Duration::from_secs(10), |events| {
        !of_type(events, "call.frame_recording_stopped").is_empty()
    });
    let stills_before = of_type(&frames_stopped, "call.frame_recording_ready").len();
    assert!(stills_before >= 2, "stills until the stop: {stills_before}");
    assert_eq!(stop("recording").0, Some(0));
    let mid_call = fleet.wait_until(
        "the recording stored mid-call",
        Duration::from_secs(15),
        |events| !of_type(events, "call.recording_ready").is_empty(),
    );
    assert!(
        of_type(&mid_call, "call.rtmp_broadcast_stopped").len() == 1,
        "push b still runs when the recording is announced: {mid_call:#?}"
    );
    let now = status();
    assert_eq!(now["composite_recording"]["status"], "stopped", "{now}");
    let unknown = egress()
        .args(["status", "eg_nobody"])
        .envs(fleet.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no worker runs eg_nobody"), "{stderr}");
    let (code, stderr) = stop("hls:main");
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains(
            "expected recording, hls, frame_recording, transcription, closed_captions, thumbnails, individual_recording, raw_recording, rtmp or rtmp:NAME"
        ),
        "{stderr}"
    );
    let events = fleet.wait_until("the end of the call", Duration::from_secs(60), |events| {
        of_type(events, "call.rtmp_broadcast_stopped").len() == 2
    });
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_stop_output")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count("call.recording_stopped"), 1, "{types:?}");
    assert_eq!(count("call.frame_recording_stopped"), 1, "{types:?}");
    assert_eq!(
        count("call.frame_recording_ready"),
        stills_before,
        "no still after the stop: {types:?}"
    );
    assert_eq!(count("call.recording_ready"), 1, "{types:?}");
    assert_eq!(
        count("call.recording_failed") + count("call.rtmp_broadcast_failed"),
        0,
        "{types:?}"
    );
    let stopped_at = |name: &str| {
        let event = of_type(&events, "call.rtmp_broadcast_stopped")
            .into_iter()
            .find(|e| e["name"] == name)
            .unwrap();
        time_of(&event["created_at"])
    };
    assert!(
        stopped_at("b") - stopped_at("a") > chrono::Duration::seconds(8),
        "b ran to the end of the call"
    );

    // What the viewers of each destination got, and the recording: each as long as it ran. The
    // pictures are compared (one encoder feeds all three, so they end where each was stopped);
    // the sound of a push runs on past its last picture by the encoder's latency.
    let last_picture = |file: &Path| video_times(file).last().copied().unwrap_or(0.0);
    let received = |key: &str| {
        let files = server.received(key);
        assert_eq!(files.len(), 1, "{key}: {files:?}");
        assert_eq!(decode_errors(&files[0]), "", "{key} decodes cleanly");
        let silent = seconds_without_sound(&files[0]);
        assert!(silent < 1.0, "{key}: {silent} s of pictures without sound");
        last_picture(&files[0])
    };
    let (first, second) = (received(keys[0]), received(keys[1]));
    let recorded = last_picture(&recording_file(of_type(&events, "call.recording_ready")[0]));
    assert!(
        first < recorded && recorded < second,
        "a {first} s, recording {recorded} s, b {second} s"
    );
    assert!(second > call_s - 4.0, "b {second} s of a {call_s} s call");
}

/// Runs the CLI against the fleet's broker: exit code and standard error.
fn cli(fleet: &Fleet, args: &[&str]) -> (Option<i32>, String) {
    let out = egress().args(args).envs(fleet.env()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn outputs_start_and_stop_during_the_call_and_the_job_ends_when_none_is_left() {
    let fleet = Fleet::new("start-output");
    let scratch = Scratch::new("fleet-start-output");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let graphs = scratch.dir.join("graphs");
    std::fs::create_dir_all(&graphs).unwrap();
    let graph_dir = graphs.to_str().unwrap().to_owned();
    let _worker = fleet.worker_with(&scratch, "a", 1.6, &[("EGRESS_GRAPH_DIR", graph_dir)]);
    let url = format!("rtmp://127.0.0.1:{}/live", server.port);
    let keys = ["sk-from-start-5e2a", "sk-added-later-91c4"];
    let call_s = 60.0;
    let job = json!({
        "egress_id": "eg_start_output",
        "call_cid": "default:start-output",
        "source": { "type": "synthetic", "duration_s": call_s, "participants": [
            { "user_id": "alice", "video": { "pattern": "ball" }, "audio": "sine" } ] },
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
        "rtmp": [ { "name": "a", "stream_url": url, "stream_key": keys[0], "quality": "360p" } ],
        "limits": { "idle_output_timeout_s": 3 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("hls and push a started", Duration::from_secs(30), |events| {
        !of_type(events, "call.hls_broadcasting_started").is_empty()
            && !of_type(events, "call.rtmp_broadcast_started").is_empty()
    });

    // A push added during the call, at the size of the encoder that runs.
    let section = scratch.dir.join("push-c.json");
    std::fs::write(
        &section,
        json!({ "name": "c", "stream_url": url, "stream_key": keys[1], "quality": "360p" }).to_string(),
    )
    .unwrap();
    let section = section.to_str().unwrap();
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "rtmp", section]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(keys[1]), "no stream key in the answer: {stderr}");
    fleet.wait_until("push c started", Duration::from_secs(20), |events| {
        of_type(events, "call.rtmp_broadcast_started")
            .iter()
            .any(|e| e["name"] == "c")
    });
    // The graph as push c joined it: its branch off the one 360p encoder that ran, no second one.
    let dot = std::fs::read_to_string(graphs.join("eg_start_output.dot")).unwrap();
    assert!(dot.contains("rtmp-c"), "the graph shows push c");
    let encoders = dot.lines().filter(|l| l.contains("GstX264Enc")).count();
    assert_eq!(encoders, 1, "one x264 for one size");
    assert!(!dot.contains(keys[1]), "no stream key in the graph");
    let status = || serde_json::from_slice::<Value>(&fleet.cli_ok(&["status", &id])).unwrap();
    let now = status();
    let names: Vec<&str> = now["rtmps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"], "{now}");
    assert_eq!(now["rtmps"][1]["stream_url"], url.as_str(), "{now}");
    assert!(!now.to_string().contains(keys[1]), "{now}");

    // What is refused says why, and changes nothing.
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "rtmp", section]);
    assert_eq!(code, Some(1), "a second push named c: {stderr}");
    assert!(
        stderr.contains("rtmp.name") && stderr.contains("\"c\""),
        "{stderr}"
    );
    let bad = scratch.dir.join("push-bad.json");
    std::fs::write(
        &bad,
        json!({ "name": "d", "stream_url": "http://127.0.0.1/live", "stream_key": "sk-bad-0f0f" })
            .to_string(),
    )
    .unwrap();
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "rtmp", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("rtmp[1].stream_url"),
        "the field is named: {stderr}"
    );
    assert!(!stderr.contains("sk-bad-0f0f"), "{stderr}");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "recording"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("recording"), "{stderr}");
    let (code, stderr) = cli(&fleet, &["pause", "eg_nobody", "--output", "recording"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no worker runs eg_nobody"), "{stderr}");

    // HLS stopped alone: its playlist ends and is stored, the recording goes on.
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "hls"]);
    assert_eq!(code, Some(0), "{stderr}");
    let events = fleet.wait_until("hls stopped", Duration::from_secs(15), |events| {
        !of_type(events, "call.hls_broadcasting_stopped").is_empty()
    });
    assert!(
        of_type(&events, "call.recording_ready").is_empty(),
        "the recording runs on: {events:#?}"
    );
    let master = of_type(&events, "call.hls_broadcasting_started")[0]["hls_playlist_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored_playlist = Path::new(master.strip_prefix("file://").unwrap())
        .with_file_name("360p")
        .join("index.m3u8");
    let playlist = std::fs::read_to_string(&stored_playlist).unwrap();
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "hls"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("hls is not running"), "{stderr}");
    let now = status();
    assert_eq!(now["hls"]["status"], "stopped", "{now}");
    assert_eq!(now["composite_recording"]["status"], "running", "{now}");

    // Push c has carried a while before it is stopped: nginx holds more than a second of it.
    poll("nginx holds 1.5 s of push c", Duration::from_secs(20), || {
        let held = server
            .received(keys[1])
            .first()
            .and_then(|f| {
                let out = std::process::Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-show_entries",
                        "format=duration",
                        "-of",
                        "csv=p=0",
                    ])
                    .arg(f)
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok()
            })
            .unwrap_or(0.0);
        if held >= 1.5 {
            Ok(())
        } else {
            Err(format!("{held} s"))
        }
    });
    // With every output stopped, the job leaves the call after idle_output_timeout_s.
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "rtmp"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "recording"]);
    assert_eq!(code, Some(0), "{stderr}");
    let stopped_at = Instant::now();
    poll("the job ends by itself", Duration::from_secs(20), || {
        match cli(&fleet, &["status", &id]) {
            (Some(1), stderr) if stderr.contains("no worker runs") => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let idle_s = stopped_at.elapsed().as_secs_f64();
    assert!(
        idle_s < 15.0,
        "ended {idle_s} s after the last stop, in a {call_s} s call"
    );
    let events = fleet.events();
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_start_output")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count("call.hls_broadcasting_stopped"), 1, "{types:?}");
    assert_eq!(count("call.rtmp_broadcast_stopped"), 2, "{types:?}");
    assert_eq!(count("call.recording_stopped"), 1, "{types:?}");
    assert_eq!(count("call.recording_ready"), 1, "{types:?}");
    let failures = types.iter().filter(|t| t.ends_with("_failed")).count();
    assert_eq!(failures, 0, "{types:?}");
    // Push c reached nginx, from its start to its stop.
    let files = server.received(keys[1]);
    assert_eq!(files.len(), 1, "{files:?}");
    let pushed = duration_s(&probe(&files[0]));
    assert!(pushed > 1.0, "push c carried {pushed} s");
    assert_eq!(decode_errors(&files[0]), "", "push c decodes");
    let silent = seconds_without_sound(&files[0]);
    assert!(silent < 1.0, "push c: {silent} s of pictures without sound");
}

/// The file behind a `file://` URL of local storage.
fn stored_file(url: &Value) -> std::path::PathBuf {
    std::path::PathBuf::from(url.as_str().unwrap().strip_prefix("file://").unwrap())
}

#[test]
fn frames_and_thumbnails_start_and_stop_during_the_call() {
    let fleet = Fleet::new("start-stills");
    let scratch = Scratch::new("fleet-start-stills");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let job = json!({
        "egress_id": "eg_start_stills",
        "call_cid": "default:start-stills",
        "source": { "type": "synthetic", "duration_s": 60.0, "participants": [
            { "user_id": "alice", "video": { "color": "#e02020" } },
            { "user_id": "bob", "video": { "color": "#2040e0" } } ] },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("recording started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let section = |name: &str, value: Value| {
        let path = scratch.dir.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let frames = section("frames.json", json!({ "capture_interval_in_seconds": 2 }));
    let asked_at = chrono::Utc::now();
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "frame_recording", &frames]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "frame_recording", &frames]);
    assert_eq!(code, Some(1), "a second start: {stderr}");
    assert!(stderr.contains("running already"), "{stderr}");
    let stills_of = |events: &[Value], user: &str| -> usize {
        of_type(events, "call.frame_recording_ready")
            .iter()
            .filter(|e| e["users"].get(user).is_some())
            .count()
    };
    fleet.wait_until("two stills of each", Duration::from_secs(20), |events| {
        stills_of(events, "alice") >= 2 && stills_of(events, "bob") >= 2
    });
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "frame_recording"]);
    assert_eq!(code, Some(0), "{stderr}");
    let stopped_at = chrono::Utc::now();
    let status = || serde_json::from_slice::<Value>(&fleet.cli_ok(&["status", &id])).unwrap();
    assert_eq!(status()["frame_recording"]["status"], "stopped");

    // Thumbnails from the composite, every 2 s; two of them prove time ran past the stop.
    let thumbnails = section("thumbnails.json", json!({ "interval_s": 2 }));
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "thumbnails", &thumbnails]);
    assert_eq!(code, Some(0), "{stderr}");
    let events = fleet.wait_until("two thumbnails", Duration::from_secs(20), |events| {
        of_type(events, "call.thumbnail_ready").len() >= 2
    });
    let now = status();
    let image_url = &now["thumbnails"]["image_url"];
    assert!(
        image_url
            .as_str()
            .unwrap()
            .ends_with("thumbnails/default_start-stills/thumbnail.jpg"),
        "{now}"
    );
    let thumbnail = probe(&stored_file(image_url));
    assert_eq!(thumbnail["streams"][0]["codec_name"], "mjpeg", "{thumbnail}");
    assert_eq!(thumbnail["streams"][0]["width"], 320, "{thumbnail}");
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "thumbnails"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "thumbnails"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");

    // Stills only between the start and the stop, each a picture of its participant.
    let stills = of_type(&events, "call.frame_recording_ready");
    for still in &stills {
        let at = time_of(&still["captured_at"]);
        assert!(
            at >= asked_at - chrono::Duration::milliseconds(500) && at <= stopped_at,
            "a still at {at}, outside {asked_at}..{stopped_at}"
        );
        let file = stored_file(&still["url"]);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[..2], [0xff, 0xd8], "{} is a JPEG", file.display());
    }
    let taken = stills.len();

    // Started again: stills again, from the new start.
    let again_at = chrono::Utc::now();
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "frame_recording", &frames]);
    assert_eq!(code, Some(0), "{stderr}");
    let events = fleet.wait_until("a still after the restart", Duration::from_secs(20), |events| {
        of_type(events, "call.frame_recording_ready")
            .iter()
            .any(|e| time_of(&e["captured_at"]) >= again_at)
    });
    let between = of_type(&events, "call.frame_recording_ready")
        .iter()
        .filter(|e| {
            let at = time_of(&e["captured_at"]);
            at > stopped_at && at < again_at
        })
        .count();
    assert_eq!(between, 0, "no still while stopped ({taken} before)");
    fleet.cli_ok(&["stop", &id]);
    let events = fleet.wait_until("recording stored", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_ready").is_empty()
            && of_type(events, "call.frame_recording_stopped").len() >= 2
    });
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_start_stills")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count("call.frame_recording_started"), 2, "{types:?}");
    assert_eq!(count("call.frame_recording_stopped"), 2, "{types:?}");
    assert_eq!(count("call.recording_stopped"), 1, "{types:?}");
    let failures = types.iter().filter(|t| t.ends_with("_failed")).count();
    assert_eq!(failures, 0, "{types:?}");
}

/// The recording part being written in a worker's spool, and how many seconds it holds (its
/// index is rewritten as it grows, so ffprobe reads it while it is written).
fn recorded_in_spool(scratch: &Scratch) -> Option<f64> {
    fn parts(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                parts(&path, found);
            } else if path.extension().is_some_and(|e| e == "mp4") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    parts(&scratch.out().join(".spool"), &mut found);
    let newest = found
        .into_iter()
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())?;
    let info = probe(&newest);
    info["format"]["duration"].as_str()?.parse().ok()
}

fn seconds_between(from: &Value, to: &Value) -> f64 {
    (time_of(&to["created_at"]) - time_of(&from["created_at"])).num_milliseconds() as f64 / 1000.0
}

#[test]
fn a_job_with_no_output_records_only_between_the_starts_and_stops_it_is_given_and_gets_hls_later() {
    let fleet = Fleet::new("no-output");
    let scratch = Scratch::new("fleet-no-output");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let red = "#e53935";
    let job = json!({
        "egress_id": "eg_no_output",
        "call_cid": "default:no-output",
        "source": { "type": "synthetic", "duration_s": 90, "participants": [
            { "user_id": "alice", "video": { "color": red }, "audio": "sine" } ] },
        "limits": { "idle_output_timeout_s": 6 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    let status = || serde_json::from_slice::<Value>(&fleet.cli_ok(&["status", &id])).unwrap();
    let idle = poll("the job runs", Duration::from_secs(30), || {
        match cli(&fleet, &["status", &id]) {
            (Some(0), _) => Ok(status()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let job_running = Instant::now();
    assert!(
        idle.get("composite_recording").is_none(),
        "nothing runs yet: {idle}"
    );
    assert_eq!(idle["broadcasting"], false, "{idle}");

    let section = scratch.dir.join("recording.json");
    std::fs::write(&section, json!({ "quality": "360p" }).to_string()).unwrap();
    let section = section.to_str().unwrap();
    fn recorded(count: usize, kind: &str) -> impl Fn(&[Value]) -> bool + '_ {
        move |events| of_type(events, kind).len() >= count
    }
    let mut spans = Vec::new();
    for (take, start_args) in [
        (1, vec!["start", &id, "--output", "recording", section]),
        (2, vec!["start", &id, "--output", "recording"]),
    ] {
        let (code, stderr) = cli(&fleet, &start_args);
        assert_eq!(code, Some(0), "start {take}: {stderr}");
        fleet.wait_until(
            "recording started",
            Duration::from_secs(10),
            recorded(take, "call.recording_started"),
        );
        assert_eq!(status()["composite_recording"]["status"], "running");
        let (code, stderr) = cli(&fleet, &["start", &id, "--output", "recording"]);
        assert_eq!(code, Some(1), "a second recording at once: {stderr}");
        assert!(stderr.contains("running already"), "{stderr}");
        poll(
            "the part holds 4 s",
            Duration::from_secs(20),
            || match recorded_in_spool(&scratch) {
                Some(s) if s >= 4.0 => Ok(()),
                seen => Err(format!("{seen:?}")),
            },
        );
        let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "recording"]);
        assert_eq!(code, Some(0), "stop {take}: {stderr}");
        let events = fleet.wait_until(
            "part stored",
            Duration::from_secs(20),
            recorded(take, "call.recording_ready"),
        );
        assert_eq!(status()["composite_recording"]["status"], "stopped");
        let span = seconds_between(
            of_type(&events, "call.recording_started")[take - 1],
            of_type(&events, "call.recording_stopped")[take - 1],
        );
        spans.push(span);
        if take == 1 {
            // Started again, it keeps the settings it had.
            let other = scratch.dir.join("recording-720p.json");
            std::fs::write(&other, json!({ "quality": "720p" }).to_string()).unwrap();
            let (code, stderr) = cli(
                &fleet,
                &["start", &id, "--output", "recording", other.to_str().unwrap()],
            );
            assert_eq!(code, Some(1), "{stderr}");
            assert!(stderr.contains("the settings it had"), "{stderr}");
        }
    }
    // HLS started after the recordings, from the same composite; then stopped alone.
    let hls_section = scratch.dir.join("hls.json");
    std::fs::write(
        &hls_section,
        json!({ "quality_tracks": ["360p"], "segment_duration_s": 2 }).to_string(),
    )
    .unwrap();
    let hls_section = hls_section.to_str().unwrap();
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "hls", hls_section]);
    assert_eq!(code, Some(0), "start hls: {stderr}");
    let events = fleet.wait_until("hls started", Duration::from_secs(20), |events| {
        !of_type(events, "call.hls_broadcasting_started").is_empty()
    });
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "hls", hls_section]);
    assert_eq!(code, Some(1), "a second hls: {stderr}");
    assert!(stderr.contains("hls is running already"), "{stderr}");
    assert_eq!(status()["hls"]["status"], "running");
    let master = of_type(&events, "call.hls_broadcasting_started")[0]["hls_playlist_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored_playlist = Path::new(master.strip_prefix("file://").unwrap())
        .with_file_name("360p")
        .join("index.m3u8");
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "hls"]);
    assert_eq!(code, Some(0), "stop hls: {stderr}");
    fleet.wait_until("hls stopped", Duration::from_secs(20), |events| {
        !of_type(events, "call.hls_broadcasting_stopped").is_empty()
    });
    let playlist = std::fs::read_to_string(&stored_playlist).unwrap();
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
    assert!(playlist.contains(".ts"), "{playlist}");
    assert_eq!(decode_errors(&stored_playlist), "", "the broadcast decodes");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "hls", hls_section]);
    assert_eq!(code, Some(1), "hls again: {stderr}");
    assert!(stderr.contains("does not start again"), "{stderr}");
    poll("the job ends by itself", Duration::from_secs(30), || {
        match cli(&fleet, &["status", &id]) {
            (Some(1), stderr) if stderr.contains("no worker runs") => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let job_s = job_running.elapsed().as_secs_f64();
    let events = fleet.events();
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e["egress_id"] == "eg_no_output")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "call.recording_started",
            "call.recording_stopped",
            "call.recording_ready",
            "call.recording_started",
            "call.recording_stopped",
            "call.recording_ready",
            "call.hls_broadcasting_started",
            "call.hls_broadcasting_stopped"
        ]
    );
    let ready = of_type(&events, "call.recording_ready");
    let mut recorded_s = 0.0;
    for (part, span) in ready.iter().zip(&spans) {
        let file = recording_file(part);
        assert_eq!(decode_errors(&file), "", "{} decodes", file.display());
        let info = probe(&file);
        let duration = duration_s(&info);
        // Each part holds the call from its start to its stop, not from the call's start.
        assert!(
            (duration - span).abs() < 1.0,
            "{duration} s in a part started {span} s before its stop"
        );
        let video = &streams_of(&info, "video")[0];
        assert_eq!(
            (video["width"].as_u64(), video["height"].as_u64()),
            (Some(640), Some(360))
        );
        assert_eq!(streams_of(&info, "audio").len(), 1, "sound in {}", file.display());
        let middle = Frame::at(&file, duration / 2.0, 640, 360).colour_at(320, 180);
        assert!(close(middle, hex_rgb(red)), "alice in the part: {middle:?}");
        recorded_s += duration;
    }
    let first_end = time_of(&ready[0]["call_recording"]["end_time"]);
    let second_start = time_of(&ready[1]["call_recording"]["start_time"]);
    assert!(first_end <= second_start, "the parts do not overlap");
    assert!(
        recorded_s < job_s - 4.0,
        "{recorded_s} s recorded in a job of {job_s} s: nothing before, between or after the takes"
    );
}

/// CPU seconds a process has used so far (user and system, from /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Figures for `scripts/bench.sh`: the worker's CPU for a 30 s call whose HLS runs from the
/// start, against the same call whose HLS is started 10 s in (it joins the recording's
/// composite and encoder, so only its muxing is missing for those 10 s). Three runs of each,
/// alternated, on one worker.
#[test]
#[ignore]
fn bench_hls_started_during_the_call() {
    let fleet = Fleet::new("bench-hls-start");
    let scratch = Scratch::new("fleet-bench-hls-start");
    let worker = fleet.worker(&scratch, "a", 1.6);
    let pid = worker.child.id();
    let hls = json!({ "quality_tracks": ["360p"], "segment_duration_s": 2 });
    let section = scratch.dir.join("hls.json");
    std::fs::write(&section, hls.to_string()).unwrap();
    let (mut from_start, mut started_late) = (Vec::new(), Vec::new());
    for run in 0..6 {
        let late = run % 2 == 1;
        let egress_id = format!("eg_bench_hls_{run}");
        let mut job = json!({
            "egress_id": egress_id,
            "call_cid": format!("default:bench-hls-{run}"),
            "source": { "type": "synthetic", "duration_s": 30, "participants": [
                { "user_id": "alice", "video": { "pattern": "ball" }, "audio": "sine" },
                { "user_id": "bob", "video": { "pattern": "smpte" }, "audio": "sine" } ] },
            "recording": { "quality": "360p" },
            "storage": { "storage_type": "local", "path": "bench/" }
        });
        if !late {
            job["hls"] = hls.clone();
        }
        let before = cpu_seconds(pid);
        let id = fleet.submit(&scratch, &job);
        let mine = |events: &[Value], kind: &str| {
            of_type(events, kind)
                .iter()
                .filter(|e| e["egress_id"] == egress_id.as_str())
                .count()
        };
        let events = fleet.wait_until("recording started", Duration::from_secs(30), |events| {
            mine(events, "call.recording_started") == 1
        });
        if late {
            // A benchmark, not a test: 10 s of the call by the clock from the started event.
            // Probing the part being written meanwhile would load the machine whose CPU is
            // measured, in this arm only.
            let started = time_of(&of_type(&events, "call.recording_started").last().unwrap()["created_at"]);
            let wait = started + chrono::Duration::seconds(10) - chrono::Utc::now();
            std::thread::sleep(wait.to_std().unwrap_or_default());
            fleet.cli_ok(&["start", &id, "--output", "hls", section.to_str().unwrap()]);
        }
        fleet.wait_until("the job ended", Duration::from_secs(90), |events| {
            mine(events, "call.recording_ready") == 1 && mine(events, "call.hls_broadcasting_stopped") == 1
        });
        let used = cpu_seconds(pid) - before;
        match late {
            false => from_start.push(used),
            true => started_late.push(used),
        }
    }
    let (early, _) = median_and_max(from_start.clone());
    let (late, _) = median_and_max(started_late.clone());
    println!(
        "control: worker CPU for a 30 s call, HLS from the start: median {early:.2} s {from_start:?}; HLS started at 10 s: median {late:.2} s {started_late:?}; ratio {:.3}",
        late / early
    );
}

/// Median and largest of some seconds.
fn median_and_max(mut seconds: Vec<f64>) -> (f64, f64) {
    seconds.sort_by(f64::total_cmp);
    (seconds[seconds.len() / 2], *seconds.last().unwrap())
}

/// Figures for `scripts/bench.sh`: from the control command to the event that proves it took
/// effect, for a push started and stopped ten times during one call, then HLS and the
/// recording stopped alone.
#[test]
#[ignore]
fn bench_control_to_effect() {
    let fleet = Fleet::new("bench-control");
    let scratch = Scratch::new("fleet-bench-control");
    let server = RtmpServer::new(scratch.dir.join("nginx"));
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let url = format!("rtmp://127.0.0.1:{}/live", server.port);
    let job = json!({
        "egress_id": "eg_bench_control",
        "call_cid": "default:bench-control",
        "source": { "type": "synthetic", "duration_s": 300, "participants": [
            { "user_id": "alice", "video": { "pattern": "ball" }, "audio": "sine" } ] },
        "recording": { "quality": "360p" },
        "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
        "rtmp": [ { "name": "a", "stream_url": url, "stream_key": "sk-bench-a-0001", "quality": "360p" } ],
        "storage": { "storage_type": "local", "path": "bench/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("started", Duration::from_secs(30), |events| {
        !of_type(events, "call.hls_broadcasting_started").is_empty()
            && !of_type(events, "call.rtmp_broadcast_started").is_empty()
    });
    let section = scratch.dir.join("push.json");
    let count_of = |kind: &str, name: &str| {
        of_type(&fleet.events(), kind)
            .iter()
            .filter(|e| e["name"] == name)
            .count()
    };
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for n in 0..10 {
        let key = format!("sk-bench-c-{n:04}");
        std::fs::write(
            &section,
            json!({ "name": "c", "stream_url": url, "stream_key": key, "quality": "360p" }).to_string(),
        )
        .unwrap();
        let before = count_of("call.rtmp_broadcast_started", "c");
        let asked = Instant::now();
        fleet.cli_ok(&["start", &id, "--output", "rtmp", section.to_str().unwrap()]);
        fleet.wait_until("push c started", Duration::from_secs(20), |events| {
            of_type(events, "call.rtmp_broadcast_started")
                .iter()
                .filter(|e| e["name"] == "c")
                .count()
                > before
        });
        starts.push(asked.elapsed().as_secs_f64());
        let before = count_of("call.rtmp_broadcast_stopped", "c");
        let asked = Instant::now();
        fleet.cli_ok(&["stop", &id, "--output", "rtmp:c"]);
        fleet.wait_until("push c stopped", Duration::from_secs(20), |events| {
            of_type(events, "call.rtmp_broadcast_stopped")
                .iter()
                .filter(|e| e["name"] == "c")
                .count()
                > before
        });
        stops.push(asked.elapsed().as_secs_f64());
    }
    // The recording stopped and started again: five times while HLS keeps the shared encoder's
    // keyframe interval, then ten times once HLS has stopped (a keyframe is asked for at once).
    let count = |kind: &str| of_type(&fleet.events(), kind).len();
    let restart = |with_recording_ready: bool| {
        let before = count("call.recording_stopped");
        let asked = Instant::now();
        fleet.cli_ok(&["stop", &id, "--output", "recording"]);
        fleet.wait_until("recording stopped", Duration::from_secs(20), |events| {
            of_type(events, "call.recording_stopped").len() > before
        });
        let stop = asked.elapsed().as_secs_f64();
        let ready = with_recording_ready.then(|| {
            fleet.wait_until("recording stored", Duration::from_secs(20), |events| {
                !of_type(events, "call.recording_ready").is_empty()
            });
            asked.elapsed().as_secs_f64()
        });
        let before = count("call.recording_started");
        let asked = Instant::now();
        fleet.cli_ok(&["start", &id, "--output", "recording"]);
        fleet.wait_until("recording started", Duration::from_secs(20), |events| {
            of_type(events, "call.recording_started").len() > before
        });
        (asked.elapsed().as_secs_f64(), stop, ready)
    };
    let mut recording_stops = Vec::new();
    let mut starts_beside_hls = Vec::new();
    let mut recording_ready = 0.0;
    for n in 0..5 {
        let (start, stop, ready) = restart(n == 0);
        starts_beside_hls.push(start);
        recording_stops.push(stop);
        recording_ready = ready.unwrap_or(recording_ready);
    }
    let asked = Instant::now();
    fleet.cli_ok(&["stop", &id, "--output", "hls"]);
    fleet.wait_until("hls stopped", Duration::from_secs(20), |events| {
        !of_type(events, "call.hls_broadcasting_stopped").is_empty()
    });
    let hls_stop = asked.elapsed().as_secs_f64();
    let mut recording_starts = Vec::new();
    for _ in 0..10 {
        let (start, stop, _) = restart(false);
        recording_starts.push(start);
        recording_stops.push(stop);
    }
    fleet.cli_ok(&["stop", &id]);
    let (median, max) = median_and_max(starts);
    println!(
        "control: rtmp start to call.rtmp_broadcast_started, 10 tries: median {median:.2} s, max {max:.2} s"
    );
    let (median, max) = median_and_max(stops);
    println!(
        "control: rtmp stop to call.rtmp_broadcast_stopped, 10 tries: median {median:.2} s, max {max:.2} s"
    );
    println!(
        "control: hls stop to call.hls_broadcasting_stopped (playlists ended and stored): {hls_stop:.2} s"
    );
    let (median, max) = median_and_max(starts_beside_hls);
    println!(
        "control: recording start to call.recording_started beside HLS (next scheduled keyframe, 2 s apart), 5 tries: median {median:.2} s, max {max:.2} s"
    );
    let (median, max) = median_and_max(recording_starts);
    println!(
        "control: recording start to call.recording_started without HLS (keyframe asked at once), 10 tries: median {median:.2} s, max {max:.2} s"
    );
    let (median, max) = median_and_max(recording_stops);
    println!(
        "control: recording stop to call.recording_stopped, 15 tries: median {median:.2} s, max {max:.2} s"
    );
    println!("control: recording stop to call.recording_ready (part stored): {recording_ready:.2} s");
}

/// A colour `0xRRGGBB` as bytes.
fn rgb(colour: u32) -> [u8; 3] {
    [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8]
}

#[test]
fn a_janus_call_recorded_twice_by_control_while_publishers_come_and_go_gives_two_whole_parts() {
    use publisher::{Publisher, Publishing};
    const RED: u32 = 0xd03030;
    const GREEN: u32 = 0x30a040;
    const BLUE: u32 = 0x3050d0;
    let bed = bed::JanusBed::start();
    let fleet = Fleet::new("janus-twice");
    let scratch = Scratch::new("fleet-janus-twice");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let alice = Publisher::join(&bed.url, 1234, Publishing::camera("alice", RED, 400.0));
    alice.wait_published(Duration::from_secs(10));
    // No output at the start: the job joins the call and waits.
    let job = json!({
        "egress_id": "eg_janus_twice",
        "call_cid": "default:janus-twice",
        "source": { "type": "janus", "url": bed.url, "room": 1234 },
        "limits": { "idle_output_timeout_s": 120, "max_duration_seconds": 150 },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    poll("the job runs", Duration::from_secs(20), || {
        match cli(&fleet, &["status", &id]) {
            (Some(0), _) => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let section = scratch.dir.join("recording.json");
    std::fs::write(&section, json!({ "quality": "360p" }).to_string()).unwrap();
    let section = section.to_str().unwrap().to_owned();
    let ready = |events: &[Value]| of_type(events, "call.recording_ready").len();

    // First part: alice, then bob joins.
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "recording", &section]);
    assert_eq!(code, Some(0), "{stderr}");
    fleet.wait_until("recording started", Duration::from_secs(20), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let bob = Publisher::join(&bed.url, 1234, Publishing::camera("bob", GREEN, 700.0));
    bob.wait_published(Duration::from_secs(10));
    poll(
        "bob recorded for a while",
        Duration::from_secs(30),
        || match recorded_in_spool(&scratch) {
            Some(s) if s >= 6.0 => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "recording"]);
    assert_eq!(code, Some(0), "{stderr}");
    fleet.wait_until("first part stored", Duration::from_secs(20), |events| {
        ready(events) == 1
    });

    // Second part, started again: bob has left, carol has come.
    bob.leave();
    let carol = Publisher::join(&bed.url, 1234, Publishing::camera("carol", BLUE, 1000.0));
    carol.wait_published(Duration::from_secs(10));
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "recording"]);
    assert_eq!(code, Some(0), "{stderr}");
    fleet.wait_until("recording started again", Duration::from_secs(20), |events| {
        of_type(events, "call.recording_started").len() == 2
    });
    poll("carol recorded for a while", Duration::from_secs(30), || {
        let events = fleet.events();
        let second_open = ready(&events) == 1;
        match recorded_in_spool(&scratch) {
            Some(s) if second_open && s >= 5.0 => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "recording"]);
    assert_eq!(code, Some(0), "{stderr}");
    let events = fleet.wait_until("second part stored", Duration::from_secs(20), |events| {
        ready(events) == 2
    });
    fleet.cli_ok(&["stop", &id]);
    drop((alice, carol));

    let parts: Vec<std::path::PathBuf> = of_type(&events, "call.recording_ready")
        .iter()
        .map(|e| recording_file(e))
        .collect();
    let tiles = |file: &Path, at_s: f64, colours: &[u32], what: &str| {
        let frame = Frame::at(file, at_s, 640, 360);
        for colour in colours {
            let share = share_of(&frame, rgb(*colour));
            assert!(share > 0.05, "{what}: {colour:06x} covers {share:.3} at {at_s} s");
        }
    };
    let first = duration_s(&probe(&parts[0]));
    assert!(first >= 5.5, "first part: {first} s");
    assert_eq!(decode_errors(&parts[0]), "", "the first part decodes");
    tiles(&parts[0], first - 1.0, &[RED, GREEN], "first part, at its end");
    let second = duration_s(&probe(&parts[1]));
    assert!(second >= 4.5, "second part: {second} s");
    assert_eq!(decode_errors(&parts[1]), "", "the second part decodes");
    tiles(&parts[1], second - 1.0, &[RED, BLUE], "second part, at its end");
    let late = Frame::at(&parts[1], second - 1.0, 640, 360);
    assert!(share_of(&late, rgb(GREEN)) < 0.01, "bob has left the second part");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "call.recording_stopped").count(),
        2,
        "{types:?}"
    );
    assert!(!types.iter().any(|t| t.ends_with("_failed")), "{types:?}");
}

#[test]
fn an_individual_recording_starts_and_stops_during_the_call_and_starts_again() {
    let fleet = Fleet::new("start-individual");
    let scratch = Scratch::new("fleet-start-individual");
    let _worker = fleet.worker(&scratch, "a", 1.6);
    let job = json!({
        "egress_id": "eg_start_individual",
        "call_cid": "default:start-individual",
        "source": { "type": "synthetic", "duration_s": 40.0, "participants": [
            { "user_id": "alice", "video": { "color": "#e02020" }, "audio": "sine" },
            { "user_id": "bob", "video": { "color": "#2040e0" }, "audio": "sine" } ] },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("recording started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let section = scratch.dir.join("individual.json");
    std::fs::write(&section, json!({ "quality": "360p" }).to_string()).unwrap();
    let section = section.to_str().unwrap().to_owned();
    let individual = |events: &[Value], kind: &str| -> usize {
        of_type(events, kind)
            .iter()
            .filter(|e| e["recording_type"] == "individual")
            .count()
    };
    let spool = scratch.out().join(".spool").join("eg_start_individual");
    let mut stays = Vec::new();
    for round in 1..=2 {
        // A part is dated to its first frame: a stage starts on the frame being mixed when the
        // command arrives, up to a few frames before it.
        let started_at = chrono::Utc::now() - chrono::Duration::milliseconds(200);
        let (code, stderr) = cli(
            &fleet,
            &["start", &id, "--output", "individual_recording", &section],
        );
        assert_eq!(code, Some(0), "start {round}: {stderr}");
        if round == 1 {
            let (code, stderr) = cli(
                &fleet,
                &["start", &id, "--output", "individual_recording", &section],
            );
            assert_eq!(code, Some(1), "a second start: {stderr}");
            assert!(stderr.contains("running already"), "{stderr}");
        }
        fleet.wait_until("individual started", Duration::from_secs(15), |events| {
            individual(events, "call.recording_started") == round
        });
        // Each participant's open file plays 3 s before the stop.
        poll(
            "two individual files playing 3 s",
            Duration::from_secs(30),
            || {
                let seen: Vec<f64> = individual_parts_playing(&spool)
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect();
                match seen.iter().filter(|&&s| s >= 3.0).count() {
                    2 => Ok(()),
                    _ => Err(format!("{seen:?} in {}", spool.display())),
                }
            },
        );
        let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "individual_recording"]);
        assert_eq!(code, Some(0), "stop {round}: {stderr}");
        let stopped_at = chrono::Utc::now();
        fleet.wait_until("both files stored", Duration::from_secs(15), |events| {
            individual(events, "call.recording_ready") == 2 * round
        });
        stays.push((started_at, stopped_at));
    }
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "individual_recording"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
    let events = fleet.wait_until("the end of the call", Duration::from_secs(60), |events| {
        of_type(events, "call.recording_ready")
            .iter()
            .any(|e| e["recording_type"] == "composite")
    });
    assert_eq!(
        individual(&events, "call.recording_stopped"),
        2,
        "one stop per round"
    );
    assert_eq!(individual(&events, "call.recording_failed"), 0);
    let files: Vec<&Value> = of_type(&events, "call.recording_ready")
        .into_iter()
        .filter(|e| e["recording_type"] == "individual")
        .collect();
    assert_eq!(files.len(), 4, "a file per participant and round: {files:#?}");
    for file in files {
        let path = stored_file(&file["call_recording"]["url"]);
        let name = path.display().to_string();
        assert_eq!(decode_errors(&path), "", "{name} decodes");
        let held = duration_s(&probe(&path));
        let started = time_of(&file["call_recording"]["start_time"]);
        let (asked, stopped) = stays
            .iter()
            .copied()
            .find(|(asked, stopped)| started >= *asked && started <= *stopped)
            .unwrap_or_else(|| panic!("{name} starts at {started}, in no round: {stays:?}"));
        let round_s = (stopped - asked).num_milliseconds() as f64 / 1000.0;
        assert!(
            held >= 3.0 && held <= round_s + 0.5,
            "{name}: {held} s in a round of {round_s} s"
        );
        let colour = match file["call_recording"]["user_id"].as_str() {
            Some("alice") => hex_rgb("#e02020"),
            _ => hex_rgb("#2040e0"),
        };
        let frames = frames_between(&path, 0.5, held - 0.3, 64, 36);
        let showing = frames.iter().filter(|f| share_of(f, colour) >= 0.5).count();
        assert!(
            showing * 10 >= frames.len() * 9,
            "{name}: {showing} of {} frames",
            frames.len()
        );
    }
}

/// Raw recording started and stopped during the call, then started again: the first holds each
/// encoded track from its start (a keyframe asked of the sender) to the stop, with a manifest
/// counted from its own start that renders; the stop is announced after its files; the second
/// is a raw recording of its own beside it (`SESSION_2`).
#[test]
fn a_raw_recording_starts_and_stops_during_the_call_and_starts_again() {
    let fleet = Fleet::new("start-raw");
    let scratch = Scratch::new("fleet-start-raw");
    for (name, colour, tone) in [("alice", "#e53935", 440), ("bob", "#1e88e5", 660)] {
        vp8_opus_clips(&scratch.dir, name, colour, tone);
        // A camera with a keyframe a second: a raw file started during the call opens on the
        // next one. (A synthetic sender answers a key-unit request from another encoding, which
        // the deltas after it do not follow; the Janus tests see a real sender's answer.)
        let made = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("color=c=0x{}:s=320x180:r=30:d=20", &colour[1..]))
            .args([
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-g",
                "30",
            ])
            .arg(scratch.dir.join(format!("{name}.webm")))
            .status()
            .unwrap();
        assert!(made.success(), "ffmpeg made {name}.webm");
    }
    let media = [
        ("EGRESS_ALLOW_LOCAL_MEDIA", "true".to_owned()),
        ("EGRESS_MEDIA_DIR", scratch.dir.display().to_string()),
    ];
    let _worker = fleet.worker_with(&scratch, "a", 1.6, &media);
    let person = |name: &str| {
        json!({ "user_id": name,
                "video": { "clip": format!("{name}.webm") },
                "audio": { "file": format!("{name}-voice.webm") } })
    };
    let job = json!({
        "egress_id": "eg_start_raw",
        "call_cid": "default:start-raw",
        "session_id": "se_start_raw",
        "source": { "type": "synthetic", "duration_s": 18.0, "participants": [person("alice"), person("bob")] },
        "recording": { "quality": "360p" },
        "storage": { "storage_type": "local", "path": "fleet/" }
    });
    let id = fleet.submit(&scratch, &job);
    fleet.wait_until("recording started", Duration::from_secs(30), |events| {
        !of_type(events, "call.recording_started").is_empty()
    });
    let raw = |events: &[Value], kind: &str| -> usize {
        of_type(events, kind)
            .iter()
            .filter(|e| e["recording_type"] == "raw")
            .count()
    };
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "raw_recording"]);
    assert_eq!(code, Some(0), "start: {stderr}");
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "raw_recording"]);
    assert_eq!(code, Some(1), "a second start: {stderr}");
    assert!(stderr.contains("running already"), "{stderr}");
    fleet.wait_until("raw started", Duration::from_secs(15), |events| {
        raw(events, "call.recording_started") == 1
    });
    // Both cameras' files hold 2 s before the stop.
    let spool = scratch.out().join(".spool").join("eg_start_raw").join("raw");
    poll("two camera files of 60 frames", Duration::from_secs(20), || {
        let frames: Vec<usize> = ["alice", "bob"]
            .iter()
            .map(|u| packets(&spool.join(format!("raw_{u}_camera.webm")), "v").len())
            .collect();
        match frames.iter().all(|&n| n >= 60) {
            true => Ok(()),
            false => Err(format!("{frames:?}")),
        }
    });
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "raw_recording"]);
    assert_eq!(code, Some(0), "stop: {stderr}");
    let events = fleet.wait_until("raw stopped", Duration::from_secs(20), |events| {
        raw(events, "call.recording_stopped") == 1
    });
    let first: Vec<&Value> = of_type(&events, "call.recording_ready")
        .into_iter()
        .filter(|e| e["recording_type"] == "raw")
        .collect();
    assert_eq!(
        announced_names(&first),
        [
            "manifest.json",
            "raw_alice_camera.webm",
            "raw_alice_microphone.webm",
            "raw_bob_camera.webm",
            "raw_bob_microphone.webm"
        ],
        "each track's file and the manifest before the stop is announced"
    );
    let (code, stderr) = cli(&fleet, &["stop", &id, "--output", "raw_recording"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
    for file in first
        .iter()
        .filter(|e| e["call_recording"]["filename"] != "manifest.json")
    {
        let path = stored_file(&file["call_recording"]["url"]);
        let kind = if path.to_string_lossy().contains("camera") {
            "v"
        } else {
            "a"
        };
        assert_eq!(decode_errors(&path), "", "{} decodes", path.display());
        if kind == "v" {
            let first = packets(&path, "v").first().copied();
            assert!(
                first.is_some_and(|(_, key)| key),
                "{} starts on a keyframe",
                path.display()
            );
        }
    }
    let manifest_path = first
        .iter()
        .find(|e| e["call_recording"]["filename"] == "manifest.json")
        .map(|e| stored_file(&e["call_recording"]["url"]))
        .unwrap();
    assert!(
        manifest_path.to_string_lossy().contains("/se_start_raw/"),
        "{}",
        manifest_path.display()
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let start = manifest["start_s"].as_f64().unwrap();
    assert!(start > 0.5, "started during the call: {manifest:#}");
    for stay in manifest["participants"].as_array().unwrap() {
        assert_eq!(
            stay["joined_at_s"].as_f64(),
            Some(start),
            "in the call from its start: {manifest:#}"
        );
    }
    let file = render_manifest(&manifest_path, &scratch.dir.join("rendered"), &[]);
    let seconds = duration_s(&probe(&file));
    let held = manifest["duration_s"].as_f64().unwrap() - start;
    assert!((seconds - held).abs() <= 0.2, "renders {seconds} s of {held} s");
    let frame = Frame::at(&file, seconds / 2.0, 640, 360);
    for colour in ["#e53935", "#1e88e5"] {
        assert!(
            share_of(&frame, hex_rgb(colour)) >= 0.05,
            "the render shows {colour}"
        );
    }

    // Started again: a second raw recording of its own.
    let (code, stderr) = cli(&fleet, &["start", &id, "--output", "raw_recording"]);
    assert_eq!(code, Some(0), "start again: {stderr}");
    let events = fleet.wait_until("the end of the call", Duration::from_secs(60), |events| {
        raw(events, "call.recording_stopped") == 2
            && of_type(events, "call.recording_ready")
                .iter()
                .any(|e| e["recording_type"] == "composite")
    });
    assert_eq!(raw(&events, "call.recording_started"), 2);
    assert_eq!(raw(&events, "call.recording_failed"), 0);
    let second: Vec<std::path::PathBuf> = of_type(&events, "call.recording_ready")
        .into_iter()
        .filter(|e| e["recording_type"] == "raw")
        .map(|e| stored_file(&e["call_recording"]["url"]))
        .filter(|p| p.to_string_lossy().contains("/se_start_raw_2/"))
        .collect();
    assert_eq!(second.len(), 5, "four files and a manifest: {second:?}");
}

/// How long the outage tests keep a dependency away (`EGRESS_TEST_OUTAGE_S`; the issue's
/// figures were taken with 180 s for RabbitMQ and 120 s for a webhook).
fn outage(default_s: u64) -> Duration {
    let seconds = std::env::var("EGRESS_TEST_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_s);
    Duration::from_secs(seconds)
}

/// The events a worker printed on its stdout (`events_stdout`): what it emitted.
fn printed_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    // Only whole lines: the worker may be writing the last one.
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
    parse_json_lines(&text[..whole])
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `f` on a fresh connection to the broker (the fleet's own dies with a broker restart).
fn with_channel<T>(f: impl AsyncFnOnce(&lapin::Channel) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let out = f(&channel).await;
        let _ = connection.close(200, "done".into()).await;
        out
    })
}

/// A durable queue of the test's own bound to every event of the fleet: it keeps what the
/// exchange routes to it through a broker restart and while nobody reads it.
fn durable_event_queue(fleet: &Fleet) -> String {
    let queue = format!("{}.count", fleet.prefix);
    let exchange = format!("{}.events", fleet.prefix);
    with_channel(async |channel| {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    });
    queue
}

/// Takes every message waiting on `queue` (acked), each with its message id.
fn take_all(queue: &str) -> Vec<(Option<String>, Value)> {
    with_channel(async |channel| {
        let mut taken = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let id = message
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string());
            taken.push((id, serde_json::from_slice(&message.delivery.data).unwrap()));
        }
        taken
    })
}

#[test]
fn events_of_jobs_ended_in_a_broker_outage_arrive_once_though_the_worker_died_in_it() {
    const CALL_S: f64 = 6.0;
    let mut fleet = Fleet::using(
        "outage",
        BrokerUse::Alone(BROKER.write().unwrap_or_else(|p| p.into_inner())),
    );
    let scratch = Scratch::new("fleet-outage");
    let counted = durable_event_queue(&fleet);
    let config = scratch.dir.join("egress.toml");
    std::fs::write(&config, "[worker]\nevents_stdout = true\n").unwrap();
    let start = |name: &str| {
        let log = scratch.dir.join(format!("{name}.log"));
        let mut command = egress();
        command
            .args(["worker", "--config"])
            .arg(&config)
            .envs(fleet.env())
            .env("EGRESS_CPU_BUDGET", "1.6")
            .env("EGRESS_OUT_DIR", scratch.out())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(scratch.dir.join(format!("{name}.events"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        WorkerProcess::spawn(command, log)
    };
    let mut a = start("a");
    a.wait_ready(Duration::from_secs(20));
    let ids: Vec<String> = (0..3)
        .map(|i| {
            fleet.submit(
                &scratch,
                &short_call(&format!("eg_outage_{i}"), CALL_S, "#43a047"),
            )
        })
        .collect();
    let mut received = Vec::new();
    poll("three recordings started", Duration::from_secs(60), || {
        received.extend(take_all(&counted));
        let started = received
            .iter()
            .filter(|(_, e)| e["type"] == "call.recording_started")
            .count();
        match started {
            3 => Ok(()),
            _ => Err(format!("{started} started")),
        }
    });

    rabbitmqctl(&["stop_app"]);
    let outage_began = Instant::now();
    let a_events = scratch.dir.join("a.events");
    let mut highest_rss = 0f64;
    poll(
        "the three recordings stored in the outage",
        Duration::from_secs(90),
        || {
            highest_rss = highest_rss.max(rss_mib(a.child.id()));
            let ready = of_type(&printed_events(&a_events), "call.recording_ready").len();
            match ready {
                3 => Ok(()),
                _ => Err(format!("{ready} ready")),
            }
        },
    );
    // The worker dies with every end of job unannounced and unacked; one on the same spool
    // takes its place while the broker is still away.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let b = start("b");
    let b_pid = b.child.id();
    poll(
        "the outage lasts its length",
        outage(10) + Duration::from_secs(5),
        || {
            highest_rss = highest_rss.max(rss_mib(b_pid));
            match outage_began.elapsed() >= outage(10) {
                true => Ok(()),
                false => Err("the broker is still away".into()),
            }
        },
    );
    rabbitmqctl(&["start_app"]);
    wait_for_port(5672, Duration::from_secs(60));
    let broker = fleet.take_broker();
    drop(fleet);
    let fleet = Fleet::using("outage", broker);

    let emitted: Vec<Value> = printed_events(&a_events)
        .into_iter()
        .chain(printed_events(&scratch.dir.join("b.events")))
        .collect();
    let emitted_ids: std::collections::BTreeSet<String> = emitted
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emitted_ids.len(), emitted.len(), "event ids are unique");
    poll("every event delivered", Duration::from_secs(90), || {
        received.extend(take_all(&counted));
        let got: std::collections::BTreeSet<String> = received
            .iter()
            .map(|(_, e)| e["event_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        match emitted_ids.is_subset(&got) {
            true => Ok(()),
            false => Err(format!(
                "missing: {:?}",
                emitted_ids.difference(&got).collect::<Vec<_>>()
            )),
        }
    });
    // The jobs offered again to b are settled as done, not run again.
    fleet.wait_acked("the jobs offered again settled");
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for (message_id, event) in &received {
        let id = event["event_id"].as_str().unwrap().to_owned();
        assert_eq!(message_id.as_deref(), Some(id.as_str()), "message id = event id");
        *per_id.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "each event once: {duplicates:?}");
    assert_eq!(
        per_id.len(),
        emitted.len(),
        "nothing but what was emitted: {received:#?}"
    );
    for id in &ids {
        let of_job = |kind: &str| {
            emitted
                .iter()
                .filter(|e| e["egress_id"] == id.as_str() && e["type"] == kind)
                .count()
        };
        assert_eq!(
            (of_job("call.recording_started"), of_job("call.recording_ready")),
            (1, 1),
            "{id} ran once and was stored once"
        );
    }
    let with_outage: Vec<&Value> = emitted
        .iter()
        .filter(|e| e["type"] != "call.recording_started")
        .collect();
    println!(
        "outage {:.0} s: {} of {} events delivered afterwards ({} ended in the outage); worker RSS at most {highest_rss:.0} MiB",
        outage(10).as_secs_f64(),
        per_id.len(),
        emitted.len(),
        with_outage.len()
    );
    assert!(
        highest_rss < 600.0,
        "the worker stayed bounded: {highest_rss} MiB"
    );
    with_channel(async |channel| {
        let _ = channel
            .queue_delete(counted.as_str().into(), QueueDeleteOptions::default())
            .await;
    });
    drop(b);
}

#[test]
fn a_webhook_away_for_a_while_gets_every_event_once_it_is_back() {
    let fleet = Fleet::new("hook-outage");
    let scratch = Scratch::new("fleet-hook-outage");
    // A port nobody listens on until the endpoint comes back.
    let port = free_port();
    let config = scratch.dir.join("egress.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\napi_key = \"key-3\"\napi_secret = \"hook-secret-3\"\n"
        ),
    )
    .unwrap();
    let log = scratch.dir.join("worker.log");
    let mut worker = WorkerProcess::spawn(
        {
            let mut command = egress();
            command
                .args(["worker", "--config"])
                .arg(&config)
                .envs(fleet.env())
                .env("EGRESS_OUT_DIR", scratch.out())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            command
        },
        log,
    );
    worker.wait_ready(Duration::from_secs(20));
    let went_away = Instant::now();
    let id = fleet.submit(&scratch, &short_call("eg_hook_outage", 2.0, "#6d4c41"));
    let events = fleet.wait_until("the job done", Duration::from_secs(60), |events| {
        !of_type(events, "call.recording_ready").is_empty()
    });
    let of_job: Vec<String> = events
        .iter()
        .filter(|e| e["egress_id"] == id.as_str())
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    poll(
        "the endpoint stays away its length",
        outage(10) + Duration::from_secs(5),
        || match went_away.elapsed() >= outage(10) {
            true => Ok(()),
            false => Err("the endpoint is still away".into()),
        },
    );
    let back = Instant::now();
    let hooks = webhook_receiver_on(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        "hook-secret-3",
        false,
    );
    let delivered = poll("every event at the endpoint", Duration::from_secs(60), || {
        let hooks = hooks.lock().unwrap().clone();
        let ids: Vec<String> = hooks.iter().map(|h| h.id.clone()).collect();
        match of_job.iter().all(|id| ids.contains(id)) {
            true => Ok(hooks),
            false => Err(format!("{} of {} delivered", ids.len(), of_job.len())),
        }
    });
    let after = back.elapsed();
    let ids: Vec<&str> = delivered.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, of_job, "each event once, in order");
    // The first event was tried all through the outage; the others waited behind it.
    assert!(
        delivered[0].attempt > 2,
        "retried from the journal: {:?}",
        delivered[0]
    );
    for hook in &delivered {
        assert!(hook.signature_ok, "{hook:?}");
        assert_eq!(hook.event["event_id"].as_str(), Some(hook.id.as_str()));
    }
    println!(
        "webhook away {:.0} s: {} of {} events delivered {:.1} s after it came back",
        outage(10).as_secs_f64(),
        delivered.len(),
        of_job.len(),
        after.as_secs_f64()
    );
    worker.terminate(Duration::from_secs(20));
}

#[test]
fn a_read_only_spool_fails_each_job_with_that_reason_and_the_worker_lives_on() {
    let fleet = Fleet::new("ro-spool");
    let scratch = Scratch::new("fleet-ro-spool");
    let spool = scratch.dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let config = scratch.dir.join("egress.toml");
    std::fs::write(
        &config,
        format!(
            "[worker]\njournal_dir = \"{}\"\n",
            scratch.dir.join("journal").display()
        ),
    )
    .unwrap();
    // The spool is read-only for the worker alone: a bind mount in a mount namespace of its own.
    let log = scratch.dir.join("worker.log");
    let worker = WorkerProcess::spawn(
        {
            let mut command = std::process::Command::new("unshare");
            command
                .args([
                    "--mount",
                    "sh",
                    "-c",
                    "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"",
                ])
                .arg(&spool)
                .arg(env!("CARGO_BIN_EXE_egress"))
                .args(["worker", "--config"])
                .arg(&config)
                .envs(fleet.env())
                .env("EGRESS_OUT_DIR", scratch.out())
                .env("EGRESS_SPOOL_DIR", &spool)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            command
        },
        log,
    );
    worker.wait_ready(Duration::from_secs(20));
    for id in ["eg_ro_1", "eg_ro_2"] {
        fleet.submit(&scratch, &short_call(id, 2.0, "#5e35b1"));
        let events = fleet.wait_until("the job failed", Duration::from_secs(60), |events| {
            events
                .iter()
                .any(|e| e["egress_id"] == id && e["type"] == "call.recording_failed")
        });
        let failed = events
            .iter()
            .find(|e| e["egress_id"] == id && e["type"] == "call.recording_failed")
            .unwrap();
        let error = failed["error"].as_str().unwrap();
        assert!(
            error.contains("spool") && error.contains("Read-only file system"),
            "the reason, plainly: {error}"
        );
        assert!(
            !events
                .iter()
                .any(|e| e["egress_id"] == id && e["type"] == "call.recording_started"),
            "nothing started"
        );
    }
    fleet.wait_acked("both jobs settled");
}

/// What `/proc` says of a process: resident memory (MiB), open file descriptors, threads.
fn process_figures(pid: u32) -> (f64, usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (rss_mib(pid), fds, threads)
}

/// Disk space the files below `dir` take (blocks, not lengths: a part's reserved index room is
/// sparse).
fn bytes_below(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_below(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.blocks() * 512),
        })
        .sum()
}

/// The terminal events of each output: every job ends each output with at least one of its
/// group (a stored transcript of a failed job has both), and none comes twice.
const TERMINAL: [(&str, &[&str]); 4] = [
    ("recording", &["call.recording_ready", "call.recording_failed"]),
    (
        "hls",
        &["call.hls_broadcasting_stopped", "call.hls_broadcasting_failed"],
    ),
    (
        "frames",
        &["call.frame_recording_stopped", "call.frame_recording_failed"],
    ),
    (
        "transcription",
        &["call.transcription_ready", "call.transcription_failed"],
    ),
];

/// One worker through many short jobs, two at a time (recording, HLS, stills and captions; one
/// in ten with a store that is not there, one with a dead RTMP destination, one with Janus
/// gone), printing its memory, descriptors, threads and spool size every 20 jobs.
/// `SOAK_JOBS` (default 200) sets how many.
#[test]
#[ignore]
fn bench_soak_many_jobs_two_at_a_time() {
    let total: usize = std::env::var("SOAK_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let fleet = Fleet::new("soak");
    let scratch = Scratch::new("fleet-soak");
    model_path();
    speak(&scratch, "said", "The quarterly report is ready for review.");
    let config = scratch.dir.join("egress.toml");
    std::fs::write(&config, "[worker]\nupload_deadline_s = 3\n").unwrap();
    let log = scratch.dir.join("worker.log");
    let worker = WorkerProcess::spawn(
        {
            let mut command = egress();
            command
                .args(["worker", "--config"])
                .arg(&config)
                .envs(fleet.env())
                .env("EGRESS_CPU_BUDGET", "8")
                .env("EGRESS_OUT_DIR", scratch.out())
                .env("EGRESS_ALLOW_LOCAL_MEDIA", "true")
                .env("EGRESS_MEDIA_DIR", scratch.dir.display().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            command
        },
        log,
    );
    worker.wait_ready(Duration::from_secs(20));
    let pid = worker.child.id();
    let job = |n: usize| {
        let id = format!("eg_soak_{n:03}");
        let mut job = json!({
            "egress_id": id,
            "call_cid": format!("default:soak-{n}"),
            "source": { "type": "synthetic", "duration_s": 3, "participants": [
                { "user_id": "alice", "video": { "color": "#1e88e5" }, "audio": { "file": "said.wav" } } ] },
            "recording": { "quality": "360p" },
            "hls": { "quality_tracks": ["360p"], "segment_duration_s": 2 },
            "frame_recording": { "capture_interval_in_seconds": 2, "quality": "360p" },
            "transcription": { "language": "en", "closed_captions": true },
            "storage": { "storage_type": "local", "path": "soak/" }
        });
        match n % 10 {
            3 => {
                job["storage"] = json!({ "storage_type": "s3", "bucket": "gone", "aws_s3": {
                    "s3_region": "us-east-1", "s3_api_key": "AKIDSOAK", "s3_secret": "soak-secret",
                    "s3_custom_endpoint_url": "http://127.0.0.1:9" } })
            }
            6 => {
                job["rtmp"] = json!([{ "name": "dead", "stream_url": "rtmp://127.0.0.1:9/live", "stream_key": "dead-key-1" }])
            }
            9 => job["source"] = json!({ "type": "janus", "url": "ws://127.0.0.1:9/", "room": 1234 }),
            _ => {}
        }
        (id, job)
    };
    let ended = |events: &[Value], id: &str| {
        TERMINAL.iter().all(|(_, group)| {
            events
                .iter()
                .any(|e| e["egress_id"] == id && group.contains(&e["type"].as_str().unwrap_or("")))
        })
    };
    let began = Instant::now();
    let mut submitted: Vec<String> = Vec::new();
    let mut figures = Vec::new();
    println!("soak: jobs  RSS MiB  fds  threads  spool KiB (on disk)  elapsed s");
    while submitted.len() < total || figures.len() < total / 20 {
        let events = fleet.events();
        let done = submitted.iter().filter(|id| ended(&events, id)).count();
        // Figures at each 20th job, taken once the jobs before it have ended: what the worker
        // keeps, not what running jobs hold.
        let checkpoint = (figures.len() + 1) * 20;
        if submitted.len() >= checkpoint && done >= submitted.len() {
            let (rss, fds, threads) = process_figures(pid);
            let spool = bytes_below(&scratch.out().join(".spool")) / 1024;
            println!(
                "soak: {:4}  {rss:7.0}  {fds:3}  {threads:7}  {spool:9}  {:9.0}",
                checkpoint,
                began.elapsed().as_secs_f64()
            );
            figures.push((rss, fds, threads));
            continue;
        }
        if submitted.len() < total && submitted.len() - done < 2 && submitted.len() < checkpoint {
            let (id, job) = job(submitted.len());
            fleet.submit(&scratch, &job);
            submitted.push(id);
            continue;
        }
        // Nothing moves until a job says something more.
        let seen = events.len();
        fleet.wait_until("the next event", Duration::from_secs(120), |events| {
            events.len() > seen
        });
    }
    fleet.wait_acked("every job settled");
    let spool_left = poll("the spool emptied", Duration::from_secs(60), || {
        let left = bytes_below(&scratch.out().join(".spool"));
        let waiting: usize = std::fs::read_dir(scratch.out().join(".spool/events"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("lock").is_file())
            .map(|e| bytes_below(&e.path().join("amqp")) as usize)
            .sum();
        match waiting {
            0 => Ok(left),
            _ => Err(format!("{waiting} bytes of events waiting")),
        }
    });
    let events = fleet.events();
    let mut ids = std::collections::HashSet::new();
    for event in &events {
        assert!(
            ids.insert(event["event_id"].as_str().unwrap().to_owned()),
            "an event twice: {event}"
        );
    }
    for id in &submitted {
        for (output, group) in TERMINAL {
            let of = |kind: &str| {
                events
                    .iter()
                    .filter(|e| e["egress_id"] == id.as_str() && e["type"] == kind)
                    .count()
            };
            assert!(group.iter().any(|kind| of(kind) > 0), "{id}: the {output} ends");
            for kind in group.iter() {
                assert!(of(kind) <= 1, "{id}: {kind} once, not {}", of(kind));
            }
        }
    }
    let failed = submitted
        .iter()
        .filter(|id| {
            events
                .iter()
                .any(|e| e["egress_id"] == id.as_str() && e["type"] == "call.recording_failed")
        })
        .count();
    // Only the jobs made to fail fail their recording (a dead RTMP push fails only itself).
    let meant_to_fail = (0..total).filter(|n| matches!(n % 10, 3 | 9)).count();
    let reasons: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["type"] == "call.recording_failed")
        .filter_map(|e| e["error"].as_str())
        .collect();
    assert_eq!(failed, meant_to_fail, "recordings failed: {reasons:#?}");
    let growth = |pick: fn(&(f64, usize, usize)) -> f64| {
        let (from, to) = (
            pick(&figures[1.min(figures.len() - 1)]),
            pick(figures.last().unwrap()),
        );
        100.0 * (to - from) / from.max(1.0)
    };
    println!(
        "soak: {total} jobs ({failed} failed on purpose or not) in {:.0} s; from job 40 to the end RSS {:+.1} %, fds {:+.1} %, threads {:+.1} %; spool left {} bytes (job folders and journal), events each once: {}",
        began.elapsed().as_secs_f64(),
        growth(|f| f.0),
        growth(|f| f.1 as f64),
        growth(|f| f.2 as f64),
        spool_left,
        ids.len()
    );
    drop(worker);
}
