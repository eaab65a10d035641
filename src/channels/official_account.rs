//! Official Account callbacks: `GET/POST /wechat/{account}`.
//!
//! GET answers WeChat's URL verification. POST accepts plaintext,
//! compatible and safe mode (branching on `encrypt_type=aes`; in compatible
//! mode only the decrypted copy is trusted), commits the message, and only
//! then acknowledges: `success`, or a passive reply (encrypted when the
//! request was).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::{ChannelAccount, ChannelError, body_text, need};
use crate::config::AccountKind;
use crate::state::AppState;
use crate::store::followers::IdentityKind;
use crate::store::messages::{Channel, Direction, Inserted, NewInbound};
use crate::wechat::{self, Event, Inbound, InboundKind, MessageBody, Reply, signature};

pub fn routes(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.service(
        web::resource("/wechat/{account}")
            .app_data(web::PayloadConfig::new(body_limit))
            .route(web::get().to(verify))
            .route(web::post().to(receive)),
    );
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

/// URL verification: echo `echostr` exactly when the signature holds.
async fn verify(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    let result = (|| {
        let acc = state
            .channels
            .get(&path, AccountKind::OfficialAccount)
            .ok_or(ChannelError::UnknownAccount)?;
        check_signature(&acc, &q)?;
        Ok::<_, ChannelError>(need(&q.echostr, "echostr")?.to_owned())
    })();
    match result {
        Ok(echo) => HttpResponse::Ok().content_type("text/plain").body(echo),
        Err(e) => e.respond(&path),
    }
}

async fn receive(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    body: web::Bytes,
) -> HttpResponse {
    match handle(&state, &path, &q, &body).await {
        Ok(res) => res,
        Err(e) => e.respond(&path),
    }
}

fn check_signature(acc: &ChannelAccount, q: &CallbackQuery) -> Result<(), ChannelError> {
    let sig = need(&q.signature, "signature")?;
    let ts = need(&q.timestamp, "timestamp")?;
    let nonce = need(&q.nonce, "nonce")?;
    if signature::verify(sig, &[acc.account.token.expose(), ts, nonce]) {
        Ok(())
    } else {
        Err(ChannelError::BadSignature)
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(account = %account_id))]
async fn handle(
    state: &AppState,
    account_id: &str,
    q: &CallbackQuery,
    body: &[u8],
) -> Result<HttpResponse, ChannelError> {
    let acc = state
        .channels
        .get(account_id, AccountKind::OfficialAccount)
        .ok_or(ChannelError::UnknownAccount)?;
    check_signature(&acc, q)?;
    let text = body_text(body)?;
    let encrypted = q.encrypt_type.as_deref() == Some("aes");
    let plain;
    let xml = if encrypted {
        let crypt = acc.crypt.as_ref().ok_or(ChannelError::NoKey)?;
        let envelope = wechat::parse_envelope(text)?;
        plain = crypt.decrypt_verified(
            need(&q.msg_signature, "msg_signature")?,
            need(&q.timestamp, "timestamp")?,
            need(&q.nonce, "nonce")?,
            &envelope.encrypt,
        )?;
        plain.as_str()
    } else {
        text
    };
    let inbound = wechat::parse(xml)?;
    let (customer, us) = (inbound.from_user.clone(), inbound.to_user.clone());
    let reply = accept(state, &acc, inbound).await?;
    Ok(match reply {
        None => HttpResponse::Ok()
            .content_type("text/plain")
            .body("success"),
        Some(reply) => {
            let reply_xml = reply.to_xml(&customer, &us, Utc::now().timestamp());
            let out = match (&acc.crypt, encrypted) {
                (Some(crypt), true) => crypt.encrypted_reply(
                    &reply_xml,
                    q.timestamp.as_deref().unwrap_or_default(),
                    q.nonce.as_deref().unwrap_or_default(),
                ),
                _ => reply_xml,
            };
            HttpResponse::Ok()
                .content_type("application/xml; charset=utf-8")
                .body(out)
        }
    })
}

/// Commits what the callback carries and applies its side effects; returns
/// the passive reply, if any.
async fn accept(
    state: &AppState,
    acc: &ChannelAccount,
    inbound: Inbound,
) -> Result<Option<Reply>, ChannelError> {
    let account = &acc.account.id;
    let at = timestamp(inbound.create_time);
    match &inbound.kind {
        // A location report every few seconds: remembered, not a chat message.
        InboundKind::Event(Event::Location {
            latitude,
            longitude,
            ..
        }) => {
            state
                .store
                .set_follower_location(
                    IdentityKind::OaOpenId,
                    account,
                    &inbound.from_user,
                    *latitude,
                    *longitude,
                    at,
                )
                .await?;
            // A newcomer's first guess at a region for routing.
            if let Some(city) = crate::routing::geo::city_at(*latitude, *longitude) {
                let customer = state
                    .store
                    .identity(IdentityKind::OaOpenId, account, &inbound.from_user)
                    .await?
                    .customer_id;
                state
                    .store
                    .set_customer_region_if_unset(crate::ids::CustomerId(customer), city)
                    .await?;
            }
            return Ok(None);
        }
        InboundKind::Event(Event::Subscribe { .. }) => {
            state
                .store
                .set_follower_subscribed(account, &inbound.from_user, true, at)
                .await?;
        }
        InboundKind::Event(Event::Unsubscribe) => {
            state
                .store
                .set_follower_subscribed(account, &inbound.from_user, false, at)
                .await?;
        }
        _ => {}
    }
    let is_subscribe = matches!(inbound.kind, InboundKind::Event(Event::Subscribe { .. }));
    let msg = to_new_inbound(account, inbound);
    let timeout = Duration::from_millis(state.settings.limits.callback_commit_timeout_ms);
    let inserted = state.ingest.ingest(msg, timeout).await?;
    if let Inserted::Duplicate = inserted {
        tracing::debug!("redelivered callback: already stored");
    }
    // A redelivered subscribe gets the welcome again: WeChat retried because
    // the first answer did not arrive.
    Ok(match (&acc.account.welcome_message, is_subscribe) {
        (Some(w), true) => Some(Reply::text(w.clone())),
        _ => None,
    })
}

fn timestamp(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_else(Utc::now)
}

/// The stored form of an OA message or event.
pub fn to_new_inbound(account: &crate::ids::AccountId, inbound: Inbound) -> NewInbound {
    let sent_at = timestamp(inbound.create_time);
    let from = &inbound.from_user;
    let (dedup_key, msg_type, content, channel_msg_id) = match &inbound.kind {
        InboundKind::Message { msg_id, body } => {
            let key = match msg_id {
                Some(id) => format!("m:{from}:{id}"),
                None => format!("m:{from}:{}:{}", inbound.create_time, body.msg_type()),
            };
            (
                key,
                body.msg_type().to_owned(),
                message_text(body),
                msg_id.map(|i| i.to_string()),
            )
        }
        InboundKind::Event(ev) => {
            let key = match inbound.msg_id() {
                // Job reports carry the id of the job they report on.
                Some(id) => format!("job:{}:{id}", ev.name()),
                None => format!(
                    "e:{from}:{}:{}",
                    inbound.create_time,
                    ev.name().to_ascii_lowercase()
                ),
            };
            (
                key,
                "event".to_owned(),
                Some(event_text(ev)),
                inbound.msg_id().map(|i| i.to_string()),
            )
        }
    };
    NewInbound {
        account: account.clone(),
        channel: Channel::OfficialAccount,
        direction: Direction::In,
        sender: inbound.from_user.clone(),
        dedup_key,
        msg_type,
        content,
        payload: inbound.raw,
        channel_msg_id,
        sent_at,
        media_object_id: None,
    }
}

/// Searchable text of a message.
fn message_text(body: &MessageBody) -> Option<String> {
    match body {
        MessageBody::Text { content } => Some(content.clone()),
        MessageBody::Voice { recognition, .. } => recognition.clone(),
        MessageBody::Location { label, .. } => Some(label.clone()),
        MessageBody::Link {
            title,
            description,
            url,
        } => Some(format!("{title}\n{description}\n{url}")),
        MessageBody::MiniProgramPage { title, .. } => Some(title.clone()),
        _ => None,
    }
}

/// A short description of an event.
fn event_text(ev: &Event) -> String {
    match ev {
        Event::Subscribe {
            event_key: Some(k), ..
        } => format!("subscribe {k}"),
        Event::Scan { event_key, .. } => format!("SCAN {event_key}"),
        Event::Click { event_key } => format!("CLICK {event_key}"),
        Event::View { url, .. } => format!("VIEW {url}"),
        Event::TemplateSendJobFinish { status, .. } => format!("TEMPLATESENDJOBFINISH {status}"),
        Event::MassSendJobFinish { status, .. } => format!("MASSSENDJOBFINISH {status}"),
        other => other.name().to_owned(),
    }
}
