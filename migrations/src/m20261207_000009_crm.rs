//! The CRM sync: the version of every row the CRM sent (an older update
//! never overwrites a newer), customers' vehicle trades, and the events Kefu
//! reports back (webhook and cursor).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CrmVersions {
    Table,
    /// `agent`, `group`, `region`, `binding`, `shift`, `customer`, `vehicle`,
    /// `agent_event`.
    Entity,
    /// The CRM's id of the row (for shifts `agent/day`).
    Key,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum VehicleTrades {
    Table,
    Id,
    CrmId,
    CustomerId,
    Plate,
    Model,
    OrderNo,
    /// `unpaid`, `partially_paid`, `paid`, `refunded` or the CRM's own word.
    PaymentStatus,
    PaymentUpdatedAt,
    /// `listed`, `inspecting`, `negotiating`, `sold`, `transferred`,
    /// `cancelled` or the CRM's own word.
    SaleStatus,
    SaleUpdatedAt,
    /// Amounts, notes: whatever else the CRM sent (JSON).
    Details,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CrmEvents {
    Table,
    /// The cursor of `GET /api/crm/v1/events`.
    Id,
    /// `binding.created`, `binding.changed`, `survey.answered`.
    Kind,
    CustomerId,
    /// The event as delivered (JSON).
    Payload,
    CreatedAt,
    DeliveredAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CrmVersions::Table)
                .if_not_exists()
                .col(string_len(CrmVersions::Entity, 16))
                .col(string_len(CrmVersions::Key, 160))
                .col(big_integer(CrmVersions::Version))
                .col(timestamp_with_time_zone(CrmVersions::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(CrmVersions::Entity)
                        .col(CrmVersions::Key),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(VehicleTrades::Table)
                .if_not_exists()
                .col(big_pk_auto(VehicleTrades::Id))
                .col(string_len_uniq(VehicleTrades::CrmId, 64))
                .col(big_integer(VehicleTrades::CustomerId))
                .col(string_len_null(VehicleTrades::Plate, 16))
                .col(string_len_null(VehicleTrades::Model, 128))
                .col(string_len_null(VehicleTrades::OrderNo, 64))
                .col(string_len(VehicleTrades::PaymentStatus, 32))
                .col(timestamp_with_time_zone_null(
                    VehicleTrades::PaymentUpdatedAt,
                ))
                .col(string_len(VehicleTrades::SaleStatus, 32))
                .col(timestamp_with_time_zone_null(VehicleTrades::SaleUpdatedAt))
                .col(text_null(VehicleTrades::Details))
                .col(timestamp_with_time_zone(VehicleTrades::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_vehicle_trades_customer")
                        .from(VehicleTrades::Table, VehicleTrades::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_vehicle_trades_customer")
                .table(VehicleTrades::Table)
                .col(VehicleTrades::CustomerId)
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CrmEvents::Table)
                .if_not_exists()
                .col(big_pk_auto(CrmEvents::Id))
                .col(string_len(CrmEvents::Kind, 32))
                .col(big_integer_null(CrmEvents::CustomerId))
                .col(text(CrmEvents::Payload))
                .col(timestamp_with_time_zone(CrmEvents::CreatedAt))
                .col(timestamp_with_time_zone_null(CrmEvents::DeliveredAt))
                .col(integer(CrmEvents::Attempts).default(0))
                .col(text_null(CrmEvents::LastError))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_crm_events_undelivered")
                .table(CrmEvents::Table)
                .col(CrmEvents::DeliveredAt)
                .col(CrmEvents::Id)
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            CrmEvents::Table.into_iden(),
            VehicleTrades::Table.into_iden(),
            CrmVersions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
