//! Per-visitor and per-IP rate limits: one token bucket per key.
//!
//! A bucket holds up to `burst` requests and gains `per_minute` a minute.
//! It is kept as one instant, the moment it would be full again (the
//! "theoretical arrival time" of GCRA): a request is allowed while that
//! moment is at most `burst - 1` intervals ahead, and moves it one interval
//! on. Refused requests cost nothing. Integer durations, so a client that
//! waits exactly the retry-after it was given gets in.
//!
//! Keys live in a bounded cache. A key idle long enough to have refilled is
//! forgotten, which changes nothing (it would start full). Past `max_keys`
//! the least used keys are forgotten early and start full again: the
//! bound on memory wins over the limit for a flood of distinct keys,
//! which the per-IP limit is there to stop.
//!
//! The cache is moka's async one (the crate's `future` feature), so
//! [`RateLimiter::check`] is async; it never waits on anything but the
//! cache.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;

/// A keyed token bucket; cheap to clone (clones share the buckets).
#[derive(Clone)]
pub struct RateLimiter {
    /// Time for one request to come back.
    interval: Duration,
    /// How far the full-again moment may be ahead of now: `burst - 1`
    /// intervals.
    tolerance: Duration,
    buckets: Cache<String, Arc<Mutex<Instant>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.interval)
            .field("tolerance", &self.tolerance)
            .field("keys", &self.buckets.entry_count())
            .finish()
    }
}

impl RateLimiter {
    /// `per_minute` requests a minute per key, up to `burst` at once, for
    /// at most `max_keys` keys. Zeros count as 1.
    pub fn new(per_minute: u32, burst: u32, max_keys: u64) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        let tolerance = interval * (burst.max(1) - 1);
        // A bucket idle this long is full again: forgetting it is exact.
        let refill = (tolerance + interval).max(Duration::from_secs(1));
        Self {
            interval,
            tolerance,
            buckets: Cache::builder()
                .max_capacity(max_keys.max(1))
                .time_to_idle(refill)
                .build(),
        }
    }

    /// Takes one request from `key`'s bucket now; when it is empty, how
    /// long until the next one would be allowed.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now()).await
    }

    /// [`RateLimiter::check`] at a given moment (tests). An instant earlier
    /// than the key's last counts as that one: time never runs backwards
    /// for a bucket.
    pub async fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let bucket = self
            .buckets
            .get_with_by_ref(key, async move { Arc::new(Mutex::new(now)) })
            .await;
        let mut full_at = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let from = (*full_at).max(now);
        let ahead = from - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        *full_at = from.checked_add(self.interval).unwrap_or(from);
        Ok(())
    }

    /// How many keys are held now (approximately: the cache counts lazily).
    pub fn key_count(&self) -> u64 {
        self.buckets.entry_count()
    }
}

/// A retry-after as the `Retry-After` header's whole seconds: rounded up,
/// at least 1.
pub fn retry_after_secs(retry: Duration) -> u64 {
    let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_burst_is_allowed_then_the_next_is_refused_until_it_refills() {
        let l = RateLimiter::new(60, 3, 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check_at("v", t0).await, Ok(()), "request {i}");
        }
        // One a second: the fourth may come in one second.
        assert_eq!(l.check_at("v", t0).await, Err(SEC));
        // Refusals cost nothing: still one second, not two.
        assert_eq!(l.check_at("v", t0).await, Err(SEC));
        let half = t0 + SEC / 2;
        assert_eq!(l.check_at("v", half).await, Err(SEC / 2));
        // Waiting exactly the retry-after is enough, for one request.
        assert_eq!(l.check_at("v", t0 + SEC).await, Ok(()));
        assert_eq!(l.check_at("v", t0 + SEC).await, Err(SEC));
    }

    #[tokio::test]
    async fn a_long_pause_refills_the_bucket_to_its_burst_and_no_more() {
        let l = RateLimiter::new(6, 2, 100);
        let t0 = Instant::now();
        assert!(l.check_at("v", t0).await.is_ok());
        assert!(l.check_at("v", t0).await.is_ok());
        // Six a minute: one every 10 s.
        assert_eq!(l.check_at("v", t0).await, Err(10 * SEC));
        assert!(l.check_at("v", t0 + 10 * SEC).await.is_ok());
        // An hour later the bucket is full: two, not 360.
        let later = t0 + 3600 * SEC;
        assert!(l.check_at("v", later).await.is_ok());
        assert!(l.check_at("v", later).await.is_ok());
        assert_eq!(l.check_at("v", later).await, Err(10 * SEC));
    }

    #[tokio::test]
    async fn a_steady_rate_at_the_limit_is_never_refused() {
        let l = RateLimiter::new(120, 1, 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            assert_eq!(l.check_at("v", t0 + SEC / 2 * i).await, Ok(()), "{i}");
        }
        assert_eq!(l.check_at("v", t0 + SEC / 2 * 999).await, Err(SEC / 2));
    }

    #[tokio::test]
    async fn keys_are_independent() {
        let l = RateLimiter::new(60, 1, 100);
        let t0 = Instant::now();
        assert!(l.check_at("visitor:a", t0).await.is_ok());
        assert!(l.check_at("visitor:a", t0).await.is_err());
        assert!(l.check_at("visitor:b", t0).await.is_ok());
        assert!(l.check_at("ip:203.0.113.5", t0).await.is_ok());
        assert!(l.check_at("visitor:b", t0).await.is_err());
    }

    #[tokio::test]
    async fn an_earlier_instant_does_not_refill() {
        let l = RateLimiter::new(60, 1, 100);
        let t0 = Instant::now() + 100 * SEC;
        assert!(l.check_at("v", t0).await.is_ok());
        assert_eq!(l.check_at("v", t0 - 50 * SEC).await, Err(51 * SEC));
    }

    #[tokio::test]
    async fn zeros_count_as_one() {
        let l = RateLimiter::new(0, 0, 0);
        let t0 = Instant::now();
        assert!(l.check_at("v", t0).await.is_ok());
        assert_eq!(l.check_at("v", t0).await, Err(60 * SEC));
    }

    #[tokio::test]
    async fn the_number_of_keys_is_bounded() {
        let l = RateLimiter::new(60, 5, 50);
        let t0 = Instant::now();
        for i in 0..2000 {
            assert!(l.check_at(&format!("ip:{i}"), t0).await.is_ok());
        }
        l.buckets.run_pending_tasks().await;
        assert!(l.key_count() <= 50, "{}", l.key_count());
        assert!(l.key_count() > 0);
    }

    #[tokio::test]
    async fn check_uses_the_clock() {
        let l = RateLimiter::new(1, 1, 10);
        assert!(l.check("v").await.is_ok());
        let retry = l.check("v").await.unwrap_err();
        assert!(retry > 59 * SEC && retry <= 60 * SEC, "{retry:?}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(SEC), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(60 * SEC), 60);
    }
}
