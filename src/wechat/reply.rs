//! Passive reply XML (PROTOCOL.md §2.3).
//!
//! Strings go into CDATA sections (a `]]>` inside a value is split across two
//! sections), integers are written plain — the layout of WeChat's samples.
//! In safe mode / WeCom the result is wrapped with
//! [`MsgCrypt::encrypted_reply`](super::MsgCrypt::encrypted_reply).

/// One item of a news (图文) reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Article {
    /// `Title`.
    pub title: String,
    /// `Description`.
    pub description: String,
    /// `PicUrl`: cover image URL.
    pub pic_url: String,
    /// `Url`: link opened on tap.
    pub url: String,
}

/// A passive reply to a user message or event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `text` reply. WeChat silently drops texts over ~2047 bytes (§2.3);
    /// send longer answers through the customer-service API.
    Text { content: String },
    /// `image` reply with an uploaded media id.
    Image { media_id: String },
    /// `voice` reply with an uploaded media id.
    Voice { media_id: String },
    /// `video` reply; title and description are optional.
    Video {
        media_id: String,
        title: Option<String>,
        description: Option<String>,
    },
    /// `news` reply; only one article is shown when replying to a user message.
    News { articles: Vec<Article> },
    /// `transfer_customer_service`: hand the message to 多客服, optionally to
    /// a given `kf_account`.
    TransferCustomerService { kf_account: Option<String> },
}

impl Reply {
    /// Convenience constructor for a text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Self::Text {
            content: content.into(),
        }
    }

    /// The reply's `MsgType`.
    pub fn msg_type(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::News { .. } => "news",
            Self::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// Renders the reply. `to_user` is the user's openid (the inbound
    /// `FromUserName`), `from_user` the account id (the inbound `ToUserName`).
    pub fn to_xml(&self, to_user: &str, from_user: &str, create_time: i64) -> String {
        let mut x = XmlOut::default();
        x.raw("<xml>");
        x.cdata_elem("ToUserName", to_user);
        x.cdata_elem("FromUserName", from_user);
        x.raw(&format!("<CreateTime>{create_time}</CreateTime>"));
        x.cdata_elem("MsgType", self.msg_type());
        match self {
            Self::Text { content } => x.cdata_elem("Content", content),
            Self::Image { media_id } => x.wrapped("Image", |x| x.cdata_elem("MediaId", media_id)),
            Self::Voice { media_id } => x.wrapped("Voice", |x| x.cdata_elem("MediaId", media_id)),
            Self::Video {
                media_id,
                title,
                description,
            } => x.wrapped("Video", |x| {
                x.cdata_elem("MediaId", media_id);
                if let Some(title) = title {
                    x.cdata_elem("Title", title);
                }
                if let Some(description) = description {
                    x.cdata_elem("Description", description);
                }
            }),
            Self::News { articles } => {
                x.raw(&format!("<ArticleCount>{}</ArticleCount>", articles.len()));
                x.wrapped("Articles", |x| {
                    for article in articles {
                        x.wrapped("item", |x| {
                            x.cdata_elem("Title", &article.title);
                            x.cdata_elem("Description", &article.description);
                            x.cdata_elem("PicUrl", &article.pic_url);
                            x.cdata_elem("Url", &article.url);
                        });
                    }
                });
            }
            Self::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    x.wrapped("TransInfo", |x| x.cdata_elem("KfAccount", account));
                }
            }
        }
        x.raw("</xml>");
        x.0
    }
}

/// Wraps `s` in a CDATA section, splitting any `]]>` so the section cannot be
/// closed early: `a]]>b` → `<![CDATA[a]]]]><![CDATA[>b]]>`.
pub(crate) fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// Tiny append-only XML writer.
#[derive(Default)]
struct XmlOut(String);

impl XmlOut {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn cdata_elem(&mut self, name: &str, value: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self.0.push_str(&cdata(value));
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }

    fn wrapped(&mut self, name: &str, inner: impl FnOnce(&mut Self)) {
        self.raw(&format!("<{name}>"));
        inner(self);
        self.raw(&format!("</{name}>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::xml::{InboundKind, MessageBody, parse, parse_fields};
    use proptest::prelude::*;

    fn round_trip_text(content: &str) -> String {
        let xml = Reply::text(content).to_xml("openid", "gh_abc", 1_700_000_000);
        let inbound = parse(&xml).unwrap();
        assert_eq!(inbound.to_user, "openid");
        assert_eq!(inbound.from_user, "gh_abc");
        assert_eq!(inbound.create_time, 1_700_000_000);
        match inbound.kind {
            InboundKind::Message {
                msg_id: None,
                body: MessageBody::Text { content },
            } => content,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn text_reply_layout() {
        assert_eq!(
            Reply::text("你好").to_xml("o1", "gh_1", 12345),
            "<xml><ToUserName><![CDATA[o1]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName>\
             <CreateTime>12345</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[你好]]></Content></xml>"
        );
    }

    #[test]
    fn cdata_terminator_is_split() {
        assert_eq!(cdata("a]]>b"), "<![CDATA[a]]]]><![CDATA[>b]]>");
        assert_eq!(
            cdata("]]>]]>"),
            "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>"
        );
        assert_eq!(cdata(""), "<![CDATA[]]>");
    }

    #[test]
    fn round_trip_hostile_and_unicode_text() {
        for s in [
            "emoji 😀👍🏽 and 中文",
            "ctrl \u{2} and \u{1d} chars",
            "a]]>b",
            "]]>",
            "]]]]>",
            "<script>alert(1)</script>",
            "<xml><a>not a tag</a></xml>",
            "&lt; stays literal &amp;",
            "line1\nline2\r\nline3",
            "",
            "  padded  ",
        ] {
            assert_eq!(round_trip_text(s), s, "round trip of {s:?}");
        }
    }

    #[test]
    fn image_voice_video_layout() {
        let img = Reply::Image {
            media_id: "m1".into(),
        }
        .to_xml("o", "g", 1);
        assert!(img.contains("<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[m1]]></MediaId></Image></xml>"));
        let voice = Reply::Voice {
            media_id: "v1".into(),
        }
        .to_xml("o", "g", 1);
        assert_eq!(
            parse_fields(&voice)
                .unwrap()
                .get("Voice/MediaId")
                .map(String::as_str),
            Some("v1")
        );
        let video = Reply::Video {
            media_id: "m".into(),
            title: Some("t]]>".into()),
            description: None,
        };
        let f = parse_fields(&video.to_xml("o", "g", 1)).unwrap();
        assert_eq!(f.get("MsgType").map(String::as_str), Some("video"));
        assert_eq!(f.get("Video/Title").map(String::as_str), Some("t]]>"));
        assert!(!f.contains_key("Video/Description"));
    }

    #[test]
    fn news_layout() {
        let article = Article {
            title: "标题".into(),
            description: "d".into(),
            pic_url: "https://p/1.jpg".into(),
            url: "https://u/?a=1&b=2".into(),
        };
        let xml = Reply::News {
            articles: vec![article.clone(), Article::default()],
        }
        .to_xml("o", "g", 7);
        assert!(xml.contains(
            "<ArticleCount>2</ArticleCount><Articles><item><Title><![CDATA[标题]]></Title>"
        ));
        let f = parse_fields(&xml).unwrap();
        assert_eq!(
            f.get("Articles/item/Url").map(String::as_str),
            Some("https://u/?a=1&b=2")
        );
        assert_eq!(f.get("ArticleCount").map(String::as_str), Some("2"));
    }

    #[test]
    fn transfer_customer_service_layout() {
        let plain = Reply::TransferCustomerService { kf_account: None }.to_xml("o", "g", 1);
        assert!(plain.ends_with("<MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>"));
        let targeted = Reply::TransferCustomerService {
            kf_account: Some("kf2001@gh".into()),
        }
        .to_xml("o", "g", 1);
        assert!(
            targeted
                .contains("<TransInfo><KfAccount><![CDATA[kf2001@gh]]></KfAccount></TransInfo>")
        );
        let inbound = parse(&targeted).unwrap();
        assert_eq!(inbound.msg_type(), "transfer_customer_service");
    }

    proptest! {
        #[test]
        fn text_round_trip_arbitrary(content in any::<String>(), to in "\\PC{0,20}", from in "\\PC{0,20}") {
            let xml = Reply::text(content.clone()).to_xml(&to, &from, -5);
            let inbound = parse(&xml).unwrap();
            prop_assert_eq!(inbound.text(), Some(content.as_str()));
            prop_assert_eq!(inbound.to_user, to);
            prop_assert_eq!(inbound.from_user, from);
            prop_assert_eq!(inbound.create_time, -5);
        }
    }
}
