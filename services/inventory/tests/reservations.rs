//! Inventory as a saga participant, end to end through the real bus: an orders store sends
//! commands through its outbox, relay and the in-process transport; inventory's subscriber
//! applies them next to its inbox and answers in its own outbox.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_contracts::inventory::{CommitReservation, ReleaseStock, ReserveStock, Restock};
use tessera_contracts::{Message, Money, OrderLine, Quantity, Sku};
use tessera_inventory::domain::{InventoryError, StockLevel};
use tessera_inventory::{AppError, Inventory};
use tessera_kernel::{Envelope, HybridClock, SystemClock, UuidV7Gen};
use tessera_store::Statement;
use tessera_testkit::Participant;
use uuid::Uuid;

struct Shop {
    participant: Participant,
    inventory: Arc<Inventory>,
}

async fn shop() -> Shop {
    let (participant, inventory) =
        Participant::start("inventory", &tessera_inventory::migrations(), |store| {
            Inventory::new(store, Arc::new(UuidV7Gen), Arc::new(HybridClock::new(Arc::new(SystemClock))))
        })
        .await;
    Shop { participant, inventory }
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("sku")
}

fn line(s: &str, quantity: i64) -> OrderLine {
    OrderLine { sku: sku(s), quantity: Quantity::new(quantity).expect("quantity") }
}

impl Shop {
    /// Sends a command as the place-order saga would (with its saga tag).
    async fn send<M: Message>(
        &self,
        order_id: Uuid,
        step: usize,
        compensation: bool,
        command: &M,
    ) -> Envelope {
        let payload = serde_json::to_value(command).expect("payload");
        self.participant.send(&order_id.to_string(), step, compensation, M::NAME, payload).await
    }

    async fn reply_to(&self, command: &Envelope) -> Value {
        self.participant.reply_to(command).await
    }

    async fn level(&self, s: &str) -> StockLevel {
        self.inventory.product(&sku(s)).await.expect("product").expect("exists").level
    }

    async fn assert_conserved(&self) {
        for (sku, (adjusted, level)) in self.inventory.conservation().await.expect("conservation") {
            assert_eq!(adjusted, level.total(), "{sku}: adjustments {adjusted} vs {level:?}");
        }
    }

    async fn stop(self) {
        self.participant.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_unit_is_reserved_by_exactly_one_of_many_concurrent_orders() {
    let shop = shop().await;
    shop.inventory
        .create_product(
            &sku("LAST-1"),
            "Last mug",
            "",
            &Money::eur(900).expect("money"),
            1,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("create");
    let mut commands = Vec::new();
    for _ in 0..24 {
        let order_id = Uuid::now_v7();
        commands.push(
            shop.send(order_id, 0, false, &ReserveStock { order_id, lines: vec![line("LAST-1", 1)] }).await,
        );
    }
    let mut reserved = 0;
    for command in &commands {
        let reply = shop.reply_to(command).await;
        if reply["ok"] == true {
            reserved += 1;
            assert_eq!(reply["data"]["reserved"]["total"], json!({"amount": 900, "currency": "EUR"}));
        } else {
            assert_eq!(reply["reason"], "out_of_stock");
        }
    }
    assert_eq!(reserved, 1, "sold once, never oversold");
    assert_eq!(shop.level("LAST-1").await, StockLevel { available: 0, reserved: 1, sold: 0 });
    shop.assert_conserved().await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_is_all_lines_or_none_then_released_committed_and_restocked() {
    let shop = shop().await;
    let price = Money::eur(1500).expect("money");
    shop.inventory
        .create_product(
            &sku("TEE-1"),
            "T-shirt",
            "cotton",
            &price,
            5,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("create");
    shop.inventory
        .create_product(&sku("CAP-1"), "Cap", "", &price, 1, &tessera_web::token::Actor::system("test"))
        .await
        .expect("create");

    // One short line: nothing is held.
    let short = Uuid::now_v7();
    let command = shop
        .send(
            short,
            0,
            false,
            &ReserveStock { order_id: short, lines: vec![line("TEE-1", 2), line("CAP-1", 2)] },
        )
        .await;
    assert_eq!(shop.reply_to(&command).await["reason"], "out_of_stock");
    assert_eq!(shop.level("TEE-1").await.available, 5, "all or nothing");

    // Unknown sku.
    let unknown = Uuid::now_v7();
    let command = shop
        .send(unknown, 0, false, &ReserveStock { order_id: unknown, lines: vec![line("NOPE-1", 1)] })
        .await;
    assert_eq!(shop.reply_to(&command).await["reason"], "unknown_sku");

    // Reserve, then release: back where it was; releasing again is a no-op.
    let released = Uuid::now_v7();
    let command = shop
        .send(
            released,
            0,
            false,
            &ReserveStock { order_id: released, lines: vec![line("TEE-1", 2), line("CAP-1", 1)] },
        )
        .await;
    let reply = shop.reply_to(&command).await;
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["data"]["reserved"]["total"]["amount"], 4500);
    assert_eq!(shop.level("TEE-1").await, StockLevel { available: 3, reserved: 2, sold: 0 });
    for _ in 0..2 {
        let command = shop.send(released, 0, true, &ReleaseStock { order_id: released }).await;
        assert_eq!(shop.reply_to(&command).await["ok"], true);
    }
    assert_eq!(shop.level("TEE-1").await, StockLevel { available: 5, reserved: 0, sold: 0 });
    assert_eq!(shop.level("CAP-1").await, StockLevel { available: 1, reserved: 0, sold: 0 });

    // Reserve, commit (sold), restock (cancelled after confirmation).
    let sold = Uuid::now_v7();
    let command =
        shop.send(sold, 0, false, &ReserveStock { order_id: sold, lines: vec![line("TEE-1", 3)] }).await;
    assert_eq!(shop.reply_to(&command).await["ok"], true);
    let command = shop.send(sold, 2, false, &CommitReservation { order_id: sold }).await;
    assert_eq!(shop.reply_to(&command).await["ok"], true);
    assert_eq!(shop.level("TEE-1").await, StockLevel { available: 2, reserved: 0, sold: 3 });
    let command = shop.send(sold, 0, false, &ReleaseStock { order_id: sold }).await;
    assert_eq!(shop.reply_to(&command).await["ok"], true, "releasing a sold reservation changes nothing");
    assert_eq!(shop.level("TEE-1").await, StockLevel { available: 2, reserved: 0, sold: 3 });
    let command = shop.send(sold, 0, false, &Restock { order_id: sold }).await;
    assert_eq!(shop.reply_to(&command).await["ok"], true);
    assert_eq!(shop.level("TEE-1").await, StockLevel { available: 5, reserved: 0, sold: 0 });

    // Every change was published as an event with its deltas.
    let events = shop
        .inventory
        .store()
        .query(Statement::new(
            "SELECT count(*) AS n FROM tessera_outbox WHERE name = 'inventory.StockChanged'",
        ))
        .await
        .expect("events");
    assert_eq!(
        events[0].int("n").expect("n"),
        7,
        "2 reserved + 2 released, then 1 reserved + 1 sold + 1 restocked"
    );
    shop.assert_conserved().await;
    shop.stop().await;
}

#[tokio::test]
async fn product_administration_refuses_duplicates_and_negative_stock() {
    let shop = shop().await;
    let price = Money::eur(500).expect("money");
    shop.inventory
        .create_product(&sku("PEN-1"), "Pen", "", &price, 3, &tessera_web::token::Actor::system("test"))
        .await
        .expect("create");
    assert!(matches!(
        shop.inventory
            .create_product(&sku("PEN-1"), "Pen", "", &price, 3, &tessera_web::token::Actor::system("test"))
            .await,
        Err(AppError::Duplicate(_))
    ));
    assert!(matches!(
        shop.inventory
            .adjust_stock(&sku("PEN-1"), -4, "stocktake", &tessera_web::token::Actor::system("test"))
            .await,
        Err(AppError::Domain(InventoryError::BelowZero { available: 3, delta: -4, .. }))
    ));
    assert_eq!(
        shop.inventory
            .adjust_stock(&sku("PEN-1"), -3, "stocktake", &tessera_web::token::Actor::system("test"))
            .await
            .expect("adjust")
            .available,
        0
    );
    assert_eq!(
        shop.inventory
            .adjust_stock(&sku("PEN-1"), 10, "delivery", &tessera_web::token::Actor::system("test"))
            .await
            .expect("adjust")
            .available,
        10
    );
    assert!(matches!(
        shop.inventory.adjust_stock(&sku("NOPE-1"), 1, "x", &tessera_web::token::Actor::system("test")).await,
        Err(AppError::Domain(InventoryError::UnknownSku(_)))
    ));
    shop.assert_conserved().await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_that_arrives_first_refuses_the_later_reservation_and_mixed_currencies_hold_nothing() {
    let shop = shop().await;
    shop.inventory
        .create_product(
            &sku("EUR-1"),
            "Euro mug",
            "",
            &Money::eur(900).expect("money"),
            5,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("create");
    let dollars = Money::new(1000, tessera_contracts::Currency::parse("USD").expect("usd")).expect("money");
    shop.inventory
        .create_product(
            &sku("USD-1"),
            "Dollar mug",
            "",
            &dollars,
            5,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("create");

    // The saga gave up and released before the (late, retried) reservation was applied.
    let order = Uuid::now_v7();
    let release = shop.send(order, 0, true, &ReleaseStock { order_id: order }).await;
    assert_eq!(shop.reply_to(&release).await["ok"], true);
    let reserve =
        shop.send(order, 0, false, &ReserveStock { order_id: order, lines: vec![line("EUR-1", 1)] }).await;
    assert_eq!(shop.reply_to(&reserve).await["reason"], "reservation_closed");
    assert_eq!(shop.level("EUR-1").await.available, 5, "nothing held for a released order");

    let mixed = Uuid::now_v7();
    let reserve = shop
        .send(
            mixed,
            0,
            false,
            &ReserveStock { order_id: mixed, lines: vec![line("EUR-1", 1), line("USD-1", 1)] },
        )
        .await;
    assert_eq!(shop.reply_to(&reserve).await["reason"], "mixed_currencies");
    assert_eq!((shop.level("EUR-1").await.reserved, shop.level("USD-1").await.reserved), (0, 0));

    // Refused for stock, then stock comes back: a late copy of the same command (past the
    // inbox: a new message id) must not hold stock for an order whose saga has failed.
    let refused = Uuid::now_v7();
    let command = ReserveStock { order_id: refused, lines: vec![line("EUR-1", 8)] };
    let first = shop.send(refused, 0, false, &command).await;
    assert_eq!(shop.reply_to(&first).await["reason"], "out_of_stock");
    shop.inventory
        .adjust_stock(&sku("EUR-1"), 10, "delivery", &tessera_web::token::Actor::system("test"))
        .await
        .expect("restock");
    let late = shop.send(refused, 0, false, &command).await;
    assert_eq!(shop.reply_to(&late).await["reason"], "reservation_closed");
    assert_eq!(shop.level("EUR-1").await.reserved, 0, "nothing held for a refused order");
    shop.assert_conserved().await;
    shop.stop().await;
}
