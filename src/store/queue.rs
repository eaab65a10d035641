//! The queue: conversations waiting for a human, oldest first in their
//! queue — a city group's (`queue_group_id`) or the global one (`NULL`). A
//! conversation's place is its `queued_at`, ties broken by id. It is set
//! when routing leaves the conversation waiting (the `Enqueue` effect), kept
//! while it waits, and cleared when it leaves `queued`; a conversation in
//! `queued` without a place is still being routed, and no drain takes it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::conversations::QUEUED_STATE;
use super::entities::{conversation_transitions as transitions, conversations};
use super::{Store, StoreError};
use crate::ids::{ConversationId, CustomerId, GroupId};

/// A conversation's place in its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePlace {
    pub conversation: ConversationId,
    /// `None`: the global queue.
    pub group: Option<GroupId>,
    pub queued_at: DateTime<Utc>,
}

/// A waiting conversation as the supervisors' view shows it.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub conversation: conversations::Model,
    /// The reason of its last recorded transition (why it waits).
    pub why: Option<String>,
}

/// Conversations in `group`'s queue.
fn in_queue(group: Option<GroupId>) -> Condition {
    let same = match group {
        Some(g) => conversations::Column::QueueGroupId.eq(g.0),
        None => conversations::Column::QueueGroupId.is_null(),
    };
    Condition::all()
        .add(conversations::Column::State.eq(QUEUED_STATE))
        .add(conversations::Column::QueuedAt.is_not_null())
        .add(same)
}

/// Places before (`before`) or after `(at, id)` in queue order.
fn beside(at: DateTime<Utc>, id: ConversationId, before: bool) -> Condition {
    let (t, i) = if before {
        (
            conversations::Column::QueuedAt.lt(at),
            conversations::Column::Id.lt(id.0),
        )
    } else {
        (
            conversations::Column::QueuedAt.gt(at),
            conversations::Column::Id.gt(id.0),
        )
    };
    Condition::any().add(t).add(
        Condition::all()
            .add(conversations::Column::QueuedAt.eq(at))
            .add(i),
    )
}

fn place_of(row: (i64, Option<i64>, Option<DateTime<Utc>>)) -> Option<QueuePlace> {
    let (id, group, at) = row;
    Some(QueuePlace {
        conversation: ConversationId(id),
        group: group.map(GroupId),
        queued_at: at?,
    })
}

impl Store {
    /// Puts a waiting conversation in `group`'s queue (`None`: the global
    /// one). Its place (`queued_at`) is kept: moved to another group's queue
    /// by a transfer, it keeps the time it has waited.
    pub async fn set_queue_group(
        &self,
        conversation: ConversationId,
        group: Option<GroupId>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_queue_group_on(self.writer(), conversation, group, now).await
    }

    /// Gives a place (the time they last changed) to conversations left in
    /// `queued` without one since before `before`: queued before the queue
    /// kept places, or whose routing stopped half-way (a crash, an error).
    pub async fn place_unplaced_queued(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(conversations::Entity::update_many()
            .col_expr(
                conversations::Column::QueuedAt,
                Expr::col(conversations::Column::UpdatedAt),
            )
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_null())
            .filter(conversations::Column::UpdatedAt.lt(before))
            .exec(self.writer())
            .await?
            .rows_affected)
    }

    /// The conversation's place, and how many wait before it in its queue;
    /// `None` when it is not waiting.
    pub async fn queue_position(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<(QueuePlace, u64)>, StoreError> {
        let row: Option<(i64, Option<i64>, Option<DateTime<Utc>>)> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .column(conversations::Column::QueueGroupId)
            .column(conversations::Column::QueuedAt)
            .filter(conversations::Column::Id.eq(conversation.0))
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .into_tuple()
            .one(self.conn())
            .await?;
        let Some(place) = row.and_then(place_of) else {
            return Ok(None);
        };
        let ahead = self
            .queue_ahead(place.group, place.queued_at, conversation)
            .await?;
        Ok(Some((place, ahead)))
    }

    /// How many wait in `group`'s queue before the place `(at, id)`.
    pub async fn queue_ahead(
        &self,
        group: Option<GroupId>,
        at: DateTime<Utc>,
        id: ConversationId,
    ) -> Result<u64, StoreError> {
        Ok(conversations::Entity::find()
            .filter(in_queue(group))
            .filter(beside(at, id, true))
            .count(self.conn())
            .await?)
    }

    /// The first `limit` conversations waiting in `group`'s queue after the
    /// place `(at, id)`, in order.
    pub async fn queue_behind(
        &self,
        group: Option<GroupId>,
        at: DateTime<Utc>,
        id: ConversationId,
        limit: u64,
    ) -> Result<Vec<conversations::Model>, StoreError> {
        Ok(conversations::Entity::find()
            .filter(in_queue(group))
            .filter(beside(at, id, false))
            .order_by_asc(conversations::Column::QueuedAt)
            .order_by_asc(conversations::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Up to `limit` waiting conversations, oldest first, after the place
    /// `after`: those of `groups`' queues, and of the global queue when
    /// `global` (a queue drain's page).
    pub async fn queue_page(
        &self,
        groups: &[GroupId],
        global: bool,
        after: Option<(DateTime<Utc>, ConversationId)>,
        limit: u64,
    ) -> Result<Vec<QueuePlace>, StoreError> {
        let mut queues = Condition::any();
        if !groups.is_empty() {
            queues =
                queues.add(conversations::Column::QueueGroupId.is_in(groups.iter().map(|g| g.0)));
        }
        if global {
            queues = queues.add(conversations::Column::QueueGroupId.is_null());
        }
        if groups.is_empty() && !global {
            return Ok(Vec::new());
        }
        let mut q = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .column(conversations::Column::QueueGroupId)
            .column(conversations::Column::QueuedAt)
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_not_null())
            .filter(queues);
        if let Some((at, id)) = after {
            q = q.filter(beside(at, id, false));
        }
        let rows: Vec<(i64, Option<i64>, Option<DateTime<Utc>>)> = q
            .order_by_asc(conversations::Column::QueuedAt)
            .order_by_asc(conversations::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().filter_map(place_of).collect())
    }

    /// How many conversations are in `queued` without a place (being
    /// routed, or stranded).
    pub async fn unplaced_queued_count(&self) -> Result<u64, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_null())
            .count(self.conn())
            .await?)
    }

    /// How many conversations wait, in every queue.
    pub async fn queued_count(&self) -> Result<u64, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_not_null())
            .count(self.conn())
            .await?)
    }

    /// Every placed waiting conversation, queue by queue, each in order:
    /// `(conversation, customer, account, queue)`. One read gives every
    /// waiting visitor's position (the widget's hub).
    pub async fn queue_order(
        &self,
    ) -> Result<Vec<(ConversationId, CustomerId, String, Option<GroupId>)>, StoreError> {
        let rows: Vec<(i64, i64, String, Option<i64>)> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .column(conversations::Column::CustomerId)
            .column(conversations::Column::AccountId)
            .column(conversations::Column::QueueGroupId)
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_not_null())
            .order_by_asc(conversations::Column::QueueGroupId)
            .order_by_asc(conversations::Column::QueuedAt)
            .order_by_asc(conversations::Column::Id)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, customer, account, group)| {
                (
                    ConversationId(id),
                    CustomerId(customer),
                    account,
                    group.map(GroupId),
                )
            })
            .collect())
    }

    /// The first `limit` waiting conversations, oldest first, each with the
    /// reason of its last transition (the supervisors' view).
    pub async fn waiting(&self, limit: u64) -> Result<Vec<Waiting>, StoreError> {
        let rows = conversations::Entity::find()
            .filter(conversations::Column::State.eq(QUEUED_STATE))
            .filter(conversations::Column::QueuedAt.is_not_null())
            .order_by_asc(conversations::Column::QueuedAt)
            .order_by_asc(conversations::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?;
        let mut why: HashMap<i64, String> = HashMap::new();
        // One query per chunk keeps the statement's parameters few.
        for chunk in rows.chunks(500) {
            let found: Vec<(i64, String)> = transitions::Entity::find()
                .select_only()
                .column(transitions::Column::ConversationId)
                .column(transitions::Column::Reason)
                .filter(transitions::Column::ConversationId.is_in(chunk.iter().map(|c| c.id)))
                .order_by_desc(transitions::Column::Id)
                .into_tuple()
                .all(self.conn())
                .await?;
            for (conversation, reason) in found {
                why.entry(conversation).or_insert(reason);
            }
        }
        Ok(rows
            .into_iter()
            .map(|c| Waiting {
                why: why.remove(&c.id),
                conversation: c,
            })
            .collect())
    }
}

/// [`Store::set_queue_group`] on a given connection or transaction (the
/// group commit runs it inside its own).
pub(crate) async fn set_queue_group_on<C: sea_orm::ConnectionTrait>(
    db: &C,
    conversation: ConversationId,
    group: Option<GroupId>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conversations::Entity::update_many()
        .col_expr(
            conversations::Column::QueueGroupId,
            Expr::value(group.map(|g| g.0)),
        )
        .col_expr(
            conversations::Column::QueuedAt,
            Expr::col(conversations::Column::QueuedAt).if_null(now),
        )
        .filter(conversations::Column::Id.eq(conversation.0))
        .filter(conversations::Column::State.eq(QUEUED_STATE))
        .exec(db)
        .await?;
    Ok(())
}
