//! Leave-a-message tickets, as JSON under `/api/`:
//!
//! - `GET /api/tickets?status=open|pending|resolved&before=<id>&limit=<n>`:
//!   newest first; agents see the tickets assigned to them or to one of
//!   their groups, supervisors and admins every ticket;
//! - `GET /api/tickets/{id}`: the ticket, its history, and a page of its
//!   conversation's messages (`?before=<message id>&limit=<n>`);
//! - `POST /api/tickets/{id}` `{"status": "pending", "assignee_agent_id": 7,
//!   "note": "called back"}` (any of the three): each change is kept in the
//!   history with who and when. Agents change only the tickets they see.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation_api::{MessagePage, MessageView, json, query};
use crate::auth::{CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, ConversationId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::entities::{ticket_events, tickets};
use crate::store::tickets::{TicketChange, TicketFilter, status};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/tickets", web::get().to(list)).service(
        web::resource("/api/tickets/{id}")
            .route(web::get().to(show))
            .route(web::post().to(update)),
    );
}

/// Tickets per page unless asked otherwise, and at most.
const DEFAULT_TICKETS: u64 = 50;
const MAX_TICKETS: u64 = 200;
/// The longest note kept, in characters.
const NOTE_CHARS: usize = 2000;

#[derive(Serialize)]
struct TicketView {
    id: i64,
    customer_id: i64,
    conversation_id: Option<i64>,
    account_id: String,
    status: String,
    assignee_agent_id: Option<i64>,
    group_id: Option<i64>,
    summary: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

impl From<tickets::Model> for TicketView {
    fn from(t: tickets::Model) -> Self {
        Self {
            id: t.id,
            customer_id: t.customer_id,
            conversation_id: t.conversation_id,
            account_id: t.account_id,
            status: t.status,
            assignee_agent_id: t.assignee_agent_id,
            group_id: t.group_id,
            summary: t.summary,
            created_at: t.created_at,
            updated_at: t.updated_at,
            resolved_at: t.resolved_at,
        }
    }
}

#[derive(Serialize)]
struct EventView {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    /// `opened`, `message`, `status`, `assigned`, `note`.
    kind: String,
    note: String,
}

impl From<ticket_events::Model> for EventView {
    fn from(e: ticket_events::Model) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            note: e.note,
        }
    }
}

/// The tickets `user` sees: `None` for all (supervisors, admins), else
/// their own and their groups'.
async fn scope_of(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Option<(AgentId, Vec<crate::ids::GroupId>)>, ApiError> {
    if user.role.at_least(Role::Supervisor) {
        return Ok(None);
    }
    let groups = state.store.agent_groups(user.agent_id).await?;
    Ok(Some((user.agent_id, groups)))
}

/// The ticket, if `user` sees it.
async fn ticket_for(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
) -> Result<tickets::Model, ApiError> {
    let t = match state.store.ticket(id).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => return Err(ApiError::new(Code::NotFound, "no such ticket")),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let visible = match scope_of(state, user).await? {
        None => true,
        Some((agent, groups)) => {
            t.assignee_agent_id == Some(agent.0)
                || t.group_id.is_some_and(|g| groups.iter().any(|m| m.0 == g))
        }
    };
    if !visible {
        return Err(ApiError::new(
            Code::Forbidden,
            "this ticket is neither yours nor your groups'",
        ));
    }
    Ok(t)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    before: Option<i64>,
    limit: Option<u64>,
}

#[derive(Serialize)]
struct List {
    tickets: Vec<TicketView>,
}

/// `GET /api/tickets`.
async fn list(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(status::parse(s).ok_or_else(|| {
            ApiError::new(Code::BadRequest, "status must be open, pending or resolved")
        })?),
    };
    let filter = TicketFilter {
        status,
        visible_to: scope_of(&state, &user).await?,
        before: q.before,
        limit: q.limit.unwrap_or(DEFAULT_TICKETS).clamp(1, MAX_TICKETS),
    };
    let rows = state.store.list_tickets(&filter).await?;
    Ok(json(&List {
        tickets: rows.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Serialize)]
struct Detail {
    ticket: TicketView,
    events: Vec<EventView>,
    messages: Vec<MessageView>,
}

async fn detail(
    state: &AppState,
    t: tickets::Model,
    page: &MessagePage,
) -> Result<Detail, ApiError> {
    let events = state.store.ticket_events(t.id).await?;
    let messages = match t.conversation_id {
        Some(c) => {
            state
                .store
                .conversation_messages(ConversationId(c), page.before(), page.limit())
                .await?
        }
        None => Vec::new(),
    };
    Ok(Detail {
        ticket: t.into(),
        events: events.into_iter().map(Into::into).collect(),
        messages: messages.into_iter().map(Into::into).collect(),
    })
}

/// `GET /api/tickets/{id}`.
async fn show(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page: MessagePage = query(&req)?;
    let t = ticket_for(&state, &user, path.into_inner()).await?;
    Ok(json(&detail(&state, t, &page).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    status: Option<String>,
    assignee_agent_id: Option<i64>,
    note: Option<String>,
}

/// `POST /api/tickets/{id}`.
async fn update(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new_status = match body.status.as_deref() {
        None => None,
        Some(s) => Some(status::parse(s).ok_or_else(|| {
            ApiError::new(Code::BadRequest, "status must be open, pending or resolved")
        })?),
    };
    let note: Option<String> = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(NOTE_CHARS).collect());
    if new_status.is_none() && body.assignee_agent_id.is_none() && note.is_none() {
        return Err(ApiError::new(
            Code::BadRequest,
            "give a status, an assignee_agent_id or a note",
        ));
    }
    let seen = ticket_for(&state, &user, path.into_inner()).await?;
    let assignee = body.assignee_agent_id.map(AgentId);
    if let Some(a) = assignee {
        match state.store.agent(a).await {
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
        }
    }
    let change = TicketChange {
        status: new_status,
        assignee,
        note: note.as_deref(),
        actor: &user.login,
        at: Utc::now(),
    };
    let updated = match state.store.update_ticket(&seen, &change).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(ApiError::new(
                Code::Conflict,
                "the ticket changed meanwhile; reload it and try again",
            ));
        }
        Err(StoreError::Duplicate) => {
            return Err(ApiError::new(
                Code::Conflict,
                "the customer has another unresolved ticket on this account",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let page = MessagePage {
        before: None,
        limit: None,
    };
    Ok(json(&detail(&state, updated, &page).await?))
}
