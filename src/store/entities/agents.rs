use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub crm_id: Option<String>,
    pub login: String,
    pub name: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub capacity: i32,
    pub status: String,
    pub disabled: bool,
    pub departed_at: Option<ChronoDateTimeUtc>,
    pub last_seen_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
