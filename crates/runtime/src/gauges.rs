//! Gauges read from each service's store every few seconds: what is waiting (outbox backlog and
//! its oldest row, dead letters, stuck sagas) and how far read models trail their events.

use std::collections::HashSet;
use std::time::Duration;

use tessera_store::{Statement, Store};
use tokio::sync::watch;

pub(crate) async fn sample_until(
    service: &'static str,
    store: Store,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Sagas that ended before this process started are not timed again.
    let mut ended_after = i64::try_from(store.clock().now().as_micros()).unwrap_or(i64::MAX);
    let mut reported = HashSet::new();
    while !*stop.borrow() {
        sample(service, &store, &mut reported).await;
        ended_after = time_ended_sagas(service, &store, ended_after).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// `reported`: the (saga, status) pairs given a value before, so that a count that fell to
/// zero (no row in the `GROUP BY`) is shown as zero, not as its last value.
async fn sample(service: &'static str, store: &Store, reported: &mut HashSet<(String, String)>) {
    let now = store.clock().now();
    if let Ok(backlog) = store.outbox_backlog().await {
        metrics::gauge!("tessera_outbox_unsent", "service" => service).set(backlog.unsent as f64);
        let oldest = backlog.oldest_unsent.map_or(0.0, |at| now.since(at).as_secs_f64());
        metrics::gauge!("tessera_outbox_oldest_unsent_seconds", "service" => service).set(oldest);
    }
    if let Ok(letters) = tessera_bus::list_dead_letters(store, None).await {
        let parked = letters.iter().filter(|letter| letter.state == "parked").count();
        metrics::gauge!("tessera_dead_letters", "service" => service).set(parked as f64);
    }
    if let Ok(projections) = tessera_projection::status(store).await {
        for projection in projections {
            let labels = [("service", service.to_owned()), ("projection", projection.name.clone())];
            metrics::gauge!("tessera_projection_lag_events", &labels).set(projection.lag_events as f64);
            metrics::gauge!("tessera_projection_lag_seconds", &labels).set(projection.lag_seconds);
        }
    }
    let stuck = crate::admin::stuck_sagas(store).await.len();
    metrics::gauge!("tessera_sagas_stuck", "service" => service).set(stuck as f64);
    // Sagas by state (a service without sagas has no table: nothing to report).
    let by_status =
        Statement::new("SELECT saga, status, count(*) AS n FROM tessera_sagas GROUP BY saga, status");
    if let Ok(rows) = store.query(by_status).await {
        let mut counts = std::collections::HashMap::new();
        for row in rows {
            if let (Ok(saga), Ok(status), Ok(count)) = (row.text("saga"), row.text("status"), row.int("n")) {
                counts.insert((saga.to_owned(), status.to_owned()), count);
            }
        }
        reported.extend(counts.keys().cloned());
        for (saga, status) in reported.iter() {
            let count = counts.get(&(saga.clone(), status.clone())).copied().unwrap_or(0);
            let labels =
                [("service", service.to_owned()), ("saga", saga.clone()), ("status", status.clone())];
            metrics::gauge!("tessera_sagas", &labels).set(count as f64);
        }
    }
}

/// Records how long each saga that ended since `after` (µs) took; returns the new watermark.
async fn time_ended_sagas(service: &'static str, store: &Store, after: i64) -> i64 {
    let ended = Statement::new(
        "SELECT saga, status, started_at, updated_at FROM tessera_sagas
         WHERE status IN ('completed', 'compensated') AND updated_at > $1 ORDER BY updated_at LIMIT 10000",
    )
    .bind(after);
    let Ok(rows) = store.query(ended).await else { return after };
    let mut watermark = after;
    for row in rows {
        let (Ok(saga), Ok(status), Ok(started), Ok(updated)) =
            (row.text("saga"), row.text("status"), row.int("started_at"), row.int("updated_at"))
        else {
            continue;
        };
        let labels =
            [("service", service.to_owned()), ("saga", saga.to_owned()), ("status", status.to_owned())];
        metrics::histogram!("tessera_saga_duration_seconds", &labels)
            .record(updated.saturating_sub(started).max(0) as f64 / 1e6);
        watermark = watermark.max(updated);
    }
    watermark
}
