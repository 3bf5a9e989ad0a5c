//! A hybrid logical clock (Kulkarni et al., 2014): stamps that follow wall time closely, never
//! go backwards, and order every event after anything its node has seen from other nodes.
//! Replicas merge records last-writer-wins by these stamps, so they converge regardless of
//! delivery order or duplicates.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{Clock, Timestamp};

/// One hybrid-clock stamp: physical microseconds plus a logical counter for events that share
/// (or lag behind) the physical reading. Ordered by wall time, then counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlcTimestamp {
    wall: Timestamp,
    logical: u32,
}

impl HlcTimestamp {
    pub const fn new(wall: Timestamp, logical: u32) -> Self {
        Self { wall, logical }
    }

    pub const fn wall(self) -> Timestamp {
        self.wall
    }

    pub const fn logical(self) -> u32 {
        self.logical
    }

    /// The next stamp at the same wall time; on counter overflow the wall time moves on by one
    /// microsecond, which keeps the clock monotonic at the cost of a negligible drift.
    fn tick(self) -> Self {
        match self.logical.checked_add(1) {
            Some(logical) => Self { wall: self.wall, logical },
            None => Self { wall: Timestamp::from_micros(self.wall.as_micros() + 1), logical: 0 },
        }
    }
}

/// Fixed-width hex, so that the textual form sorts like the stamp itself (useful in SQL).
impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:08x}", self.wall.as_micros(), self.logical)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a hybrid-clock stamp (24 hex digits)")]
pub struct ParseHlcError(String);

impl FromStr for HlcTimestamp {
    type Err = ParseHlcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseHlcError(s.to_owned());
        if s.len() != 24 || !s.is_ascii() {
            return Err(invalid());
        }
        let wall = u64::from_str_radix(&s[..16], 16).map_err(|_| invalid())?;
        let logical = u32::from_str_radix(&s[16..], 16).map_err(|_| invalid())?;
        Ok(Self { wall: Timestamp::from_micros(wall), logical })
    }
}

impl Serialize for HlcTimestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HlcTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A remote stamp too far ahead of local physical time: merging it would drag this node's
/// clock into the future, so it is refused instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("remote stamp {remote} is {ahead:?} ahead of local time; the limit is {limit:?}")]
pub struct ClockSkewError {
    pub remote: HlcTimestamp,
    pub ahead: Duration,
    pub limit: Duration,
}

/// The clock of one node. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct HybridClock {
    physical: Arc<dyn Clock>,
    max_skew: Duration,
    last: Mutex<HlcTimestamp>,
}

impl HybridClock {
    /// The default tolerance for remote clocks running ahead of ours.
    pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

    pub fn new(physical: Arc<dyn Clock>) -> Self {
        Self::with_max_skew(physical, Self::DEFAULT_MAX_SKEW)
    }

    pub fn with_max_skew(physical: Arc<dyn Clock>, max_skew: Duration) -> Self {
        Self { physical, max_skew, last: Mutex::new(HlcTimestamp::default()) }
    }

    /// A stamp for a local event: after every stamp this clock has issued or observed.
    pub fn now(&self) -> HlcTimestamp {
        let physical = self.physical.now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let next = if physical > last.wall { HlcTimestamp::new(physical, 0) } else { last.tick() };
        *last = next;
        next
    }

    /// Merges a stamp received from another node and returns a stamp after both.
    pub fn observe(&self, remote: HlcTimestamp) -> Result<HlcTimestamp, ClockSkewError> {
        let physical = self.physical.now();
        let ahead = remote.wall.since(physical);
        if ahead > self.max_skew {
            return Err(ClockSkewError { remote, ahead, limit: self.max_skew });
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let wall = physical.max(last.wall).max(remote.wall);
        let next = if wall == physical && wall > last.wall && wall > remote.wall {
            HlcTimestamp::new(wall, 0)
        } else if last.wall == remote.wall && wall == last.wall {
            HlcTimestamp::new(wall, last.logical.max(remote.logical)).tick()
        } else if wall == last.wall {
            last.tick()
        } else {
            remote.tick()
        };
        *last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::clock::ManualClock;

    fn clock_at(micros: u64) -> (Arc<ManualClock>, HybridClock) {
        let physical = Arc::new(ManualClock::new(Timestamp::from_micros(micros)));
        let hlc = HybridClock::new(physical.clone());
        (physical, hlc)
    }

    #[test]
    fn stamps_follow_physical_time_when_it_advances() {
        let (physical, hlc) = clock_at(1_000);
        assert_eq!(hlc.now(), HlcTimestamp::new(Timestamp::from_micros(1_000), 0));
        physical.advance(Duration::from_micros(5));
        assert_eq!(hlc.now(), HlcTimestamp::new(Timestamp::from_micros(1_005), 0));
    }

    #[test]
    fn stamps_stay_monotonic_when_physical_time_stalls_or_goes_back() {
        let (physical, hlc) = clock_at(1_000);
        let first = hlc.now();
        let second = hlc.now();
        physical.set(Timestamp::from_micros(10));
        let third = hlc.now();
        assert!(first < second && second < third);
        assert_eq!(third.wall(), Timestamp::from_micros(1_000));
    }

    #[test]
    fn observing_a_remote_stamp_orders_later_local_events_after_it() {
        let (_physical, hlc) = clock_at(1_000);
        let remote = HlcTimestamp::new(Timestamp::from_micros(2_000), 7);
        let merged = hlc.observe(remote).expect("within skew");
        assert!(merged > remote);
        assert!(hlc.now() > merged);
    }

    #[test]
    fn a_remote_stamp_far_in_the_future_is_refused() {
        let (_physical, hlc) = clock_at(1_000);
        let remote = HlcTimestamp::new(Timestamp::from_micros(1_000 + 61_000_000), 0);
        let error = hlc.observe(remote).expect_err("too far ahead");
        assert_eq!(error.limit, HybridClock::DEFAULT_MAX_SKEW);
        assert!(hlc.now() < remote, "a refused stamp must not move the clock");
    }

    #[test]
    fn logical_overflow_moves_wall_time_on() {
        let stamp = HlcTimestamp::new(Timestamp::from_micros(9), u32::MAX).tick();
        assert_eq!(stamp, HlcTimestamp::new(Timestamp::from_micros(10), 0));
    }

    #[test]
    fn text_form_round_trips_and_sorts_like_the_stamp() {
        let a = HlcTimestamp::new(Timestamp::from_micros(255), 1);
        let b = HlcTimestamp::new(Timestamp::from_micros(256), 0);
        assert_eq!(a.to_string().parse::<HlcTimestamp>(), Ok(a));
        assert!(a.to_string() < b.to_string());
        assert!("zz".parse::<HlcTimestamp>().is_err());
        let json = serde_json::to_string(&b).expect("serialise");
        assert_eq!(serde_json::from_str::<HlcTimestamp>(&json).expect("parse"), b);
    }

    proptest! {
        /// Whatever interleaving of physical readings, local events and remote stamps, every
        /// stamp a clock hands out is strictly greater than the one before and than any
        /// remote stamp it merged.
        #[test]
        fn every_issued_stamp_is_strictly_increasing(
            steps in prop::collection::vec((0u64..5_000, prop::option::of((0u64..5_000, 0u32..4))), 1..200)
        ) {
            let (physical, hlc) = clock_at(0);
            let mut previous = HlcTimestamp::default();
            for (reading, remote) in steps {
                physical.set(Timestamp::from_micros(reading));
                let stamp = match remote {
                    Some((wall, logical)) => {
                        let remote = HlcTimestamp::new(Timestamp::from_micros(wall), logical);
                        let merged = hlc.observe(remote).expect("skew is bounded by test input");
                        prop_assert!(merged > remote);
                        merged
                    }
                    None => hlc.now(),
                };
                prop_assert!(stamp > previous, "{stamp:?} after {previous:?}");
                previous = stamp;
            }
        }
    }
}
