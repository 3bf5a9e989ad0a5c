//! Why a simulated unit of work did not commit. The message it consumed stays unacknowledged
//! and comes back, as in the real subscriber.

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0} payload: {1}")]
    Payload(String, serde_json::Error),
    /// A stored level that cannot take a move: the real handler reports it as a bug and the
    /// message goes to the dead-letter table after its retries.
    #[error(transparent)]
    Inventory(#[from] tessera_inventory::domain::InventoryError),
    #[error(transparent)]
    Order(#[from] tessera_orders::domain::OrderError),
    /// A unique key refused a second row (a second capture, say).
    #[error("constraint: {0}")]
    Constraint(String),
    #[error("card network: {0}")]
    Network(String),
    #[error("corrupt: {0}")]
    Corrupt(String),
}

pub fn parse<T: serde::de::DeserializeOwned>(
    name: &str,
    payload: &serde_json::Value,
) -> Result<T, HandlerError> {
    serde_json::from_value(payload.clone()).map_err(|e| HandlerError::Payload(name.to_owned(), e))
}
