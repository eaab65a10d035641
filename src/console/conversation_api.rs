//! What agents and supervisors do to a conversation, as JSON under `/api/`:
//!
//! - `GET /api/conversations/{id}`: the conversation, every recorded
//!   transition (the "why" of each decision), its surveys, and a page of its
//!   messages (`?before=<message id>&limit=<n>`, newest page first, oldest
//!   first within it);
//! - `POST /api/conversations/{id}/close`: closes it (the survey follows);
//! - `POST /api/conversations/{id}/transfer` `{"agent_id": 7}` or
//!   `{"group_id": 3}`, with an optional `"note"` kept in the transition
//!   record.
//!
//! Allowed to the agent serving the conversation (once closed, the agent who
//! served it last may still read it), to supervisors of its group (its
//! queue's, its customer's, or its agent's) and to admins; others get 403. A move the conversation's state does not allow (closing a closed
//! conversation, transferring to the agent who has it) is a 409 with the
//! reason; an unknown id a 404.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{CurrentUser, Role};
use crate::conversation::pipeline::{PipelineError, parse_state};
use crate::conversation::state::{CloseReason, ConversationState, TransferTarget, Trigger};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, ConversationId, GroupId, MessageId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::entities::{conversation_transitions, conversations, messages, surveys};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/conversations/{id}", web::get().to(show))
        .route("/api/conversations/{id}/close", web::post().to(close))
        .route("/api/conversations/{id}/transfer", web::post().to(transfer));
}

/// Messages per page unless asked otherwise, and at most.
pub(crate) const DEFAULT_MESSAGES: u64 = 100;
pub(crate) const MAX_MESSAGES: u64 = 500;
/// The longest transfer note kept, in characters.
const NOTE_CHARS: usize = 500;

/// A conversation as the console shows it.
#[derive(Serialize)]
pub(crate) struct ConversationView {
    id: i64,
    customer_id: i64,
    account_id: String,
    channel: String,
    state: String,
    agent_id: Option<i64>,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    last_message_at: DateTime<Utc>,
    last_customer_at: Option<DateTime<Utc>>,
    queued_at: Option<DateTime<Utc>>,
    awaiting_reply_since: Option<DateTime<Utc>>,
    reoffered_at: Option<DateTime<Utc>>,
}

impl From<conversations::Model> for ConversationView {
    fn from(c: conversations::Model) -> Self {
        Self {
            id: c.id,
            customer_id: c.customer_id,
            account_id: c.account_id,
            channel: c.channel,
            state: c.state,
            agent_id: c.agent_id,
            opened_at: c.opened_at,
            closed_at: c.closed_at,
            last_message_at: c.last_message_at,
            last_customer_at: c.last_customer_at,
            queued_at: c.queued_at,
            awaiting_reply_since: c.awaiting_reply_since,
            reoffered_at: c.reoffered_at,
        }
    }
}

/// One recorded transition: from, to, agent, why, who, when.
#[derive(Serialize)]
pub(crate) struct TransitionView {
    id: i64,
    from_state: Option<String>,
    to_state: String,
    agent_id: Option<i64>,
    reason: String,
    actor: String,
    at: DateTime<Utc>,
}

impl From<conversation_transitions::Model> for TransitionView {
    fn from(t: conversation_transitions::Model) -> Self {
        Self {
            id: t.id,
            from_state: t.from_state,
            to_state: t.to_state,
            agent_id: t.agent_id,
            reason: t.reason,
            actor: t.actor,
            at: t.at,
        }
    }
}

/// One message, either way.
#[derive(Serialize)]
pub(crate) struct MessageView {
    id: i64,
    /// `in` (the customer) or `out` (an agent, the robot, Kefu).
    direction: String,
    /// The customer's channel id, or an agent's login, `robot`, `system`.
    sender: String,
    agent_id: Option<i64>,
    msg_type: String,
    content: Option<String>,
    media_object_id: Option<i64>,
    sent_at: DateTime<Utc>,
}

impl From<messages::Model> for MessageView {
    fn from(m: messages::Model) -> Self {
        Self {
            id: m.id,
            direction: m.direction,
            sender: m.sender,
            agent_id: m.agent_id,
            msg_type: m.msg_type,
            content: m.content,
            media_object_id: m.media_object_id,
            sent_at: m.sent_at,
        }
    }
}

/// One satisfaction survey.
#[derive(Serialize)]
pub(crate) struct SurveyView {
    id: i64,
    agent_id: Option<i64>,
    sent_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    /// 1 (very satisfied) … 5 (very dissatisfied).
    score: Option<i32>,
    comment: Option<String>,
}

impl From<surveys::Model> for SurveyView {
    fn from(s: surveys::Model) -> Self {
        Self {
            id: s.id,
            agent_id: s.agent_id,
            sent_at: s.sent_at,
            answered_at: s.answered_at,
            score: s.score,
            comment: s.comment,
        }
    }
}

/// A page of messages: `?before=<message id>&limit=<n>`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagePage {
    pub before: Option<i64>,
    pub limit: Option<u64>,
}

impl MessagePage {
    pub(crate) fn before(&self) -> Option<MessageId> {
        self.before.map(MessageId)
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
            .unwrap_or(DEFAULT_MESSAGES)
            .clamp(1, MAX_MESSAGES)
    }
}

/// The request's query as `T`; a malformed one is a JSON 400.
pub(crate) fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))
}

/// A JSON answer that no cache keeps.
pub(crate) fn json(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// What the pipeline's refusal means to the caller.
fn pipeline_error(e: PipelineError) -> ApiError {
    match e {
        PipelineError::Invalid(why) => ApiError::new(
            Code::Conflict,
            format!("the conversation cannot do this in its current state: {why}"),
        ),
        PipelineError::Store(StoreError::NotFound) => {
            ApiError::new(Code::NotFound, "no such conversation")
        }
        other => ApiError::internal(other),
    }
}

fn changed_meanwhile() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "the conversation changed meanwhile; reload it and try again",
    )
}

/// The conversation, if `user` may see and act on it: the agent serving it,
/// or (closed) the agent who served it last, or a supervisor or admin.
pub(crate) async fn conversation_for(
    state: &AppState,
    user: &CurrentUser,
    id: ConversationId,
) -> Result<conversations::Model, ApiError> {
    let conv = match state.store.conversation(id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(Code::NotFound, "no such conversation"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    if user.role.at_least(Role::Admin) || conv.agent_id == Some(user.agent_id.0) {
        return Ok(conv);
    }
    if user.role == Role::Supervisor && supervises(state, user, &conv).await? {
        return Ok(conv);
    }
    if parse_state(&conv).ok() == Some(ConversationState::Closed)
        && state.store.last_agent_of(id).await? == Some(user.agent_id)
    {
        return Ok(conv);
    }
    Err(ApiError::new(
        Code::Forbidden,
        "only the agent serving this conversation or a supervisor of its group may do this",
    ))
}

/// Whether a supervisor oversees the conversation: it waits in one of their
/// groups' queues, its customer belongs to one of their groups, or the
/// agent serving it (or who served it last) is in one of them.
async fn supervises(
    state: &AppState,
    user: &CurrentUser,
    conv: &conversations::Model,
) -> Result<bool, ApiError> {
    let mine: std::collections::HashSet<i64> = state
        .store
        .agent_groups(user.agent_id)
        .await?
        .into_iter()
        .map(|g| g.0)
        .collect();
    if mine.is_empty() {
        return Ok(false);
    }
    if conv.queue_group_id.is_some_and(|g| mine.contains(&g)) {
        return Ok(true);
    }
    let customer = state
        .store
        .customer(crate::ids::CustomerId(conv.customer_id))
        .await?;
    if customer.city_group_id.is_some_and(|g| mine.contains(&g)) {
        return Ok(true);
    }
    let agent = match conv.agent_id {
        Some(a) => Some(AgentId(a)),
        None => state.store.last_agent_of(ConversationId(conv.id)).await?,
    };
    if let Some(a) = agent {
        return Ok(state
            .store
            .agent_groups(a)
            .await?
            .iter()
            .any(|g| mine.contains(&g.0)));
    }
    Ok(false)
}

#[derive(Serialize)]
struct Detail {
    conversation: ConversationView,
    transitions: Vec<TransitionView>,
    surveys: Vec<SurveyView>,
    messages: Vec<MessageView>,
    /// How far the customer has read (web chat tells it; WeChat does not).
    customer_read_up_to: Option<i64>,
}

/// `GET /api/conversations/{id}`.
async fn show(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let page: MessagePage = query(&req)?;
    let conv = conversation_for(&state, &user, id).await?;
    let store = &state.store;
    let transitions = store.transitions_of(id).await?;
    let surveys = store.surveys_of(id).await?;
    let messages = store
        .conversation_messages(id, page.before(), page.limit())
        .await?;
    Ok(json(&Detail {
        conversation: conv.into(),
        transitions: transitions.into_iter().map(Into::into).collect(),
        surveys: surveys.into_iter().map(Into::into).collect(),
        messages: messages.into_iter().map(Into::into).collect(),
        customer_read_up_to: store.customer_read_up_to(id).await?,
    }))
}

/// What a close or transfer came to.
#[derive(Serialize)]
struct Moved {
    conversation: ConversationId,
    state: &'static str,
    agent_id: Option<AgentId>,
}

impl Moved {
    fn new(conversation: ConversationId, s: ConversationState) -> Self {
        let (state, agent_id) = match s {
            ConversationState::Bot => ("bot", None),
            ConversationState::Queued => ("queued", None),
            ConversationState::Assigned(a) => ("assigned", Some(a)),
            ConversationState::Closed => ("closed", None),
        };
        Self {
            conversation,
            state,
            agent_id,
        }
    }
}

/// `POST /api/conversations/{id}/close`.
async fn close(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    conversation_for(&state, &user, id).await?;
    let trigger = Trigger::Closed {
        by: CloseReason::Agent(user.agent_id),
    };
    let reached = state
        .pipeline
        .trigger(id, trigger, &user.login)
        .await
        .map_err(pipeline_error)?;
    if reached != ConversationState::Closed {
        return Err(changed_meanwhile());
    }
    Ok(json(&Moved::new(id, reached)))
}

/// The body of a transfer: exactly one target.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    agent_id: Option<i64>,
    group_id: Option<i64>,
    note: Option<String>,
}

/// `POST /api/conversations/{id}/transfer`.
async fn transfer(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let body = body.into_inner();
    let to = match (body.agent_id, body.group_id) {
        (Some(a), None) => TransferTarget::Agent(AgentId(a)),
        (None, Some(g)) => TransferTarget::Group(GroupId(g)),
        _ => {
            return Err(ApiError::new(
                Code::BadRequest,
                "give either agent_id or group_id",
            ));
        }
    };
    conversation_for(&state, &user, id).await?;
    match to {
        TransferTarget::Agent(a) => match state.store.agent(a).await {
            Ok(row) if !row.disabled && row.departed_at.is_none() => {}
            Ok(_) => {
                return Err(ApiError::new(
                    Code::BadRequest,
                    "that agent has left or is disabled",
                ));
            }
            Err(StoreError::NotFound) => {
                return Err(ApiError::new(Code::BadRequest, "no such agent"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        },
        TransferTarget::Group(g) => {
            if !state.store.city_group_exists(g).await? {
                return Err(ApiError::new(Code::BadRequest, "no such group"));
            }
        }
    }
    let note: Option<String> = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(NOTE_CHARS).collect());
    let reached = state
        .pipeline
        .trigger_with_note(
            id,
            Trigger::Transferred { to },
            &user.login,
            note.as_deref(),
        )
        .await
        .map_err(pipeline_error)?;
    if let TransferTarget::Agent(a) = to
        && reached != ConversationState::Assigned(a)
    {
        return Err(changed_meanwhile());
    }
    Ok(json(&Moved::new(id, reached)))
}
