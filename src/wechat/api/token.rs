//! Access tokens: one per account across every instance (PROTOCOL.md §0.8,
//! §3.1, §7.1–7.3).
//!
//! - **Local copy** (moka, one entry): until the token's refresh moment.
//!   Concurrent callers on a miss share one load (`try_get_with`).
//! - **Shared store** (the truth): a miss reads the store; a missing or due
//!   token is fetched only by the holder of the store's refresh lock, which
//!   re-reads the store first. Callers without the lock poll the store with
//!   a short backoff until the holder's token appears (or take the lock
//!   themselves once the holder's lease lapses), bounded by a timeout.
//! - **Compare-and-delete invalidation**: a rejected token is forgotten,
//!   locally and in the store, only if it is still the current one, so a
//!   token refreshed meanwhile by someone else survives.
//!
//! Tokens and secrets are never logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::Op;
use rand::Rng;

use super::client::{ApiClient, ApiFamily, TokenMode, decode};
use super::error::ApiError;
use super::store::{StoredToken, TokenStore, TokenStoreError, now_ms};

/// Timing of token refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Refresh this long before WeChat's expiry (at most half the token's
    /// lifetime). `stable_token` rotates 5 minutes early, hence 5 minutes.
    pub early_refresh: Duration,
    /// How long the refresh lock lives at most: longer than one token call
    /// (the HTTP timeout), so a crashed holder frees it after this.
    pub lock_lease: Duration,
    /// How long a caller waits for another holder's token before failing
    /// with a transient [`ApiError::TokenStore`]; longer than the lease so
    /// a waiter can take over from a crashed holder.
    pub wait_timeout: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            early_refresh: Duration::from_secs(300),
            lock_lease: Duration::from_secs(20),
            wait_timeout: Duration::from_secs(25),
        }
    }
}

impl TokenPolicy {
    /// The default timing with the lock lease and the wait sized for token
    /// calls that may take up to `timeout` (the HTTP client's timeout): a
    /// lease shorter than one call would let a second caller refresh too.
    pub fn for_http_timeout(timeout: Duration) -> Self {
        let default = Self::default();
        let lease = default.lock_lease.max(timeout * 2);
        Self {
            lock_lease: lease,
            wait_timeout: default.wait_timeout.max(lease + Duration::from_secs(5)),
            ..default
        }
    }
}

/// First and longest pause between two polls of the store while another
/// caller refreshes.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(200);

/// This process's copy of the token.
#[derive(Clone)]
pub(crate) struct LocalToken {
    pub(crate) value: Arc<str>,
    /// When to go back to the store (the stored refresh moment).
    refresh_at: Instant,
}

impl LocalToken {
    fn from_stored(t: &StoredToken) -> Self {
        let left = u64::try_from(t.refresh_at_ms - now_ms()).unwrap_or(0);
        Self {
            value: t.value.as_str().into(),
            refresh_at: Instant::now() + Duration::from_millis(left),
        }
    }
}

/// Expires the local copy at its refresh moment, so a due token is never
/// handed out and the next caller (single-flight) goes to the store.
pub(crate) struct UntilRefresh;

impl Expiry<(), LocalToken> for UntilRefresh {
    fn expire_after_create(&self, _: &(), v: &LocalToken, created_at: Instant) -> Option<Duration> {
        Some(v.refresh_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _: &(),
        v: &LocalToken,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.refresh_at.saturating_duration_since(updated_at))
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    #[serde(default)]
    expires_in: u64,
}

/// Holds the store's refresh lock; releases it when dropped (e.g. when the
/// caller is cancelled mid-refresh) so others need not wait for the lease.
struct LockGuard {
    store: Arc<dyn TokenStore>,
    key: Arc<str>,
    owner: String,
    held: bool,
}

impl LockGuard {
    async fn release(mut self) {
        self.held = false;
        if let Err(e) = self.store.unlock(&self.key, &self.owner).await {
            tracing::warn!(key = %self.key, error = %e, "could not release the token refresh lock; it lapses with its lease");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, key, owner) = (
                self.store.clone(),
                self.key.clone(),
                std::mem::take(&mut self.owner),
            );
            rt.spawn(async move {
                let _ = store.unlock(&key, &owner).await;
            });
        }
    }
}

impl ApiClient {
    /// The current access token. Concurrent callers on a missing or due
    /// token share one load here, and one token call across every client of
    /// the same store.
    pub async fn access_token(&self) -> Result<Arc<str>, ApiError> {
        self.local
            .try_get_with((), async {
                self.shared_token()
                    .await
                    .map(|t| LocalToken::from_stored(&t))
            })
            .await
            .map(|t| t.value)
            .map_err(|e: Arc<ApiError>| (*e).clone())
    }

    /// Forgets the token if it is still `failed` (compare-and-delete, here
    /// and in the store), so a token refreshed meanwhile by another caller or
    /// instance is kept.
    pub async fn invalidate(&self, failed: &str) {
        self.local
            .entry(())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if &*e.value().value == failed => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        match self.store.delete_if(&self.store_key, failed).await {
            Ok(deleted) => {
                tracing::debug!(app_id = %self.cfg.app_id, deleted, "rejected access token invalidated")
            }
            Err(e) => tracing::warn!(
                app_id = %self.cfg.app_id, store = self.store.kind(), error = %e,
                "could not invalidate the rejected access token in the shared store"
            ),
        }
    }

    /// The store's fresh token, fetched under its lock when missing or due.
    async fn shared_token(&self) -> Result<StoredToken, ApiError> {
        let deadline = Instant::now() + self.policy.wait_timeout;
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut pause = POLL_FIRST;
        loop {
            match self.store.get(&self.store_key).await {
                Ok(Some(t)) if t.is_fresh(now_ms()) => return Ok(t),
                Ok(_) => {}
                Err(e) => return self.store_unavailable(e).await,
            }
            match self
                .store
                .try_lock(&self.store_key, &owner, self.policy.lock_lease)
                .await
            {
                Ok(true) => return self.refresh_locked(owner).await,
                Ok(false) => {}
                Err(e) => return self.store_unavailable(e).await,
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(app_id = %self.cfg.app_id, store = self.store.kind(), "gave up waiting for another caller's token refresh");
                return Err(ApiError::TokenStore(format!(
                    "no access token within {:?}: another caller holds the refresh lock",
                    self.policy.wait_timeout
                )));
            }
            // Jitter spreads the polls of many waiters.
            let jitter = rand::rng().random_range(0..=pause.as_micros() as u64 / 2);
            let sleep = (pause + Duration::from_micros(jitter)).min(deadline - now);
            tokio::time::sleep(sleep).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// Holding the lock: re-read (someone may have stored a token between
    /// our read and our lock), else fetch and store.
    async fn refresh_locked(&self, owner: String) -> Result<StoredToken, ApiError> {
        let guard = LockGuard {
            store: self.store.clone(),
            key: self.store_key.clone(),
            owner,
            held: true,
        };
        if let Ok(Some(t)) = self.store.get(&self.store_key).await
            && t.is_fresh(now_ms())
        {
            guard.release().await;
            return Ok(t);
        }
        let fetched = self.fetch_token().await;
        if let Ok(t) = &fetched
            && let Err(e) = self.store.put(&self.store_key, t).await
        {
            tracing::warn!(app_id = %self.cfg.app_id, store = self.store.kind(), error = %e, "could not share the new access token");
        }
        guard.release().await;
        fetched
    }

    /// The store failed. Tokens that do not rotate (stable, WeCom) can be
    /// fetched directly; a plain `token` call would rotate every other
    /// instance's token, so that waits for the store instead.
    async fn store_unavailable(&self, e: TokenStoreError) -> Result<StoredToken, ApiError> {
        let rotates = self.cfg.family == ApiFamily::OfficialAccount
            && self.cfg.token_mode == TokenMode::Plain;
        tracing::warn!(
            app_id = %self.cfg.app_id, store = self.store.kind(), error = %e, rotates,
            "access-token store unavailable"
        );
        if rotates {
            Err(ApiError::TokenStore(e.0))
        } else {
            self.fetch_token().await
        }
    }

    /// One call to WeChat's token endpoint.
    async fn fetch_token(&self) -> Result<StoredToken, ApiError> {
        let cfg = &self.cfg;
        let started_ms = now_ms();
        let req = match (cfg.family, cfg.token_mode) {
            (ApiFamily::WeCom, _) => self.http.get(self.url("gettoken")).query(&[
                ("corpid", cfg.app_id.as_str()),
                ("corpsecret", cfg.secret.as_str()),
            ]),
            (ApiFamily::OfficialAccount, TokenMode::Plain) => {
                self.http.get(self.url("token")).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", cfg.app_id.as_str()),
                    ("secret", cfg.secret.as_str()),
                ])
            }
            (ApiFamily::OfficialAccount, TokenMode::Stable) => self
                .http
                .post(self.url("stable_token"))
                .json(&serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": cfg.app_id,
                    "secret": cfg.secret,
                    "force_refresh": false,
                })),
        };
        let answer: TokenAnswer = decode(req.send().await.map_err(ApiError::from_reqwest)?).await?;
        match answer.access_token {
            Some(value) if answer.errcode == 0 && !value.is_empty() => {
                tracing::info!(
                    app_id = %cfg.app_id, expires_in = answer.expires_in, store = self.store.kind(),
                    "fetched a new access token"
                );
                Ok(stored_token(
                    value,
                    started_ms,
                    answer.expires_in,
                    self.policy.early_refresh,
                ))
            }
            _ => Err(ApiError::WeChat {
                code: answer.errcode,
                message: answer.errmsg,
            }),
        }
    }
}

/// The token with its moments, counted from when the call started (so a
/// slow answer errs on the early side). At least 60 s of lifetime is
/// assumed, and the margin is at most half of it, so a short-lived token
/// is still used rather than refreshed in a loop.
fn stored_token(value: String, started_ms: i64, expires_in: u64, early: Duration) -> StoredToken {
    let lifetime = Duration::from_secs(expires_in.max(60));
    let margin = early.min(lifetime / 2);
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    StoredToken {
        value,
        refresh_at_ms: started_ms.saturating_add(ms(lifetime - margin)),
        expires_at_ms: started_ms.saturating_add(ms(lifetime)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_early_but_never_more_than_half_the_lifetime() {
        let early = Duration::from_secs(300);
        let t = stored_token("T".into(), 0, 7200, early);
        assert_eq!(t.expires_at_ms, 7_200_000);
        assert_eq!(t.refresh_at_ms, 6_900_000);
        let short = stored_token("T".into(), 0, 300, early);
        assert_eq!(short.refresh_at_ms, 150_000);
        // A missing or silly expires_in still gives a usable token.
        let zero = stored_token("T".into(), 0, 0, early);
        assert_eq!((zero.refresh_at_ms, zero.expires_at_ms), (30_000, 60_000));
    }

    #[test]
    fn the_lease_outlasts_a_token_call() {
        let p = TokenPolicy::for_http_timeout(Duration::from_secs(30));
        assert_eq!(p.lock_lease, Duration::from_secs(60));
        assert!(p.wait_timeout > p.lock_lease);
        assert_eq!(
            TokenPolicy::for_http_timeout(Duration::from_secs(1)),
            TokenPolicy::default()
        );
    }

    #[test]
    fn the_local_copy_expires_at_the_refresh_moment() {
        let now = Instant::now();
        let fresh = LocalToken::from_stored(&StoredToken {
            value: "T".into(),
            refresh_at_ms: now_ms() + 60_000,
            expires_at_ms: now_ms() + 120_000,
        });
        let ttl = UntilRefresh.expire_after_create(&(), &fresh, now).unwrap();
        assert!(ttl > Duration::from_secs(59) && ttl <= Duration::from_secs(61));
        let due = LocalToken::from_stored(&StoredToken {
            value: "T".into(),
            refresh_at_ms: now_ms() - 1,
            expires_at_ms: now_ms() + 60_000,
        });
        assert_eq!(
            UntilRefresh.expire_after_create(&(), &due, Instant::now()),
            Some(Duration::ZERO)
        );
    }
}
