//! The writer thread: drains the queue, applies each unit in a savepoint, commits the group.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tessera_audit::{AuditRecord, next_link};
use tessera_kernel::{Clock, StreamId};
use tokio::sync::mpsc;

use super::durable::Durability;
use super::sql::{bind, highest_outbox_position};
use super::wal::LogRestart;
use crate::backend::{
    CommitReceipt, Committed, EncodedEvent, Job, Op, OutgoingMessage, Reply, audit_hash, to_i64, to_u64,
};
use crate::error::{Result, StoreError};
use crate::model::Statement;
use crate::version::ExpectedVersion;

/// A stream's current version, when the cache of stream heads does not know it.
pub(super) const STREAM_VERSION: &str = "SELECT max(version) FROM tessera_events WHERE stream_id = ?1";

/// Who answers a committed batch.
pub(super) enum Acknowledge {
    /// As soon as it is committed (`synchronous=NORMAL` was asked for: no durability promise).
    OnCommit,
    /// The sync thread, once the write-ahead log holding it is on disk.
    AfterSync(std::sync::mpsc::Sender<Committed>, Arc<Durability>),
}

pub(super) fn run(
    connection: Connection,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    clock: Arc<dyn Clock>,
    acknowledge: Acknowledge,
    log_restart: &LogRestart,
) {
    let mut writer = Writer { connection, heads: StreamHeads::default() };
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Acknowledge::AfterSync(_, durability) = &acknowledge
            && durability.has_failed()
        {
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(Durability::failed_error()));
            }
            continue;
        }
        log_restart.run_if_asked(&writer.connection);
        let (results, outbox_high) = writer.commit_batch(&batch, to_i64(clock.now().as_micros()));
        let replies: Vec<Reply> = batch.drain(..).map(|job| job.reply).zip(results).collect();
        match &acknowledge {
            Acknowledge::OnCommit => {
                for (reply, result) in replies {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = reply.send(result);
                }
            }
            Acknowledge::AfterSync(sync, durability) => {
                if let Some(high) = outbox_high {
                    durability.note_committed(high);
                }
                if let Err(std::sync::mpsc::SendError(unsent)) = sync.send(Committed { replies, outbox_high })
                {
                    for (reply, _) in unsent.replies {
                        let _ = reply.send(Err(StoreError::NotDurable("the sync thread has stopped".into())));
                    }
                }
            }
        }
    }
}

struct Writer {
    connection: Connection,
    heads: StreamHeads,
}

/// The current version of recently written streams, so that a version check costs a hash
/// lookup instead of an index probe. Every write to the file goes through this writer, but to
/// stay correct if another connection writes anyway, the cache is dropped whenever the file's
/// data version has moved since this writer's own last commit.
#[derive(Default)]
struct StreamHeads {
    versions: HashMap<String, Option<u64>>,
    /// Entries this batch changed, with their previous value, to undo a unit that rolls back.
    undo: Vec<(String, Option<Option<u64>>)>,
    /// The data version right after this writer's last commit.
    data_version: Option<u32>,
}

/// The file's data version, which moves with every commit to it, this connection's included.
/// (`PRAGMA data_version` ignores this connection's own commits, but SQLite prepares a pragma
/// again on every execution, which cost a parse per batch.)
fn data_version(connection: &Connection) -> Result<u32> {
    let mut version = 0u32;
    connection.file_control(Some(rusqlite::MAIN_DB), rusqlite::FileControl::DataVersion(&mut version))?;
    Ok(version)
}

impl StreamHeads {
    const MAX_ENTRIES: usize = 100_000;

    /// Called inside the batch's write transaction, before any unit runs.
    fn validate(&mut self, connection: &Connection) -> Result<()> {
        let current = data_version(connection)?;
        if self.data_version != Some(current) || self.versions.len() > Self::MAX_ENTRIES {
            self.versions.clear();
        }
        Ok(())
    }

    /// Called after this writer's commit.
    fn committed(&mut self, connection: &Connection) -> Result<()> {
        self.data_version = Some(data_version(connection)?);
        Ok(())
    }

    fn current(&mut self, connection: &Connection, stream: &StreamId) -> Result<Option<u64>> {
        if let Some(version) = self.versions.get(stream.as_str()) {
            return Ok(*version);
        }
        let version: Option<i64> =
            connection.prepare_cached(STREAM_VERSION)?.query_row([stream.as_str()], |row| row.get(0))?;
        let version = version.map(|v| v.max(0).unsigned_abs());
        self.versions.insert(stream.as_str().to_owned(), version);
        Ok(version)
    }

    fn set(&mut self, stream: &StreamId, version: u64) {
        let previous = self.versions.insert(stream.as_str().to_owned(), Some(version));
        self.undo.push((stream.as_str().to_owned(), previous));
    }

    /// Reverts the changes made since `mark` (a unit that rolled back).
    fn revert(&mut self, mark: usize) {
        for (stream, previous) in self.undo.drain(mark..).rev() {
            match previous {
                Some(version) => self.versions.insert(stream, version),
                None => self.versions.remove(&stream),
            };
        }
    }
}

impl Writer {
    /// Applies every unit of the batch in its own savepoint, then commits once. If the commit
    /// itself fails, every unit of the batch fails with it.
    /// Also returns the outbox's highest position if the batch wrote to the outbox.
    fn commit_batch(&mut self, batch: &[Job], now: i64) -> (Vec<Result<CommitReceipt>>, Option<u64>) {
        let outcome = self.try_commit_batch(batch, now);
        // Whatever happened, the undo log belongs to this batch only.
        self.heads.undo.clear();
        match outcome {
            Ok(committed) => committed,
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                // The cache may hold versions of the rolled-back batch.
                self.heads.versions.clear();
                (batch.iter().map(|_| Err(error.shared())).collect(), None)
            }
        }
    }

    /// `Err` means the transaction as a whole failed; per-unit failures are in the list.
    fn try_commit_batch(
        &mut self,
        batch: &[Job],
        now: i64,
    ) -> Result<(Vec<Result<CommitReceipt>>, Option<u64>)> {
        self.connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.heads.validate(&self.connection)?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            let result = if is_one_statement(&job.ops) {
                self.apply_as_one_statement(&job.ops, now)?
            } else {
                self.apply_in_savepoint(&job.ops, now)?
            };
            results.push(result);
        }
        let sent = batch
            .iter()
            .zip(&results)
            .any(|(job, result)| result.is_ok() && job.ops.iter().any(|op| matches!(op, Op::Send(_))));
        let outbox_high = if sent { highest_outbox_position(&self.connection)? } else { None };
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        self.heads.committed(&self.connection)?;
        for receipt in results.iter_mut().flatten() {
            receipt.batch_size = batch.len();
        }
        Ok((results, outbox_high))
    }

    /// A unit that writes with one SQL statement needs no savepoint: SQLite undoes a failed
    /// statement by itself and keeps the transaction, and every check that can fail such a unit
    /// runs before its statement or leaves nothing written. Skipping the savepoint also spares
    /// the statement journal its page copies, a tenth of the writer's time with small units.
    fn apply_as_one_statement(&mut self, ops: &[Op], now: i64) -> Result<Result<CommitReceipt>> {
        let mark = self.heads.undo.len();
        match apply(&self.connection, &mut self.heads, ops, now) {
            Ok(receipt) => Ok(Ok(receipt)),
            Err(error) => {
                self.heads.revert(mark);
                // An I/O or full-disk error can end the whole transaction, not just the statement.
                if self.connection.is_autocommit() {
                    return Err(error);
                }
                Ok(Err(error))
            }
        }
    }

    /// The outer error is the transaction breaking; the inner one is this unit's own failure.
    fn apply_in_savepoint(&mut self, ops: &[Op], now: i64) -> Result<Result<CommitReceipt>> {
        let connection = &self.connection;
        connection.prepare_cached("SAVEPOINT unit")?.execute([])?;
        let mark = self.heads.undo.len();
        match apply(connection, &mut self.heads, ops, now) {
            Ok(receipt) => {
                connection.prepare_cached("RELEASE unit")?.execute([])?;
                Ok(Ok(receipt))
            }
            Err(error) => {
                self.heads.revert(mark);
                connection.prepare_cached("ROLLBACK TO unit")?.execute([])?;
                connection.prepare_cached("RELEASE unit")?.execute([])?;
                Ok(Err(error))
            }
        }
    }
}

/// Whether `ops` write with at most one statement whose failure leaves nothing behind. An
/// `Execute` is left out because its affected-rows check runs after the statement has written.
/// So are a send and an outbox prune: each writes the outbox row and its envelope with two
/// statements (decision 0013), and the second failing must not leave the first behind.
fn is_one_statement(ops: &[Op]) -> bool {
    match ops {
        [] => true,
        [only] => match only {
            Op::Append { events, .. } => events.len() <= 1,
            Op::Snapshot { .. }
            | Op::Schedule { .. }
            | Op::FireTimer(_)
            | Op::CancelTimer(_)
            | Op::RecordInbox(_)
            | Op::Checkpoint { .. }
            | Op::PruneInbox { .. }
            | Op::Audit(_) => true,
            Op::MarkSent(positions) => consecutive_runs(positions).len() <= 1,
            Op::Send(_) | Op::PruneOutbox { .. } | Op::Execute(_) => false,
        },
        _ => false,
    }
}

/// `positions` as runs of consecutive values, `(first, last)` inclusive, in ascending order.
fn consecutive_runs(positions: &[u64]) -> Vec<(u64, u64)> {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for position in sorted {
        match runs.last_mut() {
            Some((_, last)) if position == *last + 1 => *last = position,
            _ => runs.push((position, position)),
        }
    }
    runs
}

fn apply(connection: &Connection, heads: &mut StreamHeads, ops: &[Op], now: i64) -> Result<CommitReceipt> {
    let mut receipt = CommitReceipt::default();
    for op in ops {
        match op {
            Op::Append { stream, expected, events } => {
                let (version, last_position) = append(connection, heads, stream, *expected, events, now)?;
                receipt.stream_versions.push((stream.clone(), version));
                receipt.last_position = last_position.or(receipt.last_position);
            }
            Op::Snapshot { stream, version, state } => {
                connection
                    .prepare_cached(
                        "INSERT INTO tessera_snapshots (stream_id, version, state, taken_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state,
                         taken_at = excluded.taken_at WHERE excluded.version > tessera_snapshots.version",
                    )?
                    .execute(params![stream.as_str(), to_i64(*version), state, now])?;
            }
            Op::Send(message) => {
                insert_outbox(connection, message, now)?;
            }
            Op::Schedule { due_at, message } => {
                connection
                    .prepare_cached(
                        "INSERT INTO tessera_timers (timer_id, due_at, envelope, state) VALUES (?1, ?2, ?3, 'pending')",
                    )?
                    .execute(params![message.id.to_string(), to_i64(due_at.as_micros()), message.json])
                    .map_err(constraint_as_typed)?;
            }
            Op::FireTimer(id) => {
                let changed = connection
                    .prepare_cached(
                        "UPDATE tessera_timers SET state = 'fired', changed_at = ?2 WHERE timer_id = ?1 AND state = 'pending'",
                    )?
                    .execute(params![id.to_string(), now])?;
                if changed == 0 {
                    return Err(StoreError::TimerNotPending(*id));
                }
            }
            Op::CancelTimer(id) => {
                connection
                    .prepare_cached(
                        "UPDATE tessera_timers SET state = 'cancelled', changed_at = ?2 WHERE timer_id = ?1 AND state = 'pending'",
                    )?
                    .execute(params![id.to_string(), now])?;
            }
            Op::RecordInbox(id) => {
                let inserted = connection
                    .prepare_cached(
                        "INSERT OR IGNORE INTO tessera_inbox (message_id, recorded_at) VALUES (?1, ?2)",
                    )?
                    .execute(params![id.to_string(), now])?;
                if inserted == 0 {
                    return Err(StoreError::DuplicateMessage(*id));
                }
            }
            Op::Checkpoint { name, position } => {
                connection
                    .prepare_cached(
                        "INSERT INTO tessera_checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                    )?
                    .execute(params![name, to_i64(*position), now])?;
            }
            Op::Execute(statement) => {
                receipt.rows_affected += execute(connection, statement)?;
            }
            Op::MarkSent(positions) => {
                // The relay marks what it read in order, so the positions are nearly always one
                // run: one statement per run instead of one per row.
                let mut update = connection.prepare_cached(
                    "UPDATE tessera_outbox SET sent_at = ?3 WHERE position BETWEEN ?1 AND ?2 AND sent_at IS NULL",
                )?;
                for (first, last) in consecutive_runs(positions) {
                    receipt.rows_affected +=
                        update.execute(params![to_i64(first), to_i64(last), now])? as u64;
                }
            }
            Op::PruneOutbox { sent_before } => {
                let before = to_i64(sent_before.as_micros());
                connection
                    .prepare_cached(
                        "DELETE FROM tessera_outbox_envelopes WHERE position IN
                           (SELECT position FROM tessera_outbox WHERE sent_at IS NOT NULL AND sent_at < ?1)",
                    )?
                    .execute([before])?;
                receipt.rows_affected += connection
                    .prepare_cached("DELETE FROM tessera_outbox WHERE sent_at IS NOT NULL AND sent_at < ?1")?
                    .execute([before])? as u64;
            }
            Op::PruneInbox { recorded_before } => {
                receipt.rows_affected += connection
                    .prepare_cached("DELETE FROM tessera_inbox WHERE recorded_at < ?1")?
                    .execute([to_i64(recorded_before.as_micros())])?
                    as u64;
            }
            Op::Audit(record) => append_audit(connection, record)?,
        }
    }
    Ok(receipt)
}

/// Links `record` to the chain's last row. This runs inside the batch's `BEGIN IMMEDIATE`
/// transaction, which holds the file's write lock, so the last row read here is the chain's
/// head even if another connection wrote; a unit rolled back to its savepoint takes its row
/// with it, and the next unit links to the row before, leaving no gap.
fn append_audit(connection: &Connection, record: &AuditRecord) -> Result<()> {
    let head: Option<(i64, Vec<u8>)> = connection
        .prepare_cached("SELECT idx, hash FROM tessera_audit ORDER BY idx DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let head = head
        .map(|(index, hash)| {
            let index = to_u64(index)?;
            Ok::<_, StoreError>((index, audit_hash(index, &hash)?))
        })
        .transpose()?;
    let (index, hash) = next_link(head, record);
    connection
        .prepare_cached(
            "INSERT INTO tessera_audit (idx, at, actor, role, action, resource, outcome, trace_id, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            to_i64(index),
            to_i64(record.at.as_micros()),
            record.actor,
            record.role,
            record.action,
            record.resource,
            record.outcome,
            record.trace_id,
            hash.as_slice()
        ])?;
    Ok(())
}

fn append(
    connection: &Connection,
    heads: &mut StreamHeads,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[EncodedEvent],
    now: i64,
) -> Result<(u64, Option<u64>)> {
    let actual = heads.current(connection, stream)?;
    if !expected.check(actual) {
        return Err(StoreError::Conflict { stream: stream.clone(), expected, actual });
    }
    let mut version = actual.unwrap_or(0);
    let mut insert = connection.prepare_cached(
        "INSERT INTO tessera_events (stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for event in events {
        version += 1;
        insert
            .execute(params![
                stream.as_str(),
                to_i64(version),
                event.id,
                event.name,
                event.schema_version,
                event.payload,
                event.metadata,
                now
            ])
            .map_err(constraint_as_typed)?;
    }
    if !events.is_empty() {
        heads.set(stream, version);
    }
    let last_position = (!events.is_empty()).then(|| connection.last_insert_rowid().max(0).unsigned_abs());
    Ok((version, last_position))
}

fn insert_outbox(connection: &Connection, message: &OutgoingMessage, now: i64) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO tessera_outbox (message_id, name, key, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![message.id.to_string(), message.name, message.key, now])
        .map_err(constraint_as_typed)?;
    connection
        .prepare_cached("INSERT INTO tessera_outbox_envelopes (position, envelope) VALUES (?1, ?2)")?
        .execute(params![connection.last_insert_rowid(), message.json])?;
    Ok(())
}

fn execute(connection: &Connection, statement: &Statement) -> Result<u64> {
    let mut prepared = connection.prepare_cached(&statement.sql)?;
    bind(&mut prepared, &statement.params)?;
    let affected = prepared.raw_execute().map_err(constraint_as_typed)? as u64;
    statement.check_affected(affected)?;
    Ok(affected)
}

/// Constraint failures are the caller's business (a duplicate email, say), not an outage.
fn constraint_as_typed(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Constraint(message.clone().unwrap_or_else(|| failure.to_string()))
        }
        _ => StoreError::Sqlite(error),
    }
}

#[cfg(test)]
mod tests {
    use super::consecutive_runs;

    #[test]
    fn positions_become_inclusive_runs_whatever_their_order_and_repeats() {
        assert_eq!(consecutive_runs(&[]), vec![]);
        assert_eq!(consecutive_runs(&[7]), vec![(7, 7)]);
        assert_eq!(consecutive_runs(&[3, 4, 5, 6]), vec![(3, 6)]);
        assert_eq!(consecutive_runs(&[9, 3, 4, 4, 10, 12]), vec![(3, 4), (9, 10), (12, 12)]);
    }
}
