//! What a service does with a message ([`Handler`]) and why it could not ([`HandlerError`]):
//! the subscriber treats a message by the kind of its failure.

use std::fmt;

use async_trait::async_trait;
use tessera_kernel::Envelope;
use tessera_store::UnitOfWork;

/// What a service does with one message. Write every effect into `unit`: it commits together
/// with the inbox record, or not at all.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError>;

    /// Whether this handler acts on `message` at all. A source carries more than any one
    /// subscriber needs (the orders service's stream holds its events and its commands to
    /// every other service); a message this says no to is acknowledged at once, without a
    /// unit of work: it has no effect, so there is nothing to commit and no inbox record to
    /// keep. Decide from the envelope's name, kind and target only, never from the payload: a
    /// message refused here is never retried or dead-lettered.
    fn wants(&self, _message: &Envelope) -> bool {
        true
    }
}

/// Why a handler could not apply a message.
///
/// Any error converts with `?` into [`HandlerError::Transient`]: where a failure comes from
/// (the incoming payload, a stored row, an outgoing message) is the handler's to say, so only
/// [`payload`] and [`HandlerError::malformed`] say a message is malformed. It deliberately does
/// not implement `std::error::Error`, which is what lets that conversion exist.
#[derive(Debug)]
pub enum HandlerError {
    /// The message can never be applied as it is: parked as a dead letter at once, with no
    /// retries (they would fail alike and hold its key's lane back meanwhile).
    Malformed(String),
    /// The service's rules refuse it in the state it finds: retried with backoff (what it
    /// needs may still arrive), then parked after the subscriber's `max_attempts`.
    Rejected(String),
    /// A failure that says nothing about the message (a database or a dependency away):
    /// retried with backoff, then parked after `max_attempts`.
    Transient(Box<dyn std::error::Error + Send + Sync>),
}

impl HandlerError {
    pub fn malformed(reason: impl fmt::Display) -> Self {
        Self::Malformed(reason.to_string())
    }

    pub fn rejected(reason: impl fmt::Display) -> Self {
        Self::Rejected(reason.to_string())
    }

    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed(_))
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "malformed message: {reason}"),
            Self::Rejected(reason) => write!(f, "rejected: {reason}"),
            Self::Transient(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::Transient(Box::new(error))
    }
}

/// A message's payload as the contract type `T`; a payload that does not fit is malformed.
pub fn payload<T: serde::de::DeserializeOwned>(message: &Envelope) -> Result<T, HandlerError> {
    serde_json::from_value(message.payload.clone())
        .map_err(|e| HandlerError::Malformed(format!("{} payload: {e}", message.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_that_does_not_parse_is_malformed_and_other_failures_are_transient() {
        let message = Envelope::new(
            &tessera_kernel::UuidV7Gen,
            tessera_kernel::MessageKind::Event,
            "shop.Counted",
            "shop",
            "k",
            tessera_kernel::HlcTimestamp::default(),
            serde_json::json!("seven"),
        );
        let parsed: Result<u32, HandlerError> = payload(&message);
        assert!(parsed.expect_err("not a number").is_malformed());
        // A serde failure met with `?` may be a stored row's or an outgoing message's: transient.
        let stored = HandlerError::from(serde_json::from_str::<u32>("\"seven\"").expect_err("not a number"));
        assert!(matches!(stored, HandlerError::Transient(_)), "{stored:?}");
        let io = HandlerError::from(std::io::Error::other("disk away"));
        assert!(matches!(io, HandlerError::Transient(_)), "{io:?}");
        assert_eq!(io.to_string(), "disk away");
        assert_eq!(HandlerError::rejected("no such order").to_string(), "rejected: no such order");
    }
}
