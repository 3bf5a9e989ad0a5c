//! Orders' glue: placing and cancelling, the sagas' effects on the order stream, the order
//! summaries read model (kept in the same unit as the events), the saga timer loop, and the
//! answer to the customers service's erasures.

pub mod analytics;
mod erasure;
pub mod sagas;
pub mod summaries;

use std::sync::Arc;
use std::time::Duration;
use tessera_web::token::Actor;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::orders::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderRejected};
use tessera_contracts::{EnvelopeBuilder, Message, OrderLine, envelope};
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, MessageId, MessageKind, StreamId, Timestamp};
use tessera_saga::{SagaEngine, SagaObserver, SagaPage, SagaSearch, SagaSummary, Transition};
use tessera_store::{Aggregate, NewEvent, RecordedEvent, Statement, Store, StoreError, UnitOfWork};
use tokio::sync::watch;
use uuid::Uuid;

pub use erasure::Erasures;

use crate::domain::{
    CancelOrderData, Charged, KEY_LIFETIME, KeptRequest, Order, OrderCommand, OrderError, OrderSaga,
    OrderStatus, PlaceOrderData, PublicOutcome, ReactionError, Recorded, RequestNext, next_for_request,
};

/// How often the timer loop deletes expired idempotency keys.
const PRUNE_KEYS_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Saga(#[from] tessera_saga::EngineError),
    #[error(transparent)]
    Reaction(#[from] ReactionError),
    #[error("this idempotency key was used with another request body")]
    RequestKeyReused,
    #[error("{0}")]
    Internal(String),
}

/// A client's idempotency key for a placement, with the hash of its request's body.
#[derive(Clone, Copy, Debug)]
pub struct RequestKey<'a> {
    pub key: &'a str,
    pub body_hash: Option<&'a str>,
}

/// A placement's outcome: the order, and whether it was placed by an earlier request with the
/// same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub order_id: Uuid,
    pub replayed: bool,
}

#[derive(Clone, Debug)]
pub struct OrdersSettings {
    /// How long to wait for the card network before rejecting with `payment_timeout`.
    pub payment_timeout: Duration,
    pub reserve_timeout: Duration,
    /// A snapshot of an order is stored every this many events (0: never); loads start from it.
    pub snapshot_every: u64,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        Self {
            payment_timeout: Duration::from_secs(10),
            reserve_timeout: Duration::from_secs(30),
            snapshot_every: 4,
        }
    }
}

/// One line of `GET /orders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    pub total: Option<i64>,
    pub item_count: i64,
}

/// An order as read for display: its state, its stream version (the ETag) and when it began
/// and last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub order: Order,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What happened to an order, in order: its events and the sagas that worked on it.
#[derive(Clone, Debug)]
pub struct OrderHistory {
    pub events: Vec<RecordedEvent>,
    pub sagas: Vec<SagaSummary>,
}

#[derive(Clone, Debug)]
pub struct Orders {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    place: SagaEngine,
    cancel: SagaEngine,
    ids: Arc<dyn IdGen>,
    clock: HybridClock,
    snapshot_every: u64,
}

fn stream(order_id: Uuid) -> Result<StreamId, AppError> {
    StreamId::for_entity("order", order_id).map_err(|e| AppError::Internal(e.to_string()))
}

impl Orders {
    /// A read of someone's order on their behalf goes on the audit trail (the person's
    /// access report lists it). Its record joins the store's next group commit and the reader
    /// does not wait for it (docs/decisions/0015-read-audits-do-not-wait.md).
    pub async fn audit_read(&self, action: &str, resource: String, actor: &Actor) {
        let mut unit = self.inner.store.begin();
        unit.audit(actor.audit(action, resource, "ok", self.inner.clock.now().wall()));
        unit.commit_detached().await;
    }

    pub fn new(store: Store, settings: &OrdersSettings, ids: Arc<dyn IdGen>, clock: Arc<dyn Clock>) -> Self {
        let place = SagaEngine::new(
            crate::SERVICE,
            sagas::place_order(settings.reserve_timeout, settings.payment_timeout),
            clock.clone(),
            ids.clone(),
        );
        let cancel = SagaEngine::new(crate::SERVICE, sagas::cancel_order(), clock.clone(), ids.clone());
        Self {
            inner: Arc::new(Inner {
                store,
                place,
                cancel,
                ids,
                clock: HybridClock::new(clock),
                snapshot_every: settings.snapshot_every,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn place_saga(&self) -> &SagaEngine {
        &self.inner.place
    }

    /// Places an order: its first event, its summary, the public `OrderPlaced` and the saga's
    /// first command commit together. Returns at once; the saga decides the outcome.
    ///
    /// With a `request_key` (the client's idempotency key), placing again with the same key
    /// for the same customer places nothing and returns the first order's id: the key is
    /// recorded in the same unit as the order, under a unique key.
    pub async fn place(
        &self,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment_token: &str,
        request_key: Option<&str>,
        country: Option<&str>,
        actor: &Actor,
    ) -> Result<Uuid, AppError> {
        let request = request_key.map(|key| RequestKey { key, body_hash: None });
        let placement =
            self.place_request(customer_id, lines, payment_token, request, country, actor).await?;
        Ok(placement.order_id)
    }

    /// [`Orders::place`], with the request's key and the hash of its body: the same key with
    /// the same body answers with the first order (for a day, [`KEY_LIFETIME`]), with another
    /// body it is refused ([`AppError::RequestKeyReused`]).
    pub async fn place_request(
        &self,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment_token: &str,
        request: Option<RequestKey<'_>>,
        country: Option<&str>,
        actor: &Actor,
    ) -> Result<Placement, AppError> {
        let now = self.inner.clock.now().wall().as_micros();
        let mut replacing = false;
        if let Some(request) = &request {
            let kept = self.kept_request(customer_id, request.key).await?;
            match next_for_request(kept.as_ref(), request.body_hash, now) {
                RequestNext::Replay(order_id) => return Ok(Placement { order_id, replayed: true }),
                RequestNext::Reused => return Err(AppError::RequestKeyReused),
                RequestNext::Place { replacing: expired } => replacing = expired,
            }
        }
        let order_id = Uuid::now_v7();
        let command = OrderCommand::Place {
            order_id,
            customer_id,
            lines: lines.clone(),
            payment_token: payment_token.to_owned(),
            country: country.map(str::to_owned),
        };
        let events = Order::default().decide(command)?;
        let mut unit = self.inner.store.begin();
        self.inner.append(
            &mut unit,
            order_id,
            &Order::default(),
            tessera_store::ExpectedVersion::NoStream,
            &events,
            None,
        )?;
        let placed =
            OrderPlaced { order_id, customer_id, lines: lines.clone(), version: events.len() as u64 };
        unit.send(&self.inner.build(envelope(&placed, crate::SERVICE, order_id))?)?;
        let data = PlaceOrderData {
            order_id,
            customer_id,
            lines,
            payment_token: payment_token.to_owned(),
            reserved: None,
            payment: None,
        };
        let data = serde_json::to_value(data).map_err(|e| AppError::Internal(e.to_string()))?;
        self.inner.place.start(&mut unit, &order_id.to_string(), data, None)?;
        unit.audit(actor.audit(
            "order.place",
            format!("order/{order_id}"),
            "ok",
            self.inner.clock.now().wall(),
        ));
        if let Some(request) = &request {
            if replacing {
                // Only the expired record: one kept meanwhile by a racing request stays, and
                // this unit then fails on the key below.
                let lifetime = i64::try_from(KEY_LIFETIME.as_micros()).unwrap_or(i64::MAX);
                unit.execute(
                    Statement::new(
                        "DELETE FROM order_requests WHERE customer_id = $1 AND request_key = $2 AND kept_at <= $3",
                    )
                    .bind(customer_id.to_string())
                    .bind(request.key)
                    .bind(i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(lifetime)),
                );
            }
            unit.execute(
                Statement::new(
                    "INSERT INTO order_requests (customer_id, request_key, order_id, body_hash, kept_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(customer_id.to_string())
                .bind(request.key)
                .bind(order_id.to_string())
                .bind(request.body_hash)
                .bind(i64::try_from(now).unwrap_or(i64::MAX)),
            );
        }
        match unit.commit().await {
            Ok(_) => {
                tracing::info!(%order_id, "order placed");
                Ok(Placement { order_id, replayed: false })
            }
            // The same key, placed concurrently a moment ago: decide again on what it kept.
            Err(StoreError::Constraint(_)) if request.is_some() => {
                let request = request.as_ref().map_or(RequestKey { key: "", body_hash: None }, |r| *r);
                let kept = self.kept_request(customer_id, request.key).await?;
                match next_for_request(kept.as_ref(), request.body_hash, now) {
                    RequestNext::Replay(order_id) => Ok(Placement { order_id, replayed: true }),
                    RequestNext::Reused => Err(AppError::RequestKeyReused),
                    RequestNext::Place { .. } => {
                        Err(AppError::Internal("a request key collided with no live order".into()))
                    }
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The order `customer_id` placed with `request_key`, while the key is live.
    pub async fn placed_by_key(
        &self,
        customer_id: Uuid,
        request_key: &str,
    ) -> Result<Option<Uuid>, AppError> {
        let kept = self.kept_request(customer_id, request_key).await?;
        let now = self.inner.clock.now().wall().as_micros();
        Ok(match next_for_request(kept.as_ref(), None, now) {
            RequestNext::Replay(order_id) => Some(order_id),
            RequestNext::Place { .. } | RequestNext::Reused => None,
        })
    }

    /// Deletes the records of idempotency keys older than [`KEY_LIFETIME`], which no request
    /// can replay any more; returns how many went.
    pub async fn prune_request_keys(&self) -> Result<u64, AppError> {
        let now = self.inner.clock.now().wall().as_micros();
        let lifetime = u64::try_from(KEY_LIFETIME.as_micros()).unwrap_or(u64::MAX);
        let cutoff = i64::try_from(now.saturating_sub(lifetime)).unwrap_or(i64::MAX);
        let mut unit = self.inner.store.begin();
        unit.execute(Statement::new("DELETE FROM order_requests WHERE kept_at <= $1").bind(cutoff));
        Ok(unit.commit().await?.rows_affected)
    }

    /// What orders kept of the first request `customer_id` made with `request_key`, if any.
    async fn kept_request(
        &self,
        customer_id: Uuid,
        request_key: &str,
    ) -> Result<Option<KeptRequest>, AppError> {
        let rows = self
            .inner
            .store
            .query(
                Statement::new(
                    "SELECT order_id, body_hash, kept_at FROM order_requests WHERE customer_id = $1 AND request_key = $2",
                )
                .bind(customer_id.to_string())
                .bind(request_key),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let order_id =
            row.text("order_id")?.parse::<Uuid>().map_err(|e| AppError::Internal(e.to_string()))?;
        let kept_at = match row.get("kept_at")? {
            tessera_store::SqlValue::Int(micros) => u64::try_from(*micros).ok(),
            _ => None,
        };
        Ok(Some(KeptRequest { order_id, body_hash: row.opt_text("body_hash")?.map(str::to_owned), kept_at }))
    }

    /// Cancels a confirmed order: refund and restock follow through the cancel saga.
    pub async fn cancel(&self, order_id: Uuid, actor: &Actor) -> Result<(), AppError> {
        let mut unit = self.inner.store.begin();
        let (order, expected) = unit.load::<Order>(&stream(order_id)?).await?;
        let events = order.decide(OrderCommand::RequestCancel)?;
        self.inner.append(&mut unit, order_id, &order, expected, &events, None)?;
        let total = order
            .total
            .clone()
            .ok_or_else(|| AppError::Internal("a confirmed order without a total".into()))?;
        let data = CancelOrderData { order_id, charged: Charged { total }, customer_id: order.customer_id };
        let data = serde_json::to_value(data).map_err(|e| AppError::Internal(e.to_string()))?;
        self.inner.cancel.start(&mut unit, &order_id.to_string(), data, None)?;
        unit.audit(actor.audit(
            "order.cancel",
            format!("order/{order_id}"),
            "ok",
            self.inner.clock.now().wall(),
        ));
        match unit.commit().await {
            // A concurrent change of the same order: decide again on what it is now.
            Err(StoreError::Conflict { .. }) => Err(AppError::Order(OrderError::NotCancellable(
                self.order(order_id).await?.map_or(OrderStatus::New, |o| o.status),
            ))),
            other => other.map(|_| ()).map_err(AppError::from),
        }
    }

    pub async fn order(&self, order_id: Uuid) -> Result<Option<Order>, AppError> {
        let (order, _) = self.inner.store.begin().load::<Order>(&stream(order_id)?).await?;
        Ok((order.status != OrderStatus::New).then_some(order))
    }

    /// An order with its version and times, folded from its whole stream.
    pub async fn record(&self, order_id: Uuid) -> Result<Option<OrderRecord>, AppError> {
        let events = self.inner.store.read_stream(&stream(order_id)?, 0).await?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(None) };
        let mut order = Order::default();
        for event in &events {
            order = order.evolve(&event.decode::<crate::domain::OrderEvent>()?);
        }
        Ok(Some(OrderRecord {
            version: last.version,
            created_at: first.recorded_at,
            updated_at: last.recorded_at,
            order,
        }))
    }

    /// The order's events and its sagas (place, then cancel if there is one).
    pub async fn history(&self, order_id: Uuid) -> Result<Option<OrderHistory>, AppError> {
        let events = self.inner.store.read_stream(&stream(order_id)?, 0).await?;
        if events.is_empty() {
            return Ok(None);
        }
        let mut sagas = Vec::new();
        for engine in [&self.inner.place, &self.inner.cancel] {
            sagas.extend(engine.find(&self.inner.store, &order_id.to_string()).await?);
        }
        Ok(Some(OrderHistory { events, sagas }))
    }

    /// Sagas for operators, newest first. Its `q` matches an order's id (a saga's id is its
    /// order's) or a customer's: both sagas' data hold the customer (cancellations since they
    /// were made to).
    pub async fn search_sagas(&self, search: SagaSearch<'_>) -> Result<SagaPage, AppError> {
        let search = SagaSearch { data_keys: &["customer_id"], ..search };
        Ok(tessera_saga::search::search(&self.inner.store, &search).await?)
    }

    /// Every saga of the order `saga_id` (placing it, cancelling it), in the order they started.
    pub async fn sagas_with_id(&self, saga_id: &str) -> Result<Vec<SagaSummary>, AppError> {
        Ok(tessera_saga::search::with_id(&self.inner.store, saga_id).await?)
    }

    /// Summaries, newest first, optionally of one customer and one public status, starting
    /// after (older than) the order `before`.
    pub async fn summaries(
        &self,
        customer: Option<Uuid>,
        status: Option<&str>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OrderSummary>, AppError> {
        // Version-7 ids sort by creation time, so the id is both the order and the cursor.
        let mut statement = Statement::new(
            "SELECT order_id, customer_id, status, reason, total, item_count FROM order_summaries
             WHERE ($1 = '' OR customer_id = $1) AND ($2 = '' OR status = $2) AND ($4 = '' OR order_id < $4)
             ORDER BY order_id DESC LIMIT $3",
        );
        statement = statement
            .bind(customer.map(|c| c.to_string()).unwrap_or_default())
            .bind(status.unwrap_or_default())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(before.map(|c| c.to_string()).unwrap_or_default());
        let rows = self.inner.store.query(statement).await?;
        rows.iter()
            .map(|row| {
                let parse = |text: &str| text.parse::<Uuid>().map_err(|e| AppError::Internal(e.to_string()));
                Ok(OrderSummary {
                    order_id: parse(row.text("order_id")?)?,
                    customer_id: parse(row.text("customer_id")?)?,
                    status: row.text("status")?.to_owned(),
                    reason: row.opt_text("reason")?.map(str::to_owned),
                    total: match row.get("total")? {
                        tessera_store::SqlValue::Int(v) => Some(*v),
                        _ => None,
                    },
                    item_count: row.int("item_count")?,
                })
            })
            .collect()
    }

    /// Fires due saga timers until `shutdown`, every `every`.
    pub async fn run_timers(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut last_prune: Option<std::time::Instant> = None;
        while !*shutdown.borrow() {
            // Keys past their day answer for nothing: their records go, once an hour.
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_KEYS_EVERY) {
                last_prune = Some(std::time::Instant::now());
                if let Err(error) = self.prune_request_keys().await {
                    tracing::warn!(%error, "expired idempotency keys were not pruned; retrying later");
                }
            }
            for (saga, engine) in
                [(OrderSaga::PlaceOrder, &self.inner.place), (OrderSaga::CancelOrder, &self.inner.cancel)]
            {
                let observer = Observer { inner: &self.inner, saga };
                if let Err(error) = engine.fire_due_timers(&self.inner.store, 256, Some(&observer)).await {
                    tracing::warn!(%error, "saga timers failed; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

impl Inner {
    /// `message` in its envelope, stamped with this service's ids and clock.
    fn build<M: Message>(&self, envelope: EnvelopeBuilder<'_, M>) -> Result<Envelope, AppError> {
        envelope.build(&*self.ids, self.clock.now()).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Appends `events` to the order's stream (which holds `before` at `expected`), with the
    /// summary's changes and, every `snapshot_every` events, a snapshot of the state after them.
    fn append(
        &self,
        unit: &mut UnitOfWork,
        order_id: Uuid,
        before: &Order,
        expected: tessera_store::ExpectedVersion,
        events: &[crate::domain::OrderEvent],
        cause: Option<&Envelope>,
    ) -> Result<(), AppError> {
        let base = match expected {
            tessera_store::ExpectedVersion::NoStream => 0,
            tessera_store::ExpectedVersion::Exact(version) => version,
            tessera_store::ExpectedVersion::Any => {
                return Err(AppError::Internal("orders append at a known version only".into()));
            }
        };
        let mut state = before.clone();
        for (offset, event) in (1..).zip(events) {
            let version = base + offset;
            unit.execute(summaries::statement(summaries::TABLE, order_id, event, version));
            state = state.evolve(event);
            if self.snapshot_every > 0 && version % self.snapshot_every == 0 {
                unit.snapshot(&stream(order_id)?, version, state.to_snapshot()?);
            }
        }
        let stored = events
            .iter()
            .map(|event| {
                let mut new = NewEvent::new(MessageId::generate(&*self.ids), event.name(), event)?;
                if let Some(cause) = cause {
                    new.metadata.correlation_id = Some(cause.correlation_id);
                    new.metadata.causation_id = Some(cause.id);
                }
                Ok(new)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        unit.append(&stream(order_id)?, expected, stored);
        Ok(())
    }

    /// Applies an outcome to the order (if it is still open to it) and mirrors it in the
    /// summary and in a public event.
    async fn record(
        &self,
        unit: &mut UnitOfWork,
        order_id: Uuid,
        command: OrderCommand,
        cause: Option<&Envelope>,
    ) -> Result<(), AppError> {
        let (order, expected) = unit.load::<Order>(&stream(order_id)?).await?;
        let Some(Recorded { events, after, public }) = crate::domain::record(&order, command)? else {
            // Already decided (a duplicate outcome): nothing to record.
            return Ok(());
        };
        self.append(unit, order_id, &order, expected, &events, cause)?;
        let version = match expected {
            tessera_store::ExpectedVersion::Exact(base) => base,
            _ => 0,
        } + events.len() as u64;
        let customer_id = after.customer_id.unwrap_or_default();
        match public {
            Some(PublicOutcome::Confirmed) => {
                let total = after
                    .total
                    .clone()
                    .ok_or_else(|| AppError::Internal("confirmed without a total".into()))?;
                tracing::info!(%order_id, "order confirmed");
                let confirmed =
                    OrderConfirmed { order_id, customer_id, lines: after.priced.clone(), total, version };
                unit.send(&self.build(envelope(&confirmed, crate::SERVICE, order_id).caused_by(cause))?)?;
            }
            Some(PublicOutcome::Rejected(reason)) => {
                tracing::info!(%order_id, ?reason, "order rejected");
                let rejected = OrderRejected { order_id, customer_id, reason, version };
                unit.send(&self.build(envelope(&rejected, crate::SERVICE, order_id).caused_by(cause))?)?;
            }
            Some(PublicOutcome::Cancelled) => {
                let refunded = after
                    .total
                    .clone()
                    .ok_or_else(|| AppError::Internal("cancelled without a total".into()))?;
                let cancelled = OrderCancelled { order_id, customer_id, refunded, version };
                unit.send(&self.build(envelope(&cancelled, crate::SERVICE, order_id).caused_by(cause))?)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Records what a saga's move means for the order (`domain::reaction`), if anything.
    async fn react(
        &self,
        saga: OrderSaga,
        transition: &Transition,
        unit: &mut UnitOfWork,
        cause: Option<&Envelope>,
    ) -> Result<(), AppError> {
        let Some(command) = crate::domain::reaction(saga, transition)? else { return Ok(()) };
        let order_id: Uuid =
            transition.after.id.parse().map_err(|e: uuid::Error| AppError::Internal(e.to_string()))?;
        self.record(unit, order_id, command, cause).await
    }
}

/// Hands timer-caused transitions of one saga to the order.
struct Observer<'a> {
    inner: &'a Inner,
    saga: OrderSaga,
}

#[async_trait]
impl SagaObserver for Observer<'_> {
    async fn on_transition(
        &self,
        transition: &Transition,
        unit: &mut UnitOfWork,
    ) -> Result<(), tessera_saga::EngineError> {
        self.inner
            .react(self.saga, transition, unit, None)
            .await
            .map_err(|e| tessera_saga::EngineError::Corrupt(transition.after.id.clone(), e.to_string()))
    }
}

#[async_trait]
impl Handler for Orders {
    /// Only replies addressed to orders (the sagas' answers).
    fn wants(&self, message: &Envelope) -> bool {
        message.kind == MessageKind::Reply && message.target.as_deref() == Some(crate::SERVICE)
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        if message.kind != MessageKind::Reply || message.target.as_deref() != Some(crate::SERVICE) {
            return Ok(());
        }
        for (saga, engine) in
            [(OrderSaga::PlaceOrder, &self.inner.place), (OrderSaga::CancelOrder, &self.inner.cancel)]
        {
            if engine.claims(message) {
                if let Some(transition) = engine.handle_reply(message, unit).await? {
                    self.inner.react(saga, &transition, unit, Some(message)).await?;
                }
                return Ok(());
            }
        }
        Ok(())
    }
}
