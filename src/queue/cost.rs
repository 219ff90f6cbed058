//! The estimated CPU cost of a job, in cores, for admission: a worker takes a job only while the
//! estimates of what it runs stay within its budget.

use super::config::CostModel;
use crate::job::{Job, LayoutName, Quality, SourceConfig};
use std::collections::BTreeSet;

/// Participants assumed for a call whose roster is not known in advance.
const UNKNOWN_ROSTER: usize = 4;
/// Frames per second of every composite.
const FPS: f64 = 30.0;

pub fn estimate(job: &Job, model: &CostModel) -> f64 {
    let participants = match &job.source {
        SourceConfig::Synthetic(s) => s.participants.len(),
        SourceConfig::Janus(j) => j.participants.len().max(UNKNOWN_ROSTER),
        SourceConfig::Whep(_) => 1,
        // The replayed call's roster is in its manifest, not in the job.
        SourceConfig::Render(_) => UNKNOWN_ROSTER,
    } as f64;
    // Outputs of the same size share one encoder; the composite is decoded once.
    let mut sizes: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut audio_only = false;
    if let Some(recording) = &job.recording {
        if recording.audio_only {
            audio_only = true;
        } else {
            sizes.insert(recording.quality.size());
        }
    }
    if let Some(hls) = &job.hls {
        sizes.extend(
            hls.quality_tracks
                .iter()
                .filter_map(|t| t.video())
                .map(Quality::size),
        );
        audio_only |= hls.quality_tracks.contains(&crate::job::HlsTrack::AUDIO_ONLY);
    }
    sizes.extend(job.rtmp.iter().map(|r| r.quality.size()));
    let encoding: f64 = sizes
        .iter()
        .map(|&(w, h)| model.encode_per_megapixel_s * f64::from(w * h) * FPS / 1e6)
        .sum();
    let composite = if sizes.is_empty() && !audio_only {
        0.0
    } else {
        let decoded = decoded_participants(job, participants);
        model.composite_base
            + decoded * model.composite_participant
            + (participants - decoded) * model.hidden_participant
            + speaking_participants(job, participants) * model.audio_participant
    };
    let frames = if job.frame_recording.is_some() {
        participants * model.frames_participant
    } else {
        0.0
    };
    let pushes = job.rtmp.len() as f64 * model.rtmp_push;
    model.base + encoding + composite + frames + pushes
}

/// The participants whose sound a composite decodes and mixes: those of a synthetic call that
/// have sound; every participant of a real call.
fn speaking_participants(job: &Job, participants: f64) -> f64 {
    match &job.source {
        SourceConfig::Synthetic(s) => s.participants.iter().filter(|p| p.audio.is_some()).count() as f64,
        _ => participants,
    }
}

/// The participants whose video a composite decodes: a single-participant composite shows one
/// (the rest are not decoded where the source sends a keyframe when asked, as synthetic and WHEP
/// sources do; a Janus composite with sound decodes every publisher).
fn decoded_participants(job: &Job, participants: f64) -> f64 {
    let single = |layout: &crate::job::LayoutConfig| {
        matches!(
            layout.name,
            LayoutName::SingleParticipant | LayoutName::SingleParticipantUnderscored
        )
    };
    let every_composite_single = job
        .recording
        .as_ref()
        .is_none_or(|r| r.audio_only || single(&r.layout))
        && job.hls.is_none()
        && job.rtmp.is_empty();
    let skips_hidden = matches!(job.source, SourceConfig::Synthetic(_) | SourceConfig::Whep(_));
    match every_composite_single && skips_hidden {
        true => participants.min(1.0),
        false => participants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(extra: serde_json::Value) -> Job {
        let mut value = json!({
            "call_cid": "default:c",
            "source": { "type": "synthetic", "duration_s": 5, "participants": [
                { "user_id": "a" }, { "user_id": "b" }, { "user_id": "c" }, { "user_id": "d" } ] }
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn outputs_of_one_size_share_their_encoder() {
        let model = CostModel::default();
        let recording = estimate(&job(json!({ "recording": { "quality": "720p" } })), &model);
        let with_push = estimate(
            &job(json!({ "recording": { "quality": "720p" },
                "rtmp": [{ "name": "yt", "stream_url": "rtmp://x/live", "quality": "720p" }] })),
            &model,
        );
        assert!((with_push - recording - model.rtmp_push).abs() < 1e-9);
        let ladder = estimate(
            &job(json!({ "recording": { "quality": "720p" },
                "hls": { "quality_tracks": ["720p", "360p"] } })),
            &model,
        );
        let small = model.encode_per_megapixel_s * 640.0 * 360.0 * 30.0 / 1e6;
        assert!((ladder - recording - small).abs() < 1e-9);
    }

    #[test]
    fn the_measured_jobs_are_estimated_within_a_tenth() {
        // (job, participants, cores measured by `egress run` of 20 s calls of 720p30 VP8 clips on
        // a 2-core machine of the CI's kind, median of 2; the single-participant call's clips
        // have no sound)
        let model = CostModel::default();
        let clips = |n: usize| json!(vec![json!({ "user_id": "x" }); n]);
        let silent = |n: usize| json!(vec![json!({ "user_id": "x", "audio": null }); n]);
        let measured = [
            (json!({ "recording": { "quality": "720p" } }), 4, 0.779, true),
            (json!({ "recording": { "quality": "720p" } }), 1, 0.533, true),
            (json!({ "recording": { "quality": "360p" } }), 4, 0.553, true),
            (
                json!({ "recording": { "quality": "720p" },
                     "hls": { "quality_tracks": ["720p", "480p", "360p"] } }),
                4,
                1.036,
                true,
            ),
            (
                json!({ "frame_recording": { "capture_interval_in_seconds": 3 } }),
                4,
                0.102,
                true,
            ),
            (
                json!({ "recording": { "quality": "720p", "layout": { "name": "single-participant" } } }),
                9,
                0.514,
                false,
            ),
        ];
        for (outputs, participants, cores, sound) in measured {
            let mut job = job(outputs.clone());
            let SourceConfig::Synthetic(s) = &mut job.source else {
                unreachable!("the test jobs are synthetic")
            };
            let roster = if sound {
                clips(participants)
            } else {
                silent(participants)
            };
            s.participants = serde_json::from_value(roster).unwrap();
            let estimate = estimate(&job, &model);
            assert!(
                (estimate - cores).abs() <= 0.1 * cores,
                "{outputs}: {estimate} vs {cores}"
            );
        }
    }

    #[test]
    fn frames_alone_cost_little_and_grow_with_the_roster() {
        let model = CostModel::default();
        let frames = estimate(&job(json!({ "frame_recording": {} })), &model);
        let recording = estimate(&job(json!({ "recording": { "quality": "720p" } })), &model);
        assert!(frames < recording / 5.0, "{frames} vs {recording}");
        assert!((frames - model.base - 4.0 * model.frames_participant).abs() < 1e-9);
    }

    #[test]
    fn a_single_participant_composite_pays_for_the_one_it_shows() {
        let model = CostModel::default();
        let single = json!({ "recording": { "layout": { "name": "single-participant" } } });
        let grid = estimate(&job(json!({ "recording": {} })), &model);
        let shown = estimate(&job(single.clone()), &model);
        let hidden = 3.0 * (model.composite_participant - model.hidden_participant);
        assert!(hidden > 0.0);
        assert!((grid - shown - hidden).abs() < 1e-9, "{grid} vs {shown}");
        // Beside a grid push, every participant is decoded.
        let mut with_push = single.clone();
        with_push["rtmp"] = json!([{ "name": "yt", "stream_url": "rtmp://x/live" }]);
        let pushed = estimate(&job(with_push), &model);
        assert!(
            (pushed - grid - model.rtmp_push).abs() < 1e-9,
            "{pushed} vs {grid}"
        );
    }
}
