//! Runs services. A service says what it is (its name, migrations, routes, the sources it
//! subscribes to, its background work) through [`Service`]; the runtime gives it a store, starts
//! its relay and subscribers on a transport, serves its routes, and stops it all in order.
//! Only this crate and the binary know which backends and transports exist.

mod admin;
pub mod audit_archive;
mod audit_head;
mod gauges;
pub mod metrics;
mod node;
mod service;
mod storage;

pub use audit_head::AUDIT_HEAD;
pub use node::{Node, NodeError, NodeOptions};
pub use service::{Service, Subscription, Task};
pub use storage::{Storage, open_store};
