//! The agent's workbench, as JSON (see `docs/workbench.md`):
//!
//! - `GET /api/workbench`: the conversations I serve, the customer waiting
//!   longest for a reply first, each with the customer, the newest message,
//!   my unread count and the 48-hour window; and the realtime `epoch`;
//! - `POST /api/conversations/{id}/messages` `{"client_id": "…", "text":
//!   "…"}`: a reply from the agent serving it. The client id makes a retry
//!   safe: the same id is stored and sent once. Refused with 409 when I do
//!   not serve the conversation or WeChat's window is closed (the reason
//!   says why);
//! - `POST /api/conversations/{id}/media?client_id=…&name=…`: an image,
//!   voice, video or file (see `media_api`), with the same checks;
//! - `POST /api/conversations/{id}/read` `{"message_id": N}`: I have read up
//!   to this message.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation_api::{ConversationView, MessageView, conversation_for, json};
use crate::auth::CurrentUser;
use crate::conversation::outbox::{OutboundRequest, OutboxError, Speaker, Window};
use crate::http_error::{ApiError, Code};
use crate::ids::{AccountId, ConversationId, CustomerId, MessageId};
use crate::state::AppState;
use crate::store::entities::conversations;
use crate::wechat::api::OutboundContent;

/// How long a reply may wait for the group commit.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/workbench", web::get().to(workbench))
        .route("/api/conversations/{id}/messages", web::post().to(reply))
        .route("/api/conversations/{id}/read", web::post().to(read));
}

#[derive(Serialize)]
struct CustomerView {
    id: i64,
    name: Option<String>,
    crm_id: Option<String>,
    region: Option<String>,
    tags: Vec<String>,
}

#[derive(Serialize)]
struct Item {
    conversation: ConversationView,
    customer: Option<CustomerView>,
    last_message: Option<MessageView>,
    unread: u64,
    window: Option<Window>,
}

#[derive(Serialize)]
struct Me {
    id: i64,
    login: String,
    name: String,
    role: String,
    /// My presence as routing sees it (`idle`, `busy`, `break`, `offline`).
    status: Option<crate::routing::AgentStatus>,
}

#[derive(Serialize)]
struct Workbench {
    me: Me,
    /// The realtime channel's epoch (a hello with another one reloads).
    epoch: String,
    conversations: Vec<Item>,
    now: DateTime<Utc>,
}

/// The customer-service window of a conversation's customer.
async fn window_of(state: &AppState, c: &conversations::Model) -> Result<Option<Window>, ApiError> {
    let Ok(account) = AccountId::parse(&c.account_id) else {
        return Ok(None);
    };
    let Some(recipient) = state
        .store
        .recipient_of(CustomerId(c.customer_id), &account)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(state.outbox.window(&account, &recipient).await?))
}

async fn workbench(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let items = state.store.workbench(user.agent_id).await?;
    let mut conversations = Vec::with_capacity(items.len());
    for w in items {
        let window = window_of(&state, &w.conversation).await?;
        conversations.push(Item {
            customer: w.customer.map(|c| CustomerView {
                id: c.id,
                name: c.name,
                crm_id: c.crm_id,
                region: c.region,
                tags: c
                    .tags
                    .map(|t| {
                        t.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            conversation: w.conversation.into(),
            last_message: w.last_message.map(Into::into),
            unread: w.unread,
            window,
        });
    }
    Ok(json(&Workbench {
        me: Me {
            id: user.agent_id.0,
            login: user.login.clone(),
            name: user.name.clone(),
            role: user.role.as_str().to_owned(),
            status: state
                .router
                .agent(user.agent_id, Utc::now())
                .map(|a| a.status),
        },
        epoch: state.hub.epoch(),
        conversations,
        now: Utc::now(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    client_id: String,
    text: String,
}

#[derive(Serialize)]
struct Sent {
    message_id: MessageId,
    /// The same client id was sent before: nothing new was stored.
    existing: bool,
}

/// Where an agent's reply goes, once checked: the conversation (served
/// by this agent), the account, the customer's id there, and the reply's
/// idempotency key.
pub(crate) struct ReplyTarget {
    pub conversation: conversations::Model,
    pub account: AccountId,
    pub recipient: String,
    pub key: String,
    /// The message stored before under this client id, if any.
    pub existing: Option<crate::store::entities::outbox::Model>,
}

pub(crate) use crate::http_error::checked_client_id;

/// The checks of every reply, text or media: a well-formed client id, a
/// conversation `user` may act on and serves, a customer reachable on its
/// channel, and WeChat's window open (unless this client id was stored
/// before: a retry is answered as stored).
pub(crate) async fn reply_target(
    state: &AppState,
    user: &CurrentUser,
    id: ConversationId,
    client_id: &str,
) -> Result<ReplyTarget, ApiError> {
    let client_id = checked_client_id(client_id)?;
    let conv = conversation_for(state, user, id).await?;
    if conv.state != "assigned" || conv.agent_id != Some(user.agent_id.0) {
        return Err(ApiError::new(
            Code::Conflict,
            "only the agent serving this conversation replies in it",
        ));
    }
    let account = AccountId::parse(&conv.account_id)
        .map_err(|_| ApiError::internal("a conversation on an unknown account"))?;
    let Some(recipient) = state
        .store
        .recipient_of(CustomerId(conv.customer_id), &account)
        .await?
    else {
        return Err(ApiError::new(
            Code::Conflict,
            "the customer has no channel to reply on",
        ));
    };
    let key = format!("console:{}:{client_id}", user.agent_id);
    let existing = state.store.outbound_by_key(&account, &key).await?;
    if existing.is_none() {
        let window = state.outbox.window(&account, &recipient).await?;
        if !window.open {
            return Err(ApiError::new(
                Code::Conflict,
                format!(
                    "WeChat will refuse this message: {}",
                    window
                        .reason
                        .unwrap_or_else(|| "the 48-hour window is closed".into())
                ),
            ));
        }
    }
    Ok(ReplyTarget {
        conversation: conv,
        account,
        recipient,
        key,
        existing,
    })
}

/// What the outbox's refusal means to the console.
pub(crate) fn outbox_error(e: OutboxError) -> ApiError {
    match e {
        OutboxError::Invalid(why) => ApiError::new(Code::BadRequest, why),
        OutboxError::NotStored(e) => {
            tracing::warn!(error = %e, "a reply was not stored");
            ApiError::new(Code::Unavailable, "the reply was not stored; send it again")
        }
        e => ApiError::internal(e),
    }
}

async fn reply(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<ReplyBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let body = body.into_inner();
    let target = reply_target(&state, &user, id, &body.client_id).await?;
    let req = OutboundRequest {
        account: target.account,
        recipient: target.recipient,
        content: OutboundContent::Text { content: body.text },
        speaker: Speaker::Agent {
            id: user.agent_id,
            login: user.login.clone(),
        },
        open_kfid: target.conversation.open_kfid.clone(),
        idempotency_key: Some(target.key),
        media: None,
    };
    let e = state
        .outbox
        .send(req, SEND_TIMEOUT)
        .await
        .map_err(outbox_error)?;
    Ok(json(&Sent {
        message_id: e.message,
        existing: e.existing,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    message_id: i64,
}

async fn read(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<ReadBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let conv = conversation_for(&state, &user, id).await?;
    let up_to = MessageId(body.message_id);
    let theirs = state
        .store
        .message(up_to)
        .await
        .ok()
        .is_some_and(|m| m.conversation_id == Some(id.0));
    if !theirs {
        return Err(ApiError::new(
            Code::BadRequest,
            "message_id: not a message of this conversation",
        ));
    }
    let moved = state.store.mark_read(id, user.agent_id, up_to).await?;
    // The serving agent's reading is what the customer sees as 已读.
    if moved && conv.agent_id == Some(user.agent_id.0) {
        state.bus.publish(crate::bus::Event::Read {
            conversation: id,
            customer: CustomerId(conv.customer_id),
            account: conv.account_id.clone(),
            agent: Some(user.agent_id),
            up_to,
        });
    }
    Ok(HttpResponse::NoContent().finish())
}
