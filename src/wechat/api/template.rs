//! Template messages (模板消息, PROTOCOL.md §3.3): `message/template/send`,
//! one recipient per call. Service notifications only, not marketing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiClient, ApiError, ApiFamily};

/// One template message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateMessage {
    /// The recipient's OpenID.
    pub touser: String,
    pub template_id: String,
    /// Opened when the customer taps the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Opened instead of `url` when set (and the mini program is linked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<TemplateMiniProgram>,
    /// The template's fields by name (`{"thing1": {"value": "…"}}`).
    pub data: BTreeMap<String, TemplateField>,
    /// De-duplicates resends of the same message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateMiniProgram {
    pub appid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// One field's value (colour is ignored by WeChat nowadays but accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateField {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl TemplateField {
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            color: None,
        }
    }
}

/// WeChat sends the msgid as a number; accept a string too.
#[derive(Deserialize)]
#[serde(untagged)]
enum MsgId {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
struct TemplateAnswer {
    msgid: MsgId,
}

impl ApiClient {
    /// Sends a template message; returns WeChat's `msgid` (the delivery
    /// result arrives later as the `TEMPLATESENDJOBFINISH` event).
    #[tracing::instrument(skip_all, fields(app_id = %self.cfg.app_id, touser = %msg.touser, template_id = %msg.template_id))]
    pub async fn send_template(&self, msg: &TemplateMessage) -> Result<i64, ApiError> {
        self.require(ApiFamily::OfficialAccount, "message/template/send")?;
        let answer: TemplateAnswer = self.post_json("message/template/send", msg).await?;
        match answer.msgid {
            MsgId::Number(n) => Ok(n),
            MsgId::Text(s) => s
                .parse()
                .map_err(|_| ApiError::Decode(format!("template msgid {s:?} is not a number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_matches_the_api() {
        let msg = TemplateMessage {
            touser: "oUSER".into(),
            template_id: "TPL".into(),
            url: None,
            miniprogram: Some(TemplateMiniProgram {
                appid: "wxa".into(),
                pagepath: Some("index".into()),
            }),
            data: BTreeMap::from([("thing1".to_owned(), TemplateField::new("订单已发货"))]),
            client_msg_id: Some("c1".into()),
        };
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({
                "touser": "oUSER",
                "template_id": "TPL",
                "miniprogram": {"appid": "wxa", "pagepath": "index"},
                "data": {"thing1": {"value": "订单已发货"}},
                "client_msg_id": "c1"
            })
        );
    }

    #[test]
    fn msgid_as_number_or_string() {
        let a: TemplateAnswer = serde_json::from_str(r#"{"errcode":0,"msgid":200228332}"#).unwrap();
        assert!(matches!(a.msgid, MsgId::Number(200228332)));
        let b: TemplateAnswer = serde_json::from_str(r#"{"msgid":"42"}"#).unwrap();
        assert!(matches!(b.msgid, MsgId::Text(ref s) if s == "42"));
    }
}
