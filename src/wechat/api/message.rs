//! Official Account customer-service messages (客服消息, PROTOCOL.md §3.2):
//! `message/custom/send` and `message/custom/typing`.

use serde::Serialize;
use serde::de::IgnoredAny;

use super::{ApiClient, ApiError, ApiFamily};

/// `{content}` of a text message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextBody {
    pub content: String,
}

/// `{media_id}` of an image, voice (or, for WeCom, video and file) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaBody {
    pub media_id: String,
}

/// An OA video message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoBody {
    pub media_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_media_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `{articles}` of a news message: WeChat shows one article as a link card
/// (custom messages carry at most one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsBody {
    pub articles: Vec<NewsArticle>,
}

/// One link card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsArticle {
    pub title: String,
    pub description: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

/// A mini-program card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MiniProgramPageBody {
    pub title: String,
    pub appid: String,
    pub pagepath: String,
    pub thumb_media_id: String,
}

/// A menu message: the customer taps an item, WeChat sends its text back
/// (with `bizmsgmenuid` = the item's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MsgMenuBody {
    pub head_content: String,
    pub list: Vec<MenuItem>,
    pub tail_content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuItem {
    pub id: String,
    pub content: String,
}

/// The body of `message/custom/send`, tagged by `msgtype` with the content
/// under the key of the same name: `{"msgtype":"text","text":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum CustomMessage {
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
        video: VideoBody,
    },
    News {
        news: NewsBody,
    },
    #[serde(rename = "miniprogrampage")]
    MiniProgramPage {
        miniprogrampage: MiniProgramPageBody,
    },
    #[serde(rename = "msgmenu")]
    MsgMenu {
        msgmenu: MsgMenuBody,
    },
}

impl CustomMessage {
    /// WeChat's `msgtype`.
    pub fn msgtype(&self) -> &'static str {
        match self {
            CustomMessage::Text { .. } => "text",
            CustomMessage::Image { .. } => "image",
            CustomMessage::Voice { .. } => "voice",
            CustomMessage::Video { .. } => "video",
            CustomMessage::News { .. } => "news",
            CustomMessage::MiniProgramPage { .. } => "miniprogrampage",
            CustomMessage::MsgMenu { .. } => "msgmenu",
        }
    }
}

#[derive(Serialize)]
struct KfAccount<'a> {
    kf_account: &'a str,
}

#[derive(Serialize)]
pub(super) struct CustomSendRequest<'a> {
    touser: &'a str,
    #[serde(flatten)]
    message: &'a CustomMessage,
    /// Sends as this customer-service account (`test1@kftest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    customservice: Option<KfAccount<'a>>,
}

impl<'a> CustomSendRequest<'a> {
    pub(super) fn new(
        touser: &'a str,
        message: &'a CustomMessage,
        kf_account: Option<&'a str>,
    ) -> Self {
        Self {
            touser,
            message,
            customservice: kf_account.map(|kf_account| KfAccount { kf_account }),
        }
    }
}

/// `message/custom/typing` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TypingCommand {
    /// "Typing…" shows for up to 15 s or until the next message.
    Typing,
    CancelTyping,
}

#[derive(Serialize)]
struct TypingRequest<'a> {
    touser: &'a str,
    command: TypingCommand,
}

impl ApiClient {
    /// Sends a customer-service message to `touser` (an OpenID), optionally
    /// as the customer-service account `kf_account`. Allowed within 48 h of
    /// the customer's last message, 5 messages per message (45015, 45047).
    #[tracing::instrument(skip_all, fields(app_id = %self.cfg.app_id, touser = %touser, msgtype = message.msgtype()))]
    pub async fn send_custom(
        &self,
        touser: &str,
        message: &CustomMessage,
        kf_account: Option<&str>,
    ) -> Result<(), ApiError> {
        self.require(ApiFamily::OfficialAccount, "message/custom/send")?;
        let _: IgnoredAny = self
            .post_json(
                "message/custom/send",
                &CustomSendRequest::new(touser, message, kf_account),
            )
            .await?;
        Ok(())
    }

    /// Shows or hides "typing…" to `touser` (45080: the customer has not
    /// interacted in the last 30 s; 45081: already typing).
    pub async fn custom_typing(
        &self,
        touser: &str,
        command: TypingCommand,
    ) -> Result<(), ApiError> {
        self.require(ApiFamily::OfficialAccount, "message/custom/typing")?;
        let _: IgnoredAny = self
            .post_json("message/custom/typing", &TypingRequest { touser, command })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(m: &CustomMessage, kf: Option<&str>) -> serde_json::Value {
        serde_json::to_value(CustomSendRequest::new("oUSER", m, kf)).unwrap()
    }

    #[test]
    fn text_with_and_without_kf_account() {
        let m = CustomMessage::Text {
            text: TextBody {
                content: "你好".into(),
            },
        };
        assert_eq!(
            shape(&m, None),
            json!({"touser": "oUSER", "msgtype": "text", "text": {"content": "你好"}})
        );
        assert_eq!(
            shape(&m, Some("a@kf"))["customservice"],
            json!({"kf_account": "a@kf"})
        );
    }

    #[test]
    fn video_omits_what_is_absent() {
        let m = CustomMessage::Video {
            video: VideoBody {
                media_id: "M".into(),
                thumb_media_id: None,
                title: Some("T".into()),
                description: None,
            },
        };
        assert_eq!(
            shape(&m, None),
            json!({"touser": "oUSER", "msgtype": "video", "video": {"media_id": "M", "title": "T"}})
        );
    }

    #[test]
    fn miniprogrampage_and_msgmenu_keys() {
        let m = CustomMessage::MiniProgramPage {
            miniprogrampage: MiniProgramPageBody {
                title: "t".into(),
                appid: "wxa".into(),
                pagepath: "p/i".into(),
                thumb_media_id: "TH".into(),
            },
        };
        let v = shape(&m, None);
        assert_eq!(v["msgtype"], "miniprogrampage");
        assert_eq!(v["miniprogrampage"]["pagepath"], "p/i");
        let m = CustomMessage::MsgMenu {
            msgmenu: MsgMenuBody {
                head_content: "h".into(),
                list: vec![MenuItem {
                    id: "1".into(),
                    content: "yes".into(),
                }],
                tail_content: "t".into(),
            },
        };
        assert_eq!(
            shape(&m, None)["msgmenu"],
            json!({"head_content": "h", "list": [{"id": "1", "content": "yes"}], "tail_content": "t"})
        );
        assert_eq!(m.msgtype(), "msgmenu");
    }

    #[test]
    fn typing_commands_are_spelled_like_wechat() {
        let v = serde_json::to_value(TypingRequest {
            touser: "o",
            command: TypingCommand::CancelTyping,
        })
        .unwrap();
        assert_eq!(v, json!({"touser": "o", "command": "CancelTyping"}));
    }
}
