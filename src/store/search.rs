//! The history search's storage: the word index the indexer fills, its
//! cursor, and the scoped search itself (see `src/search/`).
//!
//! Who sees what is the customer panel's rule ([`customer_for`]), written
//! as SQL so it filters inside the search: admins every message; an agent
//! the messages of customers they are the dedicated agent of or served; a
//! supervisor also those of their groups' customers and of customers their
//! groups' agents serve or served.
//!
//! [`customer_for`]: crate::console::customer_api::customer_for

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, Statement, TransactionTrait,
    Value,
};

use super::entities::messages;
use super::{Store, StoreError, placeholders};
use crate::ids::{AgentId, CustomerId, GroupId, MessageId};
use crate::search::Term;

/// The message index's cursor name.
const MESSAGES: &str = "messages";

/// Whose messages a search may return.
#[derive(Debug, Clone, Copy)]
pub enum SearchScope<'a> {
    All,
    Agent(AgentId),
    Supervisor { me: AgentId, groups: &'a [GroupId] },
}

/// One search: words (all required) and filters, newest first.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    pub terms: &'a [Term],
    pub scope: SearchScope<'a>,
    pub customer: Option<CustomerId>,
    /// Messages of the conversations this agent held.
    pub agent: Option<AgentId>,
    pub channel: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<MessageId>,
    pub limit: u64,
}

/// A message to index: its id and words.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub id: i64,
    pub terms: String,
}

#[derive(FromQueryResult)]
struct Cursor {
    last_id: i64,
}

#[derive(FromQueryResult)]
struct Text {
    id: i64,
    msg_type: String,
    content: Option<String>,
}

impl Store {
    /// The last message id the index holds everything up to.
    pub async fn index_cursor(&self) -> Result<i64, StoreError> {
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(
                self.backend(),
                "SELECT last_id FROM index_cursors WHERE name = ?",
            ),
            [MESSAGES.into()],
        );
        Ok(Cursor::find_by_statement(stmt)
            .one(self.conn())
            .await?
            .map_or(0, |c| c.last_id))
    }

    /// The newest message id (0 without messages).
    pub async fn last_message_id(&self) -> Result<i64, StoreError> {
        let stmt = Statement::from_string(
            self.backend(),
            "SELECT COALESCE(MAX(id), 0) AS last_id FROM messages",
        );
        Ok(Cursor::find_by_statement(stmt)
            .one(self.conn())
            .await?
            .map_or(0, |c| c.last_id))
    }

    /// Messages after `after`, oldest first, with their searchable text
    /// (events have none).
    pub async fn texts_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        self.texts(
            "SELECT id, msg_type, content FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            vec![after.into(), (limit as i64).into()],
        )
        .await
    }

    /// PostgreSQL: messages up to `upto` (and after `upto - window`) that
    /// are not indexed. A transaction that took its id before another's
    /// but committed after it is behind the cursor when it appears.
    pub async fn texts_missed(
        &self,
        upto: i64,
        window: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        if self.backend() != DatabaseBackend::Postgres || upto == 0 {
            return Ok(Vec::new());
        }
        self.texts(
            "SELECT m.id, m.msg_type, m.content FROM messages m WHERE m.id > ? AND m.id <= ? \
             AND NOT EXISTS (SELECT 1 FROM message_terms t WHERE t.message_id = m.id) \
             ORDER BY m.id LIMIT ?",
            vec![(upto - window).into(), upto.into(), (limit as i64).into()],
        )
        .await
    }

    async fn texts(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(self.backend(), sql),
            values,
        );
        Ok(Text::find_by_statement(stmt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|t| (t.id, t.content.filter(|_| t.msg_type != "event")))
            .collect())
    }

    /// Stores the words of these messages and moves the cursor to
    /// `cursor` (never back), in one transaction.
    pub async fn write_index(&self, rows: &[IndexRow], cursor: i64) -> Result<(), StoreError> {
        let backend = self.backend();
        let txn = self.writer().begin().await?;
        for chunk in rows.chunks(400) {
            let (sql, values) = match backend {
                DatabaseBackend::Postgres => {
                    // Every message gets a row, empty or not, so the
                    // late-commit check does not read it again.
                    let mut values = Vec::with_capacity(chunk.len() * 2);
                    let tuples: Vec<&str> = chunk
                        .iter()
                        .map(|r| {
                            values.push(r.id.into());
                            values.push(r.terms.clone().into());
                            "(?, to_tsvector('simple', ?))"
                        })
                        .collect();
                    (
                        format!(
                            "INSERT INTO message_terms (message_id, terms) VALUES {} \
                             ON CONFLICT (message_id) DO NOTHING",
                            tuples.join(", ")
                        ),
                        values,
                    )
                }
                _ => {
                    let mut values = Vec::with_capacity(chunk.len() * 2);
                    let tuples: Vec<&str> = chunk
                        .iter()
                        .filter(|r| !r.terms.is_empty())
                        .map(|r| {
                            values.push(r.id.into());
                            values.push(r.terms.clone().into());
                            "(?, ?)"
                        })
                        .collect();
                    if tuples.is_empty() {
                        continue;
                    }
                    (
                        format!(
                            "INSERT INTO message_fts (rowid, terms) VALUES {}",
                            tuples.join(", ")
                        ),
                        values,
                    )
                }
            };
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                placeholders(backend, &sql),
                values,
            ))
            .await?;
        }
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                "INSERT INTO index_cursors (name, last_id) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET last_id = CASE \
                   WHEN excluded.last_id > index_cursors.last_id THEN excluded.last_id \
                   ELSE index_cursors.last_id END",
            ),
            [MESSAGES.into(), cursor.into()],
        ))
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The messages that match, newest first.
    pub async fn search_messages(
        &self,
        q: &SearchQuery<'_>,
    ) -> Result<Vec<messages::Model>, StoreError> {
        let backend = self.backend();
        let (sql, values) = search_sql(backend, q);
        Ok(messages::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                placeholders(backend, &sql),
                values,
            ))
            .all(self.conn())
            .await?)
    }
}

/// The search as SQL with `?` placeholders and its values.
fn search_sql(backend: DatabaseBackend, q: &SearchQuery<'_>) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = Vec::new();
    let mut sql = String::from("SELECT m.* FROM ");
    let mut order = "m.id";
    if q.terms.is_empty() {
        sql.push_str("messages m WHERE 1 = 1");
    } else if backend == DatabaseBackend::Postgres {
        sql.push_str(
            "message_terms t JOIN messages m ON m.id = t.message_id \
             WHERE t.terms @@ to_tsquery('simple', ?)",
        );
        values.push(crate::search::tsquery(q.terms).into());
        order = "t.message_id";
    } else {
        // CROSS JOIN keeps the word index the outer loop, read newest first.
        sql.push_str(
            "message_fts CROSS JOIN messages m ON m.id = message_fts.rowid \
             WHERE message_fts MATCH ?",
        );
        values.push(crate::search::fts5_match(q.terms).into());
        order = "message_fts.rowid";
    }
    if let Some(b) = q.before {
        sql.push_str(&format!(" AND {order} < ?"));
        values.push(b.0.into());
    }
    if let Some(c) = q.customer {
        sql.push_str(" AND m.customer_id = ?");
        values.push(c.0.into());
    }
    if let Some(ch) = q.channel {
        sql.push_str(" AND m.channel = ?");
        values.push(ch.into());
    }
    if let Some(f) = q.from {
        sql.push_str(" AND m.sent_at >= ?");
        values.push(f.into());
    }
    if let Some(t) = q.to {
        sql.push_str(" AND m.sent_at < ?");
        values.push(t.into());
    }
    if let Some(a) = q.agent {
        sql.push_str(
            " AND m.conversation_id IN \
             (SELECT conversation_id FROM conversation_transitions WHERE agent_id = ?)",
        );
        values.push(a.0.into());
    }
    match q.scope {
        SearchScope::All => {}
        SearchScope::Agent(me) => {
            sql.push_str(
                " AND m.customer_id IN (SELECT id FROM customers WHERE dedicated_agent_id = ? \
                 UNION SELECT c.customer_id FROM conversation_transitions s \
                 JOIN conversations c ON c.id = s.conversation_id WHERE s.agent_id = ?)",
            );
            values.push(me.0.into());
            values.push(me.0.into());
        }
        SearchScope::Supervisor { me, groups } => {
            // Their groups' customers, and customers that they or their
            // groups' agents are dedicated to or served.
            let marks = vec!["?"; groups.len()].join(", ");
            let or_member = |col: &str| {
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(
                        " OR {col} IN (SELECT agent_id FROM group_members WHERE group_id IN ({marks}))"
                    )
                }
            };
            let in_groups = if groups.is_empty() {
                String::new()
            } else {
                format!(" OR city_group_id IN ({marks})")
            };
            sql.push_str(&format!(
                " AND m.customer_id IN (SELECT id FROM customers WHERE dedicated_agent_id = ?\
                 {in_groups}{} UNION SELECT c.customer_id FROM conversation_transitions s \
                 JOIN conversations c ON c.id = s.conversation_id WHERE s.agent_id = ?{})",
                or_member("dedicated_agent_id"),
                or_member("s.agent_id"),
            ));
            let group_values = || groups.iter().map(|g| Value::from(g.0));
            values.push(me.0.into());
            values.extend(group_values());
            values.extend(group_values());
            values.push(me.0.into());
            values.extend(group_values());
        }
    }
    sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ?"));
    values.push((q.limit as i64).into());
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(terms: &'a [Term], scope: SearchScope<'a>) -> SearchQuery<'a> {
        SearchQuery {
            terms,
            scope,
            customer: None,
            agent: None,
            channel: None,
            from: None,
            to: None,
            before: None,
            limit: 50,
        }
    }

    #[test]
    fn every_placeholder_has_its_value() {
        let terms = crate::search::query_terms("退款");
        let groups = [GroupId(1), GroupId(2)];
        for scope in [
            SearchScope::All,
            SearchScope::Agent(AgentId(7)),
            SearchScope::Supervisor {
                me: AgentId(7),
                groups: &groups,
            },
            SearchScope::Supervisor {
                me: AgentId(7),
                groups: &[],
            },
        ] {
            for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
                let mut q = query(&terms, scope);
                q.customer = Some(CustomerId(3));
                q.agent = Some(AgentId(4));
                q.channel = Some("oa");
                q.from = Some(Utc::now());
                q.to = Some(Utc::now());
                q.before = Some(MessageId(99));
                let (sql, values) = search_sql(backend, &q);
                assert_eq!(sql.matches('?').count(), values.len(), "{sql}");
                assert!(!sql.contains("{}"), "{sql}");
            }
        }
    }

    #[test]
    fn without_words_the_messages_table_is_read_alone() {
        let (sql, _) = search_sql(DatabaseBackend::Sqlite, &query(&[], SearchScope::All));
        assert!(!sql.contains("message_fts"), "{sql}");
        assert!(sql.ends_with("ORDER BY m.id DESC LIMIT ?"), "{sql}");
    }
}
