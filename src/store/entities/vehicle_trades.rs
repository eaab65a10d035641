use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vehicle_trades")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub crm_id: String,
    pub customer_id: i64,
    pub plate: Option<String>,
    pub model: Option<String>,
    pub order_no: Option<String>,
    pub payment_status: String,
    pub payment_updated_at: Option<ChronoDateTimeUtc>,
    pub sale_status: String,
    pub sale_updated_at: Option<ChronoDateTimeUtc>,
    pub details: Option<String>,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
