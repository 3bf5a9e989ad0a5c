//! Payments' glue: tokenisation, and the handler for the order sagas' payment commands. One
//! payment per order (the table's key), one capture per order (another table's key), and the
//! network's idempotency keys derived from the order: whatever is redelivered or retried, an
//! order is never charged twice. `erasure` takes the customers service's erasures.

mod erasure;
mod network;

use std::sync::Arc;
use std::time::Duration;
use tessera_web::token::Actor;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::payments::{AuthorisePayment, CapturePayment, RefundPayment, VoidPayment};
use tessera_contracts::{Currency, EnvelopeBuilder, Message, Money, envelope};
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, Timestamp};
use tessera_saga::SagaEngine;
use tessera_store::{Row, Statement, Store, StoreError, UnitOfWork};
use uuid::Uuid;

pub use erasure::Erasures;
pub use network::{CardNetwork, NetworkError, NetworkSettings, SimulatedNetwork};

use crate::domain::{
    AuthorisationAnswer, AuthorisationOutcome, AuthorisationRequest, CardError, CardProfile, Operation,
    PaymentStatus, RecordedRequest, RepeatedAuthorisation, Settled, Settlement, authorisation_key,
    authorisation_outcome, authorised_reply, card_to_charge, request_authorisation, validate_card,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored payment method, as shown to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentMethod {
    pub token: String,
    pub customer_id: Uuid,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

/// A payment as stored, per order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    /// Whose order it pays for (who may read it).
    pub customer_id: Uuid,
    pub status: String,
    pub amount: Money,
    pub last4: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Payments {
    store: Store,
    network: Arc<dyn CardNetwork>,
    ids: Arc<dyn IdGen>,
    clock: Arc<HybridClock>,
    physical: Arc<dyn Clock>,
    /// Attempts against the network per round before the worker tries again later.
    network_attempts: u32,
    /// Wakes the authorisation worker when a request is recorded.
    requested: Arc<tokio::sync::Notify>,
}

/// The civil (year, month) of a timestamp, UTC: what a card's expiry is compared with.
fn year_month(at: Timestamp) -> (u32, u32) {
    let seconds = i64::try_from(at.as_micros() / 1_000_000).unwrap_or(i64::MAX);
    let date = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (u32::try_from(date.year()).unwrap_or(0), u32::from(u8::from(date.month())))
}

fn payment_from_row(row: &Row) -> Result<Payment, HandlerError> {
    Ok(Payment {
        id: row.text("payment_id")?.parse()?,
        order_id: row.text("order_id")?.parse()?,
        customer_id: row.text("customer_id")?.parse()?,
        status: row.text("status")?.to_owned(),
        amount: Money::new(row.int("amount")?, Currency::parse(row.text("currency")?)?)?,
        last4: row.text("last4")?.to_owned(),
        reason: row.opt_text("reason")?.map(str::to_owned),
    })
}

impl Payments {
    /// A read of someone's payment data on their behalf goes on the audit trail (the person's
    /// access report lists it). Its record joins the store's next group commit and the reader
    /// does not wait for it (docs/decisions/0015-read-audits-do-not-wait.md).
    pub async fn audit_read(&self, action: &str, resource: String, actor: &Actor) {
        let mut unit = self.store.begin();
        unit.audit(actor.audit(action, resource, "ok", self.clock.now().wall()));
        unit.commit_detached().await;
    }

    pub fn new(
        store: Store,
        network: Arc<dyn CardNetwork>,
        ids: Arc<dyn IdGen>,
        physical: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            network,
            ids,
            clock: Arc::new(HybridClock::new(physical.clone())),
            physical,
            network_attempts: 3,
            requested: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validates a card and stores a token for it, bound to `customer_id`. The number and CVC
    /// go no further than this call.
    pub async fn tokenise(
        &self,
        customer_id: Uuid,
        number: &str,
        exp_month: u32,
        exp_year: u32,
        cvc: &str,
        actor: &Actor,
    ) -> Result<PaymentMethod, AppError> {
        let card = validate_card(number, exp_month, exp_year, cvc, year_month(self.physical.now()))?;
        let token = format!("tok_{}", Uuid::now_v7().simple());
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO payment_methods (token, customer_id, brand, last4, exp_month, exp_year, profile, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(token.as_str())
            .bind(customer_id.to_string())
            .bind(card.brand.to_string())
            .bind(card.last4())
            .bind(card.exp_month)
            .bind(card.exp_year)
            .bind(card.profile.as_str())
            .bind(i64::try_from(self.physical.now().as_micros()).unwrap_or(i64::MAX)),
        );
        unit.audit(actor.audit(
            "payment_method.add",
            format!("payment_method/{token}"),
            "ok",
            self.physical.now(),
        ));
        unit.commit().await?;
        Ok(PaymentMethod {
            token,
            customer_id,
            brand: card.brand.to_string(),
            last4: card.last4(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        })
    }

    /// A stored payment method by its token.
    pub async fn payment_method(&self, token: &str) -> Result<Option<PaymentMethod>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(
                    "SELECT token, customer_id, brand, last4, exp_month, exp_year FROM payment_methods WHERE token = $1",
                )
                .bind(token),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        Ok(Some(PaymentMethod {
            token: row.text("token")?.to_owned(),
            customer_id: row.text("customer_id")?.parse().map_err(|e| corrupt(&e))?,
            brand: row.text("brand")?.to_owned(),
            last4: row.text("last4")?.to_owned(),
            exp_month: u32::try_from(row.int("exp_month")?).map_err(|e| corrupt(&e))?,
            exp_year: u32::try_from(row.int("exp_year")?).map_err(|e| corrupt(&e))?,
        }))
    }

    pub async fn payment(&self, order_id: Uuid) -> Result<Option<Payment>, HandlerError> {
        let rows = self
            .store
            .query(
                Statement::new(format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1"))
                    .bind(order_id.to_string()),
            )
            .await?;
        rows.first().map(payment_from_row).transpose()
    }

    /// `message` in its envelope, stamped with this service's ids and clock.
    fn build<M: Message>(&self, envelope: EnvelopeBuilder<'_, M>) -> Result<Envelope, HandlerError> {
        Ok(envelope.build(&*self.ids, self.clock.now())?)
    }

    fn reply(
        &self,
        unit: &mut UnitOfWork,
        command: &Envelope,
        result: Result<Option<serde_json::Value>, String>,
    ) -> Result<(), HandlerError> {
        if let Some(reply) = SagaEngine::reply(command, &*self.ids, self.clock.now(), result) {
            unit.send(&reply)?;
        }
        Ok(())
    }

    /// Calls the network, retrying transient errors with backoff; a definitive answer (or the
    /// last transient error) comes back.
    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, NetworkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, NetworkError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call().await {
                Err(NetworkError::Transient(reason)) if attempt < self.network_attempts => {
                    tracing::debug!(%reason, attempt, "transient card network error; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * 2u64.pow(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn stored_payment(
        &self,
        unit: &UnitOfWork,
        order_id: Uuid,
    ) -> Result<Option<Payment>, HandlerError> {
        let rows = unit
            .query(
                Statement::new(format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1"))
                    .bind(order_id.to_string()),
            )
            .await?;
        rows.first().map(payment_from_row).transpose()
    }

    async fn authorise(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        let command: AuthorisePayment = tessera_bus::payload(message)?;
        let payment = self.stored_payment(unit, command.order_id).await?;
        let voided = unit
            .query(
                Statement::new("SELECT 1 AS x FROM voided_orders WHERE order_id = $1")
                    .bind(command.order_id.to_string()),
            )
            .await?;
        let methods = unit
            .query(
                Statement::new("SELECT customer_id, last4, profile FROM payment_methods WHERE token = $1")
                    .bind(command.payment_token.as_str()),
            )
            .await?;
        let card_owner = methods.first().and_then(|m| m.text("customer_id").ok()?.parse::<Uuid>().ok());
        let stored = match &payment {
            Some(payment) => Some((status(payment)?, payment.reason.as_deref())),
            None => None,
        };
        match request_authorisation(stored, !voided.is_empty(), card_owner, command.customer_id) {
            AuthorisationRequest::Repeated(repeated) => {
                let answer = match (repeated, payment) {
                    (RepeatedAuthorisation::Wait, _) => return Ok(()),
                    (RepeatedAuthorisation::Authorised, Some(payment)) => {
                        Ok(Some(serde_json::to_value(authorised_reply(payment.id, payment.last4))?))
                    }
                    (RepeatedAuthorisation::Authorised, None) => {
                        return Err(HandlerError::rejected("a repeated authorisation without a payment"));
                    }
                    (RepeatedAuthorisation::Refused(reason), _) => Err(reason),
                };
                return self.reply(unit, message, answer);
            }
            AuthorisationRequest::Refuse(refusal) => {
                return self.reply(unit, message, Err(refusal.code().to_owned()));
            }
            AuthorisationRequest::Record => {}
        }
        let Some(method) = methods.first() else {
            return Err(HandlerError::rejected("a request recorded for no card"));
        };
        let last4 = method.text("last4")?.to_owned();
        // Record the request; the authorisation worker calls the network and answers, so a
        // slow card network never holds up other orders' messages.
        unit.execute(
            Statement::new(format!(
                "INSERT INTO payments ({PAYMENT_COLUMNS}, token, request, updated_at)
                 VALUES ($1, $2, $3, 'authorising', $4, $5, $6, NULL, $7, $8, $9)"
            ))
            .bind(Uuid::now_v7().to_string())
            .bind(command.order_id.to_string())
            .bind(command.customer_id.to_string())
            .bind(command.amount.amount)
            .bind(String::from(command.amount.currency.clone()))
            .bind(last4.as_str())
            .bind(command.payment_token.as_str())
            .bind(serde_json::to_string(message)?)
            .bind(i64::try_from(self.physical.now().as_micros()).unwrap_or(i64::MAX)),
        );
        // The worker reads the request from the database: wake it once the request is there.
        let requested = self.requested.clone();
        unit.after_commit(move || requested.notify_one());
        Ok(())
    }

    /// Authorises recorded requests against the network, up to `concurrency` at a time, until
    /// `shutdown`. Requests left over by a crash are picked up on start.
    pub async fn run_authorisations(
        self,
        concurrency: usize,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let in_flight = Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
        while !*shutdown.borrow() {
            match self
                .store
                .query(Statement::new(
                    "SELECT order_id FROM payments WHERE status = 'authorising' LIMIT 1024",
                ))
                .await
            {
                Ok(rows) => {
                    for row in rows {
                        let Ok(order_id) = row.text("order_id").map(str::to_owned) else { continue };
                        if !in_flight
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(order_id.clone())
                        {
                            continue;
                        }
                        let Ok(slot) = slots.clone().acquire_owned().await else { return };
                        let (payments, in_flight) = (self.clone(), in_flight.clone());
                        tokio::spawn(async move {
                            if let Err(error) = payments.authorise_recorded(&order_id).await {
                                tracing::warn!(%order_id, %error, "authorisation not finished; retrying later");
                            }
                            in_flight
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .remove(&order_id);
                            drop(slot);
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read authorisation requests"),
            }
            tokio::select! {
                () = self.requested.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One recorded request: the network's answer, the payment's new status, its event and the
    /// reply to the saga, in one unit.
    async fn authorise_recorded(&self, order_id: &str) -> Result<(), HandlerError> {
        let rows = self
            .store
            .query(
                Statement::new(
                    "SELECT p.request, p.amount, p.currency, p.last4, m.profile FROM payments p
                     LEFT JOIN payment_methods m ON m.token = p.token
                     WHERE p.order_id = $1 AND p.status = 'authorising'",
                )
                .bind(order_id),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(()) };
        let request: Envelope = serde_json::from_str(row.text("request")?)?;
        let command: AuthorisePayment = serde_json::from_value(request.payload.clone())?;
        let last4 = row.text("last4")?.to_owned();
        let key = authorisation_key(command.order_id);
        let profile = match row.opt_text("profile")? {
            Some(profile) => Some(
                CardProfile::parse(profile)
                    .ok_or_else(|| HandlerError::rejected("stored card profile unknown"))?,
            ),
            None => None,
        };
        let answer = match card_to_charge(profile) {
            Ok(profile) => self.with_retries(|| self.network.authorise(&key, profile, &command.amount)).await,
            Err(reason) => Err(NetworkError::Declined(reason)),
        };
        let answer = match answer {
            Ok(code) => AuthorisationAnswer::Approved(code),
            Err(NetworkError::Declined(reason)) => AuthorisationAnswer::Declined(reason),
            Err(NetworkError::Transient(error)) => return Err(HandlerError::Transient(error.into())),
        };
        let mut unit = self.store.begin();
        let payment_id: Uuid = unit
            .query(Statement::new("SELECT payment_id FROM payments WHERE order_id = $1").bind(order_id))
            .await?
            .first()
            .ok_or_else(|| HandlerError::rejected("payment vanished"))?
            .text("payment_id")?
            .parse()?;
        let request_of =
            RecordedRequest { order_id: command.order_id, payment_id, amount: command.amount, last4 };
        let outcome = authorisation_outcome(request_of, answer);
        let (authorisation, reason) = match &outcome {
            AuthorisationOutcome::Authorised { authorisation, .. } => (Some(authorisation.clone()), None),
            AuthorisationOutcome::Declined { reason, .. } => (None, Some((*reason).to_owned())),
        };
        unit.execute(
            Statement::new(
                "UPDATE payments SET status = $2, authorisation = $3, reason = $4, updated_at = $5
                 WHERE order_id = $1 AND status = $6",
            )
            .bind(order_id)
            .bind(outcome.status().as_str())
            .bind(authorisation)
            .bind(reason)
            .bind(i64::try_from(self.physical.now().as_micros()).unwrap_or(i64::MAX))
            .bind(PaymentStatus::Authorising.as_str())
            .expect_rows(1, "payment_changed"),
        );
        match outcome {
            AuthorisationOutcome::Authorised { event, reply, .. } => {
                unit.send(
                    &self.build(envelope(&event, crate::SERVICE, &request.key).caused_by(Some(&request)))?,
                )?;
                self.reply(&mut unit, &request, Ok(Some(serde_json::to_value(reply)?)))?;
            }
            AuthorisationOutcome::Declined { reason, event } => {
                unit.send(
                    &self.build(envelope(&event, crate::SERVICE, &request.key).caused_by(Some(&request)))?,
                )?;
                self.reply(&mut unit, &request, Err(reason.to_owned()))?;
            }
        }
        match unit.commit().await {
            // Someone else finished it first: fine.
            Ok(_) | Err(StoreError::Rejected { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Moves an order's payment from one status to the next through the network; a payment
    /// already past that point is answered as done, so the command is safe to repeat.
    async fn settle(
        &self,
        message: &Envelope,
        unit: &mut UnitOfWork,
        order_id: Uuid,
        operation: Operation,
    ) -> Result<(), HandlerError> {
        let payment = self.stored_payment(unit, order_id).await?;
        let current = payment.as_ref().map(status).transpose()?;
        let (key, from, to, payment) = match (operation.settle(order_id, current), payment) {
            (Settlement::RememberVoid, _) => {
                // A dead letter retried, say, must not find an authorisation to make.
                unit.execute(
                    Statement::new(
                        "INSERT INTO voided_orders (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING",
                    )
                    .bind(order_id.to_string()),
                );
                return self.reply(unit, message, Ok(None));
            }
            (Settlement::AlreadyDone, _) => return self.reply(unit, message, Ok(None)),
            (Settlement::Refuse(reason), _) => return self.reply(unit, message, Err(reason)),
            (Settlement::Move { key, from, to }, Some(payment)) => (key, from, to, payment),
            (Settlement::Move { .. }, None) => {
                return Err(HandlerError::rejected("a move settled for no payment"));
            }
        };
        let authorisation = unit
            .query(
                Statement::new("SELECT authorisation FROM payments WHERE order_id = $1")
                    .bind(order_id.to_string()),
            )
            .await?
            .first()
            .and_then(|row| row.opt_text("authorisation").ok().flatten().map(str::to_owned))
            .unwrap_or_default();
        let outcome = self
            .with_retries(|| async {
                match operation {
                    Operation::Capture => self.network.capture(&key, &authorisation, &payment.amount).await,
                    Operation::Void => self.network.void(&key, &authorisation).await,
                    Operation::Refund => self.network.refund(&key, &authorisation, &payment.amount).await,
                }
            })
            .await;
        if let Err(error) = outcome {
            return Err(error.into());
        }
        unit.execute(
            Statement::new(
                "UPDATE payments SET status = $2, updated_at = $4 WHERE order_id = $1 AND status = $3",
            )
            .bind(order_id.to_string())
            .bind(to.as_str())
            .bind(from.as_str())
            .bind(i64::try_from(self.physical.now().as_micros()).unwrap_or(i64::MAX))
            .expect_rows(1, "payment_changed"),
        );
        let now = i64::try_from(self.physical.now().as_micros()).unwrap_or(i64::MAX);
        match operation.settled(order_id, payment.id, payment.amount.clone()) {
            Settled::Captured(event) => {
                // The key of `captures` is the order: a second capture cannot be stored.
                unit.execute(
                    Statement::new("INSERT INTO captures (order_id, amount, at) VALUES ($1, $2, $3)")
                        .bind(order_id.to_string())
                        .bind(event.amount.amount)
                        .bind(now),
                );
                unit.send(
                    &self.build(envelope(&event, crate::SERVICE, &message.key).caused_by(Some(message)))?,
                )?;
            }
            Settled::Refunded(event) => {
                unit.execute(
                    Statement::new("INSERT INTO refunds (order_id, amount, at) VALUES ($1, $2, $3)")
                        .bind(order_id.to_string())
                        .bind(event.amount.amount)
                        .bind(now),
                );
                unit.send(
                    &self.build(envelope(&event, crate::SERVICE, &message.key).caused_by(Some(message)))?,
                )?;
            }
            Settled::Voided => {}
        }
        self.reply(unit, message, Ok(None))
    }
}

const PAYMENT_COLUMNS: &str = "payment_id, order_id, customer_id, status, amount, currency, last4, reason";

/// A stored payment's status, read as the domain's type.
fn status(payment: &Payment) -> Result<PaymentStatus, HandlerError> {
    PaymentStatus::parse(&payment.status).ok_or_else(|| {
        HandlerError::rejected(format!(
            "payment of {} has an unknown status {}",
            payment.order_id, payment.status
        ))
    })
}

#[async_trait]
impl Handler for Payments {
    /// Only the commands addressed to payments.
    fn wants(&self, message: &Envelope) -> bool {
        message.target.as_deref() == Some(crate::SERVICE)
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        if message.target.as_deref() != Some(crate::SERVICE) {
            return Ok(());
        }
        match message.name.as_str() {
            AuthorisePayment::NAME => self.authorise(message, unit).await,
            CapturePayment::NAME => {
                let command: CapturePayment = tessera_bus::payload(message)?;
                self.settle(message, unit, command.order_id, Operation::Capture).await
            }
            VoidPayment::NAME => {
                let command: VoidPayment = tessera_bus::payload(message)?;
                self.settle(message, unit, command.order_id, Operation::Void).await
            }
            RefundPayment::NAME => {
                let command: RefundPayment = tessera_bus::payload(message)?;
                self.settle(message, unit, command.order_id, Operation::Refund).await
            }
            other => Err(HandlerError::malformed(format!("payments has no command {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::year_month;
    use tessera_kernel::Timestamp;

    #[test]
    fn timestamps_map_to_their_civil_month() {
        assert_eq!(year_month(Timestamp::EPOCH), (1970, 1));
        // 2026-11-26T00:00:00Z
        assert_eq!(year_month(Timestamp::from_micros(1_795_651_200_000_000)), (2026, 11));
        // 2024-02-29T12:00:00Z
        assert_eq!(year_month(Timestamp::from_micros(1_709_208_000_000_000)), (2024, 2));
    }
}
