//! Criterion companion of `tessera bench store`: the latency of one single-event unit of work
//! on SQLite (synchronous=FULL) with 1 and 16 writers in flight, and on PostgreSQL when
//! `TESSERA_TEST_POSTGRES` names a server. The full table with raw limits comes from the CLI.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_kernel::{MessageId, StreamId, UuidV7Gen};
use tessera_store::{ExpectedVersion, NewEvent, PostgresOptions, SqliteOptions, Store, StoreConfig};

fn commit_one(store: &Store, stream: &StreamId) -> impl Future<Output = ()> + use<> {
    let event =
        NewEvent::new(MessageId::generate(&UuidV7Gen), "bench.Appended", &serde_json::json!({"n": 1}))
            .expect("serialise");
    let mut unit = store.begin();
    unit.append(stream, ExpectedVersion::Any, vec![event]);
    async move {
        unit.commit().await.expect("commit");
    }
}

fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, label: &str, config: StoreConfig) {
    let store = runtime.block_on(Store::open(&config, &[])).expect("open");
    let mut group = c.benchmark_group(format!("store/{label}"));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    for writers in [1usize, 16] {
        let streams: Vec<StreamId> =
            (0..writers).map(|w| StreamId::parse(format!("criterion-{w}")).expect("stream")).collect();
        group.bench_function(format!("single-event unit, {writers} in flight"), |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let commits: Vec<_> =
                            streams.iter().map(|s| tokio::spawn(commit_one(&store, s))).collect();
                        for commit in commits {
                            commit.await.expect("task");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

fn store_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite =
        StoreConfig::Sqlite { path: dir.path().join("criterion.db"), options: SqliteOptions::default() };
    bench_backend(c, &runtime, "sqlite", sqlite);
    if let Ok(server) = std::env::var("TESSERA_TEST_POSTGRES") {
        let url = tessera_store::database_url(&server, "tessera_criterion");
        runtime.block_on(tessera_store::drop_database(&url)).ok();
        let postgres = StoreConfig::Postgres { url: url.clone(), options: PostgresOptions::default() };
        bench_backend(c, &runtime, "postgres", postgres);
        runtime.block_on(tessera_store::drop_database(&url)).ok();
    }
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
