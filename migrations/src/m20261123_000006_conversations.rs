//! The conversation pipeline: every state change of a conversation is
//! recorded (from, to, agent, why, who, when), and a customer has at most one
//! open conversation per account.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ConversationTransitions {
    Table,
    Id,
    ConversationId,
    FromState,
    ToState,
    AgentId,
    Reason,
    Actor,
    At,
}

/// One open (not closed) conversation per customer and account: two workers
/// opening one at once cannot both succeed. Partial indexes are spelt the
/// same on SQLite and PostgreSQL.
const UX_OPEN: &str = "CREATE UNIQUE INDEX IF NOT EXISTS ux_conversations_open \
    ON conversations (customer_id, account_id) WHERE state <> 'closed'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConversationTransitions::Table)
                .if_not_exists()
                .col(big_pk_auto(ConversationTransitions::Id))
                .col(big_integer(ConversationTransitions::ConversationId))
                .col(string_len_null(ConversationTransitions::FromState, 32))
                .col(string_len(ConversationTransitions::ToState, 32))
                .col(big_integer_null(ConversationTransitions::AgentId))
                .col(text(ConversationTransitions::Reason))
                .col(string_len(ConversationTransitions::Actor, 64))
                .col(timestamp_with_time_zone(ConversationTransitions::At))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_transitions_conversation")
                        .from(
                            ConversationTransitions::Table,
                            ConversationTransitions::ConversationId,
                        )
                        .to(Conversations::Table, Conversations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_transitions_conversation")
                .table(ConversationTransitions::Table)
                .col(ConversationTransitions::ConversationId)
                .col(ConversationTransitions::Id)
                .if_not_exists()
                .take(),
        )
        .await?;
        m.get_connection().execute_unprepared(UX_OPEN).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ux_conversations_open")
            .await?;
        m.drop_table(
            Table::drop()
                .table(ConversationTransitions::Table)
                .if_exists()
                .take(),
        )
        .await
    }
}
