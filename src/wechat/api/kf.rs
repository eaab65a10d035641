//! WeCom Customer Service (微信客服, PROTOCOL.md §1.6): pull with
//! `kf/sync_msg`, reply with `kf/send_msg`, and keep the session where Kefu
//! may reply with `kf/service_state/get|trans`.

use serde::{Deserialize, Serialize};

use super::message::{MediaBody, TextBody};
use super::{ApiClient, ApiError, ApiFamily};

/// The request of one `sync_msg` page.
#[derive(Debug, Serialize)]
pub struct SyncMsgRequest<'a> {
    pub cursor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    pub limit: u32,
    pub voice_format: u8,
    pub open_kfid: &'a str,
}

/// One page of pulled messages.
#[derive(Debug, Deserialize)]
pub struct SyncMsgPage {
    #[serde(default)]
    pub next_cursor: String,
    #[serde(default)]
    pub has_more: i64,
    #[serde(default)]
    pub msg_list: Vec<serde_json::Value>,
}

/// A link card. WeCom requires an uploaded thumbnail (`thumb_media_id`),
/// not a picture URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfLink {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    pub url: String,
    pub thumb_media_id: String,
}

/// A mini-program card (the mini program must be linked to the corp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfMiniProgram {
    pub appid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub thumb_media_id: String,
    pub pagepath: String,
}

/// A menu message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfMenu {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_content: Option<String>,
    pub list: Vec<KfMenuItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_content: Option<String>,
}

/// One menu entry, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KfMenuItem {
    /// Tapping sends `content` back as the customer's message.
    Click { click: KfMenuClick },
    /// Opens a URL.
    View { view: KfMenuView },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfMenuClick {
    pub id: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfMenuView {
    pub url: String,
    pub content: String,
}

/// A location pin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KfLocation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
}

/// The body of `kf/send_msg`, tagged by `msgtype` with the content under
/// the key of the same name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum KfMessage {
    Text {
        text: TextBody,
    },
    Image {
        image: MediaBody,
    },
    Voice {
        voice: MediaBody,
    },
    Video {
        video: MediaBody,
    },
    File {
        file: MediaBody,
    },
    Link {
        link: KfLink,
    },
    #[serde(rename = "miniprogram")]
    MiniProgram {
        miniprogram: KfMiniProgram,
    },
    #[serde(rename = "msgmenu")]
    MsgMenu {
        msgmenu: KfMenu,
    },
    Location {
        location: KfLocation,
    },
}

impl KfMessage {
    /// WeCom's `msgtype`.
    pub fn msgtype(&self) -> &'static str {
        match self {
            KfMessage::Text { .. } => "text",
            KfMessage::Image { .. } => "image",
            KfMessage::Voice { .. } => "voice",
            KfMessage::Video { .. } => "video",
            KfMessage::File { .. } => "file",
            KfMessage::Link { .. } => "link",
            KfMessage::MiniProgram { .. } => "miniprogram",
            KfMessage::MsgMenu { .. } => "msgmenu",
            KfMessage::Location { .. } => "location",
        }
    }
}

#[derive(Serialize)]
pub(super) struct KfSendRequest<'a> {
    /// The customer's `external_userid`.
    touser: &'a str,
    open_kfid: &'a str,
    /// Caller-chosen id (≤ 32 bytes, `[0-9a-zA-Z_-]`): WeCom de-duplicates
    /// by it, so a resend after a crash is not delivered twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    msgid: Option<&'a str>,
    #[serde(flatten)]
    message: &'a KfMessage,
}

impl<'a> KfSendRequest<'a> {
    pub(super) fn new(
        touser: &'a str,
        open_kfid: &'a str,
        msgid: Option<&'a str>,
        message: &'a KfMessage,
    ) -> Self {
        Self {
            touser,
            open_kfid,
            msgid,
            message,
        }
    }
}

#[derive(Deserialize)]
struct KfSendAnswer {
    #[serde(default)]
    msgid: Option<String>,
}

/// Session states of a WeCom kf conversation (document/path/94669).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// 0 未处理: new, nobody handles it yet; the API may reply.
    Untreated,
    /// 1 由智能助手接待: handled through the API (Kefu's robot and agents).
    Assistant,
    /// 2 待接入池排队中: queued for a WeCom servicer.
    Queued,
    /// 3 由人工接待: a WeCom-client servicer handles it; the API may not reply.
    Servicer,
    /// 4 已结束: ended (or never started); changes not allowed.
    Ended,
}

impl ServiceState {
    pub fn code(self) -> u8 {
        match self {
            ServiceState::Untreated => 0,
            ServiceState::Assistant => 1,
            ServiceState::Queued => 2,
            ServiceState::Servicer => 3,
            ServiceState::Ended => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => ServiceState::Untreated,
            1 => ServiceState::Assistant,
            2 => ServiceState::Queued,
            3 => ServiceState::Servicer,
            4 => ServiceState::Ended,
            _ => return None,
        })
    }

    /// Whether `kf/send_msg` may reply in this state (0 or 1).
    pub fn api_may_reply(self) -> bool {
        matches!(self, ServiceState::Untreated | ServiceState::Assistant)
    }
}

/// What `kf/service_state/get` says about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfSession {
    pub state: ServiceState,
    /// The WeCom servicer, when `state` is `Servicer`.
    pub servicer_userid: Option<String>,
}

#[derive(Serialize)]
struct StateGetRequest<'a> {
    open_kfid: &'a str,
    external_userid: &'a str,
}

#[derive(Deserialize)]
struct StateGetAnswer {
    service_state: i64,
    #[serde(default, alias = "service_userid")]
    servicer_userid: Option<String>,
}

#[derive(Serialize)]
struct StateTransRequest<'a> {
    open_kfid: &'a str,
    external_userid: &'a str,
    service_state: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    servicer_userid: Option<&'a str>,
}

#[derive(Deserialize)]
struct StateTransAnswer {
    #[serde(default)]
    msg_code: Option<String>,
}

impl ApiClient {
    /// Pulls one page after `cursor` ("" from the start of what WeChat keeps).
    pub async fn kf_sync_msg(
        &self,
        open_kfid: &str,
        cursor: &str,
        token: Option<&str>,
    ) -> Result<SyncMsgPage, ApiError> {
        self.post_json(
            "kf/sync_msg",
            &SyncMsgRequest {
                cursor,
                token,
                limit: 1000,
                voice_format: 0,
                open_kfid,
            },
        )
        .await
    }

    /// Sends `message` to the customer `touser` (external_userid) from the kf
    /// account `open_kfid`; returns WeCom's msgid (`msgid` when given).
    /// Only in session states 0 and 1, at most 5 messages within 48 h of the
    /// customer's last message (95001, 95002, 95018).
    #[tracing::instrument(skip_all, fields(app_id = %self.cfg.app_id, touser = %touser, open_kfid = %open_kfid, msgtype = message.msgtype()))]
    pub async fn kf_send_msg(
        &self,
        touser: &str,
        open_kfid: &str,
        msgid: Option<&str>,
        message: &KfMessage,
    ) -> Result<Option<String>, ApiError> {
        self.require(ApiFamily::WeCom, "kf/send_msg")?;
        let answer: KfSendAnswer = self
            .post_json(
                "kf/send_msg",
                &KfSendRequest::new(touser, open_kfid, msgid, message),
            )
            .await?;
        Ok(answer.msgid.filter(|m| !m.is_empty()))
    }

    /// The state of the session between `open_kfid` and the customer.
    pub async fn kf_service_state(
        &self,
        open_kfid: &str,
        external_userid: &str,
    ) -> Result<KfSession, ApiError> {
        self.require(ApiFamily::WeCom, "kf/service_state/get")?;
        let answer: StateGetAnswer = self
            .post_json(
                "kf/service_state/get",
                &StateGetRequest {
                    open_kfid,
                    external_userid,
                },
            )
            .await?;
        let state = ServiceState::from_code(answer.service_state).ok_or_else(|| {
            ApiError::Decode(format!("unknown service_state {}", answer.service_state))
        })?;
        Ok(KfSession {
            state,
            servicer_userid: answer.servicer_userid.filter(|s| !s.is_empty()),
        })
    }

    /// Moves the session to `state` (`servicer_userid` is required for
    /// `Servicer`); returns the `msg_code` WeCom gives for sending a
    /// greeting or closing event message, if any. To keep relaying from
    /// Kefu's console, keep sessions in `Assistant`.
    pub async fn kf_trans_service_state(
        &self,
        open_kfid: &str,
        external_userid: &str,
        state: ServiceState,
        servicer_userid: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        self.require(ApiFamily::WeCom, "kf/service_state/trans")?;
        if state == ServiceState::Servicer && servicer_userid.is_none_or(str::is_empty) {
            return Err(ApiError::Unsupported(
                "handing a session to a WeCom servicer needs the servicer's userid".into(),
            ));
        }
        let answer: StateTransAnswer = self
            .post_json(
                "kf/service_state/trans",
                &StateTransRequest {
                    open_kfid,
                    external_userid,
                    service_state: state.code(),
                    servicer_userid,
                },
            )
            .await?;
        Ok(answer.msg_code.filter(|c| !c.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(m: &KfMessage, msgid: Option<&str>) -> serde_json::Value {
        serde_json::to_value(KfSendRequest::new("wmUSER", "wkKF", msgid, m)).unwrap()
    }

    #[test]
    fn text_with_idempotency_msgid() {
        let m = KfMessage::Text {
            text: TextBody {
                content: "hi".into(),
            },
        };
        assert_eq!(
            shape(&m, Some("kefu42")),
            json!({"touser": "wmUSER", "open_kfid": "wkKF", "msgid": "kefu42", "msgtype": "text", "text": {"content": "hi"}})
        );
        assert!(shape(&m, None).get("msgid").is_none());
    }

    #[test]
    fn menu_items_are_typed() {
        let m = KfMessage::MsgMenu {
            msgmenu: KfMenu {
                head_content: Some("h".into()),
                list: vec![
                    KfMenuItem::Click {
                        click: KfMenuClick {
                            id: "1".into(),
                            content: "yes".into(),
                        },
                    },
                    KfMenuItem::View {
                        view: KfMenuView {
                            url: "https://x".into(),
                            content: "site".into(),
                        },
                    },
                ],
                tail_content: None,
            },
        };
        assert_eq!(
            shape(&m, None)["msgmenu"],
            json!({"head_content": "h", "list": [
                {"type": "click", "click": {"id": "1", "content": "yes"}},
                {"type": "view", "view": {"url": "https://x", "content": "site"}}
            ]})
        );
    }

    #[test]
    fn location_file_and_miniprogram() {
        let loc = KfMessage::Location {
            location: KfLocation {
                name: Some("店".into()),
                address: None,
                latitude: 23.1,
                longitude: 113.3,
            },
        };
        assert_eq!(
            shape(&loc, None)["location"],
            json!({"name": "店", "latitude": 23.1, "longitude": 113.3})
        );
        let file = KfMessage::File {
            file: MediaBody {
                media_id: "F".into(),
            },
        };
        assert_eq!(shape(&file, None)["msgtype"], "file");
        let mp = KfMessage::MiniProgram {
            miniprogram: KfMiniProgram {
                appid: "wxa".into(),
                title: None,
                thumb_media_id: "T".into(),
                pagepath: "p".into(),
            },
        };
        assert_eq!(shape(&mp, None)["msgtype"], "miniprogram");
        assert_eq!(mp.msgtype(), "miniprogram");
    }

    #[test]
    fn service_states_round_trip() {
        for code in 0..=4 {
            let s = ServiceState::from_code(code).unwrap();
            assert_eq!(i64::from(s.code()), code);
            assert_eq!(s.api_may_reply(), code <= 1);
        }
        assert_eq!(ServiceState::from_code(5), None);
        let a: StateGetAnswer =
            serde_json::from_str(r#"{"service_state":3,"service_userid":"zhang"}"#).unwrap();
        assert_eq!(a.servicer_userid.as_deref(), Some("zhang"));
    }
}
