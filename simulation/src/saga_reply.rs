//! Participants' answers to saga commands, on the simulated transport. The protocol is the
//! real one (`tessera_saga::SagaReply`: the tag, `ok`, `data` or `reason`, and the reply's
//! name); only the envelope around it is the simulation's.

use serde_json::Value;
use tessera_saga::SagaReply;

use crate::message::{Ids, Kind, Message};

/// The reply to saga command `command`, as `SagaEngine::reply` builds it. `None` when the
/// command is not a saga's (plain commands get no reply).
pub fn reply(command: &Message, ids: &mut Ids, result: Result<Option<Value>, String>) -> Option<Message> {
    let reply = SagaReply::answering(&command.payload, result)?;
    let participant = command.target?;
    Some(Message {
        id: ids.message(),
        kind: Kind::Reply,
        name: SagaReply::name(participant.name(), &command.name),
        source: participant,
        target: Some(command.source),
        key: command.key.clone(),
        payload: reply.to_payload(),
    })
}
