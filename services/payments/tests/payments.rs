//! Payments as a saga participant through the real bus, against the simulated card network.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_contracts::Money;
use tessera_kernel::{ManualClock, Timestamp, UuidV7Gen};
use tessera_payments::{AppError, NetworkSettings, Payments, SimulatedNetwork};
use tessera_store::Statement;
use tessera_testkit::Participant;
use uuid::Uuid;

/// 2026-11-26.
const TODAY: Timestamp = Timestamp::from_micros(1_795_651_200_000_000);

struct Fixture {
    participant: Participant,
    payments: Arc<Payments>,
    network: Arc<SimulatedNetwork>,
    customer: Uuid,
    /// Stops the authorisation worker when the fixture goes.
    _worker: tokio::sync::watch::Sender<bool>,
}

async fn fixture() -> Fixture {
    let network = Arc::new(SimulatedNetwork::new(NetworkSettings {
        slow_delay: Duration::from_millis(300),
        ..NetworkSettings::default()
    }));
    let card_network = network.clone();
    let (participant, payments) =
        Participant::start("payments", &tessera_payments::migrations(), move |store| {
            Payments::new(store, card_network, Arc::new(UuidV7Gen), Arc::new(ManualClock::new(TODAY)))
        })
        .await;
    let (worker, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(payments.as_ref().clone().run_authorisations(16, stopped));
    Fixture { participant, payments, network, customer: Uuid::now_v7(), _worker: worker }
}

impl Fixture {
    async fn token(&self, number: &str) -> String {
        self.payments
            .tokenise(self.customer, number, 12, 2030, "123", &tessera_web::token::Actor::system("test"))
            .await
            .expect("tokenise")
            .token
    }

    async fn command(&self, order: Uuid, name: &str, payload: Value) -> Value {
        let command = self.participant.send(&order.to_string(), 1, false, name, payload).await;
        self.participant.reply_to(&command).await
    }

    async fn authorise(&self, order: Uuid, token: &str, amount: i64) -> Value {
        let payload = json!({ "order_id": order, "customer_id": self.customer, "payment_token": token, "amount": Money::eur(amount).expect("money") });
        self.command(order, "payments.AuthorisePayment", payload).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_test_card_gets_its_answer_and_an_order_is_captured_once() {
    let f = fixture().await;
    let approved = f.token("4242424242424242").await;
    let order = Uuid::now_v7();
    let reply = f.authorise(order, &approved, 4200).await;
    assert_eq!(
        (reply["ok"].clone(), reply["data"]["payment"]["last4"].clone()),
        (json!(true), json!("4242"))
    );
    // Asked again (a redelivered or repeated command): the same answer, no second authorisation.
    assert_eq!(f.authorise(order, &approved, 4200).await["ok"], true);
    for _ in 0..3 {
        let reply = f
            .command(
                order,
                "payments.CapturePayment",
                json!({ "order_id": order, "amount": Money::eur(4200).expect("money") }),
            )
            .await;
        assert_eq!(reply["ok"], true);
    }
    assert_eq!(
        f.network.captured().values().copied().collect::<Vec<_>>(),
        vec![4200],
        "the network captured once"
    );
    let captures = f
        .participant
        .store
        .query(Statement::new("SELECT count(*) AS n FROM captures"))
        .await
        .expect("captures");
    assert_eq!(captures[0].int("n").expect("n"), 1);
    let reply = f
        .command(
            order,
            "payments.RefundPayment",
            json!({ "order_id": order, "amount": Money::eur(4200).expect("money") }),
        )
        .await;
    assert_eq!(reply["ok"], true);
    assert_eq!(f.payments.payment(order).await.expect("payment").expect("exists").status, "refunded");
    assert_eq!(f.network.refunded().values().copied().collect::<Vec<_>>(), vec![4200]);

    for (number, reason) in
        [("4000000000000002", "card_declined"), ("4000000000009995", "insufficient_funds")]
    {
        let token = f.token(number).await;
        let order = Uuid::now_v7();
        let reply = f.authorise(order, &token, 100).await;
        assert_eq!((reply["ok"].clone(), reply["reason"].clone()), (json!(false), json!(reason)));
        // Voiding a declined payment is a harmless no-op (a compensation may send it).
        assert_eq!(f.command(order, "payments.VoidPayment", json!({ "order_id": order })).await["ok"], true);
    }
    f.participant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_network_errors_are_retried_and_slow_cards_answer_late() {
    let f = fixture().await;
    let transient = f.token("4000000000000119").await;
    let order = Uuid::now_v7();
    assert_eq!(f.authorise(order, &transient, 700).await["ok"], true, "approved after the retries");

    let slow = f.token("4000000000003220").await;
    let order = Uuid::now_v7();
    let started = std::time::Instant::now();
    assert_eq!(f.authorise(order, &slow, 700).await["ok"], true);
    assert!(started.elapsed() >= Duration::from_millis(300), "answered after the network's delay");
    // The saga gave up waiting and voids it: the late authorisation is undone.
    assert_eq!(f.command(order, "payments.VoidPayment", json!({ "order_id": order })).await["ok"], true);
    assert_eq!(f.payments.payment(order).await.expect("payment").expect("exists").status, "voided");
    f.participant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_only_for_its_customer_and_bad_cards_are_refused() {
    let f = fixture().await;
    let token = f.token("4242424242424242").await;
    let order = Uuid::now_v7();
    let payload = json!({ "order_id": order, "customer_id": Uuid::now_v7(), "payment_token": token, "amount": Money::eur(1).expect("money") });
    let reply = f.command(order, "payments.AuthorisePayment", payload).await;
    assert_eq!(reply["reason"], "unknown_payment_token", "another customer's token is unknown to them");

    for (number, month, year, cvc, code) in [
        ("4242424242424241", 12, 2030, "123", "invalid_card_number"),
        ("4242424242424242", 10, 2026, "123", "card_expired"),
        ("4242424242424242", 12, 2030, "12a", "invalid_cvc"),
    ] {
        match f
            .payments
            .tokenise(f.customer, number, month, year, cvc, &tessera_web::token::Actor::system("test"))
            .await
        {
            Err(AppError::Card(error)) => assert_eq!(error.code(), code),
            other => panic!("{number}: expected {code}, got {other:?}"),
        }
    }
    f.participant.stop().await;
}

/// The card number and CVC never reach the database: scan the file's bytes for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_card_number_or_cvc_is_stored() {
    let f = fixture().await;
    let token = f
        .payments
        .tokenise(f.customer, "4242424242424242", 12, 2030, "987", &tessera_web::token::Actor::system("test"))
        .await
        .expect("tokenise")
        .token;
    let order = Uuid::now_v7();
    f.authorise(order, &token, 500).await;
    let path = f.payments.store().query(Statement::new("PRAGMA database_list")).await.expect("list")[0]
        .text("file")
        .expect("file")
        .to_owned();
    let mut bytes = std::fs::read(&path).expect("database file");
    bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
    f.participant.stop().await;
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains("4242424242424242"), "the card number is in {path}");
    assert!(!haystack.contains("\"987\"") && !haystack.contains("cvc"), "the CVC is in {path}");
    assert!(haystack.contains(&token), "the scan reads the real data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_that_arrives_first_refuses_the_later_authorisation_and_a_repeat_answers_alike() {
    let f = fixture().await;
    let token = f.token("4242424242424242").await;
    let order = Uuid::now_v7();
    assert_eq!(f.command(order, "payments.VoidPayment", json!({ "order_id": order })).await["ok"], true);
    let reply = f.authorise(order, &token, 100).await;
    assert_eq!(reply["reason"], "payment_cancelled", "no money is held for a voided order");
    assert!(f.payments.payment(order).await.expect("payment").is_none());

    let order = Uuid::now_v7();
    let first = f.authorise(order, &token, 100).await;
    let again = f.authorise(order, &token, 100).await;
    assert_eq!(first["data"], again["data"], "a repeated authorisation answers in the same shape");
    f.participant.stop().await;
}
