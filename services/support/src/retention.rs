//! Support's retention job: a closed ticket's messages are erased once the retention declared
//! for them ([`crate::personal_data::TICKET_MESSAGE`], or the setting that replaces it) has
//! passed since the ticket was closed.
//!
//! The timer is the data: a ticket's `closed_at` plus the retention is when it is due, and
//! `messages_erased_at` says it was done. A sweep asks the table what is due by now, so a
//! restart neither loses a due erasure (the next sweep finds it) nor repeats one (an erased
//! ticket is no longer selected, and marking it is guarded). Each ticket is erased in a unit of
//! work of its own, with its audit record: the rows, the mark and the record commit together.
//!
//! `tessera governance retention` reads [`status`] straight from the store.

use std::time::Duration;

use serde::Serialize;
use tessera_kernel::Timestamp;
use tessera_store::{SqlValue, Statement, Store, StoreError};
use tessera_web::token::Actor;

use crate::domain::MessageRetention;
use crate::personal_data::TICKET_MESSAGE;

/// The job's name in `retention_runs` and in reports.
pub const JOB: &str = "closed ticket messages";

/// The audit action of one ticket's erasure.
pub const ERASE_ACTION: &str = "ticket.messages.erase";

/// How many due tickets one sweep takes; the rest wait for the next.
const SWEEP_LIMIT: i64 = 500;

/// How the job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    pub messages: MessageRetention,
    /// Between sweeps. A due erasure waits at most this long.
    pub sweep_every: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { messages: MessageRetention::declared(), sweep_every: Duration::from_secs(3600) }
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sweep {
    pub tickets: u64,
    pub messages: u64,
}

/// What is due and what was done, for a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    pub job: &'static str,
    /// The retention the data map declares for ticket messages.
    pub declared: String,
    /// The retention the last sweep applied (the setting), or the declared one before any.
    pub applied: String,
    /// Closed tickets whose messages are due now and not yet erased, and those messages.
    pub due_tickets: u64,
    pub due_messages: u64,
    /// When the next ticket not yet due will be.
    pub next_due_at: Option<Timestamp>,
    pub last_run_at: Option<Timestamp>,
    /// Messages erased by the last sweep, and by every sweep.
    pub last_erased: u64,
    pub total_erased: u64,
}

fn rule(retention: MessageRetention) -> String {
    format!("{} day(s) after the ticket is closed", retention.in_days())
}

fn micros(at: Timestamp) -> i64 {
    i64::try_from(at.as_micros()).unwrap_or(i64::MAX)
}

fn count(value: Option<i64>) -> u64 {
    value.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// Erases the messages of every closed ticket due by `now` (up to a sweep's worth), each in
/// its own unit of work with an audit record, then notes the run.
pub async fn erase_due_messages(
    store: &Store,
    retention: MessageRetention,
    now: Timestamp,
) -> Result<Sweep, StoreError> {
    let due = store
        .query(
            Statement::new(
                "SELECT t.id, (SELECT COUNT(*) FROM ticket_messages m WHERE m.ticket_id = t.id) AS messages
                 FROM tickets t
                 WHERE t.status = 'closed' AND t.messages_erased_at IS NULL AND t.closed_at <= $1
                 ORDER BY t.closed_at LIMIT $2",
            )
            .bind(micros(retention.closed_by(now)))
            .bind(SWEEP_LIMIT),
        )
        .await?;
    let actor = Actor::system("retention");
    let mut sweep = Sweep::default();
    for row in &due {
        let ticket = row.text("id")?.to_owned();
        let messages = count(row.opt_int("messages")?);
        let mut unit = store.begin();
        // The guard makes a second sweeper (another replica, a sweep after a crash) a no-op:
        // its unit is refused before it deletes or audits anything twice.
        unit.execute(
            Statement::new(
                "UPDATE tickets SET messages_erased_at = $2 WHERE id = $1 AND messages_erased_at IS NULL",
            )
            .bind(ticket.as_str())
            .bind(micros(now))
            .expect_rows(1, "already_erased"),
        );
        unit.execute(
            Statement::new("DELETE FROM ticket_messages WHERE ticket_id = $1").bind(ticket.as_str()),
        );
        unit.execute(record_erased(retention, now, messages));
        unit.audit(actor.audit(ERASE_ACTION, format!("ticket/{ticket}"), "ok", now));
        match unit.commit().await {
            Ok(_) => {
                sweep.tickets += 1;
                sweep.messages += messages;
            }
            Err(StoreError::Rejected { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    let mut unit = store.begin();
    unit.execute(
        Statement::new("UPDATE retention_runs SET last_run_at = $2, last_count = $3 WHERE job = $1")
            .bind(JOB)
            .bind(micros(now))
            .bind(i64::try_from(sweep.messages).unwrap_or(i64::MAX)),
    );
    unit.execute(record_erased(retention, now, 0));
    unit.commit().await?;
    Ok(sweep)
}

/// Adds `erased` to the job's total, creating its row on the first run.
fn record_erased(retention: MessageRetention, now: Timestamp, erased: u64) -> Statement {
    Statement::new(
        "INSERT INTO retention_runs (job, kept_days, last_run_at, last_count, total_count) VALUES ($1, $2, $3, 0, $4)
         ON CONFLICT (job) DO UPDATE SET kept_days = excluded.kept_days,
           total_count = retention_runs.total_count + excluded.total_count",
    )
    .bind(JOB)
    .bind(i64::try_from(retention.in_days()).unwrap_or(i64::MAX))
    .bind(micros(now))
    .bind(i64::try_from(erased).unwrap_or(i64::MAX))
}

/// What is due by `now` under `retention` (`None`: the one the last run applied, or the
/// declared one), and what the job has done.
pub async fn status(
    store: &Store,
    retention: Option<MessageRetention>,
    now: Timestamp,
) -> Result<RetentionStatus, StoreError> {
    let runs = store
        .query(
            Statement::new(
                "SELECT kept_days, last_run_at, last_count, total_count FROM retention_runs WHERE job = $1",
            )
            .bind(JOB),
        )
        .await?;
    let run = runs.first();
    let applied_days =
        run.and_then(|r| r.opt_int("kept_days").ok().flatten()).and_then(|days| u32::try_from(days).ok());
    let retention =
        retention.or(applied_days.map(MessageRetention::days)).unwrap_or_else(MessageRetention::declared);
    let due = store
        .query(
            Statement::new(
                "SELECT COUNT(*) AS tickets,
                   (SELECT COUNT(*) FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id
                    WHERE t.status = 'closed' AND t.messages_erased_at IS NULL AND t.closed_at <= $1) AS messages,
                   (SELECT MIN(closed_at) FROM tickets
                    WHERE status = 'closed' AND messages_erased_at IS NULL AND closed_at > $1) AS next_closed
                 FROM tickets WHERE status = 'closed' AND messages_erased_at IS NULL AND closed_at <= $1",
            )
            .bind(micros(retention.closed_by(now))),
        )
        .await?;
    let due = due.first();
    let int = |column: &str| -> Result<Option<i64>, StoreError> {
        match due.map(|row| row.get(column)).transpose()? {
            Some(SqlValue::Int(n)) => Ok(Some(*n)),
            _ => Ok(None),
        }
    };
    let run_int = |column: &str| -> Result<Option<i64>, StoreError> {
        run.map(|row| row.opt_int(column)).transpose().map(Option::flatten)
    };
    Ok(RetentionStatus {
        job: JOB,
        declared: TICKET_MESSAGE.retention.to_string(),
        applied: rule(retention),
        due_tickets: count(int("tickets")?),
        due_messages: count(int("messages")?),
        next_due_at: int("next_closed")?
            .and_then(|n| u64::try_from(n).ok())
            .map(|closed| retention.due_at(Timestamp::from_micros(closed))),
        last_run_at: run_int("last_run_at")?.and_then(|n| u64::try_from(n).ok()).map(Timestamp::from_micros),
        last_erased: count(run_int("last_count")?),
        total_erased: count(run_int("total_count")?),
    })
}
