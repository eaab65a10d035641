//! WeCom Customer Service: verification, kf_msg_or_event → sync_msg pull,
//! cursors, paging, de-duplication, catch-up.

use std::time::Duration;

use kefu::bus::Event;
use kefu::channels::kf_sync::KfSyncer;
use kefu::ids::AccountId;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};
use crate::wechat_client::{enc, kf_crypt};

fn text(msgid: &str, user: &str, content: &str) -> serde_json::Value {
    json!({"msgid": msgid, "external_userid": user, "send_time": 1714036504, "origin": 3, "msgtype": "text", "text": {"content": content}})
}

/// Waits until `n` messages were announced on the bus.
async fn stored_events(rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>, n: usize) {
    let mut seen = 0;
    while seen < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("messages stored in time")
            .unwrap();
        if matches!(ev.event, Event::MessageStored { .. }) {
            seen += 1;
        }
    }
}

fn syncer(app: &TestApp) -> KfSyncer {
    KfSyncer {
        store: app.state.store.clone(),
        bus: app.state.bus.clone(),
        channels: app.state.channels.clone(),
    }
}

#[tokio::test]
async fn url_verification_decrypts_the_echostr() {
    let app = spawn_app().await;
    let crypt = kf_crypt();
    let echostr = crypt.encrypt("1616140317555161061");
    let sig = crypt.msg_signature("1409659589", "263014780", &echostr);
    let r = app
        .get(&format!(
            "/wecom/demo-kf?msg_signature={sig}&timestamp=1409659589&nonce=263014780&echostr={}",
            enc(&echostr)
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1616140317555161061");
    let bad = app
        .get(&format!(
            "/wecom/demo-kf?msg_signature=00{}&timestamp=1409659589&nonce=263014780&echostr={}",
            &sig[2..],
            enc(&echostr)
        ))
        .await;
    assert_eq!(bad.status(), 401);
}

#[tokio::test]
async fn a_callback_pulls_every_page_with_its_token_and_stores_each_message_once() {
    let app = spawn_app().await;
    app.fake.set_kf_page_size(2);
    let msgs: Vec<_> = (0..5)
        .map(|i| text(&format!("m{i}"), "wmUser", &format!("消息 {i}")))
        .collect();
    app.fake.add_kf_messages("wkKF1", msgs);
    let mut rx = app.state.bus.subscribe();
    let (status, body) = app
        .kf_notify("wkKF1", "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "acknowledged with an empty body"
    );
    stored_events(&mut rx, 5).await;

    let calls = app.fake.requests_to("kf/sync_msg");
    assert_eq!(calls.len(), 3, "5 messages in pages of 2");
    let first = calls[0].json.clone().unwrap();
    assert_eq!(first["open_kfid"], "wkKF1");
    assert_eq!(
        first["token"],
        "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"
    );
    assert_eq!(first["cursor"], "");
    assert_eq!(
        calls[1].json.as_ref().unwrap()["cursor"],
        "2",
        "the cursor of the previous page"
    );
    let stored = app.stored("demo-kf").await;
    let texts: Vec<_> = stored.iter().map(|m| m.content.clone().unwrap()).collect();
    assert_eq!(
        texts,
        (0..5).map(|i| format!("消息 {i}")).collect::<Vec<_>>()
    );
    assert!(
        stored
            .iter()
            .all(|m| m.sender == "wmUser" && m.channel == "wecom_kf" && m.direction == "in")
    );
    let account = AccountId::parse("demo-kf").unwrap();
    assert_eq!(
        app.state.store.kf_cursor(&account, "wkKF1").await.unwrap(),
        "5"
    );
    assert_eq!(
        app.fake.count("gettoken"),
        1,
        "one access token for all pages"
    );
}

#[tokio::test]
async fn has_more_is_followed_even_through_an_empty_page() {
    let app = spawn_app().await;
    // A page answering has_more=1 with no messages, then the rest.
    let s = syncer(&app);
    let account = AccountId::parse("demo-kf").unwrap();
    app.fake
        .add_kf_messages("wkKF2", vec![text("a", "u", "1"), text("b", "u", "2")]);
    app.fake.set_kf_page_size(1);
    let stats = s.sync(&account, "wkKF2", None).await.unwrap();
    assert_eq!((stats.new, stats.duplicates), (2, 0));
    assert!(stats.pages >= 2);
    // The same messages delivered again (WeChat resends after a lost cursor).
    app.fake
        .add_kf_messages("wkKF2", vec![text("a", "u", "1"), text("c", "u", "3")]);
    let stats = s.sync(&account, "wkKF2", None).await.unwrap();
    assert_eq!((stats.new, stats.duplicates), (1, 1));
    assert_eq!(app.stored("demo-kf").await.len(), 3);
}

#[tokio::test]
async fn a_lost_callback_is_caught_up_by_the_next_one_or_the_periodic_pull() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    app.fake
        .add_kf_messages("wkKF3", vec![text("x1", "u", "first")]);
    app.kf_notify("wkKF3", "T1").await;
    stored_events(&mut rx, 1).await;
    // Two messages arrive but their callback is lost.
    app.fake.add_kf_messages(
        "wkKF3",
        vec![text("x2", "u", "second"), text("x3", "u", "third")],
    );
    // The periodic pull (one step of it, as the worker runs it) catches up from the cursor.
    syncer(&app).sync_all_known().await;
    assert_eq!(app.stored("demo-kf").await.len(), 3);
    let last = app
        .fake
        .requests_to("kf/sync_msg")
        .last()
        .unwrap()
        .json
        .clone()
        .unwrap();
    assert_eq!(last["cursor"], "1");
    assert!(
        last.get("token").is_none(),
        "a periodic pull has no callback token"
    );
}

#[tokio::test]
async fn every_kf_message_type_is_stored() {
    let app = spawn_app().await;
    let msgs = vec![
        text("t", "wmA", "hello"),
        json!({"msgid": "i", "external_userid": "wmA", "origin": 3, "msgtype": "image", "image": {"media_id": "MEDIA_I"}}),
        json!({"msgid": "v", "external_userid": "wmA", "origin": 3, "msgtype": "voice", "voice": {"media_id": "MEDIA_V"}}),
        json!({"msgid": "vd", "external_userid": "wmA", "origin": 3, "msgtype": "video", "video": {"media_id": "MEDIA_VD"}}),
        json!({"msgid": "f", "external_userid": "wmA", "origin": 3, "msgtype": "file", "file": {"media_id": "MEDIA_F"}}),
        json!({"msgid": "l", "external_userid": "wmA", "origin": 3, "msgtype": "location", "location": {"latitude": 23.1, "longitude": 113.3, "name": "广州塔", "address": "海珠区"}}),
        json!({"msgid": "k", "external_userid": "wmA", "origin": 3, "msgtype": "link", "link": {"title": "车况", "desc": "d", "url": "https://x", "pic_url": "https://p"}}),
        json!({"msgid": "e", "origin": 4, "msgtype": "event", "event": {"event_type": "enter_session", "open_kfid": "wkKF4", "external_userid": "wmA", "scene": "s"}}),
        json!({"msgid": "s", "external_userid": "wmA", "servicer_userid": "zhangsan", "origin": 5, "msgtype": "text", "text": {"content": "来自企业微信客户端"}}),
    ];
    app.fake.add_kf_messages("wkKF4", msgs);
    let stats = syncer(&app)
        .sync(&AccountId::parse("demo-kf").unwrap(), "wkKF4", Some("T"))
        .await
        .unwrap();
    assert_eq!(stats.new, 9);
    let stored = app.stored("demo-kf").await;
    let kinds: Vec<_> = stored.iter().map(|m| m.msg_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "text", "image", "voice", "video", "file", "location", "link", "event", "text"
        ]
    );
    assert_eq!(stored[5].content.as_deref(), Some("广州塔 海珠区"));
    assert_eq!(
        (stored[7].sender.as_str(), stored[7].content.as_deref()),
        ("wmA", Some("enter_session"))
    );
    assert_eq!(
        (stored[8].direction.as_str(), stored[8].sender.as_str()),
        ("out", "zhangsan")
    );
    assert!(
        stored[1].payload.as_deref().unwrap().contains("MEDIA_I"),
        "media ids are kept for download"
    );
}

#[tokio::test]
async fn a_failing_pull_keeps_the_cursor_and_the_next_one_resumes() {
    let app = spawn_app().await;
    let s = syncer(&app);
    let account = AccountId::parse("demo-kf").unwrap();
    app.fake.add_kf_messages("wkKF5", vec![text("a", "u", "1")]);
    s.sync(&account, "wkKF5", None).await.unwrap();
    app.fake.add_kf_messages("wkKF5", vec![text("b", "u", "2")]);
    app.fake
        .inject("kf/sync_msg", crate::fake_wechat::Fault::Status(502), 1);
    assert!(s.sync(&account, "wkKF5", None).await.is_err());
    assert_eq!(
        app.state.store.kf_cursor(&account, "wkKF5").await.unwrap(),
        "1"
    );
    s.sync(&account, "wkKF5", None).await.unwrap();
    assert_eq!(app.stored("demo-kf").await.len(), 2);
}

#[tokio::test]
async fn callbacks_for_unknown_accounts_or_with_bad_signatures_are_refused() {
    let app = spawn_app().await;
    let (status, _) = app
        .post_raw(
            "/wecom/nope?msg_signature=a&timestamp=1&nonce=2",
            "<xml><Encrypt>x</Encrypt></xml>".into(),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post_raw(
            "/wecom/demo-kf?msg_signature=a&timestamp=1&nonce=2",
            "<xml><Encrypt>x</Encrypt></xml>".into(),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.fake.count("kf/sync_msg"), 0);
}
