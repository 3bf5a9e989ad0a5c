//! What every contract message is: a name, a schema version and a kind.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Whether a message states a fact, asks for something, or answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Event,
    Command,
    Reply,
}

/// Implemented by every message type.
pub trait Message: Serialize + DeserializeOwned {
    /// `<owner>.<Type>`.
    const NAME: &'static str;
    const VERSION: u32;
    const KIND: Kind;
}

macro_rules! message {
    ($type:ty, $name:literal, $version:literal, $kind:ident) => {
        impl $crate::message::Message for $type {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            const KIND: $crate::message::Kind = $crate::message::Kind::$kind;
        }
    };
}
pub(crate) use message;
