//! The RTMP outputs of a session: one push per destination, retried with backoff when the
//! connection drops while everything else carries on. Stream keys never reach logs or events.

use super::control::{Answer, Running};
use super::lifecycle::{OutputId, Step};
use super::output::{Claim, Live, OutputModule, SessionOutput};
use super::{Emit, OutputKind, secrets_of_refused};
use crate::backoff::{Backoff, BackoffPolicy, SystemClock};
use crate::events::EventBody;
use crate::job::RtmpConfig;
use crate::media::{Composite, RtmpBranch};
use gst::prelude::*;
use gstreamer as gst;
use std::time::{Duration, Instant};

/// Waits before connecting again after a push dropped.
const RETRY: BackoffPolicy = BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(16));
/// How long pushes may take to pass the end of stream before they are closed anyway.
const END_GRACE: Duration = Duration::from_secs(5);
/// A destination unreachable for this long is given up, with a failed event.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub struct RtmpOutput {
    config: RtmpConfig,
    mix: usize,
    branch: Option<RtmpBranch>,
    connected: bool,
    pub started: bool,
    failed: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
    down_since: Instant,
    /// Why the last attempt failed (redacted), for the failed event.
    last_error: Option<String>,
    /// Stopped by the coordinator while the call runs on (its stopped event is out).
    stopped_alone: bool,
}

impl RtmpOutput {
    pub fn new(config: RtmpConfig, mix: usize) -> Self {
        RtmpOutput {
            config,
            mix,
            branch: None,
            connected: false,
            started: false,
            failed: false,
            retry_at: Some(Instant::now()),
            backoff: RETRY.start(SystemClock),
            down_since: Instant::now(),
            last_error: None,
            stopped_alone: false,
        }
    }

    /// Attaches when a retry is due, and notices when the server starts taking data.
    fn try_and_watch(&mut self, graph: &mut Composite, emit: Emit, warnings: &mut Vec<String>) {
        // A bin added to (and taken out of) a pipeline still prerolling its files makes the
        // pipeline lose that state change: it stays PAUSED and every file waits for ever. Pushes
        // are first attached once the pipeline plays.
        if self.failed || self.stopped_alone || graph.pipeline().current_state() != gst::State::Playing {
            return;
        }
        if self.branch.is_none() && self.retry_at.is_some_and(|at| Instant::now() >= at) {
            self.retry_at = None;
            let url = self.config.push_url();
            match RtmpBranch::attach(graph, self.mix, self.config.quality, &url, &self.config.name) {
                Ok(branch) => {
                    let shown = crate::redact::url_userinfo(&self.config.stream_url);
                    tracing::info!(name = %self.config.name, url = %shown, "rtmp push connecting");
                    self.branch = Some(branch);
                }
                Err(e) => self.dropped(&format!("{e:#}"), graph, emit),
            }
        }
        if !self.connected && self.branch.as_ref().is_some_and(|b| b.bytes_sent() > 0) {
            self.connected = true;
            self.backoff.reset();
            tracing::info!(name = %self.config.name, "rtmp push connected");
            if !self.started {
                self.started = true;
                emit(EventBody::RtmpStarted {
                    name: self.config.name.clone(),
                    warnings: std::mem::take(warnings),
                });
            }
        }
        if !self.connected && self.down_since.elapsed() > GIVE_UP_AFTER {
            self.give_up("the destination could not be reached for 60 s", graph, emit);
        }
    }

    /// True when `source` (of a bus error) belongs to this push.
    fn owns(&self, source: &gst::Object) -> bool {
        self.branch.as_ref().is_some_and(|b| b.owns(source))
    }

    /// The push failed: drop it and try again after a backoff, unless retrying cannot help (the
    /// destination's certificate is not trusted).
    fn dropped(&mut self, error: &str, graph: &Composite, emit: Emit) {
        let error = self.config.redact(error);
        let failure = super::rtmp_failure::classify(&self.config.stream_url, first_line(&error));
        if !failure.retriable() {
            self.give_up(&failure.to_string(), graph, emit);
            return;
        }
        self.last_error = Some(first_line(&error).to_owned());
        if let Some(branch) = self.branch.take() {
            branch.detach(graph.pipeline());
        }
        if self.connected {
            self.connected = false;
            self.down_since = Instant::now();
        }
        let wait = self.backoff.next_delay().unwrap_or(RETRY.cap);
        tracing::warn!(name = %self.config.name, %error, retry_in_ms = wait.as_millis() as u64, "rtmp push dropped");
        self.retry_at = Some(Instant::now() + wait);
    }

    fn give_up(&mut self, error: &str, graph: &Composite, emit: Emit) {
        if let Some(branch) = self.branch.take() {
            branch.detach(graph.pipeline());
        }
        self.failed = true;
        tracing::error!(name = %self.config.name, error, "rtmp push failed");
        emit(EventBody::RtmpFailed {
            name: self.config.name.clone(),
            error: error.to_owned(),
        });
    }

    /// At the end of the job: a connected push gets a clean end of stream with the rest of the
    /// graph; one that is not connected is dropped so that it cannot hold the end up, and one that
    /// never reached its destination is announced as failed.
    fn end_with_job(&mut self, graph: &Composite, emit: Emit) {
        self.retry_at = None;
        if self.stopped_alone {
            return;
        }
        if !self.connected
            && let Some(branch) = self.branch.take()
        {
            branch.detach(graph.pipeline());
        }
        if self.failed || self.connected {
            return;
        }
        let why = self
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let reason = match self.started {
            false if self.last_error.is_none() => {
                "the destination did not take the stream before the end of the call".to_owned()
            }
            false => format!("the destination could not be reached before the end of the call{why}"),
            true => format!(
                "the destination dropped the stream and was not reached again before the end of the call{why}"
            ),
        };
        self.give_up(&reason, graph, emit);
    }

    /// The end of stream did not get through this push in time (a slow or stalled server):
    /// it is taken out so that the files of the job can finish without it.
    fn cut_short(&mut self, graph: &Composite) {
        if let Some(branch) = self.branch.take() {
            tracing::warn!(name = %self.config.name, "rtmp push did not end in time; closed");
            branch.detach(graph.pipeline());
        }
    }

    /// The announcement of the end, for a push that started, did not fail and was not stopped
    /// alone before (that one is announced already).
    fn stopped(&self) -> Option<EventBody> {
        (self.started && !self.failed && !self.stopped_alone).then(|| EventBody::RtmpStopped {
            name: self.config.name.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether the push still runs (or tries to): not stopped alone, not failed for good.
    pub fn running(&self) -> bool {
        !self.failed && !self.stopped_alone
    }

    /// Stops this push while the call and the other outputs run on: the connection is closed,
    /// nothing is retried, and its stopped event goes out now. False when it had ended already.
    pub fn stop_alone(&mut self, graph: &Composite, emit: Emit) -> bool {
        if self.failed || self.stopped_alone {
            return false;
        }
        self.retry_at = None;
        if let Some(branch) = self.branch.take() {
            branch.end();
            branch.detach(graph.pipeline());
        }
        self.stopped_alone = true;
        emit(EventBody::RtmpStopped {
            name: self.config.name.clone(),
        });
        true
    }
}

/// The first line of a GStreamer error (the rest names source files and element paths).
fn first_line(error: &str) -> &str {
    error
        .lines()
        .next()
        .unwrap_or(error)
        .split(" (../")
        .next()
        .unwrap_or(error)
}

impl SessionOutput for RtmpOutput {
    fn output_id(&self) -> OutputId {
        OutputId::Rtmp(self.config.name.clone())
    }

    fn running(&self) -> bool {
        RtmpOutput::running(self)
    }

    fn on_message(&mut self, message: &gst::Message, live: &mut Live) -> anyhow::Result<Claim> {
        let gst::MessageView::Error(err) = message.view() else {
            return Ok(Claim::NotMine);
        };
        if !err.src().is_some_and(|source| self.owns(source)) {
            return Ok(Claim::NotMine);
        }
        let text = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
        self.dropped(&text, live.graph, live.emit);
        Ok(Claim::Handled)
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        match live.ending_since {
            Some(since) if since.elapsed() > END_GRACE => self.cut_short(live.graph),
            Some(_) => {}
            None => self.try_and_watch(live.graph, live.emit, live.warnings),
        }
        Ok(())
    }

    fn job_ending(&mut self, live: &mut Live) {
        self.end_with_job(live.graph, live.emit);
    }

    fn wind_up(&mut self, live: &mut Live) -> anyhow::Result<()> {
        if live.job_failed {
            return Ok(());
        }
        if let Some(stopped) = self.stopped() {
            (live.emit)(stopped);
        }
        Ok(())
    }
}

/// The RTMP pushes, as the session knows them: one output per destination, by its name.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::Rtmp],
    asked: |job| {
        job.rtmp
            .iter()
            .map(|push| OutputId::Rtmp(push.name.clone()))
            .collect()
    },
    attach: |at| {
        let pushes = at.job.rtmp.iter().zip(&at.mixes.rtmp);
        Ok(pushes
            .map(|(config, &mix)| Box::new(RtmpOutput::new(config.clone(), mix)) as Box<dyn SessionOutput>)
            .collect())
    },
    start,
    stop: |running, which| {
        let graph = &*running.graph;
        let emit = running.emit;
        let chosen = running
            .outputs
            .all_of::<RtmpOutput>()
            .filter(|push| which.name.as_deref().is_none_or(|n| push.name() == n));
        let stopped = chosen.fold(0, |n, push| n + usize::from(push.stop_alone(graph, emit)));
        Ok(match (stopped, &which.name) {
            (0, Some(name)) => Err(format!("no rtmp push named {name:?} is running")),
            (0, None) => Err("no rtmp push is running".into()),
            (n, _) => Ok(format!("{n} rtmp push(es) stopped")),
        })
    },
    pause: None,
    step_of: |body| {
        let push = |name: &String| OutputId::Rtmp(name.clone());
        Some(match body {
            EventBody::RtmpStarted { name, .. } => (push(name), Step::Start),
            EventBody::RtmpStopped { name } => (push(name), Step::Stop),
            EventBody::RtmpFailed { name, .. } => (push(name), Step::Fail),
            _ => return None,
        })
    },
    failed: |output, error| match output {
        OutputId::Rtmp(name) => Some(EventBody::RtmpFailed {
            name: name.clone(),
            error: error.to_owned(),
        }),
        _ => None,
    },
};

/// Starts a push during the call (the section is one destination with its name): it joins the
/// running composite of its layout and size, and the encoder of its size when one runs.
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    let push = running
        .checked_section(OutputKind::Rtmp, &section)?
        .rtmp
        .pop()
        .ok_or_else(|| "the rtmp section: expected one push".to_owned())?;
    let secrets = secrets_of_refused(&section.to_string());
    running
        .outputs
        .started_secrets
        .push(crate::redact::register(&secrets));
    if running
        .outputs
        .all_of::<RtmpOutput>()
        .any(|p| p.name() == push.name && p.running())
    {
        return Err(format!(
            "rtmp.name: a push named {:?} is running already",
            push.name
        ));
    }
    // Without a layout of its own, the first composite that fits: the recording's.
    let mix = running.call.mix_for(push.layout.as_ref(), push.quality)?;
    let name = push.name.clone();
    running.outputs.remove_where::<RtmpOutput>(|p| p.name() == name);
    running.outputs.add_of(&MODULE, RtmpOutput::new(push, mix));
    running.lifecycles.register(OutputId::Rtmp(name.clone()));
    Ok(format!(
        "rtmp push {name:?} starting; call.rtmp_broadcast_started follows once the destination takes the stream"
    ))
}
