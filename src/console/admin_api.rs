//! Administration as JSON, admins only (the `/admin` page uses it; see
//! `docs/admin.md`):
//!
//! - `GET /api/admin/agents`: every user with role, capacity, groups, state;
//! - `POST /api/admin/agents` `{"login", "name", "role", "capacity",
//!   "groups": [ids]}`: a new user; answers a one-time password to hand
//!   over (Kefu has no default passwords);
//! - `PATCH /api/admin/agents/{id}` with any of `name`, `role`,
//!   `capacity`, `groups`, `disabled`;
//! - `POST /api/admin/agents/{id}/password`: a new one-time password; every
//!   session of that user ends;
//! - `GET`/`POST /api/admin/groups` `{"name"}`, `PATCH
//!   /api/admin/groups/{id}` `{"name"}`: city groups.
//!
//! Routing follows at once on this instance (its router reloads).

use actix_web::{HttpResponse, web};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::conversation_api::json;
use crate::auth::{CurrentUser, Role, password};
use crate::http_error::{ApiError, Code};
use crate::ids::{AgentId, GroupId};
use crate::state::AppState;
use crate::store::StoreError;

const LOGIN_CHARS: usize = 64;
const NAME_CHARS: usize = 64;
const MAX_CAPACITY: i32 = 200;
/// Letters of a one-time password (no 0/O, 1/l/I to misread).
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const ONE_TIME_LEN: usize = 16;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/admin/agents")
            .route(web::get().to(list_agents))
            .route(web::post().to(create_agent)),
    )
    .route("/api/admin/agents/{id}", web::patch().to(update_agent))
    .route(
        "/api/admin/agents/{id}/password",
        web::post().to(reset_password),
    )
    .service(
        web::resource("/api/admin/groups")
            .route(web::get().to(list_groups))
            .route(web::post().to(create_group)),
    )
    .route("/api/admin/groups/{id}", web::patch().to(rename_group));
}

fn admin(user: &CurrentUser) -> Result<(), ApiError> {
    if user.role.at_least(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(Code::Forbidden, "for admins"))
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::BadRequest, message)
}

/// A password to hand over once; the user changes it after signing in.
fn one_time_password() -> String {
    let mut rng = rand::rng();
    (0..ONE_TIME_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn hashed(pw: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&pw))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn text(what: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(bad(format!("{what} must be 1 to {max} characters")));
    }
    Ok(v.to_owned())
}

fn role_of(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| bad("role must be agent, supervisor or admin"))
}

fn capacity_of(c: i32) -> Result<i32, ApiError> {
    if (1..=MAX_CAPACITY).contains(&c) {
        Ok(c)
    } else {
        Err(bad(format!("capacity must be 1 to {MAX_CAPACITY}")))
    }
}

async fn groups_of(state: &AppState, ids: &[i64]) -> Result<Vec<GroupId>, ApiError> {
    let mut out = Vec::new();
    for &g in ids {
        let g = GroupId(g);
        if !state.store.city_group_exists(g).await? {
            return Err(bad(format!("no city group {}", g.0)));
        }
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// The router sees what was just written.
async fn follow(state: &AppState) {
    if let Err(e) = state.router.reload(&state.store).await {
        tracing::warn!(error = %e, "router not reloaded after an admin change; the next reconciliation will");
    }
}

#[derive(Serialize)]
struct AgentRow {
    id: i64,
    login: String,
    name: String,
    role: String,
    capacity: i32,
    groups: Vec<i64>,
    disabled: bool,
    departed: bool,
    crm_id: Option<String>,
}

impl AgentRow {
    fn new(a: crate::store::entities::agents::Model, groups: Vec<GroupId>) -> Self {
        Self {
            id: a.id,
            login: a.login,
            name: a.name,
            role: a.role,
            capacity: a.capacity,
            groups: groups.into_iter().map(|g| g.0).collect(),
            disabled: a.disabled,
            departed: a.departed_at.is_some(),
            crm_id: a.crm_id,
        }
    }
}

async fn agent_row(state: &AppState, id: AgentId) -> Result<AgentRow, ApiError> {
    let a = state.store.agent(id).await?;
    let groups = state.store.agent_groups(id).await?;
    Ok(AgentRow::new(a, groups))
}

async fn list_agents(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let rows: Vec<AgentRow> = state
        .store
        .agents_with_groups()
        .await?
        .into_iter()
        .map(|(a, g)| AgentRow::new(a, g))
        .collect();
    Ok(json(&serde_json::json!({ "agents": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    login: String,
    name: String,
    role: String,
    #[serde(default)]
    capacity: Option<i32>,
    #[serde(default)]
    groups: Vec<i64>,
}

#[derive(Serialize)]
struct WithPassword {
    agent: AgentRow,
    /// Shown once: hand it over; the user changes it after signing in.
    one_time_password: String,
}

async fn create_agent(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<NewAgent>,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let login = text("login", &body.login, LOGIN_CHARS)?;
    if login.chars().any(char::is_whitespace) {
        return Err(bad("login must not contain spaces"));
    }
    let name = text("name", &body.name, NAME_CHARS)?;
    let role = role_of(&body.role)?;
    let capacity = body.capacity.map(capacity_of).transpose()?;
    let groups = groups_of(&state, &body.groups).await?;
    let pw = one_time_password();
    let hash = hashed(pw.clone()).await?;
    let id = match state.store.create_agent(&login, &name, role, &hash).await {
        Ok(id) => id,
        Err(StoreError::Duplicate) => {
            return Err(ApiError::new(Code::Conflict, "that login is taken"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(c) = capacity {
        state.store.set_agent_capacity(id, c as u32).await?;
    }
    state.store.set_agent_groups(id, &groups).await?;
    tracing::info!(admin = %user.login, agent = id.0, login = %login, "user created");
    follow(&state).await;
    Ok(json(&WithPassword {
        agent: agent_row(&state, id).await?,
        one_time_password: pw,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentChange {
    name: Option<String>,
    role: Option<String>,
    capacity: Option<i32>,
    groups: Option<Vec<i64>>,
    disabled: Option<bool>,
}

async fn known(state: &AppState, id: i64) -> Result<AgentId, ApiError> {
    let id = AgentId(id);
    if state.store.agent_exists(id).await? {
        Ok(id)
    } else {
        Err(ApiError::new(Code::NotFound, "no such user"))
    }
}

async fn update_agent(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<AgentChange>,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let id = known(&state, path.into_inner()).await?;
    let change = body.into_inner();
    if id == user.agent_id
        && (change.disabled == Some(true)
            || change
                .role
                .as_deref()
                .is_some_and(|r| r != Role::Admin.as_str()))
    {
        return Err(ApiError::new(
            Code::Conflict,
            "you cannot disable yourself or take away your own admin role",
        ));
    }
    let now = state.store.agent(id).await?;
    let name = match &change.name {
        Some(n) => text("name", n, NAME_CHARS)?,
        None => now.name.clone(),
    };
    let role = match &change.role {
        Some(r) => role_of(r)?,
        None => role_of(&now.role)?,
    };
    let capacity = change.capacity.map(capacity_of).transpose()?;
    let groups = match &change.groups {
        Some(g) => Some(groups_of(&state, g).await?),
        None => None,
    };
    state.store.set_agent_profile(id, &name, role).await?;
    if let Some(c) = capacity {
        state.store.set_agent_capacity(id, c as u32).await?;
    }
    if let Some(g) = &groups {
        state.store.set_agent_groups(id, g).await?;
    }
    if let Some(d) = change.disabled {
        state.store.set_agent_disabled(id, d).await?;
    }
    tracing::info!(admin = %user.login, agent = id.0, "user changed");
    follow(&state).await;
    Ok(json(&agent_row(&state, id).await?))
}

async fn reset_password(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let id = known(&state, path.into_inner()).await?;
    let pw = one_time_password();
    let hash = hashed(pw.clone()).await?;
    state
        .store
        .set_password_revoking_sessions(id, &hash, None)
        .await?;
    tracing::info!(admin = %user.login, agent = id.0, "password reset");
    Ok(json(&WithPassword {
        agent: agent_row(&state, id).await?,
        one_time_password: pw,
    }))
}

#[derive(Serialize)]
struct GroupRow {
    id: i64,
    name: String,
}

async fn list_groups(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let groups: Vec<GroupRow> = state
        .store
        .city_groups()
        .await?
        .into_iter()
        .map(|(id, name)| GroupRow { id: id.0, name })
        .collect();
    Ok(json(&serde_json::json!({ "groups": groups })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
}

async fn create_group(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let name = text("name", &body.name, NAME_CHARS)?;
    let id = match state.store.create_city_group(&name).await {
        Ok(id) => id,
        Err(StoreError::Duplicate) => {
            return Err(ApiError::new(Code::Conflict, "a group has that name"));
        }
        Err(e) => return Err(e.into()),
    };
    follow(&state).await;
    Ok(json(&GroupRow { id: id.0, name }))
}

async fn rename_group(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&user)?;
    let id = GroupId(path.into_inner());
    let name = text("name", &body.name, NAME_CHARS)?;
    match state.store.rename_city_group(id, &name).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::new(Code::NotFound, "no such group")),
        Err(StoreError::Duplicate) => {
            return Err(ApiError::new(Code::Conflict, "a group has that name"));
        }
        Err(e) => return Err(e.into()),
    }
    follow(&state).await;
    Ok(json(&GroupRow { id: id.0, name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_passwords_are_long_enough_and_unambiguous() {
        let a = one_time_password();
        assert_eq!(a.len(), ONE_TIME_LEN);
        assert!(a.len() >= password::MIN_LEN);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, one_time_password());
    }
}
