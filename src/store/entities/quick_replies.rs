use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quick_replies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `None`: shared by everyone; else the agent's own.
    pub owner_agent_id: Option<i64>,
    pub title: String,
    pub content: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
