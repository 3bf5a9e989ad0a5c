//! Typed identifiers. Every id is a UUID v7: time-ordered, so ids sort roughly by creation and
//! index well, and unique without coordination, so a message id can be the dedupe key.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// A fresh id from `ids`.
            pub fn generate(ids: &dyn IdGen) -> Self {
                Self(ids.next_uuid())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

uuid_newtype!(
    /// The id of one message: the key every inbox deduplicates on.
    MessageId
);
uuid_newtype!(
    /// Ties together every message that one request caused, across services.
    CorrelationId
);
uuid_newtype!(
    /// The person a piece of data is about: the key under which it is encrypted and erased.
    SubjectId
);

/// The name of one event stream, such as `order-0190f3c2-…`. Non-empty, at most 200 bytes,
/// printable ASCII without spaces, so it is safe in SQL, subjects and logs alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamIdError {
    #[error("a stream id must not be empty")]
    Empty,
    #[error("a stream id is at most {max} bytes; this one has {len}")]
    TooLong { len: usize, max: usize },
    #[error("a stream id holds printable ASCII without spaces; found {0:?}")]
    InvalidCharacter(char),
}

impl StreamId {
    pub const MAX_LEN: usize = 200;

    pub fn parse(text: impl Into<String>) -> Result<Self, StreamIdError> {
        let text = text.into();
        if text.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(StreamIdError::TooLong { len: text.len(), max: Self::MAX_LEN });
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(StreamIdError::InvalidCharacter(bad));
        }
        Ok(Self(text))
    }

    /// `category-id`, the usual shape: `StreamId::for_entity("order", id)`.
    pub fn for_entity(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

/// The source of new ids.
pub trait IdGen: Send + Sync + fmt::Debug {
    fn next_uuid(&self) -> Uuid;
}

/// Real UUID v7s from the system clock and the operating system's randomness, strictly
/// increasing within the process.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7Gen;

impl IdGen for UuidV7Gen {
    fn next_uuid(&self) -> Uuid {
        v7::next()
    }
}

/// UUID v7s with a counter (RFC 9562, section 6.2, method 1) and random bits read from the
/// operating system a block at a time. `Uuid::now_v7` asks the kernel for 16 random bytes for
/// every id: a `getrandom` system call that was a sixth of the time of the tasks submitting
/// units of work in `tessera bench store`.
mod v7 {
    use std::cell::RefCell;
    use std::sync::{Mutex, PoisonError};
    use std::time::{SystemTime, UNIX_EPOCH};

    use uuid::Uuid;

    /// Counter bits, at the top of the 74 bits a v7 leaves after the time, version and variant.
    const COUNTER_BITS: u32 = 26;
    const RANDOM_BITS: u32 = 74 - COUNTER_BITS;
    /// A new millisecond's counter starts at a random value below half its range, so at least
    /// 2^25 ids fit in one millisecond before it borrows the next one.
    const SEED_MASK: u64 = (1 << (COUNTER_BITS - 1)) - 1;

    /// The last id's millisecond and counter, shared by every thread so ids increase process-wide.
    static LAST: Mutex<(u64, u64)> = Mutex::new((0, 0));

    thread_local! {
        static RANDOM: RefCell<RandomBlock> = const { RefCell::new(RandomBlock { bytes: [0; 512], used: 512 }) };
    }

    struct RandomBlock {
        bytes: [u8; 512],
        used: usize,
    }

    fn random_u64() -> u64 {
        RANDOM.with_borrow_mut(|block| {
            if block.used + 8 > block.bytes.len() {
                // The same failure `Uuid::now_v7` panics on: no randomness from the OS at all.
                getrandom::fill(&mut block.bytes).expect("the operating system's random source failed");
                block.used = 0;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(&block.bytes[block.used..block.used + 8]);
            block.used += 8;
            u64::from_ne_bytes(word)
        })
    }

    fn now_millis() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
    }

    /// The next (millisecond, counter): the clock's millisecond, or the last one if the clock
    /// went back; counting up within a millisecond, borrowing the next one on overflow.
    pub(super) fn advance(last: (u64, u64), now: u64, seed: u64) -> (u64, u64) {
        let (last_millis, last_counter) = last;
        if now > last_millis {
            (now, seed & SEED_MASK)
        } else if last_counter + 1 < (1 << COUNTER_BITS) {
            (last_millis, last_counter + 1)
        } else {
            (last_millis + 1, seed & SEED_MASK)
        }
    }

    pub(super) fn next() -> Uuid {
        let (seed, random) = (random_u64(), random_u64());
        let (millis, counter) = {
            let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
            *last = advance(*last, now_millis(), seed);
            *last
        };
        let payload = (u128::from(counter) << RANDOM_BITS) | u128::from(random & ((1 << RANDOM_BITS) - 1));
        // rand_a takes the top 12 payload bits and rand_b the other 62; the builder writes the
        // version over the 4 bits above rand_a and the variant over the 2 above rand_b.
        let bits = ((payload >> 62) << 64) | (payload & ((1 << 62) - 1));
        let bytes = bits.to_be_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&bytes[6..]);
        uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
    }
}

/// Valid, strictly increasing UUID v7s from a counter: the same sequence on every run.
#[derive(Debug, Default)]
pub struct DeterministicIdGen {
    counter: AtomicU64,
}

impl DeterministicIdGen {
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdGen for DeterministicIdGen {
    fn next_uuid(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut tail = [0u8; 10];
        tail[2..].copy_from_slice(&n.to_be_bytes());
        // The millisecond field carries the counter too, so ids also sort by creation order
        // when compared by their embedded time.
        uuid::Builder::from_unix_timestamp_millis(n, &tail).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_version_7() {
        let id = MessageId::generate(&UuidV7Gen);
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn real_ids_increase_strictly_across_threads_and_carry_the_clock() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..20_000).map(|_| UuidV7Gen.next_uuid()).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<Uuid> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
        for per_thread in all.chunks(20_000) {
            assert!(per_thread.windows(2).all(|w| w[0] < w[1]), "increasing within a thread");
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 80_000, "no id twice");
        let (seconds, _) = all[0].get_timestamp().expect("a v7 timestamp").to_unix();
        assert!(seconds.abs_diff(before.as_secs()) <= 1, "the id's time is the clock's");
        assert!(all.iter().all(|id| id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122));
    }

    #[test]
    fn the_counter_counts_within_a_millisecond_and_borrows_the_next_one_when_full() {
        assert_eq!(v7::advance((10, 5), 11, 7), (11, 7), "a new millisecond starts from the seed");
        assert_eq!(v7::advance((10, 5), 10, 7), (10, 6), "the same millisecond counts up");
        assert_eq!(v7::advance((10, 5), 9, 7), (10, 6), "a clock that went back does not go back");
        assert_eq!(v7::advance((10, (1 << 26) - 1), 10, 7), (11, 7), "a full counter borrows");
        assert!(v7::advance((10, 5), 11, u64::MAX).1 < 1 << 25, "a seed leaves half the range");
    }

    #[test]
    fn deterministic_ids_repeat_across_generators_and_increase() {
        let (a, b) = (DeterministicIdGen::new(), DeterministicIdGen::new());
        let first: Vec<Uuid> = (0..5).map(|_| a.next_uuid()).collect();
        let second: Vec<Uuid> = (0..5).map(|_| b.next_uuid()).collect();
        assert_eq!(first, second);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert!(first.iter().all(|id| id.get_version_num() == 7));
    }

    #[test]
    fn stream_ids_reject_empty_long_and_blank_names() {
        assert_eq!(StreamId::parse(""), Err(StreamIdError::Empty));
        assert!(matches!(StreamId::parse("x".repeat(201)), Err(StreamIdError::TooLong { len: 201, .. })));
        assert_eq!(StreamId::parse("a b"), Err(StreamIdError::InvalidCharacter(' ')));
        let id = StreamId::for_entity("order", 42).expect("valid");
        assert_eq!(id.as_str(), "order-42");
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(serde_json::from_str::<StreamId>(&json).expect("parse"), id);
        assert!(serde_json::from_str::<StreamId>("\"\"").is_err());
    }

    #[test]
    fn ids_parse_from_their_text() {
        let id = CorrelationId::generate(&UuidV7Gen);
        assert_eq!(id.to_string().parse::<CorrelationId>().expect("parse"), id);
        assert!("nope".parse::<SubjectId>().is_err());
    }
}
