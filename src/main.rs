use clap::{Parser, Subcommand};
use egress::events::{EventSink, JsonLinesSink};
use egress::job::{self, Problem};
use egress::queue::{self, WorkerConfig};
use egress::session::{self, RunOptions};
use egress::storage::{self, RetryPolicy};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "egress", version, about = "Records, broadcasts and transcribes calls")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one job in the foreground: events as JSON lines on stdout, logs on stderr.
    Run {
        job: PathBuf,
        /// Folder of the local storage.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Folder for files being written (default: OUT/.spool).
        #[arg(long)]
        spool: Option<PathBuf>,
        /// Writes the media pipeline as a Graphviz file once media flows (stream keys removed).
        #[arg(long)]
        dot: Option<PathBuf>,
        /// Every frame of encoded video is decoded: frame recording's keyframes-only path and the
        /// composite's skipping of hidden tracks are off (to compare the paths).
        #[arg(long)]
        decode_every_frame: bool,
        /// Folder for files the storage would not take in time (default: OUT/.backup).
        #[arg(long)]
        backup: Option<PathBuf>,
        /// How long a file is retried before it goes to the backup folder, in seconds.
        #[arg(long, default_value_t = 600)]
        upload_deadline: u64,
        /// The Whisper model (ggml) for transcription (default: the setup's converted tiny.en,
        /// or EGRESS_WHISPER_MODEL).
        #[arg(long)]
        whisper_model: Option<PathBuf>,
    },
    /// Checks a job and prints every problem with its JSON path, or, when it is valid, the cost
    /// in cores a worker estimates for it with the default `[cost]` model.
    Validate { job: PathBuf },
    /// Storage tools.
    Storage {
        #[command(subcommand)]
        action: StorageAction,
    },
    /// Prints the JSON Schema of the job contract, or with --events that of every event.
    Schema {
        #[arg(long)]
        events: bool,
    },
    /// Takes jobs from RabbitMQ and runs them (events to the events exchange).
    Worker {
        /// Worker configuration (TOML); every value can be overridden from the environment.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Puts a job on the queue; prints its egress id.
    Submit {
        job: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Sends an update (JSON: {"pinned": [...], "participants": {id: {"name", "roles"}}}) to a
    /// running job wherever it runs.
    Update {
        egress_id: String,
        update: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Transcribes an audio file with a Whisper model (ggml), cut into utterances as a call's
    /// audio is; prints one JSON line per utterance: {"start_ms", "end_ms", "text"}.
    Transcribe {
        audio: PathBuf,
        /// The model file (default: the converted tiny.en of the setup).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Language code, or `auto` (multilingual models).
        #[arg(long, default_value = "en")]
        language: String,
    },
    /// Starts an output of a running job wherever it runs; SECTION.json has the job's shape for
    /// that output (an RTMP section is one destination with its name).
    Start {
        egress_id: String,
        #[arg(long, value_enum)]
        output: egress::session::OutputKind,
        section: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Stops a running job wherever it runs, or one of its outputs while the rest runs on.
    Stop {
        egress_id: String,
        /// The output to stop alone: `recording`, `hls`, `frame_recording`, `transcription`,
        /// `closed_captions`, `rtmp` (every push) or `rtmp:NAME`.
        #[arg(long)]
        output: Option<egress::session::StoppableOutput>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Prints what a running job is doing (the seed's EgressResponse, with transcription,
    /// captions, thumbnails and pauses), as the worker running it says, within 2 s.
    Status {
        egress_id: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Composites a raw recording again from its manifest, as fast as the machine allows:
    /// the call's layout (or LAYOUT.json, `{"name", "options"}`) at its quality (or --quality);
    /// prints one JSON line with the file written.
    Render {
        manifest: PathBuf,
        /// Folder the MP4 is written to.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        layout: Option<PathBuf>,
        /// `360p`, `720p`, `1080p`, `portrait-720x1280`… (the recording's qualities).
        #[arg(long)]
        quality: Option<String>,
    },
    /// Pauses an output of a running job: nothing of the call enters it until `egress resume`.
    Pause {
        egress_id: String,
        /// The output to pause: the composite recording, or the transcript and captions.
        #[arg(long, value_enum)]
        output: PausableKind,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Resumes an output paused by `egress pause`.
    Resume {
        egress_id: String,
        #[arg(long, value_enum)]
        output: PausableKind,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The outputs `egress pause` and `egress resume` act on.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PausableKind {
    Recording,
    /// The transcript and the closed captions.
    Transcription,
}

impl From<PausableKind> for egress::session::PausableOutput {
    fn from(kind: PausableKind) -> Self {
        match kind {
            PausableKind::Recording => egress::session::PausableOutput::Recording,
            PausableKind::Transcription => egress::session::PausableOutput::Transcription,
        }
    }
}

#[derive(Subcommand)]
enum StorageAction {
    /// Writes a small check file to the storage described in STORAGE.json (a job's `storage`
    /// section) and says whether it worked, or what is wrong, in plain words.
    Check {
        storage: PathBuf,
        /// Root folder for `local` storage.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Stores FILE under KEY (below the storage's path prefix) as a job's outputs are stored;
    /// the local copy is kept.
    Upload {
        storage: PathBuf,
        file: PathBuf,
        key: String,
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Finishes the uploads a killed run left in the spool (events on stdout), then exits.
    Resume {
        /// Spool folder (default: OUT/.spool).
        #[arg(long)]
        spool: Option<PathBuf>,
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Folder for files the storage would not take in time (default: OUT/.backup).
        #[arg(long)]
        backup: Option<PathBuf>,
        #[arg(long, default_value_t = 600)]
        upload_deadline: u64,
    },
}

/// `egress render`: a request that does not check out exits 2 with the field named.
fn render(manifest: PathBuf, out: PathBuf, layout: Option<PathBuf>, quality: Option<String>) -> ExitCode {
    let invalid = |message: String| {
        eprintln!("{message}");
        ExitCode::from(EXIT_INVALID)
    };
    let layout = match layout.map(|path| read_layout(&path)).transpose() {
        Ok(layout) => layout,
        Err(message) => return invalid(message),
    };
    let quality = match quality
        .map(|q| serde_json::from_value::<job::Quality>(serde_json::Value::String(q.clone())).map_err(|_| q))
        .transpose()
    {
        Ok(quality) => quality,
        Err(q) => {
            return invalid(format!(
                "--quality: expected 360p, 480p, 720p, 1080p, 1440p or portrait-WxH of those, got {q:?}"
            ));
        }
    };
    if let Err(e) = egress::media::init() {
        eprintln!("{e:#}");
        return ExitCode::from(EXIT_FAILED);
    }
    let request = session::render::RenderRequest {
        manifest,
        out_dir: out,
        layout,
        quality,
        file_name: None,
    };
    match session::render::render(&request) {
        Ok(done) => {
            let seconds = done.duration.as_secs_f64();
            let took = done.took.as_secs_f64();
            let line = serde_json::json!({
                "file": done.path,
                "layout": done.layout.name.as_str(),
                "quality": done.quality,
                "duration_s": seconds,
                "took_s": took,
                "speed": if took > 0.0 { seconds / took } else { 0.0 },
            });
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e @ session::render::RenderError::Media(_)) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => invalid(e.to_string()),
    }
}

/// A layout file: the job's `layout` section (`{"name": "spotlight", "options": {…}}`).
fn read_layout(path: &Path) -> Result<job::LayoutConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--layout: cannot read {}: {e}", path.display()))?;
    let layout: job::LayoutConfig = serde_json::from_str(&text).map_err(|e| {
        format!(
            "--layout {}: expected {{\"name\", \"options\"}} as in a job's layout: {e}",
            path.display()
        )
    })?;
    egress::layout::LayoutPlan::new(layout.name.as_str(), &layout.options).map_err(|errors| {
        let said: Vec<String> = errors
            .iter()
            .map(|(key, problem)| format!("--layout: options.{key}: {problem}"))
            .collect();
        said.join("; ")
    })?;
    Ok(layout)
}

const EXIT_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    let launched = Instant::now();
    // Everything the worker writes (spool, GStreamer's files, settings) is its own: files 0600,
    // folders 0700. Local storage opens up what it stores.
    // SAFETY: umask only changes the process's file mode mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    init_logs();
    let code = (|| match Cli::parse().command {
        Command::Render {
            manifest,
            out,
            layout,
            quality,
        } => render(manifest, out, layout, quality),
        Command::Schema { events } => {
            let schema = match events {
                true => egress::events::schema_json(),
                false => job::schema_json(),
            };
            println!("{}", serde_json::to_string_pretty(&schema).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Storage {
            action: StorageAction::Check { storage, out },
        } => check_storage(&storage, &out),
        Command::Worker { config } => {
            let config = match WorkerConfig::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e:#}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            egress::tls::set_ca_file(config.worker.tls_ca_file.clone());
            let shutdown = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, shutdown.clone());
                let _ = signal_hook::flag::register(signal, shutdown.clone());
            }
            match queue::run_worker(config, shutdown) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "worker stopped");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        Command::Submit { job, config } => {
            let outcome = WorkerConfig::load(config.as_deref()).and_then(|config| {
                let text = std::fs::read_to_string(&job)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", job.display()))?;
                queue::submit(&config.amqp, &text)
            });
            conclude("submit", outcome, &[], |egress_id| println!("{egress_id}"))
        }
        Command::Update {
            egress_id,
            update,
            config,
        } => {
            let outcome = WorkerConfig::load(config.as_deref()).and_then(|c| {
                let text = std::fs::read_to_string(&update)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", update.display()))?;
                queue::send_update(&c.amqp, &egress_id, &text)
            });
            conclude("update", outcome, &[], |done| eprintln!("{done}"))
        }
        Command::Transcribe {
            audio,
            model,
            language,
        } => {
            let model = model.unwrap_or_else(egress::transcribe::default_model_path);
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let outcome = egress::transcribe::SpeechModel::load(&model, threads).and_then(|m| {
                let samples = egress::transcribe::read_speech(&audio)?;
                egress::transcribe::transcribe_utterances(&m, &samples, Some(&language))
            });
            conclude("transcription", outcome, &[], |segments| {
                for s in segments {
                    let line =
                        serde_json::json!({ "start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text });
                    println!("{line}");
                }
            })
        }
        Command::Stop {
            egress_id,
            output,
            config,
        } => {
            let outcome = WorkerConfig::load(config.as_deref())
                .and_then(|c| queue::send_stop(&c.amqp, &egress_id, output));
            conclude("stop", outcome, &[], |done| eprintln!("{done}"))
        }
        Command::Start {
            egress_id,
            output,
            section,
            config,
        } => {
            let outcome = WorkerConfig::load(config.as_deref()).and_then(|c| {
                let text = match &section {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                    None => "{}".to_owned(),
                };
                queue::send_start(&c.amqp, &egress_id, output, &text)
            });
            conclude("start", outcome, &[], |done| eprintln!("{done}"))
        }
        Command::Status { egress_id, config } => {
            let outcome = WorkerConfig::load(config.as_deref())
                .and_then(|c| queue::request_status(&c.amqp, &egress_id));
            conclude("status", outcome, &[], |status| println!("{status}"))
        }
        Command::Pause {
            egress_id,
            output,
            config,
        } => {
            let outcome = WorkerConfig::load(config.as_deref())
                .and_then(|c| queue::send_pause(&c.amqp, &egress_id, output.into(), true));
            conclude("pause", outcome, &[], |done| eprintln!("{done}"))
        }
        Command::Resume {
            egress_id,
            output,
            config,
        } => {
            let outcome = WorkerConfig::load(config.as_deref())
                .and_then(|c| queue::send_pause(&c.amqp, &egress_id, output.into(), false));
            conclude("resume", outcome, &[], |done| eprintln!("{done}"))
        }
        Command::Storage {
            action:
                StorageAction::Upload {
                    storage,
                    file,
                    key,
                    out,
                },
        } => upload(&storage, &file, &key, &out),
        Command::Storage {
            action:
                StorageAction::Resume {
                    spool,
                    out,
                    backup,
                    upload_deadline,
                },
        } => {
            let events = JsonLinesSink::new(std::io::stdout());
            let policy = RetryPolicy {
                deadline: Duration::from_secs(upload_deadline),
                ..RetryPolicy::default()
            };
            let spool = spool.unwrap_or_else(|| out.join(".spool"));
            let backup = backup.unwrap_or_else(|| out.join(".backup"));
            match storage::resume(&spool, &events, policy, &backup) {
                Ok(files) => {
                    eprintln!("{files} file(s) resumed");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("resume failed: {e:#}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        Command::Validate { job } => match load(&job) {
            Ok(validated) => {
                for w in &validated.warnings {
                    eprintln!("warning: {w}");
                }
                // What a worker with the default `[cost]` model admits it as.
                let cost = egress::queue::cost::estimate(&validated.job, &Default::default());
                println!("{}: valid; estimated cost {cost:.3} cores", job.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                report(&job, &problems);
                ExitCode::from(EXIT_INVALID)
            }
        },
        Command::Run {
            job,
            out,
            spool,
            dot,
            decode_every_frame,
            backup,
            upload_deadline,
            whisper_model,
        } => {
            let events = JsonLinesSink::new(std::io::stdout());
            let validated = match load(&job) {
                Ok(v) => v,
                Err(problems) => {
                    report(&job, &problems);
                    announce_refusal(&job, &problems, &events);
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second signal while stopping ends the process at once.
                let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
                let _ = signal_hook::flag::register(signal, stop.clone());
            }
            let options = RunOptions {
                spool_dir: spool.unwrap_or_else(|| out.join(".spool")),
                backup_dir: backup.unwrap_or_else(|| out.join(".backup")),
                out_dir: out,
                media_dir: media_dir(&job),
                launched,
                dot_file: dot,
                decode_every_frame,
                retry: RetryPolicy {
                    deadline: Duration::from_secs(upload_deadline),
                    ..RetryPolicy::default()
                },
                updates: None,
                whisper_model: whisper_model.unwrap_or_else(egress::transcribe::default_model_path),
            };
            // Uploads a killed run left in the spool go on beside the new job.
            let outcome = std::thread::scope(|scope| {
                scope.spawn(|| {
                    match storage::resume(&options.spool_dir, &events, options.retry, &options.backup_dir) {
                        Ok(0) => {}
                        Ok(files) => tracing::info!(files, "uploads left by an earlier run are done"),
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot resume earlier uploads"),
                    }
                });
                session::run(&validated, &options, &events, stop)
            });
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(EXIT_FAILED),
            }
        }
    })();
    // Threads still at work when the process exits may find their libraries torn down.
    egress::source::webrtc::finish_warm_up();
    code
}

/// Logs on stderr: text, or one JSON object per line with `EGRESS_LOG_FORMAT=json` (for log
/// collectors); `RUST_LOG` filters. Lines of a job carry its `egress_id`.
fn init_logs() {
    // lapin logs a refused lease (an exclusive queue another worker holds) as an error; the
    // worker says what each AMQP failure means itself.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,lapin=off".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(egress::redact::RedactingStderr)
        .with_env_filter(filter);
    if std::env::var("EGRESS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn media_dir(job: &Path) -> PathBuf {
    job.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// Reads and validates a job file: local media below the job's folder, at most
/// `EGRESS_MAX_JOB_BYTES` (1 MiB by default) read.
fn load(path: &Path) -> Result<job::ValidatedJob, Vec<Problem>> {
    let cannot_read = |e: &dyn std::fmt::Display| {
        vec![Problem {
            path: "job".into(),
            message: format!("cannot read {}: {e}", path.display()),
        }]
    };
    let mut intake = job::Intake::below(media_dir(path));
    if let Ok(limit) = std::env::var("EGRESS_MAX_JOB_BYTES") {
        intake.largest_job_bytes = limit.parse().map_err(|_| {
            vec![Problem {
                path: "EGRESS_MAX_JOB_BYTES".into(),
                message: format!("expected a number of bytes; got {limit:?}"),
            }]
        })?;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            use std::io::Read;
            file.take(intake.largest_job_bytes as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| cannot_read(&e))?;
    if bytes.len() > intake.largest_job_bytes {
        return Err(vec![job::too_large(bytes.len(), intake.largest_job_bytes)]);
    }
    let text = String::from_utf8(bytes).map_err(|_| cannot_read(&"the job is not UTF-8 text"))?;
    job::parse_and_validate(&text, &intake)
}

fn upload(path: &Path, file: &Path, key: &str, out: &Path) -> ExitCode {
    let config = match read_storage(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let secrets = config.secrets();
    let outcome = (|| {
        let key = storage::object_key(config.path.as_deref(), key)?;
        let storage = storage::open(&config, out)?;
        storage.store(file, &key)?;
        anyhow::Ok(storage.url(&key))
    })();
    conclude("upload", outcome, &secrets, |url| println!("{url}"))
}

/// A storage configuration file, checked; on error the message is printed already.
fn read_storage(path: &Path) -> Result<job::StorageConfig, ExitCode> {
    let config = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            serde_json::from_str::<job::StorageConfig>(&text)
                .map_err(|e| format!("{}: not a storage configuration: {e}", path.display()))
        });
    let config = match config {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    let problems = job::storage_problems(&config);
    if !problems.is_empty() {
        report(path, &problems);
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok(config)
}

fn check_storage(path: &Path, out: &Path) -> ExitCode {
    let config = match read_storage(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let secrets = config.secrets();
    let outcome = storage::check_key(config.path.as_deref()).and_then(|key| {
        let backend = storage::open(&config, out)?;
        let url = backend.check(&key)?;
        Ok((url, backend.permission_caveats()))
    });
    conclude("storage check", outcome, &secrets, |(url, caveats)| {
        println!("storage check passed: wrote {url}");
        for caveat in caveats {
            println!("note: {caveat}");
        }
    })
}

/// Shows what a command produced, or says on stderr why it failed (without `secrets`); returns
/// the command's exit code.
fn conclude<T>(what: &str, outcome: anyhow::Result<T>, secrets: &[&str], show: impl FnOnce(T)) -> ExitCode {
    match outcome {
        Ok(value) => {
            show(value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let text = egress::redact::redact(&format!("{e:#}"), secrets);
            eprintln!("{what} failed: {text}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn report(path: &Path, problems: &[Problem]) {
    eprintln!("invalid job {}:", path.display());
    let readable =
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= job::LARGEST_JOB_BYTES as u64);
    let text = if readable {
        std::fs::read_to_string(path).unwrap_or_default()
    } else {
        String::new()
    };
    let secrets = session::secrets_of_refused(&text);
    for p in problems {
        eprintln!("  {}", egress::redact::redact(&p.to_string(), &secrets));
    }
}

/// A refused job still gets a failed event when it names its call, so a coordinator hears of it.
fn announce_refusal(path: &Path, problems: &[Problem], events: &dyn EventSink) {
    let readable =
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= job::LARGEST_JOB_BYTES as u64);
    if readable && let Ok(text) = std::fs::read_to_string(path) {
        session::announce_refusal(&text, problems, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands the container image and the Kubernetes Deployment run are commands of this
    /// binary.
    #[test]
    fn the_packaged_commands_parse() {
        let dockerfile = include_str!("../docker/Dockerfile");
        let cmd = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix("CMD "))
            .expect("a CMD line");
        let args: Vec<String> = serde_json::from_str(cmd).unwrap();
        let cli = Cli::try_parse_from(std::iter::once("egress".to_owned()).chain(args)).unwrap();
        assert!(matches!(cli.command, Command::Worker { config: Some(_) }));
        let deployment = include_str!("../docker/k8s/deployment.yaml");
        let args = deployment
            .lines()
            .find_map(|l| l.trim().strip_prefix("args: "))
            .expect("container args");
        let args: Vec<String> = serde_json::from_str(args).unwrap();
        let cli = Cli::try_parse_from(std::iter::once("egress".to_owned()).chain(args)).unwrap();
        assert!(matches!(cli.command, Command::Worker { config: Some(_) }));
    }
}
