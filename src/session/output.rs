//! The one interface every output of a session implements, and the registration of each kind
//! of output. The session drives its outputs through `SessionOutput` alone, in the order their
//! modules are registered (`MODULES`); what an output may do to the running call is in `Live`.
//! Its lifecycle events (started, paused, stopped, failed) are held to `lifecycle::Lifecycle` on
//! their way out.
//!
//! Adding an output: a module with a type that implements `SessionOutput` and an
//! `OutputModule` (how a job's section attaches it, how control messages start, stop and pause
//! it, which events are its lifecycle), registered by one line in `MODULES`. Its name in the
//! contract (`OutputKind`, `OutputId`), its job section and its events are typed like the rest
//! of the contract.

use super::call::LiveCall;
use super::call::MixAssignment;
use super::control::{Answer, Running};
use super::lifecycle::{OutputId, Step};
use super::{Emit, JobIdentity, OutputKind, StoppableOutput, Waker};
use crate::events::EventBody;
use crate::job::Job;
use crate::media::{Composite, PartEvent};
use crate::storage::Uploader;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use std::time::{Duration, Instant};

/// Every kind of output, in the order the session drives them: registering an output is one
/// line here. The modules are statics, so that `Outputs::add_of` can find one by its address.
pub(super) static MODULES: &[&OutputModule] = &[
    &super::recording::MODULE,
    &super::rtmp::MODULE,
    &super::frames::MODULE,
    &super::thumbnails::MODULE,
    &super::transcription::MODULE,
    &super::hls::MODULE,
    &super::raw::MODULE,
    &super::individual::MODULE,
];

/// The module of an `--output` kind.
pub(super) fn module_of(kind: OutputKind) -> &'static OutputModule {
    MODULES
        .iter()
        .find(|m| m.kinds.contains(&kind))
        .copied()
        .unwrap_or_else(|| unreachable!("every output kind has a module in MODULES: {kind:?}"))
}

/// One kind of output, as the session knows it: everything that differs between kinds lives in
/// the kind's module and reaches the session through this.
pub(super) struct OutputModule {
    /// The `--output` names it answers to (the transcription: its transcript and captions).
    pub kinds: &'static [OutputKind],
    /// The outputs of this kind a job asks for from its start: each must end with an event.
    pub asked: fn(&Job) -> Vec<OutputId>,
    /// Attaches the job's own outputs of this kind to the graph before the call.
    pub attach: fn(&mut Attaching) -> anyhow::Result<Attached>,
    /// `egress start EGRESS_ID --output KIND [SECTION]`: adds the output to the running call
    /// (`Null` when no section was given). A refusal changes nothing.
    pub start: fn(&mut Running, OutputKind, serde_json::Value) -> Answer,
    /// `egress stop EGRESS_ID --output KIND[:NAME]`. A refusal changes nothing; an error fails
    /// the job.
    pub stop: fn(&mut Running, &StoppableOutput) -> anyhow::Result<Answer>,
    /// `egress pause|resume EGRESS_ID --output KIND` (`true` to pause), for the kinds that pause.
    pub pause: Option<fn(&mut Running, bool) -> Answer>,
    /// What an event says happened to one of its outputs; `None` for other events.
    pub step_of: fn(&EventBody) -> Option<(OutputId, Step)>,
    /// The failed event of one of its outputs (`None` when the seeds give it none).
    pub failed: fn(&OutputId, &str) -> Option<EventBody>,
}

/// The outputs a module attached.
pub(super) type Attached = Vec<Box<dyn SessionOutput>>;

/// What a module attaching its job's outputs before the call may use.
pub(super) struct Attaching<'a> {
    pub graph: &'a mut Composite,
    pub job: &'a Job,
    pub id: &'a JobIdentity,
    /// Which composite each video output takes its picture from.
    pub mixes: &'a MixAssignment,
    pub spool: &'a std::path::Path,
    pub waker: &'a Waker,
    pub whisper_model: &'a std::path::Path,
    /// The source sends a keyframe when asked: hidden tracks may go undecoded, and stills may
    /// come from keyframes asked for.
    pub keyframes_on_request: bool,
}

/// The outputs of a running job, in the order their modules are registered.
#[derive(Default)]
pub(super) struct Outputs {
    all: Vec<(usize, Box<dyn SessionOutput>)>,
    /// The secrets of outputs started during the call, kept out of the logs while it runs.
    pub started_secrets: Vec<crate::redact::Registration>,
}

impl Outputs {
    /// Adds an output of the module registered at `module` in `MODULES`, after the others of
    /// its kind.
    pub fn add(&mut self, module: usize, output: Box<dyn SessionOutput>) {
        let at = self.all.partition_point(|(m, _)| *m <= module);
        self.all.insert(at, (module, output));
    }

    /// Adds an output of `module`, after the others of its kind.
    pub fn add_of(&mut self, module: &'static OutputModule, output: impl SessionOutput + 'static) {
        let index = MODULES
            .iter()
            .position(|m| std::ptr::eq(*m, module))
            .unwrap_or(MODULES.len());
        self.add(index, Box::new(output));
    }

    /// Every output, in the order the session drives them.
    pub fn each(&mut self) -> impl Iterator<Item = &mut (dyn SessionOutput + 'static)> {
        self.all.iter_mut().map(|(_, o)| o.as_mut())
    }

    /// Every output of type `T`.
    pub fn all_of<T: SessionOutput + 'static>(&mut self) -> impl Iterator<Item = &mut T> {
        self.all
            .iter_mut()
            .filter_map(|(_, o)| o.as_mut().as_any().downcast_mut::<T>())
    }

    /// The output of type `T`, where the job has one.
    pub fn one<T: SessionOutput + 'static>(&mut self) -> Option<&mut T> {
        self.all_of::<T>().next()
    }

    /// Takes out every output of type `T` for which `drop` holds.
    pub fn remove_where<T: SessionOutput + 'static>(&mut self, drop: impl Fn(&mut T) -> bool) {
        self.all
            .retain_mut(|(_, o)| o.as_mut().as_any().downcast_mut::<T>().is_none_or(|t| !drop(t)));
    }
}

/// Lets the session find an output of a given type among its outputs.
pub(super) trait AsAny {
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

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

pub(super) trait SessionOutput: AsAny {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    struct Probe(OutputId);

    impl SessionOutput for Probe {
        fn output_id(&self) -> OutputId {
            self.0.clone()
        }
        fn running(&self) -> bool {
            true
        }
    }

    struct Other;

    impl SessionOutput for Other {
        fn output_id(&self) -> OutputId {
            OutputId::Hls
        }
        fn running(&self) -> bool {
            false
        }
    }

    #[test]
    fn outputs_are_found_by_type_and_kept_in_the_order_of_their_modules() {
        let mut outputs = Outputs::default();
        outputs.add(5, Box::new(Other));
        outputs.add(1, Box::new(Probe(OutputId::Rtmp("a".into()))));
        outputs.add(1, Box::new(Probe(OutputId::Rtmp("b".into()))));
        outputs.add(0, Box::new(Probe(OutputId::Recording)));
        let order: Vec<String> = outputs.each().map(|o| o.output_id().to_string()).collect();
        assert_eq!(order, ["recording", "rtmp:a", "rtmp:b", "hls"]);
        assert_eq!(outputs.all_of::<Probe>().count(), 3);
        assert!(outputs.one::<Other>().is_some());
        outputs.remove_where::<Probe>(|p| p.0 == OutputId::Rtmp("a".into()));
        let order: Vec<String> = outputs.each().map(|o| o.output_id().to_string()).collect();
        assert_eq!(order, ["recording", "rtmp:b", "hls"]);
    }

    #[test]
    fn an_output_started_during_the_call_takes_the_place_of_its_module() {
        let mut outputs = Outputs::default();
        outputs.add(0, Box::new(Probe(OutputId::Recording)));
        outputs.add(5, Box::new(Other));
        outputs.add_of(&super::super::rtmp::MODULE, Probe(OutputId::Rtmp("c".into())));
        let order: Vec<String> = outputs.each().map(|o| o.output_id().to_string()).collect();
        assert_eq!(order, ["recording", "rtmp:c", "hls"]);
    }

    #[test]
    fn every_output_kind_has_one_module() {
        for kind in OutputKind::value_variants() {
            let modules = MODULES.iter().filter(|m| m.kinds.contains(kind)).count();
            assert_eq!(modules, 1, "{kind:?}");
        }
    }

    #[test]
    fn each_lifecycle_event_belongs_to_one_module() {
        let failed: Vec<(OutputId, EventBody)> = [
            OutputId::Recording,
            OutputId::RawRecording,
            OutputId::IndividualRecording,
            OutputId::Hls,
            OutputId::Rtmp("a".into()),
            OutputId::FrameRecording,
            OutputId::Transcription,
            OutputId::ClosedCaptions,
        ]
        .into_iter()
        .map(|id| {
            let owners: Vec<EventBody> = MODULES.iter().filter_map(|m| (m.failed)(&id, "e")).collect();
            assert_eq!(owners.len(), 1, "{id}");
            (id, owners.into_iter().next().unwrap_or_else(|| unreachable!()))
        })
        .collect();
        for (id, event) in failed {
            let claims: Vec<_> = MODULES.iter().filter_map(|m| (m.step_of)(&event)).collect();
            assert_eq!(claims, vec![(id.clone(), Step::Fail)], "{id}");
        }
        assert!(
            MODULES
                .iter()
                .all(|m| (m.failed)(&OutputId::Thumbnails, "e").is_none())
        );
    }

    #[test]
    fn a_stop_names_a_kind_and_for_rtmp_a_push() {
        for text in ["recording", "thumbnails", "rtmp", "rtmp:backup", "raw_recording"] {
            let parsed: StoppableOutput = text.parse().unwrap();
            assert_eq!(String::from(parsed), text);
        }
        assert_eq!("rtmp:b".parse(), Ok(StoppableOutput::push("b")));
        for wrong in ["hls:main", "rtmp:", "video", ""] {
            let error = wrong.parse::<StoppableOutput>().unwrap_err();
            assert!(error.starts_with("expected recording, hls, frame_recording, transcription, closed_captions, thumbnails, individual_recording, raw_recording, rtmp or rtmp:NAME"), "{error}");
        }
    }
}
