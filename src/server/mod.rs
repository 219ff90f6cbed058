//! The worker's operations endpoints on one port: `/healthz` (the process answers), `/readyz`
//! (connected to RabbitMQ and taking jobs), `/metrics` (Prometheus text format) and `/jobs`,
//! `/jobs/ID` (what each running job is doing, as `egress status` prints it).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// What the worker reports; updated by the worker loop, read by the endpoints.
#[derive(Debug, Default, Clone)]
pub struct WorkerStatus {
    pub connected: bool,
    pub taking_jobs: bool,
    pub running: usize,
    pub cost_in_use: f64,
    pub cpu_budget: f64,
    /// Jobs ended since start, by outcome.
    pub succeeded: u64,
    pub failed: u64,
    pub handed_back: u64,
    pub refused: u64,
    /// Stopped here because another worker took the job over while this one was cut off.
    pub yielded: u64,
    /// Jobs started here.
    pub taken: u64,
    /// Deliveries not run, by why: `running_here`, `done` (ended here or elsewhere lately),
    /// `running_elsewhere` (held until it ends there), `full` (given back: over the budget).
    pub not_run: std::collections::BTreeMap<&'static str, u64>,
    /// Deliveries held while their job ran on another worker, acked once it ended there.
    pub held_settled: u64,
    /// Connections to RabbitMQ made since start.
    pub connections: u64,
    /// Why the last attempt to connect failed, while not connected.
    pub connection_error: Option<String>,
    /// Files waiting for the store in the spool.
    pub uploads_waiting: usize,
    /// The event journal, per destination.
    pub events: Vec<crate::events::LaneFigures>,
    /// What each running job is doing (`/jobs`, `/jobs/ID`).
    pub jobs: std::collections::BTreeMap<String, Arc<Mutex<crate::events::JobStatus>>>,
}

pub type SharedStatus = Arc<Mutex<WorkerStatus>>;

/// Serves the endpoints on `address` from a thread of its own.
pub fn serve(address: &str, status: SharedStatus, spool: std::path::PathBuf) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} for health and metrics: {e}"))?;
    tracing::info!(%address, "health and metrics endpoints");
    std::thread::Builder::new()
        .name("ops-http".into())
        .spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request_line = String::new();
                if BufReader::new(&stream).read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let mut snapshot = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                snapshot.uploads_waiting = uploads_waiting(&spool);
                let (code, body) = respond(path, &snapshot);
                let kind = match path.starts_with("/jobs") && code.starts_with("200") {
                    true => "application/json",
                    false => "text/plain; version=0.0.4",
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}

fn respond(path: &str, status: &WorkerStatus) -> (&'static str, String) {
    match path {
        "/healthz" => ("200 OK", "ok\n".into()),
        "/readyz" if status.connected && status.taking_jobs => ("200 OK", "ready\n".into()),
        "/readyz" => match &status.connection_error {
            Some(error) if !status.connected => ("503 Service Unavailable", format!("not ready: {error}\n")),
            _ => ("503 Service Unavailable", "not ready\n".into()),
        },
        "/metrics" => ("200 OK", metrics(status)),
        "/jobs" => {
            let all: Vec<crate::events::JobStatus> = status
                .jobs
                .values()
                .map(|job| job.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect();
            ("200 OK", serde_json::to_string(&all).unwrap_or_default())
        }
        _ => match path.strip_prefix("/jobs/").and_then(|id| status.jobs.get(id)) {
            Some(job) => {
                let job = job.lock().unwrap_or_else(|p| p.into_inner()).clone();
                ("200 OK", serde_json::to_string(&job).unwrap_or_default())
            }
            None => ("404 Not Found", "not found\n".into()),
        },
    }
}

fn metrics(s: &WorkerStatus) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, lines: &[(String, f64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in lines {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    gauge(
        "egress_jobs_running",
        "Jobs running on this worker.",
        "gauge",
        &[(String::new(), s.running as f64)],
    );
    gauge(
        "egress_jobs_ended_total",
        "Jobs ended on this worker since it started, by outcome.",
        "counter",
        &[
            ("{outcome=\"succeeded\"}".into(), s.succeeded as f64),
            ("{outcome=\"failed\"}".into(), s.failed as f64),
            ("{outcome=\"handed_back\"}".into(), s.handed_back as f64),
            ("{outcome=\"refused\"}".into(), s.refused as f64),
            ("{outcome=\"yielded\"}".into(), s.yielded as f64),
        ],
    );
    gauge(
        "egress_jobs_taken_total",
        "Jobs started on this worker since it started.",
        "counter",
        &[(String::new(), s.taken as f64)],
    );
    let not_run: Vec<(String, f64)> = ["running_here", "done", "running_elsewhere", "full"]
        .iter()
        .map(|why| {
            (
                format!("{{reason=\"{why}\"}}"),
                s.not_run.get(why).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    gauge(
        "egress_deliveries_not_run_total",
        "Jobs offered to this worker and not run here, by reason.",
        "counter",
        &not_run,
    );
    gauge(
        "egress_held_deliveries_settled_total",
        "Deliveries held while their job ran on another worker, acked once it ended there.",
        "counter",
        &[(String::new(), s.held_settled as f64)],
    );
    gauge(
        "egress_amqp_connections_total",
        "Connections to RabbitMQ made since start.",
        "counter",
        &[(String::new(), s.connections as f64)],
    );
    gauge(
        "egress_cpu_cost_in_use",
        "Estimated cores used by the running jobs.",
        "gauge",
        &[(String::new(), s.cost_in_use)],
    );
    gauge(
        "egress_cpu_budget",
        "Cores' worth of jobs this worker takes.",
        "gauge",
        &[(String::new(), s.cpu_budget)],
    );
    gauge(
        "egress_uploads_waiting",
        "Files in the spool waiting for the store.",
        "gauge",
        &[(String::new(), s.uploads_waiting as f64)],
    );
    let lanes = |value: &dyn Fn(&crate::events::LaneFigures) -> f64| -> Vec<(String, f64)> {
        s.events
            .iter()
            .map(|lane| (format!("{{destination=\"{}\"}}", lane.name), value(lane)))
            .collect()
    };
    let (waiting, dropped) = (lanes(&|l| l.pending as f64), lanes(&|l| l.dropped as f64));
    gauge(
        "egress_events_waiting",
        "Events in the journal not yet confirmed by their destination.",
        "gauge",
        &waiting,
    );
    gauge(
        "egress_events_dropped_total",
        "Events not kept because the journal of their destination was full.",
        "counter",
        &dropped,
    );
    gauge(
        "egress_amqp_connected",
        "1 while connected to RabbitMQ.",
        "gauge",
        &[(String::new(), f64::from(u8::from(s.connected)))],
    );
    out
}

/// Counts upload entries in every job folder of the spool.
fn uploads_waiting(spool: &std::path::Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(spool) else {
        return 0;
    };
    jobs.flatten()
        .filter_map(|job| std::fs::read_dir(job.path().join("uploads")).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_connection_and_metrics_are_prometheus_text() {
        let mut status = WorkerStatus {
            cpu_budget: 1.6,
            ..WorkerStatus::default()
        };
        assert_eq!(respond("/healthz", &status).0, "200 OK");
        assert_eq!(respond("/readyz", &status).0, "503 Service Unavailable");
        status.connected = true;
        status.taking_jobs = true;
        status.running = 2;
        status.succeeded = 5;
        assert_eq!(respond("/readyz", &status).0, "200 OK");
        let (_, text) = respond("/metrics", &status);
        assert!(
            text.contains("# TYPE egress_jobs_running gauge\negress_jobs_running 2\n"),
            "{text}"
        );
        assert!(
            text.contains("egress_jobs_ended_total{outcome=\"succeeded\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("egress_cpu_budget 1.6\n"), "{text}");
        assert_eq!(respond("/nope", &status).0, "404 Not Found");
    }
}
