//! The rate limits: how many requests a token and an address may make.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests allowed per second, and the burst above that rate, per bearer token and per
/// client address.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub per_token: NonZeroU32,
    pub token_burst: NonZeroU32,
    pub per_address: NonZeroU32,
    pub address_burst: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let n = |value| NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN);
        Self { per_token: n(200), token_burst: n(400), per_address: n(2000), address_burst: n(4000) }
    }
}

/// Keys a limiter keeps before it drops the ones that are back to a full allowance.
const MAX_KEYS: usize = 50_000;

pub(crate) struct Limiter {
    tokens: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            tokens: RateLimiter::keyed(Quota::per_second(limits.per_token).allow_burst(limits.token_burst)),
            addresses: RateLimiter::keyed(
                Quota::per_second(limits.per_address).allow_burst(limits.address_burst),
            ),
        }
    }

    /// `Err(seconds to wait)` when either key is over its limit.
    pub(crate) fn check(&self, subject: Option<&str>, address: &str) -> Result<(), u64> {
        let wait = |outcome: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>| {
            outcome.map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
        };
        // Forget idle keys now and then, so the tables stay as small as the active clients.
        if self.addresses.len() > MAX_KEYS || self.tokens.len() > MAX_KEYS {
            self.addresses.retain_recent();
            self.tokens.retain_recent();
        }
        wait(self.addresses.check_key(&address.to_owned()))?;
        if let Some(subject) = subject {
            wait(self.tokens.check_key(&subject.to_owned()))?;
        }
        Ok(())
    }
}
