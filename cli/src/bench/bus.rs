//! `tessera bench bus`: messages per second from the producer's outbox commit to the
//! consumer's commit (relay, transport, subscriber with inbox, two SQLite stores at
//! synchronous=FULL), the latency at half that rate under an open-loop producer, and raw
//! JetStream async publishing as the limit underneath.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use clap::Args;
use hdrhistogram::Histogram;
use tessera_bus::{
    Handler, HandlerError, InProcessTransport, NatsOptions, NatsTransport, Relay, RelayOptions, Subscriber,
    SubscriberOptions, Transport, Upcasters,
};
use tessera_kernel::{Clock, Envelope, HlcTimestamp, MessageKind, SystemClock, UuidV7Gen};
use tessera_store::{SqliteOptions, Store, StoreConfig, UnitOfWork};
use tokio::sync::watch;

use super::report::{BenchResult, ProcessCpu, Report, latency_histogram};
use super::system_cost::{PartCost, cost_of};

#[derive(Debug, Args)]
pub struct BusBenchArgs {
    #[arg(long)]
    json: bool,
    /// Messages for the drain run.
    #[arg(long, default_value_t = 30_000)]
    messages: u64,
    /// Seconds of the saturated run and of the half-load run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// NATS server to bench against (a scratch stream is created and deleted).
    #[arg(long, env = "TESSERA_BENCH_NATS")]
    nats_url: Option<String>,
    /// Where SQLite scratch files go (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The subscriber's lanes: how many groups of keys it applies concurrently.
    #[arg(long, default_value_t = DEFAULT_LANES)]
    lanes: usize,
}

const DEFAULT_LANES: usize = 64;

/// Counts consumer commits and records their latency since the producer's commit.
#[derive(Debug)]
struct Meter {
    applied: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Meter {
    fn record(&self, envelope: &Envelope) {
        let latency = SystemClock.now().since(envelope.at.wall());
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.latency.lock().unwrap_or_else(PoisonError::into_inner).record(micros);
        self.applied.fetch_add(1, Ordering::Release);
    }

    fn reset(&self) -> Histogram<u64> {
        std::mem::replace(
            &mut *self.latency.lock().unwrap_or_else(PoisonError::into_inner),
            latency_histogram(),
        )
    }
}

/// A consumer that only records the message in its inbox: the cost measured is the bus's.
struct InboxOnly;

#[async_trait::async_trait]
impl Handler for InboxOnly {
    async fn handle(&self, _: &Envelope, _: &mut UnitOfWork) -> Result<(), HandlerError> {
        Ok(())
    }
}

struct Pipeline {
    source: String,
    producer: Store,
    meter: Arc<Meter>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    /// `producing` carries the relay's publishes and `consuming` the subscriber's deliveries:
    /// one transport for the in-process bus, two connections for NATS, as the two services'
    /// own processes would have.
    async fn start(
        dir: &std::path::Path,
        producing: Arc<dyn Transport>,
        consuming: Arc<dyn Transport>,
        tag: &str,
        lanes: usize,
    ) -> anyhow::Result<Self> {
        let source = format!("bench{}{}", tag, std::process::id());
        let open = |name: &str| StoreConfig::Sqlite {
            path: dir.join(format!("{name}-{source}.db")),
            options: SqliteOptions::default(),
        };
        let producer = Store::open(&open("producer"), &[]).await?;
        let consumer = Store::open(&open("consumer"), &[tessera_bus::MIGRATIONS]).await?;
        let meter = Arc::new(Meter { applied: AtomicU64::new(0), latency: Mutex::new(latency_histogram()) });
        let hook_meter = meter.clone();
        let (stop, stopped) = watch::channel(false);
        let subscriber = Subscriber::new(
            "benchconsumer",
            source.clone(),
            consumer,
            consuming,
            Arc::new(InboxOnly),
            Arc::new(Upcasters::new()),
            SubscriberOptions {
                lanes,
                batch: 1024,
                after_commit: Some(Arc::new(move |envelope| hook_meter.record(envelope))),
                ..SubscriberOptions::default()
            },
        );
        let mut tasks = vec![tokio::spawn({
            let stopped = stopped.clone();
            async move {
                if let Err(error) = subscriber.run(stopped).await {
                    eprintln!("subscriber: {error}");
                }
            }
        })];
        // The in-process transport delivers only to consumers that exist when a message is
        // published: let the subscriber register first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let relay = Relay::new(source.clone(), producer.clone(), producing, RelayOptions::default());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = relay.run(stopped).await {
                eprintln!("relay: {error}");
            }
        }));
        Ok(Self { source, producer, meter, stop, tasks })
    }

    fn envelope(&self, n: u64) -> Envelope {
        Envelope::new(
            &UuidV7Gen,
            MessageKind::Event,
            format!("{}.Measured", self.source),
            self.source.clone(),
            format!("key-{}", n % 256),
            HlcTimestamp::new(SystemClock.now(), 0),
            serde_json::json!({ "n": n, "sku": "SKU-0001", "quantity": 1 }),
        )
    }

    async fn produce(&self, first: u64, count: u64) -> anyhow::Result<()> {
        let mut unit = self.producer.begin();
        for n in first..first + count {
            unit.send(&self.envelope(n))?;
        }
        unit.commit().await?;
        Ok(())
    }

    async fn wait_for(&self, applied: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.meter.applied.load(Ordering::Acquire) < applied {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

pub async fn run(args: BusBenchArgs) -> anyhow::Result<()> {
    let scratch = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("tessera-bench-bus-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("create {}", scratch.display()))?;
    let mut results = Vec::new();
    let in_process: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
    results.extend(measure(&scratch, in_process.clone(), in_process, "in-process", "ip", &args).await?);
    if let Some(url) = &args.nats_url {
        let producing: Arc<dyn Transport> =
            Arc::new(NatsTransport::connect(url, NatsOptions::default()).await?);
        let consuming: Arc<dyn Transport> =
            Arc::new(NatsTransport::connect(url, NatsOptions::default()).await?);
        let measured = measure(&scratch, producing, consuming, "nats", "nats", &args).await;
        delete_stream(
            url,
            &NatsTransport::connect(url, NatsOptions::default())
                .await?
                .stream_name(&format!("benchnats{}", std::process::id())),
        )
        .await;
        let measured = measured?;
        // The transport's own share of the latency, at the rate the NATS half-load run aimed at.
        let half_rate = measured.get(1).map_or(1000.0, |saturated| (saturated.ops_per_sec / 2.0).max(1000.0));
        results.extend(measured);
        results.push(raw_jetstream_publish(url, 100_000).await?);
        results.push(
            raw_jetstream_round_trip(url, half_rate, Duration::from_secs_f64(args.seconds.max(0.5))).await?,
        );
    } else if !args.json {
        eprintln!("(NATS skipped: pass --nats-url or set TESSERA_BENCH_NATS)");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Report { bench: "bus", results }.print(args.json)
}

async fn measure(
    dir: &std::path::Path,
    producing: Arc<dyn Transport>,
    consuming: Arc<dyn Transport>,
    label: &str,
    tag: &str,
    args: &BusBenchArgs,
) -> anyhow::Result<Vec<BenchResult>> {
    let pipeline = Pipeline::start(dir, producing, consuming, tag, args.lanes).await?;

    // Drain: a backlog committed up front, then consumed end to end; the relay, transport
    // and subscriber alone, with the producer idle.
    let mut backlog = 0;
    while backlog < args.messages {
        let count = (args.messages - backlog).min(1000);
        pipeline.produce(500_000_000 + backlog, count).await?;
        backlog += count;
    }
    // The relay and the subscriber run while the backlog is committed, so part of it is
    // consumed before the clock starts: count only what is consumed after.
    let started = Instant::now();
    let cpu = ProcessCpu::now();
    let consumed_before = pipeline.meter.applied.load(Ordering::Acquire);
    anyhow::ensure!(
        pipeline.wait_for(backlog, Duration::from_secs(300)).await,
        "{label}: the backlog did not drain"
    );
    let drain_elapsed = started.elapsed();
    let drain_cpu = cpu.elapsed();
    let drained = pipeline.meter.reset();
    let drain_count = backlog.saturating_sub(consumed_before);
    let drain = BenchResult::new(
        "end to end, backlog drain (msgs/s)",
        label,
        1,
        drain_count,
        drain_elapsed,
        &drained,
    )
    .with_cpu(drain_cpu, drain_count);

    let pipeline = Arc::new(pipeline);
    let window = Duration::from_secs_f64(args.seconds.max(0.5));
    let max = saturated(&pipeline, window, label).await?;
    let (half_result, _) = half_load(&pipeline, half_rate(&max), window, label).await?;
    match Arc::try_unwrap(pipeline) {
        Ok(pipeline) => pipeline.stop().await,
        Err(_) => anyhow::bail!("{label}: the pipeline is still shared"),
    }
    Ok(vec![drain, max, half_result])
}

/// Maximum rate: producers commit as fast as they can while the pipeline consumes; the
/// consumer's commit rate over `window` is what the whole chain sustains. Returns once all
/// that was produced is consumed.
async fn saturated(pipeline: &Arc<Pipeline>, window: Duration, label: &str) -> anyhow::Result<BenchResult> {
    let applied_base = pipeline.meter.applied.load(Ordering::Acquire);
    let produced_total = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let (pipeline, produced_total, producing) =
                (pipeline.clone(), produced_total.clone(), producing.clone());
            tokio::spawn(async move {
                let mut n = p * 1_000_000_000;
                while producing.load(Ordering::Acquire) {
                    // Keep the backlog bounded so the window measures flow, not a queue.
                    let applied = pipeline.meter.applied.load(Ordering::Acquire) - applied_base;
                    if produced_total.load(Ordering::Acquire) > applied + 20_000 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    pipeline.produce(n, 200).await?;
                    n += 200;
                    produced_total.fetch_add(200, Ordering::AcqRel);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline.meter.reset();
    let applied_before = pipeline.meter.applied.load(Ordering::Acquire);
    let started = Instant::now();
    let cpu = ProcessCpu::now();
    tokio::time::sleep(window).await;
    let applied = pipeline.meter.applied.load(Ordering::Acquire) - applied_before;
    let elapsed = started.elapsed();
    let saturated_cpu = cpu.elapsed();
    let saturated = pipeline.meter.reset();
    producing.store(false, Ordering::Release);
    for producer in producers {
        producer.await??;
    }
    let produced = produced_total.load(Ordering::Acquire) + applied_base;
    anyhow::ensure!(
        pipeline.wait_for(produced, Duration::from_secs(120)).await,
        "{label}: the backlog did not drain"
    );
    pipeline.meter.reset();
    Ok(BenchResult::new("end to end, saturated (msgs/s)", label, 2, applied, elapsed, &saturated)
        .with_cpu(saturated_cpu, applied))
}

/// Half the rate of a saturated run (1,000 messages/s at least).
fn half_rate(saturated: &BenchResult) -> f64 {
    (saturated.ops_per_sec / 2.0).max(1000.0)
}

/// `rate` messages/s for `duration`, open loop: a batch every millisecond whatever the
/// latency. Returns once all of them are consumed, with their number.
async fn half_load(
    pipeline: &Pipeline,
    rate: f64,
    duration: Duration,
    label: &str,
) -> anyhow::Result<(BenchResult, u64)> {
    // Everything produced before is consumed: the count of consumed messages is where this
    // run's numbering of due messages starts.
    let first = pipeline.meter.applied.load(Ordering::Acquire);
    let mut produced = first;
    let started = Instant::now();
    let cpu = ProcessCpu::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = 2_000_000_000;
    while started.elapsed() < duration {
        tick.tick().await;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let due = first + (rate * started.elapsed().as_secs_f64()) as u64;
        if due > produced {
            pipeline.produce(next, due - produced).await?;
            next += due - produced;
            produced = due;
        }
    }
    anyhow::ensure!(
        pipeline.wait_for(produced, Duration::from_secs(60)).await,
        "{label}: the half-load run did not finish"
    );
    let half = pipeline.meter.reset();
    let messages = produced - first;
    let result = BenchResult::new(
        "end to end at half the maximum rate (msgs/s)",
        label,
        1,
        messages,
        started.elapsed(),
        &half,
    )
    .with_cpu(cpu.elapsed(), messages);
    Ok((result, messages))
}

/// `bench bus`'s in-process row at half the maximum rate, the maximum measured just before,
/// each for `duration`, with SQLite stores in a scratch folder inside `dir`: what a message
/// costs this process's threads in CPU, from the producer's outbox commit to the consumer's
/// inbox commit.
pub(super) async fn half_load_in_process_part(
    dir: &std::path::Path,
    duration: Duration,
) -> anyhow::Result<PartCost> {
    let scratch = tempfile::tempdir_in(dir)?;
    let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
    let pipeline =
        Arc::new(Pipeline::start(scratch.path(), transport.clone(), transport, "part", DEFAULT_LANES).await?);
    let label = "in-process";
    let max = saturated(&pipeline, duration, label).await?;
    let (half, cost) = cost_of(half_load(&pipeline, half_rate(&max), duration, label)).await?;
    let (_, messages) = half?;
    if let Ok(pipeline) = Arc::try_unwrap(pipeline) {
        pipeline.stop().await;
    }
    Ok(PartCost::new(messages, cost.cpu))
}

async fn delete_stream(url: &str, name: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = jetstream::new(client).delete_stream(name).await;
    }
}

/// A stream of this process's own for a raw measurement: its name and its one subject.
async fn scratch_stream(context: &jetstream::Context, tag: &str) -> anyhow::Result<(String, String)> {
    let name = format!("TESSERA_{}{}", tag.to_ascii_uppercase(), std::process::id());
    let subject = format!("tessera{tag}{}", std::process::id());
    context
        .get_or_create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await?;
    Ok((name, subject))
}

/// The limit underneath: async publishes to one stream with up to 1024 acknowledgements
/// outstanding, no store involved.
async fn raw_jetstream_publish(url: &str, messages: u64) -> anyhow::Result<BenchResult> {
    let context = jetstream::new(async_nats::connect(url).await?);
    let (name, subject) = scratch_stream(&context, "raw").await?;
    let payload = bytes::Bytes::from_static(br#"{"n":1,"sku":"SKU-0001","quantity":1}"#);
    let mut latency = latency_histogram();
    let mut in_flight = std::collections::VecDeque::new();
    let started = Instant::now();
    let cpu = ProcessCpu::now();
    for _ in 0..messages {
        if in_flight.len() >= 1024 {
            let (sent, ack): (Instant, jetstream::context::PublishAckFuture) =
                in_flight.pop_front().expect("non-empty");
            ack.await?;
            latency.record(super::report::micros(sent.elapsed()))?;
        }
        in_flight.push_back((Instant::now(), context.publish(subject.clone(), payload.clone()).await?));
    }
    for (sent, ack) in in_flight {
        ack.await?;
        latency.record(super::report::micros(sent.elapsed()))?;
    }
    let elapsed = started.elapsed();
    let spent = cpu.elapsed();
    let _ = context.delete_stream(&name).await;
    Ok(BenchResult::new("raw JetStream async publish (msgs/s)", "nats", 1, messages, elapsed, &latency)
        .with_cpu(spent, messages))
}

/// What NATS alone adds to a message's latency: publishes at `rate`, open loop as in the
/// half-load run, to a scratch stream, received by a durable pull consumer on a second
/// connection that acknowledges each message, as the subscriber does; no store involved. The
/// latency runs from just before the publish to the receipt, on the same clock.
async fn raw_jetstream_round_trip(url: &str, rate: f64, duration: Duration) -> anyhow::Result<BenchResult> {
    let context = jetstream::new(async_nats::connect(url).await?);
    let (name, subject) = scratch_stream(&context, "rawrt").await?;
    let measured = round_trip(url, &context, &name, &subject, rate, duration).await;
    // The scratch stream (and its consumer with it) goes whatever happened.
    let _ = context.delete_stream(&name).await;
    measured
}

async fn round_trip(
    url: &str,
    context: &jetstream::Context,
    name: &str,
    subject: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<BenchResult> {
    use futures_util::StreamExt;

    let consumer = jetstream::new(async_nats::connect(url).await?)
        .get_stream(name)
        .await?
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.stream().max_messages_per_batch(1024).messages().await?;
    let (total_tx, mut total_rx) = watch::channel(u64::MAX);
    let receiver = tokio::spawn(async move {
        let mut latency = latency_histogram();
        let mut received = 0_u64;
        while received < *total_rx.borrow_and_update() {
            let message = tokio::select! {
                next = messages.next() => next,
                changed = total_rx.changed() => {
                    changed.context("the publisher stopped")?;
                    continue;
                }
            };
            let message = message.context("the pull stream ended")?.map_err(|e| anyhow::anyhow!(e))?;
            let sent: u64 = std::str::from_utf8(&message.payload)?.parse()?;
            latency.saturating_record(SystemClock.now().as_micros().saturating_sub(sent).max(1));
            message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
            received += 1;
        }
        anyhow::Ok(latency)
    });
    let mut acks = futures_util::stream::FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut published = 0_u64;
    while started.elapsed() < duration {
        tick.tick().await;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        while published < due {
            let stamp = SystemClock.now().as_micros().to_string();
            acks.push(context.publish(subject.to_owned(), stamp.into()).await?.into_future());
            published += 1;
        }
        while let Some(Some(ack)) = futures_util::FutureExt::now_or_never(acks.next()) {
            ack?;
        }
    }
    // The rate is the one published at; the wait for the last acknowledgements and receipts
    // below is not part of it.
    let elapsed = started.elapsed();
    while let Some(ack) = acks.next().await {
        ack?;
    }
    let _ = total_tx.send(published);
    let latency = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .context("the raw consumer did not receive every message")???;
    Ok(BenchResult::new(
        "raw JetStream publish to acknowledged pull, at the half-load rate (msgs/s)",
        "nats",
        1,
        published,
        elapsed,
        &latency,
    ))
}
