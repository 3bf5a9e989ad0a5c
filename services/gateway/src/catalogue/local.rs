//! The cache in this process (the embedded topology, or one gateway on its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::backend::{CacheBackend, CacheError, Lookup, MAX_FIELDS};

/// One group's entries, and when the group was first filled: entries expire with their group,
/// however often new fields join it.
#[derive(Clone)]
struct Group {
    born: Instant,
    fields: HashMap<String, Bytes>,
}

/// Groups in a bounded moka cache with a time to live; stamps beside it. One lock orders
/// lookups, fills and invalidations, so a fill's stamp check and its write are one step.
pub struct LocalCache {
    groups: moka::sync::Cache<String, Arc<Group>>,
    stamps: Mutex<HashMap<String, u64>>,
    ttl: Duration,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache").field("groups", &self.groups.entry_count()).finish_non_exhaustive()
    }
}

impl LocalCache {
    /// At most `capacity` groups (products, plus one for the lists), each kept `ttl` at most.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            groups: moka::sync::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
            stamps: Mutex::new(HashMap::new()),
            ttl,
        }
    }
}

#[async_trait]
impl CacheBackend for LocalCache {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn lookup(&self, group: &str, field: &str) -> Result<Lookup, CacheError> {
        let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.groups.get(group).filter(|g| g.born.elapsed() < self.ttl);
        if let Some(value) = live.and_then(|g| g.fields.get(field).cloned()) {
            return Ok(Lookup::Hit(value));
        }
        Ok(Lookup::Miss { stamp: stamps.get(group).copied().unwrap_or(0) })
    }

    async fn fill(&self, group: &str, field: &str, value: Bytes, stamp: u64) -> Result<(), CacheError> {
        let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        if stamps.get(group).copied().unwrap_or(0) != stamp {
            return Ok(());
        }
        let live = self.groups.get(group).filter(|g| g.born.elapsed() < self.ttl);
        let mut next = live
            .map_or_else(|| Group { born: Instant::now(), fields: HashMap::new() }, |g| g.as_ref().clone());
        if next.fields.len() >= MAX_FIELDS && !next.fields.contains_key(field) {
            return Ok(());
        }
        next.fields.insert(field.to_owned(), value);
        self.groups.insert(group.to_owned(), Arc::new(next));
        Ok(())
    }

    async fn invalidate(&self, groups: &[String]) -> Result<(), CacheError> {
        let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        for group in groups {
            *stamps.entry(group.clone()).or_insert(0) += 1;
            self.groups.invalidate(group);
        }
        Ok(())
    }
}
