//! The worker's configuration: a TOML file, each value overridable from the environment
//! (`EGRESS_AMQP_URL`, `EGRESS_CPU_BUDGET`, `EGRESS_OPS_ADDRESS`, …), so one image serves
//! every deployment.

use crate::storage::RetryPolicy;
use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    #[serde(default)]
    pub amqp: AmqpConfig,
    #[serde(default)]
    pub worker: WorkerSection,
    #[serde(default)]
    pub cost: CostModel,
    /// HTTP endpoints that get events, signed.
    #[serde(default)]
    pub webhooks: Vec<crate::events::WebhookConfig>,
    /// Storages jobs can name (`"storage": {"name": "…"}`), at most 10.
    #[serde(default)]
    pub storages: std::collections::BTreeMap<String, crate::job::StorageConfig>,
    /// The storage of jobs that give none of their own.
    #[serde(default)]
    pub default_storage: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// `amqp://` or `amqps://` (TLS) URL with credentials and vhost.
    pub url: String,
    /// Durable queue jobs are taken from.
    pub job_queue: String,
    /// Where jobs that cannot run (invalid) end up.
    pub dead_letter_queue: String,
    /// Topic exchange events are published to, routing key = event type.
    pub events_exchange: String,
    /// Fanout exchange of control messages (`stop`), seen by every worker.
    pub control_exchange: String,
    /// PEM file of certificate authorities trusted for `amqps://` beside the system's (a
    /// private CA).
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            job_queue: "egress.jobs".into(),
            dead_letter_queue: "egress.jobs.dead".into(),
            events_exchange: "egress.events".into(),
            control_exchange: "egress.control".into(),
            tls_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// CPU cores' worth of jobs this worker runs at once (default: 80% of the cores).
    pub cpu_budget: Option<f64>,
    /// Root of `local` storage.
    pub out_dir: PathBuf,
    /// Files being written and waiting for the store.
    pub spool_dir: Option<PathBuf>,
    /// Files the store would not take in time.
    pub backup_dir: Option<PathBuf>,
    /// Where relative media file names in jobs are found, when `allow_local_media` is on.
    pub media_dir: PathBuf,
    /// Whether jobs may read local files (clips, audio files, logos) below `media_dir`; off, a
    /// job naming one is refused.
    pub allow_local_media: bool,
    /// The largest job taken, in bytes; a larger one is refused before it is parsed.
    pub max_job_bytes: usize,
    /// Seconds a file is retried before it goes to the backup folder.
    pub upload_deadline_s: u64,
    /// Seconds running jobs get to finish after SIGTERM before they are handed back.
    pub shutdown_grace_s: u64,
    /// Also print events as JSON lines on stdout.
    pub events_stdout: bool,
    /// Where events wait until each destination confirms them (default: `events` in the spool).
    pub journal_dir: Option<PathBuf>,
    /// Events kept per destination (RabbitMQ, each webhook) while it is away; newer ones are
    /// dropped, with a warning and `egress_events_dropped_total`, once this many wait.
    pub journal_limit: usize,
    /// Address of `/healthz`, `/readyz` and `/metrics` (e.g. `0.0.0.0:9090`); none when unset.
    pub ops_address: Option<String>,
    /// The Whisper model (ggml) for transcription (default: the setup's converted tiny.en).
    pub whisper_model: Option<PathBuf>,
    /// A CA file (PEM) trusted beside the system's by the worker's own TLS clients (Janus
    /// `wss://`, WHEP `https://`); `EGRESS_TLS_CA_FILE` sets it too.
    pub tls_ca_file: Option<PathBuf>,
    /// Where each job's media graph (Graphviz, `EGRESS_ID.dot`, without secrets) is written
    /// once media flows and again after each output started during the call; none when unset.
    pub graph_dir: Option<PathBuf>,
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            cpu_budget: None,
            out_dir: "out".into(),
            spool_dir: None,
            backup_dir: None,
            media_dir: ".".into(),
            allow_local_media: false,
            max_job_bytes: crate::job::LARGEST_JOB_BYTES,
            upload_deadline_s: 600,
            shutdown_grace_s: 30,
            events_stdout: false,
            journal_dir: None,
            journal_limit: 100_000,
            ops_address: None,
            whisper_model: None,
            tls_ca_file: None,
            graph_dir: None,
        }
    }
}

impl WorkerSection {
    pub fn cpu_budget(&self) -> f64 {
        self.cpu_budget.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            0.8 * cores as f64
        })
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| self.out_dir.join(".spool"))
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.journal_dir
            .clone()
            .unwrap_or_else(|| self.spool_dir().join("events"))
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.out_dir.join(".backup"))
    }

    /// What a job offered to this worker is checked against.
    pub fn intake(&self) -> crate::job::Intake {
        crate::job::Intake {
            media: match self.allow_local_media {
                true => crate::job::LocalMedia::Below(self.media_dir.clone()),
                false => crate::job::LocalMedia::Refused,
            },
            largest_job_bytes: self.max_job_bytes,
        }
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(self.upload_deadline_s),
            ..RetryPolicy::default()
        }
    }
}

/// Estimated CPU cost of a job, in cores, from its outputs. Defaults fitted to `egress run` of
/// 20 s calls of 720p30 VP8 clips on a 2-core machine of the CI's kind (README, "Fleet");
/// override them per deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostModel {
    /// Every job: the session, its source and its bookkeeping.
    pub base: f64,
    /// A composite (compositor, audio mix, AAC, muxing), whatever its outputs.
    pub composite_base: f64,
    /// One H.264 encode of the composite, per million pixels per second (720p30 = 27.6).
    pub encode_per_megapixel_s: f64,
    /// Decoding and scaling one participant's video into a composite.
    pub composite_participant: f64,
    /// Decoding and mixing one participant's sound.
    pub audio_participant: f64,
    /// A participant the composite does not show and so does not decode (single-participant).
    pub hidden_participant: f64,
    /// Frame recording, per participant (keyframe path).
    pub frames_participant: f64,
    /// One RTMP push sharing an encoder.
    pub rtmp_push: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            base: 0.06,
            composite_base: 0.06,
            encode_per_megapixel_s: 0.012,
            composite_participant: 0.07,
            audio_participant: 0.012,
            hidden_participant: 0.0013,
            frames_participant: 0.0105,
            rtmp_push: 0.01,
        }
    }
}

impl WorkerConfig {
    /// Reads the file (when given), then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<WorkerConfig> {
        let mut config: WorkerConfig = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{} is not a valid worker config", path.display()))?
            }
            None => toml::from_str("")?,
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check_storages()?;
        Ok(config)
    }

    fn check_storages(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.storages.len() <= super::storages::MOST_NAMED,
            "storages: expected at most {} named storages; got {}",
            super::storages::MOST_NAMED,
            self.storages.len()
        );
        for (name, storage) in &self.storages {
            if let Some(problem) = crate::job::storage_problems(storage).first() {
                anyhow::bail!("storages.{name}.{}: {}", problem.path, problem.message);
            }
        }
        if let Some(default) = &self.default_storage {
            anyhow::ensure!(
                self.storages.contains_key(default),
                "default_storage: expected the name of one of [storages]; got {default:?}"
            );
        }
        Ok(())
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let text = |name: &str, target: &mut String| {
            if let Some(value) = var(name) {
                *target = value;
            }
        };
        text("EGRESS_AMQP_URL", &mut self.amqp.url);
        text("EGRESS_JOB_QUEUE", &mut self.amqp.job_queue);
        text("EGRESS_DEAD_LETTER_QUEUE", &mut self.amqp.dead_letter_queue);
        text("EGRESS_EVENTS_EXCHANGE", &mut self.amqp.events_exchange);
        text("EGRESS_CONTROL_EXCHANGE", &mut self.amqp.control_exchange);
        if let Some(value) = var("EGRESS_AMQP_TLS_CA_FILE") {
            self.amqp.tls_ca_file = Some(value.into());
        }
        if let Some(value) = var("EGRESS_CPU_BUDGET") {
            let budget: f64 = value.parse().ok().filter(|b: &f64| *b > 0.0).with_context(|| {
                format!("EGRESS_CPU_BUDGET: expected a positive number of cores; got {value:?}")
            })?;
            self.worker.cpu_budget = Some(budget);
        }
        if let Some(value) = var("EGRESS_SHUTDOWN_GRACE_S") {
            self.worker.shutdown_grace_s = value.parse().with_context(|| {
                format!("EGRESS_SHUTDOWN_GRACE_S: expected a whole number of seconds; got {value:?}")
            })?;
        }
        if let Some(value) = var("EGRESS_OPS_ADDRESS") {
            self.worker.ops_address = Some(value);
        }
        if let Some(value) = var("EGRESS_ALLOW_LOCAL_MEDIA") {
            self.worker.allow_local_media = match value.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => anyhow::bail!("EGRESS_ALLOW_LOCAL_MEDIA: expected true or false; got {value:?}"),
            };
        }
        if let Some(value) = var("EGRESS_MEDIA_DIR") {
            self.worker.media_dir = value.into();
        }
        if let Some(value) = var("EGRESS_OUT_DIR") {
            self.worker.out_dir = value.into();
        }
        if let Some(value) = var("EGRESS_TLS_CA_FILE") {
            self.worker.tls_ca_file = Some(value.into());
        }
        if let Some(value) = var("EGRESS_SPOOL_DIR") {
            self.worker.spool_dir = Some(value.into());
        }
        if let Some(value) = var("EGRESS_GRAPH_DIR") {
            self.worker.graph_dir = Some(value.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_then_environment_overrides() {
        let mut config: WorkerConfig = toml::from_str(
            "[amqp]\njob_queue = \"jobs-a\"\n[worker]\ncpu_budget = 1.5\n[cost]\nbase = 0.1\n",
        )
        .unwrap();
        assert_eq!(config.amqp.job_queue, "jobs-a");
        assert_eq!(config.amqp.events_exchange, "egress.events");
        assert_eq!(config.worker.cpu_budget(), 1.5);
        assert_eq!(config.cost.base, 0.1);
        config
            .apply_env(|name| match name {
                "EGRESS_JOB_QUEUE" => Some("jobs-b".into()),
                "EGRESS_CPU_BUDGET" => Some("3".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.amqp.job_queue, "jobs-b");
        assert_eq!(config.worker.cpu_budget(), 3.0);
    }

    #[test]
    fn the_example_config_is_valid_and_says_the_defaults() {
        let example: WorkerConfig = toml::from_str(include_str!("../../fixtures/egress.toml")).unwrap();
        let defaults: WorkerConfig = toml::from_str("").unwrap();
        assert_eq!(example.amqp.job_queue, defaults.amqp.job_queue);
        assert_eq!(example.amqp.url, defaults.amqp.url);
        assert_eq!(
            example.worker.upload_deadline_s,
            defaults.worker.upload_deadline_s
        );
        assert_eq!(
            example.cost.encode_per_megapixel_s,
            defaults.cost.encode_per_megapixel_s
        );
        assert_eq!(
            example.cost.composite_participant,
            defaults.cost.composite_participant
        );
    }

    /// The config the container image carries, and the one in the Kubernetes ConfigMap, load
    /// and pass the same checks as at start.
    #[test]
    fn the_packaged_configs_are_valid() {
        let image: WorkerConfig = toml::from_str(include_str!("../../docker/egress.toml")).unwrap();
        image.check_storages().unwrap();
        assert_eq!(image.worker.ops_address.as_deref(), Some("0.0.0.0:9090"));
        let manifest = include_str!("../../docker/k8s/config.yaml");
        let embedded: String = manifest
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("egress.toml: |"))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| format!("{}\n", &l[4..]))
            .collect();
        let k8s: WorkerConfig = toml::from_str(&embedded).unwrap();
        k8s.check_storages().unwrap();
        assert_eq!(k8s.default_storage.as_deref(), Some("recordings"));
        assert_eq!(k8s.worker.ops_address, image.worker.ops_address);
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = toml::from_str::<WorkerConfig>("[worker]\ncpu_budjet = 1").unwrap_err();
        assert!(error.to_string().contains("cpu_budjet"), "{error}");
        let mut config: WorkerConfig = toml::from_str("").unwrap();
        let error = config
            .apply_env(|name| (name == "EGRESS_CPU_BUDGET").then(|| "lots".into()))
            .unwrap_err();
        assert!(error.to_string().contains("EGRESS_CPU_BUDGET"), "{error}");
    }
}
