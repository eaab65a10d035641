use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_identities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: i64,
    pub kind: String,
    pub account_id: String,
    pub value: String,
    pub subscribed: Option<bool>,
    pub subscribed_at: Option<ChronoDateTimeUtc>,
    pub unsubscribed_at: Option<ChronoDateTimeUtc>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub location_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
