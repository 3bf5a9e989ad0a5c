//! The saga wire protocol, shared by the engine (which tags commands and reads replies) and
//! the participants (which answer): a command carries `"saga": {"name", "id", "step",
//! "compensation"}` in its payload; its reply echoes that object and adds `"ok"`, and
//! `"data"` (merged into the saga's data) or `"reason"`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::decide::Outcome;

/// Which saga, and which of its steps, a command belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaTag {
    pub name: String,
    pub id: String,
    pub step: usize,
    #[serde(default)]
    pub compensation: bool,
}

impl SagaTag {
    /// The tag of a saga command's (or reply's) payload; `None` for any other message.
    pub fn of(payload: &Value) -> Option<SagaTag> {
        payload.get("saga").and_then(|tag| SagaTag::deserialize(tag).ok())
    }

    /// `payload` with this tag on it (a payload that is not an object is wrapped first).
    pub fn attach(&self, payload: Value) -> Value {
        let mut payload = if payload.is_object() { payload } else { json!({ "value": payload }) };
        payload["saga"] = json!(self);
        payload
    }
}

/// A participant's answer to a saga command.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaReply {
    pub saga: SagaTag,
    pub outcome: Outcome,
}

impl SagaReply {
    /// The answer to the command with payload `command`: `Ok` with the data to merge into the
    /// saga's data, or `Err` with the participant's reason code. `None` when the command is
    /// not a saga's (plain commands get no reply).
    pub fn answering(command: &Value, result: Result<Option<Value>, String>) -> Option<SagaReply> {
        let outcome = match result {
            Ok(data) => Outcome::Succeeded { data },
            Err(reason) => Outcome::Failed { reason },
        };
        Some(SagaReply { saga: SagaTag::of(command)?, outcome })
    }

    /// Reads a reply's payload; `None` when it is not a saga reply.
    pub fn read(payload: &Value) -> Option<SagaReply> {
        let saga = SagaTag::of(payload)?;
        let outcome = if payload["ok"].as_bool() == Some(true) {
            Outcome::Succeeded { data: payload.get("data").cloned() }
        } else {
            let reason = payload["reason"].as_str().unwrap_or("the step failed").to_owned();
            Outcome::Failed { reason }
        };
        Some(SagaReply { saga, outcome })
    }

    pub fn to_payload(&self) -> Value {
        let mut payload = json!({ "saga": self.saga });
        match &self.outcome {
            Outcome::Succeeded { data } => {
                payload["ok"] = json!(true);
                if let Some(data) = data {
                    payload["data"] = data.clone();
                }
            }
            Outcome::Failed { reason } => {
                payload["ok"] = json!(false);
                payload["reason"] = json!(reason);
            }
        }
        payload
    }

    /// The reply's message name: `<participant>.<Command>Replied`.
    pub fn name(participant: &str, command_name: &str) -> String {
        format!("{participant}.{}Replied", command_name.rsplit('.').next().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> SagaTag {
        SagaTag { name: "place_order".into(), id: "o-1".into(), step: 1, compensation: false }
    }

    #[test]
    fn a_reply_written_by_the_engine_before_this_type_reads_the_same() {
        // As `SagaEngine::reply` wrote them with `json!` before the protocol was a type.
        let ok = json!({"saga": {"name": "place_order", "id": "o-1", "step": 1, "compensation": false},
                        "ok": true, "data": {"payment": {"payment_id": "p", "last4": "4242"}}});
        let refused = json!({"saga": {"name": "place_order", "id": "o-1", "step": 1, "compensation": false},
                             "ok": false, "reason": "card_declined"});
        let read = SagaReply::read(&ok).expect("a reply");
        assert_eq!(read.saga, tag());
        assert_eq!(read.to_payload(), ok);
        assert_eq!(
            SagaReply::read(&refused).map(|r| r.outcome),
            Some(Outcome::Failed { reason: "card_declined".into() })
        );
        assert_eq!(SagaReply::read(&refused).expect("a reply").to_payload(), refused);
    }

    #[test]
    fn a_command_is_tagged_and_answered_with_its_tag() {
        let command = tag().attach(json!({"order_id": "o-1"}));
        assert_eq!(command["order_id"], "o-1");
        let reply = SagaReply::answering(&command, Err("out_of_stock".into())).expect("a saga command");
        assert_eq!(reply.saga, tag());
        assert_eq!(SagaReply::answering(&json!({"order_id": "o-1"}), Ok(None)), None, "not a saga's");
        assert_eq!(tag().attach(json!(7))["value"], 7, "a bare payload is wrapped");
        assert_eq!(
            SagaReply::name("payments", "payments.AuthorisePayment"),
            "payments.AuthorisePaymentReplied"
        );
    }

    #[test]
    fn a_reply_without_ok_or_reason_is_a_failure_and_one_without_a_tag_is_none() {
        let bare = json!({"saga": {"name": "place_order", "id": "o-1", "step": 0}});
        assert_eq!(
            SagaReply::read(&bare).map(|r| r.outcome),
            Some(Outcome::Failed { reason: "the step failed".into() })
        );
        assert_eq!(SagaReply::read(&json!({"ok": true})), None);
        assert_eq!(SagaReply::read(&json!({"saga": {"name": "place_order", "id": "o-1"}})), None);
    }
}
