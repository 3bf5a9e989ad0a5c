//! A message published just before the NATS server restarts is still delivered, and the relay
//! and subscriber carry on across the restart. Needs `TESSERA_TEST_NATS` and
//! `TESSERA_TEST_NATS_RESTART`, a shell command that restarts that server keeping its
//! JetStream storage (CI sets both). Kept in its own test binary, because the restart
//! interrupts every other NATS test.

mod common;

use std::time::Duration;

use common::{Kind, TestHandler, World, fast_relay, fast_subscriber};
use tessera_bus::Upcasters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_just_before_a_nats_restart_is_still_delivered() {
    let Some(restart) = tessera_testkit::server_url("TESSERA_TEST_NATS_RESTART", "NATS restart") else {
        return;
    };
    let Some(world) = World::new(Kind::Nats).await else { return };
    let relay = world.relay(fast_relay());
    let before: Vec<_> = (0..10).map(|i| world.envelope("restart", i, false)).collect();
    world.produce(&before).await;
    // Published and acknowledged by the server (the outbox rows are marked sent)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while world.producer.outbox_backlog().await.expect("backlog").unsent > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(world.producer.outbox_backlog().await.expect("backlog").unsent, 0);
    // ...then the server restarts before anyone consumed them.
    let status =
        std::process::Command::new("sh").args(["-c", &restart]).status().expect("run the restart command");
    assert!(status.success(), "restart command failed: {status:?}");
    // Messages committed while the server is coming back are published once it is.
    let after: Vec<_> = (10..20).map(|i| world.envelope("restart", i, false)).collect();
    world.produce(&after).await;
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let effects = world.wait_for_effects(20, Duration::from_secs(60)).await;
    assert_eq!(effects.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    relay.stop().await;
    subscriber.stop().await;
}
