//! Payments' HTTP routes in-process on a real SQLite file: tokenisation answers, validation
//! problems, and proof that the card number and CVC never reach the database file.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::json;
use tessera_kernel::{ManualClock, Timestamp, UuidV7Gen};
use tessera_payments::{NetworkSettings, Payments, SimulatedNetwork};
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_testkit::http::call;
use uuid::Uuid;

/// 2026-11-26.
const TODAY: Timestamp = Timestamp::from_micros(1_795_651_200_000_000);

async fn app(data: &TempDataDir) -> (Router, Store) {
    let config = StoreConfig::Sqlite { path: data.file("payments.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_payments::migrations()).await.expect("open the store");
    let network = Arc::new(SimulatedNetwork::new(NetworkSettings::default()));
    let payments =
        Payments::new(store.clone(), network, Arc::new(UuidV7Gen), Arc::new(ManualClock::new(TODAY)));
    let (router, _) = tessera_payments::http::router().split_for_parts();
    (tessera_web::standard_layers(router.with_state(payments)), store)
}

fn card(customer: Uuid, number: &str, month: u32, year: u32) -> serde_json::Value {
    json!({"customer_id": customer, "card_number": number, "exp_month": month, "exp_year": year, "cvc": "987"})
}

#[tokio::test]
async fn a_tokenised_card_keeps_only_brand_and_last_four_and_the_file_never_holds_the_number() {
    let data = TempDataDir::new();
    let (router, store) = app(&data).await;
    let customer = Uuid::now_v7();
    let created =
        call(&router, Method::POST, "/payment-methods", Some(card(customer, "4242424242424242", 12, 2030)))
            .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["brand"], "visa");
    assert_eq!(created.body["last4"], "4242");
    let token = created.body["token"].as_str().expect("a token").to_owned();
    assert!(!token.contains("4242424242"), "the token says nothing of the number");

    let read = call(&router, Method::GET, &format!("/payment-methods/{token}"), None).await;
    assert_eq!((read.status, read.body["customer_id"].clone()), (StatusCode::OK, json!(customer)));
    let unknown = call(&router, Method::GET, "/payment-methods/tok_nothing", None).await;
    assert_eq!((unknown.status, unknown.problem_code()), (StatusCode::NOT_FOUND, "not_found"));

    drop((router, store));
    let mut scanned = 0;
    for file in std::fs::read_dir(data.path()).expect("list").filter_map(Result::ok) {
        // The WAL may be checkpointed and removed as the store closes behind us.
        let Ok(bytes) = std::fs::read(file.path()) else { continue };
        scanned += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("4242424242424242"), "{} holds the card number", file.path().display());
        assert!(!text.contains("\"987\""), "{} holds the CVC", file.path().display());
    }
    assert!(scanned > 0, "the store's files were read");
}

#[tokio::test]
async fn invalid_cards_get_422_naming_the_field() {
    let data = TempDataDir::new();
    let (router, _store) = app(&data).await;
    let customer = Uuid::now_v7();
    for (body, code, field) in [
        (card(customer, "4242424242424241", 12, 2030), "invalid_card_number", "card_number"),
        (card(customer, "42424242", 12, 2030), "invalid_card_number", "card_number"),
        (card(customer, "4242424242424242", 10, 2026), "card_expired", "exp_month"),
        (card(customer, "4242424242424242", 13, 2030), "invalid_expiry", "exp_month"),
        (
            json!({"customer_id": customer, "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "1"}),
            "invalid_cvc",
            "cvc",
        ),
        (
            json!({"customer_id": "me", "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}),
            "validation_failed",
            "customer_id",
        ),
        (
            json!({"customer_id": customer, "card_number": "4242424242424242", "exp_month": -1, "exp_year": 2030, "cvc": "123"}),
            "validation_failed",
            "exp_month",
        ),
    ] {
        let answer = call(&router, Method::POST, "/payment-methods", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.problem_code(), code, "{body}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{body}");
        assert!(!answer.body.to_string().contains("424242424242"), "a problem never echoes the number");
    }
}

#[tokio::test]
async fn payments_are_listed_by_order_and_the_query_is_checked() {
    let data = TempDataDir::new();
    let (router, _store) = app(&data).await;
    let none = call(&router, Method::GET, &format!("/payments?order_id={}", Uuid::now_v7()), None).await;
    assert_eq!((none.status, none.body.clone()), (StatusCode::OK, json!([])));
    let missing = call(&router, Method::GET, "/payments", None).await;
    assert_eq!(
        (missing.status, missing.body["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("order_id"))
    );
    let bad = call(&router, Method::GET, "/payments?order_id=42", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}
