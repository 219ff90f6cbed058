//! Control messages for a running job: each one handed to the module of the output it names,
//! and the answer that goes back to the sender. What each output does on a start, a stop or a
//! pause is in its own module (`OutputModule`).

use super::lifecycle::Lifecycles;
use super::output::{Outputs, module_of};
use super::{
    Emit, JobControl, JobIdentity, OutputKind, PausableOutput, call::LiveCall, call_time_now,
    secrets_of_refused,
};
use crate::events::EventBody;
use crate::job::Job;
use crate::media::Composite;
use crate::storage::Uploader;

/// What a control message acts on.
pub(super) struct Running<'a, 's, 'e> {
    pub graph: &'a mut Composite,
    pub call: &'a mut LiveCall,
    pub outputs: &'a mut Outputs,
    pub uploader: &'a mut Uploader<'s, 'e>,
    pub lifecycles: &'a Lifecycles<'a>,
    /// Validation warnings not carried by a started event yet.
    pub warnings: &'a mut Vec<String>,
    pub waker: &'a super::Waker,
    /// The speech model, for a transcription started during the call.
    pub whisper_model: &'a std::path::Path,
    pub job: &'a Job,
    pub id: &'a JobIdentity,
    /// Where the local media a section names must be.
    pub media_dir: &'a std::path::Path,
    pub emit: Emit<'a>,
}

impl Running<'_, '_, '_> {
    /// The job with an `egress start` section added, checked as a part of it: the refusal names
    /// each field that is wrong, without secrets.
    pub fn checked_section(&self, output: OutputKind, section: &serde_json::Value) -> Result<Job, String> {
        let intake = crate::job::Intake::below(self.media_dir);
        crate::job::with_added_section(self.job, output.name(), section, &intake).map_err(|problems| {
            let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let mut secrets = self.job.secrets();
            secrets.extend(secrets_of_refused(&section.to_string()));
            crate::redact::redact(
                &format!("the {} section: {}", output.name(), said.join("; ")),
                &secrets,
            )
        })
    }

    /// The job's spool folder.
    pub fn spool(&self) -> std::path::PathBuf {
        self.uploader.spool().dir.clone()
    }

    /// The wall-clock time of call time zero, for outputs that date what they take.
    pub fn call_start(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() - chrono::Duration::from_std(call_time_now(self.graph)).unwrap_or_default()
    }
}

/// The answer to the sender: what was done, or why nothing was.
pub(super) type Answer = Result<String, String>;

/// `done` when an event says the output changed (it is emitted), `refused` otherwise.
pub(super) fn announced(event: Option<EventBody>, emit: Emit, done: &str, refused: &str) -> Answer {
    match event {
        Some(event) => {
            emit(event);
            Ok(done.to_owned())
        }
        None => Err(refused.to_owned()),
    }
}

/// `{}` for a section not given (`egress start` without a file).
pub(super) fn or_empty(section: serde_json::Value) -> serde_json::Value {
    match section {
        serde_json::Value::Null => serde_json::json!({}),
        given => given,
    }
}

/// Whether a section was given: `egress start` without a file sends nothing or `{}`.
pub(super) fn given(section: &serde_json::Value) -> bool {
    match section {
        serde_json::Value::Null => false,
        serde_json::Value::Object(fields) => !fields.is_empty(),
        _ => true,
    }
}

/// Carries out one control message. A refusal (`Ok(Err)`) goes back to the sender and changes
/// nothing; an error fails the job.
pub(super) fn apply_control(control: JobControl, running: &mut Running) -> anyhow::Result<Answer> {
    Ok(match control {
        JobControl::Update(update) => {
            tracing::info!(egress_id = %running.id.egress_id, ?update, "job updated");
            running.call.update(&update, running.graph)?;
            let at = call_time_now(running.graph);
            for output in running.outputs.each() {
                output.updated(&update, at);
            }
            Ok("updated".into())
        }
        JobControl::Pause(which) => pause(running, which, true),
        JobControl::Resume(which) => pause(running, which, false),
        JobControl::Stop(which) => return (module_of(which.kind).stop)(running, &which),
        // A recording, HLS or an RTMP push joins the composite of its layout and size, and the
        // encoder of its size when one runs; stills, thumbnails and speech branch off what the
        // composite already decodes.
        JobControl::Start { output, section } => (module_of(output).start)(running, output, section),
    })
}

fn pause(running: &mut Running, which: PausableOutput, pause: bool) -> Answer {
    let kind = match which {
        PausableOutput::Recording => OutputKind::Recording,
        PausableOutput::Transcription => OutputKind::Transcription,
    };
    match module_of(kind).pause {
        Some(pause_or_resume) => pause_or_resume(running, pause),
        None => Err(format!("{} does not pause", kind.name())),
    }
}
