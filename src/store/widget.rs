//! The web chat widget's reads: what a visitor may see of their own
//! conversation on one site (never internal notes or channel events).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{conversations, messages};
use super::{Store, StoreError};
use crate::ids::{AccountId, CustomerId, MessageId};

impl Store {
    /// The visitor's messages on the site after `after`, oldest first.
    pub async fn visitor_messages_after(
        &self,
        customer: CustomerId,
        site: &AccountId,
        after: MessageId,
        limit: u64,
    ) -> Result<Vec<messages::Model>, StoreError> {
        Ok(messages::Entity::find()
            .filter(visible_to(customer, site))
            .filter(messages::Column::Id.gt(after.0))
            .order_by_asc(messages::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// The visitor's latest `limit` messages on the site, oldest first.
    pub async fn visitor_recent_messages(
        &self,
        customer: CustomerId,
        site: &AccountId,
        limit: u64,
    ) -> Result<Vec<messages::Model>, StoreError> {
        self.message_page(visible_to(customer, site), None, limit)
            .await
    }

    /// The message stored under this key on the account, if any.
    pub async fn message_by_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<messages::Model>, StoreError> {
        Ok(messages::Entity::find()
            .filter(messages::Column::AccountId.eq(account.as_str()))
            .filter(messages::Column::DedupKey.eq(key))
            .one(self.conn())
            .await?)
    }

    /// The customer's newest conversation on the account, open or closed.
    pub async fn latest_conversation_of(
        &self,
        customer: CustomerId,
        account: &AccountId,
    ) -> Result<Option<conversations::Model>, StoreError> {
        Ok(conversations::Entity::find()
            .filter(conversations::Column::CustomerId.eq(customer.0))
            .filter(conversations::Column::AccountId.eq(account.as_str()))
            .order_by_desc(conversations::Column::Id)
            .one(self.conn())
            .await?)
    }
}

impl Store {
    /// A phone number the customer left, kept when they have none yet.
    pub async fn phone_if_unset(
        &self,
        customer: CustomerId,
        phone: &str,
    ) -> Result<(), StoreError> {
        use sea_orm::sea_query::Expr;
        super::entities::customers::Entity::update_many()
            .col_expr(
                super::entities::customers::Column::Phone,
                Expr::value(phone),
            )
            .filter(super::entities::customers::Column::Id.eq(customer.0))
            .filter(super::entities::customers::Column::Phone.is_null())
            .exec(self.writer())
            .await?;
        Ok(())
    }
}

/// Messages to and from the customer on the site that the customer saw.
fn visible_to(customer: CustomerId, site: &AccountId) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::ExprTrait as _;
    messages::Column::CustomerId
        .eq(customer.0)
        .and(messages::Column::AccountId.eq(site.as_str()))
        .and(messages::Column::Direction.is_in(["in", "out"]))
        .and(messages::Column::MsgType.ne("event"))
}
