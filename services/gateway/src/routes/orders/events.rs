//! `GET /orders/{id}/events`: the order's status changes as Server-Sent Events. Each event's id
//! is the version of the order event that made the change, so `Last-Event-ID` resumes exactly
//! where a dropped connection left off; the stream ends once the order is settled for good.
//! Like `Prefer: wait`, it reads the order again only when the orders service publishes
//! something about it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_web::{ApiResult, Path, Problem};

use crate::access::Caller;
use crate::delegation::{Asking, asking, on_behalf_of};
use crate::state::Gateway;
use crate::waiting::Waiter;

/// How long a stream waits for a wake-up before reading the order anyway, when this process
/// watches the orders' messages (a safety net only), and when it does not.
const WATCHED_PATIENCE: Duration = Duration::from_secs(30);
const UNWATCHED_PATIENCE: Duration = Duration::from_secs(1);

/// One status change of an order.
#[derive(Debug, PartialEq)]
struct StatusChange {
    version: u64,
    status: &'static str,
    reason: Option<Value>,
    at: Value,
}

impl StatusChange {
    fn event(&self, order: uuid::Uuid) -> Event {
        let mut data =
            json!({"order_id": order, "status": self.status, "version": self.version, "at": self.at});
        if let Some(reason) = &self.reason {
            data["reason"] = reason.clone();
        }
        Event::default().id(self.version.to_string()).event(self.status).data(data.to_string())
    }
}

/// The status changes in an order's history (orders' `GET /orders/{id}/history`) after
/// `after`, and whether the order is settled for good: confirmed, rejected or cancelled, with
/// no cancellation still under way.
fn status_changes(history: &Value, after: u64) -> (Vec<StatusChange>, bool) {
    let mut changes = Vec::new();
    let mut settled = false;
    for event in history["events"].as_array().into_iter().flatten() {
        let version = event["version"].as_u64().unwrap_or(0);
        let status = match event["name"].as_str().unwrap_or_default() {
            "orders.Placed" => Some("pending"),
            "orders.Confirmed" => Some("confirmed"),
            "orders.Rejected" => Some("rejected"),
            "orders.Cancelled" => Some("cancelled"),
            "orders.CancelRequested" => {
                settled = false;
                None
            }
            _ => None,
        };
        let Some(status) = status else { continue };
        settled = status != "pending";
        if version > after {
            let reason = (status == "rejected").then(|| event["data"]["reason"].clone());
            changes.push(StatusChange { version, status, reason, at: event["at"].clone() });
        }
    }
    (changes, settled)
}

/// Where one stream is.
struct Follow {
    g: Gateway,
    asking: Asking,
    order: uuid::Uuid,
    waiter: Waiter,
    /// The version of the last status change sent.
    sent: u64,
    ready: VecDeque<Event>,
    settled: bool,
}

impl Follow {
    /// The next event to send, reading the order again (and waiting for a wake-up first when
    /// nothing changed) until it has one; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((Ok(event), self));
            }
            if self.settled {
                return None;
            }
            let readable = {
                let woken = self.waiter.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let path = format!("/orders/{}/history", self.order);
                let history = on_behalf_of(
                    self.asking.clone(),
                    self.g.call(&self.g.services.orders, Method::GET, &path, None, &[]),
                )
                .await
                .ok()
                .filter(|reply| reply.status == StatusCode::OK);
                if let Some(history) = &history {
                    let (changes, settled) = status_changes(&history.json(), self.sent);
                    if let Some(last) = changes.last() {
                        self.sent = last.version;
                    }
                    self.ready.extend(changes.iter().map(|change| change.event(self.order)));
                    self.settled = settled;
                    if self.ready.is_empty() && !self.settled {
                        let patience =
                            if self.g.waiters.is_watching() { WATCHED_PATIENCE } else { UNWATCHED_PATIENCE };
                        let _ = tokio::time::timeout(patience, woken).await;
                    }
                }
                history.is_some()
            };
            if !readable {
                // The order cannot be read now: say so and end, so that the client comes back
                // with `Last-Event-ID` rather than take the end for the order's.
                self.settled = true;
                let detail = "the order cannot be read now; reconnect with Last-Event-ID";
                let failed = Event::default()
                    .event("error")
                    .data(json!({"order_id": self.order, "detail": detail}).to_string());
                return Some((Ok(failed), self));
            }
        }
    }
}

/// The order's status changes as Server-Sent Events (`pending`, `confirmed`, `rejected`,
/// `cancelled`), from the start or after `Last-Event-ID`; the stream ends once the order is
/// settled.
#[utoipa::path(get, path = "/api/v1/orders/{id}/events", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "the order id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream",
            description = "one event per status change: `id` the order's version, `event` the status, `data` JSON `{order_id, status, version, at, reason?}`; an `error` event (no id) ends a stream the gateway cannot go on with, to be resumed with `Last-Event-ID`"),
        (status = 404, body = Problem)))]
pub(crate) async fn order_events(
    State(g): State<Gateway>,
    caller: Caller,
    headers: HeaderMap,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let order = crate::forward::uuid(&text, "order")?;
    g.order_owner(&caller, order).await?;
    let sent = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            Problem::invalid_field("Last-Event-ID", "must be the id of an event of this stream")
        })?,
    };
    let Some(waiter) = g.waiters.register(order) else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_waiters",
            "too many clients are waiting for orders on this gateway; try again shortly",
        ));
    };
    let follow = Follow { waiter, g, asking: asking(), order, sent, ready: VecDeque::new(), settled: false };
    let stream = futures_util::stream::unfold(follow, Follow::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(names: &[(&str, Value)]) -> Value {
        let events: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(index, (name, data))| json!({"version": index + 1, "name": name, "at": "t", "data": data}))
            .collect();
        json!({ "events": events })
    }

    #[test]
    fn each_status_change_is_one_event_after_the_last_one_sent() {
        let placed_and_confirmed = history(&[
            ("orders.Placed", json!({})),
            ("orders.StockReserved", json!({})),
            ("orders.PaymentAuthorised", json!({})),
            ("orders.Confirmed", json!({})),
        ]);
        let (changes, settled) = status_changes(&placed_and_confirmed, 0);
        let statuses: Vec<_> = changes.iter().map(|c| (c.version, c.status)).collect();
        assert_eq!(statuses, vec![(1, "pending"), (4, "confirmed")]);
        assert!(settled);
        let (resumed, _) = status_changes(&placed_and_confirmed, 1);
        assert_eq!(resumed.iter().map(|c| c.status).collect::<Vec<_>>(), vec!["confirmed"]);
        let (nothing, settled) = status_changes(&placed_and_confirmed, 4);
        assert!(nothing.is_empty());
        assert!(settled);
    }

    #[test]
    fn a_pending_order_or_a_cancellation_under_way_is_not_settled_and_a_rejection_has_its_reason() {
        let (_, settled) = status_changes(&history(&[("orders.Placed", json!({}))]), 0);
        assert!(!settled);
        let cancelling = history(&[
            ("orders.Placed", json!({})),
            ("orders.Confirmed", json!({})),
            ("orders.CancelRequested", json!({})),
        ]);
        assert!(!status_changes(&cancelling, 0).1);
        let (changes, settled) = status_changes(
            &history(&[("orders.Placed", json!({})), ("orders.Rejected", json!({"reason": "out_of_stock"}))]),
            0,
        );
        assert!(settled);
        assert_eq!(changes[1].reason, Some(json!("out_of_stock")));
    }
}
