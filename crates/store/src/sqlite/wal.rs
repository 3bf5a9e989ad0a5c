//! Keeping the write-ahead log short: background checkpoints, and the writer's last one that
//! lets the log start over.

use std::time::Duration;

use rusqlite::Connection;

/// Log frames after which the checkpoint thread asks the writer to let the log start over:
/// about 32 MiB of 4 KiB pages, below `journal_size_limit`, so the file is never trimmed and,
/// once it has grown to this size, every commit overwrites blocks the file already has.
const RESTART_LOG_AFTER_FRAMES: i64 = 8_192;

/// Asks the writer to let the write-ahead log start over from its beginning.
///
/// SQLite starts the log over only when a write transaction begins with every frame already
/// copied back into the database. Under steady load the background checkpoint never gets
/// there, because the writer commits new frames while it copies, so the log would grow
/// without bound: every commit would then extend the file, and syncing a file whose size
/// changed costs a journal commit of the file system on top of the data (220 µs against
/// 122 µs for an overwrite on the project's machine). The writer, asked, runs a last
/// checkpoint itself between two batches: only the frames written since the background one,
/// and no commit can slip in between, so its next transaction restarts the log.
#[derive(Debug, Default)]
pub(crate) struct LogRestart {
    wanted: std::sync::atomic::AtomicBool,
}

impl LogRestart {
    pub(super) fn ask(&self) {
        self.wanted.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Called by the writer between batches, outside any transaction.
    pub(crate) fn run_if_asked(&self, connection: &Connection) {
        if !self.wanted.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        if let Err(error) = checkpoint_passive(connection) {
            tracing::warn!(%error, "the writer's checkpoint before restarting the log failed");
        }
    }
}

/// A checkpoint that waits for nobody; returns the frames in the log.
fn checkpoint_passive(connection: &Connection) -> rusqlite::Result<i64> {
    // Columns: busy, frames in the log, frames copied back (of the log, in all).
    let (log, copied): (i64, i64) =
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)))?;
    LAST_COPIED.with(|last| {
        // A checkpoint that copied frames synced the log before and the database after.
        if copied > last.get() || (copied > 0 && copied < last.get()) {
            crate::activity::synced(2);
        }
        last.set(copied);
    });
    Ok(log)
}

thread_local! {
    /// The frames the last checkpoint on this thread had copied back, to tell whether the next
    /// one copied any (and so synced).
    static LAST_COPIED: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// How often the checkpoint thread copies the log back. Each checkpoint that copies anything
/// syncs the log and the database file; at 50 ms, seven stores made about 280 syncs a second
/// whatever the load, a sixth of all syncs per order in `tessera bench e2e`. The log grows
/// longer between checkpoints, which readers do not notice (they find frames by a hash index).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies committed WAL frames back into the database every [`CHECKPOINT_EVERY`]. PASSIVE never
/// waits for the writer or readers; it copies what it can. Once the log is long, the writer is
/// asked to finish the job so that the log starts over ([`LogRestart`]).
pub(super) fn checkpoint_in_background(
    connection: &Connection,
    stop: &std::sync::mpsc::Receiver<()>,
    restart: &LogRestart,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        match checkpoint_passive(connection) {
            Ok(log_frames) if log_frames >= RESTART_LOG_AFTER_FRAMES => restart.ask(),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "background checkpoint failed"),
        }
    }
}
