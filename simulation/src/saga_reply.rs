//! The saga wire protocol as the real `SagaEngine` speaks it: a command carries
//! `"saga": {"name", "id", "step", "compensation"}`; its reply echoes that and adds `"ok"`, and
//! `"data"` or `"reason"`. The participants (inventory, payments) answer with [`reply`].

use serde_json::{Value, json};

use crate::message::{Ids, Kind, Message};

/// The reply to saga command `command` (mirrors `SagaEngine::reply`). `None` when the command
/// is not a saga's (plain commands get no reply).
pub fn reply(command: &Message, ids: &mut Ids, result: Result<Option<Value>, String>) -> Option<Message> {
    command.payload.get("saga")?;
    let mut payload = json!({ "saga": command.payload["saga"].clone() });
    match result {
        Ok(data) => {
            payload["ok"] = json!(true);
            if let Some(data) = data {
                payload["data"] = data;
            }
        }
        Err(reason) => {
            payload["ok"] = json!(false);
            payload["reason"] = json!(reason);
        }
    }
    let target = command.target?;
    let short = command.name.rsplit('.').next().unwrap_or_default();
    Some(Message {
        id: ids.message(),
        kind: Kind::Reply,
        name: format!("{target}.{short}Replied"),
        source: target,
        target: Some(command.source),
        key: command.key.clone(),
        payload,
    })
}
