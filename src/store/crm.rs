//! What the CRM sync writes: rows keyed by the CRM's ids, each with the
//! version the CRM gave it, and the events Kefu reports back.
//!
//! The functions take any connection so the sync can run a chunk of rows in
//! one transaction (see `crate::crm::apply`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::entities::{
    agent_shifts, agents, city_groups, conversations, crm_events, crm_versions,
    customer_identities, customers, group_members, messages, region_groups, surveys, tickets,
    vehicle_trades,
};
use super::{Store, StoreError};
use crate::ids::{AgentId, CustomerId, GroupId};
use crate::routing::engine::ShiftSpan;

/// Most keys in one `IN (…)` (SQLite's default limit is 32,766 variables).
const IN_CHUNK: usize = 500;

/// The stored versions of `keys` of `entity`.
pub async fn versions<C: ConnectionTrait>(
    db: &C,
    entity: &str,
    keys: &[String],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(IN_CHUNK) {
        for r in crm_versions::Entity::find()
            .filter(crm_versions::Column::Entity.eq(entity))
            .filter(crm_versions::Column::Key.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            out.insert(r.key, r.version);
        }
    }
    Ok(out)
}

/// Records the versions applied.
pub async fn save_versions<C: ConnectionTrait>(
    db: &C,
    entity: &str,
    rows: &[(String, i64)],
) -> Result<(), StoreError> {
    let now = Utc::now();
    for chunk in rows.chunks(IN_CHUNK) {
        crm_versions::Entity::insert_many(chunk.iter().map(|(key, version)| {
            crm_versions::ActiveModel {
                entity: Set(entity.to_owned()),
                key: Set(key.clone()),
                version: Set(*version),
                updated_at: Set(now),
            }
        }))
        .on_conflict(
            OnConflict::columns([crm_versions::Column::Entity, crm_versions::Column::Key])
                .update_columns([
                    crm_versions::Column::Version,
                    crm_versions::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    }
    Ok(())
}

/// Kefu's ids of the city groups with these CRM ids.
pub async fn group_ids<C: ConnectionTrait>(
    db: &C,
    crm: &[String],
) -> Result<HashMap<String, GroupId>, StoreError> {
    let mut out = HashMap::new();
    for chunk in crm.chunks(IN_CHUNK) {
        for g in city_groups::Entity::find()
            .filter(city_groups::Column::CrmId.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            if let Some(c) = g.crm_id {
                out.insert(c, GroupId(g.id));
            }
        }
    }
    Ok(out)
}

/// Kefu's ids of the agents with these CRM ids.
pub async fn agent_ids<C: ConnectionTrait>(
    db: &C,
    crm: &[String],
) -> Result<HashMap<String, AgentId>, StoreError> {
    let mut out = HashMap::new();
    for chunk in crm.chunks(IN_CHUNK) {
        for a in agents::Entity::find()
            .filter(agents::Column::CrmId.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            if let Some(c) = a.crm_id {
                out.insert(c, AgentId(a.id));
            }
        }
    }
    Ok(out)
}

/// Kefu's ids of the customers with these CRM ids.
pub async fn customer_ids<C: ConnectionTrait>(
    db: &C,
    crm: &[String],
) -> Result<HashMap<String, CustomerId>, StoreError> {
    let mut out = HashMap::new();
    for chunk in crm.chunks(IN_CHUNK) {
        for (id, c) in customers::Entity::find()
            .select_only()
            .column(customers::Column::Id)
            .column(customers::Column::CrmId)
            .filter(customers::Column::CrmId.is_in(chunk.iter().cloned()))
            .into_tuple::<(i64, Option<String>)>()
            .all(db)
            .await?
        {
            if let Some(c) = c {
                out.insert(c, CustomerId(id));
            }
        }
    }
    Ok(out)
}

/// Creates or renames the city group with this CRM id.
pub async fn upsert_group<C: ConnectionTrait>(
    db: &C,
    crm_id: &str,
    name: &str,
) -> Result<GroupId, StoreError> {
    let now = Utc::now();
    if let Some(g) = city_groups::Entity::find()
        .filter(city_groups::Column::CrmId.eq(crm_id))
        .one(db)
        .await?
    {
        city_groups::Entity::update_many()
            .col_expr(city_groups::Column::Name, Expr::value(name))
            .col_expr(city_groups::Column::UpdatedAt, Expr::value(now))
            .filter(city_groups::Column::Id.eq(g.id))
            .exec(db)
            .await?;
        return Ok(GroupId(g.id));
    }
    let row = city_groups::ActiveModel {
        crm_id: Set(Some(crm_id.to_owned())),
        name: Set(name.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(StoreError::from_insert)?;
    Ok(GroupId(row.id))
}

/// Maps a region to a group, or removes it (`None`). `上海市` and `上海`
/// are one region: an entry under either spelling is replaced.
pub async fn set_region<C: ConnectionTrait>(
    db: &C,
    region: &str,
    group: Option<GroupId>,
) -> Result<(), StoreError> {
    let key = crate::routing::assign::region_key(region);
    let same: Vec<String> = region_groups::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.region)
        .filter(|r| crate::routing::assign::region_key(r) == key)
        .collect();
    if !same.is_empty() {
        region_groups::Entity::delete_many()
            .filter(region_groups::Column::Region.is_in(same))
            .exec(db)
            .await?;
    }
    if let Some(g) = group {
        region_groups::ActiveModel {
            region: Set(region.to_owned()),
            group_id: Set(g.0),
            updated_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// An agent as the CRM describes them.
#[derive(Debug, Clone)]
pub struct AgentRow<'a> {
    pub crm_id: &'a str,
    pub login: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub capacity: Option<i32>,
    pub groups: &'a [GroupId],
}

/// What an agent upsert changed.
#[derive(Debug, Clone)]
pub struct AgentUpsert {
    pub id: AgentId,
    pub created: bool,
    /// Their groups before (empty for a new agent).
    pub groups_before: Vec<GroupId>,
}

/// Creates or updates the agent with this CRM id (no password: an admin
/// sets one), and makes `groups` their groups (the first is their home).
/// [`StoreError::Duplicate`] when another agent has the login.
pub async fn upsert_agent<C: ConnectionTrait>(
    db: &C,
    row: &AgentRow<'_>,
) -> Result<AgentUpsert, StoreError> {
    let now = Utc::now();
    let by_login = agents::Entity::find()
        .filter(agents::Column::Login.eq(row.login))
        .one(db)
        .await?;
    let existing = agents::Entity::find()
        .filter(agents::Column::CrmId.eq(row.crm_id))
        .one(db)
        .await?;
    if let Some(other) = &by_login
        && existing.as_ref().is_none_or(|e| e.id != other.id)
    {
        return Err(StoreError::Duplicate);
    }
    let (id, created) = match existing {
        Some(a) => {
            let mut q = agents::Entity::update_many()
                .col_expr(agents::Column::Login, Expr::value(row.login))
                .col_expr(agents::Column::Name, Expr::value(row.name))
                .col_expr(agents::Column::Role, Expr::value(row.role))
                .col_expr(agents::Column::UpdatedAt, Expr::value(now));
            if let Some(c) = row.capacity {
                q = q.col_expr(agents::Column::Capacity, Expr::value(c));
            }
            q.filter(agents::Column::Id.eq(a.id)).exec(db).await?;
            (AgentId(a.id), false)
        }
        None => {
            let a = agents::ActiveModel {
                crm_id: Set(Some(row.crm_id.to_owned())),
                login: Set(row.login.to_owned()),
                name: Set(row.name.to_owned()),
                role: Set(row.role.to_owned()),
                password_hash: Set(None),
                capacity: Set(row.capacity.unwrap_or(10)),
                status: Set("offline".into()),
                disabled: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await
            .map_err(StoreError::from_insert)?;
            (AgentId(a.id), true)
        }
    };
    let groups_before = groups_of(db, id).await?;
    if groups_before != row.groups {
        set_groups(db, id, row.groups).await?;
    }
    Ok(AgentUpsert {
        id,
        created,
        groups_before,
    })
}

/// An agent's groups, home first (membership order).
pub async fn groups_of<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
) -> Result<Vec<GroupId>, StoreError> {
    Ok(group_members::Entity::find()
        .filter(group_members::Column::AgentId.eq(agent.0))
        .all(db)
        .await?
        .into_iter()
        .map(|m| GroupId(m.group_id))
        .collect())
}

/// Replaces an agent's groups.
pub async fn set_groups<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
    groups: &[GroupId],
) -> Result<(), StoreError> {
    group_members::Entity::delete_many()
        .filter(group_members::Column::AgentId.eq(agent.0))
        .exec(db)
        .await?;
    for g in groups {
        group_members::ActiveModel {
            group_id: Set(g.0),
            agent_id: Set(agent.0),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Whether the agent may take customers at all (not departed, not disabled).
pub async fn agent_active<C: ConnectionTrait>(db: &C, agent: AgentId) -> Result<bool, StoreError> {
    Ok(agents::Entity::find_by_id(agent.0)
        .one(db)
        .await?
        .is_some_and(|a| a.departed_at.is_none() && !a.disabled))
}

/// Marks an agent as departed (离职): no routing, no sign-in.
pub async fn mark_departed<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    agents::Entity::update_many()
        .col_expr(agents::Column::DepartedAt, Expr::value(at))
        .col_expr(agents::Column::Disabled, Expr::value(true))
        .col_expr(agents::Column::Status, Expr::value("offline"))
        .col_expr(agents::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(agents::Column::Id.eq(agent.0))
        .exec(db)
        .await?;
    super::entities::sessions::Entity::delete_many()
        .filter(super::entities::sessions::Column::AgentId.eq(agent.0))
        .exec(db)
        .await?;
    Ok(())
}

/// The customers bound to `agent`.
pub async fn bound_customers<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
) -> Result<Vec<CustomerId>, StoreError> {
    Ok(customers::Entity::find()
        .select_only()
        .column(customers::Column::Id)
        .filter(customers::Column::DedicatedAgentId.eq(agent.0))
        .order_by_asc(customers::Column::Id)
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .map(CustomerId)
        .collect())
}

/// The active (not departed, not disabled) members of `group` but `except`,
/// each with how many customers are bound to them.
pub async fn group_bound_counts<C: ConnectionTrait>(
    db: &C,
    group: GroupId,
    except: AgentId,
) -> Result<Vec<(AgentId, u64)>, StoreError> {
    let members: Vec<i64> = group_members::Entity::find()
        .filter(group_members::Column::GroupId.eq(group.0))
        .filter(group_members::Column::AgentId.ne(except.0))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.agent_id)
        .collect();
    let active: Vec<i64> = agents::Entity::find()
        .select_only()
        .column(agents::Column::Id)
        .filter(agents::Column::Id.is_in(members))
        .filter(agents::Column::DepartedAt.is_null())
        .filter(agents::Column::Disabled.eq(false))
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(active.len());
    for a in active {
        let n = customers::Entity::find()
            .filter(customers::Column::DedicatedAgentId.eq(a))
            .count(db)
            .await?;
        out.push((AgentId(a), n));
    }
    Ok(out)
}

/// Sets a customer's dedicated agent; the one before.
pub async fn set_binding<C: ConnectionTrait>(
    db: &C,
    customer: CustomerId,
    agent: Option<AgentId>,
) -> Result<Option<AgentId>, StoreError> {
    let before = customers::Entity::find_by_id(customer.0)
        .select_only()
        .column(customers::Column::DedicatedAgentId)
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    if before != agent.map(|a| a.0) {
        customers::Entity::update_many()
            .col_expr(
                customers::Column::DedicatedAgentId,
                Expr::value(agent.map(|a| a.0)),
            )
            .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(customers::Column::Id.eq(customer.0))
            .exec(db)
            .await?;
    }
    Ok(before.map(AgentId))
}

/// Sets a customer's dedicated agent; whether it changed (one statement).
pub async fn change_binding<C: ConnectionTrait>(
    db: &C,
    customer: CustomerId,
    agent: Option<AgentId>,
) -> Result<bool, StoreError> {
    let differs = match agent {
        Some(a) => sea_orm::Condition::any()
            .add(customers::Column::DedicatedAgentId.is_null())
            .add(customers::Column::DedicatedAgentId.ne(a.0)),
        None => sea_orm::Condition::all().add(customers::Column::DedicatedAgentId.is_not_null()),
    };
    Ok(customers::Entity::update_many()
        .col_expr(
            customers::Column::DedicatedAgentId,
            Expr::value(agent.map(|a| a.0)),
        )
        .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(customers::Column::Id.eq(customer.0))
        .filter(differs)
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Which of `customers` have a conversation an agent holds.
pub async fn customers_held<C: ConnectionTrait>(
    db: &C,
    customers: &[CustomerId],
) -> Result<std::collections::HashSet<CustomerId>, StoreError> {
    let mut out = std::collections::HashSet::new();
    for chunk in customers.chunks(IN_CHUNK) {
        for id in conversations::Entity::find()
            .select_only()
            .column(conversations::Column::CustomerId)
            .filter(conversations::Column::CustomerId.is_in(chunk.iter().map(|c| c.0)))
            .filter(conversations::Column::State.eq("assigned"))
            .into_tuple::<i64>()
            .all(db)
            .await?
        {
            out.insert(CustomerId(id));
        }
    }
    Ok(out)
}

/// The customer's open conversations held by an agent: (conversation, agent).
pub async fn assigned_conversations_of_customer<C: ConnectionTrait>(
    db: &C,
    customer: CustomerId,
) -> Result<Vec<(i64, AgentId)>, StoreError> {
    Ok(conversations::Entity::find()
        .filter(conversations::Column::CustomerId.eq(customer.0))
        .filter(conversations::Column::State.eq("assigned"))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.id, AgentId(c.agent_id?))))
        .collect())
}

/// The zero-length span that keeps an agent's CRM day on record until the
/// day is over, so a day with no shifts (or the hours between two) holds
/// them off duty even when `routing.require_shifts` is off. Never "on".
pub fn day_marker(day_end: DateTime<Utc>) -> ShiftSpan {
    (day_end, day_end)
}

/// Replaces an agent's shifts that start within `[day_start, day_end)` by
/// `spans`, and marks the day as on record (see [`day_marker`]).
pub async fn replace_day_shifts<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
    day_start: DateTime<Utc>,
    day_end: DateTime<Utc>,
    spans: &[ShiftSpan],
    key: &str,
) -> Result<(), StoreError> {
    agent_shifts::Entity::delete_many()
        .filter(agent_shifts::Column::AgentId.eq(agent.0))
        .filter(agent_shifts::Column::StartsAt.gte(day_start))
        .filter(agent_shifts::Column::StartsAt.lt(day_end))
        .exec(db)
        .await?;
    let now = Utc::now();
    // Inside the day, so the next day's replacement leaves it alone.
    let marker = day_marker(day_end - chrono::TimeDelta::seconds(1));
    let all = spans.iter().copied().chain(std::iter::once(marker));
    agent_shifts::Entity::insert_many(all.enumerate().map(|(i, (starts, ends))| {
        agent_shifts::ActiveModel {
            agent_id: Set(agent.0),
            starts_at: Set(starts),
            ends_at: Set(ends),
            crm_id: Set(Some(format!("{key}#{i}"))),
            created_at: Set(now),
            ..Default::default()
        }
    }))
    .exec(db)
    .await?;
    Ok(())
}

/// A customer as the CRM describes them.
#[derive(Debug, Clone, Default)]
pub struct CustomerRow {
    pub crm_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub region: Option<String>,
    pub group: Option<GroupId>,
    pub tags: Option<String>,
    /// `(kind, account, value)`: account is `""` for unscoped kinds.
    pub identities: Vec<(&'static str, String, String)>,
}

/// What a customer upsert did.
#[derive(Debug, Clone)]
pub struct CustomerUpsert {
    pub id: CustomerId,
    /// Customers Kefu had made for one of the identities, now merged into
    /// this one (their conversations, messages and identities moved).
    pub merged: Vec<CustomerId>,
}

/// Creates or updates the customer with this CRM id and links their channel
/// identities. A channel identity that already belongs to a customer Kefu
/// made on its own is merged in; one that belongs to another CRM customer
/// is a [`StoreError::Duplicate`] (the CRM says two people share it).
pub async fn upsert_customer<C: ConnectionTrait>(
    db: &C,
    row: &CustomerRow,
) -> Result<CustomerUpsert, StoreError> {
    let now = Utc::now();
    let existing = customers::Entity::find()
        .filter(customers::Column::CrmId.eq(row.crm_id.as_str()))
        .one(db)
        .await?;
    // Who holds each identity now.
    let mut holders: Vec<(i64, Option<String>)> = Vec::new();
    for (kind, account, value) in &row.identities {
        if let Some(i) = customer_identities::Entity::find()
            .filter(customer_identities::Column::Kind.eq(*kind))
            .filter(customer_identities::Column::AccountId.eq(account.as_str()))
            .filter(customer_identities::Column::Value.eq(value.as_str()))
            .one(db)
            .await?
        {
            let owner = customers::Entity::find_by_id(i.customer_id)
                .one(db)
                .await?
                .ok_or(StoreError::NotFound)?;
            holders.push((owner.id, owner.crm_id));
        }
    }
    if holders
        .iter()
        .any(|(_, crm)| crm.as_deref().is_some_and(|c| c != row.crm_id))
    {
        return Err(StoreError::Duplicate);
    }
    let id = match &existing {
        Some(c) => {
            let mut q = customers::Entity::update_many()
                .col_expr(customers::Column::UpdatedAt, Expr::value(now));
            if let Some(v) = &row.name {
                q = q.col_expr(customers::Column::Name, Expr::value(v.as_str()));
            }
            if let Some(v) = &row.phone {
                q = q.col_expr(customers::Column::Phone, Expr::value(v.as_str()));
            }
            if let Some(v) = &row.region {
                q = q.col_expr(customers::Column::Region, Expr::value(v.as_str()));
            }
            if let Some(g) = row.group {
                q = q.col_expr(customers::Column::CityGroupId, Expr::value(g.0));
            }
            if let Some(v) = &row.tags {
                q = q.col_expr(customers::Column::Tags, Expr::value(v.as_str()));
            }
            q.filter(customers::Column::Id.eq(c.id)).exec(db).await?;
            CustomerId(c.id)
        }
        None => {
            // A customer Kefu made for one of the identities becomes this
            // CRM customer (keeps their id, so nothing needs moving).
            let adopt = holders.iter().map(|(id, _)| *id).min();
            match adopt {
                Some(a) => {
                    customers::Entity::update_many()
                        .col_expr(customers::Column::CrmId, Expr::value(row.crm_id.as_str()))
                        .col_expr(customers::Column::UpdatedAt, Expr::value(now))
                        .filter(customers::Column::Id.eq(a))
                        .exec(db)
                        .await?;
                    let mut again = row.clone();
                    again.identities.clear();
                    Box::pin(upsert_customer(db, &again)).await?;
                    CustomerId(a)
                }
                None => {
                    let c = customers::ActiveModel {
                        crm_id: Set(Some(row.crm_id.clone())),
                        name: Set(row.name.clone()),
                        phone: Set(row.phone.clone()),
                        region: Set(row.region.clone()),
                        city_group_id: Set(row.group.map(|g| g.0)),
                        dedicated_agent_id: Set(None),
                        tags: Set(row.tags.clone()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        ..Default::default()
                    }
                    .insert(db)
                    .await
                    .map_err(StoreError::from_insert)?;
                    CustomerId(c.id)
                }
            }
        }
    };
    let mut merged = Vec::new();
    for (other, _) in holders {
        if other != id.0 && !merged.contains(&CustomerId(other)) {
            merge_customer(
                db,
                CustomerId(other),
                id,
                "合并客户（CRM）/ customers merged by the CRM",
                "crm",
            )
            .await?;
            merged.push(CustomerId(other));
        }
    }
    for (kind, account, value) in &row.identities {
        customer_identities::Entity::insert(customer_identities::ActiveModel {
            customer_id: Set(id.0),
            kind: Set((*kind).to_owned()),
            account_id: Set(account.clone()),
            value: Set(value.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([
                customer_identities::Column::Kind,
                customer_identities::Column::AccountId,
                customer_identities::Column::Value,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(CustomerUpsert { id, merged })
}

/// Which of these identities exist.
pub async fn known_identities<C: ConnectionTrait>(
    db: &C,
    wanted: &[(&'static str, String, String)],
) -> Result<std::collections::HashSet<(&'static str, String, String)>, StoreError> {
    let mut out = std::collections::HashSet::new();
    for chunk in wanted.chunks(IN_CHUNK) {
        let kinds: std::collections::HashSet<&str> = chunk.iter().map(|w| w.0).collect();
        let accounts: std::collections::HashSet<&str> =
            chunk.iter().map(|w| w.1.as_str()).collect();
        // All three columns, so the (kind, account, value) index is used.
        let rows = customer_identities::Entity::find()
            .filter(customer_identities::Column::Kind.is_in(kinds))
            .filter(customer_identities::Column::AccountId.is_in(accounts))
            .filter(
                customer_identities::Column::Value.is_in(chunk.iter().map(|(_, _, v)| v.clone())),
            )
            .all(db)
            .await?;
        for w in chunk {
            if rows
                .iter()
                .any(|r| r.kind == w.0 && r.account_id == w.1 && r.value == w.2)
            {
                out.insert(w.clone());
            }
        }
    }
    Ok(out)
}

/// Inserts a customer none of whose channels is known yet.
pub async fn insert_customer<C: ConnectionTrait>(
    db: &C,
    row: &CustomerRow,
) -> Result<CustomerId, StoreError> {
    let now = Utc::now();
    let c = customers::ActiveModel {
        crm_id: Set(Some(row.crm_id.clone())),
        name: Set(row.name.clone()),
        phone: Set(row.phone.clone()),
        region: Set(row.region.clone()),
        city_group_id: Set(row.group.map(|g| g.0)),
        dedicated_agent_id: Set(None),
        tags: Set(row.tags.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(StoreError::from_insert)?;
    if !row.identities.is_empty() {
        customer_identities::Entity::insert_many(row.identities.iter().map(
            |(kind, account, value)| customer_identities::ActiveModel {
                customer_id: Set(c.id),
                kind: Set((*kind).to_owned()),
                account_id: Set(account.clone()),
                value: Set(value.clone()),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            },
        ))
        .exec(db)
        .await
        .map_err(StoreError::from_insert)?;
    }
    Ok(CustomerId(c.id))
}

/// Moves everything of `from` (a customer Kefu made) to `into`, then
/// removes `from`. The dedicated agent of `from` carries over when `into`
/// has none.
pub(crate) async fn merge_customer<C: ConnectionTrait>(
    db: &C,
    from: CustomerId,
    into: CustomerId,
    why: &str,
    actor: &str,
) -> Result<(), StoreError> {
    customer_identities::Entity::update_many()
        .col_expr(customer_identities::Column::CustomerId, Expr::value(into.0))
        .filter(customer_identities::Column::CustomerId.eq(from.0))
        .exec(db)
        .await?;
    // One open conversation per customer and account: where both have one,
    // the merged customer's is closed (its messages stay in the history).
    let open_into: Vec<String> = conversations::Entity::find()
        .filter(conversations::Column::CustomerId.eq(into.0))
        .filter(conversations::Column::State.ne("closed"))
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.account_id)
        .collect();
    let now = Utc::now();
    for c in conversations::Entity::find()
        .filter(conversations::Column::CustomerId.eq(from.0))
        .filter(conversations::Column::State.ne("closed"))
        .filter(conversations::Column::AccountId.is_in(open_into))
        .all(db)
        .await?
    {
        conversations::Entity::update_many()
            .col_expr(conversations::Column::State, Expr::value("closed"))
            .col_expr(
                conversations::Column::AgentId,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(conversations::Column::ClosedAt, Expr::value(now))
            .col_expr(
                conversations::Column::QueuedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(conversations::Column::Id.eq(c.id))
            .exec(db)
            .await?;
        super::entities::conversation_transitions::ActiveModel {
            conversation_id: Set(c.id),
            from_state: Set(Some(c.state.clone())),
            to_state: Set("closed".into()),
            agent_id: Set(c.agent_id),
            reason: Set(why.into()),
            actor: Set(actor.into()),
            at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    conversations::Entity::update_many()
        .col_expr(conversations::Column::CustomerId, Expr::value(into.0))
        .filter(conversations::Column::CustomerId.eq(from.0))
        .exec(db)
        .await?;
    messages::Entity::update_many()
        .col_expr(messages::Column::CustomerId, Expr::value(into.0))
        .filter(messages::Column::CustomerId.eq(from.0))
        .exec(db)
        .await?;
    surveys::Entity::update_many()
        .col_expr(surveys::Column::CustomerId, Expr::value(into.0))
        .filter(surveys::Column::CustomerId.eq(from.0))
        .exec(db)
        .await?;
    tickets::Entity::update_many()
        .col_expr(tickets::Column::CustomerId, Expr::value(into.0))
        .filter(tickets::Column::CustomerId.eq(from.0))
        .exec(db)
        .await?;
    let old = customers::Entity::find_by_id(from.0).one(db).await?;
    if let Some(agent) = old.and_then(|c| c.dedicated_agent_id) {
        customers::Entity::update_many()
            .col_expr(customers::Column::DedicatedAgentId, Expr::value(agent))
            .filter(customers::Column::Id.eq(into.0))
            .filter(customers::Column::DedicatedAgentId.is_null())
            .exec(db)
            .await?;
    }
    customers::Entity::delete_by_id(from.0).exec(db).await?;
    Ok(())
}

/// A vehicle trade as the CRM describes it.
#[derive(Debug, Clone)]
pub struct VehicleRow {
    pub crm_id: String,
    pub customer: CustomerId,
    pub plate: Option<String>,
    pub model: Option<String>,
    pub order_no: Option<String>,
    pub payment_status: String,
    pub payment_updated_at: Option<DateTime<Utc>>,
    pub sale_status: String,
    pub sale_updated_at: Option<DateTime<Utc>>,
    pub details: Option<String>,
}

/// Creates or replaces the trade with this CRM id.
pub async fn upsert_vehicle<C: ConnectionTrait>(db: &C, v: &VehicleRow) -> Result<(), StoreError> {
    vehicle_trades::Entity::insert(vehicle_trades::ActiveModel {
        crm_id: Set(v.crm_id.clone()),
        customer_id: Set(v.customer.0),
        plate: Set(v.plate.clone()),
        model: Set(v.model.clone()),
        order_no: Set(v.order_no.clone()),
        payment_status: Set(v.payment_status.clone()),
        payment_updated_at: Set(v.payment_updated_at),
        sale_status: Set(v.sale_status.clone()),
        sale_updated_at: Set(v.sale_updated_at),
        details: Set(v.details.clone()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(vehicle_trades::Column::CrmId)
            .update_columns([
                vehicle_trades::Column::CustomerId,
                vehicle_trades::Column::Plate,
                vehicle_trades::Column::Model,
                vehicle_trades::Column::OrderNo,
                vehicle_trades::Column::PaymentStatus,
                vehicle_trades::Column::PaymentUpdatedAt,
                vehicle_trades::Column::SaleStatus,
                vehicle_trades::Column::SaleUpdatedAt,
                vehicle_trades::Column::Details,
                vehicle_trades::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// Records an event for the CRM (webhook and cursor).
pub async fn record_event<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    customer: Option<CustomerId>,
    payload: &serde_json::Value,
) -> Result<(), StoreError> {
    crm_events::ActiveModel {
        kind: Set(kind.to_owned()),
        customer_id: Set(customer.map(|c| c.0)),
        payload: Set(payload.to_string()),
        created_at: Set(Utc::now()),
        delivered_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

impl Store {
    /// The CRM ids of a customer and an agent, for events (either may be
    /// unknown to the CRM: then Kefu's id is given as `kefu:N`).
    pub async fn crm_refs(
        &self,
        customer: CustomerId,
        agents: &[AgentId],
    ) -> Result<(String, Vec<String>), StoreError> {
        let c = customers::Entity::find_by_id(customer.0)
            .one(self.conn())
            .await?
            .and_then(|c| c.crm_id)
            .unwrap_or_else(|| format!("kefu:{customer}"));
        let mut out = Vec::with_capacity(agents.len());
        for a in agents {
            let crm = agents::Entity::find_by_id(a.0)
                .one(self.conn())
                .await?
                .and_then(|r| r.crm_id)
                .unwrap_or_else(|| format!("kefu:{a}"));
            out.push(crm);
        }
        Ok((c, out))
    }

    /// Records an event for the CRM.
    pub async fn record_crm_event(
        &self,
        kind: &str,
        customer: Option<CustomerId>,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        record_event(self.writer(), kind, customer, payload).await
    }

    /// Events after the cursor `after`, oldest first.
    pub async fn crm_events_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<crm_events::Model>, StoreError> {
        Ok(crm_events::Entity::find()
            .filter(crm_events::Column::Id.gt(after))
            .order_by_asc(crm_events::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// The oldest events not delivered by webhook yet.
    pub async fn undelivered_crm_events(
        &self,
        limit: u64,
    ) -> Result<Vec<crm_events::Model>, StoreError> {
        Ok(crm_events::Entity::find()
            .filter(crm_events::Column::DeliveredAt.is_null())
            .order_by_asc(crm_events::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Marks events delivered.
    pub async fn crm_events_delivered(&self, ids: &[i64]) -> Result<(), StoreError> {
        crm_events::Entity::update_many()
            .col_expr(crm_events::Column::DeliveredAt, Expr::value(Utc::now()))
            .col_expr(
                crm_events::Column::Attempts,
                Expr::col(crm_events::Column::Attempts).add(1),
            )
            .filter(crm_events::Column::Id.is_in(ids.iter().copied()))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Records a failed delivery of events.
    pub async fn crm_events_failed(&self, ids: &[i64], error: &str) -> Result<(), StoreError> {
        crm_events::Entity::update_many()
            .col_expr(
                crm_events::Column::Attempts,
                Expr::col(crm_events::Column::Attempts).add(1),
            )
            .col_expr(
                crm_events::Column::LastError,
                Expr::value(error.chars().take(500).collect::<String>()),
            )
            .filter(crm_events::Column::Id.is_in(ids.iter().copied()))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// A customer's vehicle trades, most recently updated first.
    pub async fn vehicle_trades_of(
        &self,
        customer: CustomerId,
    ) -> Result<Vec<vehicle_trades::Model>, StoreError> {
        Ok(vehicle_trades::Entity::find()
            .filter(vehicle_trades::Column::CustomerId.eq(customer.0))
            .order_by_desc(vehicle_trades::Column::UpdatedAt)
            .all(self.conn())
            .await?)
    }
}

/// The open conversations an agent holds.
pub async fn assigned_of_agent<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
) -> Result<Vec<crate::ids::ConversationId>, StoreError> {
    Ok(conversations::Entity::find()
        .select_only()
        .column(conversations::Column::Id)
        .filter(conversations::Column::AgentId.eq(agent.0))
        .filter(conversations::Column::State.eq("assigned"))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .map(crate::ids::ConversationId)
        .collect())
}

/// An agent's CRM id, if the CRM gave one.
pub async fn agent_crm_id<C: ConnectionTrait>(
    db: &C,
    agent: AgentId,
) -> Result<Option<String>, StoreError> {
    Ok(agents::Entity::find_by_id(agent.0)
        .one(db)
        .await?
        .and_then(|a| a.crm_id))
}

/// A customer's CRM id, if the CRM gave one.
pub async fn customer_crm_id<C: ConnectionTrait>(
    db: &C,
    customer: CustomerId,
) -> Result<Option<String>, StoreError> {
    Ok(customers::Entity::find_by_id(customer.0)
        .one(db)
        .await?
        .and_then(|c| c.crm_id))
}

impl Store {
    /// Records a binding Kefu made (`binding.created`, at a first
    /// assignment) or changed (`binding.changed`, a dedicated agent who left
    /// or moved), for the CRM.
    pub async fn report_binding(
        &self,
        customer: CustomerId,
        from: Option<AgentId>,
        to: AgentId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let agents: Vec<AgentId> = from.into_iter().chain([to]).collect();
        let (c, crm) = self.crm_refs(customer, &agents).await?;
        let (kind, payload) = match from {
            Some(_) => (
                "binding.changed",
                serde_json::json!({"customer": c, "from_agent": crm[0], "to_agent": crm[1], "reason": reason}),
            ),
            None => (
                "binding.created",
                serde_json::json!({"customer": c, "agent": crm[0], "reason": reason}),
            ),
        };
        self.record_crm_event(kind, Some(customer), &payload).await
    }

    /// Records a satisfaction answer for the CRM.
    pub async fn report_survey(
        &self,
        customer: CustomerId,
        agent: Option<AgentId>,
        conversation: i64,
        score: i32,
        comment: Option<&str>,
    ) -> Result<(), StoreError> {
        let agents: Vec<AgentId> = agent.into_iter().collect();
        let (c, crm) = self.crm_refs(customer, &agents).await?;
        let payload = serde_json::json!({
            "customer": c,
            "agent": crm.first(),
            "conversation": conversation,
            "score": score,
            "comment": comment,
        });
        self.record_crm_event("survey.answered", Some(customer), &payload)
            .await
    }
}
