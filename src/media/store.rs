//! The content-addressed media folder and its `media_objects` rows.
//!
//! A file is written to `media.dir/tmp/<uuid>` while its SHA-256 is
//! computed and its size checked against the limit of its kind, synced,
//! then renamed to `media.dir/ab/cd/abcd…` (atomic on one file system). The
//! same content is stored once: the second copy is dropped and the existing
//! row returned. A crash may leave a temporary file or a file without a row,
//! never a row without its file.

use std::path::{Path, PathBuf};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::MediaError;
use super::outgoing::{self, Refused, Sendable};
use super::rules::{self, MediaKind};
use crate::config::MediaSettings;
use crate::store::Store;
use crate::store::entities::media_objects;
use crate::store::media::NewMediaObject;
use crate::wechat::api::MediaStream;

/// How many leading bytes are kept to recognise a file's type.
const HEAD: usize = 64;

/// The media store, cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaStore {
    db: Store,
    settings: MediaSettings,
}

/// A file being received. Dropped before [`MediaStore::finish`], its
/// temporary file is removed.
pub struct Incoming {
    kind: MediaKind,
    limit: u64,
    file: tokio::fs::File,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    kept: bool,
}

impl Incoming {
    /// Appends a chunk; refuses (and stops reading) past the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        if self.size + chunk.len() as u64 > self.limit {
            return Err(MediaError::TooLarge {
                kind: self.kind,
                limit: self.limit,
            });
        }
        if self.head.len() < HEAD {
            let n = (HEAD - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
        }
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await?;
        Ok(())
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl MediaStore {
    pub fn new(db: Store, settings: MediaSettings) -> Self {
        Self { db, settings }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// The folder of the store.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// Starts receiving a file of `kind`.
    pub async fn begin(&self, kind: MediaKind) -> Result<Incoming, MediaError> {
        self.begin_limited(kind, kind.limit(&self.settings)).await
    }

    /// Starts receiving a file of `kind` with a limit of its own.
    async fn begin_limited(&self, kind: MediaKind, limit: u64) -> Result<Incoming, MediaError> {
        let tmp_dir = self.settings.dir.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Incoming {
            kind,
            limit,
            file,
            tmp,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(HEAD),
            kept: false,
        })
    }

    /// Checks the type, moves the file into place and records it.
    pub async fn finish(
        &self,
        mut incoming: Incoming,
        declared_type: Option<&str>,
    ) -> Result<media_objects::Model, MediaError> {
        if incoming.size == 0 {
            return Err(MediaError::Empty);
        }
        let content_type =
            rules::accept(incoming.kind, declared_type, &incoming.head).map_err(|allowed| {
                MediaError::Type {
                    kind: incoming.kind,
                    content_type: rules::normalize(declared_type.unwrap_or("unknown")),
                    allowed,
                }
            })?;
        incoming.file.flush().await?;
        incoming.file.sync_all().await?;
        let sha = rules::hex(&incoming.hasher.clone().finalize());
        let rel = rules::object_path(&sha);
        let path = self.settings.dir.join(&rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::try_exists(&path).await? {
            // Same content stored before: keep the first copy.
            tokio::fs::remove_file(&incoming.tmp).await?;
        } else {
            tokio::fs::rename(&incoming.tmp, &path).await?;
        }
        incoming.kept = true;
        let row = self
            .db
            .insert_media_object(
                &NewMediaObject {
                    sha256: sha,
                    size: incoming.size as i64,
                    content_type,
                    path: rel,
                },
                Utc::now(),
            )
            .await?;
        Ok(row)
    }

    /// Stores bytes in memory (an agent's upload, tests).
    pub async fn put(
        &self,
        kind: MediaKind,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<media_objects::Model, MediaError> {
        let limit = kind.limit(&self.settings);
        if bytes.len() as u64 > limit {
            return Err(MediaError::TooLarge { kind, limit });
        }
        let mut incoming = self.begin(kind).await?;
        incoming.write(bytes).await?;
        self.finish(incoming, content_type).await
    }

    /// Stores a file as it arrives: a declared length over the limit is
    /// refused before reading, and reading stops at the limit.
    pub async fn receive(
        &self,
        kind: MediaKind,
        mut stream: MediaStream,
    ) -> Result<media_objects::Model, MediaError> {
        let limit = kind.limit(&self.settings);
        if stream.content_length.is_some_and(|n| n > limit) {
            return Err(MediaError::TooLarge { kind, limit });
        }
        let mut incoming = self.begin(kind).await?;
        while let Some(chunk) = stream.chunk().await? {
            incoming.write(&chunk).await?;
        }
        let declared = stream.content_type.clone();
        self.finish(incoming, declared.as_deref()).await
    }

    /// Stores an agent's upload for sending on `channel` as it arrives:
    /// its kind is decided by its first bytes ([`outgoing::classify`]),
    /// a declared length over that kind's limit is refused before reading
    /// on, and reading stops at the limit. At most one chunk and the file
    /// are held, never the whole body in memory. `name` and `declared` are
    /// what the browser said (they only serve to refuse a file that lies).
    pub async fn receive_upload<S, E>(
        &self,
        channel: crate::store::messages::Channel,
        name: Option<&str>,
        declared: Option<&str>,
        content_length: Option<u64>,
        body: &mut S,
    ) -> Result<(media_objects::Model, Sendable), MediaError>
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt as _;
        let mut first = Vec::new();
        let mut head = Vec::with_capacity(outgoing::HEAD);
        while head.len() < outgoing::HEAD {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let n = (outgoing::HEAD - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..n]);
                    first.push(chunk);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "upload interrupted");
                    return Err(Refused::Interrupted.into());
                }
                None => break,
            }
        }
        let sendable = outgoing::classify(channel, &head, name, declared)?;
        let kind = sendable.kind;
        if let Some(n) = content_length {
            outgoing::check_size(channel, kind, n, &self.settings)?;
        }
        let limit = outgoing::limit(channel, kind, &self.settings);
        let too_large = |e: MediaError| match e {
            MediaError::TooLarge { kind, limit } => Refused::TooLarge { kind, limit }.into(),
            e => e,
        };
        let mut incoming = self.begin_limited(kind, limit).await?;
        for chunk in first {
            incoming.write(&chunk).await.map_err(too_large)?;
        }
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => incoming.write(&chunk).await.map_err(too_large)?,
                Err(e) => {
                    tracing::debug!(error = %e, "upload interrupted");
                    return Err(Refused::Interrupted.into());
                }
            }
        }
        outgoing::check_size(channel, kind, incoming.size, &self.settings)?;
        let row = self
            .finish(incoming, Some(sendable.content_type.as_str()))
            .await?;
        Ok((row, sendable))
    }

    /// A stored object and the path of its file.
    pub async fn open(&self, id: i64) -> Result<(media_objects::Model, PathBuf), MediaError> {
        let row = self.db.media_object(id).await?;
        let path = self.path_of(&row)?;
        Ok((row, path))
    }

    /// Reads a stored object whole (uploads; bounded by the limits).
    pub async fn read(&self, id: i64) -> Result<(media_objects::Model, Vec<u8>), MediaError> {
        let (row, path) = self.open(id).await?;
        let bytes = tokio::fs::read(&path).await?;
        Ok((row, bytes))
    }

    /// The file of a row, refusing paths that leave the media folder.
    fn path_of(&self, row: &media_objects::Model) -> Result<PathBuf, MediaError> {
        let rel = Path::new(&row.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(MediaError::NotFound);
        }
        Ok(self.settings.dir.join(rel))
    }
}
