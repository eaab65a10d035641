//! Agents send images and files from the workbench, through the real
//! upload endpoint: the file is stored with the message, uploaded to
//! (fake) WeChat and sent there with its media id, once per client id;
//! WeChat's rules per channel refuse what it would not take, with nothing
//! stored; only the serving agent uploads; `/media/{id}` serves the upload
//! to who may see it.

use kefu::auth::Role;
use kefu::bus::Event;
use kefu::ids::{ConversationId, MessageId};
use kefu::routing::AgentStatus;
use kefu::store::entities::media_objects;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::desk::{api_get, changed, next_event, outbound_in, session, staff};
use crate::fake_wechat::Fault;
use crate::helpers::{TestApp, spawn_app_with};
use crate::login::browser::Session;
use crate::wechat_client::{Mode, text_xml_now};

/// A small but real PNG header and some bytes.
pub(crate) fn png(n: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    v.resize(n.max(v.len()), 7);
    v
}

pub(crate) fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n".to_vec();
    v.extend(std::iter::repeat_n(b'x', 2000));
    v
}

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
    })
    .await
}

/// `POST /api/conversations/{c}/media?…` of `body` as `s` (with the CSRF
/// header unless `forged`).
pub(crate) async fn upload(
    app: &TestApp,
    s: &Session,
    c: ConversationId,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    upload_with(app, s, c, query, content_type, body, true).await
}

async fn upload_with(
    app: &TestApp,
    s: &Session,
    c: ConversationId,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
    csrf: bool,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!(
            "{}/api/conversations/{}/media?{query}",
            app.address, c.0
        ))
        .header(COOKIE, s.cookie())
        .header(CONTENT_TYPE, content_type);
    if csrf {
        req = req.header("X-CSRF-Token", &s.csrf);
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits for the outbound status `want` of a message; its reason.
async fn status(
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
    id: MessageId,
    want: &'static str,
) -> Option<String> {
    next_event(rx, |e| match e {
        Event::OutboundStatus {
            message_id,
            status,
            reason,
            ..
        } if *message_id == id && status == want => Some(reason.clone()),
        _ => None,
    })
    .await
}

async fn objects(app: &TestApp) -> u64 {
    media_objects::Entity::find()
        .count(app.state.store.conn())
        .await
        .unwrap()
}

/// The OA customer `oCar` asks for a human and alice gets them.
async fn oa_conversation(
    app: &TestApp,
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
) -> ConversationId {
    let (status, _) = app
        .oa_post(Mode::Safe, &text_xml_now("oCar", 1, "转人工"))
        .await;
    assert_eq!(status, 200);
    changed(rx, |c| c.state == "assigned").await.conversation
}

#[tokio::test]
async fn an_image_to_an_official_account_customer_is_uploaded_and_sent_once() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let mut rx = app.state.bus.subscribe();
    let conv = oa_conversation(&app, &mut rx).await;
    let alice = session(&app, "alice").await;
    let image = png(5000);

    let q = "client_id=tab1-img1&name=car.png";
    let (code, first) = upload(&app, &alice, conv, q, "image/png", image.clone()).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(
        (&first["existing"], &first["msg_type"]),
        (&json!(false), &json!("image"))
    );
    let message = MessageId(first["message_id"].as_i64().unwrap());
    let object = first["media_object_id"].as_i64().unwrap();
    assert_eq!(status(&mut rx, message, "sent").await, None);

    // Uploaded as an image, then sent with that media id.
    let uploads = app.fake.uploaded_media();
    assert_eq!(uploads.len(), 1);
    let (media_id, kind, bytes) = &uploads[0];
    assert_eq!((kind.as_str(), bytes), ("image", &image));
    let sends = app.fake.requests_to("message/custom/send");
    let image_sends: Vec<&Value> = sends
        .iter()
        .filter_map(|r| r.json.as_ref())
        .filter(|j| j["msgtype"] == "image")
        .collect();
    assert_eq!(image_sends.len(), 1, "{sends:?}");
    assert_eq!(image_sends[0]["touser"], "oCar");
    assert_eq!(image_sends[0]["image"]["media_id"], json!(media_id));

    // The retry of the same client id: answered as stored, nothing sent.
    let (code, again) = upload(&app, &alice, conv, q, "image/png", image.clone()).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["existing"], true);
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["media_object_id"], first["media_object_id"]);
    assert!(app.state.outbox.run_once().await.unwrap().is_empty());
    assert_eq!(app.fake.count("media/upload"), 1);
    assert_eq!(
        app.fake
            .requests_to("message/custom/send")
            .iter()
            .filter(|r| r.json.as_ref().is_some_and(|j| j["msgtype"] == "image"))
            .count(),
        1
    );

    // In the conversation and the customer's history, like any message.
    let out = outbound_in(&app, conv).await;
    let row = out.iter().find(|m| m.id == message.0).expect("stored");
    assert_eq!(
        (row.msg_type.as_str(), row.media_object_id),
        ("image", Some(object))
    );
    assert!(row.agent_id.is_some());
    let (_, detail) = api_get(
        &app,
        &format!("/api/conversations/{}", conv.0),
        Some(&alice),
    )
    .await;
    let shown = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == first["message_id"])
        .cloned()
        .expect("listed");
    assert_eq!(shown["media_object_id"], object);
    let customer = detail["conversation"]["customer_id"].as_i64().unwrap();
    let (_, history) = api_get(
        &app,
        &format!("/api/customers/{customer}/messages"),
        Some(&alice),
    )
    .await;
    assert!(
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == first["message_id"] && m["msg_type"] == "image"),
        "{history}"
    );

    // Served to alice; an unrelated agent is told it does not exist.
    let r = app
        .client
        .get(format!("{}/media/{object}", app.address))
        .header(COOKIE, alice.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), image.as_slice());
    let bob = session(&app, "bob").await;
    let r = app
        .client
        .get(format!("{}/media/{object}", app.address))
        .header(COOKIE, bob.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Bob cannot upload into alice's conversation: nothing stored.
    let before = objects(&app).await;
    let (code, refused) = upload(&app, &bob, conv, "client_id=b1", "image/png", png(3000)).await;
    assert_eq!(code, 403, "{refused}");
    assert_eq!(objects(&app).await, before);
    assert_eq!(outbound_in(&app, conv).await.len(), out.len());
    // Nor alice without the CSRF header.
    let (code, _) = upload_with(
        &app,
        &alice,
        conv,
        "client_id=a9",
        "image/png",
        png(3000),
        false,
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(objects(&app).await, before);
}

#[tokio::test]
async fn what_wechat_would_refuse_is_refused_with_a_reason_and_nothing_stored() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    let conv = oa_conversation(&app, &mut rx).await;
    let alice = session(&app, "alice").await;
    let messages = outbound_in(&app, conv).await.len();
    let before = objects(&app).await;

    // Over the Official Account's 2 MB for pictures (declared, then read).
    let big = png(2 * 1024 * 1024 + 1);
    let (code, e) = upload(&app, &alice, conv, "client_id=big", "image/png", big).await;
    assert_eq!(code, 413, "{e}");
    assert_eq!(e["code"], "payload_too_large");
    assert!(e["message"].as_str().unwrap().contains("2 MB"), "{e}");
    // A web page named like a picture.
    let (code, e) = upload(
        &app,
        &alice,
        conv,
        "client_id=fake&name=photo.jpg",
        "image/jpeg",
        b"<html><script>alert(1)</script></html>".to_vec(),
    )
    .await;
    assert_eq!(code, 415, "{e}");
    assert_eq!(e["code"], "unsupported_media_type");
    // A file: Official Accounts cannot send one.
    let (code, e) = upload(
        &app,
        &alice,
        conv,
        "client_id=pdf&name=%E6%8A%A5%E4%BB%B7%E5%8D%95.pdf",
        "application/pdf",
        pdf(),
    )
    .await;
    assert_eq!(code, 415, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("cannot send files"),
        "{e}"
    );
    // Empty; a bad client id.
    let (code, e) = upload(&app, &alice, conv, "client_id=empty", "image/png", vec![]).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("empty"), "{e}");
    let (code, _) = upload(
        &app,
        &alice,
        conv,
        "client_id=no%20spaces",
        "image/png",
        png(100),
    )
    .await;
    assert_eq!(code, 400);

    assert_eq!(objects(&app).await, before, "no media stored");
    assert_eq!(
        outbound_in(&app, conv).await.len(),
        messages,
        "no message stored"
    );
    assert_eq!(app.fake.count("media/upload"), 0);

    // The same client id works once the file is right.
    let (code, ok) = upload(&app, &alice, conv, "client_id=big", "image/png", png(4000)).await;
    assert_eq!((code, &ok["existing"]), (200, &json!(false)), "{ok}");
}

/// The WeCom kf customer `wmCar` asks for a human and frank gets them.
async fn kf_conversation(
    app: &TestApp,
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
) -> ConversationId {
    app.fake.add_kf_messages(
        "wkKF1",
        vec![json!({"msgid": "k1", "external_userid": "wmCar",
            "send_time": chrono::Utc::now().timestamp(), "origin": 3,
            "msgtype": "text", "text": {"content": "转人工"}})],
    );
    let (status, _) = app.kf_notify("wkKF1", "TOKEN").await;
    assert_eq!(status, 200);
    changed(rx, |c| c.state == "assigned").await.conversation
}

#[tokio::test]
async fn a_file_and_an_image_reach_a_wecom_customer_with_their_media_ids() {
    let app = app().await;
    staff(&app, "frank", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    let conv = kf_conversation(&app, &mut rx).await;
    let frank = session(&app, "frank").await;

    let q = "client_id=f1&name=%E6%8A%A5%E4%BB%B7%E5%8D%95.pdf";
    let (code, file) = upload(&app, &frank, conv, q, "application/pdf", pdf()).await;
    assert_eq!(code, 200, "{file}");
    assert_eq!(file["msg_type"], "file");
    let file_msg = MessageId(file["message_id"].as_i64().unwrap());
    status(&mut rx, file_msg, "sent").await;

    // WeChat's media id is cached, then forgotten by WeChat: the image's
    // first send answers 40007, so it is uploaded again and sent once more.
    app.fake.inject("kf/send_msg", Fault::ErrCode(40007), 1);
    let (code, image) = upload(&app, &frank, conv, "client_id=i1", "image/png", png(3000)).await;
    assert_eq!(code, 200, "{image}");
    let image_msg = MessageId(image["message_id"].as_i64().unwrap());
    status(&mut rx, image_msg, "sent").await;

    let uploads = app.fake.uploaded_media();
    let kinds: Vec<&str> = uploads.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["file", "image", "image"],
        "the image was uploaded again"
    );
    assert_eq!(uploads[0].2, pdf());
    let named = app.fake.requests_to("media/upload")[0].body.clone();
    assert!(
        named
            .windows("报价单.pdf".len())
            .any(|w| w == "报价单.pdf".as_bytes()),
        "the file goes under the agent's name"
    );
    let sends: Vec<Value> = app
        .fake
        .requests_to("kf/send_msg")
        .into_iter()
        .filter_map(|r| r.json)
        .filter(|j| j["msgtype"] == "file" || j["msgtype"] == "image")
        .collect();
    assert_eq!(sends.len(), 3, "{sends:?}");
    assert_eq!(sends[0]["file"]["media_id"], json!(uploads[0].0));
    assert_eq!(sends[0]["touser"], "wmCar");
    assert_eq!(sends[0]["open_kfid"], "wkKF1");
    assert_eq!(sends[1]["image"]["media_id"], json!(uploads[1].0));
    assert_eq!(sends[2]["image"]["media_id"], json!(uploads[2].0));

    // The file's message carries its name; both are in the conversation.
    let out = outbound_in(&app, conv).await;
    let f = out.iter().find(|m| m.id == file_msg.0).unwrap();
    assert_eq!(
        (f.msg_type.as_str(), f.content.as_deref()),
        ("file", Some("报价单.pdf"))
    );
    assert!(
        out.iter()
            .any(|m| m.id == image_msg.0 && m.msg_type == "image")
    );
}

#[tokio::test]
async fn a_send_wechat_refuses_reaches_the_agent_as_failed_with_the_reason() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    let conv = oa_conversation(&app, &mut rx).await;
    let alice = session(&app, "alice").await;
    app.fake
        .inject_always("message/custom/send", Fault::ErrCode(45015));
    let (code, sent) = upload(&app, &alice, conv, "client_id=late", "image/png", png(800)).await;
    assert_eq!(code, 200, "{sent}");
    let id = MessageId(sent["message_id"].as_i64().unwrap());
    let reason = status(&mut rx, id, "failed").await.expect("a reason");
    assert!(reason.contains("48"), "{reason}");
}
