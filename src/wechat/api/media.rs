//! Temporary media (PROTOCOL.md §3.5): `media/upload` (multipart field
//! `media`) and `media/get`, for Official Accounts and WeCom alike.
//!
//! `media/get` answers the file's bytes, or JSON: an `{errcode}` error, or
//! (OA videos) a `video_url` to fetch. The bytes are not read here: the
//! caller pulls them chunk by chunk from a [`MediaStream`] and enforces its
//! own size limit, so no more than that limit is ever held.

use actix_web::web::Bytes;
use serde::Deserialize;

use super::client::check_errcode;
use super::error::{ApiError, ErrorClass};
use super::{ApiClient, ApiFamily};

/// The `type` of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Image,
    Voice,
    Video,
    /// Official Account only: a video or music thumbnail (64 KB jpg).
    Thumb,
    /// WeCom only: any file.
    File,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Image => "image",
            UploadKind::Voice => "voice",
            UploadKind::Video => "video",
            UploadKind::Thumb => "thumb",
            UploadKind::File => "file",
        }
    }
}

/// What `media/upload` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    pub kind: String,
    pub media_id: String,
    /// Unix seconds (WeCom sends a string, WeChat a number).
    pub created_at: i64,
}

#[derive(Deserialize)]
struct UploadAnswer {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    media_id: Option<String>,
    #[serde(default)]
    thumb_media_id: Option<String>,
    #[serde(default)]
    created_at: serde_json::Value,
}

/// How much of a JSON-looking answer is read to look for an error.
const JSON_PEEK: usize = 64 * 1024;

/// A file being received: its headers, then its bytes chunk by chunk.
pub struct MediaStream {
    /// `Content-Type` as sent, parameters included.
    pub content_type: Option<String>,
    /// From `Content-Disposition`, when sent.
    pub filename: Option<String>,
    /// `Content-Length`, when sent (checked against limits before reading).
    pub content_length: Option<u64>,
    prefix: Option<Bytes>,
    res: Option<reqwest::Response>,
}

impl std::fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStream")
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl MediaStream {
    fn new(res: reqwest::Response) -> Self {
        let header = |name: reqwest::header::HeaderName| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            content_type: header(reqwest::header::CONTENT_TYPE),
            filename: header(reqwest::header::CONTENT_DISPOSITION)
                .as_deref()
                .and_then(disposition_filename),
            content_length: res.content_length(),
            prefix: None,
            res: Some(res),
        }
    }

    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        if let Some(p) = self.prefix.take() {
            return Ok(Some(p));
        }
        match &mut self.res {
            Some(res) => res.chunk().await.map_err(ApiError::from_reqwest),
            None => Ok(None),
        }
    }
}

/// GETs a plain URL (an OA image's `PicUrl`, a video's `video_url`): no
/// access token. Only `http` and `https` URLs are fetched.
pub async fn fetch_url(http: &reqwest::Client, url: &str) -> Result<MediaStream, ApiError> {
    let parsed = url::Url::parse(url).map_err(|e| ApiError::Unsupported(format!("URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::Unsupported(format!(
            "URL scheme {} is not fetched",
            parsed.scheme()
        )));
    }
    let res = http
        .get(parsed)
        .send()
        .await
        .map_err(ApiError::from_reqwest)?;
    if !res.status().is_success() {
        return Err(ApiError::Http(res.status().as_u16()));
    }
    Ok(MediaStream::new(res))
}

impl ApiClient {
    /// `media/upload?type=…`: uploads a file as temporary media (WeChat
    /// keeps it 3 days) and answers its `media_id`. Thumbs are for Official
    /// Accounts only, files for WeCom only. Retried once after a token
    /// refresh (the form is rebuilt).
    pub async fn media_upload(
        &self,
        kind: UploadKind,
        filename: &str,
        content_type: &str,
        data: Bytes,
    ) -> Result<UploadedMedia, ApiError> {
        match kind {
            UploadKind::Thumb => self.require(ApiFamily::OfficialAccount, "a thumb upload")?,
            UploadKind::File => self.require(ApiFamily::WeCom, "a file upload")?,
            _ => {}
        }
        let len = data.len() as u64;
        let form = || {
            let part = || {
                reqwest::multipart::Part::stream_with_length(reqwest::Body::from(data.clone()), len)
                    .file_name(filename.to_owned())
            };
            let part = part().mime_str(content_type).unwrap_or_else(|_| {
                part()
                    .mime_str("application/octet-stream")
                    .unwrap_or_else(|_| part())
            });
            reqwest::multipart::Form::new().part("media", part)
        };
        let answer: UploadAnswer = self
            .call_json(reqwest::Method::POST, "media/upload", |rb| {
                rb.query(&[("type", kind.as_str())]).multipart(form())
            })
            .await?;
        let media_id = answer
            .media_id
            .or(answer.thumb_media_id)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::Decode("media/upload answered no media_id".into()))?;
        let created_at = match &answer.created_at {
            serde_json::Value::Number(n) => n.as_i64().unwrap_or_default(),
            serde_json::Value::String(s) => s.parse().unwrap_or_default(),
            _ => 0,
        };
        Ok(UploadedMedia {
            kind: if answer.kind.is_empty() {
                kind.as_str().to_owned()
            } else {
                answer.kind
            },
            media_id,
            created_at,
        })
    }

    /// `media/get?media_id=…`: the file, as a stream. A JSON answer is an
    /// error (`{errcode}` decoded into [`ApiError`]) or, for OA videos, a
    /// `video_url` that is fetched instead. A rejected token is refreshed
    /// and the call retried once.
    pub async fn media_get(&self, media_id: &str) -> Result<MediaStream, ApiError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let res = self
                .http
                .get(self.url("media/get"))
                .query(&[("access_token", &*token), ("media_id", media_id)])
                .send()
                .await
                .map_err(ApiError::from_reqwest)?;
            if !res.status().is_success() {
                return Err(ApiError::Http(res.status().as_u16()));
            }
            let mut stream = MediaStream::new(res);
            if !looks_like_json(stream.content_type.as_deref()) {
                return Ok(stream);
            }
            // Read a little: an error is small JSON; a text file may not be.
            let mut head = Vec::new();
            while head.len() <= JSON_PEEK {
                match stream.chunk().await? {
                    Some(c) => head.extend_from_slice(&c),
                    None => {
                        stream.res = None;
                        break;
                    }
                }
            }
            let value = if stream.res.is_none() {
                serde_json::from_slice::<serde_json::Value>(&head).ok()
            } else {
                None
            };
            let Some(value) =
                value.filter(|v| v.get("errcode").is_some() || v.get("video_url").is_some())
            else {
                stream.prefix = Some(Bytes::from(head));
                return Ok(stream);
            };
            match check_errcode(&value) {
                Ok(()) => {
                    let url = value
                        .get("video_url")
                        .and_then(|u| u.as_str())
                        .unwrap_or_default();
                    return fetch_url(&self.http, url).await;
                }
                Err(e) if e.class() == ErrorClass::Token && !retried => {
                    tracing::warn!(app_id = %self.cfg.app_id, code = ?e.code(), "access token rejected on media/get; refreshing once");
                    self.invalidate(&token).await;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn looks_like_json(content_type: Option<&str>) -> bool {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    ct.starts_with("application/json")
        || ct.starts_with("text/plain")
        || ct.starts_with("text/json")
}

/// `filename` of a `Content-Disposition` header (quoted or not).
pub fn disposition_filename(header: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("filename"))
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|f| !f.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_filenames() {
        assert_eq!(
            disposition_filename("attachment; filename=\"a b.jpg\"").as_deref(),
            Some("a b.jpg")
        );
        assert_eq!(
            disposition_filename("attachment; filename=x.amr").as_deref(),
            Some("x.amr")
        );
        assert_eq!(disposition_filename("attachment"), None);
    }

    #[test]
    fn json_answers_are_recognised() {
        assert!(looks_like_json(Some("application/json; encoding=utf-8")));
        assert!(looks_like_json(Some("text/plain")));
        assert!(!looks_like_json(Some("image/jpeg")));
        assert!(!looks_like_json(None));
    }
}
