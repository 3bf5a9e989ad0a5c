//! Wall-clock time behind a trait, so tests and simulations decide what "now" is.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch. Microseconds keep ordering fine enough for commit stamps
/// while an `i64` column holds them on both storage backends for the next 290,000 years.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// RFC 3339 in UTC with microseconds, as APIs show instants: `2026-11-26T07:00:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let time = UNIX_EPOCH + Duration::from_micros(self.0);
        humantime::format_rfc3339_micros(time).to_string()
    }

    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        let add = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(add))
    }

    #[must_use]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let sub = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(sub))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The source of "now".
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that moves only when told to: deterministic tests of timeouts and timers.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self { micros: AtomicU64::new(start.as_micros()) }
    }

    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.as_micros(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339_utc() {
        assert_eq!(Timestamp::from_micros(1_795_651_200_000_001).to_rfc3339(), "2026-11-26T00:00:00.000001Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_micros(10));
        assert_eq!(clock.now(), Timestamp::from_micros(10));
        clock.advance(Duration::from_millis(2));
        assert_eq!(clock.now(), Timestamp::from_micros(2_010));
        clock.set(Timestamp::from_micros(5));
        assert_eq!(clock.now().as_micros(), 5);
    }

    #[test]
    fn timestamp_arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_micros(5);
        assert_eq!(t.saturating_sub(Duration::from_secs(1)), Timestamp::EPOCH);
        assert_eq!(
            Timestamp::from_micros(u64::MAX).saturating_add(Duration::from_secs(1)).as_micros(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::from_micros(3_000_000).since(Timestamp::from_micros(1_000_000)),
            Duration::from_secs(2)
        );
        assert_eq!(Timestamp::from_micros(1).since(Timestamp::from_micros(9)), Duration::ZERO);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_micros() > 1_577_836_800_000_000);
    }
}
