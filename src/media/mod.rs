//! Media kept forever: WeChat deletes media after 3 days, Kefu keeps them.
//!
//! - `store`: [`MediaStore`], the content-addressed local folder
//!   (`media.dir/ab/cd/abcd…`, written to a temporary file then renamed)
//!   with a `media_objects` row per distinct content; limits and allowed
//!   content types per [`MediaKind`].
//! - `download`: [`Downloader`], the worker that fetches every inbound
//!   image, voice, video and file (`media/get`, `PicUrl` for OA images),
//!   retries with backoff and, after the last attempt, records why a
//!   message's media is unavailable.
//! - `upload`: [`Media::upload_for_send`], outbound media uploaded with
//!   `media/upload`, the media id cached until WeChat forgets it.
//! - `route`: `GET /media/{id}` for signed-in console users.
//! - `rules`: the pure parts (paths, content types, sniffing).
//! - `outgoing`: what an agent may send on each channel (kinds by content,
//!   limits); [`MediaStore::receive_upload`] streams an upload into the
//!   store under those rules.

pub mod download;
pub mod outgoing;
pub mod route;
pub mod rules;
pub mod store;
pub mod upload;

use std::sync::Arc;

pub use download::{DownloadStep, Downloader};
pub use route::routes;
pub use rules::MediaKind;
pub use store::MediaStore;

use crate::bus::Bus;
use crate::channels::Channels;
use crate::config::MediaSettings;
use crate::store::{Store, StoreError};
use crate::wechat::api::ApiError;
use crate::workers::Workers;

/// Why media could not be stored, read or sent.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Over the configured limit of its kind.
    #[error("{}超过 {}，无法保存。The {} is larger than {}.", .kind.label_zh(), rules::human_size(*.limit), .kind.label_en(), rules::human_size(*.limit))]
    TooLarge { kind: MediaKind, limit: u64 },
    /// A content type the kind does not allow.
    #[error("{}格式 {content_type} 不受支持（允许：{allowed}）。The {} format {content_type} is not accepted (allowed: {allowed}).", .kind.label_zh(), .kind.label_en())]
    Type {
        kind: MediaKind,
        content_type: String,
        allowed: String,
    },
    #[error("文件是空的。The file is empty.")]
    Empty,
    /// An agent's upload the channel cannot send (see [`outgoing`]).
    #[error(transparent)]
    Refused(#[from] outgoing::Refused),
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("media folder: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for MediaError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => MediaError::NotFound,
            e => MediaError::Store(e),
        }
    }
}

impl MediaError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        use crate::wechat::api::ErrorClass;
        match self {
            MediaError::Api(e) => matches!(e.class(), ErrorClass::Transient | ErrorClass::Token),
            MediaError::Io(_) | MediaError::Store(_) => true,
            _ => false,
        }
    }
}

/// The media service: the store, the download worker and uploads.
#[derive(Clone)]
pub struct Media {
    pub store: MediaStore,
    pub downloader: Downloader,
    db: Store,
    channels: Arc<Channels>,
    settings: MediaSettings,
}

impl Media {
    /// Builds the service (nothing runs until [`Media::start`]).
    pub fn new(
        db: Store,
        channels: Arc<Channels>,
        http: reqwest::Client,
        settings: MediaSettings,
    ) -> Self {
        let store = MediaStore::new(db.clone(), settings.clone());
        let downloader = Downloader::new(
            db.clone(),
            store.clone(),
            channels.clone(),
            http,
            settings.clone(),
        );
        Self {
            store,
            downloader,
            db,
            channels,
            settings,
        }
    }

    /// Starts the download worker, woken by `MessageStored` on the bus.
    pub fn start(&self, bus: &Bus, workers: &mut Workers) {
        if self.settings.download_enabled {
            self.downloader.start(bus, workers);
        }
    }
}
