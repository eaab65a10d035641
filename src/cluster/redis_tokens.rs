//! The access-token store of a cluster, in Redis.
//!
//! - `{prefix}:wxtoken:{key}`: a hash `{token, refresh_at_ms, expires_at_ms}`
//!   whose Redis TTL ends at WeChat's expiry.
//! - `{prefix}:wxtoken:{key}:lock`: the refresh lock, `SET NX PX lease`
//!   holding the owner's random id.
//!
//! Releasing the lock and invalidating a token are compare-and-delete: each
//! is one `EVAL` of a three-line Lua script, so nothing can slip between the
//! comparison and the delete (a GET-then-DEL pair could delete a lock that
//! lapsed and was taken by another instance meanwhile, or a token stored by
//! a concurrent refresh). `EVAL` is an ordinary command: the crate's
//! `script` feature only adds an EVALSHA cache, which these calls don't need.

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::redact_url;
use crate::wechat::api::{StoredToken, TokenStore, TokenStoreError, now_ms};

/// Deletes KEYS[1] if its `token` field equals ARGV[1].
const DELETE_TOKEN_IF: &str = "if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

/// Deletes KEYS[1] if its value equals ARGV[1].
const DELETE_LOCK_IF: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

/// How long one Redis command may take before the caller is told the store
/// is unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redis could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("Redis at {url}: {reason}")]
pub struct RedisTokenStoreError {
    /// The URL without its password.
    pub url: String,
    pub reason: String,
}

/// Access tokens shared by every instance using the same Redis and prefix.
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisTokenStore {
    /// Connects (reconnecting by itself later) and checks the connection.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisTokenStoreError> {
        let err = |reason: String| RedisTokenStoreError {
            url: redact_url(url),
            reason,
        };
        let client = redis::Client::open(url).map_err(|e| err(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| err(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn token_key(&self, key: &str) -> String {
        format!("{}:wxtoken:{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}:wxtoken:{key}:lock", self.prefix)
    }
}

fn store_err(e: redis::RedisError) -> TokenStoreError {
    TokenStoreError(format!("redis: {e}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl TokenStore for RedisTokenStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredToken>, TokenStoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (value, refresh_at_ms, expires_at_ms): (Option<String>, Option<i64>, Option<i64>) =
                redis::cmd("HMGET")
                    .arg(self.token_key(key))
                    .arg("token")
                    .arg("refresh_at_ms")
                    .arg("expires_at_ms")
                    .query_async(&mut conn)
                    .await
                    .map_err(store_err)?;
            Ok(match (value, refresh_at_ms, expires_at_ms) {
                (Some(value), Some(refresh_at_ms), Some(expires_at_ms)) if !value.is_empty() => {
                    Some(StoredToken {
                        value,
                        refresh_at_ms,
                        expires_at_ms,
                    })
                }
                _ => None,
            })
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        token: &'a StoredToken,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ttl_ms = (token.expires_at_ms - now_ms()).max(1);
            let k = self.token_key(key);
            // One MULTI/EXEC: readers never see the fields without the TTL.
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&k)
                .ignore()
                .cmd("HSET")
                .arg(&k)
                .arg("token")
                .arg(&token.value)
                .arg("refresh_at_ms")
                .arg(token.refresh_at_ms)
                .arg("expires_at_ms")
                .arg(token.expires_at_ms)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&k)
                .arg(ttl_ms)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(store_err)
        })
    }

    fn delete_if<'a>(
        &'a self,
        key: &'a str,
        failed: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: i64 = redis::cmd("EVAL")
                .arg(DELETE_TOKEN_IF)
                .arg(1)
                .arg(self.token_key(key))
                .arg(failed)
                .query_async(&mut conn)
                .await
                .map_err(store_err)?;
            Ok(deleted > 0)
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(self.lock_key(key))
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(millis(lease))
                .query_async(&mut conn)
                .await
                .map_err(store_err)?;
            Ok(set.is_some())
        })
    }

    fn unlock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: i64 = redis::cmd("EVAL")
                .arg(DELETE_LOCK_IF)
                .arg(1)
                .arg(self.lock_key(key))
                .arg(owner)
                .query_async(&mut conn)
                .await
                .map_err(store_err)?;
            Ok(deleted > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real Redis only when `KEFU_TEST_REDIS_URL` is set.
    async fn store() -> Option<RedisTokenStore> {
        let url = std::env::var("KEFU_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            eprintln!("KEFU_TEST_REDIS_URL not set: skipping the Redis token store test");
            return None;
        };
        let prefix = format!("kefu-unit-{}", uuid::Uuid::new_v4().simple());
        Some(RedisTokenStore::connect(&url, &prefix).await.unwrap())
    }

    #[tokio::test]
    async fn tokens_and_locks_compare_before_deleting() {
        let Some(s) = store().await else { return };
        let now = now_ms();
        let t = StoredToken {
            value: "T1".into(),
            refresh_at_ms: now + 30_000,
            expires_at_ms: now + 60_000,
        };
        assert_eq!(s.get("wx1").await.unwrap(), None);
        s.put("wx1", &t).await.unwrap();
        assert_eq!(s.get("wx1").await.unwrap(), Some(t.clone()));
        assert!(!s.delete_if("wx1", "T0").await.unwrap());
        assert!(s.delete_if("wx1", "T1").await.unwrap());
        assert_eq!(s.get("wx1").await.unwrap(), None);

        let lease = Duration::from_secs(5);
        assert!(s.try_lock("wx1", "a", lease).await.unwrap());
        assert!(!s.try_lock("wx1", "b", lease).await.unwrap());
        assert!(!s.unlock("wx1", "b").await.unwrap());
        assert!(s.unlock("wx1", "a").await.unwrap());
        assert!(s.try_lock("wx1", "b", lease).await.unwrap());
        assert!(s.unlock("wx1", "b").await.unwrap());
    }
}
