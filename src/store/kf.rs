//! WeCom Customer Service: `sync_msg` cursors, saved with the messages of
//! each page in one transaction.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use super::entities::kf_cursors;
use super::messages::{Inserted, NewInbound, insert_inbound_in};
use super::{Store, StoreError};
use crate::ids::AccountId;

impl Store {
    /// The saved cursor of a kf account ("" before the first page).
    pub async fn kf_cursor(
        &self,
        account: &AccountId,
        open_kfid: &str,
    ) -> Result<String, StoreError> {
        Ok(
            kf_cursors::Entity::find_by_id((account.to_string(), open_kfid.to_owned()))
                .one(self.conn())
                .await?
                .map(|r| r.cursor)
                .unwrap_or_default(),
        )
    }

    /// Every kf account seen for `account`, for the periodic catch-up pull.
    pub async fn kf_accounts(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        Ok(kf_cursors::Entity::find()
            .filter(kf_cursors::Column::AccountId.eq(account.as_str()))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|r| r.open_kfid)
            .collect())
    }

    /// Stores one page of pulled messages and the cursor after it, atomically:
    /// a crash never skips a page nor stores one twice.
    pub async fn save_kf_page(
        &self,
        account: &AccountId,
        open_kfid: &str,
        next_cursor: &str,
        page: &[NewInbound],
    ) -> Result<Vec<Inserted>, StoreError> {
        let txn = self.writer().begin().await?;
        let out = insert_inbound_in(&txn, page).await?;
        kf_cursors::Entity::insert(kf_cursors::ActiveModel {
            account_id: Set(account.to_string()),
            open_kfid: Set(open_kfid.to_owned()),
            cursor: Set(next_cursor.to_owned()),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([kf_cursors::Column::AccountId, kf_cursors::Column::OpenKfid])
                .update_columns([kf_cursors::Column::Cursor, kf_cursors::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(out)
    }
}
