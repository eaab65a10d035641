//! Outbound media: a stored object is uploaded to an account with
//! `media/upload` when first sent, and its `media_id` cached (table
//! `media_uploads`) with its upload time. WeChat keeps temporary media for
//! 3 days: after `media.upload_reuse_secs` (2.5 days by default), or when
//! WeChat answers `40007 invalid media_id`, the object is uploaded again.

use std::future::Future;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};

use super::rules::{self, MediaKind};
use super::{Media, MediaError};
use crate::config::AccountKind;
use crate::ids::AccountId;
use crate::wechat::api::{ApiError, UploadKind};

/// WeChat's answer for a media id it no longer has.
pub const INVALID_MEDIA_ID: i64 = 40007;

impl Media {
    /// The `media_id` to send `object_id` from `account`: the cached one
    /// while fresh, else a new upload.
    pub async fn upload_for_send(
        &self,
        account: &AccountId,
        object_id: i64,
    ) -> Result<String, MediaError> {
        self.upload_for_send_at(account, object_id, Utc::now())
            .await
    }

    /// [`Media::upload_for_send`] as if it were `now` (tests).
    #[tracing::instrument(level = "debug", skip(self), fields(account = %account))]
    pub async fn upload_for_send_at(
        &self,
        account: &AccountId,
        object_id: i64,
        now: DateTime<Utc>,
    ) -> Result<String, MediaError> {
        self.upload_as(account, object_id, &SendAs::default(), now)
            .await
    }

    async fn upload_as(
        &self,
        account: &AccountId,
        object_id: i64,
        send_as: &SendAs,
        now: DateTime<Utc>,
    ) -> Result<String, MediaError> {
        let reuse = chrono::Duration::seconds(self.settings.upload_reuse_secs as i64);
        if let Some(cached) = self.db.media_upload(account, object_id).await?
            && now - cached.uploaded_at < reuse
        {
            return Ok(cached.media_id);
        }
        let acc = self
            .channels
            .get_any(account.as_str())
            .ok_or_else(|| MediaError::UnknownAccount(account.to_string()))?;
        let row = self.db.media_object(object_id).await?;
        let kind = send_as
            .kind
            .unwrap_or_else(|| MediaKind::of_content_type(&row.content_type));
        let limit = kind.limit(&self.settings);
        if row.size as u64 > limit {
            return Err(MediaError::TooLarge { kind, limit });
        }
        let upload_kind = match (kind, acc.account.kind) {
            (MediaKind::Image, _) => UploadKind::Image,
            (MediaKind::Voice, _) => UploadKind::Voice,
            (MediaKind::Video, _) => UploadKind::Video,
            (MediaKind::File, AccountKind::WecomKf) => UploadKind::File,
            (MediaKind::File, AccountKind::OfficialAccount) => {
                return Err(MediaError::Type {
                    kind,
                    content_type: row.content_type.clone(),
                    allowed: "image, voice, video".into(),
                });
            }
        };
        let (_, bytes) = self.store.read(object_id).await?;
        let filename = send_as.filename.clone().unwrap_or_else(|| {
            format!(
                "{}.{}",
                &row.sha256[..16.min(row.sha256.len())],
                rules::extension(&row.content_type)
            )
        });
        let uploaded = acc
            .api
            .media_upload(
                upload_kind,
                &filename,
                &row.content_type,
                Bytes::from(bytes),
            )
            .await?;
        self.db
            .save_media_upload(account, object_id, &uploaded.media_id, now)
            .await?;
        Ok(uploaded.media_id)
    }

    /// Forgets the cached media id of an object (WeChat no longer has it).
    pub async fn forget_upload(
        &self,
        account: &AccountId,
        object_id: i64,
    ) -> Result<(), MediaError> {
        Ok(self.db.forget_media_upload(account, object_id).await?)
    }

    /// Runs `send` with the object's media id; when WeChat answers `40007`
    /// (it no longer has that media), uploads again and runs `send` once
    /// more with the new id.
    pub async fn with_uploaded<T, F, Fut>(
        &self,
        account: &AccountId,
        object_id: i64,
        send: F,
    ) -> Result<T, MediaError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.with_uploaded_as(account, object_id, &SendAs::default(), send)
            .await
    }

    /// [`Media::with_uploaded`], uploading the object as `send_as` says
    /// (an agent's GIF goes to WeCom as a file, under the agent's name).
    /// The cached media id is per account and object, whatever the name.
    pub async fn with_uploaded_as<T, F, Fut>(
        &self,
        account: &AccountId,
        object_id: i64,
        send_as: &SendAs,
        send: F,
    ) -> Result<T, MediaError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let media_id = self
            .upload_as(account, object_id, send_as, Utc::now())
            .await?;
        match send(media_id).await {
            Err(e) if e.code() == Some(INVALID_MEDIA_ID) => {
                tracing::info!(account = %account, object_id, "media id expired on WeChat; uploading again");
                self.forget_upload(account, object_id).await?;
                let media_id = self
                    .upload_as(account, object_id, send_as, Utc::now())
                    .await?;
                Ok(send(media_id).await?)
            }
            other => Ok(other?),
        }
    }
}

/// How an object is uploaded: its kind (default: from its content type)
/// and the file name WeChat shows (default: from its hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendAs {
    pub kind: Option<MediaKind>,
    pub filename: Option<String>,
}
