//! The messaging conformance suite, written once and run against both transports. The NATS
//! half needs `TESSERA_TEST_NATS` (e.g. `nats://127.0.0.1:4222`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Kind, TestHandler, World, fast_relay, fast_subscriber};
use serde_json::json;
use tessera_bus::{Upcasters, list_dead_letters, request_retry};
use tessera_kernel::{MessageId, SubjectId, UuidV7Gen};
use tessera_store::Statement;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let world = super::World::new(super::Kind::InProcess).await.expect("in-process world");
                    super::$test(world).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(world) = super::World::new(super::Kind::Nats).await else { return };
                    super::$test(world).await;
                }
            )*
        }
    };
}

conformance!(
    every_message_has_one_effect_and_its_outbox_row_is_marked_sent,
    a_republished_message_still_has_one_effect,
    order_is_kept_per_key_under_load,
    a_poison_message_is_parked_while_other_keys_flow_and_can_be_retried,
    a_transient_handler_failure_is_retried_with_backoff,
    a_restarted_subscriber_resumes_from_its_durable_position,
    headers_carry_correlation_causation_trace_and_subject,
    old_payload_versions_are_upcast_before_the_handler_sees_them,
    a_panicking_handler_parks_its_message_and_its_lane_keeps_working,
    a_handler_sees_the_committed_effect_of_the_previous_message_of_its_key,
    messages_published_before_the_subscriber_runs_are_kept_for_it,
    acknowledgements_are_marked_together_and_the_last_ones_without_further_traffic,
    messages_the_handler_does_not_want_are_acknowledged_without_a_unit,
    a_malformed_message_is_parked_at_once_without_retries,
);

/// Only over NATS can a message reach a stream that is not its declared source's: in one
/// process every message goes where its source says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_declaring_another_source_is_parked_and_never_applied() {
    let Some(world) = World::new(Kind::Nats).await else { return };
    let url = tessera_testkit::server_url("TESSERA_TEST_NATS", "NATS").expect("the NATS server of the world");
    // The handler wants only this source's own kind of message, and the forgery is of another
    // kind: it must be parked all the same, never skipped unread.
    let handler = TestHandler::wanting_only(&format!("{}.Happened", world.source));
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    world.produce(&[world.envelope("forged", 0, false)]).await;
    assert_eq!(world.wait_for_effects(1, WAIT).await.len(), 1);
    // Published straight onto this source's subjects by someone claiming to be another
    // service (a forged `CustomerErased` on the orders stream, say).
    let mut forged = world.envelope("forged", 1, false);
    forged.source = "customers".to_owned();
    forged.name = "customers.CustomerErased".to_owned();
    let client = async_nats::connect(&url).await.expect("connect");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, forged.id.to_string());
    let subject = format!("tessera.{}.{}.Happened", world.source, world.source);
    async_nats::jetstream::new(client)
        .publish_with_headers(subject, headers, serde_json::to_vec(&forged).expect("json").into())
        .await
        .expect("publish")
        .await
        .expect("stored by the stream");
    world.produce(&(2..=4).map(|i| world.envelope("forged", i, false)).collect::<Vec<_>>()).await;
    assert_eq!(world.wait_for_effects(4, WAIT).await.len(), 4, "the genuine ones flowed past it");
    let letters = wait_for_dead_letters(&world).await;
    relay.stop().await;
    subscriber.stop().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope.id, forged.id);
    assert!(letters[0].error.contains("declares the source"), "{}", letters[0].error);
    assert!(handler.seen.lock().expect("seen").iter().all(|m| m.id != forged.id), "never handed over");
    assert!(!world.consumer.inbox_contains(forged.id).await.expect("inbox"), "never applied");
    assert_eq!(world.effects().await.len(), 4);
}

const WAIT: Duration = Duration::from_secs(20);

/// The consumer's dead letters, once there is at least one (or after `WAIT`).
async fn wait_for_dead_letters(world: &World) -> Vec<tessera_bus::DeadLetter> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let letters = list_dead_letters(&world.consumer, None).await.expect("list");
        if !letters.is_empty() || tokio::time::Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn messages_the_handler_does_not_want_are_acknowledged_without_a_unit(world: World) {
    let wanted_name = format!("{}.Happened", world.source);
    let handler = TestHandler::wanting_only(&wanted_name);
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let wanted: Vec<_> = (0..5).map(|i| world.envelope(&format!("k{i}"), i, false)).collect();
    let unwanted: Vec<_> = (5..10)
        .map(|i| {
            let mut envelope = world.envelope(&format!("k{i}"), i, false);
            envelope.name = format!("{}.Ignored", world.source);
            envelope
        })
        .collect();
    let mut all = wanted.clone();
    all.extend(unwanted.iter().cloned());
    world.produce(&all).await;
    assert_eq!(world.wait_for_effects(5, WAIT).await.len(), 5);
    // Every row is marked sent only once every message was acknowledged, the unwanted too.
    let deadline = tokio::time::Instant::now() + WAIT;
    while world.producer.outbox_backlog().await.expect("backlog").unsent > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the unwanted messages were never acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
    subscriber.stop().await;
    assert_eq!(world.effects().await.len(), 5, "only the wanted messages had effects");
    for message in &wanted {
        assert!(
            world.consumer.inbox_contains(message.id).await.expect("inbox"),
            "a wanted message is in the inbox"
        );
    }
    for message in &unwanted {
        assert!(
            !world.consumer.inbox_contains(message.id).await.expect("inbox"),
            "an unwanted message got a unit"
        );
    }
    assert!(
        handler.seen.lock().expect("seen").iter().all(|m| m.name == wanted_name),
        "the handler was handed a message it does not want"
    );
}

async fn every_message_has_one_effect_and_its_outbox_row_is_marked_sent(world: World) {
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let messages: Vec<_> = (0..200).map(|i| world.envelope(&format!("k{}", i % 10), i, false)).collect();
    world.produce(&messages).await;
    let effects = world.wait_for_effects(200, WAIT).await;
    assert_eq!(effects.len(), 200);
    let ids: BTreeSet<_> = effects.iter().map(|e| e.message_id.clone()).collect();
    let expected: BTreeSet<_> = messages.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, expected, "each message exactly once");
    // Marking sent happens right after the acknowledgement; give it a moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    while world.producer.outbox_backlog().await.expect("backlog").unsent > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(world.producer.outbox_backlog().await.expect("backlog").unsent, 0);
    relay.stop().await;
    subscriber.stop().await;
}

async fn a_republished_message_still_has_one_effect(world: World) {
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let messages: Vec<_> = (0..20).map(|i| world.envelope("dup", i, false)).collect();
    world.produce(&messages).await;
    let relay = world.relay(fast_relay());
    assert_eq!(world.wait_for_effects(20, WAIT).await.len(), 20);
    relay.stop().await;
    // As if the relay had crashed before marking the rows sent: everything goes out again.
    let mut unit = world.producer.begin();
    unit.execute(Statement::new("UPDATE tessera_outbox SET sent_at = NULL"));
    unit.commit().await.expect("unmark");
    let relay = world.relay(fast_relay());
    // And the same messages published straight to the transport as well.
    for message in &messages {
        world.transport.publish(message).await.expect("publish").await.expect("ack");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let effects = world.wait_for_effects(21, Duration::from_millis(500)).await;
    assert_eq!(effects.len(), 20, "duplicates had no effect");
    relay.stop().await;
    subscriber.stop().await;
}

async fn order_is_kept_per_key_under_load(world: World) {
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    // Ten producers, two keys each, committing concurrently.
    let producers: Vec<_> = (0..10)
        .map(|p| {
            let messages: Vec<_> =
                (0..100).map(|seq| world.envelope(&format!("key-{p}-{}", seq % 2), seq, false)).collect();
            let producer = world.producer.clone();
            tokio::spawn(async move {
                for message in messages {
                    let mut unit = producer.begin();
                    unit.send(&message).expect("send");
                    unit.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    let effects = world.wait_for_effects(1000, WAIT).await;
    assert_eq!(effects.len(), 1000);
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for effect in effects {
        per_key.entry(effect.key).or_default().push(effect.seq);
    }
    assert_eq!(per_key.len(), 20);
    for (key, seqs) in per_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key} out of order: {seqs:?}");
    }
    relay.stop().await;
    subscriber.stop().await;
}

async fn a_poison_message_is_parked_while_other_keys_flow_and_can_be_retried(world: World) {
    let handler = TestHandler::new();
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let poison = world.envelope("bad", 0, true);
    let mut messages = vec![poison.clone()];
    messages.extend((0..50).map(|i| world.envelope(&format!("good-{}", i % 5), i, false)));
    world.produce(&messages).await;
    let effects = world.wait_for_effects(50, WAIT).await;
    assert_eq!(effects.len(), 50, "the other keys flowed");

    let letters = wait_for_dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.envelope.id, poison.id);
    assert_eq!(letter.attempts, 3);
    assert!(letter.error.contains("poison message"), "{}", letter.error);
    assert_eq!(letter.consumer, format!("consumer__{}", world.source));

    // The operator fixes the cause and asks for a retry: the effect appears, the letter goes.
    handler.cure();
    assert!(request_retry(&world.consumer, letter.id).await.expect("retry"));
    let effects = world.wait_for_effects(51, WAIT).await;
    assert!(effects.iter().any(|e| e.message_id == poison.id.to_string()));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !list_dead_letters(&world.consumer, None).await.expect("list").is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(list_dead_letters(&world.consumer, None).await.expect("list").is_empty());
    assert!(!request_retry(&world.consumer, letter.id).await.expect("retry"), "it is gone");
    relay.stop().await;
    subscriber.stop().await;
}

async fn a_malformed_message_is_parked_at_once_without_retries(world: World) {
    let handler = TestHandler::new();
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let mut malformed = world.envelope("odd", 0, false);
    malformed.payload["seq_as_text"] = serde_json::json!("seven");
    let mut messages = vec![malformed.clone()];
    messages.extend((1..=10).map(|i| world.envelope("odd", i, false)));
    world.produce(&messages).await;
    let effects = world.wait_for_effects(10, WAIT).await;
    assert_eq!(effects.len(), 10, "the key's later messages flowed past it");
    let letters = wait_for_dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope.id, malformed.id);
    assert_eq!(letters[0].attempts, 1, "parked on its first failure: {}", letters[0].error);
    assert!(letters[0].error.contains("malformed"), "{}", letters[0].error);
    let seen = handler.seen.lock().expect("seen").iter().filter(|m| m.id == malformed.id).count();
    // Once in a group's unit, perhaps, and once alone: never the retries a rejection gets.
    assert!(seen <= 2, "the handler saw it {seen} times");
    relay.stop().await;
    subscriber.stop().await;
}

async fn a_transient_handler_failure_is_retried_with_backoff(world: World) {
    let handler = TestHandler::failing_first(2);
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let messages: Vec<_> = (0..5).map(|i| world.envelope("flaky", i, false)).collect();
    world.produce(&messages).await;
    let effects = world.wait_for_effects(5, WAIT).await;
    assert_eq!(
        effects.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "applied once each, in order"
    );
    assert_eq!(handler.seen.lock().expect("seen").len(), 15, "two failures and one success each");
    assert!(list_dead_letters(&world.consumer, None).await.expect("list").is_empty());
    relay.stop().await;
    subscriber.stop().await;
}

async fn a_restarted_subscriber_resumes_from_its_durable_position(world: World) {
    let relay = world.relay(fast_relay());
    let first = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let batch_one: Vec<_> = (0..30).map(|i| world.envelope("resume", i, false)).collect();
    world.produce(&batch_one).await;
    assert_eq!(world.wait_for_effects(30, WAIT).await.len(), 30);
    first.stop().await;

    // Published while no subscriber runs.
    let batch_two: Vec<_> = (30..60).map(|i| world.envelope("resume", i, false)).collect();
    world.produce(&batch_two).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let effects = world.wait_for_effects(60, WAIT).await;
    assert_eq!(effects.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..60).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.effects().await.len(), 60, "nothing was delivered twice into effects");
    second.stop().await;
    relay.stop().await;
}

async fn headers_carry_correlation_causation_trace_and_subject(world: World) {
    let handler = TestHandler::new();
    let subscriber = world.subscriber(handler.clone(), Upcasters::new(), fast_subscriber());
    let cause = world.envelope("traced", 0, false);
    let mut message = world.envelope("traced", 1, false).about(SubjectId::generate(&UuidV7Gen));
    message.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let message = message.caused_by(&cause);

    let raw_headers = if world.kind == Kind::Nats {
        // Watch the subject with a plain NATS subscription to see the headers on the wire.
        let url = std::env::var(common::NATS_ENV).expect("nats url");
        let client = async_nats::connect(url).await.expect("connect");
        Some(client.subscribe(format!("tessera.{}.>", world.source)).await.expect("subscribe"))
    } else {
        None
    };
    let relay = world.relay(fast_relay());
    world.produce(std::slice::from_ref(&message)).await;
    assert_eq!(world.wait_for_effects(1, WAIT).await.len(), 1);
    let seen = handler.seen.lock().expect("seen").last().cloned().expect("delivered");
    assert_eq!(seen.correlation_id, cause.correlation_id);
    assert_eq!(seen.causation_id, Some(cause.id));
    assert_eq!(seen.subject, message.subject);
    assert_eq!(seen.traceparent, message.traceparent);

    if let Some(mut subscription) = raw_headers {
        use futures_util::StreamExt;
        let raw =
            tokio::time::timeout(WAIT, subscription.next()).await.expect("on the wire").expect("message");
        let headers = raw.headers.expect("headers");
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("Nats-Msg-Id"), Some(message.id.to_string()));
        assert_eq!(get("Tessera-Correlation-Id"), Some(cause.correlation_id.to_string()));
        assert_eq!(get("Tessera-Causation-Id"), Some(cause.id.to_string()));
        assert_eq!(get("Tessera-Subject"), message.subject.map(|s| s.to_string()));
        assert_eq!(get("traceparent"), message.traceparent.clone());
    }
    relay.stop().await;
    subscriber.stop().await;
}

async fn old_payload_versions_are_upcast_before_the_handler_sees_them(world: World) {
    let name = format!("{}.Happened", world.source);
    let upcasters = || {
        Upcasters::new().with(name.clone(), 1, |mut payload| {
            payload["seq"] = json!(payload["old_seq"].as_i64().ok_or("old_seq missing")? * 10);
            Ok(payload)
        })
    };
    let handler = TestHandler::new();
    let subscriber = world.subscriber(handler.clone(), upcasters(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let mut v1 = world.envelope("versions", 0, false);
    v1.payload = json!({ "old_seq": 7 });
    let v2 = world.envelope("versions", 80, false).with_version(2);
    world.produce(&[v1.clone(), v2]).await;
    let effects = world.wait_for_effects(2, WAIT).await;
    assert_eq!(effects.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![70, 80]);
    assert!(handler.seen.lock().expect("seen").iter().all(|m| m.version == 2), "handlers only see v2");

    // A v1 payload the upcaster cannot lift is parked, unchanged, as a dead letter.
    let mut broken = world.envelope("versions", 0, false);
    broken.payload = json!({ "nothing": true });
    world.produce(std::slice::from_ref(&broken)).await;
    let letters = wait_for_dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope.version, 1);
    assert!(letters[0].error.contains("old_seq missing"), "{}", letters[0].error);
    relay.stop().await;
    subscriber.stop().await;
    let _ = MessageId::generate(&UuidV7Gen);
}

async fn a_panicking_handler_parks_its_message_and_its_lane_keeps_working(world: World) {
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let mut falls_over = world.envelope("shaky", 0, false);
    falls_over.payload["panic"] = json!(true);
    let mut messages = vec![falls_over.clone()];
    // The same key (the same lane) and others, after it.
    messages.extend((1..20).map(|i| world.envelope(if i % 2 == 0 { "shaky" } else { "steady" }, i, false)));
    world.produce(&messages).await;
    assert_eq!(world.wait_for_effects(19, WAIT).await.len(), 19, "the lane survived the panic");
    let letters = wait_for_dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope.id, falls_over.id);
    assert!(letters[0].error.contains("handler panicked: the handler fell over"), "{}", letters[0].error);
    relay.stop().await;
    subscriber.stop().await;
}

/// Messages of one key arrive in a burst, so a lane has many queued at once: each handler must
/// still see what the previous message of its key committed.
async fn a_handler_sees_the_committed_effect_of_the_previous_message_of_its_key(world: World) {
    let messages: Vec<_> = (0..300).map(|i| world.envelope(&format!("reader-{}", i % 3), i, false)).collect();
    world.produce(&messages).await;
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let relay = world.relay(fast_relay());
    let effects = world.wait_for_effects(300, WAIT).await;
    assert_eq!(effects.len(), 300);
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for effect in effects {
        per_key.entry(effect.key).or_default().push(effect.previous);
    }
    for (key, previous) in per_key {
        assert_eq!(previous, (0..100).collect::<Vec<_>>(), "{key}: a handler missed an earlier effect");
    }
    relay.stop().await;
    subscriber.stop().await;
}

/// The relay may start before the subscriber's loop: what it publishes in between is kept for
/// the subscriber (declared when it was built), not acknowledged into the void.
async fn messages_published_before_the_subscriber_runs_are_kept_for_it(world: World) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let subscriber = tessera_bus::Subscriber::new(
        "consumer",
        world.source.clone(),
        world.consumer.clone(),
        world.transport.clone(),
        TestHandler::new(),
        std::sync::Arc::new(Upcasters::new()),
        fast_subscriber(),
    );
    let relay = world.relay(fast_relay());
    let messages: Vec<_> = (0..10).map(|i| world.envelope("early", i, false)).collect();
    world.produce(&messages).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = tokio::spawn(subscriber.run(stopped));
    let effects = world.wait_for_effects(10, WAIT).await;
    assert_eq!(effects.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    stop.send(true).expect("stop");
    running.await.expect("task").expect("subscriber");
    relay.stop().await;
}

async fn acknowledgements_are_marked_together_and_the_last_ones_without_further_traffic(world: World) {
    let unsent = || async { world.producer.outbox_backlog().await.expect("backlog").unsent };
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());
    let every = Duration::from_millis(1500);
    let relay = world.relay(tessera_bus::RelayOptions { mark_every: every, ..fast_relay() });
    // The first acknowledgement is marked at once: no mark has run yet.
    world.produce(&[world.envelope("marks", 0, false)]).await;
    assert_eq!(world.wait_for_effects(1, WAIT).await.len(), 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    while unsent().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(unsent().await, 0);
    let first_mark = tokio::time::Instant::now();
    // The next ones, acknowledged within the interval, wait for it and go in one mark.
    let messages: Vec<_> = (1..=5).map(|i| world.envelope("marks", i, false)).collect();
    world.produce(&messages).await;
    assert_eq!(world.wait_for_effects(6, WAIT).await.len(), 6);
    if first_mark.elapsed() < every / 2 {
        assert_eq!(unsent().await, 5, "marked before the interval was over");
    }
    // Nothing else happens, and still they are marked once the interval is over.
    tokio::time::sleep_until(first_mark + every + Duration::from_millis(500)).await;
    assert_eq!(unsent().await, 0, "the gathered acknowledgements were never marked");
    relay.stop().await;
    subscriber.stop().await;
}
