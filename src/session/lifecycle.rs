//! The lifecycle every output of a job goes through, and the gate that holds each output to
//! it: pending until it starts, running (paused or not, where pausing applies), then stopped or
//! failed, announced once. Events are checked here on their way out, whoever sends them (the
//! session, an output, the uploader), so an output can never be announced both stopped and
//! failed, nor ended twice.

use crate::events::{Event, EventBody, EventSink};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One output of a job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputId {
    Recording,
    /// The raw recording: every track's file and the manifest.
    RawRecording,
    IndividualRecording,
    Hls,
    /// A push, by its name.
    Rtmp(String),
    FrameRecording,
    Transcription,
    ClosedCaptions,
    Thumbnails,
}

impl std::fmt::Display for OutputId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputId::Recording => f.write_str("recording"),
            OutputId::RawRecording => f.write_str("raw_recording"),
            OutputId::IndividualRecording => f.write_str("individual_recording"),
            OutputId::Hls => f.write_str("hls"),
            OutputId::Rtmp(name) => write!(f, "rtmp:{name}"),
            OutputId::FrameRecording => f.write_str("frame_recording"),
            OutputId::Transcription => f.write_str("transcription"),
            OutputId::ClosedCaptions => f.write_str("closed_captions"),
            OutputId::Thumbnails => f.write_str("thumbnails"),
        }
    }
}

/// Where an output is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Asked for, not started yet (an encoder's first frame, a destination's first bytes).
    Pending,
    Running,
    Stopped,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Stopped | Phase::Failed)
    }
}

/// What happens to an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start,
    Pause,
    Resume,
    Stop,
    Fail,
    /// Files of the output could not be stored (said by the uploader): the output fails, even
    /// after it was announced stopped, since what it made is not where it was announced.
    Lost,
}

/// The state of one output: its phase, and whether it is paused (a pending output may be
/// paused before it starts; it then starts paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub phase: Phase,
    pub paused: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: Phase::Pending,
            paused: false,
        }
    }
}

impl Lifecycle {
    /// The state after `step`, or `None` when the step does not apply (its event is not sent).
    /// An ended output may start again (a recording restarted, a push of the same name): that
    /// begins a new run, which ends once more.
    pub fn after(self, step: Step) -> Option<Lifecycle> {
        let Lifecycle { phase, paused } = self;
        let live = !phase.is_terminal();
        let next = |phase, paused| Some(Lifecycle { phase, paused });
        match step {
            Step::Start if phase == Phase::Pending => next(Phase::Running, paused),
            Step::Start if phase.is_terminal() => next(Phase::Running, false),
            Step::Pause if live && !paused => next(phase, true),
            Step::Resume if live && paused => next(phase, false),
            Step::Stop if live => next(Phase::Stopped, false),
            Step::Fail if live => next(Phase::Failed, false),
            Step::Lost if phase != Phase::Failed => next(Phase::Failed, false),
            _ => None,
        }
    }
}

/// The output an event is about and what it says happened to it; `None` for the events that
/// are not about an output's life (parts ready, captions, frames). Each output's module says
/// which events are its own.
pub fn step_of(body: &EventBody) -> Option<(OutputId, Step)> {
    super::output::MODULES.iter().find_map(|m| (m.step_of)(body))
}

/// The `recording_type` of a recording's lifecycle event and the step it says.
pub fn recording_step(body: &EventBody) -> Option<(&str, Step)> {
    use EventBody as E;
    Some(match body {
        E::RecordingStarted { recording_type, .. } => (recording_type, Step::Start),
        E::RecordingPaused { recording_type } => (recording_type, Step::Pause),
        E::RecordingResumed { recording_type } => (recording_type, Step::Resume),
        E::RecordingStopped { recording_type } => (recording_type, Step::Stop),
        E::RecordingFailed { recording_type, .. } => (recording_type, Step::Fail),
        _ => return None,
    })
}

/// The failed event of an output; `None` for the thumbnails, which the seeds give no
/// lifecycle events.
pub fn failed_event(output: &OutputId, error: &str) -> Option<EventBody> {
    super::output::MODULES
        .iter()
        .find_map(|m| (m.failed)(output, error))
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    life: Lifecycle,
    /// Asked for by the job or a control message, or seen starting: it must end with an event.
    asked: bool,
}

/// Passes a job's events on, holding each output to its lifecycle: an event the lifecycle
/// does not allow (a second end, a pause of an ended output) is dropped with a warning.
pub struct Lifecycles<'a> {
    inner: &'a dyn EventSink,
    outputs: Mutex<BTreeMap<OutputId, Entry>>,
}

impl<'a> Lifecycles<'a> {
    pub fn new(inner: &'a dyn EventSink) -> Self {
        Lifecycles {
            inner,
            outputs: Mutex::default(),
        }
    }

    fn outputs(&self) -> std::sync::MutexGuard<'_, BTreeMap<OutputId, Entry>> {
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes an output the job asked for: it must end with an event. One that ended starts a
    /// new run (pending again).
    pub fn register(&self, output: OutputId) {
        let mut outputs = self.outputs();
        let entry = outputs.entry(output).or_default();
        if entry.life.phase.is_terminal() {
            entry.life = Lifecycle::default();
        }
        entry.asked = true;
    }

    #[cfg(test)]
    pub fn state(&self, output: &OutputId) -> Lifecycle {
        self.outputs().get(output).map(|e| e.life).unwrap_or_default()
    }

    /// The outputs asked for that have not ended: those a failure of the job fails.
    pub fn unfinished(&self) -> Vec<OutputId> {
        self.outputs()
            .iter()
            .filter(|(_, e)| e.asked && !e.life.phase.is_terminal())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Announces every unfinished output failed with `error`.
    pub fn fail_unfinished(
        &self,
        call_cid: &str,
        egress_id: &str,
        error: &str,
        decorate: &dyn Fn(Event) -> Event,
    ) {
        for output in self.unfinished() {
            if let Some(body) = failed_event(&output, error) {
                self.emit(&decorate(Event::new(call_cid, egress_id, body)));
            }
        }
    }
}

impl Lifecycles<'_> {
    /// The sink of the uploader: a failure it announces is a loss of files.
    pub fn losses(&self) -> Losses<'_, '_> {
        Losses(self)
    }

    fn pass(&self, event: &Event, lost: bool) {
        let step = step_of(&event.body).map(|(output, step)| match (step, lost) {
            (Step::Fail, true) => (output, Step::Lost),
            _ => (output, step),
        });
        if let Some((output, step)) = step {
            let mut outputs = self.outputs();
            let entry = outputs.entry(output.clone()).or_default();
            match entry.life.after(step) {
                Some(next) => {
                    entry.life = next;
                    entry.asked |= step == Step::Start;
                }
                None => {
                    tracing::warn!(
                        output = %output,
                        ?step,
                        state = ?entry.life,
                        event = %event.type_name(),
                        "event left out: the output's lifecycle does not allow it"
                    );
                    return;
                }
            }
        }
        self.inner.emit(event);
    }
}

impl EventSink for Lifecycles<'_> {
    fn emit(&self, event: &Event) {
        self.pass(event, false);
    }
}

/// Events of the uploader, whose failures are losses of files (`Step::Lost`).
pub struct Losses<'l, 'a>(&'l Lifecycles<'a>);

impl EventSink for Losses<'_, '_> {
    fn emit(&self, event: &Event) {
        self.0.pass(event, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::COMPOSITE;

    #[derive(Default)]
    struct Collected(Mutex<Vec<EventBody>>);

    impl EventSink for Collected {
        fn emit(&self, event: &Event) {
            self.0.lock().unwrap().push(event.body.clone());
        }
    }

    fn body(output: &OutputId, step: Step) -> Option<EventBody> {
        let composite = || COMPOSITE.to_owned();
        let name = |o: &OutputId| match o {
            OutputId::Rtmp(n) => n.clone(),
            _ => unreachable!(),
        };
        Some(match (output, step) {
            (_, Step::Fail) => failed_event(output, "broken")?,
            (OutputId::Recording, Step::Start) => EventBody::RecordingStarted {
                recording_type: composite(),
                warnings: vec![],
            },
            (OutputId::Recording, Step::Pause) => EventBody::RecordingPaused {
                recording_type: composite(),
            },
            (OutputId::Recording, Step::Resume) => EventBody::RecordingResumed {
                recording_type: composite(),
            },
            (OutputId::Recording, Step::Stop) => EventBody::RecordingStopped {
                recording_type: composite(),
            },
            (OutputId::Rtmp(_), Step::Start) => EventBody::RtmpStarted {
                name: name(output),
                warnings: vec![],
            },
            (OutputId::Rtmp(_), Step::Stop) => EventBody::RtmpStopped { name: name(output) },
            (OutputId::Transcription, Step::Start) => EventBody::TranscriptionStarted {},
            (OutputId::Transcription, Step::Pause) => EventBody::TranscriptionPaused {},
            (OutputId::Transcription, Step::Resume) => EventBody::TranscriptionResumed {},
            (OutputId::Transcription, Step::Stop) => EventBody::TranscriptionStopped {},
            (OutputId::Hls, Step::Stop) => EventBody::HlsStopped {},
            (OutputId::FrameRecording, Step::Stop) => EventBody::FrameRecordingStopped {},
            (OutputId::ClosedCaptions, Step::Start) => EventBody::ClosedCaptionsStarted {},
            (OutputId::ClosedCaptions, Step::Stop) => EventBody::ClosedCaptionsStopped {},
            _ => return None,
        })
    }

    /// Every sequence of `len` steps over `steps`.
    fn sequences(steps: &[Step], len: usize) -> Vec<Vec<Step>> {
        (0..len).fold(vec![vec![]], |all, _| {
            all.iter()
                .flat_map(|seq| {
                    steps.iter().map(move |s| {
                        let mut longer = seq.clone();
                        longer.push(*s);
                        longer
                    })
                })
                .collect()
        })
    }

    /// Drives every sequence of up to six steps, ended by a failure of the whole job (a
    /// pipeline error), through the gate for each kind of output, and checks what went out: each
    /// run (from one start to the next) ends with exactly one terminal event, nothing but a new
    /// start follows an end, pauses and resumes alternate, and the last state is what the model
    /// says.
    #[test]
    fn every_sequence_of_steps_ends_each_run_exactly_once() {
        let all = [Step::Start, Step::Pause, Step::Resume, Step::Stop, Step::Fail];
        let outputs = [
            (OutputId::Recording, true),
            (OutputId::Transcription, true),
            (OutputId::Rtmp("a".into()), false),
            (OutputId::ClosedCaptions, false),
        ];
        let mut checked = 0;
        for (output, pausable) in &outputs {
            let steps: Vec<Step> = all
                .iter()
                .copied()
                .filter(|s| *pausable || !matches!(s, Step::Pause | Step::Resume))
                .collect();
            for len in 0..=6 {
                for sequence in sequences(&steps, len) {
                    let sent = Collected::default();
                    let gate = Lifecycles::new(&sent);
                    gate.register(output.clone());
                    let mut model = Lifecycle::default();
                    for step in &sequence {
                        if let Some(next) = model.after(*step) {
                            model = next;
                        }
                        if let Some(b) = body(output, *step) {
                            gate.emit(&Event::new("default:c", "eg_1", b));
                        }
                    }
                    assert_eq!(gate.state(output), model, "{output} after {sequence:?}");
                    // The job fails (a pipeline error): whatever is still running fails.
                    gate.fail_unfinished("default:c", "eg_1", "pipeline error", &|e| e);
                    let out = sent.0.lock().unwrap();
                    let said: Vec<Step> = out.iter().filter_map(step_of).map(|(_, s)| s).collect();
                    let terminal = |s: &Step| matches!(s, Step::Stop | Step::Fail);
                    // Split into runs at each start that follows an end.
                    let mut runs: Vec<Vec<Step>> = vec![vec![]];
                    for s in &said {
                        let ended = runs.last().is_some_and(|r| r.iter().any(terminal));
                        if ended {
                            assert_eq!(
                                *s,
                                Step::Start,
                                "{output}: {s:?} after the end in {said:?} from {sequence:?}"
                            );
                            runs.push(vec![]);
                        }
                        runs.last_mut().unwrap().push(*s);
                    }
                    for run in &runs {
                        let ends = run.iter().filter(|s| terminal(s)).count();
                        assert_eq!(ends, 1, "{output}: run {run:?} of {said:?} from {sequence:?}");
                        assert!(run.iter().filter(|s| **s == Step::Start).count() <= 1, "{run:?}");
                        let mut paused = false;
                        for s in run {
                            match s {
                                Step::Pause => {
                                    assert!(!paused, "{output}: paused twice in {run:?}");
                                    paused = true;
                                }
                                Step::Resume => {
                                    assert!(paused, "{output}: resumed unpaused in {run:?}");
                                    paused = false;
                                }
                                _ => {}
                            }
                        }
                    }
                    assert!(gate.unfinished().is_empty());
                    assert!(gate.state(output).phase.is_terminal());
                    checked += 1;
                }
            }
        }
        // 2 pausable kinds with 5 steps and 2 others with 3, up to 6 steps each.
        assert_eq!(
            checked,
            2 * (0..=6).map(|n| 5usize.pow(n)).sum::<usize>()
                + 2 * (0..=6).map(|n| 3usize.pow(n)).sum::<usize>()
        );
    }

    #[test]
    fn an_output_not_asked_for_is_not_failed_with_the_job() {
        let sent = Collected::default();
        let gate = Lifecycles::new(&sent);
        gate.register(OutputId::Recording);
        // A pause of the transcript in a job with captions only names an output never asked for.
        gate.emit(&Event::new(
            "default:c",
            "eg_1",
            EventBody::TranscriptionPaused {},
        ));
        gate.fail_unfinished("default:c", "eg_1", "boom", &|e| e);
        let out = sent.0.lock().unwrap();
        let failed: Vec<_> = out
            .iter()
            .filter_map(step_of)
            .filter(|(_, s)| *s == Step::Fail)
            .collect();
        assert_eq!(failed, vec![(OutputId::Recording, Step::Fail)]);
    }

    #[test]
    fn files_lost_after_the_stop_fail_the_output_once() {
        let sent = Collected::default();
        let gate = Lifecycles::new(&sent);
        gate.register(OutputId::Recording);
        let recording = || COMPOSITE.to_owned();
        gate.emit(&Event::new(
            "c",
            "e",
            EventBody::RecordingStopped {
                recording_type: recording(),
            },
        ));
        let lost = failed_event(&OutputId::Recording, "the part could not be stored").unwrap();
        gate.losses().emit(&Event::new("c", "e", lost.clone()));
        gate.losses().emit(&Event::new("c", "e", lost));
        gate.fail_unfinished("c", "e", "boom", &|e| e);
        let out = sent.0.lock().unwrap();
        let steps: Vec<Step> = out.iter().filter_map(step_of).map(|(_, s)| s).collect();
        assert_eq!(
            steps,
            vec![Step::Stop, Step::Fail],
            "stopped, then failed once for the loss"
        );
    }

    #[test]
    fn a_restarted_output_ends_again() {
        let sent = Collected::default();
        let gate = Lifecycles::new(&sent);
        let push = OutputId::Rtmp("b".into());
        gate.register(push.clone());
        gate.emit(&Event::new("c", "e", EventBody::RtmpStopped { name: "b".into() }));
        gate.emit(&Event::new("c", "e", EventBody::RtmpStopped { name: "b".into() }));
        assert_eq!(sent.0.lock().unwrap().len(), 1, "the second stop is left out");
        gate.register(push.clone());
        assert_eq!(gate.state(&push).phase, Phase::Pending);
        gate.fail_unfinished("c", "e", "boom", &|e| e);
        assert_eq!(gate.state(&push).phase, Phase::Failed);
        assert_eq!(sent.0.lock().unwrap().len(), 2);
    }
}
