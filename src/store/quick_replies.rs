//! Quick replies: shared ones (kept by supervisors and admins) and each
//! agent's own.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};

use super::entities::quick_replies;
use super::{Store, StoreError};
use crate::ids::AgentId;

impl Store {
    /// The shared quick replies, then the agent's own, each by title.
    pub async fn quick_replies_for(
        &self,
        agent: AgentId,
    ) -> Result<Vec<quick_replies::Model>, StoreError> {
        let mut rows = quick_replies::Entity::find()
            .filter(
                Condition::any()
                    .add(quick_replies::Column::OwnerAgentId.is_null())
                    .add(quick_replies::Column::OwnerAgentId.eq(agent.0)),
            )
            .order_by_asc(quick_replies::Column::Title)
            .order_by_asc(quick_replies::Column::Id)
            .all(self.conn())
            .await?;
        rows.sort_by_key(|r| r.owner_agent_id.is_some());
        Ok(rows)
    }

    /// How many quick replies the agent has of their own.
    pub async fn own_quick_replies(&self, agent: AgentId) -> Result<u64, StoreError> {
        Ok(quick_replies::Entity::find()
            .filter(quick_replies::Column::OwnerAgentId.eq(agent.0))
            .count(self.conn())
            .await?)
    }

    /// How many shared quick replies there are.
    pub async fn shared_quick_replies(&self) -> Result<u64, StoreError> {
        Ok(quick_replies::Entity::find()
            .filter(quick_replies::Column::OwnerAgentId.is_null())
            .count(self.conn())
            .await?)
    }

    pub async fn quick_reply(&self, id: i64) -> Result<quick_replies::Model, StoreError> {
        quick_replies::Entity::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// A new quick reply: shared when `owner` is `None`.
    pub async fn create_quick_reply(
        &self,
        owner: Option<AgentId>,
        title: &str,
        content: &str,
    ) -> Result<quick_replies::Model, StoreError> {
        let now = Utc::now();
        Ok(quick_replies::ActiveModel {
            owner_agent_id: Set(owner.map(|a| a.0)),
            title: Set(title.to_owned()),
            content: Set(content.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.writer())
        .await?)
    }

    pub async fn update_quick_reply(
        &self,
        id: i64,
        title: &str,
        content: &str,
    ) -> Result<quick_replies::Model, StoreError> {
        let row = self.quick_reply(id).await?;
        let mut a: quick_replies::ActiveModel = row.into();
        a.title = Set(title.to_owned());
        a.content = Set(content.to_owned());
        a.updated_at = Set(Utc::now());
        Ok(a.update(self.writer()).await?)
    }

    pub async fn delete_quick_reply(&self, id: i64) -> Result<(), StoreError> {
        quick_replies::Entity::delete_by_id(id)
            .exec(self.writer())
            .await?;
        Ok(())
    }
}
