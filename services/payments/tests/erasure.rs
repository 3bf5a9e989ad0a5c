//! Payments' part of an erasure, wired as the runtime wires it: `PaymentsService`'s own
//! subscriptions, each fed by the real relay of a stand-in source store, the in-process
//! transport and the real subscriber (inbox, retries, dead letters). A customer's stored cards
//! are deleted (their tokens answer 404 and can never be charged), another customer's stay,
//! payments stay as the money's record, one `ErasureDone` answers, and a redelivered
//! `CustomerErased` changes nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_contracts::testing::{erased, message};
use tessera_testkit::sources::Sources;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_bus::list_dead_letters;
use tessera_contracts::customers::{CustomerUpdated, ErasureDone};
use tessera_contracts::{Message, Money};
use tessera_kernel::{Envelope, HlcTimestamp, ManualClock, MessageKind, SubjectId, Timestamp, UuidV7Gen};
use tessera_payments::{NetworkSettings, PaymentsService, SimulatedNetwork};
use tessera_runtime::Service;
use tessera_store::{PostgresOptions, SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::http::call;
use tessera_testkit::{TempDataDir, TempPostgres};
use tokio::sync::watch;
use uuid::Uuid;

/// 2026-11-26.
const TODAY: Timestamp = Timestamp::from_micros(1_795_651_200_000_000);
const APPROVED: &str = "4242424242424242";

/// An order saga's command to payments, as `orders` sends it.
fn command(order: Uuid, name: &str, mut payload: Value) -> Envelope {
    payload["saga"] = json!({ "name": "place_order", "id": order, "step": 1, "compensation": false });
    Envelope::new(
        &UuidV7Gen,
        MessageKind::Command,
        name,
        "orders",
        order.to_string(),
        HlcTimestamp::default(),
        payload,
    )
    .to_target("payments")
}

fn authorise(order: Uuid, customer: Uuid, token: &str) -> Envelope {
    let payload = json!({ "order_id": order, "customer_id": customer, "payment_token": token,
                          "amount": Money::eur(4200).expect("money") });
    command(order, "payments.AuthorisePayment", payload)
}

/// The messages in payments' outbox.
async fn outbox(store: &Store) -> Vec<Envelope> {
    store.outbox_unsent(0, 100_000).await.expect("outbox").into_iter().map(|m| m.envelope).collect()
}

/// Payments' answer to `command`, once it is in the outbox.
async fn reply_to(store: &Store, command: &Envelope) -> Value {
    let started = Instant::now();
    loop {
        if let Some(reply) = outbox(store)
            .await
            .into_iter()
            .find(|m| m.kind == MessageKind::Reply && m.causation_id == Some(command.id))
        {
            return reply.payload;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no reply to {}", command.name);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every `ErasureDone` in the outbox.
async fn erasures_done(store: &Store) -> Vec<(Envelope, ErasureDone)> {
    outbox(store)
        .await
        .into_iter()
        .filter(|m| m.name == ErasureDone::NAME)
        .map(|m| {
            let done = serde_json::from_value(m.payload.clone()).expect("ErasureDone");
            (m, done)
        })
        .collect()
}

struct Fixture {
    service: PaymentsService,
    router: Router,
    sources: Sources,
    /// Stops the service's authorisation worker.
    worker: watch::Sender<bool>,
}

impl Fixture {
    async fn on(config: &StoreConfig) -> Self {
        let store = Store::open(config, &tessera_payments::migrations()).await.expect("payments store");
        let network = Arc::new(SimulatedNetwork::new(NetworkSettings::default()));
        let service =
            PaymentsService::new(store, network, Arc::new(UuidV7Gen), Arc::new(ManualClock::new(TODAY)));
        let sources = Sources::start(
            service.name(),
            service.store(),
            service.subscriptions().into_iter().map(|s| (s.source, s.handler)).collect(),
        )
        .await;
        let (router, _) = tessera_payments::http::router().split_for_parts();
        let router = tessera_web::standard_layers(router.with_state(service.payments().clone()));
        let (worker, _) = watch::channel(false);
        Self { service, router, sources, worker }
    }

    /// Starts the service's background work (the authorisation worker).
    fn run_tasks(&mut self) {
        let (worker, stopped) = watch::channel(false);
        for task in self.service.tasks(stopped) {
            tokio::spawn(task);
        }
        self.worker = worker;
    }

    async fn token(&self, customer: Uuid) -> String {
        self.service
            .payments()
            .tokenise(customer, APPROVED, 12, 2030, "123", &tessera_web::token::Actor::system("test"))
            .await
            .expect("tokenise")
            .token
    }

    async fn lookup(&self, token: &str) -> StatusCode {
        call(&self.router, Method::GET, &format!("/payment-methods/{token}"), None).await.status
    }

    async fn stop(self) {
        let _ = self.worker.send(true);
        self.sources.stop().await;
    }
}

async fn erasure_deletes_one_customers_cards_once(config: &StoreConfig) {
    let mut f = Fixture::on(config).await;
    f.run_tasks();
    let store = f.service.store().clone();
    let (erased_customer, kept_customer) = (Uuid::now_v7(), Uuid::now_v7());
    let erased_tokens = [f.token(erased_customer).await, f.token(erased_customer).await];
    let kept_token = f.token(kept_customer).await;

    // A payment of the customer's, authorised and captured before the erasure.
    let order = Uuid::now_v7();
    let authorisation = authorise(order, erased_customer, &erased_tokens[0]);
    f.sources.deliver("orders", &authorisation, false).await;
    assert_eq!(reply_to(&store, &authorisation).await["ok"], true);
    let capture = command(
        order,
        "payments.CapturePayment",
        json!({ "order_id": order, "amount": Money::eur(4200).expect("money") }),
    );
    f.sources.deliver("orders", &capture, false).await;
    assert_eq!(reply_to(&store, &capture).await["ok"], true);

    let (envelope, erasure_id) = erased(erased_customer);
    f.sources.deliver("customers", &envelope, false).await;
    // The same message again, from a relay that never learned it was sent.
    f.sources.deliver("customers", &envelope, true).await;

    for token in &erased_tokens {
        assert_eq!(f.lookup(token).await, StatusCode::NOT_FOUND, "{token} is gone");
    }
    assert_eq!(f.lookup(&kept_token).await, StatusCode::OK, "another customer's card stays");
    let left = store
        .query(
            Statement::new("SELECT count(*) AS n FROM payment_methods WHERE customer_id = $1")
                .bind(erased_customer.to_string()),
        )
        .await
        .expect("count");
    assert_eq!(left[0].int("n").expect("n"), 0);

    // The money's record stays.
    let payment = f.service.payments().payment(order).await.expect("payment").expect("the payment stays");
    assert_eq!((payment.status.as_str(), payment.last4.as_str()), ("captured", "4242"));
    let captures = store.query(Statement::new("SELECT amount FROM captures")).await.expect("captures");
    assert_eq!(captures.iter().map(|r| r.int("amount").expect("amount")).collect::<Vec<_>>(), [4200]);

    // No charge can start on an erased token.
    let late = authorise(Uuid::now_v7(), erased_customer, &erased_tokens[1]);
    f.sources.deliver("orders", &late, false).await;
    assert_eq!(reply_to(&store, &late).await["reason"], "unknown_payment_token");

    let done = erasures_done(&store).await;
    assert_eq!(done.len(), 1, "one answer, however often the erasure arrives: {done:?}");
    let (answer, payload) = &done[0];
    assert_eq!(
        payload,
        &ErasureDone { customer_id: erased_customer, erasure_id, service: "payments".into() }
    );
    assert_eq!((answer.source.as_str(), answer.key.clone()), ("payments", erased_customer.to_string()));
    assert_eq!(answer.subject, Some(SubjectId::from(erased_customer)));
    assert_eq!((answer.causation_id, answer.correlation_id), (Some(envelope.id), envelope.correlation_id));
    let audited: Vec<_> = store
        .audit_records(None, 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.record.action == "customer.erase")
        .map(|r| r.record.resource)
        .collect();
    assert_eq!(audited, [format!("customer/{erased_customer}")]);
    assert!(list_dead_letters(&store, None).await.expect("dead letters").is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_customer_deletes_their_cards_once_keeps_their_payments_and_answers_once() {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("payments.db"), options: SqliteOptions::default() };
    erasure_deletes_one_customers_cards_once(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_erasing_a_customer_deletes_their_cards_once() {
    let Some(database) = TempPostgres::create().await else { return };
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    erasure_deletes_one_customers_cards_once(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorisation_waiting_when_its_customer_is_erased_is_declined_not_left_hanging() {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("payments.db"), options: SqliteOptions::default() };
    // The worker is not running yet: the request waits, as it would for a slow network.
    let mut f = Fixture::on(&config).await;
    let store = f.service.store().clone();
    let customer = Uuid::now_v7();
    let token = f.token(customer).await;
    let order = Uuid::now_v7();
    let authorisation = authorise(order, customer, &token);
    f.sources.deliver("orders", &authorisation, false).await;
    assert_eq!(
        f.service.payments().payment(order).await.expect("payment").expect("recorded").status,
        "authorising"
    );

    f.sources.deliver("customers", &erased(customer).0, false).await;
    f.run_tasks();
    // An approved card: only a card that is gone explains the decline.
    let reply = reply_to(&store, &authorisation).await;
    assert_eq!((reply["ok"].clone(), reply["reason"].clone()), (json!(false), json!("card_declined")));
    let payment = f.service.payments().payment(order).await.expect("payment").expect("exists");
    assert_eq!((payment.status.as_str(), payment.reason.as_deref()), ("declined", Some("card_declined")));
    assert!(outbox(&store).await.iter().any(|m| m.name == "payments.PaymentDeclined"));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_customers_messages_are_ignored_and_a_malformed_erasure_is_dead_lettered() {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("payments.db"), options: SqliteOptions::default() };
    let f = Fixture::on(&config).await;
    let sources: Vec<_> = f.service.subscriptions().iter().map(|s| s.source).collect();
    assert_eq!(sources, ["orders", "customers"]);
    let customer = Uuid::now_v7();
    let token = f.token(customer).await;

    let updated: CustomerUpdated = serde_json::from_value(json!({
        "customer_id": customer, "name": "Ada", "version": 2,
        "address": {"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}}))
    .expect("updated");
    f.sources.deliver("customers", &message("customers", customer, &updated), false).await;
    let mut malformed = erased(customer).0;
    malformed.payload = json!({ "customer_id": customer, "erasure_id": "not an id" });
    f.sources.deliver("customers", &malformed, false).await;

    assert_eq!(f.lookup(&token).await, StatusCode::OK, "nothing was erased");
    assert!(erasures_done(f.service.store()).await.is_empty(), "and nothing answered");
    let dead = list_dead_letters(f.service.store(), None).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].consumer.as_str(), dead[0].envelope.id), ("payments__customers", malformed.id));
    assert!(dead[0].error.contains("malformed message: customers.CustomerErased"), "{}", dead[0].error);
    assert_eq!(dead[0].attempts, 1, "a malformed message is parked at once, not retried");
    f.stop().await;
}
