//! What each call puts on the wire, what it returns, and how failures are
//! classified (PROTOCOL.md §3.2, §3.3, §1.6, §3.6).

use std::collections::BTreeMap;
use std::time::Duration;

use kefu::wechat::api::{
    ApiClient, ApiError, ErrorClass, OutboundContent, SendRoute, ServiceState, TemplateField,
    TemplateMessage, TokenMode, TypingCommand,
};
use serde_json::{Value, json};

use super::*;
use crate::fake_wechat::{FakeWechat, Fault};

/// Every kind of content, with the JSON WeChat expects for an Official
/// Account (`message/custom/send`) and for WeCom kf (`kf/send_msg`, `None`
/// when unsupported), without the recipient fields.
fn contents() -> Vec<(OutboundContent, Value, Option<Value>)> {
    vec![
        (
            text("你好 👋"),
            json!({"msgtype": "text", "text": {"content": "你好 👋"}}),
            Some(json!({"msgtype": "text", "text": {"content": "你好 👋"}})),
        ),
        (
            OutboundContent::Image {
                media_id: "IMG".into(),
            },
            json!({"msgtype": "image", "image": {"media_id": "IMG"}}),
            Some(json!({"msgtype": "image", "image": {"media_id": "IMG"}})),
        ),
        (
            OutboundContent::Voice {
                media_id: "VOICE".into(),
            },
            json!({"msgtype": "voice", "voice": {"media_id": "VOICE"}}),
            Some(json!({"msgtype": "voice", "voice": {"media_id": "VOICE"}})),
        ),
        (
            OutboundContent::Video {
                media_id: "VID".into(),
                thumb_media_id: Some("THUMB".into()),
                title: Some("标题".into()),
                description: Some("说明".into()),
            },
            json!({"msgtype": "video", "video": {
                "media_id": "VID", "thumb_media_id": "THUMB", "title": "标题", "description": "说明"
            }}),
            Some(json!({"msgtype": "video", "video": {"media_id": "VID"}})),
        ),
        (
            OutboundContent::Link {
                title: "Order shipped".into(),
                description: "Track it".into(),
                url: "https://example.com/o/1".into(),
                pic_url: Some("https://example.com/p.jpg".into()),
            },
            json!({"msgtype": "news", "news": {"articles": [{
                "title": "Order shipped", "description": "Track it",
                "url": "https://example.com/o/1", "picurl": "https://example.com/p.jpg"
            }]}}),
            None,
        ),
        (
            OutboundContent::MiniProgram {
                title: "Shop".into(),
                app_id: "wxMINI".into(),
                page_path: "pages/index?id=1".into(),
                thumb_media_id: "MTHUMB".into(),
            },
            json!({"msgtype": "miniprogrampage", "miniprogrampage": {
                "title": "Shop", "appid": "wxMINI", "pagepath": "pages/index?id=1", "thumb_media_id": "MTHUMB"
            }}),
            Some(json!({"msgtype": "miniprogram", "miniprogram": {
                "appid": "wxMINI", "title": "Shop", "thumb_media_id": "MTHUMB", "pagepath": "pages/index?id=1"
            }})),
        ),
        (
            OutboundContent::Menu {
                head: "您对本次服务是否满意？".into(),
                items: vec![
                    ("101".into(), "满意".into()),
                    ("102".into(), "不满意".into()),
                ],
                tail: "欢迎再次光临".into(),
            },
            json!({"msgtype": "msgmenu", "msgmenu": {
                "head_content": "您对本次服务是否满意？",
                "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
                "tail_content": "欢迎再次光临"
            }}),
            Some(json!({"msgtype": "msgmenu", "msgmenu": {
                "head_content": "您对本次服务是否满意？",
                "list": [
                    {"type": "click", "click": {"id": "101", "content": "满意"}},
                    {"type": "click", "click": {"id": "102", "content": "不满意"}}
                ],
                "tail_content": "欢迎再次光临"
            }})),
        ),
    ]
}

fn with(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().expect("object").clone() {
        v[k] = x;
    }
    v
}

#[tokio::test]
async fn every_content_reaches_an_official_account_in_wechat_s_shape() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    let all = contents();
    for (content, _, _) in &all {
        let receipt = client.send(OPENID, content, oa_route()).await.unwrap();
        assert_eq!(receipt.msgid, None);
    }
    let sent = fake.requests_to("message/custom/send");
    assert_eq!(sent.len(), all.len());
    for ((content, oa, _), req) in all.iter().zip(&sent) {
        let want = with(oa.clone(), json!({"touser": OPENID}));
        assert_eq!(req.json.as_ref(), Some(&want), "{}", content.kind());
    }
}

#[tokio::test]
async fn a_custom_message_can_name_its_customer_service_account() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    let route = SendRoute::OfficialAccount {
        kf_account: Some("agent1@kftest".into()),
    };
    client.send(OPENID, &text("hi"), route).await.unwrap();
    let body = fake.requests_to("message/custom/send")[0]
        .json
        .clone()
        .unwrap();
    assert_eq!(
        body["customservice"],
        json!({"kf_account": "agent1@kftest"})
    );
}

#[tokio::test]
async fn typing_is_shown_and_hidden() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    client
        .custom_typing(OPENID, TypingCommand::Typing)
        .await
        .unwrap();
    client
        .custom_typing(OPENID, TypingCommand::CancelTyping)
        .await
        .unwrap();
    let bodies: Vec<Value> = fake
        .requests_to("message/custom/typing")
        .into_iter()
        .map(|r| r.json.unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"touser": OPENID, "command": "Typing"}),
            json!({"touser": OPENID, "command": "CancelTyping"}),
        ]
    );
}

#[tokio::test]
async fn a_template_message_returns_wechat_s_msgid() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    let msg = TemplateMessage {
        touser: OPENID.into(),
        template_id: "TPL_ORDER".into(),
        url: Some("https://example.com/o/1".into()),
        miniprogram: None,
        data: BTreeMap::from([
            ("thing1".to_owned(), TemplateField::new("订单已发货")),
            ("time2".to_owned(), TemplateField::new("2026-01-01 10:00")),
        ]),
        client_msg_id: Some("kefu-tpl-1".into()),
    };
    let first = client.send_template(&msg).await.unwrap();
    let second = client.send_template(&msg).await.unwrap();
    assert!(first > 0 && second == first + 1, "{first} {second}");
    let body = fake.requests_to("message/template/send")[0]
        .json
        .clone()
        .unwrap();
    assert_eq!(
        body,
        json!({
            "touser": OPENID, "template_id": "TPL_ORDER", "url": "https://example.com/o/1",
            "data": {"thing1": {"value": "订单已发货"}, "time2": {"value": "2026-01-01 10:00"}},
            "client_msg_id": "kefu-tpl-1"
        })
    );
}

#[tokio::test]
async fn every_supported_content_reaches_wecom_kf_in_its_shape() {
    let fake = FakeWechat::start().await;
    let client = kf_client(&fake);
    let supported: Vec<_> = contents()
        .into_iter()
        .filter_map(|(c, _, kf)| kf.map(|kf| (c, kf)))
        .collect();
    for (i, (content, _)) in supported.iter().enumerate() {
        let route = SendRoute::WecomKf {
            open_kfid: "wkKF01".into(),
            msgid: Some(format!("kefu{i}")),
        };
        let receipt = client.send("wmCUSTOMER", content, route).await.unwrap();
        assert_eq!(
            receipt.msgid,
            Some(format!("kefu{i}")),
            "WeCom echoes our msgid"
        );
    }
    let sent = fake.requests_to("kf/send_msg");
    assert_eq!(sent.len(), supported.len());
    for (i, ((content, kf), req)) in supported.iter().zip(&sent).enumerate() {
        let want = with(
            kf.clone(),
            json!({"touser": "wmCUSTOMER", "open_kfid": "wkKF01", "msgid": format!("kefu{i}")}),
        );
        assert_eq!(req.json.as_ref(), Some(&want), "{}", content.kind());
    }
    assert_eq!(fake.count("gettoken"), 1);
}

#[tokio::test]
async fn without_a_msgid_wecom_chooses_one() {
    let fake = FakeWechat::start().await;
    let client = kf_client(&fake);
    let route = SendRoute::WecomKf {
        open_kfid: "wkKF01".into(),
        msgid: None,
    };
    let receipt = client.send("wmCUSTOMER", &text("hi"), route).await.unwrap();
    assert!(receipt.msgid.is_some_and(|m| !m.is_empty()));
    let body = fake.requests_to("kf/send_msg")[0].json.clone().unwrap();
    assert!(body.get("msgid").is_none());
}

#[tokio::test]
async fn unsupported_combinations_fail_permanently_before_any_call() {
    let fake = FakeWechat::start().await;
    let kf = kf_client(&fake);
    let oa = oa_client(&fake, TokenMode::Stable);
    let link = contents().remove(4).0;
    let kf_route = || SendRoute::WecomKf {
        open_kfid: "wkKF01".into(),
        msgid: None,
    };
    let cases: Vec<(&ApiClient, OutboundContent, SendRoute)> = vec![
        (&kf, link, kf_route()),
        (&kf, text("x"), oa_route()),
        (&oa, text("x"), kf_route()),
        (
            &kf,
            text("x"),
            SendRoute::WecomKf {
                open_kfid: String::new(),
                msgid: None,
            },
        ),
    ];
    for (client, content, route) in cases {
        let e = client
            .send("someone", &content, route.clone())
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Unsupported(_)), "{route:?}: {e:?}");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.agent_reason().contains("cannot be sent"));
    }
    assert!(
        fake.requests().is_empty(),
        "nothing was called, not even a token"
    );
}

#[tokio::test]
async fn kf_session_state_is_read_and_changed() {
    let fake = FakeWechat::start().await;
    let client = kf_client(&fake);

    let s = client.kf_service_state("wkKF01", "wmA").await.unwrap();
    assert_eq!(
        (s.state, s.servicer_userid),
        (ServiceState::Assistant, None)
    );

    fake.set_kf_service_state("wkKF01", "wmA", 3, "zhangsan");
    let s = client.kf_service_state("wkKF01", "wmA").await.unwrap();
    assert_eq!(s.state, ServiceState::Servicer);
    assert!(!s.state.api_may_reply());
    assert_eq!(s.servicer_userid.as_deref(), Some("zhangsan"));

    // Take it back so Kefu's console can reply again.
    let code = client
        .kf_trans_service_state("wkKF01", "wmA", ServiceState::Assistant, None)
        .await
        .unwrap();
    assert!(code.is_some());
    let s = client.kf_service_state("wkKF01", "wmA").await.unwrap();
    assert_eq!(s.state, ServiceState::Assistant);
    let trans = fake.requests_to("kf/service_state/trans")[0]
        .json
        .clone()
        .unwrap();
    assert_eq!(
        trans,
        json!({"open_kfid": "wkKF01", "external_userid": "wmA", "service_state": 1})
    );
    assert_eq!(
        fake.requests_to("kf/service_state/get")[0].json,
        Some(json!({"open_kfid": "wkKF01", "external_userid": "wmA"}))
    );

    // Handing over to a servicer needs their userid.
    let e = client
        .kf_trans_service_state("wkKF01", "wmA", ServiceState::Servicer, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Unsupported(_)));
    client
        .kf_trans_service_state("wkKF01", "wmA", ServiceState::Servicer, Some("lisi"))
        .await
        .unwrap();
    assert_eq!(fake.count("kf/service_state/trans"), 2);
    assert_eq!(
        client
            .kf_service_state("wkKF01", "wmA")
            .await
            .unwrap()
            .servicer_userid
            .as_deref(),
        Some("lisi")
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    for code in [45015, 45047, 43004, 40003, 45009, 48001] {
        fake.clear_requests();
        fake.inject("message/custom/send", Fault::ErrCode(code), 1);
        let e = send_text(&client, "x").await.unwrap_err();
        assert_eq!((e.code(), e.class()), (Some(code), ErrorClass::Permanent));
        assert_eq!(
            fake.count("message/custom/send"),
            1,
            "{code}: one call only"
        );
        assert!(!e.agent_reason().is_empty());
    }
    let kf = kf_client(&fake);
    let route = || SendRoute::WecomKf {
        open_kfid: "wkKF01".into(),
        msgid: None,
    };
    for code in [95001, 95002, 95018] {
        fake.clear_requests();
        fake.inject("kf/send_msg", Fault::ErrCode(code), 1);
        let e = kf.send("wmA", &text("x"), route()).await.unwrap_err();
        assert_eq!((e.code(), e.class()), (Some(code), ErrorClass::Permanent));
        assert_eq!(fake.count("kf/send_msg"), 1, "{code}: one call only");
    }
}

#[tokio::test]
async fn transient_errors_are_reported_as_transient_for_the_outbox_to_retry() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    client.access_token().await.unwrap();
    let faults = [
        Fault::ErrCode(-1),
        Fault::ErrCode(45011),
        Fault::Status(502),
        Fault::Status(429),
    ];
    for fault in faults {
        fake.clear_requests();
        fake.inject("message/custom/send", fault.clone(), 1);
        let e = send_text(&client, "x").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient, "{fault:?}: {e:?}");
        assert_eq!(
            fake.count("message/custom/send"),
            1,
            "{fault:?}: not retried here"
        );
    }

    let slow = ApiClient::new(
        http(Duration::from_millis(300)),
        oa_config(&fake.base_url, TokenMode::Stable),
    );
    slow.access_token().await.unwrap();
    fake.inject(
        "message/custom/send",
        Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let e = send_text(&slow, "x").await.unwrap_err();
    assert_eq!(
        (e.clone(), e.class()),
        (ApiError::Timeout, ErrorClass::Transient)
    );
}
