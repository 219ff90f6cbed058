//! Control messages, addressed to a job by `egress_id` and seen by every worker (fanout): the
//! worker running that job acts, the others ignore it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Ends the job as if the call had ended: files are finalized, stored and announced.
    Stop { egress_id: String },
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
                egress_id: "eg_1".into()
            }
        );
        assert!(serde_json::from_str::<ControlMessage>(r#"{"action":"explode"}"#).is_err());
    }
}
