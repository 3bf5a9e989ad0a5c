//! The cache in Redis, shared by every gateway replica (the distributed topology).
//!
//! A group is a hash `<prefix>:g:<group>` (one field per entry) with a time to live; its stamp
//! is a counter `<prefix>:s:<group>`. A lookup returns the field or, on a miss, the stamp, in
//! one round trip; a fill is a script that writes only if the stamp is unchanged; an
//! invalidation deletes the hash and increments the stamp in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;

use super::backend::{BACKEND_DEADLINE, CacheBackend, CacheError, Lookup, MAX_FIELDS};

#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key, so that several systems can share one server.
    pub prefix: String,
    /// How long an entry is kept at most (a bound on staleness should an invalidation be lost
    /// with the server's own state).
    pub ttl: Duration,
    /// How long one command may take before the cache is bypassed.
    pub timeout: Duration,
}

impl RedisSettings {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: "tessera:catalogue".to_owned(),
            ttl: Duration::from_secs(60),
            timeout: BACKEND_DEADLINE,
        }
    }
}

pub struct RedisCache {
    connection: ConnectionManager,
    settings: RedisSettings,
    lookup: redis::Script,
    fill: redis::Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.settings.prefix).finish_non_exhaustive()
    }
}

const LOOKUP: &str = r"
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then return {1, value} end
return {0, redis.call('GET', KEYS[2]) or '0'}";

// The group expires a fixed time after its first fill (later fields do not extend it), and
// holds a bounded number of fields.
const FILL: &str = r"
if (redis.call('GET', KEYS[2]) or '0') == ARGV[3] then
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    if redis.call('PTTL', KEYS[1]) < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[4])
    end
  end
end
return 0";

impl RedisCache {
    /// Connects lazily: a server that is down now does not stop the gateway from starting;
    /// reads go to inventory until it answers.
    pub fn new(settings: RedisSettings) -> Result<Self, CacheError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(backend)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(backend)?;
        Ok(Self { connection, settings, lookup: redis::Script::new(LOOKUP), fill: redis::Script::new(FILL) })
    }

    fn keys(&self, group: &str) -> (String, String) {
        let prefix = &self.settings.prefix;
        (format!("{prefix}:g:{group}"), format!("{prefix}:s:{group}"))
    }

    async fn within<T>(&self, work: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
        match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(answer) => answer.map_err(backend),
            Err(_) => Err(CacheError::Timeout(self.settings.timeout)),
        }
    }
}

fn backend(error: redis::RedisError) -> CacheError {
    CacheError::Backend(error.to_string())
}

#[async_trait]
impl CacheBackend for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn lookup(&self, group: &str, field: &str) -> Result<Lookup, CacheError> {
        let (hash, stamp) = self.keys(group);
        let mut connection = self.connection.clone();
        let mut call = self.lookup.key(hash);
        call.key(stamp).arg(field);
        let (found, value): (i64, Vec<u8>) = self.within(call.invoke_async(&mut connection)).await?;
        if found == 1 {
            return Ok(Lookup::Hit(Bytes::from(value)));
        }
        let stamp = std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| CacheError::Corrupt("a stamp that is not a number".into()))?;
        Ok(Lookup::Miss { stamp })
    }

    async fn fill(&self, group: &str, field: &str, value: Bytes, stamp: u64) -> Result<(), CacheError> {
        let (hash, stamp_key) = self.keys(group);
        let mut connection = self.connection.clone();
        let mut call = self.fill.key(hash);
        call.key(stamp_key)
            .arg(field)
            .arg(value.as_ref())
            .arg(stamp.to_string())
            .arg(self.settings.ttl.as_millis().to_string())
            .arg(MAX_FIELDS);
        let _: i64 = self.within(call.invoke_async(&mut connection)).await?;
        Ok(())
    }

    async fn invalidate(&self, groups: &[String]) -> Result<(), CacheError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for group in groups {
            let (hash, stamp) = self.keys(group);
            pipe.del(hash).ignore().incr(stamp, 1).ignore();
        }
        let mut connection = self.connection.clone();
        let () = self.within(pipe.query_async(&mut connection)).await?;
        Ok(())
    }
}
