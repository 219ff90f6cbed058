//! Control messages for a running job: each one carried out on the outputs, and the answer
//! that goes back to the sender.

use super::lifecycle::{Lifecycles, OutputId};
use super::output::SessionOutput;
use super::{
    Emit, JobControl, JobIdentity, OutputKind, Outputs, PausableOutput, StoppableOutput, call::LiveCall,
    call_time_now, frames::FrameOutput, hls::HlsOutput, individual::IndividualRecordingOutput,
    raw::RawRecordingOutput, recording::RecordingOutput, rtmp::RtmpOutput, secrets_of_refused, takes_sound,
    thumbnails::ThumbnailOutput, transcription::TranscriptionOutput,
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
}

/// The answer to the sender: what was done, or why nothing was.
pub(super) type Answer = Result<String, String>;

/// `done` when an event says the output changed (it is emitted), `refused` otherwise.
fn announced(event: Option<EventBody>, emit: Emit, done: &str, refused: &str) -> Answer {
    match event {
        Some(event) => {
            emit(event);
            Ok(done.to_owned())
        }
        None => Err(refused.to_owned()),
    }
}

/// Carries out one control message. A refusal (`Ok(Err)`) goes back to the sender and changes
/// nothing; an error fails the job.
pub(super) fn apply_control(
    control: JobControl,
    job: &Job,
    media_dir: &std::path::Path,
    id: &JobIdentity,
    running: &mut Running,
    emit: Emit,
) -> anyhow::Result<Answer> {
    let outputs = &mut *running.outputs;
    let graph = &mut *running.graph;
    Ok(match control {
        JobControl::Update(update) => {
            tracing::info!(egress_id = %id.egress_id, ?update, "job updated");
            running.call.update(&update, graph)?;
            let at = call_time_now(graph);
            for output in outputs.each() {
                output.updated(&update, at);
            }
            Ok("updated".into())
        }
        JobControl::Pause(PausableOutput::Recording) => announced(
            outputs.recording.as_mut().and_then(|r| r.pause()),
            emit,
            "recording paused",
            "the recording is not running (nothing to pause)",
        ),
        JobControl::Resume(PausableOutput::Recording) => announced(
            outputs.recording.as_mut().and_then(|r| r.resume()),
            emit,
            "recording resumed",
            "the recording is not paused",
        ),
        JobControl::Pause(PausableOutput::Transcription) => {
            let at = call_time_now(graph);
            announced(
                outputs.transcription.as_mut().and_then(|t| t.pause(at)),
                emit,
                "transcription paused",
                "the transcription is not running (nothing to pause)",
            )
        }
        JobControl::Resume(PausableOutput::Transcription) => {
            let at = call_time_now(graph);
            announced(
                outputs.transcription.as_mut().and_then(|t| t.resume(at)),
                emit,
                "transcription resumed",
                "the transcription is not paused",
            )
        }
        JobControl::Stop(StoppableOutput::Recording) => announced(
            outputs.recording.as_mut().and_then(|r| r.stop_alone()),
            emit,
            "recording stopped; its last part is stored and announced",
            "the recording is not running",
        ),
        JobControl::Stop(StoppableOutput::Hls) => match outputs.hls.as_mut().is_some_and(|h| h.stop_alone()) {
            true => Ok(
                "hls stopping; call.hls_broadcasting_stopped follows once its playlists are ended and stored"
                    .into(),
            ),
            false => Err("hls is not running".into()),
        },
        JobControl::Stop(StoppableOutput::FrameRecording) => {
            let stopped = match outputs.frames.as_mut() {
                Some(frames) => {
                    frames.stop_alone(running.uploader, running.call, id, emit, running.warnings)?
                }
                None => false,
            };
            match stopped {
                true => Ok("frame recording stopped; call.frame_recording_stopped follows the stills taken until now".into()),
                false => Err("the frame recording is not running".into()),
            }
        }
        JobControl::Stop(StoppableOutput::Transcription) => {
            let at = call_time_now(graph);
            match outputs.transcription.as_mut().is_some_and(|t| t.stop_transcript(at)) {
                true => Ok("transcription stopping; the transcript is stored and announced once what was said is transcribed".into()),
                false => Err("the transcription is not running".into()),
            }
        }
        JobControl::Stop(StoppableOutput::Thumbnails) => {
            match outputs.thumbnails.as_mut().is_some_and(|t| t.stop_alone()) {
                true => Ok("thumbnails stopped; the last one stays stored".into()),
                false => Err("the thumbnails are not running".into()),
            }
        }
        JobControl::Stop(StoppableOutput::IndividualRecording) => announced(
            outputs
                .individual
                .as_mut()
                .and_then(|i| i.stop_alone(running.graph)),
            emit,
            "individual recording stopped; each participant's last part is stored and announced",
            "the individual recording is not running",
        ),
        JobControl::Stop(StoppableOutput::RawRecording) => {
            match outputs.raw.as_mut().is_some_and(|r| r.stop_alone(graph)) {
                true => Ok("raw recording stopping; its files and manifest are stored and announced, then call.recording_stopped (raw)".into()),
                false => Err("the raw recording is not running".into()),
            }
        }
        JobControl::Stop(StoppableOutput::ClosedCaptions) => announced(
            outputs.transcription.as_mut().and_then(|t| t.stop_captions()),
            emit,
            "closed captions stopped",
            "the closed captions are not running",
        ),
        JobControl::Stop(StoppableOutput::Rtmp(name)) => {
            let chosen = outputs
                .rtmp
                .iter_mut()
                .filter(|push| name.as_deref().is_none_or(|n| push.name() == n));
            let stopped = chosen.fold(0, |n, push| n + usize::from(push.stop_alone(graph, emit)));
            match (stopped, &name) {
                (0, Some(name)) => Err(format!("no rtmp push named {name:?} is running")),
                (0, None) => Err("no rtmp push is running".into()),
                (n, _) => Ok(format!("{n} rtmp push(es) stopped")),
            }
        }
        JobControl::Start { output, section } => {
            start_output(output, section, job, id, media_dir, running, emit)
        }
    })
}

/// Adds an output to the running call. A recording, HLS or an RTMP push joins the composite of
/// its layout and size, and the encoder of its size when one runs; stills, thumbnails and
/// speech branch off what the composite already decodes.
fn start_output(
    output: OutputKind,
    section: serde_json::Value,
    job: &Job,
    id: &JobIdentity,
    media_dir: &std::path::Path,
    running: &mut Running,
    emit: Emit,
) -> Answer {
    match output {
        OutputKind::Rtmp => start_push(section, job, media_dir, running),
        OutputKind::Recording => start_recording(section, job, media_dir, running),
        OutputKind::Hls => start_hls(section, job, id, media_dir, running),
        OutputKind::FrameRecording => start_frames(section, job, id, media_dir, running, emit),
        OutputKind::Thumbnails => start_thumbnails(section, job, media_dir, running),
        OutputKind::IndividualRecording => start_individual(section, job, media_dir, running),
        OutputKind::RawRecording => start_raw(section, job, id, media_dir, running),
        OutputKind::Transcription | OutputKind::ClosedCaptions => {
            start_speech(output, section, job, media_dir, running, emit)
        }
    }
}

/// The job with an `egress start` section added, checked as a part of it: the refusal names
/// each field that is wrong, without secrets.
fn checked_section(
    job: &Job,
    output: OutputKind,
    section: &serde_json::Value,
    media_dir: &std::path::Path,
) -> Result<Job, String> {
    let intake = crate::job::Intake::below(media_dir);
    crate::job::with_added_section(job, output.name(), section, &intake).map_err(|problems| {
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let mut secrets = job.secrets();
        secrets.extend(secrets_of_refused(&section.to_string()));
        crate::redact::redact(
            &format!("the {} section: {}", output.name(), said.join("; ")),
            &secrets,
        )
    })
}

fn start_push(
    section: serde_json::Value,
    job: &Job,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    let push = checked_section(job, OutputKind::Rtmp, &section, media_dir)?
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
        .rtmp
        .iter()
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
    running.outputs.rtmp.retain(|p| p.name() != name);
    running.outputs.rtmp.push(RtmpOutput::new(push, mix));
    running.lifecycles.register(OutputId::Rtmp(name.clone()));
    Ok(format!(
        "rtmp push {name:?} starting; call.rtmp_broadcast_started follows once the destination takes the stream"
    ))
}

/// Starts the composite recording: the job's own again after a stop (same settings, a new
/// part), or one the job did not have, from the section (`{}` for the defaults). Its first part
/// opens at the next keyframe of the shared encoder and is announced started then.
fn start_recording(
    section: serde_json::Value,
    job: &Job,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    // `{}` (what `egress start` sends without a file) asks for nothing in particular.
    let given = match &section {
        serde_json::Value::Null => false,
        serde_json::Value::Object(fields) => !fields.is_empty(),
        _ => true,
    };
    let section = if section.is_null() {
        serde_json::json!({})
    } else {
        section
    };
    const STARTING: &str = "call.recording_started follows when its part opens, at the next keyframe (asked of the encoder at once unless HLS keeps its interval)";
    if let Some(recording) = running.outputs.recording.as_mut() {
        if !recording.stopped_alone {
            return Err("the recording is running already".into());
        }
        let asked = checked_section(job, OutputKind::Recording, &section, media_dir)?.recording;
        let same = |a: &Option<crate::job::RecordingConfig>| serde_json::to_value(a).ok();
        if given && same(&asked) != same(&job.recording) {
            return Err("the recording section: a recording of this job starts again with the settings it had; give no section, or the same".into());
        }
        if !recording.restart() {
            return Err("the recording cannot start again: the call is ending".into());
        }
        running.lifecycles.register(OutputId::Recording);
        if let Some((mix, quality)) = recording.video() {
            running.graph.ask_keyframe(mix, quality);
        }
        return Ok(format!("recording starting again; {STARTING}"));
    }
    let with_recording = checked_section(job, OutputKind::Recording, &section, media_dir)?;
    let config = with_recording
        .recording
        .as_ref()
        .ok_or_else(|| "the recording section: expected an object".to_owned())?;
    let mix = match config.audio_only {
        true => None,
        false => {
            let layout = section.get("layout").map(|_| &config.layout);
            Some(running.call.mix_for(layout, config.quality)?)
        }
    };
    let spool = running.uploader.spool().dir.clone();
    let mut recording = RecordingOutput::attach(running.graph, &with_recording, config, mix, &spool)
        .map_err(|e| format!("the recording cannot start: {e:#}"))?;
    recording.started_during_the_call();
    if let Some(mix) = mix {
        running.graph.ask_keyframe(mix, config.quality);
    }
    running.outputs.recording = Some(recording);
    running.lifecycles.register(OutputId::Recording);
    Ok(format!("recording starting; {STARTING}"))
}

/// Starts a live HLS broadcast the job did not have, from the section (the job's shape). It
/// joins the running composite of its layout (the recording's when it names none) and the
/// encoders of its sizes; `call.hls_broadcasting_started` follows once every rendition has a
/// segment stored. A broadcast that was stopped does not start again: its playlists are ended.
fn start_hls(
    section: serde_json::Value,
    job: &Job,
    id: &JobIdentity,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    if let Some(hls) = &running.outputs.hls {
        return Err(match hls.running() {
            true => "hls is running already".into(),
            false => {
                "hls ran in this job and was stopped; its playlists are ended, so it does not start again"
                    .into()
            }
        });
    }
    let with_hls = checked_section(job, OutputKind::Hls, &section, media_dir)?;
    let config = with_hls
        .hls
        .as_ref()
        .ok_or_else(|| "the hls section: expected an object".to_owned())?;
    let largest = config
        .quality_tracks
        .iter()
        .filter_map(|t| t.video())
        .max_by_key(|q| q.size().0 * q.size().1);
    let mix = match largest {
        Some(quality) => Some(running.call.mix_for(config.layout.as_ref(), quality)?),
        None => None,
    };
    let spool = running.uploader.spool().dir.clone();
    let hls = HlsOutput::attach(running.graph, &with_hls, &id.egress_id, config, mix, &spool)
        .map_err(|e| format!("hls cannot start: {e:#}"))?;
    running.outputs.hls = Some(hls);
    running.lifecycles.register(OutputId::Hls);
    Ok(
        "hls starting; call.hls_broadcasting_started follows once every rendition has a segment stored"
            .into(),
    )
}

/// `{}` for a section not given (`egress start` without a file).
fn or_empty(section: serde_json::Value) -> serde_json::Value {
    match section {
        serde_json::Value::Null => serde_json::json!({}),
        given => given,
    }
}

/// The wall-clock time of call time zero, for outputs that date what they take.
fn call_start(graph: &Composite) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(call_time_now(graph)).unwrap_or_default()
}

/// Starts the frame recording during the call: a still of every camera and screen share per
/// interval from now, taken from the tracks the composite decodes already. One stopped before
/// starts again with the section given (the job's when none is).
fn start_frames(
    section: serde_json::Value,
    job: &Job,
    id: &JobIdentity,
    media_dir: &std::path::Path,
    running: &mut Running,
    emit: Emit,
) -> Answer {
    if running.outputs.frames.as_ref().is_some_and(|f| !f.stopped_alone) {
        return Err("the frame recording is running already".into());
    }
    if running.graph.mix_count() == 0 && running.outputs.frames.is_none() {
        return Err("the frame recording cannot start: this job takes no video from the call (it has no composite output)".into());
    }
    let section = match (&section, &job.frame_recording) {
        (serde_json::Value::Null, Some(config)) => {
            serde_json::to_value(config).map_err(|e| format!("the frame_recording section: {e}"))?
        }
        _ => or_empty(section),
    };
    let with_frames = checked_section(job, OutputKind::FrameRecording, &section, media_dir)?;
    let config = with_frames
        .frame_recording
        .as_ref()
        .ok_or_else(|| "the frame_recording section: expected an object".to_owned())?;
    let spool = running.uploader.spool().dir.clone();
    let mut frames = FrameOutput::attach(
        running.graph,
        &with_frames,
        id,
        config,
        &spool,
        false,
        running.waker,
    )
    .map_err(|e| format!("the frame recording cannot start: {e:#}"))?;
    frames.playing(call_start(running.graph));
    running.lifecycles.register(OutputId::FrameRecording);
    frames.start(emit, running.warnings);
    running.outputs.frames = Some(frames);
    Ok("frame recording started; a still of every camera and screen share follows each interval".into())
}

/// Starts the individual recording during the call: every participant whose tracks are in the
/// call gets a file from now on, and those who join later too. One stopped during the call
/// starts again with the settings it had.
fn start_individual(
    section: serde_json::Value,
    job: &Job,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    const STARTING: &str = "call.recording_started (individual) follows when the first file opens";
    if let Some(individual) = running.outputs.individual.as_mut() {
        if individual.running() {
            return Err("the individual recording is running already".into());
        }
        individual
            .restart(running.graph)
            .map_err(|e| format!("the individual recording cannot start again: {e:#}"))?;
        running.lifecycles.register(OutputId::IndividualRecording);
        return Ok(format!("individual recording starting again; {STARTING}"));
    }
    let with_individual = checked_section(
        job,
        OutputKind::IndividualRecording,
        &or_empty(section),
        media_dir,
    )?;
    let config = with_individual
        .individual_recording
        .as_ref()
        .ok_or_else(|| "the individual_recording section: expected an object".to_owned())?;
    // Pictures come from the tracks the composite decodes; without one, none is decoded.
    if !config.audio_only && running.graph.mix_count() == 0 {
        return Err("the individual recording cannot start with video: this job decodes no video (it has no composite output); ask for audio_only".into());
    }
    let spool = running.uploader.spool().dir.clone();
    let individual = IndividualRecordingOutput::attach(running.graph, &with_individual, config, &spool)
        .map_err(|e| format!("the individual recording cannot start: {e:#}"))?;
    running.outputs.individual = Some(individual);
    running.lifecycles.register(OutputId::IndividualRecording);
    Ok(format!("individual recording starting; {STARTING}"))
}

/// Starts a raw recording during the call: every encoded track in the call gets a file from its
/// next keyframe (asked of its sender), and tracks added later too. One started again after a
/// stop is a new raw recording beside the first (`SESSION_2`, its own manifest).
fn start_raw(
    section: serde_json::Value,
    job: &Job,
    id: &JobIdentity,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    let run = match &running.outputs.raw {
        Some(raw) if raw.running() => return Err("the raw recording is running already".into()),
        Some(raw) if !raw.finished() => {
            return Err("the raw recording is still closing its files; start it again once call.recording_stopped (raw) is announced".into());
        }
        Some(raw) => raw.run() + 1,
        None => 1,
    };
    checked_section(job, OutputKind::RawRecording, &or_empty(section), media_dir)?;
    let spool = running.uploader.spool().dir.clone();
    let mut raw = RawRecordingOutput::attach(running.graph, job, &id.session_id, &spool, running.waker, run)
        .map_err(|e| format!("the raw recording cannot start: {e:#}"))?;
    let at = call_time_now(running.graph);
    let call_start = chrono::Utc::now() - chrono::Duration::from_std(at).unwrap_or_default();
    raw.starting_during_the_call(&running.call.participants(), at, call_start);
    // A stopped one has stored and announced everything; this one takes its place.
    running.outputs.raw = Some(raw);
    running.lifecycles.register(OutputId::RawRecording);
    Ok("raw recording starting; call.recording_started (raw) follows when the first file opens".into())
}

/// Starts the call's thumbnail during the call, from the first composite's picture.
fn start_thumbnails(
    section: serde_json::Value,
    job: &Job,
    media_dir: &std::path::Path,
    running: &mut Running,
) -> Answer {
    if running.outputs.thumbnails.as_ref().is_some_and(|t| t.running()) {
        return Err("the thumbnails are running already".into());
    }
    if running.graph.mix_count() == 0 {
        return Err(
            "the thumbnails cannot start: this job has no composite picture to take them from".into(),
        );
    }
    let with_thumbnails = checked_section(job, OutputKind::Thumbnails, &or_empty(section), media_dir)?;
    let config = with_thumbnails
        .thumbnails
        .as_ref()
        .ok_or_else(|| "the thumbnails section: expected an object".to_owned())?;
    if !config.enabled {
        return Err("thumbnails.enabled: false asks for no thumbnails".into());
    }
    let spool = running.uploader.spool().dir.clone();
    let mut thumbnails =
        ThumbnailOutput::attach(running.graph, &with_thumbnails, config, 0, &spool, running.waker)
            .map_err(|e| format!("the thumbnails cannot start: {e:#}"))?;
    thumbnails.playing(call_start(running.graph));
    running.lifecycles.register(OutputId::Thumbnails);
    running.outputs.thumbnails = Some(thumbnails);
    Ok("thumbnails started; call.thumbnail_ready follows each one stored".into())
}

/// Starts the transcript or the closed captions during the call: added to the transcription
/// that runs (from now on), or a transcription the job did not have, from the section (the
/// job's `transcription` shape; for `closed_captions`, captions without a transcript unless
/// the section asks for one). Speech from now on is heard; nothing said before.
fn start_speech(
    output: OutputKind,
    section: serde_json::Value,
    job: &Job,
    media_dir: &std::path::Path,
    running: &mut Running,
    emit: Emit,
) -> Answer {
    let captions = output == OutputKind::ClosedCaptions;
    let given = !matches!(&section, serde_json::Value::Null)
        && section.as_object().is_none_or(|fields| !fields.is_empty());
    if let Some(transcription) = running.outputs.transcription.as_mut() {
        if given {
            return Err(format!(
                "the {} section: the transcription runs with the settings it started with; give no section",
                output.name()
            ));
        }
        let (started, id) = match captions {
            true => (transcription.start_captions()?, OutputId::ClosedCaptions),
            false => (transcription.start_transcript()?, OutputId::Transcription),
        };
        running.lifecycles.register(id);
        if let Some(started) = started {
            emit(started);
        }
        return Ok(format!(
            "{} started; what is said from now on is in it",
            output.name()
        ));
    }
    if !takes_sound(job) {
        return Err(format!(
            "the {} cannot start: this job takes no sound from the call",
            output.name()
        ));
    }
    let mut section = or_empty(section);
    if captions && let Some(fields) = section.as_object_mut() {
        fields.insert("closed_captions".into(), serde_json::Value::Bool(true));
        fields
            .entry("transcript")
            .or_insert(serde_json::Value::Bool(false));
    }
    let with_transcription = checked_section(job, OutputKind::Transcription, &section, media_dir)?;
    let config = with_transcription
        .transcription
        .as_ref()
        .ok_or_else(|| "the transcription section: expected an object".to_owned())?;
    if !config.transcript && !config.closed_captions {
        return Err(
            "the transcription section: transcript and closed_captions are both false; nothing to start"
                .into(),
        );
    }
    let spool = running.uploader.spool().dir.clone();
    let mut transcription = TranscriptionOutput::attach(
        running.graph,
        &with_transcription,
        config,
        &spool,
        running.whisper_model,
        running.waker,
    )
    .map_err(|e| format!("the transcription cannot start: {e:#}"))?;
    transcription.playing(call_start(running.graph));
    if config.transcript {
        running.lifecycles.register(OutputId::Transcription);
    }
    if config.closed_captions {
        running.lifecycles.register(OutputId::ClosedCaptions);
    }
    transcription.start(emit);
    running.outputs.transcription = Some(transcription);
    Ok(format!(
        "{} started; what is said from now on is in it",
        output.name()
    ))
}
