//! The engine against a real store (SQLite), with a manual clock for timeouts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera_kernel::{Envelope, HlcTimestamp, ManualClock, Timestamp, UuidV7Gen};
use tessera_saga::{Command, DataError, SagaDefinition, SagaEngine, Status, Step, StepKind, StepOutcome};
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;

fn command(target: &str, name: &str) -> Result<Command, DataError> {
    Ok(Command { target: target.into(), name: name.into(), payload: json!({}) })
}

fn place_order() -> SagaDefinition {
    SagaDefinition {
        name: "place_order",
        steps: vec![
            Step {
                name: "reserve",
                timeout: Duration::from_secs(5),
                action: |data| {
                    Command::new("inventory", "inventory.ReserveStock", &json!({ "order": data["order"] }))
                },
                compensation: Some(|_| command("inventory", "inventory.ReleaseStock")),
                retriable: false,
            },
            Step {
                name: "authorise",
                timeout: Duration::from_secs(5),
                action: |_| command("payments", "payments.AuthorisePayment"),
                // A saga whose data says `unreadable` cannot build its compensation: data written
                // by an older shape that no longer reads.
                compensation: Some(|data| {
                    if data["unreadable"] == true {
                        return Err(DataError("the data no longer reads".into()));
                    }
                    command("payments", "payments.VoidPayment")
                }),
                retriable: false,
            },
            Step {
                name: "confirm",
                timeout: Duration::from_secs(5),
                action: |_| command("orders", "orders.ConfirmOrder"),
                compensation: None,
                retriable: true,
            },
        ],
        stuck_after: 2,
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(30),
    }
}

struct Fixture {
    _dir: TempDataDir,
    store: Store,
    clock: Arc<ManualClock>,
    engine: SagaEngine,
}

async fn fixture() -> Fixture {
    let dir = TempDataDir::new();
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_000_000_000)));
    let config = StoreConfig::Sqlite { path: dir.file("orders.db"), options: SqliteOptions::default() };
    let store =
        Store::open_with_clock(&config, &[tessera_saga::MIGRATIONS], clock.clone()).await.expect("store");
    let engine = SagaEngine::new("orders", place_order(), clock.clone(), Arc::new(UuidV7Gen));
    Fixture { _dir: dir, store, clock, engine }
}

impl Fixture {
    /// The outbox's commands so far, oldest first, and marks them sent.
    async fn take_commands(&self) -> Vec<Envelope> {
        let rows = self.store.outbox_unsent(0, 100).await.expect("outbox");
        let positions: Vec<u64> = rows.iter().map(|r| r.position).collect();
        self.store.mark_sent(&positions).await.expect("mark");
        rows.into_iter().map(|r| r.envelope).collect()
    }

    async fn answer(&self, command: &Envelope, result: Result<Option<serde_json::Value>, String>) -> bool {
        let reply =
            SagaEngine::reply(command, &UuidV7Gen, HlcTimestamp::default(), result).expect("a saga command");
        let mut unit = self.store.begin();
        unit.record_inbox(reply.id);
        let handled = self.engine.handle_reply(&reply, &mut unit).await.expect("handle").is_some();
        unit.commit().await.expect("commit");
        handled
    }

    /// Starts saga `id` and returns its first command (the reservation).
    async fn start(&self, id: &str, order: u64) -> Envelope {
        let mut unit = self.store.begin();
        self.engine.start(&mut unit, id, json!({ "order": order }), None).expect("start");
        unit.commit().await.expect("commit");
        self.take_commands().await.pop().expect("reserve")
    }

    /// Starts saga `id`, answers its reservation, and returns the authorisation command.
    async fn start_and_reserve(&self, id: &str, order: u64) -> Envelope {
        let reserve = self.start(id, order).await;
        self.answer(&reserve, Ok(None)).await;
        self.take_commands().await.pop().expect("authorise")
    }

    async fn status(&self) -> (Status, usize) {
        let sagas = self.engine.list(&self.store, None).await.expect("list");
        (sagas[0].status, sagas[0].step)
    }
}

#[tokio::test]
async fn a_saga_sends_each_step_in_turn_and_completes() {
    let f = fixture().await;
    let mut unit = f.store.begin();
    f.engine.start(&mut unit, "order-1", json!({ "order": 1 }), None).expect("start");
    unit.commit().await.expect("commit");

    let commands = f.take_commands().await;
    assert_eq!(commands.len(), 1);
    let reserve = &commands[0];
    assert_eq!(
        (reserve.name.as_str(), reserve.target.as_deref(), reserve.key.as_str()),
        ("inventory.ReserveStock", Some("inventory"), "order-1")
    );
    assert_eq!(reserve.payload["order"], 1);
    assert_eq!(
        reserve.payload["saga"],
        json!({ "name": "place_order", "id": "order-1", "step": 0, "compensation": false })
    );

    assert!(f.answer(reserve, Ok(Some(json!({ "reservation": "r-9" })))).await);
    let authorise = f.take_commands().await.pop().expect("next command");
    assert_eq!(authorise.name, "payments.AuthorisePayment");
    assert_eq!(reserve.causation_id, None, "started without a cause");
    assert_eq!(authorise.correlation_id, reserve.correlation_id, "one correlation through the replies");
    assert!(
        authorise.causation_id.is_some_and(|cause| cause != reserve.id),
        "caused by the reply, not the command"
    );
    assert!(f.answer(&authorise, Ok(None)).await);
    let confirm = f.take_commands().await.pop().expect("next command");
    assert_eq!(confirm.correlation_id, reserve.correlation_id);
    assert!(f.answer(&confirm, Ok(None)).await);
    assert_eq!(f.status().await, (Status::Completed, 2));
    assert!(f.take_commands().await.is_empty());

    // Earlier timers were cancelled as the saga moved on: nothing fires later.
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 0);
    assert!(f.store.due_timers(100).await.expect("due").is_empty());
}

#[tokio::test]
async fn a_timed_out_step_is_compensated_in_reverse_and_a_late_reply_changes_nothing() {
    let f = fixture().await;
    let authorise = f.start_and_reserve("order-2", 2).await;

    f.clock.advance(Duration::from_secs(4));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 0, "not due yet");
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 1);
    let void = f.take_commands().await.pop().expect("void");
    assert_eq!(void.name, "payments.VoidPayment", "the timed-out step is undone first");
    assert_eq!(f.status().await, (Status::Compensating, 1));

    // The authorisation's reply arrives late: ignored.
    f.answer(&authorise, Ok(None)).await;
    assert!(f.take_commands().await.is_empty());

    f.answer(&void, Ok(None)).await;
    let release = f.take_commands().await.pop().expect("release");
    assert_eq!(release.name, "inventory.ReleaseStock");
    f.answer(&release, Ok(None)).await;
    let sagas = f.engine.list(&f.store, Some(Status::Compensated)).await.expect("list");
    assert_eq!(sagas.len(), 1);
    assert_eq!(sagas[0].reason.as_deref(), Some("step authorise timed out"));
}

#[tokio::test]
async fn a_success_after_the_deadline_is_the_timeout_even_before_the_timer_fires() {
    let f = fixture().await;
    let authorise = f.start_and_reserve("order-3", 3).await;

    // Past the step's 5 s, with its timer not fired yet (a busy service), the authorisation
    // succeeds: too late, so it is undone as the timeout would have undone it.
    f.clock.advance(Duration::from_secs(6));
    assert!(f.answer(&authorise, Ok(None)).await);
    let void = f.take_commands().await.pop().expect("void");
    assert_eq!(void.name, "payments.VoidPayment");
    assert_eq!(f.status().await, (Status::Compensating, 1));
    // The timer was cancelled with the move: nothing fires twice.
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 0);
    assert!(f.take_commands().await.is_empty());

    f.answer(&void, Ok(None)).await;
    let release = f.take_commands().await.pop().expect("release");
    f.answer(&release, Ok(None)).await;
    let sagas = f.engine.list(&f.store, Some(Status::Compensated)).await.expect("list");
    assert_eq!(sagas[0].reason.as_deref(), Some("step authorise timed out"));
}

#[tokio::test]
async fn a_success_just_before_the_deadline_moves_the_saga_on() {
    let f = fixture().await;
    let reserve = f.start("order-4", 4).await;
    f.clock.advance(Duration::from_millis(4_999));
    f.answer(&reserve, Ok(None)).await;
    let authorise = f.take_commands().await.pop().expect("authorise");
    assert_eq!(authorise.name, "payments.AuthorisePayment", "the next step, each with its own deadline");
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_is_retried_and_listed_as_stuck() {
    let f = fixture().await;
    let mut unit = f.store.begin();
    f.engine.start(&mut unit, "order-3", json!({}), None).expect("start");
    unit.commit().await.expect("commit");
    let reserve = f.take_commands().await.pop().expect("reserve");
    f.answer(&reserve, Ok(None)).await;
    let authorise = f.take_commands().await.pop().expect("authorise");
    f.answer(&authorise, Err("card declined".into())).await;
    let mut release = f.take_commands().await.pop().expect("release");
    assert_eq!(release.name, "inventory.ReleaseStock");

    for attempt in 1..=2u64 {
        f.answer(&release, Err("inventory unavailable".into())).await;
        assert!(f.take_commands().await.is_empty(), "no resend before the backoff");
        f.clock.advance(Duration::from_secs(1 << attempt));
        assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 1);
        release = f.take_commands().await.pop().expect("resent");
        assert_eq!(release.name, "inventory.ReleaseStock");
    }
    let stuck = f.engine.stuck(&f.store).await.expect("stuck");
    assert_eq!(stuck.len(), 1);
    assert!(
        stuck[0].stuck.as_deref().is_some_and(|s| s.contains("inventory unavailable")),
        "{:?}",
        stuck[0].stuck
    );

    f.answer(&release, Ok(None)).await;
    assert!(f.engine.stuck(&f.store).await.expect("stuck").is_empty());
    let done = f.engine.list(&f.store, None).await.expect("list");
    assert_eq!((done[0].status, done[0].reason.as_deref()), (Status::Compensated, Some("card declined")));
}

#[tokio::test]
async fn a_duplicate_reply_sends_nothing_twice_and_foreign_messages_are_not_claimed() {
    let f = fixture().await;
    let mut unit = f.store.begin();
    f.engine.start(&mut unit, "order-4", json!({}), None).expect("start");
    unit.commit().await.expect("commit");
    let reserve = f.take_commands().await.pop().expect("reserve");
    let reply =
        SagaEngine::reply(&reserve, &UuidV7Gen, HlcTimestamp::default(), Ok(None)).expect("a saga command");
    for _ in 0..2 {
        let mut unit = f.store.begin();
        f.engine.handle_reply(&reply, &mut unit).await.expect("handle");
        unit.commit().await.expect("commit");
    }
    assert_eq!(f.take_commands().await.len(), 1, "one authorisation, not two");

    let foreign = Envelope::new(
        &UuidV7Gen,
        tessera_kernel::MessageKind::Event,
        "inventory.StockAdjusted",
        "inventory",
        "sku-1",
        HlcTimestamp::default(),
        json!({}),
    );
    let mut unit = f.store.begin();
    assert!(f.engine.handle_reply(&foreign, &mut unit).await.expect("handle").is_none());
    assert!(!f.engine.claims(&foreign));
}

#[tokio::test]
async fn a_saga_whose_data_no_longer_reads_does_not_stall_the_other_timers() {
    let f = fixture().await;
    let mut unit = f.store.begin();
    f.engine.start(&mut unit, "order-bad", json!({ "order": 8, "unreadable": true }), None).expect("start");
    unit.commit().await.expect("commit");
    let reserve_bad = f.take_commands().await.pop().expect("reserve");
    f.answer(&reserve_bad, Ok(None)).await;
    f.take_commands().await;
    let _authorise = f.start_and_reserve("order-good", 9).await;

    // Both authorisations time out; the bad saga's is due first and cannot be decided.
    f.clock.advance(Duration::from_secs(6));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 1, "the good one fired");
    let void = f.take_commands().await.pop().expect("the good saga's void");
    assert_eq!(void.name, "payments.VoidPayment");
    let sagas = f.engine.list(&f.store, Some(Status::Compensating)).await.expect("list");
    assert_eq!(sagas.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["order-good"]);
    // The bad one's timer stays pending, tried again on every pass.
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 0);
}

/// A timed step as `(name, kind, duration in ms, outcome, attempts)`.
type Timed = (String, StepKind, Option<u128>, Option<StepOutcome>, u32);

/// Each timed step of the saga `id`.
async fn timeline(f: &Fixture, id: &str) -> Vec<Timed> {
    let saga = f.engine.find(&f.store, id).await.expect("find").expect("the saga");
    saga.timings
        .into_iter()
        .map(|t| (t.name.clone(), t.kind, t.duration().map(|d| d.as_millis()), t.outcome, t.attempts))
        .collect()
}

#[tokio::test]
async fn each_step_is_timed_by_the_engine_clock_with_how_it_ended() {
    let f = fixture().await;
    let reserve = f.start("order-timed", 1).await;
    f.clock.advance(Duration::from_millis(250));
    f.answer(&reserve, Ok(None)).await;
    let authorise = f.take_commands().await.pop().expect("authorise");
    f.clock.advance(Duration::from_millis(400));
    f.answer(&authorise, Ok(None)).await;
    let confirm = f.take_commands().await.pop().expect("confirm");
    f.clock.advance(Duration::from_millis(30));
    f.answer(&confirm, Ok(None)).await;
    use StepKind::Forward;
    use StepOutcome::Succeeded;
    assert_eq!(
        timeline(&f, "order-timed").await,
        vec![
            ("reserve".into(), Forward, Some(250), Some(Succeeded), 1),
            ("authorise".into(), Forward, Some(400), Some(Succeeded), 1),
            ("confirm".into(), Forward, Some(30), Some(Succeeded), 1),
        ]
    );
    let saga = f.engine.find(&f.store, "order-timed").await.expect("find").expect("the saga");
    assert_eq!(saga.updated_at.since(saga.started_at), Duration::from_millis(680), "the saga's own span");
}

#[tokio::test]
async fn a_failed_step_and_its_timed_out_neighbour_are_timed_with_their_compensations() {
    let f = fixture().await;
    // Refused: the authorisation fails, the reservation is released.
    let authorise = f.start_and_reserve("order-refused", 1).await;
    f.clock.advance(Duration::from_millis(120));
    f.answer(&authorise, Err("card declined".into())).await;
    let release = f.take_commands().await.pop().expect("release");
    f.clock.advance(Duration::from_millis(80));
    f.answer(&release, Ok(None)).await;
    use StepKind::{Compensation, Forward};
    use StepOutcome::{Compensated, Failed, Succeeded, TimedOut};
    assert_eq!(
        timeline(&f, "order-refused").await,
        vec![
            ("reserve".into(), Forward, Some(0), Some(Succeeded), 1),
            ("authorise".into(), Forward, Some(120), Some(Failed), 1),
            ("reserve".into(), Compensation, Some(80), Some(Compensated), 1),
        ]
    );

    // Timed out: its timer fires, and the step itself is undone before the one before it; the
    // void fails once and is sent again after its backoff.
    let _authorise = f.start_and_reserve("order-slow", 2).await;
    f.clock.advance(Duration::from_secs(6));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 1);
    let void = f.take_commands().await.pop().expect("void");
    f.answer(&void, Err("payments unavailable".into())).await;
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.engine.fire_due_timers(&f.store, 100, None).await.expect("timers"), 1);
    let void = f.take_commands().await.pop().expect("void again");
    f.answer(&void, Ok(None)).await;
    let release = f.take_commands().await.pop().expect("release");
    let pending = timeline(&f, "order-slow").await;
    assert_eq!(pending.last(), Some(&("reserve".into(), Compensation, None, None, 1)), "still waiting");
    f.answer(&release, Ok(None)).await;
    assert_eq!(
        timeline(&f, "order-slow").await,
        vec![
            ("reserve".into(), Forward, Some(0), Some(Succeeded), 1),
            ("authorise".into(), Forward, Some(6_000), Some(TimedOut), 1),
            ("authorise".into(), Compensation, Some(1_000), Some(Compensated), 2),
            ("reserve".into(), Compensation, Some(0), Some(Compensated), 1),
        ]
    );
}
