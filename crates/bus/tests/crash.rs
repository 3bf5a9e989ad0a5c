//! Crash tests, run against both transports: a child process runs a relay and a subscriber and
//! SIGKILLs itself at an exact point — after the transport acknowledged a publish but before the
//! outbox row was marked sent, or after the subscriber committed an effect but before it
//! acknowledged the message. After a restart every message must have exactly one effect.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Kind, TestHandler, World, fast_relay, fast_subscriber};
use tessera_bus::{RelayOptions, SubscriberOptions, Upcasters};
use tessera_testkit::TempDataDir;

const MESSAGES: u64 = 60;
const KILL_AT: usize = 17;

fn kill_self() -> tessera_bus::Hook {
    let seen = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AT {
            let _ = Command::new("kill").args(["-KILL", &std::process::id().to_string()]).status();
            std::thread::sleep(Duration::from_secs(60));
        }
    })
}

fn short_ack_wait() -> SubscriberOptions {
    SubscriberOptions { ack_wait: Duration::from_secs(2), ..fast_subscriber() }
}

#[test]
#[ignore = "entry point of the crash tests' child process"]
fn bus_crash_child() {
    let (Ok(dir), Ok(source), Ok(mode)) =
        (std::env::var("CHILD_DIR"), std::env::var("CHILD_SOURCE"), std::env::var("CHILD_MODE"))
    else {
        return;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let kind = Kind::from_env();
        let transport = common::transport(kind).await.expect("transport");
        let dir = TempDataDir::at(dir.into());
        let world = World::in_dir(kind, dir, source, transport).await;
        let (relay_options, subscriber_options) = match mode.as_str() {
            "relay" => (RelayOptions { after_publish: Some(kill_self()), ..fast_relay() }, short_ack_wait()),
            _ => (fast_relay(), SubscriberOptions { after_commit: Some(kill_self()), ..short_ack_wait() }),
        };
        let _subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), subscriber_options);
        let _relay = world.relay(relay_options);
        tokio::time::sleep(Duration::from_secs(60)).await;
        panic!("the kill point was never reached");
    });
}

async fn killed_then_restarted(kind: Kind, mode: &str) {
    let Some(transport) = common::transport(kind).await else { return };
    let source = common::fresh_source();
    let dir = TempDataDir::new();
    let path = dir.path().to_path_buf();
    let world = World::in_dir(kind, dir, source.clone(), transport.clone()).await;
    let messages: Vec<_> = (0..MESSAGES).map(|i| world.envelope(&format!("k{}", i % 4), i, false)).collect();
    world.produce(&messages).await;
    let World { dir, producer, consumer, .. } = world;
    drop((producer, consumer));

    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "bus_crash_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("CHILD_DIR", &path)
        .env("CHILD_SOURCE", &source)
        .env("CHILD_MODE", mode)
        .env("TESSERA_TEST_TRANSPORT", kind.name().replace("in-process", "in_process"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the child");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child died by SIGKILL: {status:?}"
    );

    // The restart: same files; for NATS, the same stream and durable consumer.
    let world = World::in_dir(kind, dir, source, common::transport(kind).await.expect("transport")).await;
    let killed_before = common::effects(&world.consumer).await.len();
    assert!(killed_before >= KILL_AT - 1 || mode == "relay", "the child got far enough: {killed_before}");
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), short_ack_wait());
    let relay = world.relay(fast_relay());
    let effects = world.wait_for_effects(MESSAGES as usize, Duration::from_secs(30)).await;
    // Let any redelivery arrive before counting duplicates.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let effects_after = world.effects().await;
    assert_eq!(effects.len(), MESSAGES as usize, "every message applied");
    assert_eq!(effects_after.len(), MESSAGES as usize, "no message applied twice");
    let ids: BTreeSet<_> = effects_after.iter().map(|e| e.message_id.clone()).collect();
    assert_eq!(ids, messages.iter().map(|m| m.id.to_string()).collect());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while world.producer.outbox_backlog().await.expect("backlog").unsent > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(world.producer.outbox_backlog().await.expect("backlog").unsent, 0, "everything marked sent");
    relay.stop().await;
    subscriber.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_relay_killed_between_publish_and_mark_sent_republishes_with_one_effect() {
    killed_then_restarted(Kind::InProcess, "relay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_subscriber_killed_between_commit_and_ack_is_redelivered_with_one_effect() {
    killed_then_restarted(Kind::InProcess, "subscriber").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_relay_killed_between_publish_and_mark_sent_republishes_with_one_effect() {
    killed_then_restarted(Kind::Nats, "relay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_subscriber_killed_between_commit_and_ack_is_redelivered_with_one_effect() {
    killed_then_restarted(Kind::Nats, "subscriber").await;
}
