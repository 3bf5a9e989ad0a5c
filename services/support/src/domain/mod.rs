//! Support's rules, without I/O: ticket text limits and lifecycle, and the merge that keeps
//! the order-summary replica convergent.

mod replica;
mod ticket;

pub use replica::{OrderReplica, ReplicaUpdate, fold};
pub use ticket::{TicketError, TicketStatus, check_message, check_subject};
