//! Internal notes: what agents and supervisors write in a conversation for
//! each other. Stored as messages with direction `note`: in the
//! conversation's thread, the customer's history and search, never sent
//! (the outbox has no row for them) and never a reply (the conversation
//! still waits for one).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::{conversations, messages};
use super::{Store, StoreError};
use crate::ids::AgentId;

/// A note's direction.
pub const NOTE: &str = "note";

impl Store {
    /// Stores a note by `agent` (signed in as `login`); a note with the
    /// same `key` stored before is returned instead, with `false`.
    pub async fn add_note(
        &self,
        conversation: &conversations::Model,
        agent: AgentId,
        login: &str,
        key: &str,
        text: &str,
    ) -> Result<(messages::Model, bool), StoreError> {
        if let Some(m) = self.note_by_key(&conversation.account_id, key).await? {
            return Ok((m, false));
        }
        let now = Utc::now();
        let row = messages::ActiveModel {
            account_id: Set(conversation.account_id.clone()),
            channel: Set(conversation.channel.clone()),
            direction: Set(NOTE.into()),
            conversation_id: Set(Some(conversation.id)),
            customer_id: Set(Some(conversation.customer_id)),
            agent_id: Set(Some(agent.0)),
            sender: Set(login.to_owned()),
            dedup_key: Set(Some(key.to_owned())),
            msg_type: Set("text".into()),
            content: Set(Some(text.to_owned())),
            sent_at: Set(now),
            created_at: Set(now),
            ..Default::default()
        };
        match row
            .insert(self.writer())
            .await
            .map_err(StoreError::from_insert)
        {
            Ok(m) => Ok((m, true)),
            // The same note sent twice at once: the other one is stored.
            Err(StoreError::Duplicate) => self
                .note_by_key(&conversation.account_id, key)
                .await?
                .map(|m| (m, false))
                .ok_or(StoreError::NotFound),
            Err(e) => Err(e),
        }
    }

    async fn note_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<messages::Model>, StoreError> {
        Ok(messages::Entity::find()
            .filter(messages::Column::AccountId.eq(account))
            .filter(messages::Column::DedupKey.eq(key))
            .filter(messages::Column::Direction.eq(NOTE))
            .one(self.writer())
            .await?)
    }
}
