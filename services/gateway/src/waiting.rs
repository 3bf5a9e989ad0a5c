//! Clients that wait for an order to settle instead of polling it: `Prefer: wait=N` (RFC 7240)
//! on `POST /orders` and `GET /orders/{id}`, and the order's event stream.
//!
//! A waiter holds no thread and no upstream connection: it is a [`Notify`] in a map keyed by
//! order id. Every gateway process watches the orders service's messages on the bus once
//! ([`watch_orders`]) and wakes the waiters of the order each message names. The relay
//! publishes a message only after the commit that wrote it is durable, whichever replica of
//! orders made it, so a woken waiter that reads the order again sees the change. The message
//! only says "look now": the order itself is always read from the orders service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use futures_util::StreamExt;
use tessera_bus::{Transport, Watched};
use tokio::sync::Notify;
use uuid::Uuid;

/// The longest wait a client may ask for (API.md).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);

/// At most this many orders waited for at once by one gateway process: each waiter costs a
/// read of its order per event about it, and an open connection.
pub(crate) const MAX_WAITING_ORDERS: usize = 10_000;

/// The service whose messages wake waiters.
const ORDERS: &str = "orders";

/// The waiters of this gateway process, by order.
#[derive(Debug, Default)]
pub(crate) struct OrderWaiters {
    /// Each order's `Notify` and how many waiters share it; counted under the lock, so the
    /// entry goes exactly when its last waiter does.
    waiting: Mutex<HashMap<Uuid, (Arc<Notify>, usize)>>,
    /// Set while the orders' messages are watched: without them nobody would wake a waiter,
    /// so a preference to wait is then not applied.
    watching: AtomicBool,
}

/// One registered waiter; dropping it unregisters it.
#[derive(Debug)]
pub(crate) struct Waiter {
    order: Uuid,
    notify: Arc<Notify>,
    waiters: Arc<OrderWaiters>,
}

impl Waiter {
    /// Resolves at the next wake-up for this order. Create it (and `enable` it) before reading
    /// the order, so that a change committed between the read and the wait is not missed.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let last = match waiting.get_mut(&self.order) {
            Some((_, count)) => {
                *count = count.saturating_sub(1);
                *count == 0
            }
            None => false,
        };
        if last {
            waiting.remove(&self.order);
            gauge(waiting.len());
        }
    }
}

/// `tessera_gateway_orders_waited_for`: how many orders have clients waiting for them.
#[allow(clippy::cast_precision_loss)]
fn gauge(orders: usize) {
    metrics::gauge!("tessera_gateway_orders_waited_for").set(orders as f64);
}

impl OrderWaiters {
    pub(crate) fn is_watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    /// A waiter for `order`, or `None` when [`MAX_WAITING_ORDERS`] orders are waited for
    /// already (the client is then answered at once, as if it had not asked to wait).
    pub(crate) fn register(self: &Arc<Self>, order: Uuid) -> Option<Waiter> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if !waiting.contains_key(&order) && waiting.len() >= MAX_WAITING_ORDERS {
            return None;
        }
        let (notify, count) = waiting.entry(order).or_insert_with(|| (Arc::new(Notify::new()), 0));
        *count += 1;
        let notify = notify.clone();
        gauge(waiting.len());
        Some(Waiter { order, notify, waiters: self.clone() })
    }

    /// Wakes under the lock, so that no waiter's count is read while a wake-up holds a copy.
    fn wake(&self, order: Uuid) {
        if let Some((notify, _)) = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).get(&order) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter: messages may have been missed, so each reads its order again.
    fn wake_all(&self) {
        for (notify, _) in self.waiting.lock().unwrap_or_else(PoisonError::into_inner).values() {
            notify.notify_waiters();
        }
    }

    /// How many orders have waiters now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The order a message of the orders service is about, if it is one of the order's public
/// events (its commands to other services change nothing a waiter reads).
fn order_of(envelope: &tessera_kernel::Envelope) -> Option<Uuid> {
    if !envelope.name.starts_with("orders.Order") {
        return None;
    }
    envelope.payload.get("order_id")?.as_str()?.parse().ok()
}

/// Watches the orders service's messages for as long as the process runs, waking the waiters
/// of each order they name; after any break it watches again and wakes everyone.
pub(crate) async fn watch_orders(waiters: Arc<OrderWaiters>, transport: Arc<dyn Transport>) {
    loop {
        match transport.watch(ORDERS).await {
            Ok(mut messages) => {
                waiters.watching.store(true, Ordering::Release);
                // Whatever was published before the watch began was not seen.
                waiters.wake_all();
                while let Some(watched) = messages.next().await {
                    match watched {
                        Watched::Message(envelope) => {
                            if let Some(order) = order_of(&envelope) {
                                waiters.wake(order);
                            }
                        }
                        Watched::Gap => waiters.wake_all(),
                    }
                }
                tracing::warn!("the watch of the orders' messages ended; watching again");
            }
            Err(error) => tracing::warn!(%error, "cannot watch the orders' messages; trying again"),
        }
        // Nobody would wake a new waiter now: answer at once until the watch is back.
        waiters.watching.store(false, Ordering::Release);
        waiters.wake_all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The wait a request asks for with `Prefer: wait=N` (RFC 7240), at most [`MAX_WAIT`]; other
/// preferences, and a `wait` that is not a number of seconds, are ignored, as the RFC says.
pub(crate) fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| {
            // A preference's own parameters follow a `;`.
            let token = preference.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .next()
        .map(|seconds| Duration::from_secs(seconds).min(MAX_WAIT))
}

/// `Preference-Applied: wait=N`.
pub(crate) fn applied(wait: Duration) -> (&'static str, HeaderValue) {
    let value = HeaderValue::from_str(&format!("wait={}", wait.as_secs()))
        .unwrap_or(HeaderValue::from_static("wait"));
    ("preference-applied", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn the_wait_is_read_from_any_prefer_header_and_capped() {
        assert_eq!(preferred_wait(&prefer(&["wait=5"])), Some(Duration::from_secs(5)));
        assert_eq!(preferred_wait(&prefer(&["respond-async, WAIT=7"])), Some(Duration::from_secs(7)));
        assert_eq!(
            preferred_wait(&prefer(&["handling=lenient", "wait=\"3\""])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(preferred_wait(&prefer(&["wait=600"])), Some(MAX_WAIT));
        assert_eq!(preferred_wait(&prefer(&["wait=0"])), Some(Duration::ZERO));
    }

    #[test]
    fn no_or_a_malformed_wait_is_no_wait() {
        assert_eq!(preferred_wait(&HeaderMap::new()), None);
        assert_eq!(preferred_wait(&prefer(&["wait=soon"])), None);
        assert_eq!(preferred_wait(&prefer(&["wait=-1"])), None);
        assert_eq!(preferred_wait(&prefer(&["return=minimal"])), None);
    }

    #[tokio::test]
    async fn a_message_wakes_the_waiters_of_its_order_only_and_dropped_waiters_leave_no_entry() {
        let waiters = Arc::new(OrderWaiters::default());
        let (mine, other) = (Uuid::now_v7(), Uuid::now_v7());
        let first = waiters.register(mine).expect("room");
        let second = waiters.register(mine).expect("room");
        let elsewhere = waiters.register(other).expect("room");
        assert_eq!(waiters.len(), 2);
        {
            let (a, b, c) = (first.notified(), second.notified(), elsewhere.notified());
            tokio::pin!(a, b, c);
            a.as_mut().enable();
            b.as_mut().enable();
            c.as_mut().enable();
            waiters.wake(mine);
            tokio::time::timeout(Duration::from_secs(1), a).await.expect("the first waiter woke");
            tokio::time::timeout(Duration::from_secs(1), b).await.expect("the second waiter woke");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), c).await.is_err(),
                "another order's waiter woke"
            );
        }
        drop(first);
        assert_eq!(waiters.len(), 2, "a waiter of the order is left");
        drop((second, elsewhere));
        assert_eq!(waiters.len(), 0);
    }

    #[tokio::test]
    async fn the_watch_wakes_a_waiter_when_its_order_is_published_in_process() {
        let transport = Arc::new(tessera_bus::InProcessTransport::new());
        let waiters = Arc::new(OrderWaiters::default());
        tokio::spawn(watch_orders(waiters.clone(), transport.clone()));
        while !waiters.is_watching() {
            tokio::task::yield_now().await;
        }
        let order = Uuid::now_v7();
        let waiter = waiters.register(order).expect("room");
        let woken = waiter.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let confirmed = tessera_kernel::Envelope::new(
            &tessera_kernel::UuidV7Gen,
            tessera_kernel::MessageKind::Event,
            "orders.OrderConfirmed",
            "orders",
            order.to_string(),
            tessera_kernel::HlcTimestamp::default(),
            serde_json::json!({"order_id": order}),
        );
        transport.publish(&confirmed).await.expect("publish").await.expect("acknowledged");
        tokio::time::timeout(Duration::from_secs(5), woken).await.expect("woken by the published event");
    }
}
