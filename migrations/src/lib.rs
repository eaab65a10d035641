//! Kefu's database migrations: one tree for SQLite and PostgreSQL.
//! An applied migration is never edited; add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_kf_cursors;
mod m20261123_000003_outbox;
mod m20261123_000004_sessions;
mod m20261123_000005_media;
mod m20261123_000006_conversations;
mod m20261123_000007_routing;
mod m20261123_000008_surveys_per_close;
mod m20261207_000009_crm;
mod m20261207_000010_console;
mod m20261207_000011_console_access;
mod m20261207_000012_search;
mod m20261207_000013_widget_login;
mod m20261207_000014_customer_reads;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_kf_cursors::Migration),
            Box::new(m20261123_000003_outbox::Migration),
            Box::new(m20261123_000004_sessions::Migration),
            Box::new(m20261123_000005_media::Migration),
            Box::new(m20261123_000006_conversations::Migration),
            Box::new(m20261123_000007_routing::Migration),
            Box::new(m20261123_000008_surveys_per_close::Migration),
            Box::new(m20261207_000009_crm::Migration),
            Box::new(m20261207_000010_console::Migration),
            Box::new(m20261207_000011_console_access::Migration),
            Box::new(m20261207_000012_search::Migration),
            Box::new(m20261207_000013_widget_login::Migration),
            Box::new(m20261207_000014_customer_reads::Migration),
        ]
    }
}
