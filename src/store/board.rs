//! What the supervisors' board reads: customers waiting for an agent's
//! reply, and the latest routing decisions with their reasons.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{conversation_transitions as transitions, conversations, customers};
use super::{Store, StoreError};
use crate::ids::AgentId;

/// Who a board looks at: every agent (admins), or these agents.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Agents(&'a [AgentId]),
}

impl Scope<'_> {
    fn ids(&self) -> Option<Vec<i64>> {
        match self {
            Scope::All => None,
            Scope::Agents(a) => Some(a.iter().map(|a| a.0).collect()),
        }
    }
}

impl Store {
    /// Assigned conversations whose customer waits for a reply, the
    /// longest waiting first.
    pub async fn unanswered(
        &self,
        scope: Scope<'_>,
        limit: u64,
    ) -> Result<Vec<conversations::Model>, StoreError> {
        let mut q = conversations::Entity::find()
            .filter(conversations::Column::State.eq(super::conversations::ASSIGNED_STATE))
            .filter(conversations::Column::AwaitingReplySince.is_not_null());
        if let Some(ids) = scope.ids() {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(conversations::Column::AgentId.is_in(ids));
        }
        Ok(q.order_by_asc(conversations::Column::AwaitingReplySince)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// The latest transitions that name an agent in scope, newest first.
    pub async fn recent_decisions(
        &self,
        scope: Scope<'_>,
        limit: u64,
    ) -> Result<Vec<transitions::Model>, StoreError> {
        let mut q = transitions::Entity::find();
        if let Some(ids) = scope.ids() {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(transitions::Column::AgentId.is_in(ids));
        }
        Ok(q.order_by_desc(transitions::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Each queue's depth and its oldest entry: (queue group, how many,
    /// queued since), in one grouped query.
    pub async fn queue_depths(
        &self,
    ) -> Result<Vec<(Option<i64>, i64, Option<DateTime<Utc>>)>, StoreError> {
        Ok(conversations::Entity::find()
            .select_only()
            .column(conversations::Column::QueueGroupId)
            .column_as(conversations::Column::Id.count(), "n")
            .column_as(conversations::Column::QueuedAt.min(), "oldest")
            .filter(conversations::Column::State.eq(super::conversations::QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_not_null())
            .group_by(conversations::Column::QueueGroupId)
            .into_tuple()
            .all(self.conn())
            .await?)
    }

    /// Customers' names by id (those without one are left out).
    pub async fn customer_names(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, Option<String>)> = customers::Entity::find()
                .select_only()
                .column(customers::Column::Id)
                .column(customers::Column::Name)
                .filter(customers::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(self.conn())
                .await?;
            out.extend(rows.into_iter().filter_map(|(i, n)| n.map(|n| (i, n))));
        }
        Ok(out)
    }
}
