//! The typed model of inbound messages and events (PROTOCOL.md §2.1, §2.2,
//! §1.6) and its construction from the flat field map of
//! [`parse_fields`](super::xml::parse_fields). Parse with
//! [`xml::parse`](super::xml::parse).

use std::collections::BTreeMap;

use super::xml::{XmlError, parse_fields};

/// A decrypted (or plaintext-mode) inbound message or event.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// `ToUserName`: the OA `gh_` id or WeCom corpid.
    pub to_user: String,
    /// `FromUserName`: the user's openid / userid. Empty for WeCom kf
    /// `kf_msg_or_event` callbacks, which carry no sender.
    pub from_user: String,
    /// `CreateTime`, seconds since the Unix epoch.
    pub create_time: i64,
    /// What the callback is.
    pub kind: InboundKind,
    /// The XML it was parsed from, kept for storage and unknown fields.
    pub raw: String,
}

/// A user message or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    /// `MsgType` other than `event`.
    Message {
        /// `MsgId`, if present. Ids above `i64::MAX` keep their 64 bits
        /// (reinterpreted as negative) so they still deduplicate.
        msg_id: Option<i64>,
        /// The typed payload.
        body: MessageBody,
    },
    /// `MsgType` `event`.
    Event(Event),
}

/// Payload of a user message, by `MsgType`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageBody {
    /// `text`: `Content`.
    Text { content: String },
    /// `image`: `PicUrl`, `MediaId`.
    Image { pic_url: String, media_id: String },
    /// `voice`: `MediaId`, `Format` (amr/speex), optional `Recognition`.
    Voice {
        media_id: String,
        format: String,
        recognition: Option<String>,
    },
    /// `video`: `MediaId`, `ThumbMediaId`.
    Video {
        media_id: String,
        thumb_media_id: String,
    },
    /// `shortvideo`: `MediaId`, `ThumbMediaId`.
    ShortVideo {
        media_id: String,
        thumb_media_id: String,
    },
    /// `location`: `Location_X` (latitude), `Location_Y` (longitude), `Scale`, `Label`.
    Location {
        x: f64,
        y: f64,
        scale: i64,
        label: String,
    },
    /// `link`: `Title`, `Description`, `Url`.
    Link {
        title: String,
        description: String,
        url: String,
    },
    /// `miniprogrampage`: `Title`, `AppId`, `PagePath`, `ThumbUrl`, `ThumbMediaId`.
    MiniProgramPage {
        title: String,
        app_id: String,
        page_path: String,
        thumb_url: String,
        thumb_media_id: String,
    },
    /// Any other `MsgType`; the fields stay available in [`Inbound::raw`].
    Unknown { msg_type: String },
}

/// Event payload, by `Event` (compared case-insensitively).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `subscribe`; via a QR code `EventKey` is `qrscene_<scene>` and
    /// `scene` holds the part after the prefix.
    Subscribe {
        event_key: Option<String>,
        scene: Option<String>,
        ticket: Option<String>,
    },
    /// `unsubscribe`.
    Unsubscribe,
    /// `SCAN` by an existing follower: `EventKey` is the scene.
    Scan {
        event_key: String,
        ticket: Option<String>,
    },
    /// `LOCATION` report (every 5 s when enabled).
    Location {
        latitude: f64,
        longitude: f64,
        precision: f64,
    },
    /// `CLICK` on a menu button: its key.
    Click { event_key: String },
    /// `VIEW` of a menu link: the URL (sent as `EventKey`) and `MenuId`.
    View {
        url: String,
        menu_id: Option<String>,
    },
    /// `TEMPLATESENDJOBFINISH`: `MsgID` (note the case) and `Status`.
    TemplateSendJobFinish { msg_id: i64, status: String },
    /// `MASSSENDJOBFINISH`: `MsgID`, `Status` and counters (0 when absent).
    MassSendJobFinish {
        msg_id: i64,
        status: String,
        total_count: i64,
        filter_count: i64,
        sent_count: i64,
        error_count: i64,
    },
    /// WeCom 微信客服 `kf_msg_or_event`: pull with `sync_msg` using `Token`.
    KfMsgOrEvent { token: String, open_kf_id: String },
    /// Any other event, name as received.
    Unknown { event: String },
}

impl MessageBody {
    /// The `MsgType` of this payload (lowercase, as WeChat sends it).
    pub fn msg_type(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::ShortVideo { .. } => "shortvideo",
            Self::Location { .. } => "location",
            Self::Link { .. } => "link",
            Self::MiniProgramPage { .. } => "miniprogrampage",
            Self::Unknown { msg_type } => msg_type,
        }
    }
}

impl Event {
    /// The event name in WeChat's canonical spelling (e.g. `subscribe`, `SCAN`).
    pub fn name(&self) -> &str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Scan { .. } => "SCAN",
            Self::Location { .. } => "LOCATION",
            Self::Click { .. } => "CLICK",
            Self::View { .. } => "VIEW",
            Self::TemplateSendJobFinish { .. } => "TEMPLATESENDJOBFINISH",
            Self::MassSendJobFinish { .. } => "MASSSENDJOBFINISH",
            Self::KfMsgOrEvent { .. } => "kf_msg_or_event",
            Self::Unknown { event } => event,
        }
    }
}

impl Inbound {
    /// `MsgType`: `event` for events, else the message type.
    pub fn msg_type(&self) -> &str {
        match &self.kind {
            InboundKind::Message { body, .. } => body.msg_type(),
            InboundKind::Event(_) => "event",
        }
    }

    /// The event name for events, `None` for messages.
    pub fn event_name(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::Event(event) => Some(event.name()),
            InboundKind::Message { .. } => None,
        }
    }

    /// Whether this is an event rather than a user message.
    pub fn is_event(&self) -> bool {
        matches!(self.kind, InboundKind::Event(_))
    }

    /// The message id: `MsgId` of a message, or `MsgID` of a
    /// template / mass send job-finished event; `None` otherwise.
    pub fn msg_id(&self) -> Option<i64> {
        match &self.kind {
            InboundKind::Message { msg_id, .. } => *msg_id,
            InboundKind::Event(
                Event::TemplateSendJobFinish { msg_id, .. }
                | Event::MassSendJobFinish { msg_id, .. },
            ) => Some(*msg_id),
            InboundKind::Event(_) => None,
        }
    }

    /// The text of a `text` message.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::Message {
                body: MessageBody::Text { content },
                ..
            } => Some(content),
            _ => None,
        }
    }

    /// Any field of [`raw`](Self::raw) by path (`AgentID`, `Video/MediaId`),
    /// re-reading the XML; for fields the typed model does not cover.
    pub fn field(&self, path: &str) -> Option<String> {
        parse_fields(&self.raw).ok()?.remove(path)
    }

    /// Interprets the fields of [`parse_fields`]; `raw` is kept as [`Inbound::raw`].
    pub(super) fn from_fields(
        fields: BTreeMap<String, String>,
        raw: &str,
    ) -> Result<Self, XmlError> {
        let fields = Fields(fields);
        let msg_type = fields.req("MsgType")?;
        let kind = if msg_type.trim().eq_ignore_ascii_case("event") {
            InboundKind::Event(parse_event(&fields)?)
        } else {
            InboundKind::Message {
                msg_id: fields.msg_id("MsgId", "MsgID")?,
                body: parse_body(&fields, msg_type)?,
            }
        };
        Ok(Self {
            to_user: fields.req("ToUserName")?,
            from_user: fields.text("FromUserName"),
            create_time: fields.int("CreateTime")?,
            kind,
            raw: raw.to_owned(),
        })
    }
}

fn parse_body(f: &Fields, msg_type: String) -> Result<MessageBody, XmlError> {
    Ok(match msg_type.trim().to_ascii_lowercase().as_str() {
        "text" => MessageBody::Text {
            content: f.req("Content")?,
        },
        "image" => MessageBody::Image {
            pic_url: f.text("PicUrl"),
            media_id: f.req("MediaId")?,
        },
        "voice" => MessageBody::Voice {
            media_id: f.req("MediaId")?,
            format: f.text("Format"),
            recognition: f.opt("Recognition"),
        },
        "video" => MessageBody::Video {
            media_id: f.req("MediaId")?,
            thumb_media_id: f.text("ThumbMediaId"),
        },
        "shortvideo" => MessageBody::ShortVideo {
            media_id: f.req("MediaId")?,
            thumb_media_id: f.text("ThumbMediaId"),
        },
        "location" => MessageBody::Location {
            x: f.float("Location_X")?,
            y: f.float("Location_Y")?,
            scale: f.opt_int("Scale")?.unwrap_or(0),
            label: f.text("Label"),
        },
        "link" => MessageBody::Link {
            title: f.text("Title"),
            description: f.text("Description"),
            url: f.req("Url")?,
        },
        "miniprogrampage" => MessageBody::MiniProgramPage {
            title: f.text("Title"),
            app_id: f.text("AppId"),
            page_path: f.text("PagePath"),
            thumb_url: f.text("ThumbUrl"),
            thumb_media_id: f.text("ThumbMediaId"),
        },
        _ => MessageBody::Unknown { msg_type },
    })
}

fn parse_event(f: &Fields) -> Result<Event, XmlError> {
    let event = f.req("Event")?;
    Ok(match event.trim().to_ascii_lowercase().as_str() {
        "subscribe" => {
            let event_key = f.opt("EventKey");
            let scene = event_key
                .as_deref()
                .and_then(|k| k.strip_prefix("qrscene_"))
                .map(str::to_owned);
            Event::Subscribe {
                event_key,
                scene,
                ticket: f.opt("Ticket"),
            }
        }
        "unsubscribe" => Event::Unsubscribe,
        "scan" => Event::Scan {
            event_key: f.text("EventKey"),
            ticket: f.opt("Ticket"),
        },
        "location" => Event::Location {
            latitude: f.float("Latitude")?,
            longitude: f.float("Longitude")?,
            precision: f.float("Precision")?,
        },
        "click" => Event::Click {
            event_key: f.text("EventKey"),
        },
        "view" => Event::View {
            url: f.text("EventKey"),
            menu_id: f.opt("MenuId"),
        },
        "templatesendjobfinish" => Event::TemplateSendJobFinish {
            msg_id: f
                .msg_id("MsgID", "MsgId")?
                .ok_or(XmlError::MissingField("MsgID"))?,
            status: f.text("Status"),
        },
        "masssendjobfinish" => Event::MassSendJobFinish {
            msg_id: f
                .msg_id("MsgID", "MsgId")?
                .ok_or(XmlError::MissingField("MsgID"))?,
            status: f.text("Status"),
            total_count: f.opt_int("TotalCount")?.unwrap_or(0),
            filter_count: f.opt_int("FilterCount")?.unwrap_or(0),
            sent_count: f.opt_int("SentCount")?.unwrap_or(0),
            error_count: f.opt_int("ErrorCount")?.unwrap_or(0),
        },
        "kf_msg_or_event" => Event::KfMsgOrEvent {
            token: f.req("Token")?,
            open_kf_id: f.req("OpenKfId")?,
        },
        _ => Event::Unknown { event },
    })
}

/// Typed accessors over the flat field map.
struct Fields(BTreeMap<String, String>);

impl Fields {
    /// A present field (possibly empty), or `MissingField`.
    fn req(&self, name: &'static str) -> Result<String, XmlError> {
        self.0
            .get(name)
            .cloned()
            .ok_or(XmlError::MissingField(name))
    }

    /// A present, non-empty field.
    fn opt(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// A field or the empty string.
    fn text(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// A required integer.
    fn int(&self, name: &'static str) -> Result<i64, XmlError> {
        self.opt_int(name)?.ok_or(XmlError::MissingField(name))
    }

    /// An optional integer.
    fn opt_int(&self, name: &'static str) -> Result<Option<i64>, XmlError> {
        self.number(name, |s| s.parse::<i64>().ok())
    }

    /// A required finite float (`NaN` / `inf` are refused).
    fn float(&self, name: &'static str) -> Result<f64, XmlError> {
        self.number(name, |s| s.parse::<f64>().ok().filter(|v| v.is_finite()))?
            .ok_or(XmlError::MissingField(name))
    }

    /// A 64-bit id under `name` (or `alt`); values above `i64::MAX` keep
    /// their bits.
    fn msg_id(&self, name: &'static str, alt: &'static str) -> Result<Option<i64>, XmlError> {
        let parse = |s: &str| {
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<u64>().ok().map(|v| v as i64))
        };
        match self.number(name, parse)? {
            Some(id) => Ok(Some(id)),
            None => self.number(alt, parse),
        }
    }

    /// Absent or blank → `None`; present but unparsable → `InvalidNumber`.
    fn number<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, XmlError> {
        match self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or(XmlError::InvalidNumber(name)),
        }
    }
}
