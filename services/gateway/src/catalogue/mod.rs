//! The catalogue cache: product reads served from a cache filled on read and emptied by
//! inventory's events, so that a price, name or stock change shows through the gateway
//! within milliseconds of its commit.
//!
//! Entries live in groups: one per product (`product:<sku>`) and one for every product list
//! (`products`, one field per query string). An event about a sku empties both. Each group
//! has a stamp that every invalidation moves on; a read that missed remembers the stamp it
//! saw and its fill is dropped if the stamp moved meanwhile, so an answer loaded before a
//! change can never be stored after that change's invalidation.
//!
//! Concurrent misses of one key share one load (no stampede on a cold key). A backend that
//! fails (Redis down) is bypassed: reads go to inventory, counted as degraded, and the
//! invalidations it could not take are kept and applied when it answers again; until then
//! nothing is read from it.
//!
//! The cache only ever answers reads. Stock shown through it is a hint: reservations happen
//! in inventory, against inventory's own rows.

mod backend;
mod cache;
mod entry;
mod invalidation;
mod local;
mod redis;

pub(crate) use backend::BACKEND_DEADLINE;
pub use backend::{CacheBackend, CacheError, Lookup};
pub use cache::{Catalogue, settle_owed_until};
pub use entry::{CacheKey, CachedReply, groups_for};
pub use invalidation::CatalogueInvalidation;
pub use local::LocalCache;
pub use redis::{RedisCache, RedisSettings};
