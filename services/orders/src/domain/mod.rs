//! The Order aggregate: pure decide and evolve functions over its events.

mod order;

pub use order::{Order, OrderCommand, OrderError, OrderEvent, OrderStatus};
