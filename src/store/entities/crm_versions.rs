use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub version: i64,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
