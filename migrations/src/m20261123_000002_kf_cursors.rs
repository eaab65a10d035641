//! WeCom Customer Service: the `sync_msg` cursor of each kf account.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KfCursors {
    Table,
    AccountId,
    OpenKfid,
    Cursor,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(KfCursors::Table)
                .if_not_exists()
                .col(string_len(KfCursors::AccountId, 64))
                .col(string_len(KfCursors::OpenKfid, 128))
                .col(string_len(KfCursors::Cursor, 512).default(""))
                .col(
                    timestamp_with_time_zone(KfCursors::UpdatedAt)
                        .default(Expr::current_timestamp()),
                )
                .primary_key(
                    Index::create()
                        .col(KfCursors::AccountId)
                        .col(KfCursors::OpenKfid),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(KfCursors::Table).if_exists().take())
            .await
    }
}
