//! The outbox: every outbound message is stored (with its `messages` row)
//! before it is sent; senders claim due rows with leases.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::conversations::{OutboundLink, agent_replied_in, outbound_link_in};
use super::entities::{messages, outbox};
use super::messages::{Channel, Direction};
use super::{Store, StoreError, placeholders};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};

/// Outbox statuses, as stored and shown.
pub mod status {
    pub const QUEUED: &str = "queued";
    pub const SENT: &str = "sent";
    pub const FAILED: &str = "failed";
}

/// An outbound message to store.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub account: AccountId,
    pub channel: Channel,
    pub recipient: String,
    /// Who speaks: an agent's login, or `robot` / `system`.
    pub sender: String,
    pub agent: Option<AgentId>,
    pub msg_type: String,
    /// Display and search text.
    pub content: Option<String>,
    /// The request the sender replays (JSON).
    pub request: String,
    /// A caller's key: the same key twice stores one message.
    pub idempotency_key: Option<String>,
    /// The media store object the message carries (an agent's upload).
    pub media_object_id: Option<i64>,
}

/// The stored outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub message: MessageId,
    pub outbox_id: i64,
    /// True when the idempotency key was seen before: nothing new stored.
    pub existing: bool,
    /// The message as stored, when new and filed in a conversation.
    pub filed: Option<(ConversationId, CustomerId, crate::bus::FiledMessage)>,
}

impl Store {
    /// The outbox row stored under this idempotency key, if any.
    pub async fn outbound_by_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<outbox::Model>, StoreError> {
        outbox_by_key(self.conn(), account, key).await
    }

    /// Stores the message and its outbox row in one transaction.
    pub async fn enqueue_outbound(
        &self,
        m: &NewOutbound,
        now: DateTime<Utc>,
    ) -> Result<Enqueued, StoreError> {
        let txn = self.writer().begin().await?;
        let r = enqueue_outbound_in(&txn, m, now).await?;
        txn.commit().await?;
        Ok(r)
    }

    /// The outbox row of an outbound message.
    pub async fn outbox_of_message(&self, message: MessageId) -> Result<outbox::Model, StoreError> {
        outbox::Entity::find()
            .filter(outbox::Column::MessageId.eq(message.0))
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Leases up to `limit` due rows to `owner` until `lease_until`. Only the
    /// oldest unsent row of each recipient is due, so one customer's
    /// messages leave in order; a row leased by a crashed sender becomes due
    /// again when its lease ends. Atomic: two senders never lease one row.
    pub async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
        limit: u64,
    ) -> Result<Vec<outbox::Model>, StoreError> {
        let backend = self.backend();
        let sql = "UPDATE outbox SET lease_until = ?, leased_by = ?, updated_at = ? \
             WHERE id IN (\
               SELECT o.id FROM outbox o \
               WHERE o.status = 'queued' AND o.next_attempt_at <= ? \
                 AND (o.lease_until IS NULL OR o.lease_until < ?) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.account_id = o.account_id \
                   AND p.recipient = o.recipient AND p.status = 'queued' AND p.id < o.id) \
               ORDER BY o.id LIMIT ?) \
             AND status = 'queued' AND (lease_until IS NULL OR lease_until < ?) \
             RETURNING *";
        let values: Vec<Value> = vec![
            lease_until.into(),
            owner.into(),
            now.into(),
            now.into(),
            now.into(),
            (limit as i64).into(),
            now.into(),
        ];
        let stmt = Statement::from_sql_and_values(backend, placeholders(backend, sql), values);
        let mut rows = outbox::Entity::find()
            .from_raw_sql(stmt)
            .all(self.writer())
            .await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Records what happened to leased rows, in one transaction. Only the
    /// lease holder's records count; the result says which did.
    pub async fn record_outbox_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(i64, SendOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.writer().begin().await?;
        let mut applied = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            applied.push(record_outcome(&txn, *id, owner, now, outcome).await?);
        }
        txn.commit().await?;
        Ok(applied)
    }

    /// When the next queued row becomes due, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::Status.eq(status::QUEUED))
            .order_by_asc(outbox::Column::NextAttemptAt)
            .limit(1)
            .one(self.conn())
            .await?
            .map(|r| {
                r.lease_until
                    .map_or(r.next_attempt_at, |l| std::cmp::max(l, r.next_attempt_at))
            }))
    }

    /// When `recipient` last wrote to `account` (a message, not an event),
    /// and how many messages were sent to them since.
    pub async fn contact_window(
        &self,
        account: &AccountId,
        recipient: &str,
    ) -> Result<(Option<DateTime<Utc>>, u64), StoreError> {
        use sea_orm::{FromQueryResult, PaginatorTrait};
        #[derive(FromQueryResult)]
        struct Row {
            last_inbound_at: DateTime<Utc>,
        }
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(
                self.backend(),
                "SELECT last_inbound_at FROM contact_windows WHERE account_id = ? AND recipient = ?",
            ),
            [account.as_str().into(), recipient.into()],
        );
        let Some(last) = Row::find_by_statement(stmt).one(self.conn()).await? else {
            return Ok((None, 0));
        };
        let sent = outbox::Entity::find()
            .filter(outbox::Column::AccountId.eq(account.as_str()))
            .filter(outbox::Column::Recipient.eq(recipient))
            .filter(outbox::Column::SentAt.gt(last.last_inbound_at))
            .count(self.conn())
            .await?;
        Ok((Some(last.last_inbound_at), sent))
    }
}

async fn outbox_by_key(
    conn: &impl ConnectionTrait,
    account: &AccountId,
    key: &str,
) -> Result<Option<outbox::Model>, StoreError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::AccountId.eq(account.as_str()))
        .filter(outbox::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?)
}

/// Stores one outbound message inside a caller's transaction (the group
/// commit writer batches many). A known idempotency key stores nothing.
pub(crate) async fn enqueue_outbound_in(
    txn: &DatabaseTransaction,
    m: &NewOutbound,
    now: DateTime<Utc>,
) -> Result<Enqueued, StoreError> {
    if let Some(key) = &m.idempotency_key
        && let Some(found) = outbox_by_key(txn, &m.account, key).await?
    {
        return Ok(Enqueued {
            message: MessageId(found.message_id),
            outbox_id: found.id,
            existing: true,
            filed: None,
        });
    }
    // Linked to the customer's conversation, so its history holds what was
    // said to them too; an agent's words stop the reply-timeout clock in
    // the same commit.
    let link = outbound_link_in(txn, &m.account, m.channel, &m.recipient).await?;
    if let Some(OutboundLink {
        conversation: Some(c),
        open: true,
        ..
    }) = link
        && m.agent.is_some()
    {
        agent_replied_in(txn, c, now).await?;
    }
    let msg = messages::ActiveModel {
        account_id: Set(m.account.to_string()),
        channel: Set(m.channel.as_str().into()),
        direction: Set(Direction::Out.as_str().into()),
        conversation_id: Set(link.and_then(|l| l.conversation)),
        customer_id: Set(link.map(|l| l.customer)),
        agent_id: Set(m.agent.map(|a| a.0)),
        sender: Set(m.sender.clone()),
        msg_type: Set(m.msg_type.clone()),
        content: Set(m.content.clone()),
        media_object_id: Set(m.media_object_id),
        payload: Set(Some(m.request.clone())),
        sent_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let row = outbox::ActiveModel {
        message_id: Set(msg.id),
        account_id: Set(m.account.to_string()),
        recipient: Set(m.recipient.clone()),
        status: Set(status::QUEUED.into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        request: Set(m.request.clone()),
        idempotency_key: Set(m.idempotency_key.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let filed = match (msg.conversation_id, msg.customer_id) {
        (Some(c), Some(u)) => Some((
            ConversationId(c),
            CustomerId(u),
            crate::bus::FiledMessage::of(&msg),
        )),
        _ => None,
    };
    Ok(Enqueued {
        message: MessageId(msg.id),
        outbox_id: row.id,
        existing: false,
        filed,
    })
}

/// What one send attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        channel_msg_id: Option<String>,
    },
    Retry {
        next_at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
        reason: String,
    },
}

async fn record_outcome(
    txn: &DatabaseTransaction,
    id: i64,
    owner: &str,
    now: DateTime<Utc>,
    outcome: &SendOutcome,
) -> Result<bool, StoreError> {
    let mut update = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).add(1),
        )
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::LeasedBy.eq(owner))
        .filter(outbox::Column::Status.eq(status::QUEUED));
    update = match outcome {
        SendOutcome::Sent { .. } => update
            .col_expr(outbox::Column::Status, Expr::value(status::SENT))
            .col_expr(outbox::Column::SentAt, Expr::value(now)),
        SendOutcome::Retry { next_at, error } => update
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(*next_at))
            .col_expr(outbox::Column::LastError, Expr::value(error.clone())),
        SendOutcome::Failed { error, reason } => update
            .col_expr(outbox::Column::Status, Expr::value(status::FAILED))
            .col_expr(outbox::Column::LastError, Expr::value(error.clone()))
            .col_expr(outbox::Column::FailureReason, Expr::value(reason.clone())),
    };
    let applied = update.exec(txn).await?.rows_affected == 1;
    if applied
        && let SendOutcome::Sent {
            channel_msg_id: Some(msgid),
        } = outcome
        && let Some(row) = outbox::Entity::find_by_id(id).one(txn).await?
    {
        messages::Entity::update_many()
            .col_expr(messages::Column::ChannelMsgId, Expr::value(msgid.clone()))
            .filter(messages::Column::Id.eq(row.message_id))
            .exec(txn)
            .await?;
    }
    Ok(applied)
}
