//! Named instants of the relay and the subscriber where tests step in.

/// A hook called at a named point of the relay or subscriber: tests use it to kill the process
/// at exactly that instant; production code leaves it unset.
pub type Hook = std::sync::Arc<dyn Fn(&tessera_kernel::Envelope) + Send + Sync>;
