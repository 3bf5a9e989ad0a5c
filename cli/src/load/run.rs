//! The run itself: arrivals by the clock (open loop) or by clients that wait for their own
//! answers (closed loop), each one a scenario; orders retried with their key until a
//! definitive answer and followed until terminal; then the wait for orders to settle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::json;
use tokio::task::JoinSet;

use super::client::{Client, Outcome};
use super::mix::{CARDS, Mix, Scenario, SplitMix64};
use super::report::{PlacedOrder, Recorder};
use super::setup::Customer;

/// Retries of `POST /orders` back off from this…
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// …to at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Orders pending for longer than this are read every [`PATIENT_POLL`].
const PATIENT_AFTER: Duration = Duration::from_secs(1);
const PATIENT_POLL: Duration = Duration::from_millis(250);

/// What a client that waits instead of polling asks for: well inside the request timeout.
const PREFER_WAIT: &str = "wait=10";

/// What every task of a run shares.
#[derive(Debug)]
pub struct Shared {
    pub client: Client,
    pub recorder: Recorder,
    pub customers: Vec<Customer>,
    pub skus: Vec<String>,
    pub mix: Mix,
    pub run_id: String,
    pub max_orders: Option<u64>,
    /// How often a pending order is read; `None` to wait for it with `Prefer: wait` instead.
    pub poll_interval: Option<Duration>,
    pub started: Instant,
    /// Set when the load phase ends (its duration passed or its orders were all attempted).
    stopped: AtomicBool,
    /// Milliseconds after `started` when retries and follow-ups give up; `u64::MAX` until the
    /// load phase ends.
    give_up_ms: AtomicU64,
    pub attempted: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub orders: Mutex<Vec<TrackedOrder>>,
    /// Confirmed orders the load may cancel or write a ticket about: (index in `orders`).
    confirmed: Mutex<Vec<usize>>,
}

#[derive(Clone, Debug)]
pub struct TrackedOrder {
    pub id: String,
    pub card: &'static str,
    pub customer: usize,
    pub status: Option<String>,
    pub cancel_requested: bool,
}

impl TrackedOrder {
    /// Whether the final count still needs to read this order.
    pub fn unsettled(&self) -> bool {
        match self.status.as_deref() {
            None | Some("pending") => true,
            Some("confirmed") => self.cancel_requested,
            Some(_) => false,
        }
    }
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        customers: Vec<Customer>,
        skus: Vec<String>,
        mix: Mix,
        run_id: String,
        max_orders: Option<u64>,
        poll_interval: Option<Duration>,
    ) -> Self {
        Self {
            client,
            recorder: Recorder::default(),
            customers,
            skus,
            mix,
            run_id,
            max_orders,
            poll_interval,
            started: Instant::now(),
            stopped: AtomicBool::new(false),
            give_up_ms: AtomicU64::new(u64::MAX),
            attempted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            orders: Mutex::new(Vec::new()),
            confirmed: Mutex::new(Vec::new()),
        }
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// From now on, retries and follow-ups end at `at`.
    pub fn give_up_at(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        self.give_up_ms.store(ms, Ordering::Release);
    }

    pub fn giving_up(&self) -> bool {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        ms >= self.give_up_ms.load(Ordering::Acquire)
    }

    fn orders(&self) -> std::sync::MutexGuard<'_, Vec<TrackedOrder>> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn confirmed(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.confirmed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next order number, or stops the run when every order allowed was attempted.
    fn next_order(&self) -> Option<u64> {
        let max = self.max_orders.unwrap_or(u64::MAX);
        let taken =
            self.attempted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        match taken {
            Ok(n) => {
                if n + 1 >= max {
                    self.stop();
                }
                Some(n)
            }
            Err(_) => {
                self.stop();
                None
            }
        }
    }

    pub fn placed_orders(&self) -> Vec<PlacedOrder> {
        self.orders()
            .iter()
            .map(|o| PlacedOrder { id: o.id.clone(), card: o.card, final_status: o.status.clone() })
            .collect()
    }
}

/// One arrival: a scenario drawn from the mix, timed from `due`.
pub async fn arrive(shared: Arc<Shared>, seed: u64, due: Instant) {
    let mut rng = SplitMix64::new(seed);
    match shared.mix.scenario(&mut rng) {
        Scenario::Browse => browse(&shared, &mut rng, due).await,
        Scenario::Order => order(&shared, &mut rng, due).await,
        Scenario::Cancel => cancel(&shared, &mut rng, due).await,
        Scenario::Ticket => ticket(&shared, &mut rng, due).await,
    }
}

/// Open loop: arrivals at `rate` per second until the run stops, each in its own task.
pub async fn open_loop(
    shared: &Arc<Shared>,
    rate: f64,
    seed: u64,
    end: Option<Instant>,
    tasks: &mut JoinSet<()>,
) {
    let schedule = super::schedule::Schedule::new(rate);
    let mut rng = SplitMix64::new(seed);
    for n in 0.. {
        let due = shared.started + schedule.due(n);
        if shared.is_stopped() || end.is_some_and(|end| due >= end) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        tasks.spawn(arrive(shared.clone(), rng.next_u64(), due));
        // Finished tasks are reaped as the run goes, so the set holds only those in flight.
        while tasks.try_join_next().is_some() {}
    }
    shared.stop();
}

/// Closed loop: `clients` shoppers, each starting its next scenario when the last is done.
pub async fn closed_loop(
    shared: &Arc<Shared>,
    clients: usize,
    seed: u64,
    end: Option<Instant>,
    tasks: &mut JoinSet<()>,
) {
    let mut seeds = SplitMix64::new(seed);
    for _ in 0..clients.max(1) {
        let (shared, mut rng) = (shared.clone(), SplitMix64::new(seeds.next_u64()));
        tasks.spawn(async move {
            while !shared.is_stopped() && end.is_none_or(|end| Instant::now() < end) {
                arrive(shared.clone(), rng.next_u64(), Instant::now()).await;
            }
        });
    }
    match end {
        Some(end) => {
            while !shared.is_stopped() && Instant::now() < end {
                tokio::time::sleep(
                    Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        None => {
            while !shared.is_stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    shared.stop();
}

fn pick<'a, T>(items: &'a [T], rng: &mut SplitMix64) -> Option<&'a T> {
    let index = usize::try_from(rng.below(items.len() as u64)).ok()?;
    items.get(index)
}

/// Records a request: its latency from `since` if it succeeded, its code otherwise.
fn record(shared: &Shared, operation: &'static str, outcome: &Outcome, since: Instant) {
    if outcome.is_success() {
        shared.recorder.success(operation, since.elapsed());
    } else {
        shared.recorder.error(operation, outcome.code());
    }
}

async fn browse(shared: &Shared, rng: &mut SplitMix64, due: Instant) {
    let listing = shared.client.call(Method::GET, "/api/v1/products", None, None, None).await;
    record(shared, "list_products", &listing, due);
    let Some(sku) = pick(&shared.skus, rng) else { return };
    let at = Instant::now();
    let product = shared.client.call(Method::GET, &format!("/api/v1/products/{sku}"), None, None, None).await;
    record(shared, "get_product", &product, at);
}

async fn order(shared: &Shared, rng: &mut SplitMix64, due: Instant) {
    let Some(n) = shared.next_order() else { return };
    let customer_index = usize::try_from(rng.below(shared.customers.len() as u64)).unwrap_or(0);
    let (Some(customer), Some(sku)) = (shared.customers.get(customer_index), pick(&shared.skus, rng)) else {
        return;
    };
    let card = shared.mix.card(rng);
    let (Some(payment_token), Some(&(_, card_name))) = (customer.cards.get(card), CARDS.get(card)) else {
        return;
    };
    let body = json!({"items": [{"sku": sku, "quantity": 1}], "payment_token": payment_token});
    let key = format!("load-{}-{n}", shared.run_id);
    // Until a definitive answer, the order may or may not exist: the same key is sent again,
    // so that the gateway answers with the first result rather than placing a second order.
    let prefer = shared.poll_interval.is_none().then_some(PREFER_WAIT);
    let mut backoff = FIRST_BACKOFF;
    let (id, settled) = loop {
        let outcome = customer
            .identity
            .call_preferring(&shared.client, Method::POST, "/api/v1/orders", Some(&body), Some(&key), prefer)
            .await;
        record(shared, "place_order", &outcome, due);
        match outcome {
            Outcome::Answer { status: status @ 200..=299, body } => match body["id"].as_str() {
                // 201: the client waited and the order settled; 202: it is still pending.
                Some(id) => {
                    let settled =
                        (status == 201).then(|| body["status"].as_str().map(str::to_owned)).flatten();
                    break (id.to_owned(), settled);
                }
                None => return shared.recorder.error("place_order", "no_id".into()),
            },
            // The first request with this key is still being answered (or died with a process
            // the chaos command killed, until the gateway takes its key over): not an answer.
            Outcome::Answer { status: 409, body } if body["code"] == "idempotency_key_in_use" => {}
            // 401 was already retried once with a fresh token; anything else in 4xx is final.
            Outcome::Answer { status: status @ 400..=499, .. } if status != 401 => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {}
        }
        if shared.giving_up() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    let index = {
        let mut orders = shared.orders();
        orders.push(TrackedOrder {
            id: id.clone(),
            card: card_name,
            customer: customer_index,
            status: Some("pending".into()),
            cancel_requested: false,
        });
        orders.len() - 1
    };
    match settled {
        Some(status) if status != "pending" => settle(shared, index, &status, due),
        _ => follow(shared, customer, &id, index, due).await,
    }
}

/// Notes that the order at `index` settled as `status`, `due.elapsed()` after it was due.
fn settle(shared: &Shared, index: usize, status: &str, due: Instant) {
    shared.recorder.settled(status, due.elapsed());
    if let Some(order) = shared.orders().get_mut(index) {
        order.status = Some(status.to_owned());
    }
    if status == "confirmed" {
        shared.confirmed().push(index);
    }
}

/// Reads the order until it is no longer pending, and records how long it took from `due`:
/// each read waits for the order to settle (`Prefer: wait`), or, when polling, reads come at
/// the poll interval.
async fn follow(shared: &Shared, customer: &Customer, id: &str, index: usize, due: Instant) {
    let path = format!("/api/v1/orders/{id}");
    let mut failures = 0_u32;
    while !shared.giving_up() {
        match shared.poll_interval {
            // Fine-grained reads while a settle time can still be near the targets; an order
            // still pending after a second (the slow card waits for the payment timeout) is
            // read less often, so that it does not become most of the load.
            Some(poll) => {
                let interval = if due.elapsed() < PATIENT_AFTER { poll } else { poll.max(PATIENT_POLL) };
                tokio::time::sleep(interval).await;
            }
            // A wait that failed (a restarted gateway) is not repeated at once.
            None if failures > 0 => tokio::time::sleep(FIRST_BACKOFF * failures.min(20)).await,
            None => {}
        }
        let prefer = shared.poll_interval.is_none().then_some(PREFER_WAIT);
        let at = Instant::now();
        let outcome =
            customer.identity.call_preferring(&shared.client, Method::GET, &path, None, None, prefer).await;
        record(shared, "get_order", &outcome, at);
        let Some(status) = outcome.is_success().then(|| outcome.body()["status"].as_str()).flatten() else {
            failures += 1;
            continue;
        };
        failures = 0;
        if status == "pending" {
            continue;
        }
        settle(shared, index, status, due);
        return;
    }
}

/// Cancels one of the load's confirmed orders; with none to cancel yet, browses instead.
async fn cancel(shared: &Shared, rng: &mut SplitMix64, due: Instant) {
    let popped = shared.confirmed().pop();
    let Some(index) = popped else {
        return browse(shared, rng, due).await;
    };
    let Some((id, customer)) = shared.orders().get(index).map(|order| (order.id.clone(), order.customer))
    else {
        return;
    };
    let Some(customer) = shared.customers.get(customer) else { return };
    let path = format!("/api/v1/orders/{id}/cancel");
    let outcome = customer.identity.call(&shared.client, Method::POST, &path, None, None).await;
    record(shared, "cancel_order", &outcome, due);
    if outcome.is_success()
        && let Some(order) = shared.orders().get_mut(index)
    {
        order.cancel_requested = true;
    }
}

/// A ticket about one of the load's confirmed orders, or about nothing in particular.
async fn ticket(shared: &Shared, rng: &mut SplitMix64, due: Instant) {
    let about = {
        let confirmed = shared.confirmed();
        pick(&confirmed, rng).copied()
    };
    let order = about.and_then(|index| shared.orders().get(index).map(|o| (o.id.clone(), o.customer)));
    let customer_index = match &order {
        Some((_, customer)) => *customer,
        None => usize::try_from(rng.below(shared.customers.len() as u64)).unwrap_or(0),
    };
    let Some(customer) = shared.customers.get(customer_index) else { return };
    let body = match order {
        Some((id, _)) => {
            json!({"order_id": id, "subject": "Where is my tea?", "message": "Asked by tessera load."})
        }
        None => json!({"subject": "A question", "message": "Asked by tessera load."}),
    };
    let outcome =
        customer.identity.call(&shared.client, Method::POST, "/api/v1/tickets", Some(&body), None).await;
    record(shared, "open_ticket", &outcome, due);
}

/// Reads every order not known to be settled until each is, or `deadline` passes; at least once.
pub async fn final_statuses(shared: &Arc<Shared>, deadline: Instant) {
    loop {
        let unsettled: Vec<(usize, String, usize)> = shared
            .orders()
            .iter()
            .enumerate()
            .filter(|(_, order)| order.unsettled())
            .map(|(index, order)| (index, order.id.clone(), order.customer))
            .collect();
        if unsettled.is_empty() {
            return;
        }
        let mut reads = JoinSet::new();
        for chunk in unsettled.chunks(unsettled.len().div_ceil(16)) {
            let (shared, chunk) = (shared.clone(), chunk.to_vec());
            reads.spawn(async move {
                for (index, id, customer) in chunk {
                    let Some(customer) = shared.customers.get(customer) else { continue };
                    let path = format!("/api/v1/orders/{id}");
                    let outcome =
                        customer.identity.call(&shared.client, Method::GET, &path, None, None).await;
                    if let (true, Some(status)) = (outcome.is_success(), outcome.body()["status"].as_str())
                        && let Some(order) = shared.orders().get_mut(index)
                    {
                        order.status = Some(status.to_owned());
                    }
                }
            });
        }
        while reads.join_next().await.is_some() {}
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(
            Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}
