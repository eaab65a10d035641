//! Delivers the CRM events (`crm_events`) to `crm.webhook_url`, oldest
//! first, in batches: `POST {"events": [...]}` signed like the inbound API
//! (`X-Kefu-Timestamp`, `X-Kefu-Signature`: HMAC-SHA256 of
//! `"{timestamp}\n{body}"` with `KEFU_CRM_WEBHOOK_SECRET`). A batch is
//! retried, with backoff from 1 s doubling up to
//! `crm.webhook_max_backoff_secs`, until the CRM answers 2xx; nothing after
//! it is sent meanwhile, so events reach the CRM in order (per customer and
//! overall). Delivery is at least once: the CRM deduplicates by `id`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::CrmSettings;
use crate::store::Store;
use crate::store::entities::crm_events;
use crate::workers::Workers;

/// How often the sender looks for events when nothing woke it.
const POLL: Duration = Duration::from_secs(2);

/// An event as the CRM sees it (webhook and `GET /events`).
pub fn event_json(e: &crm_events::Model) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "created_at": e.created_at,
        "data": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
    })
}

/// The sender (cheap to clone): [`Webhook::wake`] when events were recorded.
#[derive(Clone, Default)]
pub struct Webhook {
    wake: Arc<Notify>,
}

impl Webhook {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the sender when a webhook URL is configured.
    pub fn start(
        &self,
        store: Store,
        http: reqwest::Client,
        settings: CrmSettings,
        workers: &mut Workers,
    ) {
        if settings.webhook_url.trim().is_empty() {
            return;
        }
        let wake = self.wake.clone();
        workers.spawn("crm-webhook", move |mut shutdown| async move {
            let max = Duration::from_secs(settings.webhook_max_backoff_secs.max(1));
            let mut backoff = Duration::from_secs(1);
            loop {
                let pause = match deliver_once(&store, &http, &settings).await {
                    Ok(0) => {
                        backoff = Duration::from_secs(1);
                        POLL
                    }
                    Ok(_) => {
                        backoff = Duration::from_secs(1);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "CRM webhook delivery failed");
                        let p = backoff;
                        backoff = (backoff * 2).min(max);
                        p
                    }
                };
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = wake.notified(), if pause == POLL => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        });
    }
}

/// Sends the oldest undelivered batch; how many events it delivered.
pub async fn deliver_once(
    store: &Store,
    http: &reqwest::Client,
    settings: &CrmSettings,
) -> anyhow::Result<usize> {
    let batch = store
        .undelivered_crm_events(settings.webhook_batch.max(1))
        .await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
    let body = serde_json::to_vec(&json!({
        "events": batch.iter().map(event_json).collect::<Vec<_>>(),
    }))?;
    let ts = chrono::Utc::now().timestamp();
    let mut req = http
        .post(settings.webhook_url.trim())
        .timeout(Duration::from_secs(settings.webhook_timeout_secs.max(1)))
        .header("content-type", "application/json")
        .header("x-kefu-timestamp", ts.to_string());
    if let Some(secret) = &settings.webhook_secret {
        req = req.header(
            "x-kefu-signature",
            super::hex(&super::sign(secret.expose().as_bytes(), ts, &body)),
        );
    }
    let outcome = match req.body(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the CRM answered {}", r.status())),
        // Without the URL: it may hold a token.
        Err(e) => Err(format!("cannot reach the CRM: {}", e.without_url())),
    };
    match outcome {
        Ok(()) => {
            store.crm_events_delivered(&ids).await?;
            Ok(ids.len())
        }
        Err(reason) => {
            store.crm_events_failed(&ids, &reason).await?;
            anyhow::bail!(reason)
        }
    }
}
