//! Pulling WeCom Customer Service messages with `kf/sync_msg`.
//!
//! A callback triggers a pull of its kf account; a periodic pull of every
//! known kf account catches up when a callback is lost or late. Each page's
//! messages and the cursor after it are committed together, the loop goes on
//! while `has_more` is 1 (even on an empty page), and messages are
//! de-duplicated by `msgid`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ChannelAccount, Channels};
use crate::bus::{Bus, Event};
use crate::config::AccountKind;
use crate::ids::AccountId;
use crate::store::messages::{Channel, Direction, Inserted, NewInbound};
use crate::store::{Store, StoreError};
use crate::wechat::api::ApiError;
use crate::workers::{Shutdown, Workers};

/// Pages pulled in one sync at most (a guard against a misbehaving server).
const MAX_PAGES: usize = 10_000;

#[derive(Debug)]
struct SyncRequest {
    account: AccountId,
    open_kfid: String,
    token: Option<String>,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    pub pages: usize,
    pub new: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown WeCom account {0}")]
    UnknownAccount(String),
    #[error("invalid open_kfid")]
    InvalidKfId,
}

/// The pull worker's handle.
#[derive(Clone)]
pub struct KfSync {
    tx: mpsc::Sender<SyncRequest>,
}

/// What the worker needs.
#[derive(Clone)]
pub struct KfSyncer {
    pub store: Store,
    pub bus: Bus,
    pub channels: Arc<Channels>,
}

impl KfSync {
    /// Starts the worker; `poll` of zero disables the periodic pull.
    pub fn start(syncer: KfSyncer, poll: Duration, workers: &mut Workers) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        workers.spawn("kf_sync", move |shutdown| run(syncer, rx, poll, shutdown));
        Self { tx }
    }

    /// Asks for a pull; never blocks the callback. When the queue is full the
    /// periodic pull catches up.
    pub fn trigger(&self, account: &AccountId, open_kfid: &str, token: Option<String>) {
        let req = SyncRequest {
            account: account.clone(),
            open_kfid: open_kfid.to_owned(),
            token,
        };
        if self.tx.try_send(req).is_err() {
            tracing::warn!(%account, open_kfid, "kf sync queue full; the periodic pull will catch up");
        }
    }
}

async fn run(
    syncer: KfSyncer,
    mut rx: mpsc::Receiver<SyncRequest>,
    poll: Duration,
    mut shutdown: Shutdown,
) {
    let mut ticker = (!poll.is_zero()).then(|| {
        let mut t = tokio::time::interval(poll);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut pending: Vec<SyncRequest> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            n = rx.recv_many(&mut pending, 256) => {
                if n == 0 {
                    return;
                }
                // Coalesce: one pull per kf account, with the newest token.
                let mut by_key: HashMap<(AccountId, String), Option<String>> = HashMap::new();
                for r in pending.drain(..) {
                    let slot = by_key.entry((r.account, r.open_kfid)).or_default();
                    if r.token.is_some() {
                        *slot = r.token;
                    }
                }
                for ((account, kfid), token) in by_key {
                    log_result(&account, &kfid, syncer.sync(&account, &kfid, token.as_deref()).await);
                }
            }
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                syncer.sync_all_known().await;
            }
        }
    }
}

fn log_result(account: &AccountId, kfid: &str, r: Result<SyncStats, SyncError>) {
    match r {
        Ok(s) => {
            tracing::debug!(%account, open_kfid = kfid, pages = s.pages, new = s.new, duplicates = s.duplicates, "kf sync done")
        }
        Err(e) => {
            tracing::warn!(%account, open_kfid = kfid, error = %e, "kf sync failed; the next callback or periodic pull retries")
        }
    }
}

impl KfSyncer {
    /// Pulls every known kf account of every WeCom account, without a token.
    pub async fn sync_all_known(&self) {
        for acc in self.channels.of_kind(AccountKind::WecomKf) {
            let id = &acc.account.id;
            match self.store.kf_accounts(id).await {
                Ok(kfids) => {
                    for kfid in kfids {
                        log_result(id, &kfid, self.sync(id, &kfid, None).await);
                    }
                }
                Err(e) => tracing::warn!(account = %id, error = %e, "cannot list kf accounts"),
            }
        }
    }

    /// One sync of one kf account, from its saved cursor to the end.
    #[tracing::instrument(skip(self, token), fields(account = %account))]
    pub async fn sync(
        &self,
        account: &AccountId,
        open_kfid: &str,
        token: Option<&str>,
    ) -> Result<SyncStats, SyncError> {
        if open_kfid.is_empty()
            || open_kfid.len() > 128
            || !open_kfid.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SyncError::InvalidKfId);
        }
        let acc = self
            .channels
            .get(account.as_str(), AccountKind::WecomKf)
            .ok_or_else(|| SyncError::UnknownAccount(account.to_string()))?;
        let mut cursor = self.store.kf_cursor(account, open_kfid).await?;
        let mut stats = SyncStats::default();
        while stats.pages < MAX_PAGES {
            let page = acc.api.kf_sync_msg(open_kfid, &cursor, token).await?;
            let msgs: Vec<NewInbound> = page
                .msg_list
                .iter()
                .filter_map(|m| to_new_inbound(&acc, m))
                .collect();
            let next = if page.next_cursor.is_empty() {
                cursor.clone()
            } else {
                page.next_cursor.clone()
            };
            let results = self
                .store
                .save_kf_page(account, open_kfid, &next, &msgs)
                .await?;
            stats.pages += 1;
            for (m, r) in msgs.into_iter().zip(results) {
                match r {
                    Inserted::New(id) => {
                        stats.new += 1;
                        self.bus.publish(Event::MessageStored {
                            message_id: id,
                            account: m.account,
                            sender: m.sender,
                        });
                    }
                    Inserted::Duplicate => stats.duplicates += 1,
                }
            }
            cursor = next;
            if page.has_more != 1 {
                break;
            }
        }
        Ok(stats)
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The stored form of one pulled kf message; None when it lacks a msgid.
pub fn to_new_inbound(acc: &ChannelAccount, m: &Value) -> Option<NewInbound> {
    let msgid = str_at(m, &["msgid"]).filter(|s| !s.is_empty())?;
    let msgtype = str_at(m, &["msgtype"]).unwrap_or("unknown");
    let origin = m.get("origin").and_then(Value::as_i64).unwrap_or(3);
    let external = str_at(m, &["external_userid"])
        .or_else(|| str_at(m, &["event", "external_userid"]))
        .unwrap_or_default();
    let (direction, sender) = match origin {
        // 5: a servicer replied from the WeCom client.
        5 => (
            Direction::Out,
            str_at(m, &["servicer_userid"]).unwrap_or_default(),
        ),
        _ => (Direction::In, external),
    };
    let content = match msgtype {
        "text" => str_at(m, &["text", "content"]).map(str::to_owned),
        "location" => {
            let name = str_at(m, &["location", "name"]).unwrap_or_default();
            let address = str_at(m, &["location", "address"]).unwrap_or_default();
            Some(format!("{name} {address}").trim().to_owned())
        }
        "link" => str_at(m, &["link", "title"]).map(str::to_owned),
        "miniprogram" => str_at(m, &["miniprogram", "title"]).map(str::to_owned),
        "event" => str_at(m, &["event", "event_type"]).map(str::to_owned),
        _ => None,
    };
    let sent_at = m
        .get("send_time")
        .and_then(Value::as_i64)
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .unwrap_or_else(Utc::now);
    Some(NewInbound {
        account: acc.account.id.clone(),
        channel: Channel::WecomKf,
        direction,
        sender: sender.chars().take(128).collect(),
        dedup_key: format!("kf:{}", msgid.chars().take(240).collect::<String>()),
        msg_type: msgtype.chars().take(32).collect(),
        content,
        payload: m.to_string(),
        channel_msg_id: Some(msgid.chars().take(128).collect()),
        sent_at,
        media_object_id: None,
    })
}
