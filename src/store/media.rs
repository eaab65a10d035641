//! Media kept forever: stored objects (`media_objects`), the download queue
//! of inbound media (`media_downloads`) and the cache of uploaded media ids
//! (`media_uploads`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::entities::{media_downloads, media_objects, media_uploads, messages};
use super::{Store, StoreError, placeholders};
use crate::ids::{AccountId, MessageId};

/// Download statuses, as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
}

/// A stored file to record.
#[derive(Debug, Clone)]
pub struct NewMediaObject {
    pub sha256: String,
    pub size: i64,
    pub content_type: String,
    /// Relative to the media folder.
    pub path: String,
}

/// What one download attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadOutcome {
    /// Stored as this object and linked to the message.
    Done { object_id: i64 },
    /// Try again at `next_at`.
    Retry {
        next_at: DateTime<Utc>,
        error: String,
    },
    /// Given up: the message says its media is unavailable, and why.
    Failed { error: String, reason: String },
}

/// Inbound messages whose media Kefu keeps: (channel, message types).
const MEDIA_FILTER: &str = "m.direction = 'in' AND m.media_object_id IS NULL \
     AND ((m.channel = 'oa' AND m.msg_type IN ('image', 'voice', 'video', 'shortvideo')) \
       OR (m.channel = 'wecom_kf' AND m.msg_type IN ('image', 'voice', 'video', 'file'))) \
     AND NOT EXISTS (SELECT 1 FROM media_downloads d WHERE d.message_id = m.id)";

#[derive(FromQueryResult)]
struct Candidate {
    id: i64,
    account_id: String,
}

#[derive(FromQueryResult)]
struct MaxId {
    id: Option<i64>,
}

impl Store {
    /// Records a stored file; the same content (same SHA-256) is recorded
    /// once and the existing row returned.
    pub async fn insert_media_object(
        &self,
        new: &NewMediaObject,
        now: DateTime<Utc>,
    ) -> Result<media_objects::Model, StoreError> {
        let row = media_objects::ActiveModel {
            sha256: Set(new.sha256.clone()),
            size: Set(new.size),
            content_type: Set(new.content_type.clone()),
            path: Set(new.path.clone()),
            created_at: Set(now),
            ..Default::default()
        };
        media_objects::Entity::insert(row)
            .on_conflict_do_nothing_on([media_objects::Column::Sha256])
            .exec(self.writer())
            .await?;
        media_objects::Entity::find()
            .filter(media_objects::Column::Sha256.eq(new.sha256.as_str()))
            .one(self.writer())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// One stored object by id.
    pub async fn media_object(&self, id: i64) -> Result<media_objects::Model, StoreError> {
        media_objects::Entity::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Number of stored objects (tests, metrics).
    pub async fn media_object_count(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(media_objects::Entity::find().count(self.conn()).await?)
    }

    /// Queues the download of one message's media, if it is an inbound
    /// media message not queued yet. True when a row was added.
    pub async fn enqueue_media_download(
        &self,
        message: MessageId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let found = self.media_candidates(message.0 - 1, message.0, 1).await?;
        Ok(self.insert_downloads(&found, now).await? > 0)
    }

    /// Queues every inbound media message with `after < id <= newest` that
    /// has neither media nor a download row, at most `limit`. Returns how
    /// many were queued and the id scanned up to.
    pub async fn sweep_media_downloads(
        &self,
        after: i64,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<(u64, i64), StoreError> {
        let stmt = Statement::from_string(self.backend(), "SELECT MAX(id) AS id FROM messages");
        let top = MaxId::find_by_statement(stmt)
            .one(self.conn())
            .await?
            .and_then(|r| r.id)
            .unwrap_or(0);
        if top <= after {
            return Ok((0, after));
        }
        let found = self.media_candidates(after, top, limit).await?;
        let scanned_to = match found.last() {
            Some(last) if found.len() as u64 >= limit => last.id,
            _ => top,
        };
        Ok((self.insert_downloads(&found, now).await?, scanned_to))
    }

    /// The newest message with a download row: where a restarted worker's
    /// sweep resumes (every older message was swept before).
    pub async fn media_download_high_water(&self) -> Result<i64, StoreError> {
        let stmt = Statement::from_string(
            self.backend(),
            "SELECT MAX(message_id) AS id FROM media_downloads",
        );
        Ok(MaxId::find_by_statement(stmt)
            .one(self.conn())
            .await?
            .and_then(|r| r.id)
            .unwrap_or(0))
    }

    async fn media_candidates(
        &self,
        after: i64,
        upto: i64,
        limit: u64,
    ) -> Result<Vec<Candidate>, StoreError> {
        let sql = format!(
            "SELECT m.id, m.account_id FROM messages m WHERE m.id > ? AND m.id <= ? AND {MEDIA_FILTER} \
             ORDER BY m.id LIMIT ?"
        );
        let values: Vec<Value> = vec![after.into(), upto.into(), (limit as i64).into()];
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(self.backend(), &sql),
            values,
        );
        Ok(Candidate::find_by_statement(stmt).all(self.conn()).await?)
    }

    async fn insert_downloads(
        &self,
        found: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if found.is_empty() {
            return Ok(0);
        }
        use media_downloads::Column as C;
        let mut q = Query::insert();
        q.into_table(media_downloads::Entity).columns([
            C::MessageId,
            C::AccountId,
            C::Status,
            C::Attempts,
            C::NextAttemptAt,
            C::CreatedAt,
            C::UpdatedAt,
        ]);
        for c in found {
            q.values([
                c.id.into(),
                c.account_id.clone().into(),
                status::PENDING.into(),
                0i32.into(),
                now.into(),
                now.into(),
                now.into(),
            ])
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        }
        q.on_conflict(OnConflict::column(C::MessageId).do_nothing().to_owned());
        Ok(self.writer().execute(&q).await?.rows_affected())
    }

    /// Leases up to `limit` due downloads until `lease_until` (a download
    /// in flight is not due; one whose worker died is due again after the
    /// lease). Atomic: two workers never take the same row.
    pub async fn claim_media_downloads(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<media_downloads::Model>, StoreError> {
        let sql = "UPDATE media_downloads SET next_attempt_at = ?, updated_at = ? \
             WHERE message_id IN (SELECT message_id FROM media_downloads \
               WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) \
             AND status = 'pending' AND next_attempt_at <= ? RETURNING *";
        let values: Vec<Value> = vec![
            lease_until.into(),
            now.into(),
            now.into(),
            (limit as i64).into(),
            now.into(),
        ];
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(self.backend(), sql),
            values,
        );
        let mut rows = media_downloads::Entity::find()
            .from_raw_sql(stmt)
            .all(self.writer())
            .await?;
        rows.sort_by_key(|r| r.message_id);
        Ok(rows)
    }

    /// Records one attempt; `Done` also links the object to the message,
    /// in the same transaction.
    pub async fn record_media_download(
        &self,
        message: MessageId,
        outcome: &DownloadOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use media_downloads::Column as C;
        let txn = self.writer().begin().await?;
        let mut update = media_downloads::Entity::update_many()
            .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
            .col_expr(C::UpdatedAt, Expr::value(now))
            .filter(C::MessageId.eq(message.0));
        update = match outcome {
            DownloadOutcome::Done { object_id } => {
                messages::Entity::update_many()
                    .col_expr(messages::Column::MediaObjectId, Expr::value(*object_id))
                    .filter(messages::Column::Id.eq(message.0))
                    .exec(&txn)
                    .await?;
                update
                    .col_expr(C::Status, Expr::value(status::DONE))
                    .col_expr(C::LastError, Expr::value(Option::<String>::None))
            }
            DownloadOutcome::Retry { next_at, error } => update
                .col_expr(C::NextAttemptAt, Expr::value(*next_at))
                .col_expr(C::LastError, Expr::value(error.clone())),
            DownloadOutcome::Failed { error, reason } => update
                .col_expr(C::Status, Expr::value(status::FAILED))
                .col_expr(C::LastError, Expr::value(error.clone()))
                .col_expr(C::Reason, Expr::value(reason.clone())),
        };
        update.exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The download row of a message: whether its media is kept, pending,
    /// or unavailable (with the reason).
    pub async fn media_download(
        &self,
        message: MessageId,
    ) -> Result<Option<media_downloads::Model>, StoreError> {
        Ok(media_downloads::Entity::find_by_id(message.0)
            .one(self.conn())
            .await?)
    }

    /// When the next pending download becomes due, if any.
    pub async fn media_download_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(media_downloads::Entity::find()
            .filter(media_downloads::Column::Status.eq(status::PENDING))
            .order_by_asc(media_downloads::Column::NextAttemptAt)
            .limit(1)
            .one(self.conn())
            .await?
            .map(|r| r.next_attempt_at))
    }

    /// The cached WeChat media id of an object for an account.
    pub async fn media_upload(
        &self,
        account: &AccountId,
        object_id: i64,
    ) -> Result<Option<media_uploads::Model>, StoreError> {
        Ok(
            media_uploads::Entity::find_by_id((account.to_string(), object_id))
                .one(self.conn())
                .await?,
        )
    }

    /// Caches (or replaces) the media id of an object for an account.
    pub async fn save_media_upload(
        &self,
        account: &AccountId,
        object_id: i64,
        media_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use media_uploads::Column as C;
        let row = media_uploads::ActiveModel {
            account_id: Set(account.to_string()),
            media_object_id: Set(object_id),
            media_id: Set(media_id.to_owned()),
            uploaded_at: Set(at),
        };
        media_uploads::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([C::AccountId, C::MediaObjectId])
                    .update_columns([C::MediaId, C::UploadedAt])
                    .to_owned(),
            )
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets a cached media id (WeChat answered 40007 for it).
    pub async fn forget_media_upload(
        &self,
        account: &AccountId,
        object_id: i64,
    ) -> Result<(), StoreError> {
        media_uploads::Entity::delete_many()
            .filter(media_uploads::Column::AccountId.eq(account.as_str()))
            .filter(media_uploads::Column::MediaObjectId.eq(object_id))
            .exec(self.writer())
            .await?;
        Ok(())
    }
}
