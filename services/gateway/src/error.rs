//! Why a gateway could not be built.

use crate::auth::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot hash a staff password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
}
