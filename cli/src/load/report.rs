//! What a load run measured: latency per operation (answered with 2xx), errors per operation
//! and code, and where every order ended; shared by the tasks while the run goes on, then
//! summarised into a [`LoadReport`] printed as a table or JSON.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::bench::report::{latency_histogram, micros};

/// Counts and latencies, written by every task of the run.
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    latency: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<(&'static str, String), u64>,
    /// Placed (first attempt due) to the first time the order was seen terminal, by status.
    settle: BTreeMap<String, Histogram<u64>>,
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        // A task that panicked while holding the lock left whole counts behind: keep going.
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn success(&self, operation: &'static str, latency: Duration) {
        self.with(|r| {
            r.latency.entry(operation).or_insert_with(latency_histogram).saturating_record(micros(latency));
        });
    }

    pub fn error(&self, operation: &'static str, code: String) {
        self.with(|r| *r.errors.entry((operation, code)).or_default() += 1);
    }

    pub fn settled(&self, status: &str, latency: Duration) {
        self.with(|r| {
            r.settle
                .entry(status.to_owned())
                .or_insert_with(latency_histogram)
                .saturating_record(micros(latency));
        });
    }

    pub fn counts(&self) -> (u64, u64) {
        self.with(|r| (r.latency.values().map(Histogram::len).sum(), r.errors.values().sum()))
    }

    pub fn summarise(&self, elapsed: Duration) -> (Vec<OperationStats>, Vec<ErrorCount>, Vec<SettleStats>) {
        self.with(|r| {
            let mut names: Vec<&'static str> = r.latency.keys().copied().collect();
            names.extend(r.errors.keys().map(|(operation, _)| *operation));
            names.sort_unstable();
            names.dedup();
            let operations = names
                .into_iter()
                .map(|name| {
                    let errors = r.errors.iter().filter(|((op, _), _)| *op == name).map(|(_, n)| n).sum();
                    let empty = latency_histogram();
                    let latency = r.latency.get(name).unwrap_or(&empty);
                    OperationStats::new(name, latency, errors, elapsed)
                })
                .collect();
            let errors = r
                .errors
                .iter()
                .map(|((operation, code), count)| ErrorCount { operation, code: code.clone(), count: *count })
                .collect();
            let settle = r.settle.iter().map(|(status, h)| SettleStats::new(status, h)).collect();
            (operations, errors, settle)
        })
    }
}

/// Latency percentiles of one operation, in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationStats {
    pub name: &'static str,
    pub ok: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl OperationStats {
    fn new(name: &'static str, latency: &Histogram<u64>, errors: u64, elapsed: Duration) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let per_second = latency.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
        Self {
            name,
            ok: latency.len(),
            errors,
            per_second,
            p50_us: latency.value_at_quantile(0.50),
            p90_us: latency.value_at_quantile(0.90),
            p99_us: latency.value_at_quantile(0.99),
            p999_us: latency.value_at_quantile(0.999),
            max_us: latency.max(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCount {
    pub operation: &'static str,
    /// The HTTP status, or the transport failure (`connect`, `timeout`, `transport`).
    pub code: String,
    pub count: u64,
}

/// How long orders took from being placed to a terminal state, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct SettleStats {
    pub status: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl SettleStats {
    fn new(status: &str, histogram: &Histogram<u64>) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            status: status.to_owned(),
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// An order the gateway accepted (202), known by its id, and the last status read for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedOrder {
    pub id: String,
    pub card: &'static str,
    pub final_status: Option<String>,
}

#[derive(Clone, Debug)]
pub struct LoadReport {
    /// `open @ N/s` or `closed, N clients`.
    pub mode: String,
    /// The load phase, without set-up and without the wait for orders to settle.
    pub elapsed: Duration,
    /// HTTP requests sent from the start of the load phase to the last read of the orders'
    /// final state, retries and renewed sign-ins included.
    pub requests: u64,
    pub operations: Vec<OperationStats>,
    pub errors: Vec<ErrorCount>,
    /// Placed to terminal, by the terminal status first seen.
    pub settle: Vec<SettleStats>,
    pub orders: Vec<PlacedOrder>,
    /// Orders the load tried to place.
    pub attempted_orders: u64,
    /// Orders the gateway accepted with 202 (each is in `orders`).
    pub accepted_orders: u64,
    /// Orders refused with a definitive 4xx.
    pub refused_orders: u64,
    /// Orders for which no definitive answer came before the run ended (retried all along with
    /// the same key: each may or may not exist).
    pub unanswered_orders: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    /// Accepted orders still pending (or never read) after the settle wait.
    pub non_terminal: u64,
}

impl LoadReport {
    /// Orders confirmed (or confirmed and later cancelled by the load) per second of load.
    pub fn confirmed_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let confirmed = self.settle.iter().find(|s| s.status == "confirmed").map_or(0, |s| s.count) as f64;
        confirmed / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// How the accepted orders ended, per card: card → final status (`unknown` if never read) → count.
    pub fn outcomes_by_card(&self) -> BTreeMap<&'static str, BTreeMap<String, u64>> {
        let mut outcomes: BTreeMap<&'static str, BTreeMap<String, u64>> = BTreeMap::new();
        for order in &self.orders {
            let status = order.final_status.clone().unwrap_or_else(|| "unknown".into());
            *outcomes.entry(order.card).or_default().entry(status).or_default() += 1;
        }
        outcomes
    }

    pub fn print_table(&self) {
        println!("{} for {:.1} s", self.mode, self.elapsed.as_secs_f64());
        println!(
            "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "operation", "ok", "errors", "ok/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        #[allow(clippy::cast_precision_loss)]
        let ms = |us: u64| us as f64 / 1000.0;
        for op in &self.operations {
            println!(
                "{:<16} {:>9} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                op.name,
                op.ok,
                op.errors,
                op.per_second,
                ms(op.p50_us),
                ms(op.p90_us),
                ms(op.p99_us),
                ms(op.p999_us),
                ms(op.max_us)
            );
        }
        if !self.errors.is_empty() {
            println!("\nerrors");
            for error in &self.errors {
                println!("  {:<16} {:<10} {:>9}", error.operation, error.code, error.count);
            }
        }
        println!(
            "\norders: {} attempted, {} accepted, {} refused, {} unanswered; {} confirmed, {} rejected, {} cancelled, {} not terminal",
            self.attempted_orders,
            self.accepted_orders,
            self.refused_orders,
            self.unanswered_orders,
            self.confirmed,
            self.rejected,
            self.cancelled,
            self.non_terminal
        );
        for (card, outcomes) in self.outcomes_by_card() {
            let outcomes: Vec<String> = outcomes.iter().map(|(status, n)| format!("{n} {status}")).collect();
            println!("  {card:<20} {}", outcomes.join(", "));
        }
        if !self.settle.is_empty() {
            println!(
                "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "placed → …", "orders", "p50 ms", "p90 ms", "p99 ms", "max ms"
            );
            for s in &self.settle {
                println!(
                    "{:<16} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    s.status, s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
                );
            }
        }
    }

    /// The report for machines. The orders themselves are left out (a long run has many);
    /// the library caller has them in [`LoadReport::orders`].
    pub fn to_json(&self) -> Value {
        let operations: Vec<Value> = self
            .operations
            .iter()
            .map(|op| {
                json!({"operation": op.name, "ok": op.ok, "errors": op.errors, "ok_per_second": op.per_second,
                    "latency_us": {"p50": op.p50_us, "p90": op.p90_us, "p99": op.p99_us, "p99_9": op.p999_us, "max": op.max_us}})
            })
            .collect();
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"operation": e.operation, "code": e.code, "count": e.count}))
            .collect();
        let settle: Vec<Value> = self
            .settle
            .iter()
            .map(|s| {
                json!({"status": s.status, "orders": s.count,
                    "ms": {"p50": s.p50_ms, "p90": s.p90_ms, "p99": s.p99_ms, "max": s.max_ms}})
            })
            .collect();
        json!({
            "mode": self.mode,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "operations": operations,
            "errors": errors,
            "orders": {
                "attempted": self.attempted_orders,
                "accepted": self.accepted_orders,
                "refused": self.refused_orders,
                "unanswered": self.unanswered_orders,
                "confirmed": self.confirmed,
                "rejected": self.rejected,
                "cancelled": self.cancelled,
                "non_terminal": self.non_terminal,
                "confirmed_per_second": self.confirmed_per_second(),
                "by_card": self.outcomes_by_card(),
                // The first of the orders left unsettled, to look up in the system.
                "non_terminal_ids": self.orders.iter()
                    .filter(|o| !matches!(o.final_status.as_deref(), Some("confirmed" | "rejected" | "cancelled")))
                    .take(100)
                    .map(|o| o.id.as_str())
                    .collect::<Vec<_>>(),
                "settle": settle,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_json_has_percentiles_per_operation_and_errors_by_code() {
        let recorder = Recorder::default();
        for ms in 1..=1000 {
            recorder.success("get_product", Duration::from_millis(ms));
        }
        recorder.error("place_order", "connect".into());
        recorder.error("place_order", "503".into());
        recorder.error("place_order", "503".into());
        recorder.settled("confirmed", Duration::from_millis(40));
        let elapsed = Duration::from_secs(10);
        let (operations, errors, settle) = recorder.summarise(elapsed);
        let report = LoadReport {
            mode: "closed, 1 client".into(),
            elapsed,
            requests: 1007,
            operations,
            errors,
            settle,
            orders: Vec::new(),
            attempted_orders: 4,
            accepted_orders: 1,
            refused_orders: 0,
            unanswered_orders: 3,
            confirmed: 1,
            rejected: 0,
            cancelled: 0,
            non_terminal: 0,
        };
        let json = report.to_json();
        let get = &json["operations"][0];
        assert_eq!(get["operation"], "get_product");
        assert_eq!(get["ok"], 1000);
        assert_eq!(get["ok_per_second"], 100.0);
        let p50 = get["latency_us"]["p50"].as_u64().unwrap_or_default();
        assert!((499_000..=501_000).contains(&p50), "{p50}");
        assert!(get["latency_us"]["p99_9"].as_u64() <= get["latency_us"]["max"].as_u64());
        assert_eq!(json["operations"][1]["operation"], "place_order");
        assert_eq!(json["operations"][1]["errors"], 3);
        assert_eq!(json["errors"][1], json!({"operation": "place_order", "code": "connect", "count": 1}));
        assert_eq!(json["orders"]["settle"][0]["status"], "confirmed");
        assert_eq!(json["orders"]["confirmed_per_second"], 0.1);
    }
}
