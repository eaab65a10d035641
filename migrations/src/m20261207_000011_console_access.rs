//! The console: which messages carry a media object (so `/media/{id}` can
//! check who may see it), and quick replies.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum QuickReplies {
    Table,
    Id,
    /// `NULL`: shared by everyone; else the agent's own.
    OwnerAgentId,
    Title,
    Content,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Only media messages are indexed (same SQL on SQLite and PostgreSQL).
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_messages_media ON messages (media_object_id) \
                 WHERE media_object_id IS NOT NULL",
            )
            .await?;
        m.create_table(
            Table::create()
                .table(QuickReplies::Table)
                .if_not_exists()
                .col(big_pk_auto(QuickReplies::Id))
                .col(big_integer_null(QuickReplies::OwnerAgentId))
                .col(string_len(QuickReplies::Title, 64))
                .col(text(QuickReplies::Content))
                .col(timestamp_with_time_zone(QuickReplies::CreatedAt))
                .col(timestamp_with_time_zone(QuickReplies::UpdatedAt))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_quick_replies_owner")
                .table(QuickReplies::Table)
                .col(QuickReplies::OwnerAgentId)
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(QuickReplies::Table).take())
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_messages_media")
            .await?;
        Ok(())
    }
}
