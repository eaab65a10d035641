//! The download worker: every inbound image, voice, video and file is
//! fetched from WeChat while WeChat still has it (3 days), stored, and
//! linked to its message.
//!
//! A loop around [`Downloader::run_once`]: each step first sweeps new
//! inbound media messages into `media_downloads` (from a watermark, so a
//! missed bus event or a restart loses nothing), then leases due rows and
//! fetches them concurrently. `media/get` is tried first; an OA image falls
//! back on its `PicUrl`. Transient failures are retried with exponential
//! backoff; permanent ones, or the last attempt, mark the message's media
//! unavailable with a reason an agent reads. The loop wakes on
//! `MessageStored`, at the next due time, and every `sweep` interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::rules::{MediaSource, source_of};
use super::{MediaError, MediaStore};
use crate::bus::{Bus, Event};
use crate::channels::Channels;
use crate::config::MediaSettings;
use crate::ids::MessageId;
use crate::store::entities::media_downloads;
use crate::store::media::DownloadOutcome;
use crate::store::{Store, StoreError};
use crate::wechat::api::{ApiClient, fetch_url};
use crate::workers::{Shutdown, Workers};

/// Messages queued per sweep.
const SWEEP_LIMIT: u64 = 1000;
/// Message ids re-scanned behind the watermark: ids committed out of order
/// (concurrent writers on PostgreSQL) are still found.
const SWEEP_MARGIN: i64 = 1000;
/// Downloads leased per step.
const BATCH: u64 = 16;
/// How long a leased download may take before another worker may retry it.
const LEASE_SECS: i64 = 300;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadStep {
    pub queued: u64,
    pub done: usize,
    pub retried: usize,
    pub failed: usize,
}

impl DownloadStep {
    pub fn is_empty(&self) -> bool {
        self.queued == 0 && self.done + self.retried + self.failed == 0
    }
}

/// The download service, cheap to clone.
#[derive(Clone)]
pub struct Downloader {
    db: Store,
    media: MediaStore,
    channels: Arc<Channels>,
    http: reqwest::Client,
    settings: MediaSettings,
    wake: Arc<Notify>,
    /// Messages up to this id were swept (minus the margin); −1 until
    /// read from the database at the first sweep.
    watermark: Arc<AtomicI64>,
}

impl Downloader {
    pub fn new(
        db: Store,
        media: MediaStore,
        channels: Arc<Channels>,
        http: reqwest::Client,
        settings: MediaSettings,
    ) -> Self {
        Self {
            db,
            media,
            channels,
            http,
            settings,
            wake: Arc::new(Notify::new()),
            watermark: Arc::new(AtomicI64::new(-1)),
        }
    }

    /// Starts the worker and its bus listener.
    pub fn start(&self, bus: &Bus, workers: &mut Workers) {
        let mut events = bus.subscribe();
        let wake = self.wake.clone();
        workers.spawn("media-events", move |mut shutdown| async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    r = events.recv() => match r {
                        Ok(env) if matches!(env.event, Event::MessageStored { .. }) => wake.notify_one(),
                        Ok(_) => {}
                        // Missed events: the sweep finds their messages.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => wake.notify_one(),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        let me = self.clone();
        workers.spawn("media-downloads", move |shutdown| me.run(shutdown));
    }

    /// Queues inbound media messages not queued yet; returns how many.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut after = self.watermark.load(Ordering::Relaxed);
        if after < 0 {
            after = self.db.media_download_high_water().await?;
            self.watermark.fetch_max(after, Ordering::Relaxed);
        }
        let (queued, scanned_to) = self
            .db
            .sweep_media_downloads(after.saturating_sub(SWEEP_MARGIN).max(0), SWEEP_LIMIT, now)
            .await?;
        self.watermark.fetch_max(scanned_to, Ordering::Relaxed);
        Ok(queued)
    }

    /// One step at the current time.
    pub async fn run_once(&self) -> Result<DownloadStep, StoreError> {
        self.run_once_at(Utc::now()).await
    }

    /// One step as if it were `now` (tests move the clock through backoffs).
    pub async fn run_once_at(&self, now: DateTime<Utc>) -> Result<DownloadStep, StoreError> {
        let mut step = DownloadStep {
            queued: self.sweep(now).await?,
            ..Default::default()
        };
        let lease_until = now + chrono::Duration::seconds(LEASE_SECS);
        let rows = self
            .db
            .claim_media_downloads(now, lease_until, BATCH)
            .await?;
        let results =
            futures_util::future::join_all(rows.iter().map(|row| self.attempt(row))).await;
        for (row, result) in rows.iter().zip(results) {
            let outcome = match result {
                Ok(object_id) => {
                    step.done += 1;
                    DownloadOutcome::Done { object_id }
                }
                Err(e) => {
                    let attempts = row.attempts as u32 + 1;
                    let error = e.to_string();
                    if e.is_transient() && attempts < self.settings.download_max_attempts {
                        step.retried += 1;
                        tracing::info!(
                            message_id = row.message_id,
                            attempts,
                            error,
                            "media download failed; will retry"
                        );
                        DownloadOutcome::Retry {
                            next_at: now + backoff(&self.settings, attempts),
                            error,
                        }
                    } else {
                        step.failed += 1;
                        tracing::warn!(
                            message_id = row.message_id,
                            attempts,
                            error,
                            "media download given up"
                        );
                        DownloadOutcome::Failed {
                            reason: reason(&e, attempts),
                            error,
                        }
                    }
                }
            };
            self.db
                .record_media_download(MessageId(row.message_id), &outcome, Utc::now())
                .await?;
        }
        Ok(step)
    }

    /// Fetches and stores one message's media; the object's id.
    #[tracing::instrument(level = "debug", skip_all, fields(message_id = row.message_id, account = %row.account_id))]
    async fn attempt(&self, row: &media_downloads::Model) -> Result<i64, MediaError> {
        let msg = self.db.message(MessageId(row.message_id)).await?;
        let acc = self
            .channels
            .get_any(&msg.account_id)
            .ok_or_else(|| MediaError::UnknownAccount(msg.account_id.clone()))?;
        let Some(source) = source_of(
            &msg.channel,
            &msg.msg_type,
            msg.payload.as_deref().unwrap_or(""),
        ) else {
            return Err(MediaError::NotFound);
        };
        match self.fetch_api(&acc.api, &source).await {
            Ok(id) => Ok(id),
            Err(first) => match &source.pic_url {
                Some(url) => {
                    tracing::debug!(error = %first, "media/get failed; trying PicUrl");
                    match self.fetch_pic_url(&source, url).await {
                        Ok(id) => Ok(id),
                        // Keep the error most worth retrying.
                        Err(second) if first.is_transient() && !second.is_transient() => Err(first),
                        Err(second) => Err(second),
                    }
                }
                None => Err(first),
            },
        }
    }

    async fn fetch_api(&self, api: &ApiClient, source: &MediaSource) -> Result<i64, MediaError> {
        let stream = api.media_get(&source.media_id).await?;
        Ok(self.media.receive(source.kind, stream).await?.id)
    }

    async fn fetch_pic_url(&self, source: &MediaSource, url: &str) -> Result<i64, MediaError> {
        let stream = fetch_url(&self.http, url).await?;
        Ok(self.media.receive(source.kind, stream).await?.id)
    }

    async fn run(self, mut shutdown: Shutdown) {
        let sweep_every = Duration::from_secs(self.settings.download_sweep_secs.max(1));
        loop {
            if shutdown.is_set() {
                return;
            }
            match self.run_once().await {
                Ok(step) if step.done + step.retried + step.failed > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "media download step failed; retrying shortly")
                }
            }
            let wait = match self.db.media_download_next_due().await {
                Ok(Some(due)) => (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(sweep_every),
                _ => sweep_every,
            };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Exponential backoff: base·2^(n−1), capped.
pub fn backoff(s: &MediaSettings, attempt: u32) -> chrono::Duration {
    let secs = s
        .download_backoff_secs
        .max(1)
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(s.download_max_backoff_secs.max(1));
    chrono::Duration::seconds(secs as i64)
}

/// What an agent reads on a message whose media could not be kept.
fn reason(e: &MediaError, attempts: u32) -> String {
    match e {
        MediaError::TooLarge { .. } | MediaError::Type { .. } | MediaError::Empty => e.to_string(),
        MediaError::UnknownAccount(_) => {
            "账号已不在配置中，媒体无法下载。The account is no longer configured; the media could not be downloaded.".into()
        }
        MediaError::NotFound => {
            "消息中没有媒体编号，媒体无法下载。The message carries no media id; the media could not be downloaded.".into()
        }
        e if e.is_transient() => format!(
            "媒体下载 {attempts} 次均失败，已放弃（{e}）。The media could not be downloaded after {attempts} attempts ({e})."
        ),
        e => format!(
            "微信已无法提供该媒体（{e}）。WeChat no longer provides this media ({e})."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = MediaSettings {
            download_backoff_secs: 30,
            download_max_backoff_secs: 100,
            ..Default::default()
        };
        assert_eq!(backoff(&s, 1).num_seconds(), 30);
        assert_eq!(backoff(&s, 2).num_seconds(), 60);
        assert_eq!(backoff(&s, 3).num_seconds(), 100);
        assert_eq!(backoff(&s, 40).num_seconds(), 100);
    }

    #[test]
    fn reasons_say_why() {
        let big = MediaError::TooLarge {
            kind: super::super::MediaKind::Image,
            limit: 10 * 1024 * 1024,
        };
        assert_eq!(
            reason(&big, 1),
            "图片超过 10 MB，无法保存。The image is larger than 10 MB."
        );
        let gone = MediaError::Api(crate::wechat::api::ApiError::WeChat {
            code: 40007,
            message: "invalid media_id".into(),
        });
        assert!(reason(&gone, 1).contains("WeChat no longer provides this media"));
        let busy = MediaError::Api(crate::wechat::api::ApiError::Http(503));
        assert!(reason(&busy, 8).contains("after 8 attempts"));
    }
}
