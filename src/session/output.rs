//! The one interface every output of a session implements. The session drives its outputs
//! through it alone, in the order they are registered (`Outputs::each`); what an output may do
//! to the running call is in `Live`. Its lifecycle events (started, paused, stopped, failed) are
//! held to `lifecycle::Lifecycle` on their way out.
//!
//! Adding an output: a module with a type that implements `SessionOutput`, a field in
//! `Outputs` and one line in `Outputs::each`; an `OutputId` (and its events in
//! `lifecycle::step_of`) when it has a lifecycle of its own; and, to start it during the call,
//! an arm in `control::start_output`.

use super::call::LiveCall;
use super::lifecycle::OutputId;
use super::{Emit, JobIdentity};
use crate::events::EventBody;
use crate::job::Job;
use crate::media::{Composite, PartEvent};
use crate::storage::Uploader;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use std::time::{Duration, Instant};

/// What an output may use of the running session.
pub(super) struct Live<'a, 's, 'e> {
    pub graph: &'a mut Composite,
    pub call: &'a LiveCall,
    pub uploader: &'a mut Uploader<'s, 'e>,
    pub id: &'a JobIdentity,
    pub job: &'a Job,
    pub emit: Emit<'a>,
    /// Validation warnings, carried by the first started event of any output.
    pub warnings: &'a mut Vec<String>,
    /// Call time now; `None` once the media pipeline has stopped.
    pub now: Option<Duration>,
    /// Since when the job has been ending (a stop, the end of the call).
    pub ending_since: Option<Instant>,
    /// The job has failed: what is not stored yet stays in the spool.
    pub job_failed: bool,
}

impl Live<'_, '_, '_> {
    pub fn ending(&self) -> bool {
        self.ending_since.is_some()
    }

    /// When call time `at` was on the wall clock (now when the pipeline has stopped or `at` is
    /// not known): a part that opens announces the moment of its first frame, not of its opening.
    pub fn wall_clock_of(&self, at: Option<Duration>) -> String {
        let ago = match (at, self.now) {
            (Some(at), Some(now)) => now.saturating_sub(at),
            _ => Duration::ZERO,
        };
        (chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// A bus message an output may claim.
pub(super) enum Claim {
    /// Not this output's.
    NotMine,
    /// Handled by this output; nobody else sees it.
    Handled,
}

pub(super) trait SessionOutput {
    /// Which output this is (for the transcription, the transcript; its captions share it).
    fn output_id(&self) -> OutputId;

    /// Whether it still runs (or tries to): not stopped alone, not failed for good. The job
    /// leaves the call once none has run for `limits.idle_output_timeout_s`.
    fn running(&self) -> bool;

    /// The pipeline plays: call time zero is `call_start` on the wall clock.
    fn playing(&mut self, _call_start: DateTime<Utc>) {}

    /// A participant joined the call at call time `at`.
    fn participant_joined(&mut self, _info: &crate::source::ParticipantInfo, _at: Duration) {}

    /// A participant left the call at call time `at`.
    fn participant_left(&mut self, _user_id: &str, _at: Duration) {}

    /// From call time `at` on, `speaking` speak and `dominant` holds the floor.
    fn speaking_changed(&mut self, _speaking: Vec<String>, _dominant: Option<String>, _at: Duration) {}

    /// The coordinator updated the job (pins, names, layout) at call time `at`.
    fn updated(&mut self, _update: &super::JobUpdate, _at: Duration) {}

    /// The first frame is encoded: media flows into the outputs.
    fn media_flowing(&mut self, _live: &mut Live) {}

    /// A message of the media pipeline; errors of its own elements, parts of its files.
    fn on_message(&mut self, _message: &gst::Message, _live: &mut Live) -> anyhow::Result<Claim> {
        Ok(Claim::NotMine)
    }

    /// A part of a recording opened or closed.
    fn on_part(&mut self, _part: &PartEvent, _live: &mut Live) -> anyhow::Result<()> {
        Ok(())
    }

    /// On every wake of the session while it runs: store what is new, notice a start.
    fn tick(&mut self, _live: &mut Live) -> anyhow::Result<()> {
        Ok(())
    }

    /// The job begins to end (a stop, the end of the call): the stream is ending.
    fn job_ending(&mut self, _live: &mut Live) {}

    /// The pipeline has stopped: what was made is announced and handed to the store. An error
    /// fails the job (the other outputs still wind up).
    fn wind_up(&mut self, _live: &mut Live) -> anyhow::Result<()> {
        Ok(())
    }

    /// The job ended without failing: the last files are stored.
    fn store_rest(&mut self, _live: &mut Live) -> anyhow::Result<()> {
        Ok(())
    }

    /// The event that ends it once every file of the job is stored, for the outputs announced
    /// stopped only then.
    fn stopped_once_stored(&self) -> Option<EventBody> {
        None
    }
}
