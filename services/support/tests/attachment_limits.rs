//! Attachments as streams, and the limits on them: a file larger than a sealed chunk round
//! trips and is kept as a sealed stream whose chunks cannot be reordered or cut; an upload
//! past 10 MiB is stopped midway leaving nothing behind; quotas per ticket and per customer
//! hold even under concurrent uploads; a full house answers 503 with `Retry-After`; files
//! sealed whole before streams existed are still read; and shredding the customer's key
//! leaves their files unreadable.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde_json::Value;
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_runtime::Service;
use tessera_store::{PostgresOptions, SqliteOptions, Statement, Store, StoreConfig};
use tessera_support::{AttachmentLimits, AttachmentStore, SupportService};
use tessera_testkit::{TempDataDir, TempPostgres};
use tessera_vault::{STREAM_CHUNK_LEN, STREAM_HEADER_LEN, Sealer};
use tower::ServiceExt;
use uuid::Uuid;

const BOUNDARY: &str = "tessera-limits-boundary-0c4e";
/// What AES-GCM adds to each sealed chunk: a nonce and a tag.
const CHUNK_OVERHEAD: usize = 12 + 16;
const MIB: usize = 1024 * 1024;

struct App {
    service: SupportService,
    router: Router,
    attachments: AttachmentStore,
    vault: Arc<dyn Sealer>,
    folder: TempDataDir,
}

async fn app(limits: AttachmentLimits) -> App {
    let folder = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: folder.file("support.db"), options: SqliteOptions::default() };
    app_on(&config, limits, folder).await
}

async fn app_on(config: &StoreConfig, limits: AttachmentLimits, folder: TempDataDir) -> App {
    let store = Store::open(config, &tessera_support::migrations()).await.expect("support store");
    let vault = tessera_testkit::temporary_vault().await;
    let attachments = AttachmentStore::local(&folder.path().join("attachments")).expect("a folder");
    let service = SupportService::new(
        store,
        vault.clone(),
        attachments.clone(),
        Arc::new(UuidV7Gen),
        Arc::new(SystemClock),
    )
    .with_attachment_limits(limits);
    let (router, _) = service.routes().split_for_parts();
    App { service, router: tessera_web::standard_layers(router), attachments, vault, folder }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
}

impl Answer {
    fn bytes(&self) -> &[u8] {
        self.body.as_ref().map(|b| b.as_ref()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.bytes()).unwrap_or(Value::Null)
    }

    fn problem(&self) -> (StatusCode, String) {
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/problem+json"), "{} {}", self.status, self.json());
        (self.status, self.json()["code"].as_str().unwrap_or_default().to_owned())
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string());
    Answer { status, headers, body }
}

fn form(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// An upload whose body arrives in pieces of `piece` bytes, saying its length or not.
fn upload_request(ticket: Uuid, body: Vec<u8>, piece: usize, declared: bool) -> Request<Body> {
    let mut request = Request::post(format!("/tickets/{ticket}/attachments"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"));
    if declared {
        request = request.header(header::CONTENT_LENGTH, body.len());
    }
    let pieces: Vec<Result<Bytes, Infallible>> =
        body.chunks(piece).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    request.body(Body::from_stream(futures_util::stream::iter(pieces))).expect("request")
}

async fn upload(app: &App, ticket: Uuid, name: &str, bytes: &[u8]) -> Answer {
    send(&app.router, upload_request(ticket, form(name, bytes), 16 * 1024, true)).await
}

async fn download(app: &App, ticket: Uuid, id: &str) -> Answer {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/tickets/{ticket}/attachments/{id}"))
        .body(Body::empty())
        .expect("request");
    send(&app.router, request).await
}

async fn ticket_of(app: &App, customer: Uuid) -> Uuid {
    let actor = tessera_web::token::Actor::system("test");
    app.service.support().open(customer, None, "Broken mug", "See the photo", &actor).await.expect("open")
}

/// Text of `len` bytes, different at every offset (so a moved chunk shows).
fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 \n"[(i * 7 + i / 38) % 38]).collect()
}

/// Every file under the attachments folder (multipart uploads' staging files included).
fn files_on_disk(app: &App) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![app.folder.path().join("attachments")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() { folders.push(path) } else { found.push(path) }
        }
    }
    found
}

async fn objects(app: &App) -> Vec<(ObjectPath, Bytes)> {
    let store = app.attachments.objects();
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    let mut all = Vec::new();
    for meta in listed {
        all.push((
            meta.location.clone(),
            store.get(&meta.location).await.expect("get").bytes().await.expect("bytes"),
        ));
    }
    all
}

async fn count(store: &Store, sql: &str) -> i64 {
    let rows = store.query(Statement::new(sql)).await.expect("query");
    rows.first().and_then(|row| row.int("n").ok()).unwrap_or_default()
}

#[tokio::test]
async fn a_file_of_many_chunks_round_trips_as_a_sealed_stream_whose_chunks_cannot_move() {
    let app = app(AttachmentLimits::default()).await;
    let ticket = ticket_of(&app, Uuid::now_v7()).await;
    let file = text(3 * STREAM_CHUNK_LEN + 5);
    // Pieces smaller than a chunk and not dividing it: chunks are cut across pieces.
    let uploaded = send(&app.router, upload_request(ticket, form("log.txt", &file), 1000, true)).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.json());
    let id = uploaded.json()["id"].as_str().expect("id").to_owned();
    let downloaded = download(&app, ticket, &id).await;
    assert_eq!(downloaded.status, StatusCode::OK);
    assert_eq!(downloaded.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()), Some("196613"));
    assert!(downloaded.bytes() == file.as_slice(), "the file round trips");

    // The object: a header, then four sealed chunks (three full, the last of 5 bytes).
    let stored = objects(&app).await;
    assert_eq!(stored.len(), 1);
    let (key, sealed) = &stored[0];
    assert!(sealed.starts_with(b"v2."), "a sealed stream");
    assert_eq!(sealed.len(), STREAM_HEADER_LEN + file.len() + 4 * CHUNK_OVERHEAD);
    assert!(!sealed.windows(64).any(|w| file.windows(64).next() == Some(w)), "nothing plain is kept");
    let frame = STREAM_CHUNK_LEN + CHUNK_OVERHEAD;
    let (header, body) = sealed.split_at(STREAM_HEADER_LEN);
    let frames: Vec<&[u8]> = body.chunks(frame).collect();
    assert_eq!(frames.len(), 4);

    let put = async |bytes: Vec<u8>| {
        app.attachments.objects().put(key, bytes.into()).await.expect("put");
    };
    // The first chunk moved: refused before anything is answered.
    put([header, frames[1], frames[0], frames[2], frames[3]].concat()).await;
    let answer = download(&app, ticket, &id).await;
    assert_eq!(answer.problem(), (StatusCode::INTERNAL_SERVER_ERROR, "internal_error".to_owned()));
    // A later chunk moved, dropped, or the stream cut after a whole chunk: the body breaks off.
    for broken in [
        [header, frames[0], frames[2], frames[1], frames[3]].concat(),
        [header, frames[0], frames[1], frames[3]].concat(),
        [header, frames[0], frames[1], frames[2]].concat(),
        sealed[..sealed.len() - 1].to_vec(),
    ] {
        put(broken).await;
        let answer = download(&app, ticket, &id).await;
        assert!(answer.body.is_err(), "a broken stream is not served whole ({} bytes)", answer.bytes().len());
    }
    put(sealed.to_vec()).await;
    assert!(download(&app, ticket, &id).await.bytes() == file.as_slice(), "intact again, read again");
}

#[tokio::test]
async fn an_upload_past_10_mib_is_stopped_midway_and_leaves_no_object_row_or_reservation() {
    let app = app(AttachmentLimits::default()).await;
    let ticket = ticket_of(&app, Uuid::now_v7()).await;
    let big = text(10 * MIB + 1);
    for declared in [false, true] {
        let answer =
            send(&app.router, upload_request(ticket, form("big.txt", &big), 64 * 1024, declared)).await;
        assert_eq!(answer.problem(), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".to_owned()));
    }
    // The cleanup of a refused upload is awaited before the answer: nothing is left now.
    assert_eq!(files_on_disk(&app), Vec::<std::path::PathBuf>::new(), "no object, no staged part");
    let store = app.service.store();
    assert_eq!(
        count(store, "SELECT count(*) AS n FROM ticket_attachments").await,
        0,
        "no row, not even pending"
    );
    assert_eq!(
        count(store, "SELECT coalesce(sum(bytes), 0) + coalesce(sum(files), 0) AS n FROM attachment_usage")
            .await,
        0,
        "the reservations were released"
    );
    // A file of exactly 10 MiB goes through.
    let answer = upload(&app, ticket, "ok.txt", &big[..10 * MIB]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json());
}

#[tokio::test]
async fn quotas_per_ticket_and_per_customer_refuse_with_409_and_keep_nothing() {
    let limits = AttachmentLimits {
        files_per_ticket: 2,
        bytes_per_ticket: 10_000,
        bytes_per_customer: 15_000,
        ..AttachmentLimits::default()
    };
    let app = app(limits).await;
    let customer = Uuid::now_v7();
    let (first, second) = (ticket_of(&app, customer).await, ticket_of(&app, customer).await);
    let created = |answer: Answer| assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json());
    created(upload(&app, first, "a.txt", &text(4_000)).await);
    created(upload(&app, first, "b.txt", &text(4_000)).await);
    let third = upload(&app, first, "c.txt", &text(10)).await;
    assert_eq!(third.problem(), (StatusCode::CONFLICT, "ticket_file_quota_exceeded".to_owned()));
    assert_eq!(third.json()["detail"], "a ticket holds at most 2 files");

    created(upload(&app, second, "d.txt", &text(4_000)).await);
    let over_ticket = upload(&app, second, "e.txt", &text(7_000)).await;
    assert_eq!(over_ticket.problem(), (StatusCode::CONFLICT, "ticket_byte_quota_exceeded".to_owned()));
    // 12,000 bytes kept: 3,500 more (and the form around them) are over the customer's 15,000.
    let over_customer = upload(&app, second, "f.txt", &text(3_500)).await;
    assert_eq!(over_customer.problem(), (StatusCode::CONFLICT, "customer_byte_quota_exceeded".to_owned()));
    // The reservation shrank to each file's size: 2,000 bytes still fit.
    created(upload(&app, second, "g.txt", &text(2_000)).await);

    // Another customer has quotas of their own.
    let other = ticket_of(&app, Uuid::now_v7()).await;
    created(upload(&app, other, "h.txt", &text(4_000)).await);

    assert_eq!(objects(&app).await.len(), 5, "only what was accepted is kept");
    let store = app.service.store();
    assert_eq!(count(store, "SELECT count(*) AS n FROM ticket_attachments WHERE state = 'stored'").await, 5);
    assert_eq!(count(store, "SELECT count(*) AS n FROM ticket_attachments WHERE state <> 'stored'").await, 0);
    let usage = format!("SELECT bytes AS n FROM attachment_usage WHERE scope = 'customer:{customer}'");
    assert_eq!(count(store, &usage).await, 14_000, "the customer's count is their files' bytes");
}

/// Uploads `uploads` files at once to `tickets` (round robin) and answers their statuses.
async fn at_once(app: &App, tickets: &[Uuid], uploads: usize, size: usize) -> Vec<StatusCode> {
    let mut running = Vec::new();
    for n in 0..uploads {
        let (router, ticket) = (app.router.clone(), tickets[n % tickets.len()]);
        let body = form(&format!("{n}.txt"), &text(size));
        // Pieces small enough that the uploads interleave.
        running.push(tokio::spawn(async move {
            send(&router, upload_request(ticket, body, 512, true)).await.status
        }));
    }
    let mut statuses = Vec::new();
    for upload in running {
        statuses.push(upload.await.expect("an upload"));
    }
    statuses
}

async fn concurrent_uploads_never_pass_a_quota_only_some_fit(app: App) {
    let customer = Uuid::now_v7();
    let ticket = ticket_of(&app, customer).await;
    let statuses = at_once(&app, &[ticket], 12, 3_000).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    assert_eq!(created, 3, "exactly the ticket's 3 files: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");

    // Across tickets, the customer's bytes: 9,000 kept leave 12,000 of 21,000, room for three
    // files of 3,000 (each reserved with its form around it), never four.
    let tickets =
        [ticket_of(&app, customer).await, ticket_of(&app, customer).await, ticket_of(&app, customer).await];
    let statuses = at_once(&app, &tickets, 9, 3_000).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    assert_eq!(created, 3, "{statuses:?}");
    let store = app.service.store();
    assert_eq!(
        count(store, "SELECT count(*) AS n FROM ticket_attachments").await,
        6,
        "no pending row is left"
    );
    assert_eq!(objects(&app).await.len(), 6);
}

fn tight() -> AttachmentLimits {
    AttachmentLimits {
        files_per_ticket: 3,
        bytes_per_ticket: 1_000_000,
        bytes_per_customer: 21_000,
        concurrent_uploads: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_pass_a_quota_that_only_some_fit() {
    concurrent_uploads_never_pass_a_quota_only_some_fit(app(tight()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_concurrent_uploads_never_pass_a_quota_that_only_some_fit() {
    let Some(database) = TempPostgres::create().await else { return };
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    concurrent_uploads_never_pass_a_quota_only_some_fit(app_on(&config, tight(), TempDataDir::new()).await)
        .await;
}

/// An upload whose body stalls after its first kilobyte, until the returned sender sends the
/// rest.
fn stalled_upload(ticket: Uuid) -> (Request<Body>, tokio::sync::mpsc::Sender<Bytes>, Bytes) {
    let body = form("slow.txt", &text(100_000));
    let (head, tail) = body.split_at(1_000);
    let (more, rest) = tokio::sync::mpsc::channel::<Bytes>(2);
    more.try_send(Bytes::copy_from_slice(head)).expect("first piece");
    let stalled = futures_util::stream::unfold(rest, |mut rest| async move {
        rest.recv().await.map(|piece| (Ok::<_, Infallible>(piece), rest))
    });
    let request = Request::post(format!("/tickets/{ticket}/attachments"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from_stream(stalled))
        .expect("request");
    (request, more, Bytes::copy_from_slice(tail))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_house_answers_503_with_retry_after_until_an_upload_ends() {
    let app = app(AttachmentLimits { concurrent_uploads: 1, ..AttachmentLimits::default() }).await;
    let (slow_ticket, quick_ticket) =
        (ticket_of(&app, Uuid::now_v7()).await, ticket_of(&app, Uuid::now_v7()).await);
    let busy = |answer: &Answer| {
        assert_eq!(answer.problem(), (StatusCode::SERVICE_UNAVAILABLE, "uploads_busy".to_owned()));
        assert_eq!(answer.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
    };
    // The one slot held: no upload is taken, and nothing of it is kept.
    let held = app.service.support().upload_permit().expect("the one slot");
    busy(&upload(&app, quick_ticket, "quick.txt", b"quick").await);
    assert!(matches!(app.service.support().upload_permit(), Err(tessera_support::AppError::Busy)));
    drop(held);
    assert_eq!(upload(&app, quick_ticket, "quick.txt", b"quick").await.status, StatusCode::CREATED);

    // The slot held by an upload whose body stalls midway.
    let (request, more, tail) = stalled_upload(slow_ticket);
    let router = app.router.clone();
    let slow = tokio::spawn(async move { send(&router, request).await });
    // Until it has taken the slot, a quick upload may still get it first.
    let mut refused = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!slow.is_finished(), "the stalled upload took its slot");
        let answer = upload(&app, quick_ticket, "quick.txt", b"quick").await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json());
    }
    busy(&refused.expect("a full house"));
    more.send(tail).await.expect("the rest");
    drop(more);
    let slow = slow.await.expect("the slow upload");
    assert_eq!(slow.status, StatusCode::CREATED, "{}", slow.json());
    let after = upload(&app, quick_ticket, "after.txt", b"after").await;
    assert_eq!(after.status, StatusCode::CREATED, "the slot is free again");
}

#[tokio::test]
async fn a_file_sealed_whole_before_streams_is_read_and_a_shredded_key_reads_nothing() {
    let app = app(AttachmentLimits::default()).await;
    let customer = Uuid::now_v7();
    let ticket = ticket_of(&app, customer).await;
    let file = text(70_000);
    let uploaded = upload(&app, ticket, "old.txt", &file).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.json());
    let id = uploaded.json()["id"].as_str().expect("id").to_owned();
    // The object as uploads wrote it before they streamed: `v1.`, sealed whole.
    let (key, _) = objects(&app).await.into_iter().next().expect("the object");
    let whole = app.vault.seal_bytes(&customer.to_string(), &file).await.expect("sealed whole");
    assert!(whole.starts_with(b"v1."));
    app.attachments.objects().put(&key, whole.into()).await.expect("put");
    let answer = download(&app, ticket, &id).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.bytes() == file.as_slice(), "an old object reads as it always did");

    let streamed = upload(&app, ticket, "new.txt", &file).await;
    let streamed_id = streamed.json()["id"].as_str().expect("id").to_owned();
    app.vault.shred(&customer.to_string()).await.expect("shred");
    for id in [&id, &streamed_id] {
        let answer = download(&app, ticket, id).await;
        assert_eq!(answer.problem().0, StatusCode::NOT_FOUND, "unreadable once the key is shredded");
    }
}
