//! What an agent may send from the console, by channel: the pure rules.
//!
//! The kind of a file is decided by its content (magic bytes); the name and
//! declared type only count to refuse a file that claims to be a picture,
//! sound or video but is not. Per channel (PROTOCOL.md §3.5, WeCom's
//! `media/upload`):
//!
//! | kind  | Official Account            | WeCom Customer Service            |
//! |-------|-----------------------------|-----------------------------------|
//! | image | jpg, png, gif, ≤ 2 MB       | jpg, png, ≤ 10 MB                 |
//! | voice | amr, mp3, ≤ 2 MB            | amr, ≤ 2 MB                       |
//! | video | mp4, ≤ 10 MB                | mp4, ≤ 10 MB                      |
//! | file  | refused (no `file` message) | anything else, 6 bytes to 20 MB   |
//!
//! Web chat (the widget) plays what a browser plays: pictures (jpg, png,
//! gif, webp), sound (amr, mp3, ogg, webm, m4a, wav: what browsers record
//! is webm or ogg Opus, or m4a), video (mp4, webm, mov), and any other file,
//! to the store's limits (`media.max_*_bytes`). Visitors' uploads follow
//! the same rules.
//!
//! The Official Account image limit is WeChat's smaller documented one
//! (its page states both 10 MB and 2 MB). On WeCom, whose `image` and
//! `voice` take only JPG/PNG and AMR, a GIF or an MP3 goes as a file.
//! The store's own limits (`media.max_*_bytes`) apply too, whichever is
//! smaller.

use super::rules::{self, MediaKind};
use crate::config::MediaSettings;
use crate::store::messages::Channel;

const MB: u64 = 1024 * 1024;

/// How many leading bytes decide a file's kind.
pub const HEAD: usize = 64;

/// WeCom refuses media of 5 bytes or fewer.
const WECOM_MIN_BYTES: u64 = 6;

/// What an accepted upload is sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sendable {
    pub kind: MediaKind,
    /// The type recorded in the media store.
    pub content_type: String,
}

/// Why an upload is refused; the text is for the agent, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("文件是空的。The file is empty.")]
    Empty,
    #[error(
        "文件太小（企业微信要求超过 5 字节）。The file is too small (WeCom needs more than 5 bytes)."
    )]
    TooSmall,
    #[error("{}超过 {}，无法发送。The {} is larger than {}.", .kind.label_zh(), rules::human_size(*.limit), .kind.label_en(), rules::human_size(*.limit))]
    TooLarge { kind: MediaKind, limit: u64 },
    /// The name or declared type says picture, sound or video; the content
    /// is not one WeChat takes.
    #[error("文件内容与其名称或类型不符，不是可发送的{}（允许：{}）。The file's content does not match its name or type: it is not a valid {} to send here (allowed: {}).", .claimed.label_zh(), allowed(*.channel, *.claimed), .claimed.label_en(), allowed(*.channel, *.claimed))]
    NotWhatItClaims {
        claimed: MediaKind,
        channel: Channel,
    },
    #[error("上传中断，请重新发送。The upload was interrupted; send it again.")]
    Interrupted,
    #[error(
        "公众号客服消息不能发送文件，只能发送图片（jpg/png/gif）、语音（amr/mp3）和视频（mp4）。The Official Account customer-service API cannot send files: only images (jpg/png/gif), voice (amr/mp3) and video (mp4)."
    )]
    NoFilesOnOfficialAccounts,
}

/// The formats the channel sends as `kind`, for messages.
fn allowed(channel: Channel, kind: MediaKind) -> &'static str {
    match (channel, kind) {
        (Channel::OfficialAccount, MediaKind::Image) => "jpg, png, gif",
        (Channel::WecomKf, MediaKind::Image) => "jpg, png",
        (Channel::OfficialAccount, MediaKind::Voice) => "amr, mp3",
        (Channel::WecomKf, MediaKind::Voice) => "amr",
        (Channel::Web, MediaKind::Image) => "jpg, png, gif, webp",
        (Channel::Web, MediaKind::Voice) => "amr, mp3, ogg, webm, m4a, wav",
        (Channel::Web, MediaKind::Video) => "mp4, webm, mov",
        (_, MediaKind::Video) => "mp4",
        (_, MediaKind::File) => "any",
    }
}

/// The channel's limit for `kind`, never above the store's.
pub fn limit(channel: Channel, kind: MediaKind, store: &MediaSettings) -> u64 {
    let channel_limit = match (channel, kind) {
        (Channel::OfficialAccount, MediaKind::Image) => 2 * MB,
        (Channel::WecomKf, MediaKind::Image) => 10 * MB,
        (Channel::OfficialAccount | Channel::WecomKf, MediaKind::Voice) => 2 * MB,
        (Channel::OfficialAccount | Channel::WecomKf, MediaKind::Video) => 10 * MB,
        (Channel::OfficialAccount, MediaKind::File) => 0,
        (Channel::WecomKf, MediaKind::File) => 20 * MB,
        (Channel::Web, _) => u64::MAX,
    };
    channel_limit.min(kind.limit(store))
}

/// The largest upload the channel takes at all (a declared length over it
/// is refused before anything is read).
pub fn largest(channel: Channel, store: &MediaSettings) -> u64 {
    [
        MediaKind::Image,
        MediaKind::Voice,
        MediaKind::Video,
        MediaKind::File,
    ]
    .into_iter()
    .map(|k| limit(channel, k, store))
    .max()
    .unwrap_or(0)
}

/// What the content is, by its first bytes only: the media types WeChat
/// sends as such, else `None`.
fn sniff_media(head: &[u8]) -> Option<(MediaKind, &'static str)> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some((MediaKind::Image, "image/jpeg"))
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some((MediaKind::Image, "image/png"))
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some((MediaKind::Image, "image/gif"))
    } else if starts(b"#!AMR\n") {
        Some((MediaKind::Voice, "audio/amr"))
    } else if starts(b"ID3") || mp3_frame(head) {
        Some((MediaKind::Voice, "audio/mpeg"))
    } else if head.get(4..8) == Some(b"ftyp") {
        // ISO media: MP4 video unless its brand says audio-only or QuickTime.
        match head.get(8..12) {
            Some(b"M4A " | b"M4B " | b"M4P " | b"qt  ") | None => None,
            Some(_) => Some((MediaKind::Video, "video/mp4")),
        }
    } else {
        None
    }
}

/// An MPEG audio layer III frame header (sync, a version, layer III, a
/// valid bitrate and sample rate).
fn mp3_frame(h: &[u8]) -> bool {
    h.len() >= 3
        && h[0] == 0xFF
        && h[1] & 0xE0 == 0xE0
        && (h[1] >> 3) & 0b11 != 0b01
        && (h[1] >> 1) & 0b11 == 0b01
        && h[2] >> 4 != 0b1111
        && h[2] >> 4 != 0
        && (h[2] >> 2) & 0b11 != 0b11
}

/// The kind a name or declared type claims, if a media one.
fn claimed(name: Option<&str>, declared: Option<&str>) -> Option<MediaKind> {
    let ext = name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let by_ext = match ext.as_deref() {
        Some("jpg" | "jpeg" | "png" | "gif" | "webp" | "bmp") => Some(MediaKind::Image),
        Some("amr" | "mp3") => Some(MediaKind::Voice),
        Some("mp4") => Some(MediaKind::Video),
        _ => None,
    };
    let ct = rules::normalize(declared.unwrap_or(""));
    let by_type = if ct.starts_with("image/") && ct != "image/svg+xml" {
        Some(MediaKind::Image)
    } else if ct == "audio/amr" || ct == "audio/mpeg" {
        Some(MediaKind::Voice)
    } else if ct == "video/mp4" {
        Some(MediaKind::Video)
    } else {
        None
    };
    by_type.or(by_ext)
}

/// Whether the channel sends content of this type as `kind` itself (else,
/// on WeCom, as a file).
fn channel_takes(channel: Channel, content_type: &str) -> bool {
    match channel {
        Channel::OfficialAccount | Channel::Web => true,
        Channel::WecomKf => !matches!(content_type, "image/gif" | "audio/mpeg"),
    }
}

/// What a file whose first bytes are `head` is sent as on `channel`; `name`
/// and `declared` are what the browser said. Sizes are checked apart
/// ([`check_size`]).
pub fn classify(
    channel: Channel,
    head: &[u8],
    name: Option<&str>,
    declared: Option<&str>,
) -> Result<Sendable, Refused> {
    if head.is_empty() {
        return Err(Refused::Empty);
    }
    if channel == Channel::Web {
        return classify_web(head, name, declared);
    }
    let sniffed = sniff_media(head).filter(|(_, ct)| channel_takes(channel, ct));
    if let Some((kind, ct)) = sniffed {
        return Ok(Sendable {
            kind,
            content_type: ct.into(),
        });
    }
    if let Some(claimed) = claimed(name, declared) {
        // A GIF or MP3 on WeCom is what it claims, sent as a file.
        let honest = sniff_media(head).is_some_and(|(k, _)| k == claimed);
        if !honest {
            return Err(Refused::NotWhatItClaims { claimed, channel });
        }
    }
    if channel == Channel::OfficialAccount {
        return Err(Refused::NoFilesOnOfficialAccounts);
    }
    // Any file: its declared type if specific (active content is defused
    // by the store), else what the bytes look like.
    let declared = declared.map(rules::normalize).filter(|d| {
        !d.is_empty() && d != "application/octet-stream" && claimed(None, Some(d)).is_none()
    });
    let content_type = declared
        .or_else(|| {
            sniff_media(head)
                .map(|(_, ct)| ct.to_owned())
                .or_else(|| rules::sniff(MediaKind::File, head).map(str::to_owned))
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(Sendable {
        kind: MediaKind::File,
        content_type,
    })
}

/// [`classify`] for web chat: what a browser plays goes as such, a file
/// that claims to be a picture, sound or video and is none is refused, and
/// anything else is a file.
fn classify_web(
    head: &[u8],
    name: Option<&str>,
    declared: Option<&str>,
) -> Result<Sendable, Refused> {
    let declared_ct = rules::normalize(declared.unwrap_or(""));
    let says_audio = declared_ct.starts_with("audio/")
        || name.is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            [".m4a", ".ogg", ".opus", ".weba", ".mp3", ".amr", ".wav"]
                .iter()
                .any(|e| n.ends_with(e))
        });
    if let Some((kind, content_type)) = sniff_web(head, says_audio) {
        return Ok(Sendable {
            kind,
            content_type: content_type.into(),
        });
    }
    let claimed = claimed(name, declared).or(match declared_ct.split('/').next() {
        Some("audio") => Some(MediaKind::Voice),
        Some("video") => Some(MediaKind::Video),
        _ => None,
    });
    if let Some(claimed) = claimed {
        return Err(Refused::NotWhatItClaims {
            claimed,
            channel: Channel::Web,
        });
    }
    let content_type = Some(declared_ct)
        .filter(|d| d != "application/octet-stream")
        .or_else(|| rules::sniff(MediaKind::File, head).map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(Sendable {
        kind: MediaKind::File,
        content_type,
    })
}

/// What a browser plays, by its first bytes; `audio`: the file says it is
/// sound (a recording in a webm or MP4 container is told from a video so).
fn sniff_web(head: &[u8], audio: bool) -> Option<(MediaKind, &'static str)> {
    let starts = |m: &[u8]| head.starts_with(m);
    if let Some(found) = sniff_media(head) {
        return Some(match found {
            (MediaKind::Video, _) if audio => (MediaKind::Voice, "audio/mp4"),
            found => found,
        });
    }
    Some(if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        (MediaKind::Image, "image/webp")
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        (MediaKind::Voice, "audio/wav")
    } else if starts(b"OggS") {
        (MediaKind::Voice, "audio/ogg")
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // Matroska/WebM: MediaRecorder's sound in Chromium and Firefox.
        if audio {
            (MediaKind::Voice, "audio/webm")
        } else {
            (MediaKind::Video, "video/webm")
        }
    } else if head.get(4..8) == Some(b"ftyp") {
        match head.get(8..12) {
            Some(b"M4A " | b"M4B ") => (MediaKind::Voice, "audio/mp4"),
            Some(b"qt  ") => (MediaKind::Video, "video/quicktime"),
            _ => return None,
        }
    } else {
        return None;
    })
}

/// Checks a size (declared or received) against the channel's limit.
pub fn check_size(
    channel: Channel,
    kind: MediaKind,
    size: u64,
    store: &MediaSettings,
) -> Result<(), Refused> {
    let limit = limit(channel, kind, store);
    if size == 0 {
        Err(Refused::Empty)
    } else if size > limit {
        Err(Refused::TooLarge { kind, limit })
    } else if channel == Channel::WecomKf && size < WECOM_MIN_BYTES {
        Err(Refused::TooSmall)
    } else {
        Ok(())
    }
}

/// A file name safe to keep and to hand to WeChat: the last path part,
/// no control characters or quotes, at most 100 characters; `None` if
/// nothing is left.
pub fn clean_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '|' | '*' | '?' | ':'))
        .take(100)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OA: Channel = Channel::OfficialAccount;
    const KF: Channel = Channel::WecomKf;
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0";
    const AMR: &[u8] = b"#!AMR\n\x3c\x48";
    const MP3: &[u8] = b"ID3\x04\0\0\0\0\0\0";
    const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n%";

    fn kind(c: Channel, head: &[u8], name: &str, ct: Option<&str>) -> Result<MediaKind, Refused> {
        classify(c, head, Some(name), ct).map(|s| s.kind)
    }

    #[test]
    fn the_content_decides_the_kind() {
        assert_eq!(
            kind(OA, PNG, "a.png", Some("image/png")),
            Ok(MediaKind::Image)
        );
        assert_eq!(kind(OA, JPG, "whatever.bin", None), Ok(MediaKind::Image));
        assert_eq!(kind(OA, GIF, "a.gif", None), Ok(MediaKind::Image));
        assert_eq!(kind(OA, AMR, "v.amr", None), Ok(MediaKind::Voice));
        assert_eq!(
            kind(OA, MP3, "v.mp3", Some("audio/mpeg")),
            Ok(MediaKind::Voice)
        );
        assert_eq!(
            kind(OA, b"\xFF\xFB\x90\x64\0\0", "v.mp3", None),
            Ok(MediaKind::Voice)
        );
        assert_eq!(
            kind(OA, MP4, "v.mp4", Some("video/mp4")),
            Ok(MediaKind::Video)
        );
        assert_eq!(
            kind(KF, PDF, "报价单.pdf", Some("application/pdf")),
            Ok(MediaKind::File)
        );
        let s = classify(KF, PNG, Some("x"), Some("application/octet-stream")).unwrap();
        assert_eq!(s.content_type, "image/png");
    }

    #[test]
    fn a_name_or_type_that_lies_is_refused() {
        let html = b"<html><script>alert(1)</script>";
        for c in [OA, KF] {
            assert_eq!(
                kind(c, html, "photo.jpg", Some("image/jpeg")),
                Err(Refused::NotWhatItClaims {
                    claimed: MediaKind::Image,
                    channel: c
                })
            );
            assert!(matches!(
                kind(c, PDF, "song.mp3", None),
                Err(Refused::NotWhatItClaims { .. })
            ));
            assert!(matches!(
                kind(c, PDF, "x", Some("video/mp4")),
                Err(Refused::NotWhatItClaims { .. })
            ));
        }
        // An m4a or QuickTime file is not an mp4 video.
        assert!(matches!(
            kind(OA, b"\0\0\0\x20ftypM4A \0\0", "v.mp4", None),
            Err(Refused::NotWhatItClaims { .. })
        ));
        assert!(kind(OA, b"\0\0\0\x14ftypqt  \0\0", "v.mov", None).is_err());
    }

    #[test]
    fn official_accounts_send_no_files() {
        assert_eq!(
            kind(OA, PDF, "a.pdf", Some("application/pdf")),
            Err(Refused::NoFilesOnOfficialAccounts)
        );
        assert_eq!(
            kind(OA, b"hello world", "a.txt", None),
            Err(Refused::NoFilesOnOfficialAccounts)
        );
        assert_eq!(classify(OA, b"", None, None), Err(Refused::Empty));
        assert!(
            Refused::NoFilesOnOfficialAccounts
                .to_string()
                .contains("cannot send files")
        );
    }

    #[test]
    fn wecom_takes_only_jpg_png_and_amr_as_media_the_rest_as_files() {
        assert_eq!(kind(KF, PNG, "a.png", None), Ok(MediaKind::Image));
        assert_eq!(kind(KF, AMR, "a.amr", None), Ok(MediaKind::Voice));
        let gif = classify(KF, GIF, Some("a.gif"), Some("image/gif")).unwrap();
        assert_eq!(
            (gif.kind, gif.content_type.as_str()),
            (MediaKind::File, "image/gif")
        );
        assert_eq!(kind(KF, MP3, "a.mp3", None), Ok(MediaKind::File));
        // A declared active type is left for the store to defuse.
        let t = classify(KF, b"<svg", Some("a.svg"), Some("image/svg+xml")).unwrap();
        assert_eq!(t.kind, MediaKind::File);
        let z = classify(KF, b"PK\x03\x04....", Some("a.zip"), None).unwrap();
        assert_eq!(z.content_type, "application/zip");
    }

    #[test]
    fn limits_per_channel_and_kind() {
        let s = MediaSettings::default();
        assert_eq!(limit(OA, MediaKind::Image, &s), 2 * MB);
        assert_eq!(limit(KF, MediaKind::Image, &s), 10 * MB);
        assert_eq!(limit(OA, MediaKind::Voice, &s), 2 * MB);
        assert_eq!(limit(KF, MediaKind::Video, &s), 10 * MB);
        assert_eq!(limit(KF, MediaKind::File, &s), 20 * MB);
        assert_eq!(limit(OA, MediaKind::File, &s), 0);
        assert_eq!(largest(OA, &s), 10 * MB);
        assert_eq!(largest(KF, &s), 20 * MB);
        assert_eq!(check_size(OA, MediaKind::Image, 2 * MB, &s), Ok(()));
        assert_eq!(
            check_size(OA, MediaKind::Image, 2 * MB + 1, &s),
            Err(Refused::TooLarge {
                kind: MediaKind::Image,
                limit: 2 * MB
            })
        );
        assert_eq!(
            check_size(KF, MediaKind::File, 5, &s),
            Err(Refused::TooSmall)
        );
        assert_eq!(check_size(OA, MediaKind::Image, 5, &s), Ok(()));
        assert_eq!(check_size(KF, MediaKind::File, 0, &s), Err(Refused::Empty));
        let small = MediaSettings {
            max_image_bytes: 1000,
            ..MediaSettings::default()
        };
        assert_eq!(
            limit(KF, MediaKind::Image, &small),
            1000,
            "the store's limit wins when smaller"
        );
        assert!(
            Refused::TooLarge {
                kind: MediaKind::Image,
                limit: 2 * MB
            }
            .to_string()
            .contains("larger than 2 MB")
        );
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(
            clean_name("C:\\Users\\a\\报价单.pdf").as_deref(),
            Some("报价单.pdf")
        );
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("a\"b\n.png").as_deref(), Some("ab.png"));
        assert_eq!(clean_name("..."), None);
        assert_eq!(clean_name(""), None);
        assert_eq!(clean_name(&"x".repeat(300)).unwrap().chars().count(), 100);
    }

    #[test]
    fn web_chat_takes_what_a_browser_plays() {
        const WEB: Channel = Channel::Web;
        let sent = |head: &[u8], name: &str, ct: Option<&str>| {
            classify(WEB, head, Some(name), ct).map(|s| (s.kind, s.content_type))
        };
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01";
        let ok = |k: MediaKind, ct: &str| Ok((k, ct.to_owned()));
        assert_eq!(sent(PNG, "a.png", None), ok(MediaKind::Image, "image/png"));
        assert_eq!(
            sent(b"RIFF\0\0\0\0WEBPVP8 ", "a.webp", None),
            ok(MediaKind::Image, "image/webp")
        );
        // Recordings: MediaRecorder's WebM or Ogg Opus, Safari's MP4.
        assert_eq!(
            sent(webm, "voice.webm", Some("audio/webm;codecs=opus")),
            ok(MediaKind::Voice, "audio/webm")
        );
        assert_eq!(
            sent(webm, "clip.webm", Some("video/webm")),
            ok(MediaKind::Video, "video/webm")
        );
        assert_eq!(
            sent(b"OggS\0\x02", "v.ogg", None),
            ok(MediaKind::Voice, "audio/ogg")
        );
        assert_eq!(
            sent(MP4, "voice.mp4", Some("audio/mp4")),
            ok(MediaKind::Voice, "audio/mp4")
        );
        assert_eq!(
            sent(b"\0\0\0\x18ftypM4A \0", "v.m4a", None),
            ok(MediaKind::Voice, "audio/mp4")
        );
        assert_eq!(sent(MP4, "v.mp4", None), ok(MediaKind::Video, "video/mp4"));
        assert_eq!(
            sent(
                b"\0\0\0\x14ftypqt  \0",
                "IMG_1.MOV",
                Some("video/quicktime")
            ),
            ok(MediaKind::Video, "video/quicktime")
        );
        assert_eq!(sent(AMR, "v.amr", None), ok(MediaKind::Voice, "audio/amr"));
        // Files: anything else, under its declared type.
        assert_eq!(
            sent(PDF, "合同.pdf", Some("application/pdf")),
            ok(MediaKind::File, "application/pdf")
        );
        assert_eq!(
            sent(b"hello", "notes.txt", None),
            ok(MediaKind::File, "application/octet-stream")
        );
        // A claim the content does not bear out is refused.
        for (name, ct) in [
            ("a.png", Some("image/png")),
            ("a.bin", Some("audio/webm")),
            ("a.bin", Some("video/mp4")),
            ("a.jpg", None),
        ] {
            assert!(
                matches!(
                    sent(b"<script>", name, ct),
                    Err(Refused::NotWhatItClaims { .. })
                ),
                "{name} {ct:?}"
            );
        }
        assert_eq!(classify(WEB, b"", None, None), Err(Refused::Empty));
        // The store's limits, nothing smaller.
        let store = MediaSettings::default();
        for k in [
            MediaKind::Image,
            MediaKind::Voice,
            MediaKind::Video,
            MediaKind::File,
        ] {
            assert_eq!(limit(WEB, k, &store), k.limit(&store));
        }
        assert_eq!(check_size(WEB, MediaKind::File, 3, &store), Ok(()));
    }
}
