//! Plays WeChat's servers towards Kefu in tests: builds signed (and
//! encrypted) callbacks for the example accounts of `wechat-config/`.

#![allow(dead_code)]

use kefu::wechat::MsgCrypt;

use crate::helpers::TestApp;

/// The example Official Account (wechat-config/accounts/demo-oa.toml).
pub const OA_TOKEN: &str = "FakeExampleToken";
pub const OA_KEY: &str = "FAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKEfake000";
pub const OA_APPID: &str = "wx00000000fake0000";
/// The example WeCom kf account (wechat-config/accounts/demo-kf.toml).
pub const KF_TOKEN: &str = "FakeKfToken";
pub const KF_KEY: &str = "FAKEkfFAKEkfFAKEkfFAKEkfFAKEkfFAKEkfFAKEkf0";
pub const KF_CORPID: &str = "ww00000000fake0000";

pub fn oa_crypt() -> MsgCrypt {
    MsgCrypt::new(OA_TOKEN, OA_KEY, OA_APPID).unwrap()
}

pub fn kf_crypt() -> MsgCrypt {
    MsgCrypt::new(KF_TOKEN, KF_KEY, KF_CORPID).unwrap()
}

/// How WeChat delivers an OA message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plaintext,
    Compatible,
    Safe,
}

pub fn text_xml(from: &str, msg_id: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

/// [`text_xml`] sent now (inside WeChat's 48-hour window).
pub fn text_xml_now(from: &str, msg_id: i64, content: &str) -> String {
    text_xml(from, msg_id, content).replace(
        "<CreateTime>1714036504</CreateTime>",
        &format!(
            "<CreateTime>{}</CreateTime>",
            chrono::Utc::now().timestamp()
        ),
    )
}

pub fn event_xml(from: &str, create_time: i64, event: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )
}

/// The request WeChat would send for `xml` in `mode`: (query string, body).
pub fn oa_request(mode: Mode, xml: &str) -> (String, String) {
    let crypt = oa_crypt();
    let (ts, nonce) = ("1714036504", "1514711492");
    let sig = crypt.signature(ts, nonce);
    let base = format!("signature={sig}&timestamp={ts}&nonce={nonce}&openid=oFAKE");
    match mode {
        Mode::Plaintext => (base, xml.to_owned()),
        Mode::Safe | Mode::Compatible => {
            let enc = crypt.encrypt(xml);
            let msig = crypt.msg_signature(ts, nonce, &enc);
            let q = format!("{base}&encrypt_type=aes&msg_signature={msig}");
            let body = if mode == Mode::Safe {
                format!(
                    "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
                )
            } else {
                // Compatible: the plaintext fields plus Encrypt.
                xml.replacen(
                    "</xml>",
                    &format!("<Encrypt><![CDATA[{enc}]]></Encrypt></xml>"),
                    1,
                )
            };
            (q, body)
        }
    }
}

impl TestApp {
    /// POSTs a callback to `/wechat/demo-oa`: (status, body).
    pub async fn oa_post(&self, mode: Mode, xml: &str) -> (u16, String) {
        let (q, body) = oa_request(mode, xml);
        self.post_raw(&format!("/wechat/demo-oa?{q}"), body).await
    }

    pub async fn post_raw(&self, path_and_query: &str, body: String) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{path_and_query}", self.address))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POSTs a WeCom kf callback signalling new messages of `open_kfid`.
    pub async fn kf_notify(&self, open_kfid: &str, token: &str) -> (u16, String) {
        let xml = format!(
            "<xml><ToUserName><![CDATA[{KF_CORPID}]]></ToUserName><CreateTime>1714036504</CreateTime>\
             <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>\
             <Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
        );
        let crypt = kf_crypt();
        let enc = crypt.encrypt(&xml);
        let (ts, nonce) = ("1714036504", "42");
        let msig = crypt.msg_signature(ts, nonce, &enc);
        let body = format!(
            "<xml><ToUserName><![CDATA[{KF_CORPID}]]></ToUserName><AgentID><![CDATA[1]]></AgentID>\
             <Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
        );
        self.post_raw(
            &format!("/wecom/demo-kf?msg_signature={msig}&timestamp={ts}&nonce={nonce}"),
            body,
        )
        .await
    }

    /// Messages Kefu stored for an account, oldest first.
    pub async fn stored(&self, account: &str) -> Vec<kefu::store::entities::messages::Model> {
        self.state
            .store
            .messages_of_account(&kefu::ids::AccountId::parse(account).unwrap())
            .await
            .unwrap()
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
