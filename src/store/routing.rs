//! What routing reads: the agents' snapshot (groups, status, load) and the
//! city groups; and the small writes that set them up (until the CRM sync and
//! the console's presence own them).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::{
    agent_shifts, agents, city_groups, conversation_transitions as transitions, conversations,
    customers, group_members, region_groups,
};
use super::{Store, StoreError};
use crate::ids::{AgentId, CustomerId, GroupId};
use crate::routing::engine::{RouterData, ShiftSpan};
use crate::routing::{AgentSnapshot, AgentStatus, Employment, GroupMap, Shift};

/// The stored state of a conversation held by an agent.
const ASSIGNED: &str = "assigned";

impl Store {
    /// Every agent who is not disabled, as routing sees them now, and the
    /// city groups.
    ///
    /// Load is the number of their `assigned` conversations. Shifts are not
    /// known yet: everyone counts as on shift (shifts come from the CRM, issue
    /// 7). The region → group map is empty until the CRM sync provides it
    /// (issue 7), so first contacts without a CRM group go to any available
    /// agent.
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
                // Everyone is on shift until shifts exist (issue 7).
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

    /// Sets an agent's presence (`idle`, `busy`, `break`, `offline`), until
    /// the console's presence does (issue 8).
    pub async fn set_agent_status(
        &self,
        agent: AgentId,
        status: AgentStatus,
    ) -> Result<(), StoreError> {
        let status = match status {
            AgentStatus::Idle => "idle",
            AgentStatus::Busy => "busy",
            AgentStatus::Break => "break",
            AgentStatus::Offline => "offline",
        };
        agents::Entity::update_many()
            .col_expr(agents::Column::Status, Expr::value(status))
            .col_expr(agents::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agents::Column::Id.eq(agent.0))
            .exec(self.writer())
            .await?;
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

/// A stored status; anything unknown counts as offline.
fn parse_status(s: &str) -> AgentStatus {
    match s {
        "idle" => AgentStatus::Idle,
        "busy" => AgentStatus::Busy,
        "break" => AgentStatus::Break,
        _ => AgentStatus::Offline,
    }
}
