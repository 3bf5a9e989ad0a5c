//! One `tessera up` per data folder. Two processes on the same SQLite files would each run
//! relays, subscribers and timers over the same rows and each hand out the same work; the
//! second one is refused instead, naming the first one's pid. The lock is the operating
//! system's (`flock` on Linux), so it goes away with its process, `kill -9` included: no stale
//! lock file to delete by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// The lock file's name in the data folder; it holds the pid of the process that has it.
pub const LOCK_FILE: &str = "tessera.lock";

/// The lock, held for as long as this value lives.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
}

impl DataLock {
    /// Takes the lock on `folder` (which exists), or says which process has it.
    pub fn acquire(folder: &Path) -> anyhow::Result<Self> {
        let path = folder.join(LOCK_FILE);
        // Not truncated on open: the pid inside belongs to whoever holds the lock, and a
        // refused second process must still be able to read it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_owned(),
                    pid => format!("another tessera (pid {pid})"),
                };
                bail!(
                    "{holder} is using the data folder {}; stop it first, or give this one another --data",
                    folder.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_naming_the_holder_and_freed_on_drop() {
        let folder = tempfile::tempdir().expect("a folder");
        let first = DataLock::acquire(folder.path()).expect("the first lock");
        let refused = DataLock::acquire(folder.path()).expect_err("the folder is locked").to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        drop(first);
        DataLock::acquire(folder.path()).expect("free again once the holder is gone");
        let pid = std::fs::read_to_string(folder.path().join(LOCK_FILE)).expect("the lock file");
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
