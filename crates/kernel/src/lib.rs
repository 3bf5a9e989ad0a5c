//! The shared vocabulary of Tessera: typed ids (UUID v7), the message [`Envelope`], time as a
//! [`Clock`], ids from an [`IdGen`], and the [`HybridClock`] that orders replicated writes.
//!
//! Nothing here performs I/O, so every crate (and every test) can depend on it freely, and
//! deterministic implementations of [`Clock`] and [`IdGen`] make simulations repeatable.

mod clock;
mod envelope;
mod hlc;
mod id;
pub mod personal;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use envelope::{Envelope, EnvelopeError, MessageKind};
pub use hlc::{ClockSkewError, HlcTimestamp, HybridClock};
pub use id::{
    CorrelationId, DeterministicIdGen, IdGen, MessageId, StreamId, StreamIdError, SubjectId, UuidV7Gen,
};
