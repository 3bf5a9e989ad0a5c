use tessera_store::StoreError;

pub type Result<T, E = BusError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("message {id} is not a valid envelope: {reason}")]
    Malformed { id: String, reason: String },
    #[error("the transport is closed")]
    Closed,
}

impl BusError {
    pub(crate) fn nats(error: impl std::fmt::Display) -> Self {
        BusError::Nats(error.to_string())
    }
}
