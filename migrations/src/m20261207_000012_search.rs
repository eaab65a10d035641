//! History search: a word index over messages (filled by the search
//! indexer, `src/search/`), its cursor, and the indexes the search's
//! access rules need (who served a conversation, whose customer it is).
//!
//! - SQLite: an FTS5 table without content; its rowid is the message id.
//! - PostgreSQL: a `tsvector` per message with a GIN index.
//!
//! Both hold jieba-segmented words separated by spaces, so the database's
//! own tokenizer only splits on spaces and folds case.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COMMON: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS index_cursors (name VARCHAR(32) PRIMARY KEY, last_id BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_transitions_agent ON conversation_transitions (agent_id, conversation_id)",
    "CREATE INDEX IF NOT EXISTS ix_customers_dedicated ON customers (dedicated_agent_id)",
    "CREATE INDEX IF NOT EXISTS ix_customers_group ON customers (city_group_id)",
];

const SQLITE: &[&str] = &["CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(\
     terms, content='', tokenize='unicode61 remove_diacritics 2')"];

const POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS message_terms (message_id BIGINT PRIMARY KEY, terms TSVECTOR NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_message_terms ON message_terms USING GIN (terms)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let own = match m.get_database_backend() {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for sql in COMMON.iter().chain(own) {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for sql in [
            "DROP TABLE IF EXISTS message_fts",
            "DROP TABLE IF EXISTS message_terms",
            "DROP TABLE IF EXISTS index_cursors",
            "DROP INDEX IF EXISTS ix_transitions_agent",
            "DROP INDEX IF EXISTS ix_customers_dedicated",
            "DROP INDEX IF EXISTS ix_customers_group",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
