//! How far behind each subscription of this process runs, for the admin status (the same
//! figure `/metrics` shows as `tessera_consumer_lag_seconds`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

fn lags() -> &'static Mutex<BTreeMap<String, f64>> {
    static LAGS: OnceLock<Mutex<BTreeMap<String, f64>>> = OnceLock::new();
    LAGS.get_or_init(Mutex::default)
}

pub(crate) fn record(consumer: &str, seconds: f64) {
    let mut lags = lags().lock().unwrap_or_else(|e| e.into_inner());
    match lags.get_mut(consumer) {
        Some(lag) => *lag = seconds,
        None => {
            lags.insert(consumer.to_owned(), seconds);
        }
    }
}

/// Each subscription of `service` in this process (`<service>__<source>`) with the age, in
/// seconds, of the last message it finished.
pub fn consumer_lags(service: &str) -> Vec<(String, f64)> {
    let prefix = format!("{service}__");
    let lags = lags().lock().unwrap_or_else(|e| e.into_inner());
    lags.iter().filter(|(consumer, _)| consumer.starts_with(&prefix)).map(|(c, s)| (c.clone(), *s)).collect()
}
