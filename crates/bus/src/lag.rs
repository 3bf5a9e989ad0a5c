//! How far behind each subscription of this process runs, for the admin status (the same
//! figure `/metrics` shows as `tessera_consumer_lag_seconds`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// A subscription's lag: in time, and in messages not yet acknowledged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsumerLag {
    pub consumer: String,
    /// The age of the oldest message of the last group it finished, in seconds.
    pub seconds: f64,
    /// Messages waiting or in flight, as the transport counts them (`None` until sampled).
    pub messages: Option<u64>,
}

fn lags() -> &'static Mutex<BTreeMap<String, ConsumerLag>> {
    static LAGS: OnceLock<Mutex<BTreeMap<String, ConsumerLag>>> = OnceLock::new();
    LAGS.get_or_init(Mutex::default)
}

fn update(consumer: &str, change: impl FnOnce(&mut ConsumerLag)) {
    let mut lags = lags().lock().unwrap_or_else(|e| e.into_inner());
    if !lags.contains_key(consumer) {
        lags.insert(
            consumer.to_owned(),
            ConsumerLag { consumer: consumer.to_owned(), ..ConsumerLag::default() },
        );
    }
    if let Some(lag) = lags.get_mut(consumer) {
        change(lag);
    }
}

pub(crate) fn record(consumer: &str, seconds: f64) {
    update(consumer, |lag| lag.seconds = seconds);
}

pub(crate) fn record_pending(consumer: &str, messages: u64) {
    update(consumer, |lag| lag.messages = Some(messages));
}

/// Each subscription of `service` in this process (`<service>__<source>`).
pub fn consumer_lags(service: &str) -> Vec<ConsumerLag> {
    let prefix = format!("{service}__");
    let lags = lags().lock().unwrap_or_else(|e| e.into_inner());
    lags.values().filter(|lag| lag.consumer.starts_with(&prefix)).cloned().collect()
}
