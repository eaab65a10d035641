//! The supervisors' board (`GET /board`, data from `GET /api/board`):
//! agents by city group with status, load and capacity; each group's queue
//! depth and longest wait; the customers waiting for an agent's reply,
//! oldest first, with take-over and transfer; the latest routing decisions
//! and their reasons. A supervisor sees their own groups, an admin every
//! group (and the agents and queue of no group).

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::conversation_api::json;
use super::i18n::{BoardStrings, Strings};
use super::workbench::asset;
use super::{LangLink, html};
use crate::auth::{AuthError, CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, GroupId};
use crate::routing::{AgentStatus, Shift};
use crate::state::AppState;
use crate::store::board::Scope;

/// Customers waiting for a reply listed, and decisions.
const UNANSWERED: u64 = 200;
const DECISIONS: u64 = 50;

static SCRIPT: &str = include_str!("../../templates/static/board.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/board", web::get().to(page))
        .route("/api/board", web::get().to(board))
        .route(
            "/static/board.js",
            web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        );
}

#[derive(Template)]
#[template(path = "board.html")]
struct Page<'a> {
    t: &'static Strings,
    b: &'static BoardStrings,
    user: &'a CurrentUser,
    strings_json: String,
    lang_link: LangLink,
}

async fn page(user: CurrentUser) -> Result<HttpResponse, AuthError> {
    user.require(Role::Supervisor)?;
    let lang = user.lang();
    let b = lang.board();
    Ok(html(
        StatusCode::OK,
        &Page {
            t: lang.strings(),
            b,
            strings_json: b.script_json(),
            lang_link: LangLink::new(lang, "/board"),
            user: &user,
        },
    ))
}

#[derive(Serialize)]
struct AgentView {
    id: AgentId,
    login: String,
    name: String,
    status: AgentStatus,
    on_shift: bool,
    available: bool,
    load: u32,
    capacity: u32,
}

#[derive(Serialize)]
struct GroupView {
    /// `null`: agents of no group and the queue of no group (admins).
    id: Option<GroupId>,
    name: Option<String>,
    agents: Vec<AgentView>,
    queued: u64,
    longest_wait_secs: i64,
}

#[derive(Serialize)]
struct Unanswered {
    conversation: i64,
    customer: i64,
    customer_name: Option<String>,
    channel: String,
    agent_id: Option<i64>,
    agent_name: Option<String>,
    awaiting_since: Option<DateTime<Utc>>,
    waiting_secs: i64,
}

#[derive(Serialize)]
struct Decision {
    conversation: i64,
    at: DateTime<Utc>,
    from: Option<String>,
    to: String,
    agent_id: Option<i64>,
    agent_name: Option<String>,
    reason: String,
    actor: String,
}

#[derive(Serialize)]
struct Board {
    now: DateTime<Utc>,
    groups: Vec<GroupView>,
    unanswered: Vec<Unanswered>,
    decisions: Vec<Decision>,
}

async fn board(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    if !user.role.at_least(Role::Supervisor) {
        return Err(ApiError::new(Code::Forbidden, "for supervisors and admins"));
    }
    let admin = user.role.at_least(Role::Admin);
    let store = &state.store;
    let now = Utc::now();
    let mine: HashSet<GroupId> = store
        .agent_groups(user.agent_id)
        .await?
        .into_iter()
        .collect();
    let mut groups: Vec<(Option<GroupId>, Option<String>)> = store
        .city_groups()
        .await?
        .into_iter()
        .filter(|(g, _)| admin || mine.contains(g))
        .map(|(g, n)| (Some(g), Some(n)))
        .collect();
    if admin {
        groups.push((None, None));
    }
    let names: HashMap<AgentId, (String, String)> = store
        .agent_directory()
        .await?
        .into_iter()
        .map(|a| (a.id, (a.login, a.name)))
        .collect();
    let agents = state.router.agents(now);
    let queues: HashMap<Option<i64>, (u64, i64)> = store
        .queue_depths()
        .await?
        .into_iter()
        .map(|(g, n, oldest)| {
            let waited = oldest.map_or(0, |t| (now - t).num_seconds().max(0));
            (g, (n.max(0) as u64, waited))
        })
        .collect();
    let mut in_scope: Vec<AgentId> = Vec::new();
    let views: Vec<GroupView> = groups
        .into_iter()
        .map(|(g, name)| {
            let members: Vec<AgentView> = agents
                .iter()
                .filter(|a| match g {
                    Some(g) => a.groups.contains(&g),
                    None => a.groups.is_empty(),
                })
                .filter_map(|a| {
                    let (login, name) = names.get(&a.id)?.clone();
                    in_scope.push(a.id);
                    Some(AgentView {
                        id: a.id,
                        login,
                        name,
                        status: a.status,
                        on_shift: a.shift != Shift::Off,
                        available: a.is_available(),
                        load: a.load,
                        capacity: a.capacity,
                    })
                })
                .collect();
            let (queued, longest_wait_secs) =
                queues.get(&g.map(|g| g.0)).copied().unwrap_or_default();
            GroupView {
                id: g,
                name,
                agents: members,
                queued,
                longest_wait_secs,
            }
        })
        .collect();
    in_scope.sort();
    in_scope.dedup();
    let scope = if admin {
        Scope::All
    } else {
        Scope::Agents(&in_scope)
    };
    let agent_name = |a: Option<i64>| a.and_then(|a| names.get(&AgentId(a)).map(|n| n.1.clone()));
    let waiting = store.unanswered(scope, UNANSWERED).await?;
    let customers = store
        .customer_names(&waiting.iter().map(|c| c.customer_id).collect::<Vec<_>>())
        .await?;
    let unanswered = waiting
        .into_iter()
        .map(|c| Unanswered {
            conversation: c.id,
            customer: c.customer_id,
            customer_name: customers.get(&c.customer_id).cloned(),
            channel: c.channel,
            agent_id: c.agent_id,
            agent_name: agent_name(c.agent_id),
            awaiting_since: c.awaiting_reply_since,
            waiting_secs: c
                .awaiting_reply_since
                .map_or(0, |t| (now - t).num_seconds().max(0)),
        })
        .collect();
    let decisions = store
        .recent_decisions(scope, DECISIONS)
        .await?
        .into_iter()
        .map(|t| Decision {
            conversation: t.conversation_id,
            at: t.at,
            from: t.from_state,
            to: t.to_state,
            agent_id: t.agent_id,
            agent_name: agent_name(t.agent_id),
            reason: t.reason,
            actor: t.actor,
        })
        .collect();
    Ok(json(&Board {
        now,
        groups: views,
        unanswered,
        decisions,
    }))
}
