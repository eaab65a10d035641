//! Conversations: a customer's open conversation per account, its state
//! (changed only with an optimistic check, so two workers never apply
//! conflicting transitions), the transition record, and the link from each
//! inbound message to its customer and conversation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};

use super::entities::{
    conversation_transitions as transitions, conversations, customers, messages,
};
use super::messages::{Channel, Direction};
use super::{Store, StoreError};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};

/// The state a new conversation starts in (the robot answers).
pub const OPENED_STATE: &str = "bot";
/// The state of a conversation that is over.
pub const CLOSED_STATE: &str = "closed";
/// The state of a conversation waiting for a human.
pub const QUEUED_STATE: &str = "queued";

/// A state as stored: `bot`, `queued`, `assigned` (with its agent), `closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub state: String,
    pub agent: Option<AgentId>,
}

/// One state change to apply and record.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub conversation: ConversationId,
    /// What the caller read; the change applies only if it is still so.
    pub from: StoredState,
    pub to: StoredState,
    /// Why (the transition's reason, with routing's explanation).
    pub reason: String,
    /// Who: `customer`, `routing`, an agent's login…
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl Store {
    /// The customer's open (not closed) conversation on this account, if any.
    pub async fn open_conversation_of(
        &self,
        customer: CustomerId,
        account: &AccountId,
    ) -> Result<Option<conversations::Model>, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::CustomerId.eq(customer.0))
            .filter(conversations::Column::AccountId.eq(account.as_str()))
            .filter(conversations::Column::State.ne(CLOSED_STATE))
            .one(self.conn())
            .await?)
    }

    /// Opens a conversation in the `bot` state and records it, or returns the
    /// one someone else opened meanwhile (one open conversation per customer
    /// and account, enforced by a unique index). `true` when created here.
    pub async fn open_conversation(
        &self,
        customer: CustomerId,
        account: &AccountId,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> Result<(conversations::Model, bool), StoreError> {
        let txn = self.writer().begin().await?;
        let created = conversations::ActiveModel {
            customer_id: Set(customer.0),
            account_id: Set(account.to_string()),
            channel: Set(channel.as_str().to_owned()),
            state: Set(OPENED_STATE.to_owned()),
            agent_id: Set(None),
            opened_at: Set(now),
            closed_at: Set(None),
            last_message_at: Set(now),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        match created {
            Ok(row) => {
                record_in(
                    &txn,
                    row.id,
                    None,
                    OPENED_STATE,
                    None,
                    "新会话 / new conversation",
                    "customer",
                    now,
                )
                .await?;
                txn.commit().await?;
                Ok((row, true))
            }
            Err(e) => {
                let _ = txn.rollback().await;
                match StoreError::from_insert(e) {
                    StoreError::Duplicate => Ok((
                        self.open_conversation_of(customer, account)
                            .await?
                            .ok_or(StoreError::NotFound)?,
                        false,
                    )),
                    other => Err(other),
                }
            }
        }
    }

    /// The customer's most recently closed conversation on this account
    /// (the next message reopens it).
    pub async fn last_closed_conversation(
        &self,
        customer: CustomerId,
        account: &AccountId,
    ) -> Result<Option<conversations::Model>, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::CustomerId.eq(customer.0))
            .filter(conversations::Column::AccountId.eq(account.as_str()))
            .filter(conversations::Column::State.eq(CLOSED_STATE))
            .order_by_desc(conversations::Column::Id)
            .one(self.conn())
            .await?)
    }

    /// Keeps the WeCom kf account a conversation's customer writes to.
    pub async fn set_conversation_open_kfid(
        &self,
        conversation: ConversationId,
        open_kfid: &str,
    ) -> Result<(), StoreError> {
        conversations::Entity::update_many()
            .col_expr(
                conversations::Column::OpenKfid,
                Expr::value(open_kfid.chars().take(64).collect::<String>()),
            )
            .filter(conversations::Column::Id.eq(conversation.0))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Sets a customer's region from what they told Kefu (a city chosen from
    /// the menu, a location) unless one is known: the CRM's record comes
    /// first. `true` when set.
    pub async fn set_customer_region_if_unset(
        &self,
        customer: CustomerId,
        region: &str,
    ) -> Result<bool, StoreError> {
        Ok(customers::Entity::update_many()
            .col_expr(
                customers::Column::Region,
                Expr::value(region.chars().take(64).collect::<String>()),
            )
            .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(customers::Column::Id.eq(customer.0))
            .filter(customers::Column::Region.is_null())
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// One conversation by id.
    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<conversations::Model, StoreError> {
        conversations::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Links a message to its customer and conversation unless it is
    /// linked already (the claim that makes handling idempotent); `true`
    /// when this call linked it.
    pub async fn link_message(
        &self,
        message: MessageId,
        customer: CustomerId,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.writer().begin().await?;
        let link = MessageLink {
            message,
            customer,
            conversation,
            at,
        };
        let linked = link_message_in(&txn, &link).await?;
        txn.commit().await?;
        Ok(linked)
    }

    /// Applies a state change if the conversation is still in `from`
    /// (`UPDATE … WHERE id = ? AND state = ? AND agent_id …`), recording it in
    /// the same transaction. `false` when someone changed it first.
    pub async fn apply_state_change(&self, c: &StateChange) -> Result<bool, StoreError> {
        let txn = self.writer().begin().await?;
        let agent_was = match c.from.agent {
            Some(a) => conversations::Column::AgentId.eq(a.0),
            None => conversations::Column::AgentId.is_null(),
        };
        let mut update = conversations::Entity::update_many()
            .col_expr(
                conversations::Column::State,
                Expr::value(c.to.state.clone()),
            )
            .col_expr(
                conversations::Column::AgentId,
                Expr::value(c.to.agent.map(|a| a.0)),
            )
            .col_expr(conversations::Column::UpdatedAt, Expr::value(c.at));
        if c.to.state == CLOSED_STATE {
            update = update.col_expr(conversations::Column::ClosedAt, Expr::value(Some(c.at)));
        }
        if c.from.state == CLOSED_STATE {
            update = update.col_expr(
                conversations::Column::ClosedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        }
        if c.to.state == QUEUED_STATE && c.from.state != QUEUED_STATE {
            update = update.col_expr(conversations::Column::QueuedAt, Expr::value(Some(c.at)));
        } else if c.to.state != QUEUED_STATE {
            update = update
                .col_expr(
                    conversations::Column::QueuedAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(
                    conversations::Column::QueueGroupId,
                    Expr::value(Option::<i64>::None),
                );
        }
        let done = update
            .filter(
                Condition::all()
                    .add(conversations::Column::Id.eq(c.conversation.0))
                    .add(conversations::Column::State.eq(c.from.state.as_str()))
                    .add(agent_was),
            )
            .exec(&txn)
            .await;
        let applied = match done {
            Ok(r) => r.rows_affected == 1,
            // Reopening while another conversation of the customer is open
            // (the unique index): theirs stands.
            Err(e) => match StoreError::from_insert(e) {
                StoreError::Duplicate => false,
                other => {
                    let _ = txn.rollback().await;
                    return Err(other);
                }
            },
        };
        if !applied {
            let _ = txn.rollback().await;
            return Ok(false);
        }
        record_in(
            &txn,
            c.conversation.0,
            Some(&c.from.state),
            &c.to.state,
            c.to.agent,
            &c.reason,
            &c.actor,
            c.at,
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Records a transition that changed no state (e.g. "no agent free:
    /// queued" while already waiting).
    pub async fn record_transition(&self, c: &StateChange) -> Result<(), StoreError> {
        record_in(
            self.writer(),
            c.conversation.0,
            Some(&c.from.state),
            &c.to.state,
            c.to.agent,
            &c.reason,
            &c.actor,
            c.at,
        )
        .await
    }

    /// The recorded transitions of a conversation, oldest first.
    pub async fn transitions_of(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<transitions::Model>, StoreError> {
        Ok(transitions::Entity::find()
            .filter(transitions::Column::ConversationId.eq(conversation.0))
            .order_by_asc(transitions::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// Inbound customer messages not yet linked to a conversation, after
    /// `after` and stored since `since`, oldest first: the catch-up sweep of
    /// the pipeline.
    pub async fn unlinked_inbound(
        &self,
        after: MessageId,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<MessageId>, StoreError> {
        let ids: Vec<i64> = messages::Entity::find()
            .select_only()
            .column(messages::Column::Id)
            .filter(messages::Column::ConversationId.is_null())
            .filter(messages::Column::Id.gt(after.0))
            .filter(messages::Column::CreatedAt.gte(since))
            .filter(messages::Column::Direction.eq(Direction::In.as_str()))
            .filter(
                messages::Column::Channel
                    .is_in([Channel::OfficialAccount.as_str(), Channel::WecomKf.as_str()]),
            )
            .filter(messages::Column::MsgType.ne("event"))
            .order_by_asc(messages::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    /// One customer by id.
    pub async fn customer(&self, id: CustomerId) -> Result<customers::Model, StoreError> {
        customers::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Makes `agent` the customer's dedicated agent if they have none (the
    /// first assignment binds). `true` when bound now.
    pub async fn bind_if_unbound(
        &self,
        customer: CustomerId,
        agent: AgentId,
    ) -> Result<bool, StoreError> {
        Ok(customers::Entity::update_many()
            .col_expr(customers::Column::DedicatedAgentId, Expr::value(agent.0))
            .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(customers::Column::Id.eq(customer.0))
            .filter(customers::Column::DedicatedAgentId.is_null())
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// Moves the customer's binding from `from` to `to` (the dedicated agent
    /// left or changed group), unless it changed meanwhile.
    pub async fn rebind(
        &self,
        customer: CustomerId,
        from: AgentId,
        to: AgentId,
    ) -> Result<bool, StoreError> {
        Ok(customers::Entity::update_many()
            .col_expr(customers::Column::DedicatedAgentId, Expr::value(to.0))
            .col_expr(customers::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(customers::Column::Id.eq(customer.0))
            .filter(customers::Column::DedicatedAgentId.eq(from.0))
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }
}

/// Inserts one transition row.
#[allow(clippy::too_many_arguments)]
async fn record_in<C: sea_orm::ConnectionTrait>(
    db: &C,
    conversation: i64,
    from: Option<&str>,
    to: &str,
    agent: Option<AgentId>,
    reason: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    transitions::ActiveModel {
        conversation_id: Set(conversation),
        from_state: Set(from.map(str::to_owned)),
        to_state: Set(to.to_owned()),
        agent_id: Set(agent.map(|a| a.0)),
        reason: Set(reason.to_owned()),
        actor: Set(actor.chars().take(64).collect()),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A message to link to its customer and conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLink {
    pub message: MessageId,
    pub customer: CustomerId,
    pub conversation: ConversationId,
    pub at: DateTime<Utc>,
}

/// [`Store::link_message`] inside a caller's transaction (the group-commit
/// writer batches links with inbound messages).
pub(crate) async fn link_message_in(
    txn: &sea_orm::DatabaseTransaction,
    l: &MessageLink,
) -> Result<bool, StoreError> {
    let linked = messages::Entity::update_many()
        .col_expr(messages::Column::CustomerId, Expr::value(l.customer.0))
        .col_expr(
            messages::Column::ConversationId,
            Expr::value(l.conversation.0),
        )
        .filter(messages::Column::Id.eq(l.message.0))
        .filter(messages::Column::ConversationId.is_null())
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if linked {
        // The customer's clocks: auto-close counts from their last message,
        // the agent's reply timeout from their oldest unanswered one.
        conversations::Entity::update_many()
            .col_expr(conversations::Column::LastMessageAt, Expr::value(l.at))
            .col_expr(
                conversations::Column::LastCustomerAt,
                Expr::value(Some(l.at)),
            )
            .col_expr(
                conversations::Column::AwaitingReplySince,
                sea_orm::sea_query::ExprTrait::if_null(
                    Expr::col(conversations::Column::AwaitingReplySince),
                    l.at,
                ),
            )
            .col_expr(conversations::Column::UpdatedAt, Expr::value(l.at))
            .filter(conversations::Column::Id.eq(l.conversation.0))
            .exec(txn)
            .await?;
    }
    Ok(linked)
}
