//! The outbox: everything Kefu says to a customer is stored first, then
//! sent, retried on transient failure, and its final failure is recorded in
//! words an agent understands.
//!
//! - [`Outbox::send`] validates and commits the message (through the group
//!   commit writer) and returns once it is durable, status `queued`.
//! - The sender is a loop around [`Outbox::run_once`]: it leases due messages
//!   (only the oldest unsent one per customer, so order is kept), sends them
//!   concurrently, and records the outcomes in one transaction. A message
//!   leased by a sender that crashed is taken over when its lease ends, so it
//!   is sent after a restart. WeCom kf sends carry the outbox id as `msgid`,
//!   which WeCom de-duplicates; the OA custom-send API has no such key, so a
//!   crash between WeChat's answer and the commit of `sent` can repeat that
//!   one message.
//! - Media an agent uploaded (kept in the media store) are uploaded to
//!   WeChat by the sender, through [`Media::with_uploaded_as`] (the media
//!   id cached, uploaded again when WeChat forgot it), then sent with it.
//! - [`Outbox::window`] tells, before anything is typed, whether WeChat will
//!   accept a message (48 hours after the customer's last message, 5
//!   messages; configurable).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::bus::{Bus, Event};
use crate::channels::Channels;
use crate::config::{AccountKind, OutboxSettings};
use crate::conversation::ingest::{IngestError, Ingestor};
use crate::ids::{AccountId, AgentId, MessageId};
use crate::media::upload::SendAs;
use crate::media::{Media, MediaError, MediaKind};
use crate::store::messages::Channel;
use crate::store::outbox::{Enqueued, NewOutbound, SendOutcome};
use crate::store::{Store, StoreError};
use crate::wechat::api::{ApiError, ErrorClass, OutboundContent, SendRoute};
use crate::workers::{Shutdown, Workers};

/// Who is speaking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    Agent { id: AgentId, login: String },
    Robot,
    System,
}

impl Speaker {
    fn sender(&self) -> String {
        match self {
            Speaker::Agent { login, .. } => login.clone(),
            Speaker::Robot => "robot".into(),
            Speaker::System => "system".into(),
        }
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub account: AccountId,
    /// The customer's openid (OA) or external_userid (WeCom kf).
    pub recipient: String,
    pub content: OutboundContent,
    pub speaker: Speaker,
    /// WeCom kf: the kf account the customer talks to.
    pub open_kfid: Option<String>,
    /// The caller's id for this message: a retried request is stored once.
    pub idempotency_key: Option<String>,
    /// A file of Kefu's media store to send: `content` is then the media
    /// message of its kind with an empty `media_id`, filled in when sent.
    pub media: Option<OutboundMedia>,
}

/// A stored media object sent as `kind` (an image, voice, video or file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMedia {
    pub object_id: i64,
    /// `image`, `voice`, `video` or `file`.
    pub kind: String,
    /// The name WeChat shows for a file (and the message's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl OutboundMedia {
    pub fn new(object_id: i64, kind: MediaKind, filename: Option<String>) -> Self {
        Self {
            object_id,
            kind: kind.as_str().into(),
            filename,
        }
    }

    fn media_kind(&self) -> Option<MediaKind> {
        [
            MediaKind::Image,
            MediaKind::Voice,
            MediaKind::Video,
            MediaKind::File,
        ]
        .into_iter()
        .find(|k| k.as_str() == self.kind)
    }

    /// The message to send, its media id still empty.
    pub fn content(&self) -> OutboundContent {
        let media_id = String::new();
        match self.media_kind() {
            Some(MediaKind::Image) => OutboundContent::Image { media_id },
            Some(MediaKind::Voice) => OutboundContent::Voice { media_id },
            Some(MediaKind::Video) => OutboundContent::Video {
                media_id,
                thumb_media_id: None,
                title: None,
                description: None,
            },
            Some(MediaKind::File) | None => OutboundContent::File { media_id },
        }
    }
}

/// What the sender replays, stored in the outbox row.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRequest {
    content: OutboundContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_kfid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media: Option<OutboundMedia>,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error(transparent)]
    NotStored(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one sender step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

impl Step {
    pub fn is_empty(&self) -> bool {
        self.sent + self.retried + self.failed == 0
    }
}

/// Whether WeChat will accept another message now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub open: bool,
    /// When the customer last wrote, if ever (as far as Kefu knows).
    pub last_customer_message: Option<DateTime<Utc>>,
    /// When the window closes.
    pub closes_at: Option<DateTime<Utc>>,
    /// Messages still allowed in this window.
    pub remaining: u64,
    /// Why it is closed, for the agent.
    pub reason: Option<String>,
}

/// The outbox service.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    bus: Bus,
    channels: Arc<Channels>,
    ingest: Ingestor,
    settings: OutboxSettings,
    /// This sender's name on the leases it takes.
    owner: String,
    ready: Arc<Notify>,
    /// Uploads stored media to WeChat; without it media messages fail.
    media: Option<Media>,
}

/// Longest text WeChat delivers in one customer-service message (bytes).
pub const MAX_TEXT_BYTES: usize = 2048;

impl Outbox {
    pub fn new(
        store: Store,
        bus: Bus,
        channels: Arc<Channels>,
        ingest: Ingestor,
        settings: OutboxSettings,
        ready: Arc<Notify>,
    ) -> Self {
        let owner = format!("sender-{}", &bus.origin()[..bus.origin().len().min(12)]);
        Self {
            store,
            bus,
            channels,
            ingest,
            settings,
            owner,
            ready,
            media: None,
        }
    }

    /// Sends stored media through `media` (uploaded to WeChat first).
    pub fn with_media(mut self, media: Media) -> Self {
        self.media = Some(media);
        self
    }

    /// Starts the sender loops as workers. Several loops overlap one step's
    /// database work with another's sends; leases keep them apart and the
    /// claim keeps each customer's order.
    pub fn start(&self, workers: &mut Workers) {
        for _ in 0..self.settings.senders.max(1) {
            let me = self.clone();
            workers.spawn("outbox", move |shutdown| me.run(shutdown));
        }
    }

    /// Validates and stores a message; it is `queued` when this returns.
    #[tracing::instrument(level = "debug", skip_all, fields(account = %req.account, recipient = %req.recipient))]
    pub async fn send(
        &self,
        req: OutboundRequest,
        timeout: Duration,
    ) -> Result<Enqueued, OutboxError> {
        let channel = match self.channels.get_any(req.account.as_str()) {
            Some(acc) => {
                validate(&req, acc.account.kind)?;
                match acc.account.kind {
                    AccountKind::OfficialAccount => Channel::OfficialAccount,
                    AccountKind::WecomKf => Channel::WecomKf,
                }
            }
            None if self.channels.site(req.account.as_str()).is_some() => {
                validate_web(&req)?;
                Channel::Web
            }
            None => return Err(OutboxError::UnknownAccount(req.account.to_string())),
        };
        let stored = StoredRequest {
            content: req.content.clone(),
            open_kfid: req.open_kfid.clone(),
            media: req.media.clone(),
        };
        let request =
            serde_json::to_string(&stored).map_err(|e| OutboxError::Invalid(e.to_string()))?;
        let agent = match &req.speaker {
            Speaker::Agent { id, .. } => Some(*id),
            _ => None,
        };
        let msg = NewOutbound {
            account: req.account.clone(),
            channel,
            recipient: req.recipient.clone(),
            sender: req.speaker.sender(),
            agent,
            msg_type: content_type(&req.content).into(),
            content: match &req.media {
                Some(m) => m.filename.clone().filter(|_| m.kind == "file"),
                None => content_text(&req.content),
            },
            request,
            idempotency_key: req.idempotency_key.clone(),
            media_object_id: req.media.as_ref().map(|m| m.object_id),
        };
        let enqueued = self.ingest.enqueue(msg, timeout).await?;
        if let Some((conversation, customer, message)) = enqueued.filed.clone() {
            self.bus.publish(Event::MessageFiled {
                conversation,
                customer,
                message,
            });
        }
        if !enqueued.existing {
            self.bus.publish(Event::OutboundStatus {
                message_id: enqueued.message,
                account: req.account,
                recipient: req.recipient,
                status: "queued".into(),
                reason: None,
            });
        }
        Ok(enqueued)
    }

    /// The customer-service window of `recipient` now.
    pub async fn window(&self, account: &AccountId, recipient: &str) -> Result<Window, StoreError> {
        self.window_at(account, recipient, Utc::now()).await
    }

    pub async fn window_at(
        &self,
        account: &AccountId,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> Result<Window, StoreError> {
        // The widget has no window: Kefu delivers to it itself.
        if self.channels.site(account.as_str()).is_some() {
            return Ok(Window {
                open: true,
                last_customer_message: None,
                closes_at: None,
                remaining: u64::MAX,
                reason: None,
            });
        }
        let (last, sent) = self.store.contact_window(account, recipient).await?;
        Ok(window_of(&self.settings, last, sent, now))
    }

    /// One sender step at the current time.
    pub async fn run_once(&self) -> Result<Step, StoreError> {
        self.run_once_at(Utc::now()).await
    }

    /// One sender step as if it were `now` (tests move the clock instead of
    /// sleeping through backoffs).
    pub async fn run_once_at(&self, now: DateTime<Utc>) -> Result<Step, StoreError> {
        let lease_until = now + chrono::Duration::seconds(self.settings.lease_secs as i64);
        let rows = self
            .store
            .claim_outbox(now, lease_until, &self.owner, self.settings.batch.max(1))
            .await?;
        if rows.is_empty() {
            return Ok(Step::default());
        }
        let sends = rows.iter().map(|row| self.attempt(row));
        let results = futures_util::future::join_all(sends).await;
        let mut step = Step::default();
        let mut outcomes = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            let outcome = match result {
                Ok(msgid) => {
                    step.sent += 1;
                    SendOutcome::Sent {
                        channel_msg_id: msgid,
                    }
                }
                Err(Failure {
                    error,
                    reason,
                    transient,
                }) => {
                    let attempts = row.attempts as u32 + 1;
                    if transient && attempts < self.settings.max_attempts {
                        step.retried += 1;
                        SendOutcome::Retry {
                            next_at: now + backoff(&self.settings, attempts),
                            error,
                        }
                    } else {
                        step.failed += 1;
                        SendOutcome::Failed { error, reason }
                    }
                }
            };
            outcomes.push((row.id, outcome));
        }
        let applied = self
            .store
            .record_outbox_outcomes(&self.owner, Utc::now(), &outcomes)
            .await?;
        for ((row, (_, outcome)), applied) in rows.iter().zip(&outcomes).zip(applied) {
            if !applied {
                tracing::warn!(
                    outbox_id = row.id,
                    "lease lost before the outcome was recorded"
                );
                continue;
            }
            let (status, reason) = match outcome {
                SendOutcome::Sent { .. } => ("sent", None),
                SendOutcome::Retry { .. } => continue,
                SendOutcome::Failed { reason, .. } => ("failed", Some(reason.clone())),
            };
            if let Ok(account) = AccountId::parse(&row.account_id) {
                self.bus.publish(Event::OutboundStatus {
                    message_id: MessageId(row.message_id),
                    account,
                    recipient: row.recipient.clone(),
                    status: status.into(),
                    reason,
                });
            }
        }
        Ok(step)
    }

    /// Sends one leased message.
    async fn attempt(
        &self,
        row: &crate::store::entities::outbox::Model,
    ) -> Result<Option<String>, Failure> {
        // A widget's message was delivered when it was filed: the visitor's
        // sockets carry every filed message, and a visitor away reads it
        // on return. Sending it is recording that.
        if self.channels.site(&row.account_id).is_some() {
            return Ok(None);
        }
        let Some(acc) = self.channels.get_any(&row.account_id) else {
            return Err(Failure::permanent(
                "account no longer configured",
                "账号已不在配置中。The account is no longer configured.",
            ));
        };
        let stored: StoredRequest = serde_json::from_str(&row.request).map_err(|e| {
            Failure::permanent(
                &format!("stored request unreadable: {e}"),
                "消息内容无法读取。The message could not be read.",
            )
        })?;
        let route = match acc.account.kind {
            AccountKind::OfficialAccount => SendRoute::OfficialAccount { kf_account: None },
            AccountKind::WecomKf => SendRoute::WecomKf {
                open_kfid: stored.open_kfid.clone().unwrap_or_default(),
                // WeCom de-duplicates by msgid: a resend after a crash is harmless.
                msgid: Some(format!("kefu{}", row.id)),
            },
        };
        let Some(m) = &stored.media else {
            return match acc.api.send(&row.recipient, &stored.content, route).await {
                Ok(receipt) => Ok(receipt.msgid),
                Err(e) => Err(Failure::from_api(&e)),
            };
        };
        let Some(media) = &self.media else {
            return Err(Failure::permanent(
                "no media service on this sender",
                "媒体无法发送（未配置媒体存储）。Media cannot be sent: no media store is configured.",
            ));
        };
        let Ok(account) = AccountId::parse(&row.account_id) else {
            return Err(Failure::permanent(
                "account id unreadable",
                "账号已不在配置中。The account is no longer configured.",
            ));
        };
        let send_as = SendAs {
            kind: m.media_kind(),
            filename: m.filename.clone(),
        };
        let (acc, route, content) = (&acc, &route, &stored.content);
        let sent = media
            .with_uploaded_as(&account, m.object_id, &send_as, |media_id| {
                let content = content.with_media_id(media_id);
                async move { acc.api.send(&row.recipient, &content, route.clone()).await }
            })
            .await;
        match sent {
            Ok(receipt) => Ok(receipt.msgid),
            Err(MediaError::Api(e)) => Err(Failure::from_api(&e)),
            Err(e) => Err(Failure::from_media(&e)),
        }
    }

    async fn run(self, mut shutdown: Shutdown) {
        loop {
            if shutdown.is_set() {
                return;
            }
            match self.run_once().await {
                Ok(step) if !step.is_empty() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox step failed; retrying shortly"),
            }
            // Idle: wake on a new message, at the next due time, or after 1 s.
            let wait = match self.store.outbox_next_due().await {
                Ok(Some(due)) => (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.ready.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

struct Failure {
    error: String,
    reason: String,
    transient: bool,
}

impl Failure {
    fn permanent(error: &str, reason: &str) -> Self {
        Self {
            error: error.into(),
            reason: reason.into(),
            transient: false,
        }
    }

    fn from_media(e: &MediaError) -> Self {
        let reason = match e {
            MediaError::TooLarge { .. } | MediaError::Type { .. } | MediaError::Refused(_) => {
                e.to_string()
            }
            MediaError::NotFound => "媒体文件已不在存储中。The media file is no longer stored.".into(),
            _ => "媒体文件暂时无法读取，稍后重试。The media file could not be read; it will be retried.".into(),
        };
        Self {
            error: e.to_string(),
            reason,
            transient: e.is_transient(),
        }
    }

    fn from_api(e: &ApiError) -> Self {
        Self {
            error: e.to_string(),
            reason: e.agent_reason(),
            // A token error that survived the client's own refresh-and-retry
            // is worth another try later.
            transient: matches!(e.class(), ErrorClass::Transient | ErrorClass::Token),
        }
    }
}

/// Exponential backoff with jitter: base·2^(n−1), capped, then a random
/// point in its upper half.
pub fn backoff(s: &OutboxSettings, attempt: u32) -> chrono::Duration {
    let exp = s
        .base_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(s.max_backoff_secs.saturating_mul(1000)).max(1);
    let jittered = rand::rng().random_range(capped / 2..=capped);
    chrono::Duration::milliseconds(jittered as i64)
}

fn window_of(
    s: &OutboxSettings,
    last: Option<DateTime<Utc>>,
    sent: u64,
    now: DateTime<Utc>,
) -> Window {
    let Some(last) = last else {
        return Window {
            open: false,
            last_customer_message: None,
            closes_at: None,
            remaining: 0,
            reason: Some("客户尚未发过消息，微信不允许主动发送客服消息。The customer has not written yet; WeChat allows customer-service messages only after they do.".into()),
        };
    };
    let closes_at = last + chrono::Duration::hours(s.window_hours);
    let remaining = s.window_messages.saturating_sub(sent);
    let reason = if now >= closes_at {
        Some("客户已超过 48 小时未发消息，微信不允许继续发送，需等客户再次发消息。The customer has not written for 48 hours; WeChat allows no more messages until they do.".to_owned())
    } else if remaining == 0 {
        Some(format!(
            "已达到微信的发送上限（客户上次发消息后最多 {0} 条），需等客户再次发消息。WeChat's limit of {0} messages since the customer last wrote is reached; wait until they write again.",
            s.window_messages
        ))
    } else {
        None
    };
    Window {
        open: reason.is_none(),
        last_customer_message: Some(last),
        closes_at: Some(closes_at),
        remaining,
        reason,
    }
}

fn validate(req: &OutboundRequest, kind: AccountKind) -> Result<(), OutboxError> {
    let bad = |m: &str| Err(OutboxError::Invalid(m.into()));
    if req.recipient.is_empty()
        || req.recipient.len() > 128
        || !req.recipient.bytes().all(|b| b.is_ascii_graphic())
    {
        return bad("recipient must be an openid / external_userid");
    }
    if kind == AccountKind::WecomKf && req.open_kfid.as_deref().is_none_or(str::is_empty) {
        return bad("a WeCom Customer Service message needs open_kfid");
    }
    if let Some(m) = &req.media {
        if m.media_kind().is_none() {
            return bad("media kind must be image, voice, video or file");
        }
        if req.content != m.content() {
            return bad("media content must be the empty message of its kind");
        }
        if m.kind == "file" && kind == AccountKind::OfficialAccount {
            return bad("the Official Account customer-service API cannot send files");
        }
    }
    if let OutboundContent::Text { content } = &req.content {
        if content.trim().is_empty() {
            return bad("text is empty");
        }
        if content.len() > MAX_TEXT_BYTES {
            return bad("text is longer than WeChat's 2048 bytes; split it");
        }
    }
    checked_key(req)
}

/// A message to a web chat visitor: the recipient is their visitor id.
fn validate_web(req: &OutboundRequest) -> Result<(), OutboxError> {
    let bad = |m: &str| Err(OutboxError::Invalid(m.into()));
    if req.recipient.is_empty() || req.recipient.len() > 128 {
        return bad("recipient must be a web visitor id");
    }
    if req.media.as_ref().is_some_and(|m| m.media_kind().is_none()) {
        return bad("media kind must be image, voice, video or file");
    }
    if let OutboundContent::Text { content } = &req.content {
        if content.trim().is_empty() {
            return bad("text is empty");
        }
        if content.chars().count() > MAX_WEB_TEXT_CHARS {
            return bad("text is longer than 5,000 characters; split it");
        }
    }
    checked_key(req)
}

/// An idempotency key, when given, is 1 to 128 characters.
fn checked_key(req: &OutboundRequest) -> Result<(), OutboxError> {
    if req
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 128)
    {
        return Err(OutboxError::Invalid(
            "idempotency key must be 1 to 128 characters".into(),
        ));
    }
    Ok(())
}

/// Longest text sent to a web chat visitor in one message (characters).
pub const MAX_WEB_TEXT_CHARS: usize = 5000;

fn content_type(c: &OutboundContent) -> &'static str {
    match c {
        OutboundContent::Text { .. } => "text",
        OutboundContent::Image { .. } => "image",
        OutboundContent::Voice { .. } => "voice",
        OutboundContent::File { .. } => "file",
        OutboundContent::Video { .. } => "video",
        OutboundContent::Link { .. } => "link",
        OutboundContent::MiniProgram { .. } => "miniprogram",
        OutboundContent::Menu { .. } => "msgmenu",
    }
}

fn content_text(c: &OutboundContent) -> Option<String> {
    match c {
        OutboundContent::Text { content } => Some(content.clone()),
        OutboundContent::Link {
            title, description, ..
        } => Some(format!("{title}\n{description}")),
        OutboundContent::MiniProgram { title, .. } => Some(title.clone()),
        OutboundContent::Menu { head, items, tail } => {
            let lines: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
            Some(format!("{head}\n{}\n{tail}", lines.join("\n")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> OutboxSettings {
        OutboxSettings::default()
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = s();
        for attempt in 1..=12 {
            let d = backoff(&s, attempt).num_milliseconds() as u64;
            let full = (s.base_backoff_ms << (attempt - 1)).min(s.max_backoff_secs * 1000);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d} not in [{}, {full}]",
                full / 2
            );
        }
        assert!(backoff(&s, 60).num_seconds() <= 300);
    }

    #[test]
    fn the_window_opens_with_a_customer_message_and_closes_after_48_hours_or_5_sends() {
        let s = s();
        let t0 = Utc::now();
        assert!(!window_of(&s, None, 0, t0).open);
        let w = window_of(&s, Some(t0), 0, t0 + chrono::Duration::hours(1));
        assert!(w.open && w.remaining == 5);
        assert_eq!(w.closes_at, Some(t0 + chrono::Duration::hours(48)));
        let w = window_of(&s, Some(t0), 5, t0 + chrono::Duration::hours(1));
        assert!(!w.open && w.reason.unwrap().contains("limit of 5"));
        let w = window_of(&s, Some(t0), 0, t0 + chrono::Duration::hours(49));
        assert!(!w.open && w.reason.unwrap().contains("48 hours"));
    }
}
