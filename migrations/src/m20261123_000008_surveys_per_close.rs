//! A satisfaction survey per close, not per conversation; indexes for the
//! timeouts worker and the ticket lists; at most one unresolved ticket per
//! customer and account.
//!
//! A closed conversation is reopened by the customer's next message, so one
//! conversation is served (and closed, and surveyed) many times: migration
//! 000007 made `surveys.conversation_id` unique, which would refuse every
//! survey after the first. SQLite cannot drop a column's UNIQUE constraint,
//! so the table is made again; nothing wrote surveys before this migration
//! (the survey shipped with it), so nothing is lost.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    State,
    AwaitingReplySince,
    LastCustomerAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    AssigneeAgentId,
    GroupId,
    Status,
}

#[derive(DeriveIden)]
enum Surveys {
    Table,
    Id,
    ConversationId,
    CustomerId,
    AgentId,
    SentAt,
    AnsweredAt,
    Score,
    Comment,
}

/// One open or pending ticket per customer and account: a second "nobody on
/// duty" adds to it, even when two instances open one at once. Partial
/// indexes are spelt the same on SQLite and PostgreSQL.
const UX_UNRESOLVED: &str = "CREATE UNIQUE INDEX IF NOT EXISTS ux_tickets_unresolved \
    ON tickets (customer_id, account_id) WHERE status <> 'resolved'";

fn surveys(unique_conversation: bool) -> TableCreateStatement {
    let conversation = if unique_conversation {
        big_integer_uniq(Surveys::ConversationId)
    } else {
        big_integer(Surveys::ConversationId)
    };
    Table::create()
        .table(Surveys::Table)
        .if_not_exists()
        .col(big_pk_auto(Surveys::Id))
        .col(conversation)
        .col(big_integer(Surveys::CustomerId))
        .col(big_integer_null(Surveys::AgentId))
        .col(timestamp_with_time_zone(Surveys::SentAt))
        .col(timestamp_with_time_zone_null(Surveys::AnsweredAt))
        .col(integer_null(Surveys::Score))
        .col(text_null(Surveys::Comment))
        .foreign_key(
            ForeignKey::create()
                .name("fk_surveys_conversation")
                .from(Surveys::Table, Surveys::ConversationId)
                .to(Conversations::Table, Conversations::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .take()
}

fn index(name: &str, table: impl IntoIden, cols: Vec<DynIden>) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(c);
    }
    i
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Surveys::Table).if_exists().take())
            .await?;
        m.create_table(surveys(false)).await?;
        m.create_index(index(
            "ix_surveys_conversation",
            Surveys::Table,
            vec![Surveys::ConversationId.into_iden(), Surveys::Id.into_iden()],
        ))
        .await?;
        m.create_index(index(
            "ix_surveys_customer",
            Surveys::Table,
            vec![Surveys::CustomerId.into_iden()],
        ))
        .await?;
        m.create_index(index(
            "ix_surveys_agent",
            Surveys::Table,
            vec![Surveys::AgentId.into_iden(), Surveys::SentAt.into_iden()],
        ))
        .await?;
        // The timeouts worker's two questions, asked every 30 seconds.
        m.create_index(index(
            "ix_conversations_awaiting",
            Conversations::Table,
            vec![
                Conversations::State.into_iden(),
                Conversations::AwaitingReplySince.into_iden(),
            ],
        ))
        .await?;
        m.create_index(index(
            "ix_conversations_idle",
            Conversations::Table,
            vec![
                Conversations::State.into_iden(),
                Conversations::LastCustomerAt.into_iden(),
            ],
        ))
        .await?;
        // An agent's list: their own tickets, and their groups'.
        m.create_index(index(
            "ix_tickets_assignee",
            Tickets::Table,
            vec![
                Tickets::AssigneeAgentId.into_iden(),
                Tickets::Status.into_iden(),
            ],
        ))
        .await?;
        m.create_index(index(
            "ix_tickets_group",
            Tickets::Table,
            vec![Tickets::GroupId.into_iden(), Tickets::Status.into_iden()],
        ))
        .await?;
        m.get_connection().execute_unprepared(UX_UNRESOLVED).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ux_tickets_unresolved")
            .await?;
        for (name, table) in [
            ("ix_tickets_group", Tickets::Table.into_iden()),
            ("ix_tickets_assignee", Tickets::Table.into_iden()),
            ("ix_conversations_idle", Conversations::Table.into_iden()),
            (
                "ix_conversations_awaiting",
                Conversations::Table.into_iden(),
            ),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        // Back to 000007's shape, empty: its UNIQUE constraint cannot hold a
        // conversation's several surveys.
        m.drop_table(Table::drop().table(Surveys::Table).if_exists().take())
            .await?;
        m.create_table(surveys(true)).await?;
        m.create_index(index(
            "ix_surveys_customer",
            Surveys::Table,
            vec![Surveys::CustomerId.into_iden()],
        ))
        .await
    }
}
