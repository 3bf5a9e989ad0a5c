//! Durable acknowledgements on PostgreSQL, off the writer's connection.
//!
//! Every write transaction holds the store's advisory lock until its commit is visible
//! (decision 0001). With `synchronous_commit=on`, PostgreSQL makes a commit visible only after
//! flushing the log, so the lock was held through each flush and batches could only follow one
//! another at the disk's pace. The writer now commits with `synchronous_commit=off`: the commit
//! is visible, and the lock released, as soon as its record is in the log's buffers. This task
//! then makes every batch committed since its last flush durable with one small transaction of
//! its own, which under the server's `synchronous_commit` waits for the log to be flushed up to
//! its commit record (so past every batch handed over before it began), and only then answers
//! the batches' callers. An acknowledged commit is therefore exactly as durable as before,
//! while the writer is already committing the next batch.
//!
//! A commit that is visible but not yet flushed can be read by another connection. Nothing
//! that leaves the service may act on that: the relay reads the outbox only up to the durable
//! mark this task moves, and flushes itself when it reads above it (rows of another replica,
//! or of a batch whose flush is still running). Every other effect of a read is a later
//! transaction in the same log, durable only if what it read is.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::backend::Committed;
use crate::error::{Result, StoreError};

/// A transaction that writes one log record (a logical message nobody decodes) and so waits,
/// at commit, for the log to be flushed up to it. A transaction that only takes an id writes
/// a commit record but, having written nothing else, does not wait for it to be flushed.
pub(super) const FLUSH_LOG: &str = "SELECT pg_logical_emit_message(true, 'tessera.flush', '')";

/// The highest outbox position known to be durable.
#[derive(Debug, Default)]
pub(super) struct DurableOutbox {
    high: AtomicU64,
}

impl DurableOutbox {
    pub(super) fn covers(&self, position: u64) -> bool {
        position <= self.high.load(Ordering::Acquire)
    }

    pub(super) fn raise(&self, position: u64) {
        self.high.fetch_max(position, Ordering::AcqRel);
    }
}

/// Flushes the log on `client`. Every transaction committed before this call is durable when
/// it returns `Ok`.
pub(super) async fn flush_log(client: &Client) -> Result<()> {
    // A flush that hangs (a synchronous standby gone, a stuck disk) must not hold callers
    // for ever; they are told `NotDurable` and retry.
    tokio::time::timeout(FLUSH_TIMEOUT, client.batch_execute(FLUSH_LOG))
        .await
        .map_err(|_| StoreError::NotDurable(format!("the log was not flushed within {FLUSH_TIMEOUT:?}")))??;
    Ok(())
}

const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Committed batches waiting for the flusher. Bounded, so that a flusher that cannot flush
/// stops the writer (and, behind it, the callers) instead of letting visible, unanswered
/// commits pile up.
pub(super) const WAITING_BATCHES: usize = 256;

/// Runs until the writer drops its sender.
pub(super) async fn run(
    config: tokio_postgres::Config,
    mut committed: mpsc::Receiver<Committed>,
    durable: std::sync::Arc<DurableOutbox>,
) {
    let mut client: Option<Client> = None;
    let mut waiting: Vec<Committed> = Vec::new();
    while let Some(first) = committed.recv().await {
        waiting.push(first);
        while let Ok(more) = committed.try_recv() {
            waiting.push(more);
        }
        match flush_with(&mut client, &config).await {
            Ok(()) => {
                if let Some(high) = waiting.iter().filter_map(|batch| batch.outbox_high).max() {
                    durable.raise(high);
                }
                for (reply, result) in waiting.drain(..).flat_map(|batch| batch.replies) {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "flushing the log after a commit failed");
                client = None;
                // Refusals too: one may rest on a commit that is visible but now may be lost
                // (a duplicate message whose first delivery was not flushed, say), and its caller
                // would act on it for good, acknowledging that message to the transport.
                for (reply, _) in waiting.drain(..).flat_map(|batch| batch.replies) {
                    let _ = reply.send(Err(StoreError::NotDurable(format!(
                        "the log could not be flushed, so this batch's commit may be lost: {error}"
                    ))));
                }
            }
        }
    }
}

async fn flush_with(client: &mut Option<Client>, config: &tokio_postgres::Config) -> Result<()> {
    if client.as_ref().is_none_or(Client::is_closed) {
        // As the writer's reconnect: one short attempt, the callers retry while the server is away.
        let (fresh, connection) =
            tokio::time::timeout(std::time::Duration::from_secs(5), config.connect(tokio_postgres::NoTls))
                .await
                .map_err(|_| StoreError::Closed)??;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "store flusher connection ended");
            }
        });
        *client = Some(fresh);
    }
    match client {
        Some(client) => flush_log(client).await,
        None => Err(StoreError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use tessera_kernel::{MessageId, UuidV7Gen};
    use tokio::sync::oneshot;

    use super::*;
    use crate::backend::CommitReceipt;

    /// No server listens on port 1, so every flush fails as it would while the server is away.
    #[tokio::test]
    async fn when_the_flush_fails_commits_and_refusals_alike_are_answered_not_durable() {
        let config: tokio_postgres::Config = "postgres://postgres@127.0.0.1:1/none".parse().expect("config");
        let (committed, to_flush) = mpsc::channel(4);
        let (committed_reply, committed_answer) = oneshot::channel();
        let (refused_reply, refused_answer) = oneshot::channel();
        let duplicate = MessageId::generate(&UuidV7Gen);
        let batch = Committed {
            replies: vec![
                (committed_reply, Ok(CommitReceipt::default())),
                (refused_reply, Err(StoreError::DuplicateMessage(duplicate))),
            ],
            outbox_high: Some(9),
        };
        committed.send(batch).await.expect("queued");
        drop(committed);
        let durable = std::sync::Arc::new(DurableOutbox::default());
        run(config, to_flush, durable.clone()).await;
        for answer in [committed_answer.await.expect("answered"), refused_answer.await.expect("answered")] {
            assert!(matches!(answer, Err(StoreError::NotDurable(_))), "{answer:?}");
        }
        assert!(!durable.covers(1), "the mark stays where it was");
    }
}
