//! The envelope every message travels in, whatever the transport. Its id is the dedupe key; the
//! correlation and causation ids, `traceparent` and `subject` follow a request across services.

use serde::{Deserialize, Serialize};

use crate::hlc::HlcTimestamp;
use crate::id::{CorrelationId, IdGen, MessageId, SubjectId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Something that happened; any service may subscribe.
    Event,
    /// A request for one service (`target`) to do something.
    Command,
    /// The answer to a command, sent back to the command's source.
    Reply,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: MessageId,
    pub kind: MessageKind,
    /// `<owning service>.<MessageName>`, e.g. `orders.OrderPlaced`.
    pub name: String,
    /// Schema version of `payload`; upcasters lift old versions before handlers see them.
    pub version: u32,
    /// The service that emitted the message.
    pub source: String,
    /// The service a command or reply is for; `None` for events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Ordering key: messages with the same key are handled in order.
    pub key: String,
    pub correlation_id: CorrelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<MessageId>,
    /// The person the payload is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    /// W3C trace context of the span that emitted the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub at: HlcTimestamp,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("message name `{0}` is not `<service>.<Name>`")]
    InvalidName(String),
    #[error("a {kind:?} needs a target service")]
    MissingTarget { kind: MessageKind },
    #[error("an event has no target; found `{0}`")]
    UnexpectedTarget(String),
    #[error("the ordering key must not be empty")]
    EmptyKey,
    #[error("schema versions start at 1")]
    ZeroVersion,
}

impl Envelope {
    /// A new message that starts its own correlation (a request entering the system).
    pub fn new(
        ids: &dyn IdGen,
        kind: MessageKind,
        name: impl Into<String>,
        source: impl Into<String>,
        key: impl Into<String>,
        at: HlcTimestamp,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            id: MessageId::generate(ids),
            kind,
            name: name.into(),
            version: 1,
            source: source.into(),
            target: None,
            key: key.into(),
            correlation_id: CorrelationId::generate(ids),
            causation_id: None,
            subject: None,
            traceparent: None,
            at,
            payload,
        }
    }

    /// Marks this message as caused by `cause`: same correlation, subject and trace.
    #[must_use]
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.correlation_id = cause.correlation_id;
        self.causation_id = Some(cause.id);
        if self.subject.is_none() {
            self.subject = cause.subject;
        }
        if self.traceparent.is_none() {
            self.traceparent.clone_from(&cause.traceparent);
        }
        self
    }

    #[must_use]
    pub fn to_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    #[must_use]
    pub fn about(mut self, subject: SubjectId) -> Self {
        self.subject = Some(subject);
        self
    }

    #[must_use]
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The service that owns the message's name (`orders` for `orders.OrderPlaced`).
    pub fn owner(&self) -> &str {
        self.name.split_once('.').map_or("", |(owner, _)| owner)
    }

    /// Checks the rules the type cannot express; transports call it before publishing.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        let well_named = self.name.split_once('.').is_some_and(|(owner, name)| {
            !owner.is_empty()
                && !name.is_empty()
                && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        });
        if !well_named {
            return Err(EnvelopeError::InvalidName(self.name.clone()));
        }
        if self.key.is_empty() {
            return Err(EnvelopeError::EmptyKey);
        }
        if self.version == 0 {
            return Err(EnvelopeError::ZeroVersion);
        }
        match (self.kind, &self.target) {
            (MessageKind::Event, Some(target)) => Err(EnvelopeError::UnexpectedTarget(target.clone())),
            (MessageKind::Command | MessageKind::Reply, None) => {
                Err(EnvelopeError::MissingTarget { kind: self.kind })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::id::DeterministicIdGen;

    fn event(ids: &DeterministicIdGen) -> Envelope {
        Envelope::new(
            ids,
            MessageKind::Event,
            "orders.OrderPlaced",
            "orders",
            "order-1",
            HlcTimestamp::new(Timestamp::from_micros(1), 0),
            serde_json::json!({"total": 100}),
        )
    }

    #[test]
    fn a_caused_message_inherits_correlation_subject_and_trace() {
        let ids = DeterministicIdGen::new();
        let subject = SubjectId::generate(&ids);
        let mut cause = event(&ids).about(subject);
        cause.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let effect = Envelope::new(
            &ids,
            MessageKind::Command,
            "inventory.ReserveStock",
            "orders",
            "order-1",
            cause.at,
            serde_json::json!({}),
        )
        .to_target("inventory")
        .caused_by(&cause);
        assert_eq!(effect.correlation_id, cause.correlation_id);
        assert_eq!(effect.causation_id, Some(cause.id));
        assert_eq!(effect.subject, Some(subject));
        assert_eq!(effect.traceparent, cause.traceparent);
        assert_eq!(effect.validate(), Ok(()));
        assert_eq!(effect.owner(), "inventory");
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let ids = DeterministicIdGen::new();
        let mut bad = event(&ids);
        bad.name = "OrderPlaced".into();
        assert_eq!(bad.validate(), Err(EnvelopeError::InvalidName("OrderPlaced".into())));
        let command = Envelope { kind: MessageKind::Command, ..event(&ids) };
        assert_eq!(command.validate(), Err(EnvelopeError::MissingTarget { kind: MessageKind::Command }));
        let targeted = event(&ids).to_target("x");
        assert_eq!(targeted.validate(), Err(EnvelopeError::UnexpectedTarget("x".into())));
        let keyless = Envelope { key: String::new(), ..event(&ids) };
        assert_eq!(keyless.validate(), Err(EnvelopeError::EmptyKey));
        assert_eq!(event(&ids).with_version(0).validate(), Err(EnvelopeError::ZeroVersion));
    }

    #[test]
    fn envelope_round_trips_through_json_without_empty_optionals() {
        let ids = DeterministicIdGen::new();
        let message = event(&ids);
        let json = serde_json::to_value(&message).expect("serialise");
        assert!(json.get("target").is_none());
        assert_eq!(json["kind"], "event");
        let back: Envelope = serde_json::from_value(json).expect("parse");
        assert_eq!(back, message);
    }
}
