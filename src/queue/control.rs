//! Control messages, addressed to a job by `egress_id` and seen by every worker (fanout): the
//! worker running that job acts, the others ignore it.

use crate::session::{JobUpdate, OutputKind, PausableOutput, StoppableOutput};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Ends the job as if the call had ended: files are finalized, stored and announced. With
    /// `output`, ends that output alone while the call and the others run on.
    Stop {
        egress_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<StoppableOutput>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Changes pins and participant names or roles of a running job; the layout follows at the
    /// next frame.
    Update {
        egress_id: String,
        update: JobUpdate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Leaves the call out of an output until it is resumed (the recording: the same part goes
    /// on without the paused span).
    Pause {
        egress_id: String,
        output: PausableOutput,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    Resume {
        egress_id: String,
        output: PausableOutput,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Adds an output to the running job; `section` has the job's shape for that output (an
    /// RTMP section is one destination with its name).
    Start {
        egress_id: String,
        output: OutputKind,
        section: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Asks the worker running the job for its status (`JobStatus`), answered on `reply_to`.
    Status { egress_id: String, reply_to: String },
    /// Sent by a worker when a job it ran has ended: another delivery of it, held by a worker
    /// that found the job running, is settled rather than run again.
    Finished { egress_id: String },
}

/// What the worker running a job answers to a control message that has a `reply_to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlAnswer {
    pub egress_id: String,
    pub ok: bool,
    /// What was done, or why nothing was.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_by_action() {
        let stop: ControlMessage = serde_json::from_str(r#"{"action":"stop","egress_id":"eg_1"}"#).unwrap();
        assert_eq!(
            stop,
            ControlMessage::Stop {
                egress_id: "eg_1".into(),
                output: None,
                reply_to: None
            }
        );
        assert!(serde_json::from_str::<ControlMessage>(r#"{"action":"explode"}"#).is_err());
        let update: ControlMessage = serde_json::from_str(
            r#"{"action":"update","egress_id":"eg_1","update":{"pinned":["bob"],
                "participants":{"bob":{"name":"Bob B.","roles":["host"]}}}}"#,
        )
        .unwrap();
        let ControlMessage::Update { update, .. } = update else {
            panic!("an update")
        };
        assert_eq!(update.pinned.as_deref(), Some(&["bob".to_owned()][..]));
        assert_eq!(update.participants["bob"].name.as_deref(), Some("Bob B."));
        assert!(
            serde_json::from_str::<JobUpdate>(r#"{"colour":"red"}"#).is_err(),
            "unknown fields are refused"
        );
        let relayout: JobUpdate =
            serde_json::from_str(r#"{"layout":{"name":"spotlight","options":{"grid.position":"left"}}}"#)
                .unwrap();
        assert_eq!(relayout.check(), Ok(()));
        let wrong: JobUpdate =
            serde_json::from_str(r#"{"layout":{"name":"grid","options":{"grid.columns":"many"}}}"#).unwrap();
        let problem = wrong.check().unwrap_err();
        assert!(problem.contains("layout.options.grid.columns"), "{problem}");
    }

    #[test]
    fn a_stop_may_name_one_output() {
        let stop: ControlMessage =
            serde_json::from_str(r#"{"action":"stop","egress_id":"eg_1","output":"rtmp:backup"}"#).unwrap();
        assert_eq!(
            stop,
            ControlMessage::Stop {
                egress_id: "eg_1".into(),
                output: Some(StoppableOutput::push("backup")),
                reply_to: None
            }
        );
        let text = serde_json::to_string(&stop).unwrap();
        assert!(text.contains(r#""output":"rtmp:backup""#), "{text}");
        let wrong = serde_json::from_str::<ControlMessage>(
            r#"{"action":"stop","egress_id":"eg_1","output":"hls:main"}"#,
        );
        assert!(wrong.unwrap_err().to_string().contains(
            "expected recording, hls, frame_recording, transcription, closed_captions, thumbnails, individual_recording, raw_recording, rtmp or rtmp:NAME"
        ));
        let hls: ControlMessage =
            serde_json::from_str(r#"{"action":"stop","egress_id":"eg_1","output":"hls","reply_to":"q"}"#)
                .unwrap();
        assert_eq!(
            hls,
            ControlMessage::Stop {
                egress_id: "eg_1".into(),
                output: Some(StoppableOutput::all(OutputKind::Hls)),
                reply_to: Some("q".into())
            }
        );
    }

    #[test]
    fn pauses_name_an_output_that_can_pause() {
        let pause: ControlMessage =
            serde_json::from_str(r#"{"action":"pause","egress_id":"eg_1","output":"recording"}"#).unwrap();
        assert_eq!(
            pause,
            ControlMessage::Pause {
                egress_id: "eg_1".into(),
                output: PausableOutput::Recording,
                reply_to: None
            }
        );
        assert!(
            serde_json::from_str::<ControlMessage>(
                r#"{"action":"resume","egress_id":"eg_1","output":"hls"}"#
            )
            .is_err(),
            "HLS is live: it is stopped, never paused"
        );
    }

    #[test]
    fn a_start_carries_the_section_of_its_output() {
        let start: ControlMessage = serde_json::from_str(
            r#"{"action":"start","egress_id":"eg_1","output":"rtmp","section":{"name":"c","stream_url":"rtmp://h/live"}}"#,
        )
        .unwrap();
        let ControlMessage::Start { output, section, .. } = start else {
            panic!("a start")
        };
        assert_eq!(output, OutputKind::Rtmp);
        assert_eq!(section["name"], "c");
        assert!(
            serde_json::from_str::<ControlMessage>(
                r#"{"action":"start","egress_id":"eg_1","output":"fax","section":{}}"#
            )
            .is_err()
        );
    }
}
