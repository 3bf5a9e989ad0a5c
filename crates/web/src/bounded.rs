//! Work that costs a process much CPU and memory per call, bounded so that a burst of it
//! cannot take the process down. A password hash is the case: argon2id with OWASP's minimum
//! takes 19 MiB and tens of milliseconds, and 14 at once would push a 256 MiB pod out of
//! memory. Past the bound a caller waits a little for a turn (it holds no costly memory while
//! it waits), and past that wait is told the process is busy (503 with `Retry-After`) rather
//! than queued behind work it would have to wait out anyway.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::Problem;

/// Password hashes and checks under way in this process at most: one per core, so hashing
/// never takes more than the machine has while the rest of the process keeps answering. A
/// check waits up to two seconds for its turn: a few sign-ups at once (a client registering
/// its users) are served, a flood is not.
pub static PASSWORD_HASHING: LazyLock<Bounded> = LazyLock::new(|| {
    Bounded::new(std::thread::available_parallelism().map_or(1, usize::from), Duration::from_secs(2))
});

/// A bound on concurrent blocking work.
#[derive(Debug, Clone)]
pub struct Bounded {
    permits: Arc<Semaphore>,
    wait_at_most: Duration,
}

/// The bound was reached; the work did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("busy: as much of this work is under way as this process allows")]
pub struct Busy;

impl From<Busy> for Problem {
    fn from(_: Busy) -> Self {
        Problem::busy("too many password checks at once; retry in a moment")
    }
}

impl Bounded {
    /// `at_once` pieces of work at a time; a caller waits at most `wait_at_most` for its turn.
    pub fn new(at_once: usize, wait_at_most: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(at_once.max(1))), wait_at_most }
    }

    /// Runs `work` on the blocking pool once a permit is free (waiting at most the bound's
    /// wait), holding it until `work` ends.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit = match tokio::time::timeout(self.wait_at_most, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("tessera_bounded_work_refused_total").increment(1);
                return Err(Busy);
            }
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = work();
            drop(permit);
            outcome
        })
        .await;
        // A panic in `work` is the caller's bug, not a busy process: it goes on up.
        Ok(outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic())))
    }

    /// Permits free now (for metrics and tests).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_past_the_bound_is_refused_at_once_and_a_permit_comes_back_when_work_ends() {
        let bounded = Bounded::new(1, Duration::from_millis(50));
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let bounded = bounded.clone();
            tokio::spawn(async move {
                bounded
                    .run(move || {
                        started.send(()).expect("started");
                        hold.recv().expect("released");
                        7
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || wait.recv().expect("the first runs")).await.expect("joined");
        assert_eq!(bounded.run(|| 8).await, Err(Busy), "the second waited its 50 ms, then was refused");
        release.send(()).expect("release");
        assert_eq!(first.await.expect("joined"), Ok(7));
        assert_eq!(bounded.run(|| 9).await, Ok(9), "the permit came back");
        assert_eq!(bounded.available(), 1);
    }
}
