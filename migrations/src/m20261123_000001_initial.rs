//! The first schema: accounts, customers and their channel identities, agents
//! and city groups, conversations, messages, the outbox, media objects and
//! the one-time setup tokens.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Kind,
    Name,
}

#[derive(DeriveIden)]
enum CityGroups {
    Table,
    Id,
    CrmId,
    Name,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    CrmId,
    Login,
    Name,
    Role,
    PasswordHash,
    Capacity,
    Status,
    Disabled,
    DepartedAt,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    GroupId,
    AgentId,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    CrmId,
    Name,
    Phone,
    Region,
    CityGroupId,
    DedicatedAgentId,
    Tags,
}

#[derive(DeriveIden)]
enum CustomerIdentities {
    Table,
    Id,
    CustomerId,
    Kind,
    AccountId,
    Value,
    Subscribed,
    SubscribedAt,
    UnsubscribedAt,
    Latitude,
    Longitude,
    LocationAt,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    CustomerId,
    AccountId,
    Channel,
    State,
    AgentId,
    OpenedAt,
    ClosedAt,
    LastMessageAt,
}

#[derive(DeriveIden)]
enum MediaObjects {
    Table,
    Id,
    Sha256,
    Size,
    ContentType,
    Path,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    AccountId,
    Channel,
    Direction,
    ConversationId,
    CustomerId,
    AgentId,
    Sender,
    DedupKey,
    MsgType,
    Content,
    MediaObjectId,
    Payload,
    ChannelMsgId,
    SentAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    MessageId,
    AccountId,
    Recipient,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LeasedBy,
    LastError,
    Request,
    SentAt,
}

#[derive(DeriveIden)]
enum SetupTokens {
    Table,
    TokenHash,
    ExpiresAt,
    UsedAt,
}

/// A table with `created_at` and `updated_at` as timestamps with time zone
/// (sea-orm's `table_auto` makes them zone-less on PostgreSQL).
fn table<T: IntoIden + 'static>(name: T) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(timestamp_with_time_zone(Alias::new("created_at")).default(Expr::current_timestamp()))
        .col(timestamp_with_time_zone(Alias::new("updated_at")).default(Expr::current_timestamp()))
        .take()
}

fn fk(
    name: &str,
    from: (impl IntoIden + 'static, impl IntoIden + 'static),
    to: (impl IntoIden + 'static, impl IntoIden + 'static),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            table(Accounts::Table)
                .col(string_len(Accounts::Id, 64).primary_key())
                .col(string_len(Accounts::Kind, 32))
                .col(string(Accounts::Name))
                .take(),
        )
        .await?;

        m.create_table(
            table(CityGroups::Table)
                .col(big_pk_auto(CityGroups::Id))
                .col(string_len_null(CityGroups::CrmId, 64).unique_key())
                .col(string_uniq(CityGroups::Name))
                .take(),
        )
        .await?;

        m.create_table(
            table(Agents::Table)
                .col(big_pk_auto(Agents::Id))
                .col(string_len_null(Agents::CrmId, 64).unique_key())
                .col(string_len_uniq(Agents::Login, 64))
                .col(string(Agents::Name))
                .col(string_len(Agents::Role, 16))
                .col(text_null(Agents::PasswordHash))
                .col(integer(Agents::Capacity).default(10))
                .col(string_len(Agents::Status, 16).default("offline"))
                .col(boolean(Agents::Disabled).default(false))
                .col(timestamp_with_time_zone_null(Agents::DepartedAt))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(GroupMembers::Table)
                .if_not_exists()
                .col(big_integer(GroupMembers::GroupId))
                .col(big_integer(GroupMembers::AgentId))
                .primary_key(
                    Index::create()
                        .col(GroupMembers::GroupId)
                        .col(GroupMembers::AgentId),
                )
                .foreign_key(&mut fk(
                    "fk_group_members_group",
                    (GroupMembers::Table, GroupMembers::GroupId),
                    (CityGroups::Table, CityGroups::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_group_members_agent",
                    (GroupMembers::Table, GroupMembers::AgentId),
                    (Agents::Table, Agents::Id),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
        )
        .await?;

        m.create_table(
            table(Customers::Table)
                .col(big_pk_auto(Customers::Id))
                .col(string_len_null(Customers::CrmId, 64).unique_key())
                .col(string_null(Customers::Name))
                .col(string_len_null(Customers::Phone, 32))
                .col(string_len_null(Customers::Region, 64))
                .col(big_integer_null(Customers::CityGroupId))
                .col(big_integer_null(Customers::DedicatedAgentId))
                .col(text_null(Customers::Tags))
                .foreign_key(&mut fk(
                    "fk_customers_group",
                    (Customers::Table, Customers::CityGroupId),
                    (CityGroups::Table, CityGroups::Id),
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    "fk_customers_agent",
                    (Customers::Table, Customers::DedicatedAgentId),
                    (Agents::Table, Agents::Id),
                    ForeignKeyAction::SetNull,
                ))
                .take(),
        )
        .await?;

        m.create_table(
            table(CustomerIdentities::Table)
                .col(big_pk_auto(CustomerIdentities::Id))
                .col(big_integer(CustomerIdentities::CustomerId))
                .col(string_len(CustomerIdentities::Kind, 32))
                // '' for identities not scoped to an account (unionid, CRM login).
                .col(string_len(CustomerIdentities::AccountId, 64).default(""))
                .col(string_len(CustomerIdentities::Value, 128))
                .col(boolean_null(CustomerIdentities::Subscribed))
                .col(timestamp_with_time_zone_null(
                    CustomerIdentities::SubscribedAt,
                ))
                .col(timestamp_with_time_zone_null(
                    CustomerIdentities::UnsubscribedAt,
                ))
                .col(double_null(CustomerIdentities::Latitude))
                .col(double_null(CustomerIdentities::Longitude))
                .col(timestamp_with_time_zone_null(
                    CustomerIdentities::LocationAt,
                ))
                .foreign_key(&mut fk(
                    "fk_identities_customer",
                    (CustomerIdentities::Table, CustomerIdentities::CustomerId),
                    (Customers::Table, Customers::Id),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_identities_kind_account_value")
                .table(CustomerIdentities::Table)
                .col(CustomerIdentities::Kind)
                .col(CustomerIdentities::AccountId)
                .col(CustomerIdentities::Value)
                .unique()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_identities_customer")
                .table(CustomerIdentities::Table)
                .col(CustomerIdentities::CustomerId)
                .take(),
        )
        .await?;

        m.create_table(
            table(Conversations::Table)
                .col(big_pk_auto(Conversations::Id))
                .col(big_integer(Conversations::CustomerId))
                .col(string_len(Conversations::AccountId, 64))
                .col(string_len(Conversations::Channel, 16))
                .col(string_len(Conversations::State, 16))
                .col(big_integer_null(Conversations::AgentId))
                .col(timestamp_with_time_zone(Conversations::OpenedAt))
                .col(timestamp_with_time_zone_null(Conversations::ClosedAt))
                .col(timestamp_with_time_zone(Conversations::LastMessageAt))
                .foreign_key(&mut fk(
                    "fk_conversations_customer",
                    (Conversations::Table, Conversations::CustomerId),
                    (Customers::Table, Customers::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_conversations_agent",
                    (Conversations::Table, Conversations::AgentId),
                    (Agents::Table, Agents::Id),
                    ForeignKeyAction::SetNull,
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_conversations_customer_state")
                .table(Conversations::Table)
                .col(Conversations::CustomerId)
                .col(Conversations::State)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_conversations_agent_state")
                .table(Conversations::Table)
                .col(Conversations::AgentId)
                .col(Conversations::State)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MediaObjects::Table)
                .if_not_exists()
                .col(big_pk_auto(MediaObjects::Id))
                .col(string_len_uniq(MediaObjects::Sha256, 64))
                .col(big_integer(MediaObjects::Size))
                .col(string_len(MediaObjects::ContentType, 128))
                .col(string_len(MediaObjects::Path, 512))
                .col(
                    timestamp_with_time_zone(Alias::new("created_at"))
                        .default(Expr::current_timestamp()),
                )
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Messages::Table)
                .if_not_exists()
                .col(big_pk_auto(Messages::Id))
                .col(string_len(Messages::AccountId, 64))
                .col(string_len(Messages::Channel, 16))
                .col(string_len(Messages::Direction, 8))
                .col(big_integer_null(Messages::ConversationId))
                .col(big_integer_null(Messages::CustomerId))
                .col(big_integer_null(Messages::AgentId))
                .col(string_len(Messages::Sender, 128))
                // The channel's de-duplication key; NULL for what Kefu itself sends.
                .col(string_len_null(Messages::DedupKey, 255))
                .col(string_len(Messages::MsgType, 32))
                .col(text_null(Messages::Content))
                .col(big_integer_null(Messages::MediaObjectId))
                .col(text_null(Messages::Payload))
                .col(string_len_null(Messages::ChannelMsgId, 128))
                .col(timestamp_with_time_zone(Messages::SentAt))
                .col(
                    timestamp_with_time_zone(Alias::new("created_at"))
                        .default(Expr::current_timestamp()),
                )
                .foreign_key(&mut fk(
                    "fk_messages_conversation",
                    (Messages::Table, Messages::ConversationId),
                    (Conversations::Table, Conversations::Id),
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    "fk_messages_customer",
                    (Messages::Table, Messages::CustomerId),
                    (Customers::Table, Customers::Id),
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    "fk_messages_media",
                    (Messages::Table, Messages::MediaObjectId),
                    (MediaObjects::Table, MediaObjects::Id),
                    ForeignKeyAction::SetNull,
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_messages_account_dedup")
                .table(Messages::Table)
                .col(Messages::AccountId)
                .col(Messages::DedupKey)
                .unique()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_messages_conversation")
                .table(Messages::Table)
                .col(Messages::ConversationId)
                .col(Messages::Id)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_messages_customer")
                .table(Messages::Table)
                .col(Messages::CustomerId)
                .col(Messages::Id)
                .take(),
        )
        .await?;

        m.create_table(
            table(Outbox::Table)
                .col(big_pk_auto(Outbox::Id))
                .col(big_integer(Outbox::MessageId))
                .col(string_len(Outbox::AccountId, 64))
                .col(string_len(Outbox::Recipient, 128))
                .col(string_len(Outbox::Status, 16))
                .col(integer(Outbox::Attempts).default(0))
                .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Outbox::LeaseUntil))
                .col(string_len_null(Outbox::LeasedBy, 64))
                .col(text_null(Outbox::LastError))
                .col(text(Outbox::Request))
                .col(timestamp_with_time_zone_null(Outbox::SentAt))
                .foreign_key(&mut fk(
                    "fk_outbox_message",
                    (Outbox::Table, Outbox::MessageId),
                    (Messages::Table, Messages::Id),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_due")
                .table(Outbox::Table)
                .col(Outbox::Status)
                .col(Outbox::NextAttemptAt)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SetupTokens::Table)
                .if_not_exists()
                .col(string_len(SetupTokens::TokenHash, 64).primary_key())
                .col(timestamp_with_time_zone(SetupTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(SetupTokens::UsedAt))
                .col(
                    timestamp_with_time_zone(Alias::new("created_at"))
                        .default(Expr::current_timestamp()),
                )
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            SetupTokens::Table.into_iden(),
            Outbox::Table.into_iden(),
            Messages::Table.into_iden(),
            MediaObjects::Table.into_iden(),
            Conversations::Table.into_iden(),
            CustomerIdentities::Table.into_iden(),
            Customers::Table.into_iden(),
            GroupMembers::Table.into_iden(),
            Agents::Table.into_iden(),
            CityGroups::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
