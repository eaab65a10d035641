//! Pictures, recordings, videos and files in web chat, through the real
//! endpoints: a visitor uploads (`POST /widget/api/media`), the file is
//! stored like WeChat's media and filed as their message, the serving agent
//! sees and opens it; an agent's upload reaches the visitor's socket and
//! the visitor opens it with their token; nobody else opens either; bad
//! uploads are refused with clear errors and nothing stored.

use kefu::auth::Role;
use kefu::bus::Event;
use kefu::routing::AgentStatus;
use kefu::store::entities::media_objects;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::agent_media::{pdf, png, upload as agent_upload};
use crate::desk::{changed, next_event, session, staff};
use crate::helpers::TestApp;
use crate::widget::{frame, new_visitor, open, post};

/// `POST /widget/api/media?{query}` of `body` as the visitor `token`.
async fn upload(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}/widget/api/media?{query}", app.address))
        .header(CONTENT_TYPE, content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Visitor {t}"));
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET {url}` as the visitor `token`: status, content type and bytes.
async fn fetch(app: &TestApp, token: Option<&str>, url: &str) -> (u16, String, Vec<u8>) {
    let mut req = app.client.get(format!("{}{url}", app.address));
    if let Some(t) = token {
        req = req.header("authorization", format!("Visitor {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

async fn objects(app: &TestApp) -> u64 {
    media_objects::Entity::find()
        .count(app.state.store.conn())
        .await
        .unwrap()
}

/// The start of a WebM file as Chromium's MediaRecorder writes it.
fn webm() -> Vec<u8> {
    let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
    v.extend(b"\x42\xF7\x81\x01\x42\xF2\x81\x04\x42\xF3\x81\x08\x42\x82\x84webm");
    v.resize(3000, 0x55);
    v
}

#[tokio::test]
async fn visitors_and_agents_exchange_pictures_recordings_and_files() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
    })
    .await;
    let wendy = staff(&app, "wendy", Role::Agent, AgentStatus::Idle).await;
    let mut bus = app.state.bus.subscribe();
    let token = new_visitor(&app).await;
    let stranger = new_visitor(&app).await;
    let (status, body, _) = post(&app, "handoff", Some(&token), None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let assigned = changed(&mut bus, |c| c.state == "assigned").await;
    assert_eq!(assigned.agent, Some(wendy));
    let mut ws = open(&app, &token, 0).await;

    // A picture.
    let picture = png(5000);
    let (status, body) = upload(
        &app,
        Some(&token),
        "client_id=p-1&name=%E8%BD%A6.png",
        "image/png",
        picture.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = body["message"].clone();
    assert_eq!(sent["msg_type"], "image");
    assert_eq!(sent["from"], "customer");
    let url = sent["media"]["url"].as_str().unwrap().to_owned();
    let object = sent["media"]["id"].as_i64().unwrap();
    assert_eq!(url, format!("/widget/api/media/{object}"));

    // Filed into the conversation the agent serves, with its file.
    let filed = next_event(&mut bus, |e| match e {
        Event::MessageFiled {
            conversation,
            message,
            ..
        } if message.id.0 == sent["id"].as_i64().unwrap() => Some((*conversation, message.clone())),
        _ => None,
    })
    .await;
    assert_eq!(filed.0, assigned.conversation);
    assert_eq!(filed.1.msg_type, "image");
    assert_eq!(filed.1.media_object_id, Some(object));
    // The agent opens it from the console…
    let s = session(&app, "wendy").await;
    let r = app
        .client
        .get(format!("{}/media/{object}", app.address))
        .header(COOKIE, s.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), picture);
    // …the visitor with their token, nobody else.
    let (status, ct, bytes) = fetch(&app, Some(&token), &url).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, picture);
    assert_eq!(fetch(&app, Some(&stranger), &url).await.0, 404);
    assert_eq!(fetch(&app, None, &url).await.0, 401);
    assert_eq!(
        fetch(&app, Some(&token), "/widget/api/media/999999")
            .await
            .0,
        404
    );

    // A retry of the same upload is the same message; nothing new stored.
    let before = objects(&app).await;
    let (status, again) = upload(
        &app,
        Some(&token),
        "client_id=p-1&name=%E8%BD%A6.png",
        "image/png",
        picture.clone(),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message"]["id"], sent["id"]);
    assert_eq!(again["existing"], true);
    assert_eq!(objects(&app).await, before);

    // A recording from the browser (WebM Opus) is a voice message.
    let (status, body) = upload(
        &app,
        Some(&token),
        "client_id=v-1",
        "audio/webm;codecs=opus",
        webm(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["msg_type"], "voice");
    let voice = body["message"]["media"]["url"].as_str().unwrap().to_owned();
    let (status, ct, _) = fetch(&app, Some(&token), &voice).await;
    assert_eq!((status, ct.as_str()), (200, "audio/webm"));

    // A file keeps its name as its text.
    let (status, body) = upload(
        &app,
        Some(&token),
        "client_id=f-1&name=%E5%90%88%E5%90%8C.pdf",
        "application/pdf",
        pdf(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["msg_type"], "file");
    assert_eq!(body["message"]["text"], "合同.pdf");

    // Refused, with the reason and nothing stored: a "picture" that is
    // not one, an empty body, a picture over the limit, no token.
    let before = objects(&app).await;
    let (status, body) = upload(
        &app,
        Some(&token),
        "client_id=x-1&name=a.png",
        "image/png",
        b"<script>alert(1)</script>".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("jpg, png, gif, webp"),
        "{body}"
    );
    let (status, body) = upload(&app, Some(&token), "client_id=x-2", "image/png", vec![]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = upload(
        &app,
        Some(&token),
        "client_id=x-3",
        "image/png",
        png(10 * 1024 * 1024 + 1),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = upload(&app, None, "client_id=x-4", "image/png", png(100)).await;
    assert_eq!(status, 401);
    let (status, body) = upload(&app, Some(&token), "name=a.png", "image/png", png(100)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(objects(&app).await, before);
    let (_, back, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": crate::widget::KEY, "visitor": token}),
    )
    .await;
    let kinds: Vec<&str> = back["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == "customer")
        .map(|m| m["msg_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["image", "voice", "file"],
        "only what was stored: {back}"
    );

    // The agent sends a picture: it reaches the visitor's socket, and the
    // visitor opens it; no WeChat call is made for it.
    let theirs = png(7000);
    let (status, body) = agent_upload(
        &app,
        &s,
        assigned.conversation,
        "client_id=a-1&name=photo.png",
        "image/png",
        theirs.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reply = loop {
        let f = frame(&mut ws, "message").await;
        if f["message"]["from"] == "agent" {
            break f["message"].clone();
        }
    };
    assert_eq!(reply["msg_type"], "image");
    let (status, ct, bytes) =
        fetch(&app, Some(&token), reply["media"]["url"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, theirs);
    assert_eq!(
        fetch(
            &app,
            Some(&stranger),
            reply["media"]["url"].as_str().unwrap()
        )
        .await
        .0,
        404
    );
    assert!(app.fake.requests_to("/cgi-bin/media/upload").is_empty());
}
