//! Customers' HTTP routes, called in-process on a real SQLite store: registration, the
//! profile under If-Match, the credential check, every validation answer, and what reaches the
//! database file (a hash, never the password) and the outbox (the events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_customers::Customers;
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_store::{SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_testkit::http::{Answer, call, call_raw};

const PASSWORD: &str = "Tr0ub4dor&3-horse-battery";

struct App {
    router: Router,
    store: Store,
    openapi: utoipa::openapi::OpenApi,
    data: TempDataDir,
    vault: tessera_vault::Vault,
}

/// The tests keep the vault's tables in the customers store (in production it has its own).
fn with_vault() -> Vec<tessera_store::MigrationSet> {
    let mut migrations = tessera_customers::migrations();
    migrations.push(tessera_vault::MIGRATIONS);
    migrations
}

async fn vault(store: &Store) -> tessera_vault::Vault {
    let master = tessera_vault::MasterKey::generate().expect("a master key");
    tessera_vault::Vault::open(store.clone(), master, Vec::new()).await.expect("open the vault")
}

async fn app() -> App {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("customers.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &with_vault()).await.expect("open the store");
    let vault = vault(&store).await;
    let customers =
        Customers::new(store.clone(), Arc::new(vault.clone()), Arc::new(UuidV7Gen), Arc::new(SystemClock));
    let (router, openapi) = tessera_customers::http::router().split_for_parts();
    App { router: tessera_web::standard_layers(router.with_state(customers)), store, openapi, data, vault }
}

/// A sealed field of an event, opened with the customer's key.
async fn open(vault: &tessera_vault::Vault, customer: &str, field: &Value) -> String {
    let sealed: tessera_vault::Sealed =
        field.as_str().expect("a sealed string").parse().expect("sealed text");
    match vault.decrypt_str(customer, &sealed).await.expect("decrypt") {
        tessera_vault::Decrypted::Plain(text) => text,
        tessera_vault::Decrypted::Erased => panic!("{customer} is erased"),
    }
}

fn ada(email: &str) -> Value {
    json!({
        "email": email,
        "name": "Ada Lovelace",
        "password": PASSWORD,
        "address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"}
    })
}

/// The body with one field (a JSON pointer) replaced.
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    *body.pointer_mut(pointer).expect("the field exists") = value;
    body
}

async fn register(app: &App, email: &str) -> String {
    let created = call(&app.router, Method::POST, "/customers", Some(ada(email))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().expect("an id").to_owned()
}

async fn outbox(store: &Store) -> Vec<(String, String, Value)> {
    let rows = store
        .query(Statement::new(
            "SELECT o.name, o.key, e.envelope FROM tessera_outbox o
             JOIN tessera_outbox_envelopes e ON e.position = o.position ORDER BY o.position",
        ))
        .await
        .expect("read the outbox");
    rows.iter()
        .map(|row| {
            let envelope = serde_json::from_str(row.text("envelope").expect("envelope")).expect("json");
            (row.text("name").expect("name").to_owned(), row.text("key").expect("key").to_owned(), envelope)
        })
        .collect()
}

async fn credentials(app: &App, email: &str, password: &str) -> Answer {
    call(
        &app.router,
        Method::POST,
        "/customers/credentials",
        Some(json!({"email": email, "password": password})),
    )
    .await
}

#[tokio::test]
async fn a_registered_customer_is_served_with_its_etag_and_announced_in_the_outbox() {
    let app = app().await;
    let created = call(&app.router, Method::POST, "/customers", Some(ada("  Ada@Example.com "))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(created.body, json!({"id": id}), "registration answers with the id only");

    let profile = call(&app.router, Method::GET, &format!("/customers/{id}"), None).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.header("etag"), Some("\"1\""));
    let created_at = profile.body["created_at"].as_str().expect("created_at").to_owned();
    assert!(created_at.ends_with('Z'), "{created_at}");
    assert_eq!(
        profile.body,
        json!({"id": id, "email": "Ada@Example.com", "name": "Ada Lovelace",
               "address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
               "created_at": created_at, "updated_at": created_at, "version": 1})
    );

    let events = outbox(&app.store).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (name, key, envelope) = &events[0];
    assert_eq!((name.as_str(), key.as_str()), ("customers.CustomerRegistered", id.as_str()));
    assert_eq!(envelope["subject"], id, "the event is about the customer");
    assert_eq!(envelope["source"], "customers");
    // Every personal field travels sealed with the customer's own key.
    let payload = &envelope["payload"];
    assert_eq!((payload["customer_id"].as_str(), payload["version"].as_i64()), (Some(id.as_str()), Some(1)));
    let text = payload.to_string();
    for plain in ["Ada@Example.com", "ada@example.com", "Ada Lovelace", "St James", "London", "SW1Y"] {
        assert!(!text.contains(plain), "{plain} is in clear in the event: {text}");
    }
    for (field, plain) in [
        (&payload["email"], "Ada@Example.com"),
        (&payload["name"], "Ada Lovelace"),
        (&payload["address"]["line1"], "12 St James's Square"),
        (&payload["address"]["city"], "London"),
        (&payload["address"]["postal_code"], "SW1Y 4JH"),
        (&payload["address"]["country"], "GB"),
    ] {
        assert_eq!(open(&app.vault, &id, field).await, plain);
    }
    assert!(!envelope.to_string().contains("argon2"), "the event carries no password hash");

    let unknown = call(&app.router, Method::GET, &format!("/customers/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!((unknown.status, unknown.problem_code()), (StatusCode::NOT_FOUND, "not_found"));
    let malformed = call(&app.router, Method::GET, "/customers/not-an-id", None).await;
    assert_eq!((malformed.status, malformed.problem_code()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn a_second_registration_with_the_same_email_in_another_case_is_409_duplicate_email() {
    let app = app().await;
    register(&app, "grace@example.com").await;
    let duplicate = call(&app.router, Method::POST, "/customers", Some(ada(" GRACE@Example.COM"))).await;
    assert_eq!((duplicate.status, duplicate.problem_code()), (StatusCode::CONFLICT, "duplicate_email"));
    assert!(!duplicate.body.to_string().contains(PASSWORD));
    assert_eq!(outbox(&app.store).await.len(), 1, "the refused registration announced nothing");
    register(&app, "grace.hopper@example.com").await;
}

#[tokio::test]
async fn invalid_registrations_get_422_naming_the_field() {
    let app = app().await;
    let base = ada("linus@example.com");
    let cases = [
        (with(base.clone(), "/email", json!("linus@example")), "email"),
        (with(base.clone(), "/email", json!("linus example.com")), "email"),
        (with(base.clone(), "/email", json!(format!("{}@example.com", "l".repeat(250)))), "email"),
        (with(base.clone(), "/email", json!(42)), "email"),
        (with(base.clone(), "/name", json!("  ")), "name"),
        (with(base.clone(), "/name", json!("n".repeat(201))), "name"),
        (with(base.clone(), "/password", json!("short")), "password"),
        (with(base.clone(), "/password", json!("p".repeat(129))), "password"),
        (with(base.clone(), "/address/line1", json!("")), "address.line1"),
        (with(base.clone(), "/address/city", json!("c".repeat(101))), "address.city"),
        (with(base.clone(), "/address/postal_code", json!("9".repeat(21))), "address.postal_code"),
        (with(base.clone(), "/address/country", json!("gb")), "address.country"),
        (with(base.clone(), "/address/country", json!("UK")), "address.country"),
        (with(base.clone(), "/address/country", json!("GBR")), "address.country"),
        (
            with(base.clone(), "/address", json!({"line1": "x", "city": "y", "postal_code": "1"})),
            "address.country",
        ),
        (json!({"email": "linus@example.com", "name": "Linus", "password": PASSWORD}), "address"),
        (
            with(
                base.clone(),
                "/address",
                json!({"line1": "x", "city": "y", "postal_code": "1", "country": "FI", "floor": 3}),
            ),
            "",
        ),
        (with(base.clone(), "/name", json!(null)), "name"),
    ];
    for (body, field) in cases {
        let answer = call(&app.router, Method::POST, "/customers", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {}", answer.body);
        assert_eq!(answer.problem_code(), "validation_failed");
        if !field.is_empty() {
            assert_eq!(answer.body["errors"][0]["field"], field, "{body} → {}", answer.body);
        }
        assert!(!answer.body.to_string().contains(PASSWORD), "a problem never echoes the password");
    }

    let mut unknown = base.clone();
    unknown["admin"] = json!(true);
    let answer = call(&app.router, Method::POST, "/customers", Some(unknown)).await;
    assert_eq!(
        (answer.status, answer.problem_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );

    let everything = json!({"email": "x", "name": "", "password": "p",
                            "address": {"line1": "", "city": "", "postal_code": "", "country": "de"}});
    let answer = call(&app.router, Method::POST, "/customers", Some(everything)).await;
    let fields: Vec<&str> = answer.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "email",
            "name",
            "password",
            "address.line1",
            "address.city",
            "address.postal_code",
            "address.country"
        ]
    );

    let garbage = call_raw(&app.router, Method::POST, "/customers", Some(b"{\"email\":".to_vec()), &[]).await;
    assert_eq!((garbage.status, garbage.problem_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert!(outbox(&app.store).await.is_empty(), "nothing invalid was registered");
}

#[tokio::test]
async fn credentials_match_only_the_right_password_and_both_failures_get_the_same_401() {
    let app = app().await;
    let id = register(&app, "Hedy@Example.com").await;

    let right = credentials(&app, "hedy@example.COM", PASSWORD).await;
    assert_eq!((right.status, right.body.clone()), (StatusCode::OK, json!({"customer_id": id})));

    let wrong_password = credentials(&app, "hedy@example.com", "Tr0ub4dor&3-horse-batterY").await;
    let unknown_email = credentials(&app, "nobody@example.com", PASSWORD).await;
    let malformed_email = credentials(&app, "nobody", PASSWORD).await;
    let short_password = credentials(&app, "hedy@example.com", "x").await;
    assert_eq!(
        (wrong_password.status, wrong_password.problem_code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    for other in [&unknown_email, &malformed_email, &short_password] {
        assert_eq!(other.status, wrong_password.status);
        assert_eq!(other.body, wrong_password.body, "the answers cannot be told apart");
    }
    assert!(!wrong_password.body.to_string().contains("Tr0ub4dor"));

    let missing =
        call(&app.router, Method::POST, "/customers/credentials", Some(json!({"email": "a@b.co"}))).await;
    assert_eq!(
        (missing.status, missing.body["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("password"))
    );
}

/// Without the dummy verification an unknown email would be refused about a hundred times
/// faster than a wrong password; with it the two take one argon2 verification each. The bound
/// is loose so a busy machine cannot fail it.
#[tokio::test]
async fn an_unknown_email_takes_as_long_to_refuse_as_a_wrong_password() {
    let app = app().await;
    register(&app, "katherine@example.com").await;
    let fastest = |durations: Vec<Duration>| durations.into_iter().min().expect("measured");
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(credentials(&app, "katherine@example.com", "not the password").await.status, 401);
        wrong.push(start.elapsed());
        let start = Instant::now();
        assert_eq!(credentials(&app, "nobody@example.com", "not the password").await.status, 401);
        unknown.push(start.elapsed());
    }
    let (wrong, unknown) = (fastest(wrong), fastest(unknown));
    assert!(unknown * 4 >= wrong, "unknown email {unknown:?} vs wrong password {wrong:?}");
}

/// The same customers routes on a fresh PostgreSQL database (the distributed backend), or
/// `None` after a loud SKIPPED line when no server is configured.
async fn postgres_app() -> Option<(App, tessera_testkit::TempPostgres)> {
    let database = tessera_testkit::TempPostgres::create().await?;
    let config = StoreConfig::Postgres {
        url: database.url().to_owned(),
        options: tessera_store::PostgresOptions::default(),
    };
    let store = Store::open(&config, &with_vault()).await.expect("open the store");
    let vault = vault(&store).await;
    let customers =
        Customers::new(store.clone(), Arc::new(vault.clone()), Arc::new(UuidV7Gen), Arc::new(SystemClock));
    let (router, openapi) = tessera_customers::http::router().split_for_parts();
    let app = App {
        router: tessera_web::standard_layers(router.with_state(customers)),
        store,
        openapi,
        data: TempDataDir::new(),
        vault,
    };
    Some((app, database))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_racing_writers_with_one_etag_get_one_200_and_one_412() {
    let Some((app, _database)) = postgres_app().await else { return };
    let id = register(&app, "grace@example.com").await;
    let path = format!("/customers/{id}");
    let body = json!({"name": "Grace Hopper"}).to_string().into_bytes();
    let (a, b) = tokio::join!(
        call_raw(&app.router, Method::PATCH, &path, Some(body.clone()), &[("if-match", "\"1\"")]),
        call_raw(&app.router, Method::PATCH, &path, Some(body.clone()), &[("if-match", "\"1\"")]),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{} / {}", a.body, b.body);
    let duplicate = call(&app.router, Method::POST, "/customers", Some(ada("GRACE@example.com"))).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "unique email on PostgreSQL too");
}

#[tokio::test]
async fn updates_need_the_current_etag_and_two_racing_writers_get_one_200_and_one_412() {
    let app = app().await;
    let id = register(&app, "margaret@example.com").await;
    let path = format!("/customers/{id}");
    let patch = json!({"name": "Margaret Hamilton"});
    let missing = call(&app.router, Method::PATCH, &path, Some(patch.clone())).await;
    assert_eq!(
        (missing.status, missing.problem_code()),
        (StatusCode::PRECONDITION_REQUIRED, "precondition_required")
    );

    let body = patch.to_string().into_bytes();
    let (a, b) = tokio::join!(
        call_raw(&app.router, Method::PATCH, &path, Some(body.clone()), &[("if-match", "\"1\"")]),
        call_raw(&app.router, Method::PATCH, &path, Some(body.clone()), &[("if-match", "\"1\"")]),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{} / {}", a.body, b.body);
    let (winner, loser) = if a.status == StatusCode::OK { (&a, &b) } else { (&b, &a) };
    assert_eq!(loser.problem_code(), "precondition_failed");
    assert_eq!(winner.header("etag"), Some("\"2\""));
    assert_eq!(
        (winner.body["name"].clone(), winner.body["version"].clone()),
        (json!("Margaret Hamilton"), json!(2))
    );
    assert_eq!(winner.body["address"]["city"], "London", "an absent field keeps its value");

    let stale =
        call_raw(&app.router, Method::PATCH, &path, Some(body.clone()), &[("if-match", "\"1\"")]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);

    let moved = json!({"address": {"line1": " 1 Main Street ", "city": "Boston", "postal_code": "02108", "country": "US"}});
    let answer = call_raw(
        &app.router,
        Method::PATCH,
        &path,
        Some(moved.to_string().into_bytes()),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("etag"), Some("\"3\""));
    let profile = call(&app.router, Method::GET, &path, None).await;
    assert_eq!(profile.header("etag"), Some("\"3\""));
    assert_eq!(
        (profile.body["name"].clone(), profile.body["address"].clone()),
        (
            json!("Margaret Hamilton"),
            json!({"line1": "1 Main Street", "city": "Boston", "postal_code": "02108", "country": "US"})
        )
    );

    for (body, field) in [
        (
            json!({"address": {"line1": "x", "city": "y", "postal_code": "1", "country": "us"}}),
            "address.country",
        ),
        (json!({"name": ""}), "name"),
        (json!({"email": "new@example.com"}), ""),
        (json!({"password": "new password"}), ""),
    ] {
        let answer = call_raw(
            &app.router,
            Method::PATCH,
            &path,
            Some(body.to_string().into_bytes()),
            &[("if-match", "\"3\"")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {}", answer.body);
        if !field.is_empty() {
            assert_eq!(answer.body["errors"][0]["field"], field);
        }
    }
    let nobody = call_raw(
        &app.router,
        Method::PATCH,
        &format!("/customers/{}", uuid::Uuid::now_v7()),
        Some(body.clone()),
        &[("if-match", "*")],
    )
    .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    let events: Vec<(String, Value)> = outbox(&app.store)
        .await
        .into_iter()
        .map(|(name, _, envelope)| (name, envelope["payload"].clone()))
        .collect();
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["customers.CustomerRegistered", "customers.CustomerUpdated", "customers.CustomerUpdated"],
        "the losing writer announced nothing"
    );
    assert_eq!(events[2].1["version"], 3);
    assert_eq!(open(&app.vault, &id, &events[2].1["address"]["city"]).await, "Boston");
}

#[tokio::test]
async fn the_password_is_stored_only_as_an_argon2id_hash_and_never_reaches_the_files() {
    let app = app().await;
    let id = register(&app, "barbara@example.com").await;
    let rows = app
        .store
        .query(Statement::new("SELECT password_hash FROM customers WHERE id = $1").bind(id.as_str()))
        .await
        .expect("read the hash");
    let hash = rows[0].text("password_hash").expect("a hash").to_owned();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    assert_eq!(credentials(&app, "barbara@example.com", PASSWORD).await.status, StatusCode::OK);

    let App { router, store, data, .. } = app;
    drop((router, store));
    let mut scanned = 0;
    for file in std::fs::read_dir(data.path()).expect("list").filter_map(Result::ok) {
        // The WAL may be checkpointed and removed as the store closes behind us.
        let Ok(bytes) = std::fs::read(file.path()) else { continue };
        scanned += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD), "{} holds the password", file.path().display());
    }
    assert!(scanned > 0, "the store's files were read");
}

#[test]
fn the_openapi_document_describes_every_route() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = runtime.block_on(app());
    let document = serde_json::to_value(&app.openapi).expect("serialises");
    let paths = document["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/customers", &["post"][..]),
        ("/customers/{id}", &["get", "patch"][..]),
        ("/customers/credentials", &["post"][..]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} is documented");
        }
    }
    for schema in ["NewCustomer", "CustomerView", "CustomerPatch", "Credentials", "Address", "Problem"] {
        assert!(document["components"]["schemas"][schema].is_object(), "schema {schema} is documented");
    }
}

/// Every file of the store (the database, its WAL and shared memory), as bytes.
fn store_bytes(app: &App) -> Vec<u8> {
    ["customers.db", "customers.db-wal", "customers.db-shm"]
        .iter()
        .filter_map(|name| std::fs::read(app.data.file(name)).ok())
        .flatten()
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn personal_data_is_never_at_rest_in_clear_and_an_erasure_leaves_nothing_that_opens() {
    let app = app().await;
    let canary = "Zqcanary";
    let body = json!({
        "email": format!("{canary}@example.com"),
        "name": format!("{canary} Name"),
        "password": PASSWORD,
        "address": {"line1": format!("1 {canary} Road"), "city": format!("{canary}ville"), "postal_code": "ZQ1 1QZ", "country": "GB"}
    });
    let created = call(&app.router, Method::POST, "/customers", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let other = register(&app, "bystander@example.com").await;
    let patch = call_raw(
        &app.router,
        Method::PATCH,
        &format!("/customers/{id}"),
        Some(json!({"name": format!("{canary} Renamed")}).to_string().into_bytes()),
        &[("content-type", "application/json"), ("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let signed_in = call(
        &app.router,
        Method::POST,
        "/customers/credentials",
        Some(json!({"email": format!("{}@EXAMPLE.com", canary.to_uppercase()), "password": PASSWORD})),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK, "the blind index finds the email case-insensitively");
    let bytes = store_bytes(&app);
    assert!(!bytes.is_empty());
    for plain in [canary, &canary.to_lowercase(), "ZQ1 1QZ"] {
        assert!(!contains(&bytes, plain), "{plain} is in clear in the store's files");
    }

    let erased = call(&app.router, Method::DELETE, &format!("/customers/{id}"), None).await;
    assert_eq!(erased.status, StatusCode::ACCEPTED, "{}", erased.body);
    let erasure_id = erased.body["erasure_id"].as_str().expect("erasure_id").to_owned();
    let again = call(&app.router, Method::DELETE, &format!("/customers/{id}"), None).await;
    assert_eq!(
        (again.status, again.body["erasure_id"].as_str()),
        (StatusCode::ACCEPTED, Some(erasure_id.as_str()))
    );
    assert_eq!(
        call(&app.router, Method::GET, &format!("/customers/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let progress = call(&app.router, Method::GET, &format!("/customers/{id}/erasure"), None).await;
    assert_eq!(progress.status, StatusCode::OK);
    assert_eq!(progress.body["complete"], false, "the other services have not reported: {}", progress.body);
    assert_eq!(progress.body["status"], "pending");
    assert_eq!(progress.body["services"]["orders"], "pending");
    assert!(
        progress.body["services"]["customers"] == "done" && progress.body["done_at"]["customers"].is_string(),
        "customers itself is done: {}",
        progress.body
    );
    // The events that went out before the erasure no longer open.
    for (_, _, envelope) in outbox(&app.store).await {
        if envelope["name"] == "customers.CustomerRegistered" {
            let sealed: tessera_vault::Sealed =
                envelope["payload"]["name"].as_str().expect("name").parse().expect("sealed");
            assert!(app.vault.decrypt_str(&id, &sealed).await.expect("decrypt").is_erased());
        }
    }
    let announced = outbox(&app.store).await;
    assert!(
        announced.iter().any(
            |(name, _, e)| name == "customers.CustomerErased" && e["payload"]["erasure_id"] == erasure_id
        ),
        "the erasure is announced"
    );
    // The email is free again, and the bystander is untouched.
    let signed_in = call(
        &app.router,
        Method::POST,
        "/customers/credentials",
        Some(json!({"email": format!("{canary}@example.com"), "password": PASSWORD})),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::UNAUTHORIZED);
    let bystander = call(&app.router, Method::GET, &format!("/customers/{other}"), None).await;
    assert_eq!((bystander.status, bystander.body["name"].as_str()), (StatusCode::OK, Some("Ada Lovelace")));
    assert_eq!(
        call(&app.router, Method::DELETE, &format!("/customers/{}", uuid::Uuid::now_v7()), None).await.status,
        StatusCode::NOT_FOUND
    );
}
