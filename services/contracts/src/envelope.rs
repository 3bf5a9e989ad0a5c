//! A contract message put in its envelope. The name, schema version and kind come from the
//! message's type; the sender states only what is its own: who sends it, its ordering key,
//! its cause and its subject.

use tessera_kernel::{Envelope, HlcTimestamp, IdGen, MessageKind, SubjectId};

use crate::message::{Kind, Message};

/// An envelope for `message`, built step by step; see [`envelope`].
#[derive(Debug)]
#[must_use]
pub struct EnvelopeBuilder<'a, M> {
    message: &'a M,
    source: &'a str,
    key: String,
    cause: Option<&'a Envelope>,
    subject: Option<SubjectId>,
}

/// Starts the envelope of `message`, sent by `source` under ordering key `key`.
pub fn envelope<'a, M: Message>(
    message: &'a M,
    source: &'a str,
    key: impl ToString,
) -> EnvelopeBuilder<'a, M> {
    EnvelopeBuilder { message, source, key: key.to_string(), cause: None, subject: None }
}

impl<'a, M: Message> EnvelopeBuilder<'a, M> {
    /// Continues `cause`'s correlation (and its subject, unless one is set).
    pub fn caused_by(mut self, cause: Option<&'a Envelope>) -> Self {
        self.cause = cause;
        self
    }

    /// The person the message is about, for erasure and the audit.
    pub fn about(mut self, subject: SubjectId) -> Self {
        self.subject = Some(subject);
        self
    }

    pub fn build(self, ids: &dyn IdGen, at: HlcTimestamp) -> Result<Envelope, serde_json::Error> {
        let kind = match M::KIND {
            Kind::Event => MessageKind::Event,
            Kind::Command => MessageKind::Command,
            Kind::Reply => MessageKind::Reply,
        };
        let payload = serde_json::to_value(self.message)?;
        let mut envelope =
            Envelope::new(ids, kind, M::NAME, self.source, self.key, at, payload).with_version(M::VERSION);
        if let Some(subject) = self.subject {
            envelope = envelope.about(subject);
        }
        if let Some(cause) = self.cause {
            envelope = envelope.caused_by(cause);
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use tessera_kernel::UuidV7Gen;
    use uuid::Uuid;

    use super::*;
    use crate::customers::CustomerErased;

    #[test]
    fn the_type_names_the_message_and_the_cause_carries_its_correlation() {
        let customer_id = Uuid::now_v7();
        let erased = CustomerErased { customer_id, erasure_id: Uuid::now_v7() };
        let cause = envelope(&erased, "customers", customer_id)
            .about(SubjectId::from(customer_id))
            .build(&UuidV7Gen, HlcTimestamp::default())
            .expect("an envelope");
        assert_eq!((cause.name.as_str(), cause.version), (CustomerErased::NAME, CustomerErased::VERSION));
        assert_eq!(cause.kind, MessageKind::Event);
        assert_eq!(cause.key, customer_id.to_string());
        let next = envelope(&erased, "orders", customer_id)
            .caused_by(Some(&cause))
            .build(&UuidV7Gen, HlcTimestamp::default())
            .expect("an envelope");
        assert_eq!(next.correlation_id, cause.correlation_id);
        assert_eq!(next.causation_id, Some(cause.id));
        assert_eq!(next.subject, cause.subject, "the subject follows the cause");
    }
}
