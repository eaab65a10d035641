//! Leave-a-message tickets: opened when nobody is on duty (one unresolved
//! ticket per customer and account; later requests add to it), worked by
//! agents and supervisors. Every change is kept in `ticket_events`: who,
//! when, what kind, and a note.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::entities::{ticket_events, tickets};
use super::{Store, StoreError};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, GroupId};

/// Ticket statuses, as stored and shown.
pub mod status {
    /// Waiting for someone to take it up.
    pub const OPEN: &str = "open";
    /// Taken up, waiting (for the customer, for information…).
    pub const PENDING: &str = "pending";
    /// Done.
    pub const RESOLVED: &str = "resolved";

    /// The stored spelling of a status given by a client.
    pub fn parse(s: &str) -> Option<&'static str> {
        match s {
            "open" => Some(OPEN),
            "pending" => Some(PENDING),
            "resolved" => Some(RESOLVED),
            _ => None,
        }
    }
}

/// Kinds of ticket events.
pub mod kind {
    /// The ticket was opened (the note: the customer's message).
    pub const OPENED: &str = "opened";
    /// The customer asked again while it was unresolved (the note: their
    /// message).
    pub const MESSAGE: &str = "message";
    /// The status changed (the note: `open → pending`).
    pub const STATUS: &str = "status";
    /// The assignee changed (the note: `agent 3 → agent 5`).
    pub const ASSIGNED: &str = "assigned";
    /// Someone wrote a note.
    pub const NOTE: &str = "note";
}

/// A ticket to open (or to add to the customer's unresolved one).
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub customer: CustomerId,
    pub conversation: ConversationId,
    pub account: &'a AccountId,
    pub assignee: Option<AgentId>,
    pub group: Option<GroupId>,
    /// The customer's message, already shortened.
    pub summary: &'a str,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
}

/// Which tickets to list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<&'static str>,
    /// Only tickets assigned to this agent or to one of these groups
    /// (agents); `None`: every ticket (supervisors).
    pub visible_to: Option<(AgentId, Vec<GroupId>)>,
    /// Tickets with a smaller id than this (the next page).
    pub before: Option<i64>,
    pub limit: u64,
}

/// A change to a ticket; `None` fields stay as they are.
#[derive(Debug, Clone)]
pub struct TicketChange<'a> {
    pub status: Option<&'static str>,
    pub assignee: Option<AgentId>,
    pub note: Option<&'a str>,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Opens a ticket, or adds the request to the customer's unresolved
    /// ticket on the account (an event; a pending ticket opens again).
    /// Returns the ticket and whether it was created here.
    pub async fn open_ticket(
        &self,
        t: &NewTicket<'_>,
    ) -> Result<(tickets::Model, bool), StoreError> {
        // A ticket created concurrently (another instance) shows as a
        // duplicate of the unique index; the second try adds to it.
        match self.open_ticket_once(t).await {
            Err(StoreError::Duplicate) => self.open_ticket_once(t).await,
            other => other,
        }
    }

    async fn open_ticket_once(
        &self,
        t: &NewTicket<'_>,
    ) -> Result<(tickets::Model, bool), StoreError> {
        let txn = self.writer().begin().await?;
        match open_ticket_in(&txn, t).await {
            Ok(done) => {
                txn.commit().await?;
                Ok(done)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    /// One ticket by id.
    pub async fn ticket(&self, id: i64) -> Result<tickets::Model, StoreError> {
        tickets::Entity::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// A ticket's history, oldest first.
    pub async fn ticket_events(&self, id: i64) -> Result<Vec<ticket_events::Model>, StoreError> {
        Ok(ticket_events::Entity::find()
            .filter(ticket_events::Column::TicketId.eq(id))
            .order_by_asc(ticket_events::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// Tickets, newest first.
    pub async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<tickets::Model>, StoreError> {
        let mut q = tickets::Entity::find();
        if let Some(s) = f.status {
            q = q.filter(tickets::Column::Status.eq(s));
        }
        if let Some((agent, groups)) = &f.visible_to {
            let mut mine = Condition::any().add(tickets::Column::AssigneeAgentId.eq(agent.0));
            if !groups.is_empty() {
                mine = mine.add(tickets::Column::GroupId.is_in(groups.iter().map(|g| g.0)));
            }
            q = q.filter(mine);
        }
        if let Some(b) = f.before {
            q = q.filter(tickets::Column::Id.lt(b));
        }
        Ok(q.order_by_desc(tickets::Column::Id)
            .limit(f.limit)
            .all(self.conn())
            .await?)
    }

    /// Applies a change to the ticket as the caller `seen` it (its status,
    /// assignee and group, on which the caller checked the user's rights),
    /// recording an event for each part that changed; the ticket after.
    /// `None` when it changed meanwhile; [`StoreError::Duplicate`] when
    /// reopening it would give the customer two unresolved tickets.
    pub async fn update_ticket(
        &self,
        seen: &tickets::Model,
        c: &TicketChange<'_>,
    ) -> Result<Option<tickets::Model>, StoreError> {
        let txn = self.writer().begin().await?;
        let mut update = tickets::Entity::update_many()
            .col_expr(tickets::Column::UpdatedAt, Expr::value(c.at))
            .filter(tickets::Column::Id.eq(seen.id))
            .filter(tickets::Column::Status.eq(seen.status.as_str()))
            .filter(match seen.assignee_agent_id {
                Some(a) => tickets::Column::AssigneeAgentId.eq(a),
                None => tickets::Column::AssigneeAgentId.is_null(),
            })
            .filter(match seen.group_id {
                Some(g) => tickets::Column::GroupId.eq(g),
                None => tickets::Column::GroupId.is_null(),
            });
        let mut events: Vec<(&str, String)> = Vec::new();
        if let Some(s) = c.status
            && s != seen.status
        {
            update = update.col_expr(tickets::Column::Status, Expr::value(s));
            let resolved_at = (s == status::RESOLVED).then_some(c.at);
            update = update.col_expr(tickets::Column::ResolvedAt, Expr::value(resolved_at));
            events.push((kind::STATUS, format!("{} → {s}", seen.status)));
        }
        if let Some(a) = c.assignee
            && Some(a.0) != seen.assignee_agent_id
        {
            update = update.col_expr(tickets::Column::AssigneeAgentId, Expr::value(a.0));
            let was = seen
                .assignee_agent_id
                .map_or_else(|| "—".to_owned(), |w| format!("agent {w}"));
            events.push((kind::ASSIGNED, format!("{was} → agent {a}")));
        }
        if let Some(n) = c.note.map(str::trim).filter(|n| !n.is_empty()) {
            events.push((kind::NOTE, n.to_owned()));
        }
        let done = match update.exec(&txn).await {
            Ok(r) => r.rows_affected == 1,
            Err(e) => {
                let _ = txn.rollback().await;
                return Err(StoreError::from_insert(e));
            }
        };
        if !done {
            let _ = txn.rollback().await;
            return Ok(None);
        }
        for (k, note) in &events {
            event_in(&txn, seen.id, c.actor, k, note, c.at).await?;
        }
        let row = tickets::Entity::find_by_id(seen.id)
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        txn.commit().await?;
        Ok(Some(row))
    }

    /// The customer's tickets on every account, newest first (the console's
    /// customer view, and tests).
    pub async fn tickets_of_customer(
        &self,
        customer: CustomerId,
    ) -> Result<Vec<tickets::Model>, StoreError> {
        Ok(tickets::Entity::find()
            .filter(tickets::Column::CustomerId.eq(customer.0))
            .order_by_desc(tickets::Column::Id)
            .all(self.conn())
            .await?)
    }
}

async fn event_in(
    txn: &DatabaseTransaction,
    ticket: i64,
    actor: &str,
    kind: &str,
    note: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    ticket_events::ActiveModel {
        ticket_id: Set(ticket),
        at: Set(at),
        actor: Set(actor.chars().take(64).collect()),
        kind: Set(kind.to_owned()),
        note: Set(note.to_owned()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// [`Store::open_ticket`]'s work inside a caller's transaction (the group
/// commit runs it under a savepoint).
pub(crate) async fn open_ticket_in(
    txn: &sea_orm::DatabaseTransaction,
    t: &NewTicket<'_>,
) -> Result<(tickets::Model, bool), StoreError> {
    let existing = tickets::Entity::find()
        .filter(tickets::Column::CustomerId.eq(t.customer.0))
        .filter(tickets::Column::AccountId.eq(t.account.as_str()))
        .filter(tickets::Column::Status.ne(status::RESOLVED))
        .one(txn)
        .await?;
    if let Some(found) = existing {
        event_in(txn, found.id, t.actor, kind::MESSAGE, t.summary, t.at).await?;
        let mut update = tickets::Entity::update_many()
            .col_expr(tickets::Column::UpdatedAt, Expr::value(t.at))
            .filter(tickets::Column::Id.eq(found.id));
        if found.status == status::PENDING {
            // The customer asked again: someone should look again.
            update = update.col_expr(tickets::Column::Status, Expr::value(status::OPEN));
            let note = format!("{} → {}", status::PENDING, status::OPEN);
            event_in(txn, found.id, t.actor, kind::STATUS, &note, t.at).await?;
        }
        update.exec(txn).await?;
        let row = tickets::Entity::find_by_id(found.id)
            .one(txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Ok((row, false));
    }
    let created = tickets::ActiveModel {
        customer_id: Set(t.customer.0),
        conversation_id: Set(Some(t.conversation.0)),
        account_id: Set(t.account.to_string()),
        status: Set(status::OPEN.to_owned()),
        assignee_agent_id: Set(t.assignee.map(|a| a.0)),
        group_id: Set(t.group.map(|g| g.0)),
        summary: Set(t.summary.to_owned()),
        created_at: Set(t.at),
        updated_at: Set(t.at),
        resolved_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await;
    let row = match created {
        Ok(row) => row,
        Err(e) => return Err(StoreError::from_insert(e)),
    };
    event_in(txn, row.id, t.actor, kind::OPENED, t.summary, t.at).await?;
    Ok((row, true))
}
