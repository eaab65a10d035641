//! The outbox, complete: idempotency keys, the reason an agent reads when a
//! message fails, the indexes of per-customer order, and the table of the
//! 48-hour window.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    AccountId,
    Recipient,
    Id,
    IdempotencyKey,
    FailureReason,
    Status,
    SentAt,
}

#[derive(DeriveIden)]
enum ContactWindows {
    Table,
    AccountId,
    Recipient,
    LastInboundAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Outbox::Table)
                .add_column(string_len_null(Outbox::IdempotencyKey, 128))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Outbox::Table)
                .add_column(text_null(Outbox::FailureReason))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_outbox_idempotency")
                .table(Outbox::Table)
                .col(Outbox::AccountId)
                .col(Outbox::IdempotencyKey)
                .unique()
                .take(),
        )
        .await?;
        // Per-customer order, and messages sent since the customer last wrote.
        m.create_index(
            Index::create()
                .name("ix_outbox_recipient")
                .table(Outbox::Table)
                .col(Outbox::AccountId)
                .col(Outbox::Recipient)
                .col(Outbox::Status)
                .col(Outbox::Id)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_recipient_sent")
                .table(Outbox::Table)
                .col(Outbox::AccountId)
                .col(Outbox::Recipient)
                .col(Outbox::SentAt)
                .take(),
        )
        .await?;
        // A message is linked to its conversation and customer after it is
        // stored: index only linked rows, so storing a message (the hot path)
        // maintains two fewer indexes. Same SQL on SQLite and PostgreSQL.
        let db = m.get_connection();
        for (name, col) in [
            ("ix_messages_conversation", "conversation_id"),
            ("ix_messages_customer", "customer_id"),
        ] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON messages ({col}, id) WHERE {col} IS NOT NULL"
            ))
            .await?;
        }
        // When each customer last wrote (the 48-hour window): one small row
        // per customer, updated with each batch of inbound messages.
        m.create_table(
            Table::create()
                .table(ContactWindows::Table)
                .if_not_exists()
                .col(string_len(ContactWindows::AccountId, 64))
                .col(string_len(ContactWindows::Recipient, 128))
                .col(timestamp_with_time_zone(ContactWindows::LastInboundAt))
                .primary_key(
                    Index::create()
                        .col(ContactWindows::AccountId)
                        .col(ContactWindows::Recipient),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for (name, col) in [
            ("ix_messages_conversation", "conversation_id"),
            ("ix_messages_customer", "customer_id"),
        ] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
            db.execute_unprepared(&format!("CREATE INDEX {name} ON messages ({col}, id)"))
                .await?;
        }
        m.drop_table(
            Table::drop()
                .table(ContactWindows::Table)
                .if_exists()
                .take(),
        )
        .await?;
        for name in [
            "ix_outbox_recipient_sent",
            "ix_outbox_recipient",
            "ux_outbox_idempotency",
        ] {
            m.drop_index(Index::drop().name(name).to_owned()).await?;
        }
        m.alter_table(
            Table::alter()
                .table(Outbox::Table)
                .drop_column(Outbox::FailureReason)
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Outbox::Table)
                .drop_column(Outbox::IdempotencyKey)
                .take(),
        )
        .await
    }
}
