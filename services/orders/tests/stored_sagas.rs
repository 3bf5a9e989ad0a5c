//! Sagas stored before their data, steps and failures were typed still load and finish. Each
//! row below is what the engine wrote to `tessera_sagas.state` before that change (captured
//! from a run of the code of the time); only the ids, and the timer and deadline that belong
//! to this store, are put in. The replies are in the participants' wire format of the time.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_bus::Handler;
use tessera_contracts::Message;
use tessera_contracts::inventory::{CommitReservation, ReserveStock, Restock};
use tessera_contracts::orders::RejectionReason;
use tessera_contracts::payments::{CapturePayment, RefundPayment};
use tessera_contracts::{OrderLine, Quantity, Sku};
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, SystemClock, UuidV7Gen};
use tessera_orders::domain::OrderStatus;
use tessera_orders::{CANCEL_ORDER, Orders, OrdersSettings, PLACE_ORDER};
use tessera_saga::Status;
use tessera_store::{SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_web::token::Actor;
use uuid::Uuid;

/// A place-order saga waiting for the authorisation, its reservation merged into its data.
const PLACE_ORDER_AUTHORISING: &str = r#"{"id":"ORDER","data":{"customer_id":"CUSTOMER","lines":[{"quantity":2,"sku":"TEA-001"}],"order_id":"ORDER","payment_token":"tok_1","reserved":{"lines":[{"name":"Tea","quantity":2,"sku":"TEA-001","unit_price":{"amount":450,"currency":"EUR"}}],"total":{"amount":900,"currency":"EUR"}}},"status":"running","step":1,"attempt":0,"reason":null,"stuck":null,"pending_timer":"TIMER","deadline":DEADLINE}"#;

/// A place-order saga undoing the reservation after a declined card (no `failure` field).
const PLACE_ORDER_COMPENSATING: &str = r#"{"id":"ORDER","data":{"customer_id":"CUSTOMER","lines":[{"quantity":2,"sku":"TEA-001"}],"order_id":"ORDER","payment_token":"tok_2","reserved":{"lines":[{"name":"Tea","quantity":2,"sku":"TEA-001","unit_price":{"amount":450,"currency":"EUR"}}],"total":{"amount":900,"currency":"EUR"}}},"status":"compensating","step":0,"attempt":0,"reason":"card_declined","stuck":null,"pending_timer":"TIMER","deadline":null}"#;

/// A cancel-order saga waiting for the refund.
const CANCEL_ORDER_REFUNDING: &str = r#"{"id":"ORDER","data":{"order_id":"ORDER","reserved":{"total":{"amount":900,"currency":"EUR"}}},"status":"running","step":0,"attempt":0,"reason":null,"stuck":null,"pending_timer":"TIMER","deadline":DEADLINE}"#;

struct Shop {
    _data: TempDataDir,
    orders: Orders,
}

async fn shop() -> Shop {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("orders.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_orders::migrations()).await.expect("store");
    let orders = Orders::new(store, &OrdersSettings::default(), Arc::new(UuidV7Gen), Arc::new(SystemClock));
    Shop { _data: data, orders }
}

fn actor() -> Actor {
    Actor::system("test")
}

fn lines() -> Vec<OrderLine> {
    vec![OrderLine { sku: Sku::parse("TEA-001").expect("sku"), quantity: Quantity::new(2).expect("qty") }]
}

impl Shop {
    fn store(&self) -> &Store {
        self.orders.store()
    }

    async fn place(&self, customer: Uuid, token: &str) -> Uuid {
        self.orders.place(customer, lines(), token, None, None, &actor()).await.expect("place")
    }

    async fn state(&self, saga: &str, order: Uuid) -> Value {
        let rows = self
            .store()
            .query(
                Statement::new("SELECT state FROM tessera_sagas WHERE saga = $1 AND saga_id = $2")
                    .bind(saga)
                    .bind(order.to_string()),
            )
            .await
            .expect("query");
        serde_json::from_str(rows[0].text("state").expect("state")).expect("json")
    }

    /// Replaces the saga's stored state with `row`, as the code before typed sagas wrote it,
    /// keeping this store's pending timer and deadline.
    async fn store_old_row(&self, saga: &str, order: Uuid, customer: Uuid, row: &str) {
        let current = self.state(saga, order).await;
        let row = row
            .replace("ORDER", &order.to_string())
            .replace("CUSTOMER", &customer.to_string())
            .replace("TIMER", current["pending_timer"].as_str().expect("a pending timer"))
            .replace("DEADLINE", &current["deadline"].to_string());
        let mut unit = self.store().begin();
        unit.execute(
            Statement::new("UPDATE tessera_sagas SET state = $1 WHERE saga = $2 AND saga_id = $3")
                .bind(row)
                .bind(saga)
                .bind(order.to_string()),
        );
        unit.commit().await.expect("commit");
    }

    /// Delivers a participant's reply, in the wire format of the time, to step `step`.
    async fn reply(&self, saga: &str, order: Uuid, step: u64, compensation: bool, name: &str, body: Value) {
        let mut payload = body;
        payload["saga"] =
            json!({ "compensation": compensation, "id": order.to_string(), "name": saga, "step": step });
        let source = name.split('.').next().expect("owner");
        let reply = Envelope::new(
            &UuidV7Gen,
            MessageKind::Reply,
            name,
            source,
            order.to_string(),
            HlcTimestamp::default(),
            payload,
        )
        .to_target("orders");
        let mut unit = self.store().begin();
        self.orders.handle(&reply, &mut unit).await.expect("handle");
        unit.commit().await.expect("commit");
    }

    /// The last command of kind `M` sent for `order`.
    async fn sent<M: Message>(&self, order: Uuid) -> M {
        let outbox = self.store().outbox_unsent(0, 100_000).await.expect("outbox");
        let envelope = outbox
            .into_iter()
            .map(|m| m.envelope)
            .rfind(|m| m.name == M::NAME && m.key == order.to_string())
            .unwrap_or_else(|| panic!("no {} for {order}", M::NAME));
        serde_json::from_value(envelope.payload).expect("the contract's payload")
    }

    async fn saga_status(&self, saga: &str, order: Uuid) -> Status {
        serde_json::from_value(self.state(saga, order).await["status"].clone()).expect("status")
    }
}

fn reserved() -> Value {
    json!({"ok": true, "data": {"reserved": {"lines": [{"name": "Tea", "quantity": 2, "sku": "TEA-001",
        "unit_price": {"amount": 450, "currency": "EUR"}}], "total": {"amount": 900, "currency": "EUR"}}}})
}

fn done() -> Value {
    json!({"ok": true})
}

#[tokio::test]
async fn a_place_order_saga_stored_before_typing_is_authorised_confirmed_and_completed() {
    let shop = shop().await;
    let customer = Uuid::now_v7();
    let order = shop.place(customer, "tok_1").await;
    shop.reply(PLACE_ORDER, order, 0, false, "inventory.ReserveStockReplied", reserved()).await;
    shop.store_old_row(PLACE_ORDER, order, customer, PLACE_ORDER_AUTHORISING).await;

    let payment = Uuid::now_v7();
    let authorised = json!({"ok": true, "data": {"payment": {"last4": "4242", "payment_id": payment}}});
    shop.reply(PLACE_ORDER, order, 1, false, "payments.AuthorisePaymentReplied", authorised).await;
    let confirmed = shop.orders.order(order).await.expect("order").expect("exists");
    assert_eq!((confirmed.status, confirmed.payment_id), (OrderStatus::Confirmed, Some(payment)));

    assert_eq!(shop.sent::<CommitReservation>(order).await.order_id, order);
    shop.reply(PLACE_ORDER, order, 2, false, "inventory.CommitReservationReplied", done()).await;
    assert_eq!(shop.sent::<CapturePayment>(order).await.amount.amount, 900, "the stored reservation's total");
    shop.reply(PLACE_ORDER, order, 3, false, "payments.CapturePaymentReplied", done()).await;
    assert_eq!(shop.saga_status(PLACE_ORDER, order).await, Status::Completed);
}

#[tokio::test]
async fn a_compensating_saga_stored_without_its_failure_finishes_undoing_and_the_rejection_stands() {
    let shop = shop().await;
    let customer = Uuid::now_v7();
    let order = shop.place(customer, "tok_2").await;
    shop.reply(PLACE_ORDER, order, 0, false, "inventory.ReserveStockReplied", reserved()).await;
    let declined = json!({"ok": false, "reason": "card_declined"});
    shop.reply(PLACE_ORDER, order, 1, false, "payments.AuthorisePaymentReplied", declined).await;
    shop.store_old_row(PLACE_ORDER, order, customer, PLACE_ORDER_COMPENSATING).await;

    shop.reply(PLACE_ORDER, order, 0, true, "inventory.ReleaseStockReplied", done()).await;
    assert_eq!(shop.saga_status(PLACE_ORDER, order).await, Status::Compensated);
    let rejected = shop.orders.order(order).await.expect("order").expect("exists");
    assert_eq!(
        (rejected.status, rejected.reason),
        (OrderStatus::Rejected, Some(RejectionReason::PaymentDeclined))
    );
    assert_eq!(shop.sent::<ReserveStock>(order).await.order_id, order);
}

#[tokio::test]
async fn a_cancel_order_saga_stored_before_typing_refunds_restocks_and_cancels() {
    let shop = shop().await;
    let customer = Uuid::now_v7();
    let order = shop.place(customer, "tok_1").await;
    shop.reply(PLACE_ORDER, order, 0, false, "inventory.ReserveStockReplied", reserved()).await;
    let authorised =
        json!({"ok": true, "data": {"payment": {"last4": "4242", "payment_id": Uuid::now_v7()}}});
    shop.reply(PLACE_ORDER, order, 1, false, "payments.AuthorisePaymentReplied", authorised).await;
    shop.orders.cancel(order, &actor()).await.expect("cancel");
    shop.store_old_row(CANCEL_ORDER, order, customer, CANCEL_ORDER_REFUNDING).await;

    shop.reply(CANCEL_ORDER, order, 0, false, "payments.RefundPaymentReplied", done()).await;
    assert_eq!(shop.sent::<Restock>(order).await.order_id, order);
    shop.reply(CANCEL_ORDER, order, 1, false, "inventory.RestockReplied", done()).await;
    assert_eq!(shop.saga_status(CANCEL_ORDER, order).await, Status::Completed);
    let cancelled = shop.orders.order(order).await.expect("order").expect("exists");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(shop.sent::<RefundPayment>(order).await.amount.amount, 900);
}
