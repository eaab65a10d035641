//! Conversations: a customer's open conversation per account, its state
//! (changed only with an optimistic check, so two workers never apply
//! conflicting transitions), the transition record, and the link from each
//! inbound message to its customer and conversation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
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
/// The state of a conversation an agent serves.
pub const ASSIGNED_STATE: &str = "assigned";
/// The state of a conversation the robot answers.
pub const BOT_STATE: &str = "bot";

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
    /// the same transaction; the id of the transition record, or `None` when
    /// someone changed the conversation first.
    pub async fn apply_state_change(&self, c: &StateChange) -> Result<Option<i64>, StoreError> {
        let txn = self.writer().begin().await?;
        let id = write_state_change_in(&txn, c).await?;
        txn.commit().await?;
        Ok(id)
    }

    /// Records a transition that changed no state (e.g. "no agent free:
    /// queued" while already waiting); its id.
    pub async fn record_transition(&self, c: &StateChange) -> Result<i64, StoreError> {
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
            .filter(messages::Column::Channel.is_in([
                Channel::OfficialAccount.as_str(),
                Channel::WecomKf.as_str(),
                Channel::Web.as_str(),
            ]))
            // Events the pipeline acts on: the widget's handoff button.
            .filter(messages::Column::MsgType.ne("event").or(
                messages::Column::Channel.eq(Channel::Web.as_str()).and(
                    messages::Column::Content.eq(crate::conversation::pipeline::WIDGET_HANDOFF),
                ),
            ))
            .order_by_asc(messages::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    /// Assigned conversations whose oldest unanswered customer message is
    /// older than `cutoff` and which were not re-offered since that message:
    /// the reply timeouts due, by id after `after`, with their agent.
    pub async fn due_reply_timeouts(
        &self,
        cutoff: DateTime<Utc>,
        after: ConversationId,
        limit: u64,
    ) -> Result<Vec<(ConversationId, AgentId)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .column(conversations::Column::AgentId)
            .filter(reply_overdue(cutoff))
            .filter(conversations::Column::Id.gt(after.0))
            .order_by_asc(conversations::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(c, a)| Some((ConversationId(c), AgentId(a?))))
            .collect())
    }

    /// Marks a due reply timeout as re-offered at `now`, if it is still due
    /// and still `agent`'s: the claim that makes one instance, once, offer
    /// the conversation to someone else. `true` when claimed here.
    pub async fn claim_reoffer(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(conversations::Entity::update_many()
            .col_expr(conversations::Column::ReofferedAt, Expr::value(Some(now)))
            .filter(conversations::Column::Id.eq(conversation.0))
            .filter(conversations::Column::AgentId.eq(agent.0))
            .filter(reply_overdue(cutoff))
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// Conversations with the robot or an agent whose customer has not
    /// written since `cutoff` (or, never having written, opened before it):
    /// the auto-close candidates, by id after `after`. Queued ones wait.
    pub async fn idle_conversations(
        &self,
        cutoff: DateTime<Utc>,
        after: ConversationId,
        limit: u64,
    ) -> Result<Vec<ConversationId>, StoreError> {
        let ids: Vec<i64> = conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .filter(conversations::Column::State.is_in([BOT_STATE, ASSIGNED_STATE]))
            .filter(
                Condition::any()
                    .add(conversations::Column::LastCustomerAt.lt(cutoff))
                    .add(
                        Condition::all()
                            .add(conversations::Column::LastCustomerAt.is_null())
                            .add(conversations::Column::OpenedAt.lt(cutoff)),
                    ),
            )
            .filter(conversations::Column::Id.gt(after.0))
            .order_by_asc(conversations::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(ids.into_iter().map(ConversationId).collect())
    }

    /// A page of a conversation's messages (both directions), oldest first:
    /// the latest `limit`, or the `limit` before message `before`.
    pub async fn conversation_messages(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<Vec<messages::Model>, StoreError> {
        self.message_page(
            messages::Column::ConversationId.eq(conversation.0),
            before,
            limit,
        )
        .await
    }

    /// A page of the messages matching `which`, oldest first: the latest
    /// `limit`, or the `limit` before message `before`.
    pub(super) async fn message_page(
        &self,
        which: sea_orm::sea_query::SimpleExpr,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<Vec<messages::Model>, StoreError> {
        let mut q = messages::Entity::find().filter(which);
        if let Some(b) = before {
            q = q.filter(messages::Column::Id.lt(b.0));
        }
        let mut rows = q
            .order_by_desc(messages::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// The agent who last held the conversation (the last transition to
    /// `assigned`), if any: the one who served it once it is closed.
    pub async fn last_agent_of(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<AgentId>, StoreError> {
        let agent: Option<Option<i64>> = transitions::Entity::find()
            .select_only()
            .column(transitions::Column::AgentId)
            .filter(transitions::Column::ConversationId.eq(conversation.0))
            .filter(transitions::Column::ToState.eq(ASSIGNED_STATE))
            .order_by_desc(transitions::Column::Id)
            .limit(1)
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(agent.flatten().map(AgentId))
    }

    /// The customer's latest text in the conversation, if any.
    pub async fn latest_customer_text(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<String>, StoreError> {
        let text: Option<Option<String>> = messages::Entity::find()
            .select_only()
            .column(messages::Column::Content)
            .filter(messages::Column::ConversationId.eq(conversation.0))
            .filter(messages::Column::Direction.eq(Direction::In.as_str()))
            .filter(messages::Column::MsgType.eq("text"))
            .order_by_desc(messages::Column::Id)
            .limit(1)
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(text.flatten())
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

/// Inserts one transition row; its id.
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
) -> Result<i64, StoreError> {
    let row = transitions::ActiveModel {
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
    Ok(row.id)
}

/// Assigned, waiting for the agent's reply since before `cutoff`, and not
/// re-offered since the customer's message that started the wait.
fn reply_overdue(cutoff: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(conversations::Column::State.eq(ASSIGNED_STATE))
        .add(conversations::Column::AwaitingReplySince.lt(cutoff))
        .add(
            Condition::any()
                .add(conversations::Column::ReofferedAt.is_null())
                .add(ExprTrait::lt(
                    Expr::col(conversations::Column::ReofferedAt),
                    Expr::col(conversations::Column::AwaitingReplySince),
                )),
        )
}

/// Where an outbound message belongs: its recipient's customer and their
/// open conversation on the account, else their latest one (a survey sent
/// after the close). `None` for a recipient Kefu does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboundLink {
    pub customer: i64,
    pub conversation: Option<i64>,
    /// The conversation is open (not closed).
    pub open: bool,
}

/// Finds the [`OutboundLink`] of a message to `recipient` inside the
/// caller's transaction (the group commit stores outbound messages).
pub(crate) async fn outbound_link_in(
    txn: &sea_orm::DatabaseTransaction,
    account: &AccountId,
    channel: Channel,
    recipient: &str,
) -> Result<Option<OutboundLink>, StoreError> {
    use super::entities::customer_identities as ids;
    use super::followers::IdentityKind;
    let kind = match channel {
        Channel::OfficialAccount => IdentityKind::OaOpenId,
        Channel::WecomKf => IdentityKind::WecomExternalUserId,
        Channel::Web => IdentityKind::WebVisitor,
    };
    let customer: Option<i64> = ids::Entity::find()
        .select_only()
        .column(ids::Column::CustomerId)
        .filter(ids::Column::Kind.eq(kind.as_str()))
        .filter(ids::Column::AccountId.eq(account.as_str()))
        .filter(ids::Column::Value.eq(recipient))
        .into_tuple()
        .one(txn)
        .await?;
    let Some(customer) = customer else {
        return Ok(None);
    };
    let base = || {
        conversations::Entity::find()
            .select_only()
            .column(conversations::Column::Id)
            .filter(conversations::Column::CustomerId.eq(customer))
            .filter(conversations::Column::AccountId.eq(account.as_str()))
    };
    let open: Option<i64> = base()
        .filter(conversations::Column::State.ne(CLOSED_STATE))
        .into_tuple()
        .one(txn)
        .await?;
    if open.is_some() {
        return Ok(Some(OutboundLink {
            customer,
            conversation: open,
            open: true,
        }));
    }
    let latest: Option<i64> = base()
        .order_by_desc(conversations::Column::Id)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(Some(OutboundLink {
        customer,
        conversation: latest,
        open: false,
    }))
}

/// An agent answered: the conversation no longer waits for a reply (the
/// reply-timeout clock stops until the customer writes again).
pub(crate) async fn agent_replied_in(
    txn: &sea_orm::DatabaseTransaction,
    conversation: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conversations::Entity::update_many()
        .col_expr(
            conversations::Column::AwaitingReplySince,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(conversations::Column::LastMessageAt, Expr::value(at))
        .col_expr(conversations::Column::UpdatedAt, Expr::value(at))
        .filter(conversations::Column::Id.eq(conversation))
        .exec(txn)
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
                ExprTrait::if_null(Expr::col(conversations::Column::AwaitingReplySince), l.at),
            )
            .col_expr(conversations::Column::UpdatedAt, Expr::value(l.at))
            .filter(conversations::Column::Id.eq(l.conversation.0))
            .exec(txn)
            .await?;
    }
    Ok(linked)
}

/// [`Store::apply_state_change`] inside a caller's transaction (the
/// group-commit writer batches the pipeline's changes): a change from a
/// state to itself is only recorded. The update runs under a savepoint, so a
/// refused reopen (the unique index) leaves the caller's transaction usable
/// (PostgreSQL aborts a transaction on any error).
pub(crate) async fn write_state_change_in(
    outer: &sea_orm::DatabaseTransaction,
    c: &StateChange,
) -> Result<Option<i64>, StoreError> {
    if c.from == c.to {
        let id = record_in(
            outer,
            c.conversation.0,
            Some(&c.from.state),
            &c.to.state,
            c.to.agent,
            &c.reason,
            &c.actor,
            c.at,
        )
        .await?;
        return Ok(Some(id));
    }
    let txn = outer.begin().await?;
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
    // Entering `queued` gives no place yet: routing runs first, and only a
    // conversation it leaves waiting joins a queue (the `Enqueue` effect sets
    // `queued_at`), so a queue drain never takes one still being routed.
    if c.to.state != QUEUED_STATE {
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
    if c.to.state == ASSIGNED_STATE {
        // The agent's reply clock starts when they get the conversation,
        // not when the customer first wrote (maybe to the robot, or
        // while queued): else a long queue would time out every agent
        // at once. Nothing unanswered stays nothing.
        update = update.col_expr(
            conversations::Column::AwaitingReplySince,
            Expr::case(
                ExprTrait::is_null(Expr::col(conversations::Column::AwaitingReplySince)),
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .finally(Expr::value(Some(c.at)))
            .into(),
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
        return Ok(None);
    }
    let id = record_in(
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
    Ok(Some(id))
}

/// A customer's message whose customer and conversation the pipeline could
/// not find in its caches.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub kind: super::followers::IdentityKind,
    pub account: AccountId,
    /// The channel identity (openid, external_userid).
    pub value: String,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

/// What [`open_in`] found or made.
#[derive(Debug, Clone)]
pub struct Opened {
    pub customer: CustomerId,
    /// The customer's open conversation on the account, else their last
    /// closed one (to reopen), else a new one.
    pub conversation: conversations::Model,
    /// The conversation was opened here.
    pub created: bool,
}

/// Finds or creates the customer of a channel identity and finds or opens
/// their conversation, inside a caller's transaction (the group-commit
/// writer batches them: a burst of new customers costs one commit, not two
/// per customer). Creations run under savepoints: a concurrent creation
/// elsewhere (a unique index) is taken as found.
pub(crate) async fn open_in(
    txn: &sea_orm::DatabaseTransaction,
    r: &OpenRequest,
) -> Result<Opened, StoreError> {
    use super::entities::customer_identities as ids;
    let find_identity = || {
        ids::Entity::find()
            .filter(ids::Column::Kind.eq(r.kind.as_str()))
            .filter(ids::Column::AccountId.eq(r.account.as_str()))
            .filter(ids::Column::Value.eq(r.value.as_str()))
            .one(txn)
    };
    let customer = match find_identity().await? {
        Some(found) => found.customer_id,
        None => {
            let sp = txn.begin().await?;
            let customer = customers::ActiveModel {
                created_at: Set(r.at),
                updated_at: Set(r.at),
                ..Default::default()
            }
            .insert(&sp)
            .await?;
            let created = ids::ActiveModel {
                customer_id: Set(customer.id),
                kind: Set(r.kind.as_str().into()),
                account_id: Set(r.account.to_string()),
                value: Set(r.value.clone()),
                created_at: Set(r.at),
                updated_at: Set(r.at),
                ..Default::default()
            }
            .insert(&sp)
            .await;
            match created {
                Ok(_) => {
                    sp.commit().await?;
                    customer.id
                }
                Err(e) => {
                    let _ = sp.rollback().await;
                    match StoreError::from_insert(e) {
                        StoreError::Duplicate => {
                            find_identity()
                                .await?
                                .ok_or(StoreError::NotFound)?
                                .customer_id
                        }
                        other => return Err(other),
                    }
                }
            }
        }
    };
    let find_open = || {
        conversations::Entity::find()
            .filter(conversations::Column::CustomerId.eq(customer))
            .filter(conversations::Column::AccountId.eq(r.account.as_str()))
            .filter(conversations::Column::State.ne(CLOSED_STATE))
            .one(txn)
    };
    let found = |conversation| Opened {
        customer: CustomerId(customer),
        conversation,
        created: false,
    };
    if let Some(c) = find_open().await? {
        return Ok(found(c));
    }
    if let Some(c) = conversations::Entity::find()
        .filter(conversations::Column::CustomerId.eq(customer))
        .filter(conversations::Column::AccountId.eq(r.account.as_str()))
        .filter(conversations::Column::State.eq(CLOSED_STATE))
        .order_by_desc(conversations::Column::Id)
        .one(txn)
        .await?
    {
        return Ok(found(c));
    }
    let sp = txn.begin().await?;
    let created = conversations::ActiveModel {
        customer_id: Set(customer),
        account_id: Set(r.account.to_string()),
        channel: Set(r.channel.as_str().to_owned()),
        state: Set(OPENED_STATE.to_owned()),
        agent_id: Set(None),
        opened_at: Set(r.at),
        closed_at: Set(None),
        last_message_at: Set(r.at),
        created_at: Set(r.at),
        updated_at: Set(r.at),
        ..Default::default()
    }
    .insert(&sp)
    .await;
    match created {
        Ok(row) => {
            record_in(
                &sp,
                row.id,
                None,
                OPENED_STATE,
                None,
                "新会话 / new conversation",
                "customer",
                r.at,
            )
            .await?;
            sp.commit().await?;
            Ok(Opened {
                customer: CustomerId(customer),
                conversation: row,
                created: true,
            })
        }
        Err(e) => {
            let _ = sp.rollback().await;
            match StoreError::from_insert(e) {
                StoreError::Duplicate => Ok(found(find_open().await?.ok_or(StoreError::NotFound)?)),
                other => Err(other),
            }
        }
    }
}
