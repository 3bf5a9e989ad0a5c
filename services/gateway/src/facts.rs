//! The facts the gateway keeps for others to check against: the newest head of each
//! service's audit chain it witnessed. `tessera verify` and `tessera audit verify` read them
//! here instead of the gateway's table.

use tessera_store::{Statement, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the witnessed head of {service} is invalid: {problem}")]
    InvalidHead { service: String, problem: &'static str },
}

/// The newest head (index, hash) of `service`'s audit chain the gateway witnessed, if any.
pub async fn witnessed_head(store: &Store, service: &str) -> Result<Option<(u64, [u8; 32])>, FactsError> {
    let rows = store
        .query(Statement::new("SELECT idx, hash FROM gateway_audit_heads WHERE service = $1").bind(service))
        .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let invalid = |problem| FactsError::InvalidHead { service: service.to_owned(), problem };
    let index = u64::try_from(row.int("idx")?).map_err(|_| invalid("a negative witnessed index"))?;
    let hash = tessera_store::hash_from_hex(row.text("hash")?)
        .ok_or_else(|| invalid("a witnessed hash is not 64 hex digits"))?;
    Ok(Some((index, hash)))
}
