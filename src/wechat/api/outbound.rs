//! One outbound message model for both channels: the outbox stores an
//! [`OutboundContent`] and hands it to [`ApiClient::send`], which picks
//! `message/custom/send` (Official Account) or `kf/send_msg` (WeCom kf) and
//! the JSON shape each expects.

use serde::{Deserialize, Serialize};

use super::kf::{KfMenu, KfMenuClick, KfMenuItem, KfMessage, KfMiniProgram};
use super::message::{
    CustomMessage, MediaBody, MenuItem, MiniProgramPageBody, MsgMenuBody, NewsArticle, NewsBody,
    TextBody, VideoBody,
};
use super::{ApiClient, ApiError, ApiFamily};

/// What Kefu says to a customer, independent of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        content: String,
    },
    Image {
        media_id: String,
    },
    Voice {
        media_id: String,
    },
    /// A file (WeCom kf only: the Official Account customer-service API
    /// sends no files).
    File {
        media_id: String,
    },
    /// WeCom kf shows only the video: thumbnail, title and description are
    /// used by Official Accounts and dropped for kf.
    Video {
        media_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thumb_media_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A link card (OA: a one-article `news`). Not sendable to WeCom kf,
    /// whose link cards need an uploaded thumbnail rather than a picture URL.
    Link {
        title: String,
        description: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pic_url: Option<String>,
    },
    MiniProgram {
        title: String,
        app_id: String,
        page_path: String,
        thumb_media_id: String,
    },
    /// A menu: `items` are (id, text); tapping one sends its text back.
    Menu {
        head: String,
        items: Vec<(String, String)>,
        tail: String,
    },
}

impl OutboundContent {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundContent::Text { .. } => "text",
            OutboundContent::Image { .. } => "image",
            OutboundContent::Voice { .. } => "voice",
            OutboundContent::File { .. } => "file",
            OutboundContent::Video { .. } => "video",
            OutboundContent::Link { .. } => "link",
            OutboundContent::MiniProgram { .. } => "mini_program",
            OutboundContent::Menu { .. } => "menu",
        }
    }

    /// The same media message with WeChat's `media_id` filled in (media
    /// stored by Kefu are uploaded when sent); other content unchanged.
    pub fn with_media_id(&self, id: String) -> OutboundContent {
        let mut c = self.clone();
        match &mut c {
            OutboundContent::Image { media_id }
            | OutboundContent::Voice { media_id }
            | OutboundContent::File { media_id }
            | OutboundContent::Video { media_id, .. } => *media_id = id,
            _ => {}
        }
        c
    }

    /// The Official Account `message/custom/send` body, or why there is
    /// none (files).
    pub fn to_custom(&self) -> Result<CustomMessage, ApiError> {
        Ok(match self.clone() {
            OutboundContent::Text { content } => CustomMessage::Text {
                text: TextBody { content },
            },
            OutboundContent::Image { media_id } => CustomMessage::Image {
                image: MediaBody { media_id },
            },
            OutboundContent::Voice { media_id } => CustomMessage::Voice {
                voice: MediaBody { media_id },
            },
            OutboundContent::File { .. } => {
                return Err(ApiError::Unsupported(
                    "the Official Account customer-service API cannot send files".into(),
                ));
            }
            OutboundContent::Video {
                media_id,
                thumb_media_id,
                title,
                description,
            } => CustomMessage::Video {
                video: VideoBody {
                    media_id,
                    thumb_media_id,
                    title,
                    description,
                },
            },
            OutboundContent::Link {
                title,
                description,
                url,
                pic_url,
            } => CustomMessage::News {
                news: NewsBody {
                    articles: vec![NewsArticle {
                        title,
                        description,
                        url,
                        picurl: pic_url,
                    }],
                },
            },
            OutboundContent::MiniProgram {
                title,
                app_id,
                page_path,
                thumb_media_id,
            } => CustomMessage::MiniProgramPage {
                miniprogrampage: MiniProgramPageBody {
                    title,
                    appid: app_id,
                    pagepath: page_path,
                    thumb_media_id,
                },
            },
            OutboundContent::Menu { head, items, tail } => CustomMessage::MsgMenu {
                msgmenu: MsgMenuBody {
                    head_content: head,
                    list: items
                        .into_iter()
                        .map(|(id, content)| MenuItem { id, content })
                        .collect(),
                    tail_content: tail,
                },
            },
        })
    }

    /// The WeCom `kf/send_msg` body, or why there is none.
    pub fn to_kf(&self) -> Result<KfMessage, ApiError> {
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        Ok(match self.clone() {
            OutboundContent::Text { content } => KfMessage::Text {
                text: TextBody { content },
            },
            OutboundContent::Image { media_id } => KfMessage::Image {
                image: MediaBody { media_id },
            },
            OutboundContent::Voice { media_id } => KfMessage::Voice {
                voice: MediaBody { media_id },
            },
            OutboundContent::File { media_id } => KfMessage::File {
                file: MediaBody { media_id },
            },
            OutboundContent::Video { media_id, .. } => KfMessage::Video {
                video: MediaBody { media_id },
            },
            OutboundContent::Link { .. } => {
                return Err(ApiError::Unsupported(
                    "WeCom kf link cards need an uploaded thumbnail (thumb_media_id), not a picture URL"
                        .into(),
                ));
            }
            OutboundContent::MiniProgram {
                title,
                app_id,
                page_path,
                thumb_media_id,
            } => KfMessage::MiniProgram {
                miniprogram: KfMiniProgram {
                    appid: app_id,
                    title: non_empty(title),
                    thumb_media_id,
                    pagepath: page_path,
                },
            },
            OutboundContent::Menu { head, items, tail } => KfMessage::MsgMenu {
                msgmenu: KfMenu {
                    head_content: non_empty(head),
                    list: items
                        .into_iter()
                        .map(|(id, content)| KfMenuItem::Click {
                            click: KfMenuClick { id, content },
                        })
                        .collect(),
                    tail_content: non_empty(tail),
                },
            },
        })
    }
}

/// Which API carries a message, with what it needs besides the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum SendRoute {
    /// `message/custom/send`, optionally as a customer-service account.
    OfficialAccount { kf_account: Option<String> },
    /// `kf/send_msg` from `open_kfid`; `msgid` (≤ 32 bytes of
    /// `[0-9a-zA-Z_-]`) makes a resend idempotent.
    WecomKf {
        open_kfid: String,
        msgid: Option<String>,
    },
}

/// What WeChat said about a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendReceipt {
    /// WeCom's msgid; Official Account custom messages have none.
    pub msgid: Option<String>,
}

impl ApiClient {
    /// Sends `content` to `to` (an OpenID, or a WeCom external_userid) by
    /// `route`. A route of the other family, or content the route cannot
    /// carry, fails with the permanent [`ApiError::Unsupported`] before any
    /// call is made.
    #[tracing::instrument(skip_all, fields(app_id = %self.cfg.app_id, to = %to, kind = content.kind()))]
    pub async fn send(
        &self,
        to: &str,
        content: &OutboundContent,
        route: SendRoute,
    ) -> Result<SendReceipt, ApiError> {
        match route {
            SendRoute::OfficialAccount { kf_account } => {
                self.require(ApiFamily::OfficialAccount, "an Official Account send")?;
                self.send_custom(to, &content.to_custom()?, kf_account.as_deref())
                    .await?;
                Ok(SendReceipt { msgid: None })
            }
            SendRoute::WecomKf { open_kfid, msgid } => {
                self.require(ApiFamily::WeCom, "a WeCom kf send")?;
                if open_kfid.is_empty() {
                    return Err(ApiError::Unsupported(
                        "a WeCom kf send needs the open_kfid".into(),
                    ));
                }
                let message = content.to_kf()?;
                let msgid = self
                    .kf_send_msg(to, &open_kfid, msgid.as_deref(), &message)
                    .await?;
                Ok(SendReceipt { msgid })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kf::KfSendRequest;
    use super::super::message::CustomSendRequest;
    use super::*;
    use serde_json::json;

    fn oa(c: &OutboundContent) -> serde_json::Value {
        serde_json::to_value(CustomSendRequest::new("o1", &c.to_custom().unwrap(), None)).unwrap()
    }

    fn kf(c: &OutboundContent) -> serde_json::Value {
        serde_json::to_value(KfSendRequest::new("wm1", "wk1", None, &c.to_kf().unwrap())).unwrap()
    }

    fn link() -> OutboundContent {
        OutboundContent::Link {
            title: "T".into(),
            description: "D".into(),
            url: "https://u".into(),
            pic_url: Some("https://p".into()),
        }
    }

    #[test]
    fn stored_json_is_tagged_and_stable() {
        let c = OutboundContent::Menu {
            head: "h".into(),
            items: vec![("1".into(), "yes".into())],
            tail: "t".into(),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"type": "menu", "head": "h", "items": [["1", "yes"]], "tail": "t"})
        );
        assert_eq!(serde_json::from_value::<OutboundContent>(v).unwrap(), c);
        // Optional fields may be absent in stored rows.
        let video: OutboundContent =
            serde_json::from_value(json!({"type": "video", "media_id": "M"})).unwrap();
        assert_eq!(video.kind(), "video");
        let mp = json!({"type": "mini_program", "title": "t", "app_id": "a", "page_path": "p", "thumb_media_id": "m"});
        assert!(serde_json::from_value::<OutboundContent>(mp).is_ok());
    }

    #[test]
    fn link_is_a_one_article_news_for_official_accounts() {
        assert_eq!(
            oa(&link()),
            json!({"touser": "o1", "msgtype": "news", "news": {"articles": [
                {"title": "T", "description": "D", "url": "https://u", "picurl": "https://p"}
            ]}})
        );
    }

    #[test]
    fn link_is_unsupported_for_wecom_kf() {
        let e = link().to_kf().unwrap_err();
        assert!(matches!(e, ApiError::Unsupported(_)));
        assert_eq!(e.class(), super::super::ErrorClass::Permanent);
    }

    #[test]
    fn files_go_to_wecom_kf_only_and_media_ids_are_filled_in() {
        let f = OutboundContent::File {
            media_id: String::new(),
        }
        .with_media_id("MF".into());
        assert_eq!(
            kf(&f),
            json!({"touser": "wm1", "open_kfid": "wk1", "msgtype": "file", "file": {"media_id": "MF"}})
        );
        let e = f.to_custom().unwrap_err();
        assert_eq!(e.class(), super::super::ErrorClass::Permanent);
        let img = OutboundContent::Image {
            media_id: String::new(),
        };
        assert_eq!(
            oa(&img.with_media_id("MI".into()))["image"],
            json!({"media_id": "MI"})
        );
        let t = OutboundContent::Text {
            content: "x".into(),
        };
        assert_eq!(t.with_media_id("M".into()), t);
    }

    #[test]
    fn video_metadata_goes_to_oa_only() {
        let c = OutboundContent::Video {
            media_id: "M".into(),
            thumb_media_id: Some("TH".into()),
            title: Some("T".into()),
            description: None,
        };
        assert_eq!(
            oa(&c)["video"],
            json!({"media_id": "M", "thumb_media_id": "TH", "title": "T"})
        );
        assert_eq!(kf(&c)["video"], json!({"media_id": "M"}));
    }

    #[test]
    fn menus_and_mini_programs_per_channel() {
        let menu = OutboundContent::Menu {
            head: String::new(),
            items: vec![("a".into(), "A".into())],
            tail: "bye".into(),
        };
        assert_eq!(
            oa(&menu)["msgmenu"],
            json!({"head_content": "", "list": [{"id": "a", "content": "A"}], "tail_content": "bye"})
        );
        assert_eq!(
            kf(&menu)["msgmenu"],
            json!({"list": [{"type": "click", "click": {"id": "a", "content": "A"}}], "tail_content": "bye"})
        );
        let mp = OutboundContent::MiniProgram {
            title: "t".into(),
            app_id: "wxa".into(),
            page_path: "p".into(),
            thumb_media_id: "m".into(),
        };
        assert_eq!(
            oa(&mp)["miniprogrampage"],
            json!({"title": "t", "appid": "wxa", "pagepath": "p", "thumb_media_id": "m"})
        );
        assert_eq!(
            kf(&mp)["miniprogram"],
            json!({"appid": "wxa", "title": "t", "thumb_media_id": "m", "pagepath": "p"})
        );
    }
}
