//! The open loop's clock: the n-th request is due at `n / rate` seconds after the start,
//! whatever happened to the ones before it. Latency is measured from that due time, so a
//! system that answers slowly cannot slow the arrivals down and hide its queueing (the
//! "coordinated omission" of closed-loop tools).

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    rate: f64,
}

impl Schedule {
    /// `rate` arrivals per second; rates that are not positive and finite are treated as one
    /// a second rather than dividing by zero.
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        Self { rate }
    }

    /// How long after the start the `n`-th arrival (from 0) is due.
    pub fn due(&self, n: u64) -> Duration {
        // Dividing n by the rate (rather than adding a rounded interval n times) keeps the
        // schedule from drifting over a long run.
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 arrivals
        let seconds = n as f64 / self.rate;
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced_from_the_start() {
        let schedule = Schedule::new(4.0);
        assert_eq!(schedule.due(0), Duration::ZERO);
        assert_eq!(schedule.due(1), Duration::from_millis(250));
        assert_eq!(schedule.due(4), Duration::from_secs(1));
    }

    #[test]
    fn a_high_rate_does_not_drift_over_a_long_run() {
        let schedule = Schedule::new(3000.0);
        let hour = schedule.due(3000 * 3600);
        assert!(hour.abs_diff(Duration::from_secs(3600)) < Duration::from_millis(1), "{hour:?}");
    }

    #[test]
    fn a_rate_of_zero_does_not_divide_by_zero() {
        assert_eq!(Schedule::new(0.0).due(2), Duration::from_secs(2));
    }
}
