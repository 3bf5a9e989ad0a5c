//! Tickets' attachments through support's own routes, on a real SQLite file and a real object
//! store: a folder on the disk, and an S3-compatible server when `TESSERA_TEST_S3` names one.
//! The bytes round-trip and are checked against their hash, what is stored is sealed, the
//! type comes from the bytes (never from the client), and an erasure deletes the objects and
//! their rows, once however often it arrives.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde_json::Value;
use tessera_contracts::Message;
use tessera_contracts::customers::ErasureDone;
use tessera_contracts::testing::erased;
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_runtime::Service;
use tessera_store::{PostgresOptions, SqliteOptions, Store, StoreConfig};
use tessera_support::{AttachmentStore, SupportService};
use tessera_testkit::sources::Sources;
use tessera_testkit::{TempDataDir, TempPostgres};
use tower::ServiceExt;
use uuid::Uuid;

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

struct App {
    service: SupportService,
    router: Router,
    attachments: AttachmentStore,
    _data: TempDataDir,
}

async fn app(attachments: AttachmentStore) -> App {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("support.db"), options: SqliteOptions::default() };
    app_on(&config, attachments, data).await
}

async fn app_on(config: &StoreConfig, attachments: AttachmentStore, data: TempDataDir) -> App {
    let store = Store::open(config, &tessera_support::migrations()).await.expect("support store");
    let service = SupportService::new(
        store,
        tessera_testkit::temporary_vault().await,
        attachments.clone(),
        Arc::new(UuidV7Gen),
        Arc::new(SystemClock),
    );
    let (router, _) = service.routes().split_for_parts();
    App { service, router: tessera_web::standard_layers(router), attachments, _data: data }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn problem_code(&self) -> String {
        assert_eq!(self.header(header::CONTENT_TYPE), "application/problem+json", "{}", self.json());
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.expect("read the body").to_bytes();
    Answer { status, headers, body }
}

const BOUNDARY: &str = "tessera-test-boundary-7d1f";

/// A multipart/form-data body of `parts`: (file name, the client's claimed type, bytes).
fn form(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, claimed, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: {claimed}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &App, ticket: Uuid, parts: &[(&str, &str, &[u8])]) -> Answer {
    let request = Request::post(format!("/tickets/{ticket}/attachments"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(form(parts)))
        .expect("request");
    send(&app.router, request).await
}

async fn get(app: &App, path: &str) -> Answer {
    send(&app.router, Request::builder().method(Method::GET).uri(path).body(Body::empty()).expect("request"))
        .await
}

async fn ticket_of(app: &App, customer: Uuid) -> Uuid {
    let actor = tessera_web::token::Actor::system("test");
    app.service.support().open(customer, None, "Broken mug", "See the photo", &actor).await.expect("open")
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every object in the store, with its bytes.
async fn stored(attachments: &AttachmentStore) -> Vec<(ObjectPath, Bytes)> {
    let objects = attachments.objects();
    let listed: Vec<_> = objects.list(None).try_collect().await.expect("list");
    let mut all = Vec::new();
    for meta in listed {
        let bytes = objects.get(&meta.location).await.expect("get").bytes().await.expect("bytes");
        all.push((meta.location, bytes));
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The round trip on any store: upload (the client's type ignored), list, download with the
/// hash checked, nothing plain in the store, and a swapped object refused.
async fn round_trip_on(attachments: AttachmentStore) {
    let app = app(attachments).await;
    let customer = Uuid::now_v7();
    let ticket = ticket_of(&app, customer).await;

    // A PNG the client calls text, and a text whose words are a canary.
    let png = upload(&app, ticket, &[("mug.png", "text/plain", PNG)]).await;
    assert_eq!(png.status, StatusCode::CREATED, "{}", png.json());
    let png = png.json();
    assert_eq!(png["content_type"], "image/png", "the bytes say PNG, whatever the client said");
    assert_eq!(png["sha256"], sha256_hex(PNG));
    assert_eq!(png["size"], PNG.len());
    assert_eq!(png["file_name"], "mug.png");
    let canary = format!("canary-{}", Uuid::now_v7().simple());
    let text = format!("Order note: {canary}\n");
    let note = upload(&app, ticket, &[("Notiz März.txt", "image/png", text.as_bytes())]).await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.json());
    assert_eq!(note.json()["content_type"], "text/plain; charset=utf-8");

    let list = get(&app, &format!("/tickets/{ticket}/attachments")).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<_> =
        list.json()["items"].as_array().expect("items").iter().map(|a| a["file_name"].clone()).collect();
    assert_eq!(names, ["mug.png", "Notiz März.txt"]);

    let download =
        get(&app, &format!("/tickets/{ticket}/attachments/{}", png["id"].as_str().expect("id"))).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body.as_ref(), PNG);
    assert_eq!(sha256_hex(&download.body), sha256_hex(PNG));
    assert_eq!(download.header(header::CONTENT_TYPE), "image/png");
    assert_eq!(download.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(
        download.header(header::CONTENT_DISPOSITION).starts_with("attachment;"),
        "{:?}",
        download.headers
    );
    let note_id = note.json()["id"].as_str().expect("id").to_owned();
    let note_download = get(&app, &format!("/tickets/{ticket}/attachments/{note_id}")).await;
    assert_eq!(note_download.body.as_ref(), text.as_bytes());
    assert!(
        note_download.header(header::CONTENT_DISPOSITION).contains("filename*=UTF-8''Notiz%20M%C3%A4rz.txt")
    );

    // What the store holds is sealed: neither the PNG nor the canary is in it.
    let objects = stored(&app.attachments).await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    for (key, bytes) in &objects {
        assert!(key.as_ref().starts_with(&format!("{customer}/{ticket}/")), "{key}");
        assert!(!contains(bytes, &PNG[8..]) && !contains(bytes, canary.as_bytes()), "{key} holds plaintext");
    }

    // The note's object replaced by the PNG's (both sealed for this customer, so the seal
    // opens): the hash taken at upload refuses it.
    let png_key =
        objects.iter().find(|(k, _)| k.as_ref().ends_with(png["id"].as_str().expect("id"))).expect("png");
    let note_key = objects.iter().find(|(k, _)| k.as_ref().ends_with(&note_id)).expect("note");
    app.attachments.objects().put(&note_key.0, png_key.1.clone().into()).await.expect("swap");
    let swapped = get(&app, &format!("/tickets/{ticket}/attachments/{note_id}")).await;
    assert_eq!(swapped.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(swapped.problem_code(), "internal_error");

    let unknown = get(&app, &format!("/tickets/{ticket}/attachments/{}", Uuid::now_v7())).await;
    assert_eq!((unknown.status, unknown.problem_code().as_str()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn an_attachment_round_trips_sealed_and_hash_checked_in_a_local_folder() {
    let folder = TempDataDir::new();
    let attachments =
        AttachmentStore::open(&format!("file://{}", folder.path().join("attachments").display()))
            .expect("a file:// store");
    round_trip_on(attachments).await;
    let files = std::fs::read_dir(folder.path().join("attachments")).expect("the folder").count();
    assert_eq!(files, 1, "one folder per customer, on the disk");
}

#[tokio::test]
async fn the_type_comes_from_the_bytes_and_anything_else_is_refused() {
    let app = app(AttachmentStore::in_memory()).await;
    let ticket = ticket_of(&app, Uuid::now_v7()).await;
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    for (name, claimed, bytes) in [
        ("setup.exe", "image/png", &elf[..]),
        ("page.html", "text/plain", b"<html><script>alert(1)</script></html>"),
        ("blob.bin", "application/pdf", b"\x00\x01\x02\x03\xff\xfe"),
    ] {
        let refused = upload(&app, ticket, &[(name, claimed, bytes)]).await;
        assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {}", refused.json());
        assert_eq!(refused.problem_code(), "unsupported_media_type");
    }
    assert!(stored(&app.attachments).await.is_empty(), "nothing refused is kept");

    let two = upload(&app, ticket, &[("a.txt", "text/plain", b"a"), ("b.txt", "text/plain", b"b")]).await;
    assert_eq!(
        (two.status, two.problem_code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    // One part, but not named `file`.
    let unnamed = form(&[("a.txt", "text/plain", b"a")]);
    let unnamed = String::from_utf8(unnamed).expect("text").replace("name=\"file\"", "name=\"\"");
    let unnamed = send(
        &app.router,
        Request::post(format!("/tickets/{ticket}/attachments"))
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(Body::from(unnamed))
            .expect("request"),
    )
    .await;
    assert_eq!(
        (unnamed.status, unnamed.json()["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, serde_json::json!("file"))
    );
    let empty = upload(&app, ticket, &[("a.txt", "text/plain", b"")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let too_big = upload(&app, ticket, &[("big.txt", "text/plain", &big)]).await;
    assert_eq!(
        (too_big.status, too_big.problem_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let json = send(
        &app.router,
        Request::post(format!("/tickets/{ticket}/attachments"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_ticket = upload(&app, Uuid::now_v7(), &[("a.png", "image/png", PNG)]).await;
    assert_eq!(no_ticket.status, StatusCode::NOT_FOUND);
    assert!(app.service.support().attachments(ticket).await.expect("rows").is_empty());
    assert!(stored(&app.attachments).await.is_empty());
}

/// The erasure on any store: the erased customer's objects (one without a row too) and rows
/// go, another customer's stay, and one `ErasureDone` answers a message delivered twice.
async fn erasure_on(app: App) {
    let service = &app.service;
    let sources = Sources::start(
        service.name(),
        service.store(),
        service.subscriptions().into_iter().map(|s| (s.source, s.handler)).collect(),
    )
    .await;
    let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
    let gone_ticket = ticket_of(&app, gone).await;
    let kept_ticket = ticket_of(&app, kept).await;
    for ticket in [gone_ticket, gone_ticket, kept_ticket] {
        assert_eq!(upload(&app, ticket, &[("mug.png", "image/png", PNG)]).await.status, StatusCode::CREATED);
    }
    // What a crash between the object and its row leaves.
    let orphan = ObjectPath::from(format!("{gone}/{gone_ticket}/{}", Uuid::now_v7()));
    app.attachments.objects().put(&orphan, Bytes::from_static(b"v1.sealed").into()).await.expect("orphan");
    assert_eq!(stored(&app.attachments).await.len(), 4);

    let (envelope, erasure_id) = erased(gone);
    sources.deliver("customers", &envelope, false).await;
    sources.deliver("customers", &envelope, true).await;

    let left: Vec<_> = stored(&app.attachments).await.into_iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&kept.to_string()), "only the other customer's object stays: {left:?}");
    assert!(service.support().attachments(gone_ticket).await.expect("rows").is_empty(), "the rows are gone");
    let kept_rows = service.support().attachments(kept_ticket).await.expect("rows");
    assert_eq!(kept_rows.len(), 1);
    let still = get(&app, &format!("/tickets/{kept_ticket}/attachments/{}", kept_rows[0].id)).await;
    assert_eq!(still.body.as_ref(), PNG);

    let done: Vec<ErasureDone> = tessera_testkit::sources::outbox(service.store())
        .await
        .into_iter()
        .filter(|m| m.name == ErasureDone::NAME)
        .map(|m| serde_json::from_value(m.payload).expect("ErasureDone"))
        .collect();
    assert_eq!(done, [ErasureDone { customer_id: gone, erasure_id, service: "support".into() }]);
    sources.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_deletes_the_customers_objects_and_rows_once() {
    let folder = TempDataDir::new();
    erasure_on(app(AttachmentStore::local(&folder.path().join("attachments")).expect("folder")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_erasure_deletes_the_customers_objects_and_rows_once() {
    let Some(database) = TempPostgres::create().await else { return };
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    let folder = TempDataDir::new();
    let attachments = AttachmentStore::local(&folder.path().join("attachments")).expect("folder");
    erasure_on(app_on(&config, attachments, TempDataDir::new()).await).await;
}

/// An S3 bucket on the server `TESSERA_TEST_S3` names (moto's, in CI), made for this test.
fn s3_bucket(endpoint: &str) -> AttachmentStore {
    let bucket = format!("tessera-test-{}", Uuid::now_v7().simple());
    // The bucket is made with a plain PUT: moto's server takes it unsigned.
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).expect("reach the S3 server");
    use std::io::{Read, Write};
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("create the bucket");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the server's answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "cannot create bucket {bucket}: {answer}");
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("an S3 client");
    AttachmentStore::new(Arc::new(s3), &format!("s3://{bucket}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_an_attachment_round_trips_sealed_and_an_erasure_deletes_it() {
    let Some(endpoint) = tessera_testkit::server_url("TESSERA_TEST_S3", "S3 attachments") else { return };
    round_trip_on(s3_bucket(&endpoint)).await;
    erasure_on(app(s3_bucket(&endpoint)).await).await;
}

#[test]
fn the_store_is_named_by_a_file_or_s3_url_and_nothing_else() {
    let folder = TempDataDir::new();
    let local = format!("file://{}", folder.path().join("a").display());
    assert!(AttachmentStore::open(&local).is_ok());
    assert!(folder.path().join("a").is_dir(), "the folder is made");
    assert!(AttachmentStore::open("s3://tessera-attachments").is_ok(), "configured by AWS_* at use");
    for refused in ["file://relative/path", "ftp://host/x", "/just/a/path", ""] {
        assert!(AttachmentStore::open(refused).is_err(), "{refused}");
    }
}
