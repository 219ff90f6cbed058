//! The estimated CPU cost of a job, in cores, for admission: a worker takes a job only while the
//! estimates of what it runs stay within its budget.

use super::config::CostModel;
use crate::job::{Job, Quality, SourceConfig};
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
        model.composite_base + participants * model.composite_participant
    };
    let frames = if job.frame_recording.is_some() {
        participants * model.frames_participant
    } else {
        0.0
    };
    let pushes = job.rtmp.len() as f64 * model.rtmp_push;
    model.base + encoding + composite + frames + pushes
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
        // (job, cores measured by `egress run` of 20 s calls of 720p30 VP8 clips, 2 cores)
        let model = CostModel::default();
        let clips = |n: usize| json!(vec![json!({ "user_id": "x" }); n]);
        let measured = [
            (json!({ "recording": { "quality": "720p" } }), 4, 1.053),
            (json!({ "recording": { "quality": "720p" } }), 1, 0.781),
            (json!({ "recording": { "quality": "360p" } }), 4, 0.694),
            (
                json!({ "recording": { "quality": "720p" },
                     "hls": { "quality_tracks": ["720p", "480p", "360p"] } }),
                4,
                1.401,
            ),
            (
                json!({ "frame_recording": { "capture_interval_in_seconds": 3 } }),
                4,
                0.103,
            ),
        ];
        for (outputs, participants, cores) in measured {
            let mut job = job(outputs.clone());
            let SourceConfig::Synthetic(s) = &mut job.source else {
                unreachable!("the test jobs are synthetic")
            };
            s.participants = serde_json::from_value(clips(participants)).unwrap();
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
}
