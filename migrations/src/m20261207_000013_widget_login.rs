//! The web widget's signed logins: nonces already used, kept until their
//! token expires, so a token works once (see `docs/widget-login.md`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WidgetLoginNonces {
    Table,
    /// The site's id (`wechat-config/sites/*.toml`).
    Site,
    /// The token's `nonce`, as sent.
    Nonce,
    /// The token's `exp`: after it the token is refused anyway and the row
    /// may go.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WidgetLoginNonces::Table)
                .if_not_exists()
                .col(string_len(WidgetLoginNonces::Site, 64))
                .col(string_len(WidgetLoginNonces::Nonce, 128))
                .col(timestamp_with_time_zone(WidgetLoginNonces::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(WidgetLoginNonces::Site)
                        .col(WidgetLoginNonces::Nonce),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_widget_login_nonces_expires")
                .table(WidgetLoginNonces::Table)
                .col(WidgetLoginNonces::ExpiresAt)
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(WidgetLoginNonces::Table)
                .if_exists()
                .take(),
        )
        .await
    }
}
