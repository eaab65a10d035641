//! What routing reads: the agents' snapshot (groups, status, load), the
//! city groups, shifts and the region map; agents' presence (status and
//! heartbeat); and the small writes that set them up (admins now, the CRM
//! sync later).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::entities::{
    agent_shifts, agents, city_groups, conversation_transitions as transitions, conversations,
    customers, group_members, region_groups,
};
use super::{Store, StoreError};
use crate::ids::{AgentId, ConversationId, CustomerId, GroupId};
use crate::routing::engine::{RouterData, ShiftSpan};
use crate::routing::{AgentSnapshot, AgentStatus, Employment, GroupMap, Shift};

/// The stored state of a conversation held by an agent.
const ASSIGNED: &str = "assigned";

/// Who an agent is, beside what routing holds of them.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    pub id: AgentId,
    pub login: String,
    pub name: String,
    pub role: String,
    /// Their console's last heartbeat.
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every agent who is not disabled, as routing sees them now, and the
    /// city groups.
    ///
    /// Load is the number of their `assigned` conversations. Everyone is
    /// given as on shift: shifts are evaluated at each decision by the
    /// router, from [`Store::router_data`]. The region → group map is what
    /// admins set (the CRM sync later); without it, first contacts without a
    /// CRM group go to any available agent.
    pub async fn routing_snapshot(&self) -> Result<(Vec<AgentSnapshot>, GroupMap), StoreError> {
        let db = self.conn();
        let rows = agents::Entity::find()
            .filter(agents::Column::Disabled.eq(false))
            .order_by_asc(agents::Column::Id)
            .all(db)
            .await?;
        let members = group_members::Entity::find()
            .order_by_asc(group_members::Column::GroupId)
            .all(db)
            .await?;
        let loads: Vec<(Option<i64>, i64)> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::AgentId)
            .column_as(conversations::Column::Id.count(), "n")
            .filter(conversations::Column::State.eq(ASSIGNED))
            .group_by(conversations::Column::AgentId)
            .into_tuple()
            .all(db)
            .await?;
        let bound: Vec<(Option<i64>, i64)> = customers::Entity::find()
            .select_only()
            .column(customers::Column::DedicatedAgentId)
            .column_as(customers::Column::Id.count(), "n")
            .filter(customers::Column::DedicatedAgentId.is_not_null())
            .group_by(customers::Column::DedicatedAgentId)
            .into_tuple()
            .all(db)
            .await?;
        let last: Vec<(Option<i64>, Option<DateTime<Utc>>)> = transitions::Entity::find()
            .select_only()
            .column(transitions::Column::AgentId)
            .column_as(transitions::Column::At.max(), "last")
            .filter(transitions::Column::ToState.eq(ASSIGNED))
            .group_by(transitions::Column::AgentId)
            .into_tuple()
            .all(db)
            .await?;
        let per_agent = |v: Vec<(Option<i64>, i64)>| -> HashMap<i64, u32> {
            v.into_iter()
                .filter_map(|(a, n)| Some((a?, u32::try_from(n).unwrap_or(u32::MAX))))
                .collect()
        };
        let (loads, bound) = (per_agent(loads), per_agent(bound));
        let last: HashMap<i64, DateTime<Utc>> = last
            .into_iter()
            .filter_map(|(a, t)| Some((a?, t?)))
            .collect();
        let mut groups_of: HashMap<i64, Vec<GroupId>> = HashMap::new();
        for m in members {
            groups_of
                .entry(m.agent_id)
                .or_default()
                .push(GroupId(m.group_id));
        }
        let agents = rows
            .into_iter()
            .map(|a| AgentSnapshot {
                id: AgentId(a.id),
                groups: groups_of.remove(&a.id).unwrap_or_default(),
                status: parse_status(&a.status),
                // The router evaluates shifts at each decision.
                shift: Shift::On,
                employment: if a.departed_at.is_some() {
                    Employment::Departed
                } else {
                    Employment::Active
                },
                load: loads.get(&a.id).copied().unwrap_or(0),
                capacity: u32::try_from(a.capacity).unwrap_or(0),
                last_assigned_at: last.get(&a.id).copied(),
                bound_customers: bound.get(&a.id).copied().unwrap_or(0),
            })
            .collect();
        let mut map = GroupMap::new();
        for g in city_groups::Entity::find().all(db).await? {
            map.add_group(GroupId(g.id), g.name);
        }
        for r in region_groups::Entity::find().all(db).await? {
            map.map_region(&r.region, GroupId(r.group_id));
        }
        Ok((agents, map))
    }

    /// What the in-memory router holds: the snapshot above, the region map
    /// and every shift that has not ended by `now`.
    pub async fn router_data(&self, now: DateTime<Utc>) -> Result<RouterData, StoreError> {
        let (agents, groups) = self.routing_snapshot().await?;
        let mut shifts: HashMap<AgentId, Vec<ShiftSpan>> = HashMap::new();
        for s in agent_shifts::Entity::find()
            .filter(agent_shifts::Column::EndsAt.gt(now))
            .order_by_asc(agent_shifts::Column::StartsAt)
            .all(self.conn())
            .await?
        {
            shifts
                .entry(AgentId(s.agent_id))
                .or_default()
                .push((s.starts_at, s.ends_at));
        }
        Ok(RouterData {
            agents,
            groups,
            shifts,
        })
    }

    /// The shifts of one agent that have not ended by `now`.
    pub async fn shifts_of(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<ShiftSpan>, StoreError> {
        Ok(agent_shifts::Entity::find()
            .filter(agent_shifts::Column::AgentId.eq(agent.0))
            .filter(agent_shifts::Column::EndsAt.gt(now))
            .order_by_asc(agent_shifts::Column::StartsAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|s| (s.starts_at, s.ends_at))
            .collect())
    }

    /// Creates a city group (until the CRM sync does, issue 7).
    pub async fn create_city_group(&self, name: &str) -> Result<GroupId, StoreError> {
        let now = Utc::now();
        let row = city_groups::ActiveModel {
            crm_id: Set(None),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.writer())
        .await
        .map_err(StoreError::from_insert)?;
        Ok(GroupId(row.id))
    }

    /// Adds an agent to a city group (the first group added is their home).
    pub async fn add_group_member(&self, group: GroupId, agent: AgentId) -> Result<(), StoreError> {
        group_members::ActiveModel {
            group_id: Set(group.0),
            agent_id: Set(agent.0),
        }
        .insert(self.writer())
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Sets an agent's status (`idle`, `busy`, `break`, `offline`) as an
    /// admin or the CRM would, without a console heartbeat (tests, seeds);
    /// agents set their own through [`Store::set_agent_presence`].
    pub async fn set_agent_status(
        &self,
        agent: AgentId,
        status: AgentStatus,
    ) -> Result<(), StoreError> {
        agents::Entity::update_many()
            .col_expr(agents::Column::Status, Expr::value(status_str(status)))
            .col_expr(agents::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agents::Column::Id.eq(agent.0))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// An agent's presence as they set it: their status, seen now. `false`
    /// when no such agent exists.
    pub async fn set_agent_presence(
        &self,
        agent: AgentId,
        status: AgentStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(agents::Entity::update_many()
            .col_expr(agents::Column::Status, Expr::value(status_str(status)))
            .col_expr(agents::Column::LastSeenAt, Expr::value(Some(now)))
            .col_expr(agents::Column::UpdatedAt, Expr::value(now))
            .filter(agents::Column::Id.eq(agent.0))
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// An agent's status and when their console was last seen; `None` when
    /// no such agent exists.
    pub async fn agent_presence(
        &self,
        agent: AgentId,
    ) -> Result<Option<(AgentStatus, Option<DateTime<Utc>>)>, StoreError> {
        let row: Option<(String, Option<DateTime<Utc>>)> = agents::Entity::find()
            .select_only()
            .column(agents::Column::Status)
            .column(agents::Column::LastSeenAt)
            .filter(agents::Column::Id.eq(agent.0))
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(row.map(|(status, seen)| (parse_status(&status), seen)))
    }

    /// Heartbeats: these agents' consoles were seen at `at` (one statement
    /// for many agents).
    pub async fn touch_agents(
        &self,
        list: &[AgentId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in list.chunks(500) {
            agents::Entity::update_many()
                .col_expr(agents::Column::LastSeenAt, Expr::value(Some(at)))
                .filter(agents::Column::Id.is_in(chunk.iter().map(|a| a.0)))
                .exec(self.writer())
                .await?;
        }
        Ok(())
    }

    /// Agents not offline whose console was last seen before `cutoff`.
    /// Agents never seen (status set by an admin or the CRM, no console yet)
    /// are left alone.
    pub async fn stale_agents(&self, cutoff: DateTime<Utc>) -> Result<Vec<AgentId>, StoreError> {
        let ids: Vec<i64> = agents::Entity::find()
            .select_only()
            .column(agents::Column::Id)
            .filter(agents::Column::Status.ne(status_str(AgentStatus::Offline)))
            .filter(agents::Column::LastSeenAt.lt(cutoff))
            .order_by_asc(agents::Column::Id)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(ids.into_iter().map(AgentId).collect())
    }

    /// Marks a stale agent offline unless they were seen again since
    /// `cutoff` (or someone else did it first): `true` when done here.
    pub async fn expire_agent(
        &self,
        agent: AgentId,
        cutoff: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(agents::Entity::update_many()
            .col_expr(
                agents::Column::Status,
                Expr::value(status_str(AgentStatus::Offline)),
            )
            .col_expr(agents::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agents::Column::Id.eq(agent.0))
            .filter(agents::Column::Status.ne(status_str(AgentStatus::Offline)))
            .filter(agents::Column::LastSeenAt.lt(cutoff))
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// The conversations an agent holds now.
    pub async fn assigned_conversations_of(
        &self,
        agent: AgentId,
    ) -> Result<Vec<ConversationId>, StoreError> {
        let ids: Vec<i64> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .filter(conversations::Column::State.eq(ASSIGNED))
            .filter(conversations::Column::AgentId.eq(agent.0))
            .order_by_asc(conversations::Column::Id)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(ids.into_iter().map(ConversationId).collect())
    }

    /// Sets how many conversations an agent may hold at once (until the CRM
    /// sync and the admin pages do).
    pub async fn set_agent_capacity(
        &self,
        agent: AgentId,
        capacity: u32,
    ) -> Result<(), StoreError> {
        agents::Entity::update_many()
            .col_expr(
                agents::Column::Capacity,
                Expr::value(i32::try_from(capacity).unwrap_or(i32::MAX)),
            )
            .col_expr(agents::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agents::Column::Id.eq(agent.0))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Who the agents are (what the router does not hold), by id.
    pub async fn agent_directory(&self) -> Result<Vec<AgentEntry>, StoreError> {
        Ok(agents::Entity::find()
            .filter(agents::Column::Disabled.eq(false))
            .order_by_asc(agents::Column::Id)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|a| AgentEntry {
                id: AgentId(a.id),
                login: a.login,
                name: a.name,
                role: a.role,
                last_seen_at: a.last_seen_at,
            })
            .collect())
    }

    /// Whether an agent with this id exists (disabled or not).
    pub async fn agent_exists(&self, agent: AgentId) -> Result<bool, StoreError> {
        Ok(agents::Entity::find_by_id(agent.0)
            .count(self.conn())
            .await?
            > 0)
    }

    /// Replaces the agent's shifts that have not ended by `now` with
    /// `spans` (an admin's edit); ended shifts stay as history.
    pub async fn replace_shifts(
        &self,
        agent: AgentId,
        spans: &[ShiftSpan],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        agent_shifts::Entity::delete_many()
            .filter(agent_shifts::Column::AgentId.eq(agent.0))
            .filter(agent_shifts::Column::EndsAt.gt(now))
            .exec(&txn)
            .await?;
        for chunk in spans.chunks(100) {
            agent_shifts::Entity::insert_many(chunk.iter().map(|(starts, ends)| {
                agent_shifts::ActiveModel {
                    agent_id: Set(agent.0),
                    starts_at: Set(*starts),
                    ends_at: Set(*ends),
                    crm_id: Set(None),
                    created_at: Set(now),
                    ..Default::default()
                }
            }))
            .exec(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Every city group: id and name, by id.
    pub async fn city_groups(&self) -> Result<Vec<(GroupId, String)>, StoreError> {
        Ok(city_groups::Entity::find()
            .order_by_asc(city_groups::Column::Id)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|g| (GroupId(g.id), g.name))
            .collect())
    }

    /// The region → city group map, by region.
    pub async fn region_groups(&self) -> Result<Vec<(String, GroupId)>, StoreError> {
        Ok(region_groups::Entity::find()
            .order_by_asc(region_groups::Column::Region)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|r| (r.region, GroupId(r.group_id)))
            .collect())
    }

    /// Replaces the whole region → city group map (an admin's edit; the
    /// CRM sync later).
    pub async fn replace_region_groups(&self, map: &[(String, GroupId)]) -> Result<(), StoreError> {
        let now = Utc::now();
        let txn = self.writer().begin().await?;
        region_groups::Entity::delete_many().exec(&txn).await?;
        for chunk in map.chunks(100) {
            region_groups::Entity::insert_many(chunk.iter().map(|(region, group)| {
                region_groups::ActiveModel {
                    region: Set(region.clone()),
                    group_id: Set(group.0),
                    updated_at: Set(now),
                }
            }))
            .exec(&txn)
            .await
            .map_err(StoreError::from_insert)?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Sets what routing knows of a customer (until the CRM sync does,
    /// issue 7): dedicated agent, city group, region.
    pub async fn set_customer_routing(
        &self,
        customer: CustomerId,
        dedicated_agent: Option<AgentId>,
        group: Option<GroupId>,
        region: Option<&str>,
    ) -> Result<(), StoreError> {
        customers::Entity::update_many()
            .col_expr(
                customers::Column::DedicatedAgentId,
                Expr::value(dedicated_agent.map(|a| a.0)),
            )
            .col_expr(
                customers::Column::CityGroupId,
                Expr::value(group.map(|g| g.0)),
            )
            .col_expr(
                customers::Column::Region,
                Expr::value(region.map(str::to_owned)),
            )
            .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(customers::Column::Id.eq(customer.0))
            .exec(self.writer())
            .await?;
        Ok(())
    }
}

/// The stored spelling of a status.
pub(crate) fn status_str(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Idle => "idle",
        AgentStatus::Busy => "busy",
        AgentStatus::Break => "break",
        AgentStatus::Offline => "offline",
    }
}

/// A stored status; anything unknown counts as offline.
fn parse_status(s: &str) -> AgentStatus {
    match s {
        "idle" => AgentStatus::Idle,
        "busy" => AgentStatus::Busy,
        "break" => AgentStatus::Break,
        _ => AgentStatus::Offline,
    }
}
