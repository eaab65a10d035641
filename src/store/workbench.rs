//! What the agent's workbench reads: their open conversations with the
//! newest message and how many customer messages they have not read.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};

use super::entities::{conversation_reads, conversations, customers, messages};
use super::{Store, StoreError};
use crate::ids::{AgentId, ConversationId, MessageId};

/// One row of the conversation list.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub conversation: conversations::Model,
    pub customer: Option<customers::Model>,
    pub last_message: Option<messages::Model>,
    /// Customer messages after the agent's read marker.
    pub unread: u64,
}

impl Store {
    /// The conversations `agent` serves now, the longest waiting first.
    pub async fn workbench(&self, agent: AgentId) -> Result<Vec<WorkItem>, StoreError> {
        let convs = conversations::Entity::find()
            .filter(conversations::Column::AgentId.eq(agent.0))
            .filter(conversations::Column::State.eq("assigned"))
            .order_by_asc(conversations::Column::LastMessageAt)
            .all(self.conn())
            .await?;
        let reads: HashMap<i64, i64> = conversation_reads::Entity::find()
            .filter(conversation_reads::Column::AgentId.eq(agent.0))
            .filter(conversation_reads::Column::ConversationId.is_in(convs.iter().map(|c| c.id)))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|r| (r.conversation_id, r.last_read_message_id))
            .collect();
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            let last_message = messages::Entity::find()
                .filter(messages::Column::ConversationId.eq(c.id))
                .order_by_desc(messages::Column::Id)
                .one(self.conn())
                .await?;
            let unread = messages::Entity::find()
                .filter(messages::Column::ConversationId.eq(c.id))
                .filter(messages::Column::Direction.eq("in"))
                .filter(messages::Column::Id.gt(reads.get(&c.id).copied().unwrap_or(0)))
                .count(self.conn())
                .await?;
            let customer = customers::Entity::find_by_id(c.customer_id)
                .one(self.conn())
                .await?;
            out.push(WorkItem {
                conversation: c,
                customer,
                last_message,
                unread,
            });
        }
        // The customer waiting longest for a reply first, then the others.
        out.sort_by_key(|w| {
            (
                w.conversation.awaiting_reply_since.is_none(),
                w.conversation.awaiting_reply_since,
                w.conversation.last_message_at,
            )
        });
        Ok(out)
    }

    /// Moves the agent's read marker forward to `message` (never back);
    /// whether it moved.
    pub async fn mark_read(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        message: MessageId,
    ) -> Result<bool, StoreError> {
        let current = conversation_reads::Entity::find_by_id((conversation.0, agent.0))
            .one(self.conn())
            .await?;
        if current.is_some_and(|r| r.last_read_message_id >= message.0) {
            return Ok(false);
        }
        conversation_reads::Entity::insert(conversation_reads::ActiveModel {
            conversation_id: Set(conversation.0),
            agent_id: Set(agent.0),
            last_read_message_id: Set(message.0),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([
                conversation_reads::Column::ConversationId,
                conversation_reads::Column::AgentId,
            ])
            .update_columns([
                conversation_reads::Column::LastReadMessageId,
                conversation_reads::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(self.writer())
        .await?;
        Ok(true)
    }

    /// The furthest any agent has read the conversation (the serving agent
    /// in practice): what a web visitor sees as 已读.
    pub async fn agents_read_up_to(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<i64>, StoreError> {
        use sea_orm::QuerySelect;
        let max: Option<Option<i64>> = conversation_reads::Entity::find()
            .select_only()
            .column_as(conversation_reads::Column::LastReadMessageId.max(), "m")
            .filter(conversation_reads::Column::ConversationId.eq(conversation.0))
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(max.flatten())
    }

    /// Moves the customer's read marker forward to `message` (never back);
    /// whether it moved.
    pub async fn mark_customer_read(
        &self,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<bool, StoreError> {
        use super::entities::customer_reads as reads;
        if self
            .customer_read_up_to(conversation)
            .await?
            .is_some_and(|r| r >= message.0)
        {
            return Ok(false);
        }
        reads::Entity::insert(reads::ActiveModel {
            conversation_id: Set(conversation.0),
            last_read_message_id: Set(message.0),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(reads::Column::ConversationId)
                .update_columns([reads::Column::LastReadMessageId, reads::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(self.writer())
        .await?;
        Ok(true)
    }

    /// How far the customer has read the conversation, if they said.
    pub async fn customer_read_up_to(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<i64>, StoreError> {
        use super::entities::customer_reads as reads;
        Ok(reads::Entity::find_by_id(conversation.0)
            .one(self.conn())
            .await?
            .map(|r| r.last_read_message_id))
    }
}
