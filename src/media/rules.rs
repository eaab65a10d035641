//! The pure rules of the media store: kinds and their limits, allowed
//! content types, sniffing by magic bytes, content-addressed paths, and
//! where an inbound message keeps its media id.

use serde_json::Value;

use crate::config::MediaSettings;

/// What a stored file is, for limits, allowed types and uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Voice,
    Video,
    /// Any other file (WeCom kf `file` messages, agents' attachments).
    File,
}

const IMAGE_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/bmp",
];
const VOICE_TYPES: &[&str] = &[
    "audio/amr",
    "audio/mpeg",
    "audio/speex",
    "audio/x-speex",
    "audio/silk",
    "audio/x-silk",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/mp4",
    "audio/aac",
    "audio/webm",
];
const VIDEO_TYPES: &[&str] = &["video/mp4", "video/webm", "video/quicktime"];

/// Types a browser would run or render as a page: stored as
/// `application/octet-stream` so they are only ever downloaded.
const ACTIVE_TYPES: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "text/ecmascript",
    "image/svg+xml",
    "text/xml",
    "application/xml",
];

/// A declared type that says nothing: sniff instead.
const GENERIC: &str = "application/octet-stream";

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::File => "file",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            MediaKind::Image => "图片",
            MediaKind::Voice => "语音",
            MediaKind::Video => "视频",
            MediaKind::File => "文件",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice message",
            MediaKind::Video => "video",
            MediaKind::File => "file",
        }
    }

    /// The configured size limit.
    pub fn limit(self, s: &MediaSettings) -> u64 {
        match self {
            MediaKind::Image => s.max_image_bytes,
            MediaKind::Voice => s.max_voice_bytes,
            MediaKind::Video => s.max_video_bytes,
            MediaKind::File => s.max_file_bytes,
        }
    }

    /// The allowed content types; `None` for files (anything).
    pub fn allowed(self) -> Option<&'static [&'static str]> {
        match self {
            MediaKind::Image => Some(IMAGE_TYPES),
            MediaKind::Voice => Some(VOICE_TYPES),
            MediaKind::Video => Some(VIDEO_TYPES),
            MediaKind::File => None,
        }
    }

    /// The kind a stored content type is sent as.
    pub fn of_content_type(ct: &str) -> MediaKind {
        let ct = normalize(ct);
        if IMAGE_TYPES.contains(&ct.as_str()) {
            MediaKind::Image
        } else if VOICE_TYPES.contains(&ct.as_str()) {
            MediaKind::Voice
        } else if VIDEO_TYPES.contains(&ct.as_str()) {
            MediaKind::Video
        } else {
            MediaKind::File
        }
    }
}

/// Lower case, no parameters, with common aliases mapped to one name.
pub fn normalize(ct: &str) -> String {
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "audio/mp3" | "audio/x-mp3" | "audio/mpeg3" => "audio/mpeg".into(),
        "video/mpeg4" | "video/x-mp4" => "video/mp4".into(),
        "audio/x-amr" | "audio/amr-wb" => "audio/amr".into(),
        "binary/octet-stream" | "application/x-download" | "application/force-download" | "" => {
            GENERIC.into()
        }
        _ => base,
    }
}

/// The type of `head` (the first bytes of a file) by its magic number.
pub fn sniff(kind: MediaKind, head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    Some(if starts(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        "audio/wav"
    } else if starts(b"BM") && kind == MediaKind::Image {
        "image/bmp"
    } else if starts(b"#!AMR") {
        "audio/amr"
    } else if starts(b"#!SILK") || starts(b"\x02#!SILK") {
        "audio/silk"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"ID3") || (head.len() > 1 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        "audio/mpeg"
    } else if head.get(4..8) == Some(b"ftyp") {
        if kind == MediaKind::Voice {
            "audio/mp4"
        } else {
            "video/mp4"
        }
    } else if starts(b"%PDF-") {
        "application/pdf"
    } else if starts(b"PK\x03\x04") {
        "application/zip"
    } else {
        return None;
    })
}

/// The content type to record for a file of `kind` declared as `declared`
/// whose first bytes are `head`, or the list of allowed types when refused.
/// A missing or generic declared type is replaced by the sniffed one.
/// Files take any type, but active content (HTML, scripts, SVG) is recorded
/// as `application/octet-stream`.
pub fn accept(kind: MediaKind, declared: Option<&str>, head: &[u8]) -> Result<String, String> {
    let declared = normalize(declared.unwrap_or(""));
    let ct = if declared == GENERIC {
        sniff(kind, head).map_or(declared, str::to_owned)
    } else {
        declared
    };
    match kind.allowed() {
        None if ACTIVE_TYPES.contains(&ct.as_str()) => Ok(GENERIC.into()),
        None => Ok(ct),
        Some(list) if list.contains(&ct.as_str()) => Ok(ct),
        Some(list) => Err(list.join(", ")),
    }
}

/// Whether the console may show the type inline (pictures, sound, video);
/// everything else is served as an attachment.
pub fn inline(ct: &str) -> bool {
    let ct = normalize(ct);
    (ct.starts_with("image/") && ct != "image/svg+xml")
        || ct.starts_with("audio/")
        || ct.starts_with("video/")
}

/// A file name extension for a content type (uploads need one).
pub fn extension(ct: &str) -> &'static str {
    match normalize(ct).as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "audio/amr" => "amr",
        "audio/mpeg" => "mp3",
        "audio/speex" | "audio/x-speex" => "spx",
        "audio/silk" | "audio/x-silk" => "silk",
        "audio/ogg" => "ogg",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/mp4" => "m4a",
        "audio/aac" => "aac",
        "audio/webm" => "weba",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        _ => "bin",
    }
}

/// The path of a content under the media folder: `ab/cd/abcd…`.
pub fn object_path(sha256_hex: &str) -> String {
    let h = sha256_hex;
    format!("{}/{}/{h}", &h[..2], &h[2..4])
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `10 MB`, `64 KB`, `1500 bytes`.
pub fn human_size(n: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if n >= MB && n.is_multiple_of(MB) {
        format!("{} MB", n / MB)
    } else if n >= MB {
        format!("{:.1} MB", n as f64 / MB as f64)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Where an inbound message's media is: its kind, the WeChat media id and,
/// for OA images, the `PicUrl` to fall back on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    pub kind: MediaKind,
    pub media_id: String,
    pub pic_url: Option<String>,
}

/// The media of a stored inbound message (`channel`, `msg_type` and
/// `payload` as in `messages`), or `None` when it has none.
pub fn source_of(channel: &str, msg_type: &str, payload: &str) -> Option<MediaSource> {
    match channel {
        "oa" => {
            let kind = match msg_type {
                "image" => MediaKind::Image,
                "voice" => MediaKind::Voice,
                "video" | "shortvideo" => MediaKind::Video,
                _ => return None,
            };
            let fields = crate::wechat::xml::parse_fields(payload).ok()?;
            let non_empty = |k: &str| {
                fields
                    .get(k)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            };
            Some(MediaSource {
                kind,
                media_id: non_empty("MediaId")?,
                pic_url: non_empty("PicUrl").filter(|_| kind == MediaKind::Image),
            })
        }
        "wecom_kf" => {
            let kind = match msg_type {
                "image" => MediaKind::Image,
                "voice" => MediaKind::Voice,
                "video" => MediaKind::Video,
                "file" => MediaKind::File,
                _ => return None,
            };
            let v: Value = serde_json::from_str(payload).ok()?;
            let media_id = v.get(msg_type)?.get("media_id")?.as_str()?.trim();
            (!media_id.is_empty()).then(|| MediaSource {
                kind,
                media_id: media_id.to_owned(),
                pic_url: None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_content_addressed() {
        let h = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(object_path(h), format!("ab/cd/{h}"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn content_types_are_checked_per_kind() {
        let png = b"\x89PNG\r\n\x1a\n....";
        assert_eq!(
            accept(MediaKind::Image, Some("image/PNG; q=1"), png).unwrap(),
            "image/png"
        );
        assert_eq!(
            accept(MediaKind::Image, Some("image/jpg"), b"").unwrap(),
            "image/jpeg"
        );
        assert_eq!(accept(MediaKind::Image, None, png).unwrap(), "image/png");
        assert_eq!(
            accept(
                MediaKind::Image,
                Some("application/octet-stream"),
                b"\xFF\xD8\xFF\xE0"
            )
            .unwrap(),
            "image/jpeg"
        );
        assert!(accept(MediaKind::Image, Some("text/html"), b"<html>").is_err());
        assert!(accept(MediaKind::Image, None, b"unknown").is_err());
        assert_eq!(
            accept(MediaKind::Voice, Some("audio/mp3"), b"").unwrap(),
            "audio/mpeg"
        );
        assert_eq!(
            accept(MediaKind::Voice, None, b"#!AMR\n").unwrap(),
            "audio/amr"
        );
        assert_eq!(
            accept(MediaKind::Video, Some("video/mpeg4"), b"").unwrap(),
            "video/mp4"
        );
        assert_eq!(
            accept(MediaKind::Video, None, b"\0\0\0\x18ftypmp42").unwrap(),
            "video/mp4"
        );
        assert!(accept(MediaKind::Video, Some("video/x-msvideo"), b"").is_err());
        assert_eq!(
            accept(MediaKind::File, Some("application/pdf"), b"").unwrap(),
            "application/pdf"
        );
        assert_eq!(
            accept(MediaKind::File, Some("text/html"), b"").unwrap(),
            GENERIC
        );
        assert_eq!(
            accept(MediaKind::File, Some("image/svg+xml"), b"").unwrap(),
            GENERIC
        );
        assert_eq!(
            accept(MediaKind::File, None, b"%PDF-1.4").unwrap(),
            "application/pdf"
        );
    }

    #[test]
    fn only_pictures_sound_and_video_are_inline() {
        assert!(inline("image/png"));
        assert!(inline("audio/amr"));
        assert!(inline("video/mp4"));
        assert!(!inline("image/svg+xml"));
        assert!(!inline("application/pdf"));
        assert!(!inline("application/octet-stream"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(10 * 1024 * 1024), "10 MB");
        assert_eq!(human_size(64 * 1024), "64 KB");
        assert_eq!(human_size(1500), "1500 bytes");
        assert_eq!(MediaKind::of_content_type("audio/amr"), MediaKind::Voice);
        assert_eq!(
            MediaKind::of_content_type("application/pdf"),
            MediaKind::File
        );
        assert_eq!(extension("image/jpeg"), "jpg");
    }

    #[test]
    fn media_ids_are_found_in_payloads() {
        let xml = "<xml><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x/p.jpg]]></PicUrl>\
                   <MediaId><![CDATA[m1]]></MediaId></xml>";
        assert_eq!(
            source_of("oa", "image", xml),
            Some(MediaSource {
                kind: MediaKind::Image,
                media_id: "m1".into(),
                pic_url: Some("http://x/p.jpg".into())
            })
        );
        let sv = "<xml><MediaId>v1</MediaId><ThumbMediaId>t</ThumbMediaId></xml>";
        assert_eq!(
            source_of("oa", "shortvideo", sv).unwrap().kind,
            MediaKind::Video
        );
        assert_eq!(source_of("oa", "text", sv), None);
        let kf = r#"{"msgtype":"file","file":{"media_id":"f1"}}"#;
        assert_eq!(source_of("wecom_kf", "file", kf).unwrap().media_id, "f1");
        assert_eq!(source_of("wecom_kf", "image", kf), None);
        assert_eq!(source_of("web", "image", kf), None);
    }
}
