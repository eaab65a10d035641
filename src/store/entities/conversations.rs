use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: i64,
    pub account_id: String,
    pub channel: String,
    pub state: String,
    pub agent_id: Option<i64>,
    pub opened_at: ChronoDateTimeUtc,
    pub closed_at: Option<ChronoDateTimeUtc>,
    pub last_message_at: ChronoDateTimeUtc,
    pub queued_at: Option<ChronoDateTimeUtc>,
    pub queue_group_id: Option<i64>,
    pub awaiting_reply_since: Option<ChronoDateTimeUtc>,
    pub last_customer_at: Option<ChronoDateTimeUtc>,
    pub reoffered_at: Option<ChronoDateTimeUtc>,
    pub open_kfid: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
