//! Durable acknowledgements, off the writer thread.
//!
//! With `synchronous=FULL` SQLite would fsync the write-ahead log inside every `COMMIT`, and
//! the one writer thread would sit idle for that fsync (a third of its time at 64 writers on
//! this project's machine) while units queue. Instead the writer commits at
//! `synchronous=NORMAL`, which writes the log's frames without syncing them, and hands the
//! batch's outcomes here. This thread syncs the log once for every batch committed since its
//! last sync, then answers them. An acknowledged commit is therefore on disk, exactly as with
//! FULL, while the writer is already applying the next batch; and one fsync now covers as many
//! batches as were committed during the previous one.
//!
//! NORMAL itself keeps the file consistent across a power cut (SQLite syncs the log before
//! every checkpoint and the database after it), so what this thread adds is only the durability
//! of each acknowledged commit. The cost is that another connection can read a commit a few
//! hundred microseconds before it is durable. Nothing that leaves the service may act on that:
//! the relay reads the outbox only up to [`DurableOutbox`], which moves after the sync.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::backend::Committed;
use crate::error::{Result, StoreError};

/// What the writer, the sync thread and the readers share about durability.
#[derive(Debug)]
pub(crate) struct Durability {
    /// The write-ahead log; syncing it makes every commit written to it durable.
    log: File,
    /// The highest outbox position whose commit is known to be on disk.
    durable_outbox: AtomicU64,
    /// The highest outbox position this process's writer has committed and handed to the
    /// sync thread: up to there, a reader can wait for that thread instead of syncing itself.
    committed_outbox: AtomicU64,
    /// Signalled by the sync thread after every sync, for readers waiting on `durable_outbox`.
    synced: (Mutex<()>, Condvar),
    /// Set when a sync failed. After a failed fsync the kernel may have dropped the dirty
    /// pages, and a later fsync can succeed without them, so no later commit can be promised
    /// durable: every unit is refused until the process restarts and SQLite recovers from disk.
    failed: AtomicBool,
}

impl Durability {
    /// `log` must already hold every commit made so far on disk (the caller syncs it first).
    pub(crate) fn new(log: File, durable_outbox: u64) -> Self {
        Self {
            log,
            durable_outbox: AtomicU64::new(durable_outbox),
            committed_outbox: AtomicU64::new(durable_outbox),
            synced: (Mutex::new(()), Condvar::new()),
            failed: AtomicBool::new(false),
        }
    }

    /// Called by the writer before it hands a batch that put rows up to `high` in the outbox
    /// to the sync thread.
    pub(crate) fn note_committed(&self, high: u64) {
        self.committed_outbox.fetch_max(high, Ordering::AcqRel);
    }

    fn wake_readers(&self) {
        let _guard = self.synced.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.synced.1.notify_all();
    }

    /// Waits, at most `patience`, for the sync thread to make `position` durable.
    fn await_sync_thread(&self, position: u64, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut guard = self.synced.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.durable_outbox.load(Ordering::Acquire) >= position {
                return true;
            }
            let now = Instant::now();
            if self.has_failed() || now >= deadline {
                return false;
            }
            guard =
                self.synced.1.wait_timeout(guard, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn failed_error() -> StoreError {
        StoreError::NotDurable("an earlier sync of the write-ahead log failed; restart the process".into())
    }

    fn sync(&self) -> std::io::Result<()> {
        if self.has_failed() {
            return Err(std::io::Error::other("an earlier sync failed"));
        }
        crate::activity::synced(1);
        self.log.sync_data().inspect_err(|_| self.failed.store(true, Ordering::Release))
    }

    /// Called by a reader of the outbox with the highest position it read: anything above the
    /// durable mark comes from a commit whose sync is still to come (or from another process).
    /// The reader waits for the sync thread when the rows are this writer's, and otherwise
    /// syncs the log itself, before the rows may leave the service.
    pub(crate) fn make_outbox_durable(&self, read_up_to: u64) -> Result<()> {
        if read_up_to <= self.durable_outbox.load(Ordering::Acquire) {
            return Ok(());
        }
        // This process's own rows are already on their way to disk: a second fsync of the log
        // here would only compete with the sync thread's for the disk (on a slow day a third
        // of the producer's syncs came from its relay). Rows another process wrote, or a sync
        // thread that lags, still get a sync of their own.
        if read_up_to <= self.committed_outbox.load(Ordering::Acquire)
            && self.await_sync_thread(read_up_to, SYNC_THREAD_PATIENCE)
        {
            return Ok(());
        }
        self.sync().map_err(|error| {
            StoreError::NotDurable(format!("syncing the write-ahead log before relaying failed: {error}"))
        })?;
        self.durable_outbox.fetch_max(read_up_to, Ordering::AcqRel);
        Ok(())
    }
}

/// How long a reader of the outbox waits for the sync thread before syncing the log itself.
const SYNC_THREAD_PATIENCE: Duration = Duration::from_millis(250);

/// Runs until the writer drops its sender.
pub(crate) fn run(durability: &Durability, committed: &mpsc::Receiver<Committed>) {
    let mut waiting: Vec<Committed> = Vec::new();
    while let Ok(first) = committed.recv() {
        waiting.push(first);
        waiting.extend(committed.try_iter());
        match durability.sync() {
            Ok(()) => {
                if let Some(high) = waiting.iter().filter_map(|batch| batch.outbox_high).max() {
                    durability.durable_outbox.fetch_max(high, Ordering::AcqRel);
                }
                durability.wake_readers();
                for (reply, result) in waiting.drain(..).flat_map(|batch| batch.replies) {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = reply.send(result);
                }
            }
            Err(sync_error) => {
                tracing::error!(error = %sync_error, "syncing the write-ahead log failed; refusing further commits");
                durability.wake_readers();
                for (reply, _) in waiting.drain(..).flat_map(|batch| batch.replies) {
                    let _ = reply.send(Err(StoreError::NotDurable(format!(
                        "the commit may not be on disk, syncing the write-ahead log failed: {sync_error}"
                    ))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use tokio::sync::oneshot;

    use super::*;
    use crate::backend::CommitReceipt;

    fn log_file(dir: &tempfile::TempDir) -> File {
        File::create(dir.path().join("db-wal")).expect("create log")
    }

    /// A file whose sync fails: Linux refuses fsync on a pipe with EINVAL.
    fn unsyncable() -> File {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        File::from(OwnedFd::from(reader))
    }

    #[test]
    fn rows_at_or_below_the_durable_mark_need_no_sync_and_rows_above_it_move_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let durability = Durability::new(log_file(&dir), 5);
        durability.make_outbox_durable(3).expect("below the mark");
        durability.make_outbox_durable(5).expect("at the mark");
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 5);
        durability.make_outbox_durable(9).expect("above the mark");
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 9);
    }

    #[test]
    fn a_failed_sync_refuses_the_rows_above_the_mark_and_every_later_commit() {
        let durability = Durability::new(unsyncable(), 5);
        durability.make_outbox_durable(5).expect("at the mark, nothing to sync");
        let refused = durability.make_outbox_durable(6);
        assert!(matches!(refused, Err(StoreError::NotDurable(_))), "{refused:?}");
        assert!(durability.has_failed());
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 5);
    }

    /// Runs the sync thread over one committed batch that wrote outbox position 7; returns
    /// what its caller was told.
    fn sync_one_batch(durability: &Durability) -> Result<CommitReceipt> {
        let (committed, to_sync) = mpsc::channel();
        let (reply, answer) = oneshot::channel();
        committed
            .send(Committed { replies: vec![(reply, Ok(CommitReceipt::default()))], outbox_high: Some(7) })
            .expect("queue");
        drop(committed);
        run(durability, &to_sync);
        answer.blocking_recv().expect("answered")
    }

    #[test]
    fn the_sync_thread_answers_after_syncing_and_moves_the_mark() {
        let dir = tempfile::tempdir().expect("temp dir");
        let durability = Durability::new(log_file(&dir), 0);
        assert!(sync_one_batch(&durability).is_ok());
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 7);
    }

    #[test]
    fn when_the_sync_fails_the_batch_is_answered_not_durable_and_the_mark_stays() {
        let durability = Durability::new(unsyncable(), 0);
        let answered = sync_one_batch(&durability);
        assert!(matches!(answered, Err(StoreError::NotDurable(_))), "{answered:?}");
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 0);
        assert!(durability.has_failed());
    }

    #[test]
    fn a_reader_of_rows_the_writer_committed_waits_for_the_sync_thread_instead_of_syncing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let durability = std::sync::Arc::new(Durability::new(log_file(&dir), 0));
        durability.note_committed(7);
        let reader = std::thread::spawn({
            let durability = durability.clone();
            move || durability.make_outbox_durable(7)
        });
        // A reader that synced the log itself would be done at once.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!reader.is_finished(), "the reader did not wait for the sync thread");
        assert!(sync_one_batch(&durability).is_ok());
        reader.join().expect("reader").expect("durable once the sync thread synced");
        assert_eq!(durability.durable_outbox.load(Ordering::Acquire), 7);
    }

    #[test]
    fn a_reader_waiting_for_the_sync_thread_learns_that_its_sync_failed() {
        let durability = std::sync::Arc::new(Durability::new(unsyncable(), 0));
        durability.note_committed(7);
        let reader = std::thread::spawn({
            let durability = durability.clone();
            move || durability.make_outbox_durable(7)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(sync_one_batch(&durability).is_err());
        let refused = reader.join().expect("reader");
        assert!(matches!(refused, Err(StoreError::NotDurable(_))), "{refused:?}");
    }
}
