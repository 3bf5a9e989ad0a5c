//! What a cache backend is: where entries are kept (this process, or Redis for every replica).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// Entries one group holds at most (list pages: one per query); past it, fills are dropped.
pub(crate) const MAX_FIELDS: usize = 256;

/// How long one cache command may take at most (Redis' deadline; the process's is instant).
pub(crate) const BACKEND_DEADLINE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("the cache did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the cache failed: {0}")]
    Backend(String),
    #[error("a cached entry is unreadable: {0}")]
    Corrupt(String),
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Bytes),
    /// Not there; a fill must carry this stamp to be kept.
    Miss {
        stamp: u64,
    },
}

/// Where entries are kept: in this process, or shared by every gateway replica.
#[async_trait]
pub trait CacheBackend: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    async fn lookup(&self, group: &str, field: &str) -> Result<Lookup, CacheError>;
    /// Stores `value` unless the group was invalidated since the lookup that gave `stamp`.
    async fn fill(&self, group: &str, field: &str, value: Bytes, stamp: u64) -> Result<(), CacheError>;
    /// Empties each group and moves its stamp on.
    async fn invalidate(&self, groups: &[String]) -> Result<(), CacheError>;
}
