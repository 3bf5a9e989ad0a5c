//! The shop's published language: every message that crosses a service boundary, one module
//! per owning service. A message's name is `<owner>.<Type>` and its schema version is a
//! constant; changing a payload incompatibly means a new version and an upcaster.
//!
//! Fields holding personal data are typed [`Personal`], so the privacy layer can find and
//! encrypt them; nothing else about them changes on the wire today.

pub mod customers;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod support;
mod values;

pub use values::{Currency, Money, OrderLine, Personal, Quantity, Sku, ValueError};

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
        impl $crate::Message for $type {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            const KIND: $crate::Kind = $crate::Kind::$kind;
        }
    };
}
pub(crate) use message;

#[cfg(test)]
pub(crate) fn round_trip<M: Message + PartialEq + std::fmt::Debug>(message: &M) {
    let json = serde_json::to_value(message).expect("serialise");
    let back: M = serde_json::from_value(json.clone()).expect("deserialise");
    assert_eq!(&back, message, "{} does not survive a round trip: {json}", M::NAME);
    assert!(M::NAME.contains('.'), "{} is not <owner>.<Type>", M::NAME);
}
