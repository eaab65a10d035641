//! `POST /api/conversations/{id}/media?client_id=…&name=…`: an agent sends
//! an image, voice message, video or file into the conversation they serve.
//!
//! The body is the file itself (`Content-Type` as the browser knows it),
//! not a multipart form: one file per message needs no form, the browser
//! sends a `File` as it is (with upload progress), and the server streams
//! it into the media store without a multipart parser. The checks are the
//! text reply's (session, CSRF header, the serving agent, WeChat's window,
//! the client id: a retry is answered as stored and sends once), then the
//! channel's rules ([`crate::media::outgoing`]): the kind by the content's
//! first bytes, the size limit of that kind (a declared `Content-Length`
//! over it is refused before reading; reading stops at it), no files on
//! Official Accounts. The message is stored with its media object and
//! sent by the outbox, which uploads the file to WeChat first.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::conversation_api::{json, query};
use super::workbench_api::{SEND_TIMEOUT, outbox_error, reply_target};
use crate::auth::CurrentUser;
use crate::conversation::outbox::{OutboundMedia, OutboundRequest, Speaker};
use crate::http_error::{ApiError, Code};
use crate::ids::{ConversationId, MessageId};
use crate::media::MediaError;
use crate::media::outgoing::{self, Refused};
use crate::state::AppState;
use crate::store::messages::Channel;

/// After a refusal, the rest of a body up to this size is read and
/// dropped, so the browser sees the answer instead of a reset connection.
pub(crate) const DRAIN_BYTES: u64 = 32 * 1024 * 1024;
/// And for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(10);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/conversations/{id}/media", web::post().to(upload));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    client_id: String,
    /// The file's name (shown to WeCom customers for files).
    name: Option<String>,
}

#[derive(Serialize)]
struct Uploaded {
    message_id: MessageId,
    /// The same client id was sent before: nothing new was stored.
    existing: bool,
    media_object_id: Option<i64>,
    msg_type: String,
}

async fn upload(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let answer = receive(&state, &user, id, &req, declared_length, &mut body).await;
    if answer.is_err() && declared_length.is_none_or(|n| n <= DRAIN_BYTES) {
        drain(&mut body).await;
    }
    answer
}

async fn receive(
    state: &AppState,
    user: &CurrentUser,
    id: ConversationId,
    req: &HttpRequest,
    declared_length: Option<u64>,
    body: &mut web::Payload,
) -> Result<HttpResponse, ApiError> {
    let q: UploadQuery = query(req)?;
    let target = reply_target(state, user, id, &q.client_id).await?;
    if let Some(found) = &target.existing {
        let m = state.store.message(MessageId(found.message_id)).await?;
        return Ok(json(&Uploaded {
            message_id: MessageId(m.id),
            existing: true,
            media_object_id: m.media_object_id,
            msg_type: m.msg_type,
        }));
    }
    let channel = match state.channels.get_any(target.account.as_str()) {
        Some(a) => a.account.kind.into(),
        None if state.channels.site(target.account.as_str()).is_some() => Channel::Web,
        None => {
            return Err(ApiError::new(
                Code::Conflict,
                "the account is no longer configured",
            ));
        }
    };
    let name = q.name.as_deref().and_then(outgoing::clean_name);
    let declared_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (object, sendable) = state
        .media
        .store
        .receive_upload(
            channel,
            name.as_deref(),
            declared_type,
            declared_length,
            body,
        )
        .await
        .map_err(media_error)?;
    tracing::info!(
        conversation = id.0,
        agent = %user.agent_id,
        media_object_id = object.id,
        kind = sendable.kind.as_str(),
        size = object.size,
        "agent upload stored"
    );
    let media = OutboundMedia::new(
        object.id,
        sendable.kind,
        name.or_else(|| {
            Some(format!(
                "{}.{}",
                sendable.kind.as_str(),
                crate::media::rules::extension(&object.content_type)
            ))
        }),
    );
    let req = OutboundRequest {
        account: target.account,
        recipient: target.recipient,
        content: media.content(),
        speaker: Speaker::Agent {
            id: user.agent_id,
            login: user.login.clone(),
        },
        open_kfid: target.conversation.open_kfid.clone(),
        idempotency_key: Some(target.key),
        media: Some(media),
    };
    let e = state
        .outbox
        .send(req, SEND_TIMEOUT)
        .await
        .map_err(outbox_error)?;
    Ok(json(&Uploaded {
        message_id: e.message,
        existing: e.existing,
        media_object_id: Some(object.id),
        msg_type: sendable.kind.as_str().into(),
    }))
}

/// What a refused or failed upload answers.
pub(crate) fn media_error(e: MediaError) -> ApiError {
    let message = e.to_string();
    match e {
        MediaError::Refused(r) => {
            let code = match r {
                Refused::Empty | Refused::TooSmall | Refused::Interrupted => Code::BadRequest,
                Refused::TooLarge { .. } => Code::PayloadTooLarge,
                Refused::NotWhatItClaims { .. } | Refused::NoFilesOnOfficialAccounts => {
                    Code::UnsupportedMediaType
                }
            };
            ApiError::new(code, message)
        }
        MediaError::Empty => ApiError::new(Code::BadRequest, message),
        MediaError::TooLarge { .. } => ApiError::new(Code::PayloadTooLarge, message),
        MediaError::Type { .. } => ApiError::new(Code::UnsupportedMediaType, message),
        e => ApiError::internal(e),
    }
}

/// Reads and drops what is left of a refused body (bounded in size and
/// time), so the client reads the answer rather than a reset.
pub(crate) async fn drain(body: &mut web::Payload) {
    let work = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}
