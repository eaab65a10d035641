//! History search (`GET /search`, data from `GET /api/search`): full-text
//! over every message the user may see, Chinese included, filtered by
//! customer, agent, channel and date, newest first (see `docs/search.md`).
//!
//! The scope is the customer panel's: an agent searches the customers they
//! serve, served or are the dedicated agent of; a supervisor also those of
//! their groups; an admin everything.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::conversation_api::{json, query};
use super::i18n::{SearchStrings, Strings};
use super::workbench::asset;
use super::{LangLink, html};
use crate::auth::{AuthError, CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, CustomerId, GroupId, MessageId};
use crate::search::{Piece, excerpt, query_terms};
use crate::state::AppState;
use crate::store::search::{SearchQuery, SearchScope};

/// Results per page, by default and at most.
const PAGE: u64 = 30;
const MAX_PAGE: u64 = 100;
/// Longest query accepted, in characters.
const MAX_QUERY: usize = 200;

static SCRIPT: &str = include_str!("../../templates/static/search.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/search", web::get().to(page))
        .route("/api/search", web::get().to(search))
        .route(
            "/static/search.js",
            web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        );
}

/// An agent a user may filter by.
struct AgentOption {
    id: i64,
    name: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct Page<'a> {
    t: &'static Strings,
    s: &'static SearchStrings,
    user: &'a CurrentUser,
    agents: Vec<AgentOption>,
    strings_json: String,
    lang_link: LangLink,
}

async fn page(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, AuthError> {
    user.require(Role::Agent)?;
    let lang = user.lang();
    let s = lang.search();
    let agents = filterable_agents(&state, &user).await;
    Ok(html(
        StatusCode::OK,
        &Page {
            t: lang.strings(),
            s,
            agents,
            strings_json: s.script_json(),
            lang_link: LangLink::new(lang, "/search"),
            user: &user,
        },
    ))
}

/// Admins: every agent; supervisors: their groups' agents and themselves;
/// agents: themselves.
async fn filterable_agents(state: &AppState, user: &CurrentUser) -> Vec<AgentOption> {
    let me = AgentOption {
        id: user.agent_id.0,
        name: user.name.clone(),
    };
    if !user.role.at_least(Role::Supervisor) {
        return vec![me];
    }
    let mine = state
        .store
        .agent_groups(user.agent_id)
        .await
        .unwrap_or_default();
    let admin = user.role.at_least(Role::Admin);
    let in_scope: Vec<AgentId> = state
        .router
        .agents(Utc::now())
        .into_iter()
        .filter(|a| admin || a.id == user.agent_id || a.groups.iter().any(|g| mine.contains(g)))
        .map(|a| a.id)
        .collect();
    let names = state.store.agent_names(&in_scope).await.unwrap_or_default();
    let mut out: Vec<AgentOption> = names
        .into_iter()
        .map(|(id, name)| AgentOption { id: id.0, name })
        .collect();
    if !out.iter().any(|a| a.id == me.id) {
        out.push(me);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    q: String,
    customer: Option<String>,
    agent: Option<String>,
    channel: Option<String>,
    /// An RFC 3339 time, or a date (its midnight, UTC).
    from: Option<String>,
    /// Exclusive; a date means the end of that day.
    to: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A whole-number parameter (empty: not given).
fn number(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("{name}: a positive whole number"))),
    }
}

#[derive(Serialize)]
struct Hit {
    message_id: i64,
    conversation_id: Option<i64>,
    customer_id: Option<i64>,
    customer_name: Option<String>,
    channel: String,
    direction: String,
    sender: String,
    agent_id: Option<i64>,
    agent_name: Option<String>,
    msg_type: String,
    excerpt: Vec<Piece>,
    sent_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Results {
    results: Vec<Hit>,
    /// Pass as `before` for the next (older) page; `null` at the end.
    next_before: Option<i64>,
    /// The words searched for, as the index cut them.
    words: Vec<String>,
    /// Messages stored after this id are not searchable yet (seconds).
    indexed_through: i64,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(Code::BadRequest, msg)
}

/// `2026-12-07` or an RFC 3339 time; `end` moves a date to its next day.
fn time_param(name: &str, v: &str, end: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| bad(format!("{name}: a date (2026-12-07) or an RFC 3339 time")))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

async fn search(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p: Params = query(&req)?;
    let text = p.q.trim();
    if text.chars().count() > MAX_QUERY {
        return Err(bad(format!("q: at most {MAX_QUERY} characters")));
    }
    let customer = number("customer", &p.customer)?.map(CustomerId);
    let agent = number("agent", &p.agent)?.map(AgentId);
    let before = number("before", &p.before)?.map(MessageId);
    let limit = number("limit", &p.limit)?
        .map_or(PAGE, |n| n as u64)
        .min(MAX_PAGE);
    if text.is_empty() && customer.is_none() && agent.is_none() {
        return Err(bad(
            "type words to search for, or choose a customer or an agent",
        ));
    }
    if let Some(ch) = p.channel.as_deref().filter(|c| !c.is_empty())
        && !["oa", "wecom_kf", "web"].contains(&ch)
    {
        return Err(bad("channel: oa, wecom_kf or web"));
    }
    let from = p
        .from
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| time_param("from", v, false))
        .transpose()?;
    let to =
        p.to.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| time_param("to", v, true))
            .transpose()?;
    let terms = query_terms(text);
    let indexed_through = state.store.index_cursor().await?;
    let words: Vec<String> = terms.iter().map(|t| t.word.clone()).collect();
    if !text.is_empty() && terms.is_empty() {
        // Only particles or punctuation: nothing to look for.
        return Ok(json(&Results {
            results: Vec::new(),
            next_before: None,
            words,
            indexed_through,
        }));
    }

    let groups: Vec<GroupId>;
    let scope = if user.role.at_least(Role::Admin) {
        SearchScope::All
    } else if user.role == Role::Supervisor {
        groups = state.store.agent_groups(user.agent_id).await?;
        SearchScope::Supervisor {
            me: user.agent_id,
            groups: &groups,
        }
    } else {
        SearchScope::Agent(user.agent_id)
    };
    let rows = state
        .store
        .search_messages(&SearchQuery {
            terms: &terms,
            scope,
            customer,
            agent,
            channel: p.channel.as_deref().filter(|c| !c.is_empty()),
            from,
            to,
            before,
            limit,
        })
        .await?;

    let mut customers: Vec<i64> = rows.iter().filter_map(|m| m.customer_id).collect();
    customers.sort_unstable();
    customers.dedup();
    let customer_names = state.store.customer_names(&customers).await?;
    let mut agents: Vec<AgentId> = rows
        .iter()
        .filter_map(|m| m.agent_id.map(AgentId))
        .collect();
    agents.sort_unstable_by_key(|a| a.0);
    agents.dedup();
    let agent_names: HashMap<AgentId, String> = state.store.agent_names(&agents).await?;
    let next_before = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|m| m.id))
        .flatten();
    let results = rows
        .into_iter()
        .map(|m| Hit {
            message_id: m.id,
            conversation_id: m.conversation_id,
            customer_name: m.customer_id.and_then(|c| customer_names.get(&c).cloned()),
            customer_id: m.customer_id,
            channel: m.channel,
            direction: m.direction,
            sender: m.sender,
            agent_name: m
                .agent_id
                .and_then(|a| agent_names.get(&AgentId(a)).cloned()),
            agent_id: m.agent_id,
            excerpt: excerpt(m.content.as_deref().unwrap_or_default(), &terms),
            msg_type: m.msg_type,
            sent_at: m.sent_at,
        })
        .collect();
    Ok(json(&Results {
        results,
        next_before,
        words,
        indexed_through,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_read_as_bounds() {
        let from = time_param("from", "2026-12-07", false).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-07T00:00:00+00:00");
        let to = time_param("to", "2026-12-07", true).unwrap();
        assert_eq!(to.to_rfc3339(), "2026-12-08T00:00:00+00:00");
        let t = time_param("from", "2026-12-07T08:00:00+08:00", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-07T00:00:00+00:00");
        assert!(time_param("from", "yesterday", false).is_err());
    }
}
