use clap::{Parser, Subcommand};
use egress::events::{COMPOSITE, Event, EventBody, EventSink, JsonLinesSink};
use egress::job::{self, Problem};
use egress::session::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

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
    },
    /// Checks a job and prints every problem with its JSON path.
    Validate { job: PathBuf },
    /// Prints the JSON Schema of the job contract.
    Schema,
}

const EXIT_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    let launched = Instant::now();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&job::schema_json()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Validate { job } => match load(&job) {
            Ok(validated) => {
                for w in &validated.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: valid", job.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                report(&job, &problems);
                ExitCode::from(EXIT_INVALID)
            }
        },
        Command::Run { job, out, spool } => {
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
                out_dir: out,
                media_dir: media_dir(&job),
                launched,
            };
            match session::run(&validated, &options, &events, stop) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(EXIT_FAILED),
            }
        }
    }
}

fn media_dir(job: &Path) -> PathBuf {
    job.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn load(path: &Path) -> Result<job::ValidatedJob, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            path: "job".into(),
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    job::parse_and_validate(&text, &media_dir(path))
}

fn report(path: &Path, problems: &[Problem]) {
    eprintln!("invalid job {}:", path.display());
    for p in problems {
        eprintln!("  {p}");
    }
}

/// A refused job still gets a failed event when it names its call, so a coordinator hears of it.
fn announce_refusal(path: &Path, problems: &[Problem], events: &dyn EventSink) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return;
    };
    let Some(call_cid) = value.get("call_cid").and_then(|v| v.as_str()) else {
        return;
    };
    let egress_id = value.get("egress_id").and_then(|v| v.as_str()).unwrap_or("");
    let error = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    events.emit(&Event::new(
        call_cid,
        egress_id,
        EventBody::RecordingFailed {
            recording_type: COMPOSITE,
            error: format!("invalid job: {error}"),
        },
    ));
}
