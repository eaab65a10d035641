//! What the console's customer panel reads: a customer's conversations on
//! every channel, their whole message history, who has served them, and
//! which messages carry a media object (who may open it).

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{conversation_transitions as transitions, conversations, messages};
use super::{Store, StoreError};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};

/// Conversations listed in a customer panel.
pub const PANEL_CONVERSATIONS: u64 = 200;

/// Where a media object was sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaUse {
    pub conversation: Option<ConversationId>,
    pub customer: Option<CustomerId>,
}

impl Store {
    /// The customer's conversations on every account, newest first.
    pub async fn customer_conversations(
        &self,
        customer: CustomerId,
    ) -> Result<Vec<conversations::Model>, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::CustomerId.eq(customer.0))
            .order_by_desc(conversations::Column::Id)
            .limit(PANEL_CONVERSATIONS)
            .all(self.conn())
            .await?)
    }

    /// A page of everything said with the customer on every channel,
    /// oldest first: the latest `limit`, or the `limit` before `before`.
    pub async fn customer_messages(
        &self,
        customer: CustomerId,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<Vec<messages::Model>, StoreError> {
        self.message_page(messages::Column::CustomerId.eq(customer.0), before, limit)
            .await
    }

    /// Every agent who holds or held one of the customer's conversations.
    pub async fn agents_who_served(
        &self,
        customer: CustomerId,
    ) -> Result<Vec<AgentId>, StoreError> {
        let convs: Vec<i64> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .filter(conversations::Column::CustomerId.eq(customer.0))
            .into_tuple()
            .all(self.conn())
            .await?;
        let mut out = BTreeSet::new();
        for chunk in convs.chunks(500) {
            let agents: Vec<Option<i64>> = transitions::Entity::find()
                .select_only()
                .column(transitions::Column::AgentId)
                .distinct()
                .filter(transitions::Column::ConversationId.is_in(chunk.to_vec()))
                .filter(transitions::Column::AgentId.is_not_null())
                .into_tuple()
                .all(self.conn())
                .await?;
            out.extend(agents.into_iter().flatten());
        }
        Ok(out.into_iter().map(AgentId).collect())
    }

    /// Who last held each of these conversations (its last transition to
    /// `assigned`), in one query per 500.
    pub async fn last_agents_of(
        &self,
        conversations: &[i64],
    ) -> Result<HashMap<i64, AgentId>, StoreError> {
        let mut out = HashMap::new();
        for chunk in conversations.chunks(500) {
            let rows: Vec<(i64, Option<i64>)> = transitions::Entity::find()
                .select_only()
                .column(transitions::Column::ConversationId)
                .column(transitions::Column::AgentId)
                .filter(transitions::Column::ConversationId.is_in(chunk.to_vec()))
                .filter(transitions::Column::ToState.eq(super::conversations::ASSIGNED_STATE))
                .order_by_asc(transitions::Column::Id)
                .into_tuple()
                .all(self.conn())
                .await?;
            // Oldest first: the last one stays.
            out.extend(
                rows.into_iter()
                    .filter_map(|(c, a)| a.map(|a| (c, AgentId(a)))),
            );
        }
        Ok(out)
    }

    /// Whether `agent` sent the media object, or serves a conversation it
    /// was sent or received in: enough to open it, however many other
    /// conversations share the same content.
    pub async fn media_sent_or_served_by(
        &self,
        media_object: i64,
        agent: AgentId,
    ) -> Result<bool, StoreError> {
        use sea_orm::PaginatorTrait;
        use sea_orm::sea_query::Query;
        let sent = messages::Entity::find()
            .filter(messages::Column::MediaObjectId.eq(media_object))
            .filter(messages::Column::AgentId.eq(agent.0))
            .count(self.conn())
            .await?;
        if sent > 0 {
            return Ok(true);
        }
        let served: Vec<i64> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .filter(conversations::Column::AgentId.eq(agent.0))
            .filter(
                conversations::Column::Id.in_subquery(
                    Query::select()
                        .column(messages::Column::ConversationId)
                        .from(messages::Entity)
                        .and_where(messages::Column::MediaObjectId.eq(media_object))
                        .to_owned(),
                ),
            )
            .limit(1)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(!served.is_empty())
    }

    /// The messages that carry the media object (a few are enough to
    /// decide who may open it).
    pub async fn media_uses(&self, media_object: i64) -> Result<Vec<MediaUse>, StoreError> {
        let rows: Vec<(Option<i64>, Option<i64>)> = messages::Entity::find()
            .select_only()
            .column(messages::Column::ConversationId)
            .column(messages::Column::CustomerId)
            .filter(messages::Column::MediaObjectId.eq(media_object))
            .limit(20)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(c, u)| MediaUse {
                conversation: c.map(ConversationId),
                customer: u.map(CustomerId),
            })
            .collect())
    }

    /// Whether a web visitor may open a stored file: a message of their
    /// customer's (theirs or to them) carries it, or one they sent as
    /// `sender` on `account` (before the pipeline files it).
    pub async fn media_seen_by_visitor(
        &self,
        media_object: i64,
        customer: Option<CustomerId>,
        account: &AccountId,
        sender: &str,
    ) -> Result<bool, StoreError> {
        use sea_orm::Condition;
        let theirs = Condition::all()
            .add(messages::Column::AccountId.eq(account.as_str()))
            .add(messages::Column::Sender.eq(sender))
            .add(messages::Column::Direction.eq("in"));
        let mut who = Condition::any().add(theirs);
        if let Some(c) = customer {
            who = who.add(messages::Column::CustomerId.eq(c.0));
        }
        let found = messages::Entity::find()
            .select_only()
            .column(messages::Column::Id)
            .filter(messages::Column::MediaObjectId.eq(media_object))
            .filter(who)
            .limit(1)
            .into_tuple::<i64>()
            .one(self.conn())
            .await?;
        Ok(found.is_some())
    }
}
