//! Media kept forever: the download queue of inbound media (with retries
//! and the reason a message's media could not be fetched) and the cache of
//! WeChat `media_id`s of uploaded media objects.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MediaDownloads {
    Table,
    MessageId,
    AccountId,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    Reason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MediaUploads {
    Table,
    AccountId,
    MediaObjectId,
    MediaId,
    UploadedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MediaObjects {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One row per inbound media message: pending → done | failed.
        m.create_table(
            Table::create()
                .table(MediaDownloads::Table)
                .if_not_exists()
                .col(big_integer(MediaDownloads::MessageId).primary_key())
                .col(string_len(MediaDownloads::AccountId, 64))
                .col(string_len(MediaDownloads::Status, 16))
                .col(integer(MediaDownloads::Attempts).default(0))
                .col(timestamp_with_time_zone(MediaDownloads::NextAttemptAt))
                .col(text_null(MediaDownloads::LastError))
                .col(text_null(MediaDownloads::Reason))
                .col(timestamp_with_time_zone(MediaDownloads::CreatedAt))
                .col(timestamp_with_time_zone(MediaDownloads::UpdatedAt))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_media_downloads_message")
                        .from(MediaDownloads::Table, MediaDownloads::MessageId)
                        .to(Messages::Table, Messages::Id)
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_media_downloads_due")
                .table(MediaDownloads::Table)
                .col(MediaDownloads::Status)
                .col(MediaDownloads::NextAttemptAt)
                .take(),
        )
        .await?;
        // The WeChat media_id of a stored object, per account (temporary
        // media live 3 days on WeChat).
        m.create_table(
            Table::create()
                .table(MediaUploads::Table)
                .if_not_exists()
                .col(string_len(MediaUploads::AccountId, 64))
                .col(big_integer(MediaUploads::MediaObjectId))
                .col(string_len(MediaUploads::MediaId, 255))
                .col(timestamp_with_time_zone(MediaUploads::UploadedAt))
                .primary_key(
                    Index::create()
                        .col(MediaUploads::AccountId)
                        .col(MediaUploads::MediaObjectId),
                )
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_media_uploads_object")
                        .from(MediaUploads::Table, MediaUploads::MediaObjectId)
                        .to(MediaObjects::Table, MediaObjects::Id)
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MediaUploads::Table).if_exists().take())
            .await?;
        m.drop_table(
            Table::drop()
                .table(MediaDownloads::Table)
                .if_exists()
                .take(),
        )
        .await
    }
}
