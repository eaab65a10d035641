use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: String,
    pub channel: String,
    pub direction: String,
    pub conversation_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub sender: String,
    pub dedup_key: Option<String>,
    pub msg_type: String,
    pub content: Option<String>,
    pub media_object_id: Option<i64>,
    pub payload: Option<String>,
    pub channel_msg_id: Option<String>,
    pub sent_at: ChronoDateTimeUtc,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
