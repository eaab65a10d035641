//! WeCom Customer Service callbacks: `GET/POST /wecom/{account}`.
//!
//! The callback only signals (`kf_msg_or_event` with a short-lived `Token`);
//! the messages are pulled with `kf/sync_msg` by [`super::kf_sync`]. The
//! callback is acknowledged with HTTP 200 and an empty body at once.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{ChannelError, body_text, need};
use crate::config::AccountKind;
use crate::state::AppState;
use crate::wechat::{self, Event, InboundKind};

pub fn routes(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.service(
        web::resource("/wecom/{account}")
            .app_data(web::PayloadConfig::new(body_limit))
            .route(web::get().to(verify))
            .route(web::post().to(receive)),
    );
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    msg_signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
}

/// URL verification: decrypt the (URL-encoded) `echostr` and answer its
/// plaintext.
async fn verify(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    let result = (|| {
        let acc = state
            .channels
            .get(&path, AccountKind::WecomKf)
            .ok_or(ChannelError::UnknownAccount)?;
        let crypt = acc.crypt.as_ref().ok_or(ChannelError::NoKey)?;
        Ok::<_, ChannelError>(crypt.decrypt_verified(
            need(&q.msg_signature, "msg_signature")?,
            need(&q.timestamp, "timestamp")?,
            need(&q.nonce, "nonce")?,
            need(&q.echostr, "echostr")?,
        )?)
    })();
    match result {
        Ok(plain) => HttpResponse::Ok().content_type("text/plain").body(plain),
        Err(e) => e.respond(&path),
    }
}

async fn receive(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let result = (|| {
        let acc = state
            .channels
            .get(&path, AccountKind::WecomKf)
            .ok_or(ChannelError::UnknownAccount)?;
        let crypt = acc.crypt.as_ref().ok_or(ChannelError::NoKey)?;
        let envelope = wechat::parse_envelope(body_text(&body)?)?;
        let plain = crypt.decrypt_verified(
            need(&q.msg_signature, "msg_signature")?,
            need(&q.timestamp, "timestamp")?,
            need(&q.nonce, "nonce")?,
            &envelope.encrypt,
        )?;
        Ok::<_, ChannelError>((acc, wechat::parse(&plain)?))
    })();
    match result {
        Ok((acc, inbound)) => {
            match inbound.kind {
                InboundKind::Event(Event::KfMsgOrEvent { token, open_kf_id }) => {
                    state
                        .kf_sync
                        .trigger(&acc.account.id, &open_kf_id, Some(token));
                }
                other => {
                    tracing::debug!(account = %acc.account.id, kind = ?other, "WeCom callback ignored")
                }
            }
            HttpResponse::Ok().finish()
        }
        Err(e) => e.respond(&path),
    }
}
