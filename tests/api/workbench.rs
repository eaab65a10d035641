//! The workbench through HTTP and its WebSocket: a customer's message
//! reaches the serving agent's socket and no one else's; a reply is stored
//! once per client id and reaches WeChat; a tab that reconnects gets what
//! it missed, in order; sockets need a session and this site's origin;
//! another agent can neither reply, read nor watch.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kefu::auth::Role;
use kefu::routing::AgentStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::desk::{api_get, api_post, changed, session, staff};
use crate::helpers::{TestApp, spawn_app_with};
use crate::login::browser::Session;
use crate::wechat_client::{Mode, text_xml, text_xml_now};

const WAIT: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
    })
    .await
}

/// Opens the socket as `s` (no hello yet); the HTTP status when refused.
async fn open(app: &TestApp, s: Option<&Session>, origin: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{}/api/ws", app.port)
        .into_client_request()
        .unwrap();
    if let Some(s) = s {
        req.headers_mut()
            .insert("cookie", s.cookie().parse().unwrap());
    }
    let origin = origin.map_or_else(|| format!("http://127.0.0.1:{}", app.port), str::to_owned);
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn hello(ws: &mut Ws, last: Option<(u64, &str)>) -> Value {
    let msg = match last {
        Some((seq, epoch)) => json!({"type": "hello", "last_seq": seq, "epoch": epoch}),
        None => json!({"type": "hello"}),
    };
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .unwrap();
    recv(ws).await
}

/// Connected and welcomed.
async fn socket(app: &TestApp, s: &Session) -> (Ws, Value) {
    let mut ws = open(app, Some(s), None).await.unwrap();
    let welcome = hello(&mut ws, None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// The next event frame whose event matches.
async fn event(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = recv(ws).await;
        if f["type"] == "event" && want(&f["event"]) {
            return f;
        }
    }
}

fn filed(text: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["type"] == "message_filed" && e["message"]["content"] == text
}

async fn say(app: &TestApp, from: &str, id: i64, text: &str) {
    let (status, _) = app.oa_post(Mode::Safe, &text_xml_now(from, id, text)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_customer_s_message_reaches_the_serving_agent_s_socket_only() {
    let app = app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let bob = staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let (mut a, _) = socket(&app, &session(&app, "alice").await).await;
    let (_b, _) = socket(&app, &session(&app, "bob").await).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oCar", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));
    let f = event(&mut a, |e| {
        e["type"] == "conversation_changed" && e["state"] == "assigned"
    })
    .await;
    assert_eq!(f["event"]["conversation"], got.conversation.0);
    say(
        &app,
        "oCar",
        2,
        "我的车什么时候打款？<script>alert(1)</script>",
    )
    .await;
    let f = event(
        &mut a,
        filed("我的车什么时候打款？<script>alert(1)</script>"),
    )
    .await;
    assert_eq!(f["event"]["message"]["direction"], "in");
    assert_eq!(f["event"]["conversation"], got.conversation.0);
    assert_eq!(
        app.state.hub.seq_of(bob),
        0,
        "bob hears nothing of alice's customer"
    );

    // Her workbench lists it, unread until she reads it.
    let alice_s = session(&app, "alice").await;
    let (status, wb) = api_get(&app, "/api/workbench", Some(&alice_s)).await;
    assert_eq!(status, 200, "{wb}");
    let item = &wb["conversations"][0];
    assert_eq!(item["conversation"]["id"], got.conversation.0);
    assert_eq!(item["unread"], 2, "{wb}");
    assert_eq!(item["window"]["open"], true, "{wb}");
    let last = item["last_message"]["id"].as_i64().unwrap();
    let (status, _) = api_post(
        &app,
        &format!("/api/conversations/{}/read", got.conversation.0),
        &alice_s,
        json!({"message_id": last}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, wb) = api_get(&app, "/api/workbench", Some(&alice_s)).await;
    assert_eq!(wb["conversations"][0]["unread"], 0, "{wb}");
    let bob_s = session(&app, "bob").await;
    let (_, wb) = api_get(&app, "/api/workbench", Some(&bob_s)).await;
    assert_eq!(wb["conversations"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_reply_is_stored_once_per_client_id_and_reaches_wechat() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let alice_s = session(&app, "alice").await;
    let (mut a, _) = socket(&app, &alice_s).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oCar", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let path = format!("/api/conversations/{}/messages", got.conversation.0);
    let body = json!({"client_id": "tab1-0001", "text": "您好，款项已在今天下午打出"});
    let (status, first) = api_post(&app, &path, &alice_s, body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["existing"], false);
    let (status, again) = api_post(&app, &path, &alice_s, body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["message_id"].clone(), again["existing"].clone()),
        (first["message_id"].clone(), json!(true))
    );
    // Her socket shows it filed, then sent.
    let f = event(&mut a, filed("您好，款项已在今天下午打出")).await;
    assert_eq!(f["event"]["message"]["direction"], "out");
    event(&mut a, |e| {
        e["type"] == "outbound_status"
            && e["message_id"] == first["message_id"]
            && e["status"] == "sent"
    })
    .await;
    let sends: Vec<_> = app
        .fake
        .requests_to("message/custom/send")
        .into_iter()
        .filter(|r| r.body.windows(6).any(|w| w == "款项".as_bytes()))
        .collect();
    assert_eq!(sends.len(), 1, "sent once");

    // Bob may not reply in it, nor read it.
    let bob_s = session(&app, "bob").await;
    let (status, _) = api_post(&app, &path, &bob_s, json!({"client_id": "x", "text": "hi"})).await;
    assert_eq!(status, 403);
    let read = format!("/api/conversations/{}/read", got.conversation.0);
    assert_eq!(
        api_post(&app, &read, &bob_s, json!({"message_id": 1}))
            .await
            .0,
        403
    );
    let (status, bad) = api_post(
        &app,
        &path,
        &alice_s,
        json!({"client_id": "no spaces", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    // A customer who last wrote days ago: the agent is told before WeChat refuses.
    let (status, _) = app
        .oa_post(Mode::Safe, &text_xml("oOld", 50, "转人工"))
        .await;
    assert_eq!(status, 200);
    let old = changed(&mut rx, |c| {
        c.state == "assigned" && c.conversation != got.conversation
    })
    .await;
    let (status, refused) = api_post(
        &app,
        &format!("/api/conversations/{}/messages", old.conversation.0),
        &alice_s,
        json!({"client_id": "tab1-0002", "text": "您好"}),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("48"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_tab_that_reconnects_gets_what_it_missed_in_order() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let alice_s = session(&app, "alice").await;
    let (mut a, welcome) = socket(&app, &alice_s).await;
    let epoch = welcome["epoch"].as_str().unwrap().to_owned();
    let mut rx = app.state.bus.subscribe();
    say(&app, "oCar", 1, "转人工").await;
    changed(&mut rx, |c| c.state == "assigned").await;
    let seen = event(&mut a, |e| {
        e["type"] == "conversation_changed" && e["state"] == "assigned"
    })
    .await;
    let last = seen["seq"].as_u64().unwrap();
    // The socket is cut; the customer goes on writing.
    drop(a);
    for (i, t) in ["一", "二", "三"].iter().enumerate() {
        say(&app, "oCar", 10 + i as i64, t).await;
    }
    let user = kefu::ids::AgentId(welcome["user"].as_i64().unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    // Filed on the hub before the tab comes back (the events are async).
    while app.state.hub.seq_of(user) < last + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events reached the hub"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut b = open(&app, Some(&alice_s), None).await.unwrap();
    let back = hello(&mut b, Some((last, &epoch))).await;
    assert_eq!(back["type"], "welcome", "{back}");
    let mut got = Vec::new();
    let mut seqs = Vec::new();
    while got.len() < 3 {
        let f = recv(&mut b).await;
        seqs.push(f["seq"].as_u64().unwrap());
        if f["event"]["type"] == "message_filed" {
            got.push(
                f["event"]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(got, ["一", "二", "三"]);
    assert_eq!(seqs[0], last + 1, "nothing skipped: {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, once: {seqs:?}"
    );
    // Another epoch (a restart): reload.
    let mut c = open(&app, Some(&alice_s), None).await.unwrap();
    assert_eq!(
        hello(&mut c, Some((last, "another-epoch"))).await["type"],
        "reload"
    );
}

#[tokio::test]
async fn sockets_need_a_session_this_site_and_a_hello() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let s = session(&app, "alice").await;
    assert_eq!(open(&app, None, None).await.err(), Some(401));
    assert_eq!(
        open(&app, Some(&s), Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    let mut ws = open(&app, Some(&s), None).await.unwrap();
    ws.send(Message::Text(r#"{"type":"watch","conversation":1}"#.into()))
        .await
        .unwrap();
    let f = recv(&mut ws).await;
    assert_eq!(f["type"], "error", "{f}");
}

#[tokio::test]
async fn only_who_may_see_a_conversation_watches_it() {
    let app = app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let sue = staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let g = app.state.store.create_city_group("上海").await.unwrap();
    app.state.store.add_group_member(g, alice).await.unwrap();
    app.state.store.add_group_member(g, sue).await.unwrap();
    crate::desk::reload(&app).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oCar", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let watch = json!({"type": "watch", "conversation": got.conversation.0}).to_string();
    let (mut b, _) = socket(&app, &session(&app, "bob").await).await;
    b.send(Message::Text(watch.clone().into())).await.unwrap();
    let f = recv(&mut b).await;
    assert_eq!(f["type"], "error", "{f}");
    let (mut sue, _) = socket(&app, &session(&app, "sue").await).await;
    sue.send(Message::Text(watch.into())).await.unwrap();
    assert_eq!(recv(&mut sue).await["type"], "watching");
    say(&app, "oCar", 2, "还在吗").await;
    event(&mut sue, filed("还在吗")).await;
}

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_only() {
    let app = app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let first = session(&app, "alice").await;
    let second = session(&app, "alice").await;
    let (mut a, _) = socket(&app, &first).await;
    let (mut b, _) = socket(&app, &second).await;
    let r = crate::login::browser::post_as(&app, "/logout", &first, &[("csrf_token", &first.csrf)])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(recv(&mut a).await["type"], "signed_out");
    let end = tokio::time::timeout(WAIT, a.next())
        .await
        .expect("closed in time");
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
    assert_eq!(open(&app, Some(&first), None).await.err(), Some(401));
    // The other tab, signed in on its own, stays.
    b.send(Message::Text(r#"{"type":"watch","conversation":1}"#.into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut b).await["type"], "error", "still answered");
    assert_eq!(app.state.hub.counts().1, 1);
}
