//! What every store of this process has done since it started, counted together: units of
//! work committed, messages they sent, and the syncs to disk made for them. Benchmarks divide
//! these by the work a run did (units per order, syncs per order); Prometheus sees the same
//! counts as `tessera_store_units_total`, `tessera_store_messages_total` and
//! `tessera_store_syncs_total`.

use std::sync::atomic::{AtomicU64, Ordering};

static UNITS: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// The counts at one moment; subtract two to get a run's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreActivity {
    /// Units of work committed (empty ones are not).
    pub units: u64,
    /// Messages those units put in an outbox.
    pub messages: u64,
    /// fsync/fdatasync calls the SQLite backend made: its syncs of the write-ahead log, and the
    /// two a checkpoint makes when it copies frames back (the log's, then the database's).
    /// PostgreSQL's are the server's own and are not counted here.
    pub syncs: u64,
}

impl std::ops::Sub for StoreActivity {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            units: self.units.saturating_sub(earlier.units),
            messages: self.messages.saturating_sub(earlier.messages),
            syncs: self.syncs.saturating_sub(earlier.syncs),
        }
    }
}

/// The counts now.
pub fn activity() -> StoreActivity {
    StoreActivity {
        units: UNITS.load(Ordering::Relaxed),
        messages: MESSAGES.load(Ordering::Relaxed),
        syncs: SYNCS.load(Ordering::Relaxed),
    }
}

/// Units of work committed so far, by store name.
pub fn units_by_store() -> std::collections::BTreeMap<String, u64> {
    BY_STORE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

static BY_STORE: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

pub(crate) fn committed(store: &str, messages: u64) {
    {
        let mut by_store = BY_STORE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match by_store.get_mut(store) {
            Some(units) => *units += 1,
            None => {
                by_store.insert(store.to_owned(), 1);
            }
        }
    }
    UNITS.fetch_add(1, Ordering::Relaxed);
    MESSAGES.fetch_add(messages, Ordering::Relaxed);
    metrics::counter!("tessera_store_units_total").increment(1);
    if messages > 0 {
        metrics::counter!("tessera_store_messages_total").increment(messages);
    }
}

pub(crate) fn synced(syncs: u64) {
    SYNCS.fetch_add(syncs, Ordering::Relaxed);
    metrics::counter!("tessera_store_syncs_total").increment(syncs);
}
