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
    /// CPU time this process spent per operation (user and system, all threads), where the
    /// bench measured it. It depends less than the rate on what else the machine runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<f64>,
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
            cpu_us_per_op: None,
        }
    }

    /// Adds the CPU time the process spent on these `ops` (a [`ProcessCpu`] reading's
    /// difference), if it could be read.
    #[must_use]
    pub fn with_cpu(mut self, cpu: Option<Duration>, ops: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        if let Some(cpu) = cpu.filter(|_| ops > 0) {
            self.cpu_us_per_op = Some(cpu.as_secs_f64() * 1e6 / ops as f64);
        }
        self
    }
}

/// This process's CPU time so far, user and system, from `/proc/self/stat` (Linux only).
#[derive(Clone, Copy, Debug)]
pub struct ProcessCpu(Option<Duration>);

impl ProcessCpu {
    pub fn now() -> Self {
        Self(read_process_cpu())
    }

    /// CPU time spent since `self` was read.
    pub fn elapsed(self) -> Option<Duration> {
        Some(read_process_cpu()?.saturating_sub(self.0?))
    }
}

fn read_process_cpu() -> Option<Duration> {
    parse_process_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User plus system time from a `/proc/<pid>/stat` line.
pub(crate) fn parse_process_cpu(stat: &str) -> Option<Duration> {
    // Clock ticks of USER_HZ, which Linux fixes at 100 for /proc whatever the kernel's HZ.
    const TICKS_PER_SECOND: u64 = 100;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3, so utime and stime (14 and 15) are the 12th and 13th of them.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1000 / TICKS_PER_SECOND))
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
        let with_cpu = self.results.iter().any(|r| r.cpu_us_per_op.is_some());
        let cpu_heading = if with_cpu { format!(" {:>12}", "cpu µs/op") } else { String::new() };
        println!(
            "{:<40} {:<10} {:>7} {:>12} {:>9} {:>9}{cpu_heading}",
            "name", "backend", "writers", "ops/s", "p50 µs", "p99 µs"
        );
        for r in &self.results {
            let cpu = match (with_cpu, r.cpu_us_per_op) {
                (true, Some(cpu)) => format!(" {cpu:>12.1}"),
                (true, None) => format!(" {:>12}", "-"),
                (false, _) => String::new(),
            };
            println!(
                "{:<40} {:<10} {:>7} {:>12.0} {:>9} {:>9}{cpu}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_is_user_plus_system_time_even_with_spaces_in_the_command_name() {
        let stat = "4242 (tessera (bench) x) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 51 0 0 20 0 9 0 \
                    123 456 789";
        assert_eq!(parse_process_cpu(stat), Some(Duration::from_millis(3010)));
        assert_eq!(parse_process_cpu("4242 (short) R 1"), None);
    }

    #[test]
    fn a_row_reports_cpu_per_operation_only_when_it_was_read() {
        let row = |cpu, ops| {
            BenchResult::new("r", "b", 1, ops, Duration::from_secs(1), &latency_histogram())
                .with_cpu(cpu, ops)
        };
        assert_eq!(row(Some(Duration::from_millis(30)), 1000).cpu_us_per_op, Some(30.0));
        assert_eq!(row(None, 1000).cpu_us_per_op, None);
        assert_eq!(row(Some(Duration::from_millis(30)), 0).cpu_us_per_op, None);
    }

    #[test]
    fn this_process_cpu_time_grows_with_work() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let before = ProcessCpu::now();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        // Spin until the reading moves by two ticks; a wall-clock bound keeps a broken reading
        // from spinning forever.
        while before.elapsed().expect("readable on Linux") < Duration::from_millis(20) {
            assert!(started.elapsed() < Duration::from_secs(10), "the CPU time did not grow");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
    }
}
