//! The writer: one connection, batches of units per transaction.
//!
//! A batch runs in four pipelined steps: take the write lock; read the current versions,
//! inbox records and pending timers the batch touches; decide each unit in memory (the lock
//! makes those reads authoritative) and run the units' own statements, each unit in a
//! savepoint; then write everything the accepted units add with one array insert per table,
//! and commit. A unit refused at the decision step costs its neighbours nothing. If the batch
//! fails past that point (a constraint only the database sees), it is rolled back and each
//! unit is retried alone, so the failure lands on the unit that caused it.
//!
//! The audit chain is serialised by the same write lock. Each audit record's index and hash
//! come from the chain's head, read in the batch's first step (after the lock) and advanced
//! in memory as units are accepted; replicas writing the same database each take the lock
//! before reading the head, so no two transactions can link to the same head. A one-row head
//! table locked `FOR UPDATE` would only serialise the same writers a second time, at the cost
//! of a statement and of a second lock to order against this one. A refused unit is never
//! accepted, so it consumes no index; a batch that fails as a whole is rolled back and its
//! units retried, each re-reading the head.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tessera_audit::next_link;
use tessera_kernel::Clock;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use crate::backend::{CommitReceipt, Committed, Job, Op, Reply, audit_hash, to_i64, to_u64};
use crate::error::{Result, StoreError};
use crate::model::Statement;

/// The transaction-scoped advisory lock every write transaction on a store's database takes
/// first. Anything else that writes events, outbox rows or audit records there must take it
/// too, or global positions lose their gap-safety and the audit chain could fork.
pub const WRITE_LOCK: i64 = 0x7e55_e7a0_0000_0001;

pub(super) struct Writer {
    client: Client,
    core: CoreStatements,
    own: HashMap<String, tokio_postgres::Statement>,
    heads: StreamHeads,
}

/// The current version of the streams this writer appended to, so a batch reads from the
/// database only the versions of streams it has not written itself: with long streams, the
/// index probe per stream was most of the database's time per unit.
///
/// The cache is exact only if no other writer (a replica of the service) appended events since
/// this writer's last batch. Positions are drawn under the write lock, so that holds exactly when
/// the highest event position, read under the lock, is still the last one this writer wrote.
#[derive(Default)]
struct StreamHeads {
    versions: HashMap<String, u64>,
    /// The highest event position when `versions` was last known exact.
    exact_at: Option<i64>,
}

impl StreamHeads {
    const MAX_ENTRIES: usize = 100_000;

    fn forget(&mut self) {
        self.versions.clear();
        self.exact_at = None;
    }

    /// After a commit: the batch's appends, and the highest position they took.
    fn committed(&mut self, additions: &Additions, highest_position: Option<u64>) {
        if self.versions.len() > Self::MAX_ENTRIES {
            self.versions.clear();
        }
        for (stream, version) in additions.event_streams.iter().zip(&additions.event_versions) {
            self.versions.insert(stream.clone(), version.max(&0).unsigned_abs());
        }
        if let Some(position) = highest_position {
            self.exact_at = Some(to_i64(position));
        }
    }
}

struct CoreStatements {
    lock: tokio_postgres::Statement,
    events_head: tokio_postgres::Statement,
    versions: tokio_postgres::Statement,
    inbox_seen: tokio_postgres::Statement,
    timers_pending: tokio_postgres::Statement,
    insert_events: tokio_postgres::Statement,
    insert_outbox: tokio_postgres::Statement,
    insert_inbox: tokio_postgres::Statement,
    insert_timers: tokio_postgres::Statement,
    set_timer_state: tokio_postgres::Statement,
    upsert_checkpoints: tokio_postgres::Statement,
    upsert_snapshots: tokio_postgres::Statement,
    mark_sent: tokio_postgres::Statement,
    prune_outbox: tokio_postgres::Statement,
    prune_inbox: tokio_postgres::Statement,
    audit_head: tokio_postgres::Statement,
    insert_audit: tokio_postgres::Statement,
}

impl CoreStatements {
    async fn prepare(client: &Client) -> Result<Self> {
        Ok(Self {
            lock: client.prepare("SELECT pg_advisory_xact_lock($1)").await?,
            events_head: client.prepare("SELECT max(position) FROM tessera_events").await?,
            versions: client
                .prepare(
                    // One index probe per stream (the backward scan behind max), not a scan of
                    // every event of the streams as `GROUP BY` would do.
                    "SELECT s, (SELECT max(version) FROM tessera_events WHERE stream_id = s)
                     FROM unnest($1::text[]) AS u(s)",
                )
                .await?,
            inbox_seen: client.prepare("SELECT message_id FROM tessera_inbox WHERE message_id = ANY($1::text[])").await?,
            timers_pending: client
                .prepare("SELECT timer_id FROM tessera_timers WHERE timer_id = ANY($1::text[]) AND state = 'pending'")
                .await?,
            insert_events: client
                .prepare(
                    "INSERT INTO tessera_events
                       (stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at)
                     SELECT s, v, i, n, sv, p, m, $8
                     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[])
                       WITH ORDINALITY AS u(s, v, i, n, sv, p, m, ord)
                     ORDER BY ord
                     RETURNING position",
                )
                .await?,
            insert_outbox: client
                .prepare(
                    "WITH given AS (
                       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                         WITH ORDINALITY AS u(i, n, k, e, ord)),
                     inserted AS (
                       INSERT INTO tessera_outbox (message_id, name, key, created_at)
                       SELECT i, n, k, $5 FROM given ORDER BY ord
                       RETURNING position, message_id),
                     envelopes AS (
                       INSERT INTO tessera_outbox_envelopes (position, envelope)
                       SELECT inserted.position, given.e FROM inserted JOIN given ON given.i = inserted.message_id)
                     SELECT max(position) FROM inserted",
                )
                .await?,
            insert_inbox: client
                .prepare("INSERT INTO tessera_inbox (message_id, recorded_at) SELECT i, $2 FROM unnest($1::text[]) AS u(i)")
                .await?,
            insert_timers: client
                .prepare(
                    "INSERT INTO tessera_timers (timer_id, due_at, envelope, state)
                     SELECT i, d, e, 'pending' FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(i, d, e)",
                )
                .await?,
            set_timer_state: client
                .prepare(
                    "UPDATE tessera_timers SET state = u.s, changed_at = $3
                     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(i, s, ord)
                     WHERE timer_id = u.i AND state = 'pending'",
                )
                .await?,
            upsert_checkpoints: client
                .prepare(
                    "INSERT INTO tessera_checkpoints (name, position, updated_at)
                     SELECT n, p, $3 FROM unnest($1::text[], $2::int8[]) AS u(n, p)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                )
                .await?,
            upsert_snapshots: client
                .prepare(
                    "INSERT INTO tessera_snapshots (stream_id, version, state, taken_at)
                     SELECT s, v, st, $4 FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(s, v, st)
                     ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state,
                       taken_at = excluded.taken_at
                     WHERE excluded.version > tessera_snapshots.version",
                )
                .await?,
            mark_sent: client
                .prepare(
                    "UPDATE tessera_outbox SET sent_at = $2 WHERE position = ANY($1::int8[]) AND sent_at IS NULL",
                )
                .await?,
            prune_outbox: client
                .prepare(
                    "WITH pruned AS (DELETE FROM tessera_outbox WHERE sent_at IS NOT NULL AND sent_at < $1 RETURNING position),
                     envelopes AS (DELETE FROM tessera_outbox_envelopes WHERE position IN (SELECT position FROM pruned))
                     SELECT count(*) FROM pruned",
                )
                .await?,
            prune_inbox: client.prepare("DELETE FROM tessera_inbox WHERE recorded_at < $1").await?,
            audit_head: client.prepare("SELECT idx, hash FROM tessera_audit ORDER BY idx DESC LIMIT 1").await?,
            insert_audit: client
                .prepare(
                    "INSERT INTO tessera_audit (idx, at, actor, role, action, resource, outcome, trace_id, hash)
                     SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::bytea[])",
                )
                .await?,
        })
    }
}

impl Writer {
    pub(super) async fn connect(config: &tokio_postgres::Config) -> Result<Self> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "store writer connection ended");
            }
        });
        // The writer does not wait for the log's flush inside COMMIT: the flusher makes each
        // batch durable before anyone is told (see `durable`). The write lock is then held only
        // until the commit is visible, so the next batch starts while this one is flushed.
        client.batch_execute("SET synchronous_commit = off").await?;
        let core = CoreStatements::prepare(&client).await?;
        Ok(Self { client, core, own: HashMap::new(), heads: StreamHeads::default() })
    }
}

pub(super) async fn run(
    writer: Writer,
    config: tokio_postgres::Config,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    clock: Arc<dyn Clock>,
    flusher: mpsc::Sender<Committed>,
) {
    let mut writer = Some(writer);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if writer.as_ref().is_none_or(|w| w.client.is_closed()) {
            writer = reconnect(&config).await;
        }
        let now = to_i64(clock.now().as_micros());
        let units: Vec<&[Op]> = batch.iter().map(|job| job.ops.as_slice()).collect();
        let (results, outbox_high) = match writer.as_mut() {
            Some(writer) => writer.commit(&units, now).await,
            None => (units.iter().map(|_| Err(StoreError::Closed)).collect(), None),
        };
        let replies: Vec<Reply> = batch.drain(..).map(|job| job.reply).zip(results).collect();
        if let Err(mpsc::error::SendError(unsent)) = flusher.send(Committed { replies, outbox_high }).await {
            for (reply, _) in unsent.replies {
                let _ = reply.send(Err(StoreError::NotDurable("the flusher has stopped".into())));
            }
        }
    }
}

/// One short attempt; callers see `Closed` (transient) and retry while the database is away.
async fn reconnect(config: &tokio_postgres::Config) -> Option<Writer> {
    match tokio::time::timeout(Duration::from_secs(5), Writer::connect(config)).await {
        Ok(Ok(writer)) => Some(writer),
        Ok(Err(error)) => {
            tracing::warn!(%error, "store writer cannot reconnect");
            None
        }
        Err(_) => {
            tracing::warn!("store writer reconnect timed out");
            None
        }
    }
}

/// What the accepted units of a batch add, as columns for the array inserts.
#[derive(Default)]
struct Additions {
    event_streams: Vec<String>,
    event_versions: Vec<i64>,
    event_ids: Vec<String>,
    event_names: Vec<String>,
    event_schema_versions: Vec<i64>,
    event_payloads: Vec<String>,
    event_metadata: Vec<String>,
    outbox_ids: Vec<String>,
    outbox_names: Vec<String>,
    outbox_keys: Vec<String>,
    outbox_envelopes: Vec<String>,
    inbox_ids: Vec<String>,
    timer_ids: Vec<String>,
    timer_due: Vec<i64>,
    timer_envelopes: Vec<String>,
    timer_state_ids: Vec<String>,
    timer_states: Vec<String>,
    checkpoints: HashMap<String, i64>,
    snapshots: HashMap<String, (i64, String)>,
    audit_indexes: Vec<i64>,
    audit_at: Vec<i64>,
    audit_actors: Vec<String>,
    audit_roles: Vec<String>,
    audit_actions: Vec<String>,
    audit_resources: Vec<String>,
    audit_outcomes: Vec<String>,
    audit_traces: Vec<Option<String>>,
    audit_hashes: Vec<Vec<u8>>,
}

/// What the batch's reads found, updated as units are accepted.
struct Known {
    versions: HashMap<String, u64>,
    inbox: HashSet<String>,
    pending_timers: HashSet<String>,
    /// The audit chain's last record, including those of units accepted so far.
    audit_head: Option<(u64, [u8; 32])>,
}

impl Writer {
    /// Also returns the highest outbox position the batch wrote, if it wrote any.
    async fn commit(&mut self, units: &[&[Op]], now: i64) -> (Vec<Result<CommitReceipt>>, Option<u64>) {
        match self.try_commit(units, now).await {
            Ok(committed) => committed,
            Err(error) => {
                self.heads.forget();
                let _ = self.client.batch_execute("ROLLBACK").await;
                if units.len() == 1 || self.client.is_closed() {
                    let mut first = Some(error);
                    let results =
                        units.iter().map(|_| Err(first.take().map_or(StoreError::Closed, |e| e))).collect();
                    return (results, None);
                }
                tracing::debug!(%error, units = units.len(), "batch failed; retrying its units one by one");
                let mut results = Vec::with_capacity(units.len());
                let mut outbox_high = None;
                for unit in units {
                    let result = match self.try_commit(&[unit], now).await {
                        Ok((mut single, high)) => {
                            outbox_high = outbox_high.max(high);
                            single.pop().unwrap_or(Err(StoreError::Closed))
                        }
                        Err(error) => {
                            self.heads.forget();
                            let _ = self.client.batch_execute("ROLLBACK").await;
                            Err(error)
                        }
                    };
                    results.push(result);
                }
                (results, outbox_high)
            }
        }
    }

    /// `Err` means the transaction as a whole failed; per-unit refusals are in the `Ok` list.
    async fn try_commit(
        &mut self,
        units: &[&[Op]],
        now: i64,
    ) -> Result<(Vec<Result<CommitReceipt>>, Option<u64>)> {
        let mut known = self.begin_and_read(units).await?;
        let mut additions = Additions::default();
        let mut results: Vec<Result<CommitReceipt>> = Vec::with_capacity(units.len());
        let mut event_counts = Vec::with_capacity(units.len());
        for (index, ops) in units.iter().enumerate() {
            let outcome = match decide(ops, &known) {
                Err(refusal) => Err(refusal),
                Ok(decision) => match self.run_statements(ops, index, now).await? {
                    Err(refusal) => Err(refusal),
                    Ok(rows_affected) => {
                        let receipt = CommitReceipt { rows_affected, ..decision.receipt.clone() };
                        event_counts.push((index, decision.events));
                        accept(ops, &mut known, &mut additions);
                        Ok(receipt)
                    }
                },
            };
            results.push(outcome);
        }
        let (positions, outbox_high) = self.write_and_commit(&additions, now).await?;
        self.heads.committed(&additions, positions.last().copied());
        for receipt in results.iter_mut().flatten() {
            receipt.batch_size = units.len();
        }
        let mut consumed = 0;
        for (index, count) in event_counts {
            if count > 0 {
                consumed += count;
                if let Some(Ok(receipt)) = results.get_mut(index) {
                    receipt.last_position = positions.get(consumed - 1).copied();
                }
            }
        }
        Ok((results, outbox_high))
    }

    async fn begin_and_read(&mut self, units: &[&[Op]]) -> Result<Known> {
        let mut streams = Vec::new();
        let mut inbox = Vec::new();
        let mut timers = Vec::new();
        let mut audits = false;
        for op in units.iter().flat_map(|ops| ops.iter()) {
            match op {
                Op::Append { stream, .. }
                    if !self.heads.versions.contains_key(stream.as_str())
                        && !streams.iter().any(|s| s == stream.as_str()) =>
                {
                    streams.push(stream.as_str().to_owned());
                }
                Op::RecordInbox(id) => inbox.push(id.to_string()),
                Op::FireTimer(id) | Op::CancelTimer(id) => timers.push(id.to_string()),
                Op::Audit(_) => audits = true,
                _ => {}
            }
        }
        let core = &self.core;
        let client = &self.client;
        // Pipelined: sent together, answered in order.
        let (_, _, events_head, versions, seen, pending, audit_head) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.execute(&core.lock, &[&WRITE_LOCK]),
            client.query_one(&core.events_head, &[]),
            async {
                if streams.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&core.versions, &[&streams]).await
                }
            },
            async {
                if inbox.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&core.inbox_seen, &[&inbox]).await
                }
            },
            async {
                if timers.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&core.timers_pending, &[&timers]).await
                }
            },
            async { if audits { client.query_opt(&core.audit_head, &[]).await } else { Ok(None) } },
        )?;
        let audit_head = audit_head
            .map(|row| {
                let index = to_u64(row.try_get(0)?)?;
                Ok::<_, StoreError>((index, audit_hash(index, row.try_get(1)?)?))
            })
            .transpose()?;
        let mut known_versions = versions_from_rows(&versions)?;
        let events_head: Option<i64> = events_head.try_get(0)?;
        let cached: Vec<(&str, u64)> = units
            .iter()
            .flat_map(|ops| ops.iter())
            .filter_map(|op| match op {
                Op::Append { stream, .. } => {
                    self.heads.versions.get(stream.as_str()).map(|version| (stream.as_str(), *version))
                }
                _ => None,
            })
            .collect();
        if events_head == self.heads.exact_at {
            known_versions.extend(cached.iter().map(|(stream, version)| ((*stream).to_owned(), *version)));
        } else {
            // Another writer appended since this one's last batch: read what the cache held.
            let stale: Vec<String> = cached.iter().map(|(stream, _)| (*stream).to_owned()).collect();
            self.heads.forget();
            if !stale.is_empty() {
                known_versions.extend(versions_from_rows(&client.query(&core.versions, &[&stale]).await?)?);
            }
        }
        self.heads.exact_at = events_head;
        Ok(Known {
            versions: known_versions,
            inbox: seen.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?,
            pending_timers: pending.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?,
            audit_head,
        })
    }

    /// Runs a unit's own statements (and maintenance operations) in a savepoint. The outer
    /// error is the transaction breaking; the inner one is this unit's refusal.
    async fn run_statements(&mut self, ops: &[Op], index: usize, now: i64) -> Result<Result<u64>> {
        let direct = ops.iter().any(|op| {
            matches!(op, Op::Execute(_) | Op::MarkSent(_) | Op::PruneOutbox { .. } | Op::PruneInbox { .. })
        });
        if !direct {
            return Ok(Ok(0));
        }
        let savepoint = format!("unit_{index}");
        self.client.batch_execute(&format!("SAVEPOINT {savepoint}")).await?;
        let mut affected = 0;
        for op in ops {
            let outcome = match op {
                Op::Execute(statement) => self.execute(statement).await,
                Op::MarkSent(positions) => {
                    let positions: Vec<i64> = positions.iter().map(|p| to_i64(*p)).collect();
                    self.client.execute(&self.core.mark_sent, &[&positions, &now]).await.map_err(map_db_error)
                }
                Op::PruneOutbox { sent_before } => self
                    .client
                    .query_one(&self.core.prune_outbox, &[&to_i64(sent_before.as_micros())])
                    .await
                    .map_err(map_db_error)
                    .and_then(|row| to_u64(row.try_get::<_, i64>(0)?)),
                Op::PruneInbox { recorded_before } => self
                    .client
                    .execute(&self.core.prune_inbox, &[&to_i64(recorded_before.as_micros())])
                    .await
                    .map_err(map_db_error),
                _ => Ok(0),
            };
            match outcome {
                Ok(rows) => affected += rows,
                Err(refusal) if !matches!(refusal, StoreError::Postgres(_)) || !self.client.is_closed() => {
                    self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {savepoint}")).await?;
                    self.client.batch_execute(&format!("RELEASE SAVEPOINT {savepoint}")).await?;
                    return Ok(Err(refusal));
                }
                Err(broken) => return Err(broken),
            }
        }
        self.client.batch_execute(&format!("RELEASE SAVEPOINT {savepoint}")).await?;
        Ok(Ok(affected))
    }

    async fn execute(&mut self, statement: &Statement) -> Result<u64> {
        let prepared = match self.own.get(&statement.sql) {
            Some(prepared) => prepared.clone(),
            None => {
                let prepared = self.client.prepare(&statement.sql).await.map_err(map_db_error)?;
                self.own.insert(statement.sql.clone(), prepared.clone());
                prepared
            }
        };
        let params: Vec<&(dyn ToSql + Sync)> =
            statement.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let affected = self.client.execute(&prepared, &params).await.map_err(map_db_error)?;
        statement.check_affected(affected)?;
        Ok(affected)
    }

    /// The array inserts and the COMMIT, pipelined in one round trip; returns the new events'
    /// positions in insertion order and the highest new outbox position. If an insert fails,
    /// PostgreSQL answers the COMMIT that follows it in the pipeline with a rollback, so
    /// nothing of the batch is kept.
    async fn write_and_commit(&self, add: &Additions, now: i64) -> Result<(Vec<u64>, Option<u64>)> {
        let core = &self.core;
        let client = &self.client;
        let (checkpoint_names, checkpoint_positions): (Vec<&String>, Vec<i64>) =
            add.checkpoints.iter().map(|(name, position)| (name, *position)).unzip();
        let mut snapshot_streams = Vec::with_capacity(add.snapshots.len());
        let mut snapshot_versions = Vec::with_capacity(add.snapshots.len());
        let mut snapshot_states = Vec::with_capacity(add.snapshots.len());
        for (stream, (version, state)) in &add.snapshots {
            snapshot_streams.push(stream);
            snapshot_versions.push(*version);
            snapshot_states.push(state);
        }
        let outbox_params: [&(dyn ToSql + Sync); 5] =
            [&add.outbox_ids, &add.outbox_names, &add.outbox_keys, &add.outbox_envelopes, &now];
        let inbox_params: [&(dyn ToSql + Sync); 2] = [&add.inbox_ids, &now];
        let timer_params: [&(dyn ToSql + Sync); 3] = [&add.timer_ids, &add.timer_due, &add.timer_envelopes];
        let timer_state_params: [&(dyn ToSql + Sync); 3] = [&add.timer_state_ids, &add.timer_states, &now];
        let checkpoint_params: [&(dyn ToSql + Sync); 3] = [&checkpoint_names, &checkpoint_positions, &now];
        let snapshot_params: [&(dyn ToSql + Sync); 4] =
            [&snapshot_streams, &snapshot_versions, &snapshot_states, &now];
        let audit_params: [&(dyn ToSql + Sync); 9] = [
            &add.audit_indexes,
            &add.audit_at,
            &add.audit_actors,
            &add.audit_roles,
            &add.audit_actions,
            &add.audit_resources,
            &add.audit_outcomes,
            &add.audit_traces,
            &add.audit_hashes,
        ];
        let (rows, outbox_high, ..) = tokio::try_join!(
            async {
                if add.event_ids.is_empty() {
                    return Ok(Vec::new());
                }
                client
                    .query(
                        &core.insert_events,
                        &[
                            &add.event_streams,
                            &add.event_versions,
                            &add.event_ids,
                            &add.event_names,
                            &add.event_schema_versions,
                            &add.event_payloads,
                            &add.event_metadata,
                            &now,
                        ],
                    )
                    .await
            },
            async {
                if add.outbox_ids.is_empty() {
                    return Ok(None);
                }
                client.query_one(&core.insert_outbox, &outbox_params).await.map(Some)
            },
            exec_if(client, &core.insert_inbox, &inbox_params, !add.inbox_ids.is_empty()),
            exec_if(client, &core.insert_timers, &timer_params, !add.timer_ids.is_empty()),
            exec_if(client, &core.set_timer_state, &timer_state_params, !add.timer_state_ids.is_empty()),
            exec_if(client, &core.upsert_checkpoints, &checkpoint_params, !checkpoint_names.is_empty()),
            exec_if(client, &core.upsert_snapshots, &snapshot_params, !snapshot_streams.is_empty()),
            exec_if(client, &core.insert_audit, &audit_params, !add.audit_indexes.is_empty()),
            client.batch_execute("COMMIT"),
        )
        .map_err(map_db_error)?;
        let mut positions = rows.iter().map(|row| row.try_get::<_, i64>(0)).collect::<Result<Vec<_>, _>>()?;
        positions.sort_unstable();
        let outbox_high = outbox_high
            .map(|row| row.try_get::<_, Option<i64>>(0))
            .transpose()?
            .flatten()
            .map(to_u64)
            .transpose()?;
        Ok((positions.into_iter().map(|p| p.max(0).unsigned_abs()).collect(), outbox_high))
    }
}

/// Skips statements with nothing to write: an empty array insert still costs a round trip.
async fn exec_if(
    client: &Client,
    statement: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
    needed: bool,
) -> Result<u64, tokio_postgres::Error> {
    if needed { client.execute(statement, params).await } else { Ok(0) }
}

/// A unit judged against what the batch knows, before anything of it is written.
struct Decision {
    receipt: CommitReceipt,
    events: usize,
}

fn decide(ops: &[Op], known: &Known) -> Result<Decision> {
    let mut versions: Vec<(&str, u64)> = Vec::new();
    let mut inbox: Vec<String> = Vec::new();
    let mut scheduled: Vec<String> = Vec::new();
    let mut fired: Vec<String> = Vec::new();
    let mut receipt = CommitReceipt::default();
    let mut events = 0;
    for op in ops {
        match op {
            Op::Append { stream, expected, events: new } => {
                let current = versions
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == stream.as_str())
                    .map(|(_, v)| *v)
                    .or_else(|| known.versions.get(stream.as_str()).copied());
                if !expected.check(current) {
                    return Err(StoreError::Conflict {
                        stream: stream.clone(),
                        expected: *expected,
                        actual: current,
                    });
                }
                let version = current.unwrap_or(0) + new.len() as u64;
                versions.push((stream.as_str(), version));
                receipt.stream_versions.push((stream.clone(), version));
                events += new.len();
            }
            Op::RecordInbox(id) => {
                let text = id.to_string();
                if known.inbox.contains(&text) || inbox.contains(&text) {
                    return Err(StoreError::DuplicateMessage(*id));
                }
                inbox.push(text);
            }
            Op::Schedule { message, .. } => scheduled.push(message.id.to_string()),
            Op::FireTimer(id) => {
                let text = id.to_string();
                let pending = (known.pending_timers.contains(&text) || scheduled.contains(&text))
                    && !fired.contains(&text);
                if !pending {
                    return Err(StoreError::TimerNotPending(*id));
                }
                fired.push(text);
            }
            _ => {}
        }
    }
    Ok(Decision { receipt, events })
}

/// Adds an accepted unit's writes to the batch and updates what later units are judged on.
fn accept(ops: &[Op], known: &mut Known, add: &mut Additions) {
    for op in ops {
        match op {
            Op::Append { stream, events, .. } => {
                let mut version = known.versions.get(stream.as_str()).copied().unwrap_or(0);
                for event in events {
                    version += 1;
                    add.event_streams.push(stream.as_str().to_owned());
                    add.event_versions.push(to_i64(version));
                    add.event_ids.push(event.id.clone());
                    add.event_names.push(event.name.clone());
                    add.event_schema_versions.push(event.schema_version);
                    add.event_payloads.push(event.payload.clone());
                    add.event_metadata.push(event.metadata.clone());
                }
                known.versions.insert(stream.as_str().to_owned(), version);
            }
            Op::Snapshot { stream, version, state } => {
                let entry = add
                    .snapshots
                    .entry(stream.as_str().to_owned())
                    .or_insert((to_i64(*version), state.clone()));
                if to_i64(*version) > entry.0 {
                    *entry = (to_i64(*version), state.clone());
                }
            }
            Op::Send(message) => {
                add.outbox_ids.push(message.id.to_string());
                add.outbox_names.push(message.name.clone());
                add.outbox_keys.push(message.key.clone());
                add.outbox_envelopes.push(message.json.clone());
            }
            Op::Schedule { due_at, message } => {
                add.timer_ids.push(message.id.to_string());
                add.timer_due.push(to_i64(due_at.as_micros()));
                add.timer_envelopes.push(message.json.clone());
                known.pending_timers.insert(message.id.to_string());
            }
            Op::FireTimer(id) | Op::CancelTimer(id) => {
                let text = id.to_string();
                let state = if matches!(op, Op::FireTimer(_)) { "fired" } else { "cancelled" };
                if known.pending_timers.remove(&text) {
                    add.timer_state_ids.push(text);
                    add.timer_states.push(state.to_owned());
                }
            }
            Op::RecordInbox(id) => {
                let text = id.to_string();
                known.inbox.insert(text.clone());
                add.inbox_ids.push(text);
            }
            Op::Checkpoint { name, position } => {
                add.checkpoints.insert(name.clone(), to_i64(*position));
            }
            Op::Audit(record) => {
                let (index, hash) = next_link(known.audit_head, record);
                known.audit_head = Some((index, hash));
                add.audit_indexes.push(to_i64(index));
                add.audit_at.push(to_i64(record.at.as_micros()));
                add.audit_actors.push(record.actor.clone());
                add.audit_roles.push(record.role.clone());
                add.audit_actions.push(record.action.clone());
                add.audit_resources.push(record.resource.clone());
                add.audit_outcomes.push(record.outcome.clone());
                add.audit_traces.push(record.trace_id.clone());
                add.audit_hashes.push(hash.to_vec());
            }
            Op::Execute(_) | Op::MarkSent(_) | Op::PruneOutbox { .. } | Op::PruneInbox { .. } => {}
        }
    }
}

/// The rows of the `versions` query: each stream that has events, with its version.
fn versions_from_rows(rows: &[tokio_postgres::Row]) -> Result<HashMap<String, u64>> {
    rows.iter()
        .filter_map(|row| match row.try_get::<_, Option<i64>>(1) {
            Ok(Some(version)) => {
                Some(row.try_get::<_, String>(0).map(|s| (s, version.max(0).unsigned_abs())))
            }
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        })
        .collect::<Result<_, _>>()
        .map_err(StoreError::from)
}

/// Constraint failures in the service's own tables are the caller's business.
fn map_db_error(error: tokio_postgres::Error) -> StoreError {
    match error.code() {
        Some(code) if code.code().starts_with("23") && *code != SqlState::T_R_SERIALIZATION_FAILURE => {
            let message = error.as_db_error().map_or_else(|| error.to_string(), |db| db.message().to_owned());
            StoreError::Constraint(message)
        }
        _ => StoreError::Postgres(error),
    }
}
