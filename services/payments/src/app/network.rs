//! The card network, behind a small trait; the simulation implements API.md's test cards,
//! a configurable latency, a delay for "slow" cards and a random transient failure rate.
//! Every operation carries an idempotency key, and the network answers a repeated key with
//! its first definitive answer, as real acquirers do, so a retry never charges twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tessera_contracts::Money;
use tessera_contracts::payments::DeclineReason;

use crate::domain::CardProfile;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("declined: {0:?}")]
    Declined(DeclineReason),
    #[error("transient network error: {0}")]
    Transient(String),
}

#[async_trait]
pub trait CardNetwork: Send + Sync + std::fmt::Debug {
    /// Returns an authorisation code.
    async fn authorise(
        &self,
        key: &str,
        profile: CardProfile,
        amount: &Money,
    ) -> Result<String, NetworkError>;
    async fn capture(&self, key: &str, authorisation: &str, amount: &Money) -> Result<(), NetworkError>;
    async fn void(&self, key: &str, authorisation: &str) -> Result<(), NetworkError>;
    async fn refund(&self, key: &str, authorisation: &str, amount: &Money) -> Result<(), NetworkError>;
}

#[derive(Clone, Debug)]
pub struct NetworkSettings {
    pub latency: Duration,
    /// How long "slow" cards take to answer.
    pub slow_delay: Duration,
    /// Share of operations that fail transiently, 0.0 to 1.0.
    pub failure_rate: f64,
    /// Transient-profile cards fail this many times per key before they are approved.
    pub transient_failures: u32,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            slow_delay: Duration::from_secs(30),
            failure_rate: 0.0,
            transient_failures: 2,
        }
    }
}

#[derive(Debug, Default)]
struct Ledger {
    /// The first definitive answer per idempotency key.
    answers: HashMap<String, Result<String, NetworkError>>,
    transient_attempts: HashMap<String, u32>,
    /// Money moved per operation kind, as the network saw it: tests check "charged once".
    captured: HashMap<String, i64>,
    refunded: HashMap<String, i64>,
}

#[derive(Debug, Default)]
pub struct SimulatedNetwork {
    settings: NetworkSettings,
    ledger: Mutex<Ledger>,
}

impl SimulatedNetwork {
    pub fn new(settings: NetworkSettings) -> Self {
        Self { settings, ledger: Mutex::default() }
    }

    /// Captures the network executed, per idempotency key (each key at most once).
    pub fn captured(&self) -> HashMap<String, i64> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).captured.clone()
    }

    pub fn refunded(&self) -> HashMap<String, i64> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).refunded.clone()
    }

    fn random_failure(&self) -> bool {
        if self.settings.failure_rate <= 0.0 {
            return false;
        }
        // The random bits of a UUID v7 are uniform enough for a failure rate.
        #[allow(clippy::cast_precision_loss)]
        let draw = (uuid::Uuid::now_v7().as_u128() as u64 % 1_000_000) as f64 / 1_000_000.0;
        draw < self.settings.failure_rate
    }

    async fn operation(
        &self,
        key: &str,
        slow: bool,
        outcome: impl FnOnce(&mut Ledger) -> Result<String, NetworkError>,
    ) -> Result<String, NetworkError> {
        tokio::time::sleep(if slow { self.settings.slow_delay } else { self.settings.latency }).await;
        let mut ledger = self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(answer) = ledger.answers.get(key) {
            return answer.clone();
        }
        if self.random_failure() {
            return Err(NetworkError::Transient("simulated network failure".into()));
        }
        let answer = outcome(&mut ledger);
        if !matches!(answer, Err(NetworkError::Transient(_))) {
            ledger.answers.insert(key.to_owned(), answer.clone());
        }
        answer
    }
}

#[async_trait]
impl CardNetwork for SimulatedNetwork {
    async fn authorise(
        &self,
        key: &str,
        profile: CardProfile,
        amount: &Money,
    ) -> Result<String, NetworkError> {
        let transient_failures = self.settings.transient_failures;
        let amount = amount.amount;
        self.operation(key, profile == CardProfile::Slow, |ledger| match profile {
            CardProfile::Decline => Err(NetworkError::Declined(DeclineReason::CardDeclined)),
            CardProfile::InsufficientFunds => Err(NetworkError::Declined(DeclineReason::InsufficientFunds)),
            CardProfile::Transient => {
                let attempts = ledger.transient_attempts.entry(key.to_owned()).or_default();
                *attempts += 1;
                if *attempts <= transient_failures {
                    Err(NetworkError::Transient("processing error".into()))
                } else {
                    Ok(format!("auth-{key}-{amount}"))
                }
            }
            CardProfile::Approve | CardProfile::Slow => Ok(format!("auth-{key}-{amount}")),
        })
        .await
    }

    async fn capture(&self, key: &str, _authorisation: &str, amount: &Money) -> Result<(), NetworkError> {
        let amount = amount.amount;
        self.operation(key, false, |ledger| {
            *ledger.captured.entry(key.to_owned()).or_default() += amount;
            Ok(String::new())
        })
        .await
        .map(|_| ())
    }

    async fn void(&self, key: &str, _authorisation: &str) -> Result<(), NetworkError> {
        self.operation(key, false, |_| Ok(String::new())).await.map(|_| ())
    }

    async fn refund(&self, key: &str, _authorisation: &str, amount: &Money) -> Result<(), NetworkError> {
        let amount = amount.amount;
        self.operation(key, false, |ledger| {
            *ledger.refunded.entry(key.to_owned()).or_default() += amount;
            Ok(String::new())
        })
        .await
        .map(|_| ())
    }
}
