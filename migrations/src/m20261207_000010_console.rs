//! The workbench: how far each agent has read each conversation (unread
//! counts).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConversationReads {
    Table,
    ConversationId,
    AgentId,
    /// The newest message the agent has seen.
    LastReadMessageId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConversationReads::Table)
                .if_not_exists()
                .col(big_integer(ConversationReads::ConversationId))
                .col(big_integer(ConversationReads::AgentId))
                .col(big_integer(ConversationReads::LastReadMessageId))
                .col(timestamp_with_time_zone(ConversationReads::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(ConversationReads::ConversationId)
                        .col(ConversationReads::AgentId),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConversationReads::Table).take())
            .await
    }
}
