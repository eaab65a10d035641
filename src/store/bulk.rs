//! Bulk writes and reads for the load tools (`kefu load routing`,
//! `console`, `search`): seeding thousands of agents and customers and
//! millions of messages at once, and reading the whole transition record
//! back to check it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::entities::{
    agents, conversation_transitions as transitions, customer_identities, customers, group_members,
    messages,
};
use super::followers::IdentityKind;
use super::{Store, StoreError};
use crate::auth::Role;
use crate::ids::{AccountId, AgentId, CustomerId, GroupId};
use crate::routing::AgentStatus;

/// Rows written per transaction.
const CHUNK: usize = 1000;

/// An agent to seed (no password: they never sign in).
#[derive(Debug, Clone)]
pub struct SeedAgent {
    pub login: String,
    pub name: String,
    pub capacity: u32,
    pub status: AgentStatus,
}

/// A customer to seed, with their Official Account openid and what the CRM
/// would know of them.
#[derive(Debug, Clone)]
pub struct SeedCustomer {
    pub open_id: String,
    pub dedicated_agent: Option<AgentId>,
    pub group: Option<GroupId>,
    pub region: Option<String>,
}

/// A stored text message to seed (history for `kefu load search`).
#[derive(Debug, Clone)]
pub struct SeedMessage {
    pub customer: CustomerId,
    /// The customer's openid on the account.
    pub open_id: String,
    /// `Some`: an agent's reply; `None`: the customer wrote it.
    pub agent: Option<AgentId>,
    pub content: String,
    pub sent_at: DateTime<Utc>,
}

/// Messages per `INSERT` (14 values each, under SQLite's variable limit).
const MESSAGE_ROWS: usize = 500;

/// A transition's id, conversation, from, to and agent, as read.
type TransitionTuple = (i64, i64, Option<String>, String, Option<i64>);

/// One recorded transition, as the load tool replays them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub id: i64,
    pub conversation: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub agent: Option<i64>,
}

impl Store {
    /// Inserts agents; their ids, in order.
    pub async fn seed_agents(&self, list: &[SeedAgent]) -> Result<Vec<AgentId>, StoreError> {
        let now = Utc::now();
        let mut ids = Vec::with_capacity(list.len());
        for chunk in list.chunks(CHUNK) {
            let txn = self.writer().begin().await?;
            for a in chunk {
                let row = agents::ActiveModel {
                    login: Set(a.login.clone()),
                    name: Set(a.name.clone()),
                    role: Set(Role::Agent.as_str().to_owned()),
                    password_hash: Set(None),
                    capacity: Set(i32::try_from(a.capacity).unwrap_or(i32::MAX)),
                    status: Set(super::routing::status_str(a.status).to_owned()),
                    disabled: Set(false),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await
                .map_err(StoreError::from_insert)?;
                ids.push(AgentId(row.id));
            }
            txn.commit().await?;
        }
        Ok(ids)
    }

    /// Puts agents in city groups (a first membership is the home group).
    pub async fn seed_group_members(&self, pairs: &[(GroupId, AgentId)]) -> Result<(), StoreError> {
        for chunk in pairs.chunks(CHUNK) {
            group_members::Entity::insert_many(chunk.iter().map(|(g, a)| {
                group_members::ActiveModel {
                    group_id: Set(g.0),
                    agent_id: Set(a.0),
                }
            }))
            .exec(self.writer())
            .await
            .map_err(StoreError::from_insert)?;
        }
        Ok(())
    }

    /// Inserts customers with their Official Account identity on `account`;
    /// their ids, in order.
    pub async fn seed_customers(
        &self,
        account: &AccountId,
        list: &[SeedCustomer],
    ) -> Result<Vec<CustomerId>, StoreError> {
        let now = Utc::now();
        let mut ids = Vec::with_capacity(list.len());
        for chunk in list.chunks(CHUNK) {
            let txn = self.writer().begin().await?;
            for c in chunk {
                let row = customers::ActiveModel {
                    region: Set(c.region.clone()),
                    city_group_id: Set(c.group.map(|g| g.0)),
                    dedicated_agent_id: Set(c.dedicated_agent.map(|a| a.0)),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                customer_identities::ActiveModel {
                    customer_id: Set(row.id),
                    kind: Set(IdentityKind::OaOpenId.as_str().into()),
                    account_id: Set(account.to_string()),
                    value: Set(c.open_id.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await
                .map_err(StoreError::from_insert)?;
                ids.push(CustomerId(row.id));
            }
            txn.commit().await?;
        }
        Ok(ids)
    }

    /// Inserts text messages on `account`'s channel, in order, many rows
    /// per statement.
    pub async fn seed_messages(
        &self,
        account: &AccountId,
        list: &[SeedMessage],
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        for chunk in list.chunks(MESSAGE_ROWS * 20) {
            let txn = self.writer().begin().await?;
            for rows in chunk.chunks(MESSAGE_ROWS) {
                messages::Entity::insert_many(rows.iter().map(|m| messages::ActiveModel {
                    account_id: Set(account.to_string()),
                    channel: Set("oa".into()),
                    direction: Set(if m.agent.is_some() { "out" } else { "in" }.into()),
                    conversation_id: Set(None),
                    customer_id: Set(Some(m.customer.0)),
                    agent_id: Set(m.agent.map(|a| a.0)),
                    sender: Set(if m.agent.is_some() {
                        "agent".into()
                    } else {
                        m.open_id.clone()
                    }),
                    dedup_key: Set(None),
                    msg_type: Set("text".into()),
                    content: Set(Some(m.content.clone())),
                    media_object_id: Set(None),
                    payload: Set(None),
                    channel_msg_id: Set(None),
                    sent_at: Set(m.sent_at),
                    created_at: Set(now),
                    ..Default::default()
                }))
                .exec(&txn)
                .await?;
            }
            txn.commit().await?;
        }
        Ok(())
    }

    /// Up to `limit` recorded transitions after id `after`, in id order (the
    /// order they were stored in).
    pub async fn transitions_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<TransitionRow>, StoreError> {
        let rows: Vec<TransitionTuple> = transitions::Entity::find()
            .select_only()
            .column(transitions::Column::Id)
            .column(transitions::Column::ConversationId)
            .column(transitions::Column::FromState)
            .column(transitions::Column::ToState)
            .column(transitions::Column::AgentId)
            .filter(transitions::Column::Id.gt(after))
            .order_by_asc(transitions::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, conversation, from_state, to_state, agent)| TransitionRow {
                    id,
                    conversation,
                    from_state,
                    to_state,
                    agent,
                },
            )
            .collect())
    }

    /// Transitions recorded since `since` (a run's own).
    pub async fn transitions_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(transitions::Entity::find()
            .filter(transitions::Column::At.gte(since))
            .count(self.conn())
            .await?)
    }
}
