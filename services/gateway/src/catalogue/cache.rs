//! The cache in front of a backend: shared loads, metrics, and a backend that fails bypassed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::backend::{CacheBackend, CacheError, Lookup};
use super::entry::{CacheKey, CachedReply};
use crate::clients::ClientError;

type Load = Shared<BoxFuture<'static, Result<CachedReply, ClientError>>>;

/// How long a backend that failed is left alone before it is tried again.
const BACKOFF: Duration = Duration::from_secs(1);

/// The cache in front of a backend: shared loads, metrics, and what happens when the backend
/// fails.
pub struct Catalogue {
    backend: Arc<dyn CacheBackend>,
    /// Loads under way, by key and by the stamp their readers saw: a reader who saw a later
    /// stamp (the key changed since) does not join an earlier load.
    in_flight: Arc<Mutex<InFlight>>,
    health: Arc<Mutex<Health>>,
}

type InFlight = HashMap<(CacheKey, Option<u64>), Load>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct Health {
    /// Not before this instant: the backend failed recently.
    resting_until: Option<Instant>,
    /// Invalidations the backend has not taken yet, each with the number of the request that
    /// last asked for it; while any wait, the backend is not read.
    owed: BTreeMap<String, u64>,
    requests: u64,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("backend", &self.backend.kind()).finish_non_exhaustive()
    }
}

impl Catalogue {
    pub fn new(backend: Arc<dyn CacheBackend>) -> Arc<Self> {
        Arc::new(Self { backend, in_flight: Arc::default(), health: Arc::default() })
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The cached answer for `key`, or the one `load` gives (stored for the next reader).
    /// Readers of one key that miss together wait for one load.
    pub async fn get<F, Fut>(&self, key: &CacheKey, load: F) -> Result<CachedReply, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedReply, ClientError>> + Send + 'static,
    {
        let stamp = match self.lookup(key).await {
            Some(Lookup::Hit(bytes)) => match CachedReply::decode(&bytes) {
                Ok(reply) => {
                    metrics::counter!("tessera_gateway_cache_requests_total", "result" => "hit").increment(1);
                    return Ok(reply);
                }
                Err(error) => {
                    tracing::warn!(%error, "dropping an unreadable cache entry");
                    None
                }
            },
            Some(Lookup::Miss { stamp }) => {
                metrics::counter!("tessera_gateway_cache_requests_total", "result" => "miss").increment(1);
                Some(stamp)
            }
            None => {
                metrics::counter!("tessera_gateway_cache_requests_total", "result" => "degraded")
                    .increment(1);
                None
            }
        };
        let entry = (key.clone(), stamp);
        let shared = {
            let mut in_flight = lock(&self.in_flight);
            match in_flight.get(&entry) {
                Some(load) => load.clone(),
                None => {
                    let load = self.start_load(entry.clone(), load());
                    in_flight.insert(entry, load.clone());
                    load
                }
            }
        };
        shared.await
    }

    /// Runs a load in a task of its own, so that readers who give up (a client hanging up, a
    /// deadline) abandon nothing: the task fills the cache once, then takes the load off the
    /// list, whoever is still waiting.
    fn start_load(
        &self,
        entry: (CacheKey, Option<u64>),
        work: impl Future<Output = Result<CachedReply, ClientError>> + Send + 'static,
    ) -> Load {
        let (backend, health, in_flight) =
            (self.backend.clone(), self.health.clone(), self.in_flight.clone());
        let task = tokio::spawn(async move {
            let reply = work.await;
            let (key, stamp) = &entry;
            if let (Ok(answer), Some(stamp)) = (&reply, stamp)
                && answer.cacheable()
                && let Err(error) = backend.fill(&key.group, &key.field, answer.encode(), *stamp).await
            {
                failed(&health, backend.kind(), "fill", &error);
            }
            lock(&in_flight).remove(&entry);
            reply
        });
        async move {
            task.await.unwrap_or_else(|error| {
                Err(ClientError::Unreachable { service: "inventory", reason: error.to_string() })
            })
        }
        .boxed()
        .shared()
    }

    /// Empties the groups; when the backend cannot take it now, keeps them owed (and reads
    /// bypass the backend) until it can.
    pub async fn invalidate(&self, groups: Vec<String>) {
        let owed: Vec<(String, u64)> = {
            let mut health = lock(&self.health);
            health.requests += 1;
            let request = health.requests;
            for group in groups {
                health.owed.insert(group, request);
            }
            // A backend known to be away is not waited for on every event: the settling task
            // pays what is owed once it rests no more.
            if health.resting_until.is_some_and(|until| Instant::now() < until) {
                return;
            }
            health.owed.iter().map(|(group, request)| (group.clone(), *request)).collect()
        };
        let groups: Vec<String> = owed.iter().map(|(group, _)| group.clone()).collect();
        match self.backend.invalidate(&groups).await {
            Ok(()) => {
                let mut health = lock(&self.health);
                // A group asked for again meanwhile stays owed: this call may have run before
                // the change that asked again.
                for (group, request) in &owed {
                    if health.owed.get(group) == Some(request) {
                        health.owed.remove(group);
                    }
                }
                metrics::counter!("tessera_gateway_cache_invalidations_total").increment(groups.len() as u64);
            }
            Err(error) => failed(&self.health, self.backend.kind(), "invalidate", &error),
        }
    }

    /// Invalidations owed to the backend, if any: applied now if it answers.
    pub async fn settle_owed(&self) {
        let due = {
            let health = lock(&self.health);
            !health.owed.is_empty() && health.resting_until.is_none_or(|until| Instant::now() >= until)
        };
        if due {
            self.invalidate(Vec::new()).await;
        }
    }

    /// `None` when the backend is not to be trusted now (failed lately, or owed invalidations).
    async fn lookup(&self, key: &CacheKey) -> Option<Lookup> {
        {
            let health = lock(&self.health);
            if !health.owed.is_empty() || health.resting_until.is_some_and(|until| Instant::now() < until) {
                return None;
            }
        }
        match self.backend.lookup(&key.group, &key.field).await {
            Ok(found) => Some(found),
            Err(error) => {
                failed(&self.health, self.backend.kind(), "lookup", &error);
                None
            }
        }
    }
}

/// Counts a backend failure and leaves the backend alone for a while.
fn failed(health: &Mutex<Health>, backend: &'static str, operation: &'static str, error: &CacheError) {
    metrics::counter!("tessera_gateway_cache_errors_total", "operation" => operation).increment(1);
    let mut health = lock(health);
    if health.resting_until.is_none_or(|until| until <= Instant::now()) {
        tracing::warn!(%error, operation, backend, "catalogue cache unavailable; reading from inventory");
    }
    health.resting_until = Some(Instant::now() + BACKOFF);
}

/// Applies owed invalidations every `every` until `stop`.
pub async fn settle_owed_until(
    catalogue: Arc<Catalogue>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        tokio::select! {
            () = tokio::time::sleep(every) => catalogue.settle_owed().await,
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{LocalCache, groups_for};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn reply(body: &str) -> CachedReply {
        CachedReply { status: 200, content_type: None, etag: None, body: body.to_owned() }
    }

    /// A backend that fails every call: what a stopped Redis looks like.
    struct Down;

    #[async_trait]
    impl CacheBackend for Down {
        fn kind(&self) -> &'static str {
            "down"
        }
        async fn lookup(&self, _: &str, _: &str) -> Result<Lookup, CacheError> {
            Err(CacheError::Backend("refused".into()))
        }
        async fn fill(&self, _: &str, _: &str, _: Bytes, _: u64) -> Result<(), CacheError> {
            Err(CacheError::Backend("refused".into()))
        }
        async fn invalidate(&self, _: &[String]) -> Result<(), CacheError> {
            Err(CacheError::Backend("refused".into()))
        }
    }

    #[tokio::test]
    async fn a_hit_skips_the_load_and_an_invalidation_brings_it_back() {
        let catalogue = Catalogue::new(Arc::new(LocalCache::new(100, Duration::from_secs(60))));
        let loads = Arc::new(AtomicUsize::new(0));
        let key = CacheKey::product("TEA-1");
        for expected in ["one", "one", "two"] {
            if expected == "two" {
                catalogue.invalidate(groups_for("TEA-1")).await;
            }
            let loads = loads.clone();
            let got = catalogue
                .get(&key, move || async move {
                    let n = loads.fetch_add(1, Ordering::SeqCst);
                    Ok(reply(if n == 0 { "one" } else { "two" }))
                })
                .await
                .expect("reply");
            assert_eq!(got.body, expected);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_load_that_straddles_an_invalidation_is_not_kept() {
        let catalogue = Catalogue::new(Arc::new(LocalCache::new(100, Duration::from_secs(60))));
        let key = CacheKey::product("TEA-1");
        let (loaded, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let slow = {
            let catalogue = catalogue.clone();
            let (key, loaded, release) = (key.clone(), loaded.clone(), release.clone());
            tokio::spawn(async move {
                catalogue
                    .get(&key, move || async move {
                        loaded.notify_one();
                        release.notified().await;
                        Ok(reply("before the change"))
                    })
                    .await
            })
        };
        loaded.notified().await;
        // The change commits and its invalidation arrives while the old answer is in flight.
        catalogue.invalidate(groups_for("TEA-1")).await;
        release.notify_one();
        assert_eq!(slow.await.expect("task").expect("reply").body, "before the change");
        let next = catalogue.get(&key, || async { Ok(reply("after the change")) }).await.expect("reply");
        assert_eq!(next.body, "after the change", "the stale load must not have been stored");
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let catalogue = Catalogue::new(Arc::new(LocalCache::new(100, Duration::from_secs(60))));
        let loads = Arc::new(AtomicUsize::new(0));
        let readers = (0..500).map(|_| {
            let (catalogue, loads) = (catalogue.clone(), loads.clone());
            tokio::spawn(async move {
                catalogue
                    .get(&CacheKey::list("limit=5"), move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(reply("list"))
                    })
                    .await
            })
        });
        for reader in futures_util::future::join_all(readers).await {
            assert_eq!(reader.expect("task").expect("reply").body, "list");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failing_backend_is_bypassed_and_owed_invalidations_wait() {
        let catalogue = Catalogue::new(Arc::new(Down));
        let got = catalogue.get(&CacheKey::product("A"), || async { Ok(reply("fresh")) }).await;
        assert_eq!(got.expect("reply").body, "fresh");
        catalogue.invalidate(groups_for("A")).await;
        let owed = catalogue.health.lock().expect("lock").owed.len();
        assert_eq!(owed, 2, "both groups are owed to the backend");
    }
}
