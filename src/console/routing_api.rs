//! Routing for supervisors and admins, as JSON for the console's scripts.
//!
//! Supervisors (their groups' agents and queues) and admins (all):
//! - `GET /api/routing/agents`: every agent as routing sees them now —
//!   status, shift, load, capacity, groups, and why they cannot take a
//!   customer;
//! - `GET /api/routing/queue?limit=500`: the waiting conversations, oldest
//!   first, with their place in their queue, how long they have waited, and
//!   the reason of their last transition.
//!
//! Admins (data the CRM sync will fill later):
//! - `GET`/`PUT /api/admin/agents/{id}/shifts`: an agent's shifts that have
//!   not ended, `[{"starts_at": RFC 3339, "ends_at": RFC 3339}]`; a `PUT`
//!   replaces them all;
//! - `GET`/`PUT /api/admin/region-groups`: the region → city group map,
//!   `[{"region": "上海", "group_id": 1}]`; a `PUT` replaces it.
//!
//! Changes take effect on this instance's router at once (other instances
//! at their next reconciliation, `routing.reconcile_secs`).

use std::collections::{HashMap, HashSet};

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::presence_api::{json_body, json_ok};
use crate::auth::{AuthError, CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, ConversationId, CustomerId, GroupId};
use crate::routing::engine::ShiftSpan;
use crate::routing::{AgentStatus, Employment, GroupLabel, NotAvailable, Shift};
use crate::state::AppState;

/// Most shifts one `PUT` may set for an agent.
pub const MAX_SHIFTS: usize = 500;
/// Most regions the map may hold.
pub const MAX_REGIONS: usize = 10_000;
/// Longest region name, in characters (the column's size).
const MAX_REGION_CHARS: usize = 64;
/// Waiting conversations listed by default, and at most.
const QUEUE_LIST: u64 = 500;
const QUEUE_LIST_MAX: u64 = 5_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/routing/agents", web::get().to(agents))
        .route("/api/routing/queue", web::get().to(queue))
        .service(
            web::resource("/api/admin/agents/{id}/shifts")
                .route(web::get().to(shifts))
                .route(web::put().to(replace_shifts)),
        )
        .service(
            web::resource("/api/admin/region-groups")
                .route(web::get().to(region_groups))
                .route(web::put().to(replace_region_groups)),
        );
}

/// An agent or admin error, whichever comes first.
#[derive(Debug)]
enum Refused {
    Auth(AuthError),
    Api(ApiError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Auth(e) => e.fmt(f),
            Refused::Api(e) => e.fmt(f),
        }
    }
}

impl actix_web::ResponseError for Refused {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            Refused::Auth(e) => e.status_code(),
            Refused::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Refused::Auth(e) => e.error_response(),
            Refused::Api(e) => e.error_response(),
        }
    }
}

impl From<AuthError> for Refused {
    fn from(e: AuthError) -> Self {
        Refused::Auth(e)
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::Api(e.into())
    }
}

fn bad(message: impl Into<String>) -> Refused {
    Refused::Api(ApiError::new(Code::BadRequest, message))
}

/// One agent in the supervisors' view.
#[derive(Serialize)]
struct AgentView {
    id: AgentId,
    login: String,
    name: String,
    role: String,
    status: AgentStatus,
    shift: Shift,
    employment: Employment,
    /// On shift and not offline (customers queue for them).
    on_duty: bool,
    /// Can take a customer now.
    available: bool,
    /// Why not, when not.
    not_available: Option<NotAvailable>,
    load: u32,
    capacity: u32,
    groups: Vec<GroupLabel>,
    last_seen_at: Option<DateTime<Utc>>,
    last_assigned_at: Option<DateTime<Utc>>,
}

/// The groups a supervisor oversees; `None` for admins (all).
async fn overseen(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Option<HashSet<GroupId>>, Refused> {
    if user.role.at_least(Role::Admin) {
        return Ok(None);
    }
    Ok(Some(
        state
            .store
            .agent_groups(user.agent_id)
            .await?
            .into_iter()
            .collect(),
    ))
}

async fn agents(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, Refused> {
    user.require(Role::Supervisor)?;
    let scope = overseen(&state, &user).await?;
    let now = Utc::now();
    let mut who: HashMap<AgentId, _> = state
        .store
        .agent_directory()
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let groups = state.router.groups();
    let list: Vec<AgentView> = state
        .router
        .agents(now)
        .into_iter()
        .filter(|a| {
            scope
                .as_ref()
                .is_none_or(|s| a.groups.iter().any(|g| s.contains(g)))
        })
        .filter_map(|a| {
            // Disabled since the router last loaded: not listed.
            let entry = who.remove(&a.id)?;
            Some(AgentView {
                id: a.id,
                login: entry.login,
                name: entry.name,
                role: entry.role,
                status: a.status,
                shift: a.shift,
                employment: a.employment,
                on_duty: a.is_on_duty(),
                available: a.is_available(),
                not_available: a.availability().err(),
                load: a.load,
                capacity: a.capacity,
                groups: a.groups.iter().map(|g| groups.label(*g)).collect(),
                last_seen_at: entry.last_seen_at,
                last_assigned_at: a.last_assigned_at,
            })
        })
        .collect();
    Ok(json_ok(&serde_json::json!({ "agents": list })))
}

#[derive(Deserialize)]
struct QueueQuery {
    limit: Option<u64>,
}

/// One waiting conversation in the supervisors' view.
#[derive(Serialize)]
struct WaitingView {
    conversation: ConversationId,
    customer: CustomerId,
    account: String,
    channel: String,
    /// `null`: the global queue.
    queue_group: Option<GroupLabel>,
    /// Customers before it in its queue (0: next).
    position: u64,
    queued_at: Option<DateTime<Utc>>,
    waiting_secs: i64,
    /// The reason of its last transition, as recorded.
    why: Option<String>,
}

async fn queue(
    state: web::Data<AppState>,
    user: CurrentUser,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse, Refused> {
    user.require(Role::Supervisor)?;
    let scope = overseen(&state, &user).await?;
    let limit = query.limit.unwrap_or(QUEUE_LIST).clamp(1, QUEUE_LIST_MAX);
    let now = Utc::now();
    let mut total = state.store.queued_count().await?;
    let mut waiting = state.store.waiting(limit).await?;
    if let Some(s) = &scope {
        // Whole queues are kept or dropped, so places stay right.
        waiting.retain(|w| {
            w.conversation
                .queue_group_id
                .is_some_and(|g| s.contains(&GroupId(g)))
        });
        total = waiting.len() as u64;
    }
    let groups = state.router.groups();
    // Listed oldest first: each queue's places count up in that order.
    let mut next: HashMap<Option<i64>, u64> = HashMap::new();
    let list: Vec<WaitingView> = waiting
        .into_iter()
        .map(|w| {
            let c = w.conversation;
            let place = next.entry(c.queue_group_id).or_default();
            let position = *place;
            *place += 1;
            WaitingView {
                conversation: ConversationId(c.id),
                customer: CustomerId(c.customer_id),
                account: c.account_id,
                channel: c.channel,
                queue_group: c.queue_group_id.map(|g| groups.label(GroupId(g))),
                position,
                queued_at: c.queued_at,
                waiting_secs: c.queued_at.map_or(0, |t| (now - t).num_seconds().max(0)),
                why: w.why,
            }
        })
        .collect();
    Ok(json_ok(
        &serde_json::json!({ "total": total, "conversations": list }),
    ))
}

/// A shift as the API reads and writes it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftBody {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

fn shift_list(agent: AgentId, spans: &[ShiftSpan]) -> serde_json::Value {
    let shifts: Vec<ShiftBody> = spans
        .iter()
        .map(|(s, e)| ShiftBody {
            starts_at: *s,
            ends_at: *e,
        })
        .collect();
    serde_json::json!({ "agent": agent, "shifts": shifts })
}

async fn known_agent(state: &AppState, id: i64) -> Result<AgentId, Refused> {
    let agent = AgentId(id);
    if state.store.agent_exists(agent).await? {
        Ok(agent)
    } else {
        Err(Refused::Api(ApiError::new(Code::NotFound, "no such agent")))
    }
}

async fn shifts(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, Refused> {
    user.require(Role::Admin)?;
    let agent = known_agent(&state, id.into_inner()).await?;
    let mut spans = state.store.shifts_of(agent, Utc::now()).await?;
    // The CRM's day markers (zero-length) are not shifts.
    spans.retain(|(s, e)| s < e);
    Ok(json_ok(&shift_list(agent, &spans)))
}

/// Checks an admin's shifts; sorted by start.
fn valid_shifts(list: Vec<ShiftBody>, now: DateTime<Utc>) -> Result<Vec<ShiftSpan>, Refused> {
    if list.len() > MAX_SHIFTS {
        return Err(bad(format!(
            "at most {MAX_SHIFTS} shifts at once, got {}",
            list.len()
        )));
    }
    let mut spans = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        if s.ends_at <= s.starts_at {
            return Err(bad(format!(
                "shift {i}: ends_at ({}) must be after starts_at ({})",
                s.ends_at.to_rfc3339(),
                s.starts_at.to_rfc3339()
            )));
        }
        if s.ends_at <= now {
            return Err(bad(format!(
                "shift {i} has already ended ({}); only current and future shifts can be set",
                s.ends_at.to_rfc3339()
            )));
        }
        spans.push((s.starts_at, s.ends_at));
    }
    spans.sort();
    Ok(spans)
}

async fn replace_shifts(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, Refused> {
    user.require(Role::Admin)?;
    let agent = known_agent(&state, id.into_inner()).await?;
    let now = Utc::now();
    let spans = valid_shifts(json_body(&body)?, now)?;
    state.store.replace_shifts(agent, &spans, now).await?;
    tracing::info!(agent = %agent, shifts = spans.len(), by = %user.login, "shifts replaced");
    state.router.set_shifts(agent, spans.clone());
    // A shift that starts now may take waiting customers.
    state.queue.signal();
    Ok(json_ok(&shift_list(agent, &spans)))
}

/// One entry of the region map.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionBody {
    region: String,
    group_id: GroupId,
    /// Answers only: the group's name.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    group_name: Option<String>,
}

async fn region_groups(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, Refused> {
    user.require(Role::Admin)?;
    let names: HashMap<GroupId, String> = state.store.city_groups().await?.into_iter().collect();
    let list: Vec<RegionBody> = state
        .store
        .region_groups()
        .await?
        .into_iter()
        .map(|(region, group_id)| RegionBody {
            group_name: names.get(&group_id).cloned(),
            region,
            group_id,
        })
        .collect();
    Ok(json_ok(&list))
}

/// Checks an admin's region map against the existing groups.
fn valid_regions(
    list: Vec<RegionBody>,
    groups: &HashSet<GroupId>,
) -> Result<Vec<(String, GroupId)>, Refused> {
    if list.len() > MAX_REGIONS {
        return Err(bad(format!(
            "at most {MAX_REGIONS} regions, got {}",
            list.len()
        )));
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut map = Vec::with_capacity(list.len());
    for (i, r) in list.into_iter().enumerate() {
        let region = r.region.trim().to_owned();
        if region.is_empty() {
            return Err(bad(format!("region {i} is empty")));
        }
        if region.chars().count() > MAX_REGION_CHARS {
            return Err(bad(format!(
                "region {i} is longer than {MAX_REGION_CHARS} characters"
            )));
        }
        if !groups.contains(&r.group_id) {
            return Err(bad(format!(
                "region {region:?}: group {} does not exist",
                r.group_id
            )));
        }
        let key = crate::routing::assign::region_key(&region);
        if let Some(first) = seen.insert(key, region.clone()) {
            return Err(bad(format!(
                "region {region:?} is listed twice (as {first:?} too)"
            )));
        }
        map.push((region, r.group_id));
    }
    Ok(map)
}

async fn replace_region_groups(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Bytes,
) -> Result<HttpResponse, Refused> {
    user.require(Role::Admin)?;
    let list: Vec<RegionBody> = json_body(&body)?;
    let groups: HashSet<GroupId> = state
        .store
        .city_groups()
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let map = valid_regions(list, &groups)?;
    state.store.replace_region_groups(&map).await?;
    tracing::info!(regions = map.len(), by = %user.login, "region map replaced");
    // Removed regions too: the whole map again, from the database.
    if let Err(e) = state.router.reload(&state.store).await {
        tracing::warn!(error = %e, "router not reloaded after a region map change; the next reconciliation will");
    }
    region_groups(state, user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(from_now_h: i64, hours: i64) -> ShiftBody {
        let now = Utc::now();
        ShiftBody {
            starts_at: now + chrono::TimeDelta::hours(from_now_h),
            ends_at: now + chrono::TimeDelta::hours(from_now_h + hours),
        }
    }

    fn message(r: Result<impl std::fmt::Debug, Refused>) -> String {
        match r {
            Err(Refused::Api(e)) => e.message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shifts_must_end_after_they_start_and_not_in_the_past() {
        let now = Utc::now();
        let ok = valid_shifts(vec![shift(5, 8), shift(-1, 4)], now).unwrap();
        assert!(ok[0].0 < ok[1].0, "sorted");
        assert!(message(valid_shifts(vec![shift(1, 0)], now)).contains("must be after"));
        assert!(
            message(valid_shifts(vec![shift(1, 2), shift(-10, 2)], now))
                .contains("shift 1 has already ended")
        );
        let many = vec![shift(1, 1); MAX_SHIFTS + 1];
        assert!(message(valid_shifts(many, now)).contains("at most 500"));
    }

    #[test]
    fn regions_need_an_existing_group_and_appear_once() {
        let groups: HashSet<_> = [GroupId(1)].into();
        let r = |region: &str, g: i64| RegionBody {
            region: region.into(),
            group_id: GroupId(g),
            group_name: None,
        };
        let map = valid_regions(vec![r(" 上海 ", 1), r("北京", 1)], &groups).unwrap();
        assert_eq!(map[0], ("上海".to_owned(), GroupId(1)));
        assert!(
            message(valid_regions(vec![r("上海", 2)], &groups)).contains("group 2 does not exist")
        );
        assert!(
            message(valid_regions(vec![r("上海", 1), r("上海市", 1)], &groups)).contains("twice")
        );
        assert!(message(valid_regions(vec![r("  ", 1)], &groups)).contains("empty"));
    }
}
