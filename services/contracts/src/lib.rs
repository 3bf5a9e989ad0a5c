//! The shop's published language: every message that crosses a service boundary, one module
//! per owning service. A message's name is `<owner>.<Type>` and its schema version is a
//! constant; changing a payload incompatibly means a new version and an upcaster.
//!
//! Fields holding personal data are typed [`Personal`], so the privacy layer can find and
//! encrypt them; nothing else about them changes on the wire today.
//!
//! Every message type has a JSON Schema generated from it and committed under `schemas/`;
//! [`schemas::check`] holds today's types to them (see `docs/GOVERNANCE.md`).

pub mod catalogue;
pub mod compat;
pub mod customers;
mod envelope;
pub mod inventory;
mod message;
pub mod orders;
pub mod payments;
pub mod requests;
pub mod schemas;
pub mod support;
pub mod testing;
pub mod topology;
pub mod upcasting;
mod values;

pub use envelope::{EnvelopeBuilder, envelope};
pub use values::{Currency, Money, OrderLine, Personal, Quantity, Sku, ValueError, whole_number};

pub(crate) use message::message;
pub use message::{Kind, Message};

#[cfg(test)]
pub(crate) fn round_trip<M: Message + PartialEq + std::fmt::Debug>(message: &M) {
    let json = serde_json::to_value(message).expect("serialise");
    let back: M = serde_json::from_value(json.clone()).expect("deserialise");
    assert_eq!(&back, message, "{} does not survive a round trip: {json}", M::NAME);
    assert!(M::NAME.contains('.'), "{} is not <owner>.<Type>", M::NAME);
}
