//! How far a customer has read their conversation (web chat visitors tell
//! it; WeChat does not): the agent's console marks their messages read.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CustomerReads {
    Table,
    ConversationId,
    /// The highest message id of the conversation the customer has seen.
    LastReadMessageId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CustomerReads::Table)
                .if_not_exists()
                .col(big_integer(CustomerReads::ConversationId).primary_key())
                .col(big_integer(CustomerReads::LastReadMessageId))
                .col(timestamp_with_time_zone(CustomerReads::UpdatedAt))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CustomerReads::Table).if_exists().take())
            .await
    }
}
