//! Console sign-in: server-side sessions and the failed-login record behind
//! the lock-out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    /// SHA-256 (hex) of the token in the cookie; the token itself is never stored.
    Id,
    AgentId,
    CsrfToken,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Id,
    /// SHA-256 (hex) of the normalised login typed, known or not.
    LoginKey,
    FailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string_len(Sessions::Id, 64).primary_key())
                .col(big_integer(Sessions::AgentId))
                .col(string_len(Sessions::CsrfToken, 64))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(string_len_null(Sessions::Ip, 64))
                .col(string_len_null(Sessions::UserAgent, 512))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sessions_agent")
                        .from(Sessions::Table, Sessions::AgentId)
                        .to(Agents::Table, Agents::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sessions_agent")
                .table(Sessions::Table)
                .col(Sessions::AgentId)
                .if_not_exists()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sessions_expires")
                .table(Sessions::Table)
                .col(Sessions::ExpiresAt)
                .if_not_exists()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LoginFailures::Table)
                .if_not_exists()
                .col(big_pk_auto(LoginFailures::Id))
                .col(string_len(LoginFailures::LoginKey, 64))
                .col(timestamp_with_time_zone(LoginFailures::FailedAt))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_login_failures_key_time")
                .table(LoginFailures::Table)
                .col(LoginFailures::LoginKey)
                .col(LoginFailures::FailedAt)
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(LoginFailures::Table).if_exists().take())
            .await?;
        m.drop_table(Table::drop().table(Sessions::Table).if_exists().take())
            .await
    }
}
