//! Routing's data: shifts, the region → city group map, the queue and reply
//! clocks on conversations, agents' presence heartbeat, leave-a-message
//! tickets with their history, and satisfaction surveys.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    /// When it entered its queue (its place in line).
    QueuedAt,
    /// The queue it waits in (`None`: the global queue).
    QueueGroupId,
    /// The oldest customer message no agent has answered yet.
    AwaitingReplySince,
    /// The customer's last message (auto-close clock).
    LastCustomerAt,
    /// When it was last offered to another agent after a reply timeout.
    ReofferedAt,
    /// WeCom kf: the kf account the customer writes to (replies need it).
    OpenKfid,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    /// The console's last heartbeat (presence expires after a grace period).
    LastSeenAt,
}

#[derive(DeriveIden)]
enum AgentShifts {
    Table,
    Id,
    AgentId,
    StartsAt,
    EndsAt,
    CrmId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RegionGroups {
    Table,
    Region,
    GroupId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Id,
    CustomerId,
    ConversationId,
    AccountId,
    Status,
    AssigneeAgentId,
    GroupId,
    Summary,
    CreatedAt,
    UpdatedAt,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum TicketEvents {
    Table,
    Id,
    TicketId,
    At,
    Actor,
    Kind,
    Note,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for col in [
            timestamp_with_time_zone_null(Conversations::QueuedAt),
            big_integer_null(Conversations::QueueGroupId),
            timestamp_with_time_zone_null(Conversations::AwaitingReplySince),
            timestamp_with_time_zone_null(Conversations::LastCustomerAt),
            timestamp_with_time_zone_null(Conversations::ReofferedAt),
            string_len_null(Conversations::OpenKfid, 64),
        ] {
            let mut col = col;
            m.alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(&mut col)
                    .take(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Agents::Table)
                .add_column(timestamp_with_time_zone_null(Agents::LastSeenAt))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_conversations_queue")
                .table(Conversations::Table)
                .col(Conversations::QueuedAt)
                .if_not_exists()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AgentShifts::Table)
                .if_not_exists()
                .col(big_pk_auto(AgentShifts::Id))
                .col(big_integer(AgentShifts::AgentId))
                .col(timestamp_with_time_zone(AgentShifts::StartsAt))
                .col(timestamp_with_time_zone(AgentShifts::EndsAt))
                .col(string_len_null(AgentShifts::CrmId, 64).unique_key())
                .col(timestamp_with_time_zone(AgentShifts::CreatedAt))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_agent_shifts_agent")
                .table(AgentShifts::Table)
                .col(AgentShifts::AgentId)
                .col(AgentShifts::EndsAt)
                .if_not_exists()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RegionGroups::Table)
                .if_not_exists()
                .col(string_len(RegionGroups::Region, 64).primary_key())
                .col(big_integer(RegionGroups::GroupId))
                .col(timestamp_with_time_zone(RegionGroups::UpdatedAt))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Tickets::Table)
                .if_not_exists()
                .col(big_pk_auto(Tickets::Id))
                .col(big_integer(Tickets::CustomerId))
                .col(big_integer_null(Tickets::ConversationId))
                .col(string_len(Tickets::AccountId, 64))
                .col(string_len(Tickets::Status, 16))
                .col(big_integer_null(Tickets::AssigneeAgentId))
                .col(big_integer_null(Tickets::GroupId))
                .col(text(Tickets::Summary))
                .col(timestamp_with_time_zone(Tickets::CreatedAt))
                .col(timestamp_with_time_zone(Tickets::UpdatedAt))
                .col(timestamp_with_time_zone_null(Tickets::ResolvedAt))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_tickets_status")
                .table(Tickets::Table)
                .col(Tickets::Status)
                .col(Tickets::Id)
                .if_not_exists()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_tickets_customer")
                .table(Tickets::Table)
                .col(Tickets::CustomerId)
                .if_not_exists()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TicketEvents::Table)
                .if_not_exists()
                .col(big_pk_auto(TicketEvents::Id))
                .col(big_integer(TicketEvents::TicketId))
                .col(timestamp_with_time_zone(TicketEvents::At))
                .col(string_len(TicketEvents::Actor, 64))
                .col(string_len(TicketEvents::Kind, 32))
                .col(text(TicketEvents::Note))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ticket_events_ticket")
                        .from(TicketEvents::Table, TicketEvents::TicketId)
                        .to(Tickets::Table, Tickets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_ticket_events_ticket")
                .table(TicketEvents::Table)
                .col(TicketEvents::TicketId)
                .col(TicketEvents::Id)
                .if_not_exists()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Surveys::Table)
                .if_not_exists()
                .col(big_pk_auto(Surveys::Id))
                .col(big_integer_uniq(Surveys::ConversationId))
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
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_surveys_customer")
                .table(Surveys::Table)
                .col(Surveys::CustomerId)
                .if_not_exists()
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Surveys::Table.into_iden(),
            TicketEvents::Table.into_iden(),
            Tickets::Table.into_iden(),
            RegionGroups::Table.into_iden(),
            AgentShifts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().take())
                .await?;
        }
        m.drop_index(
            Index::drop()
                .name("ix_conversations_queue")
                .table(Conversations::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Agents::Table)
                .drop_column(Agents::LastSeenAt)
                .take(),
        )
        .await?;
        for col in [
            Conversations::QueuedAt,
            Conversations::QueueGroupId,
            Conversations::AwaitingReplySince,
            Conversations::LastCustomerAt,
            Conversations::ReofferedAt,
            Conversations::OpenKfid,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(col)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
