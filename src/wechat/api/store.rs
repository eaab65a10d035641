//! Where access tokens are shared: one per account across every client that
//! uses the store. [`MemoryTokenStore`] serves one process; the cluster's
//! Redis store (`crate::cluster`) implements the same trait for many.
//!
//! The store is the truth; each [`ApiClient`](super::ApiClient) keeps a local
//! copy in front of it. Refreshes happen only under the store's lock, so a
//! rotating `token` call is made by one caller of one process at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

/// A token as shared between clients: its value and two wall-clock moments
/// (Unix milliseconds, comparable across hosts).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub value: String,
    /// From then on clients refresh it (WeChat's expiry minus a margin,
    /// chosen by whoever fetched it so every instance refreshes at once).
    pub refresh_at_ms: i64,
    /// WeChat's expiry (fetch time + `expires_in`); a store may forget the
    /// token after it.
    pub expires_at_ms: i64,
}

impl StoredToken {
    /// Whether it can still be handed out at `now_ms`.
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.refresh_at_ms
    }
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("value", &"***")
            .field("refresh_at_ms", &self.refresh_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// The store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenStoreError(pub String);

/// A shared access-token cache with a refresh lock. Keys are opaque account
/// keys (see [`ApiClient::store_key`](super::ApiClient::store_key)).
///
/// Object safe: the client holds an `Arc<dyn TokenStore>`.
pub trait TokenStore: Send + Sync + 'static {
    /// A short name for logs ("memory", "redis").
    fn kind(&self) -> &'static str;

    /// The current token of `key`, if any (possibly due for refresh).
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredToken>, TokenStoreError>>;

    /// Stores `token` as the current one of `key`, replacing any other.
    fn put<'a>(
        &'a self,
        key: &'a str,
        token: &'a StoredToken,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Forgets the token of `key` only if it is still `failed`
    /// (compare-and-delete); `true` if it was deleted.
    fn delete_if<'a>(
        &'a self,
        key: &'a str,
        failed: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;

    /// Takes the refresh lock of `key` for `owner` unless someone holds it;
    /// the lock frees itself after `lease` (a crashed holder cannot block).
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;

    /// Releases the lock of `key` if `owner` still holds it; `true` if it did.
    fn unlock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;
}

/// Milliseconds since the Unix epoch, the clock of [`StoredToken`].
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The single-node store: a map in this process.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, StoredToken>>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryTokenStore")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing here can leave the maps half-updated: recover from poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TokenStore for MemoryTokenStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredToken>, TokenStoreError>> {
        let now = now_ms();
        let mut tokens = lock(&self.tokens);
        let found = match tokens.get(key) {
            // Like a Redis TTL: gone once WeChat no longer accepts it.
            Some(t) if t.expires_at_ms <= now => {
                tokens.remove(key);
                None
            }
            other => other.cloned(),
        };
        Box::pin(std::future::ready(Ok(found)))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        token: &'a StoredToken,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        lock(&self.tokens).insert(key.to_owned(), token.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete_if<'a>(
        &'a self,
        key: &'a str,
        failed: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let mut tokens = lock(&self.tokens);
        let deleted = tokens.get(key).is_some_and(|t| t.value == failed);
        if deleted {
            tokens.remove(key);
        }
        Box::pin(std::future::ready(Ok(deleted)))
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let now = Instant::now();
        let mut locks = lock(&self.locks);
        let taken = match locks.get(key) {
            Some((_, until)) if *until > now => false,
            _ => {
                locks.insert(key.to_owned(), (owner.to_owned(), now + lease));
                true
            }
        };
        Box::pin(std::future::ready(Ok(taken)))
    }

    fn unlock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let mut locks = lock(&self.locks);
        let released = locks.get(key).is_some_and(|(o, _)| o == owner);
        if released {
            locks.remove(key);
        }
        Box::pin(std::future::ready(Ok(released)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(value: &str, ttl_ms: i64) -> StoredToken {
        let now = now_ms();
        StoredToken {
            value: value.into(),
            refresh_at_ms: now + ttl_ms / 2,
            expires_at_ms: now + ttl_ms,
        }
    }

    #[tokio::test]
    async fn put_get_and_compare_and_delete() {
        let s = MemoryTokenStore::new();
        assert_eq!(s.get("a").await.unwrap(), None);
        s.put("a", &token("T1", 60_000)).await.unwrap();
        assert_eq!(s.get("a").await.unwrap().unwrap().value, "T1");
        // Another token failed: the current one stays.
        assert!(!s.delete_if("a", "T0").await.unwrap());
        assert_eq!(s.get("a").await.unwrap().unwrap().value, "T1");
        assert!(s.delete_if("a", "T1").await.unwrap());
        assert_eq!(s.get("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_tokens_are_forgotten() {
        let s = MemoryTokenStore::new();
        s.put("a", &token("T1", -1)).await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_lock_has_one_owner_until_released_or_expired() {
        let s = MemoryTokenStore::new();
        let lease = Duration::from_secs(30);
        assert!(s.try_lock("a", "me", lease).await.unwrap());
        assert!(!s.try_lock("a", "you", lease).await.unwrap());
        // Other keys are independent.
        assert!(s.try_lock("b", "you", lease).await.unwrap());
        // Only the owner releases.
        assert!(!s.unlock("a", "you").await.unwrap());
        assert!(s.unlock("a", "me").await.unwrap());
        assert!(s.try_lock("a", "you", Duration::ZERO).await.unwrap());
        // A zero lease has lapsed at once: a crashed holder blocks nobody.
        assert!(s.try_lock("a", "me", lease).await.unwrap());
    }

    #[test]
    fn freshness_and_debug() {
        let t = token("SECRET_TOKEN", 10_000);
        assert!(t.is_fresh(now_ms()));
        assert!(!t.is_fresh(t.refresh_at_ms));
        assert!(!format!("{t:?}").contains("SECRET_TOKEN"));
    }
}
