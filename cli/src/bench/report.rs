//! One shape for every bench's output: a table for people, `--json` for machines.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub name: String,
    pub backend: String,
    pub writers: usize,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl BenchResult {
    /// `ops` operations in `elapsed`, with per-call latencies (µs) in `latency`.
    pub fn new(
        name: &str,
        backend: &str,
        writers: usize,
        ops: u64,
        elapsed: Duration,
        latency: &Histogram<u64>,
    ) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let ops_per_sec = ops as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
        Self {
            name: name.to_owned(),
            backend: backend.to_owned(),
            writers,
            ops_per_sec,
            p50_us: latency.value_at_quantile(0.50),
            p99_us: latency.value_at_quantile(0.99),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub results: Vec<BenchResult>,
}

impl Report {
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        println!(
            "{:<40} {:<10} {:>7} {:>12} {:>9} {:>9}",
            "name", "backend", "writers", "ops/s", "p50 µs", "p99 µs"
        );
        for r in &self.results {
            println!(
                "{:<40} {:<10} {:>7} {:>12.0} {:>9} {:>9}",
                r.name, r.backend, r.writers, r.ops_per_sec, r.p50_us, r.p99_us
            );
        }
        Ok(())
    }
}

/// Latencies from 1 µs to 60 s at three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the crate's preconditions (low >= 1, high >= 2 * low).
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1)
}
