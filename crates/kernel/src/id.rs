//! Typed identifiers. Every id is a UUID v7: time-ordered, so ids sort roughly by creation and
//! index well, and unique without coordination, so a message id can be the dedupe key.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// A fresh id from `ids`.
            pub fn generate(ids: &dyn IdGen) -> Self {
                Self(ids.next_uuid())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

uuid_newtype!(
    /// The id of one message: the key every inbox deduplicates on.
    MessageId
);
uuid_newtype!(
    /// Ties together every message that one request caused, across services.
    CorrelationId
);
uuid_newtype!(
    /// The person a piece of data is about: the key under which it is encrypted and erased.
    SubjectId
);

/// The name of one event stream, such as `order-0190f3c2-…`. Non-empty, at most 200 bytes,
/// printable ASCII without spaces, so it is safe in SQL, subjects and logs alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamIdError {
    #[error("a stream id must not be empty")]
    Empty,
    #[error("a stream id is at most {max} bytes; this one has {len}")]
    TooLong { len: usize, max: usize },
    #[error("a stream id holds printable ASCII without spaces; found {0:?}")]
    InvalidCharacter(char),
}

impl StreamId {
    pub const MAX_LEN: usize = 200;

    pub fn parse(text: impl Into<String>) -> Result<Self, StreamIdError> {
        let text = text.into();
        if text.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(StreamIdError::TooLong { len: text.len(), max: Self::MAX_LEN });
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(StreamIdError::InvalidCharacter(bad));
        }
        Ok(Self(text))
    }

    /// `category-id`, the usual shape: `StreamId::for_entity("order", id)`.
    pub fn for_entity(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

/// The source of new ids.
pub trait IdGen: Send + Sync + fmt::Debug {
    fn next_uuid(&self) -> Uuid;
}

/// Real UUID v7s from the system clock and the operating system's randomness.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7Gen;

impl IdGen for UuidV7Gen {
    fn next_uuid(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Valid, strictly increasing UUID v7s from a counter: the same sequence on every run.
#[derive(Debug, Default)]
pub struct DeterministicIdGen {
    counter: AtomicU64,
}

impl DeterministicIdGen {
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdGen for DeterministicIdGen {
    fn next_uuid(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut tail = [0u8; 10];
        tail[2..].copy_from_slice(&n.to_be_bytes());
        // The millisecond field carries the counter too, so ids also sort by creation order
        // when compared by their embedded time.
        uuid::Builder::from_unix_timestamp_millis(n, &tail).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_version_7() {
        let id = MessageId::generate(&UuidV7Gen);
        assert_eq!(id.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn deterministic_ids_repeat_across_generators_and_increase() {
        let (a, b) = (DeterministicIdGen::new(), DeterministicIdGen::new());
        let first: Vec<Uuid> = (0..5).map(|_| a.next_uuid()).collect();
        let second: Vec<Uuid> = (0..5).map(|_| b.next_uuid()).collect();
        assert_eq!(first, second);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert!(first.iter().all(|id| id.get_version_num() == 7));
    }

    #[test]
    fn stream_ids_reject_empty_long_and_blank_names() {
        assert_eq!(StreamId::parse(""), Err(StreamIdError::Empty));
        assert!(matches!(StreamId::parse("x".repeat(201)), Err(StreamIdError::TooLong { len: 201, .. })));
        assert_eq!(StreamId::parse("a b"), Err(StreamIdError::InvalidCharacter(' ')));
        let id = StreamId::for_entity("order", 42).expect("valid");
        assert_eq!(id.as_str(), "order-42");
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(serde_json::from_str::<StreamId>(&json).expect("parse"), id);
        assert!(serde_json::from_str::<StreamId>("\"\"").is_err());
    }

    #[test]
    fn ids_parse_from_their_text() {
        let id = CorrelationId::generate(&UuidV7Gen);
        assert_eq!(id.to_string().parse::<CorrelationId>().expect("parse"), id);
        assert!("nope".parse::<SubjectId>().is_err());
    }
}
