//! The web chat widget's visitor API through HTTP and WebSocket: a guest
//! writes, asks for a person, is served by an agent whose reply reaches
//! the visitor's socket and is marked sent without any WeChat call; a
//! returning visitor resumes; nobody reads another visitor's conversation;
//! pages of other origins are refused; bad input gets clear errors.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kefu::auth::Role;
use kefu::routing::AgentStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use kefu::bus::Event;

use crate::desk::{api_post, changed, next_event, session, staff};
use crate::helpers::{TestApp, spawn_app};

pub(crate) const KEY: &str = "pk_demo_web_example_key";
const WAIT: Duration = Duration::from_secs(10);

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `POST /widget/api/...` as a visitor (token `None`: no Authorization),
/// from the page at `origin` (`None`: no Origin header).
pub(crate) async fn post(
    app: &TestApp,
    path: &str,
    visitor: Option<&str>,
    origin: Option<&str>,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app
        .client
        .post(format!("{}/widget/api/{path}", app.address))
        .json(&body);
    if let Some(v) = visitor {
        req = req.header("authorization", format!("Visitor {v}"));
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

pub(crate) async fn new_visitor(app: &TestApp) -> String {
    let (status, body, _) = post(app, "session", None, None, json!({"key": KEY})).await;
    assert_eq!(status, 200, "{body}");
    body["visitor"].as_str().unwrap().to_owned()
}

pub(crate) async fn open(app: &TestApp, visitor: &str, after: i64) -> Ws {
    let req = format!(
        "ws://127.0.0.1:{}/widget/api/ws?visitor={visitor}&after={after}",
        app.port
    )
    .into_client_request()
    .unwrap();
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next frame of `kind` on the visitor's socket.
pub(crate) async fn frame(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn a_guest_talks_to_an_agent_and_back() {
    let app = spawn_app().await;
    let wendy = staff(&app, "wendy", Role::Agent, AgentStatus::Idle).await;
    let mut bus = app.state.bus.subscribe();
    let token = new_visitor(&app).await;
    assert!(token.starts_with("demo-web."), "{token}");

    let (status, body, _) = post(
        &app,
        "messages",
        Some(&token),
        None,
        json!({"client_id": "c-1", "text": "你好，想卖车"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first = body["message"].clone();
    assert_eq!(first["from"], "customer");
    assert_eq!(first["text"], "你好，想卖车");
    assert_eq!(first["client_id"], "c-1");
    // The same client id again: the same message, stored once.
    let (_, again, _) = post(
        &app,
        "messages",
        Some(&token),
        None,
        json!({"client_id": "c-1", "text": "你好，想卖车"}),
    )
    .await;
    assert_eq!(again["message"]["id"], first["id"]);

    let mut ws = open(&app, &token, 0).await;
    let caught_up = frame(&mut ws, "message").await;
    assert_eq!(caught_up["message"]["id"], first["id"]);

    let (status, body, _) = post(&app, "handoff", Some(&token), None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let assigned = changed(&mut bus, |c| c.state == "assigned").await;
    assert_eq!(assigned.agent, Some(wendy));
    let conv = loop {
        let f = frame(&mut ws, "conversation").await;
        if f["conversation"]["state"] == "assigned" {
            break f["conversation"].clone();
        }
    };
    assert_eq!(conv["agent_name"], "wendy 名字");

    // The agent answers from the workbench.
    let s = session(&app, "wendy").await;

    // Typing, both ways: the agent's console hears the visitor, the
    // visitor's page hears the agent.
    let mut console = console_socket(&app, &s).await;
    ws.send(Message::Text(json!({"type": "typing"}).to_string().into()))
        .await
        .unwrap();
    let heard = loop {
        let f = frame(&mut console, "event").await;
        if f["event"]["type"] == "typing" {
            break f["event"].clone();
        }
    };
    assert_eq!(heard["conversation"], assigned.conversation.0);
    assert_eq!(heard["agent"], Value::Null);
    console
        .send(Message::Text(
            json!({"type": "typing", "conversation": assigned.conversation.0})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let typing = frame(&mut ws, "typing").await;
    assert_eq!(typing["agent_name"], "wendy 名字");
    let (status, sent) = api_post(
        &app,
        &format!("/api/conversations/{}/messages", assigned.conversation.0),
        &s,
        json!({"client_id": "r-1", "text": "您好，我是 wendy"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let reply = loop {
        let f = frame(&mut ws, "message").await;
        if f["message"]["from"] == "agent" {
            break f["message"].clone();
        }
    };
    assert_eq!(reply["text"], "您好，我是 wendy");
    assert_eq!(reply["agent_name"], "wendy 名字");
    let reply_id = reply["id"].as_i64().unwrap();
    let status = next_event(&mut bus, |e| match e {
        Event::OutboundStatus {
            message_id, status, ..
        } if message_id.0 == reply_id && status != "queued" => Some(status.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        status, "sent",
        "a widget message is delivered by Kefu itself"
    );
    assert!(
        app.fake
            .requests_to("/cgi-bin/message/custom/send")
            .is_empty(),
        "and never through WeChat"
    );

    // A returning visitor gets their conversation back.
    let (_, back, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": KEY, "visitor": token}),
    )
    .await;
    assert_eq!(back["visitor"], token.as_str());
    assert_eq!(back["conversation"]["state"], "assigned");
    let texts: Vec<&str> = back["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "你好，想卖车",
            "客服 wendy 名字 为您服务",
            "您好，我是 wendy"
        ],
        "the button's request is not shown as a message"
    );
    assert_eq!(back["messages"][1]["from"], "system");
}

#[tokio::test]
async fn nobody_reads_another_visitor_s_conversation() {
    let app = spawn_app().await;
    let alice = new_visitor(&app).await;
    let (status, _, _) = post(
        &app,
        "messages",
        Some(&alice),
        None,
        json!({"client_id": "a-1", "text": "我的车牌是沪A12345"}),
    )
    .await;
    assert_eq!(status, 200);
    // Another visitor, and one who makes up a well-formed token.
    let bob = new_visitor(&app).await;
    assert_ne!(bob, alice);
    let forged = format!("demo-web.{}", "A".repeat(43));
    for token in [bob.as_str(), forged.as_str()] {
        let (status, body, _) = post(
            &app,
            "session",
            None,
            None,
            json!({"key": KEY, "visitor": token}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["messages"], json!([]), "{body}");
        let r = app
            .client
            .get(format!("{}/widget/api/poll?after=0&wait=0", app.address))
            .header("authorization", format!("Visitor {token}"))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["messages"], json!([]), "{body}");
    }
    // Malformed tokens, and none at all.
    for token in [Some("demo-web.short"), Some("nosuchsite.AAAA"), None] {
        let (status, body, _) = post(
            &app,
            "messages",
            token,
            None,
            json!({"client_id": "x", "text": "hi"}),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    // A token of a site given with another site's key is not resumed.
    let (_, body, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": KEY, "visitor": alice.replace("demo-web.", "demo-oa.")}),
    )
    .await;
    assert_ne!(body["visitor"], alice.as_str());
    assert_eq!(body["messages"], json!([]));
}

#[tokio::test]
async fn only_the_site_s_pages_may_use_it_and_bad_input_is_refused() {
    let app = spawn_app().await;
    let (status, body, _) = post(
        &app,
        "session",
        None,
        Some("https://evil.example.com"),
        json!({"key": KEY}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body, headers) = post(
        &app,
        "session",
        None,
        Some("http://localhost:8080"),
        json!({"key": KEY}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:8080"
    );
    let token = body["visitor"].as_str().unwrap().to_owned();
    // Preflight: the site's origin yes, another no.
    for (origin, want) in [
        ("http://localhost:8080", 204),
        ("https://evil.example.com", 403),
    ] {
        let r = app
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/widget/api/messages", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{origin}");
    }
    let (status, body, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": "pk_nosuchkey_0000"}),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str().unwrap_or("")),
        (400, "key: no site has this public key")
    );
    let long = "长".repeat(2001);
    for (body, want, says) in [
        (json!({"client_id": "c", "text": "  "}), 400, "text: empty"),
        (
            json!({"client_id": "c", "text": long}),
            413,
            "text: longer than 2000 characters",
        ),
        (json!({"client_id": "c c", "text": "hi"}), 400, "client_id"),
        (
            json!({"client_id": "c", "text": "a\u{0}b"}),
            400,
            "text: control characters",
        ),
    ] {
        let (status, got, _) = post(&app, "messages", Some(&token), None, body).await;
        assert_eq!(status, want, "{got}");
        assert!(
            got["message"].as_str().unwrap_or("").starts_with(says),
            "{got}"
        );
    }
    assert!(app.stored("demo-web").await.is_empty(), "nothing stored");
}

/// The site's signed token for a logged-in user (docs/widget-login.md).
fn login_token(uid: &str, secret: &str, nonce: &str, valid_for: chrono::Duration) -> String {
    kefu::channels::web::login::sign(
        &kefu::channels::web::login::LoginClaims {
            user_id: uid.into(),
            name: Some("张三".into()),
            expires_at: chrono::Utc::now() + valid_for,
            nonce: nonce.into(),
        },
        secret.as_bytes(),
    )
}

#[tokio::test]
async fn a_signed_in_user_reaches_their_dedicated_agent_and_bad_tokens_leave_a_guest() {
    use kefu::ids::CustomerId;
    use sea_orm::TransactionTrait as _;
    const SECRET: &str = "site-secret-0123456789-abcdefghijkl";
    let app = crate::helpers::spawn_app_with(|s| {
        s.sites[0].login_secret = Some(kefu::config::Secret::new(SECRET));
    })
    .await;
    let _other = staff(&app, "oscar", Role::Agent, AgentStatus::Idle).await;
    let dora = staff(&app, "dora", Role::Agent, AgentStatus::Idle).await;
    // The CRM knows user u-100 as 张三, bound to dora.
    let txn = app.state.store.writer().begin().await.unwrap();
    let crm = kefu::store::crm::upsert_customer(
        &txn,
        &kefu::store::crm::CustomerRow {
            crm_id: "u-100".into(),
            name: Some("张三 (CRM)".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id;
    txn.commit().await.unwrap();
    app.state.store.bind_if_unbound(crm, dora).await.unwrap();
    crate::desk::reload(&app).await;

    // As a guest first, writing once.
    let mut filed = app.state.bus.subscribe();
    let guest = new_visitor(&app).await;
    let (_, sent, _) = post(
        &app,
        "messages",
        Some(&guest),
        None,
        json!({"client_id": "g-1", "text": "在吗"}),
    )
    .await;
    let guest_message = sent["message"]["id"].as_i64().unwrap();
    next_event(&mut filed, |e| match e {
        Event::MessageFiled { message, .. } if message.id.0 == guest_message => Some(()),
        _ => None,
    })
    .await;

    let day = chrono::Duration::hours(1);
    let good = login_token("u-100", SECRET, "nonce-0000000000000001", day);
    let (status, body, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": KEY, "visitor": guest, "login": good}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["login"], "accepted", "{body}");
    assert_eq!(body["user"]["id"], "u-100");
    let token = body["visitor"].as_str().unwrap().to_owned();
    assert_eq!(token, guest, "the guest's visitor is now the user's");
    // Their guest message joined their CRM customer's history.
    let m = app
        .state
        .store
        .message(kefu::ids::MessageId(guest_message))
        .await
        .unwrap();
    assert_eq!(m.customer_id.map(CustomerId), Some(crm));
    assert_eq!(body["messages"][0]["text"], "在吗");

    let mut bus = app.state.bus.subscribe();
    let (status, _, _) = post(&app, "handoff", Some(&token), None, json!({})).await;
    assert_eq!(status, 200);
    let assigned = changed(&mut bus, |c| c.state == "assigned").await;
    assert_eq!(assigned.agent, Some(dora), "their dedicated agent");
    assert_eq!(assigned.customer, crm);

    // Replayed, forged, expired, and too long-lived tokens: a guest, and
    // never the user's conversation.
    let forged = login_token(
        "u-100",
        "another-secret-0123456789-abcdefgh",
        "nonce-0000000000000002",
        day,
    );
    let expired = login_token(
        "u-100",
        SECRET,
        "nonce-0000000000000003",
        chrono::Duration::seconds(-5),
    );
    let too_long = login_token(
        "u-100",
        SECRET,
        "nonce-0000000000000004",
        chrono::Duration::days(3),
    );
    for (bad, says) in [
        (
            login_token("u-100", SECRET, "nonce-0000000000000001", day),
            "replayed",
        ),
        (forged, "signature"),
        (expired, "expired"),
        (too_long, "24 hours"),
    ] {
        let (status, body, _) = post(
            &app,
            "session",
            None,
            None,
            json!({"key": KEY, "visitor": token, "login": bad}),
        )
        .await;
        assert_eq!(status, 200);
        let reason = body["login"]["refused"].as_str().unwrap_or_default();
        assert!(reason.contains(says), "{says}: {body}");
        assert_eq!(body["user"], Value::Null);
        assert_ne!(body["visitor"], token.as_str(), "a new guest");
        assert_eq!(body["messages"], json!([]), "{body}");
    }
    // Without a login token (signed out on the site) the browser's visitor
    // is not the user's any more either.
    let (_, body, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": KEY, "visitor": token}),
    )
    .await;
    assert_ne!(body["visitor"], token.as_str());
    assert_eq!(body["messages"], json!([]));
}

#[tokio::test]
async fn rate_limits_per_visitor_and_per_address_behind_trusted_proxies() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.widget.visitor_messages_per_minute = 3;
        s.widget.ip_sessions_per_minute = 2;
        s.widget.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // New chats per address: the proxy's X-Forwarded-For names it.
    let session_from = |ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/widget/api/session", app.address))
                .header("x-forwarded-for", format!("9.9.9.9, {ip}"))
                .json(&json!({"key": KEY}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(session_from("1.2.3.4").await.status(), 200);
    let token = session_from("1.2.3.4").await.json::<Value>().await.unwrap()["visitor"]
        .as_str()
        .unwrap()
        .to_owned();
    let third = session_from("1.2.3.4").await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    assert_eq!(
        session_from("5.6.7.8").await.status(),
        200,
        "another address"
    );

    // Messages per visitor; a retry of a stored one is free.
    for i in 0..3 {
        let (status, body, _) = post(
            &app,
            "messages",
            Some(&token),
            None,
            json!({"client_id": format!("m-{i}"), "text": "hi"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body, headers) = post(
        &app,
        "messages",
        Some(&token),
        None,
        json!({"client_id": "m-3", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = post(
        &app,
        "messages",
        Some(&token),
        None,
        json!({"client_id": "m-0", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "a retry of a stored message");
    assert_eq!(app.stored("demo-web").await.len(), 3);
}

#[test]
fn a_bad_trusted_proxy_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = crate::helpers::repo_config_dir();
    for entry in ["kefu.toml", "accounts", "sites"] {
        let to = dir.path().join(entry);
        if entry.ends_with(".toml") {
            let text = std::fs::read_to_string(src.join(entry)).unwrap();
            let bad = text.replace(
                "trusted_proxies = []",
                "trusted_proxies = [\"10.0.0.0/33\"]",
            );
            assert_ne!(bad, text);
            std::fs::write(&to, bad).unwrap();
        } else {
            std::fs::create_dir(&to).unwrap();
            for f in std::fs::read_dir(src.join(entry)).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    let err = kefu::config::Settings::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("widget.trusted_proxies"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

#[tokio::test]
async fn nobody_on_duty_the_visitor_leaves_a_message_that_becomes_a_ticket() {
    let app = spawn_app().await;
    let (_, started, _) = post(&app, "session", None, None, json!({"key": KEY})).await;
    assert_eq!(started["on_duty"], false, "{started}");
    assert_eq!(
        started["leave_message"]["required"],
        json!(["phone", "message"])
    );
    let token = started["visitor"].as_str().unwrap().to_owned();
    let mut ws = open(&app, &token, 0).await;
    for (form, says) in [
        (
            json!({"client_id": "l-1", "name": "李", "message": "想卖车"}),
            "phone: required",
        ),
        (
            json!({"client_id": "l-1", "phone": "138", "message": "想卖车"}),
            "phone: not a phone number",
        ),
        (
            json!({"client_id": "l-1", "phone": "13800138000"}),
            "message: required",
        ),
    ] {
        let (status, body, _) = post(&app, "leave-message", Some(&token), None, form).await;
        assert_eq!(
            (status, body["message"].as_str().unwrap_or("")),
            (400, says)
        );
    }
    let (status, body, _) = post(
        &app,
        "leave-message",
        Some(&token),
        None,
        json!({"client_id": "l-1", "name": "李先生", "phone": "138 0013 8000", "message": "明天上午想来看车"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("【留言】明天上午想来看车")
    );
    // The visitor is told, on their socket, that the message was taken.
    let told = loop {
        let f = frame(&mut ws, "message").await;
        if f["message"]["from"] == "system" {
            break f["message"]["text"].as_str().unwrap().to_owned();
        }
    };
    assert!(!told.is_empty());
    let m = app
        .state
        .store
        .message(kefu::ids::MessageId(
            body["message"]["id"].as_i64().unwrap(),
        ))
        .await
        .unwrap();
    let customer = kefu::ids::CustomerId(m.customer_id.unwrap());
    let tickets = app.state.store.tickets_of_customer(customer).await.unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert!(
        tickets[0].summary.contains("明天上午想来看车"),
        "{:?}",
        tickets[0]
    );
    let c = app.state.store.customer(customer).await.unwrap();
    assert_eq!(c.name.as_deref(), Some("李先生"));
    assert_eq!(c.phone.as_deref(), Some("138 0013 8000"));
}

#[tokio::test]
async fn a_guest_is_routed_to_the_city_group_of_their_ip_address() {
    use kefu::routing::xdb::XdbWriter;
    let dir = tempfile::tempdir().unwrap();
    let xdb = dir.path().join("regions.xdb");
    let bytes = XdbWriter::new()
        .range(
            "58.32.0.0".parse().unwrap(),
            "58.47.255.255".parse().unwrap(),
            "中国|0|上海|上海市|电信",
        )
        .range(
            "202.96.0.0".parse().unwrap(),
            "202.96.255.255".parse().unwrap(),
            "中国|0|北京|北京市|联通",
        )
        .build()
        .unwrap();
    std::fs::write(&xdb, bytes).unwrap();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.routing.ip2region_path = xdb;
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
        // Kefu sits behind a proxy on this machine.
        s.widget.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let store = &app.state.store;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let carl = staff(&app, "carl", Role::Agent, AgentStatus::Idle).await;
    let sh = store.create_city_group("上海").await.unwrap();
    let bj = store.create_city_group("北京").await.unwrap();
    store.add_group_member(sh, alice).await.unwrap();
    store.add_group_member(bj, carl).await.unwrap();
    // The CRM's region table: which city group serves which region.
    for (region, g) in [("上海", sh), ("北京", bj)] {
        kefu::store::crm::set_region(store.writer(), region, Some(g))
            .await
            .unwrap();
    }
    crate::desk::reload(&app).await;
    let mut bus = app.state.bus.subscribe();
    for (ip, want) in [("202.96.1.1", carl), ("58.33.1.1", alice)] {
        let token = new_visitor(&app).await;
        for (path, body) in [
            ("messages", json!({"client_id": "c-1", "text": "你好"})),
            ("handoff", json!({})),
        ] {
            let r = app
                .client
                .post(format!("{}/widget/api/{path}", app.address))
                .header("authorization", format!("Visitor {token}"))
                .header("x-forwarded-for", ip)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let assigned = changed(&mut bus, |c| c.state == "assigned").await;
        assert_eq!(assigned.agent, Some(want), "{ip}: {}", assigned.reason);
        assert!(!assigned.reason.contains("no group"), "{}", assigned.reason);
        let c = store.customer(assigned.customer).await.unwrap();
        assert_eq!(
            c.region.as_deref(),
            Some(if want == carl { "北京" } else { "上海" })
        );
    }
}

/// The next conversation frame past the robot: queued with a position,
/// or served.
async fn place(ws: &mut Ws) -> Value {
    loop {
        let f = frame(ws, "conversation").await;
        let c = &f["conversation"];
        if c["state"] != "bot" && (c["state"] != "queued" || c["queue_position"].is_u64()) {
            return c.clone();
        }
    }
}

#[tokio::test]
async fn waiting_visitors_see_their_place_move_up_the_queue() {
    let app = spawn_app().await;
    let wendy = staff(&app, "wendy", Role::Agent, AgentStatus::Busy).await;
    app.state.store.set_agent_capacity(wendy, 1).await.unwrap();
    crate::desk::reload(&app).await;
    let s = session(&app, "wendy").await;
    let mut bus = app.state.bus.subscribe();

    let first = new_visitor(&app).await;
    let second = new_visitor(&app).await;
    let mut first_ws = open(&app, &first, 0).await;
    let mut second_ws = open(&app, &second, 0).await;
    for v in [&first, &second] {
        let (status, body, _) = post(&app, "handoff", Some(v), None, json!({})).await;
        assert_eq!(status, 200, "{body}");
        changed(&mut bus, |c| c.state == "queued").await;
    }
    let c = place(&mut first_ws).await;
    assert_eq!(
        (&c["state"], &c["queue_position"]),
        (&json!("queued"), &json!(0))
    );
    let c = place(&mut second_ws).await;
    assert_eq!(
        (&c["state"], &c["queue_position"]),
        (&json!("queued"), &json!(1))
    );

    // The agent is free for one: the first is served, the second moves up.
    let (status, body) = api_post(&app, "/api/presence", &s, json!({"status": "idle"})).await;
    assert_eq!(status, 200, "{body}");
    let c = place(&mut first_ws).await;
    assert_eq!(
        (&c["state"], &c["agent_name"]),
        (&json!("assigned"), &json!("wendy 名字"))
    );
    let c = place(&mut second_ws).await;
    assert_eq!(
        (&c["state"], &c["queue_position"]),
        (&json!("queued"), &json!(0))
    );
}

/// The agent's console socket, said hello.
async fn console_socket(app: &TestApp, s: &crate::login::browser::Session) -> Ws {
    let mut req = format!("ws://127.0.0.1:{}/api/ws", app.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", s.cookie().parse().unwrap());
    req.headers_mut().insert(
        "origin",
        format!("http://127.0.0.1:{}", app.port).parse().unwrap(),
    );
    let (mut console, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    console
        .send(Message::Text(json!({"type": "hello"}).to_string().into()))
        .await
        .unwrap();
    frame(&mut console, "welcome").await;
    console
}

async fn customer_read_up_to(app: &TestApp, s: &crate::login::browser::Session, c: i64) -> Value {
    let (status, d) = crate::desk::api_get(app, &format!("/api/conversations/{c}"), Some(s)).await;
    assert_eq!(status, 200, "{d}");
    d["customer_read_up_to"].clone()
}

#[tokio::test]
async fn read_marks_pass_from_agent_to_visitor_and_back() {
    let app = spawn_app().await;
    let wendy = staff(&app, "wendy", Role::Agent, AgentStatus::Idle).await;
    let mut bus = app.state.bus.subscribe();
    let token = new_visitor(&app).await;
    let stranger = new_visitor(&app).await;
    let (_, _, _) = post(
        &app,
        "messages",
        Some(&stranger),
        None,
        json!({"client_id": "s-1", "text": "hi"}),
    )
    .await;
    let (status, body, _) = post(&app, "handoff", Some(&token), None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let assigned = changed(&mut bus, |c| c.state == "assigned").await;
    assert_eq!(assigned.agent, Some(wendy));
    let c = assigned.conversation.0;
    let s = session(&app, "wendy").await;
    let mut console = console_socket(&app, &s).await;
    let mut ws = open(&app, &token, 0).await;
    let (_, sent, _) = post(
        &app,
        "messages",
        Some(&token),
        None,
        json!({"client_id": "c-1", "text": "车款到了吗"}),
    )
    .await;
    let mine = sent["message"]["id"].as_i64().unwrap();
    // Filed before the agent can read it.
    next_event(&mut bus, |e| match e {
        Event::MessageFiled { message, .. } if message.id.0 == mine => Some(()),
        _ => None,
    })
    .await;

    // The agent reads it: the visitor's page is told, and so is a later visit.
    let (status, body) = api_post(
        &app,
        &format!("/api/conversations/{c}/read"),
        &s,
        json!({"message_id": mine}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let read = frame(&mut ws, "read").await;
    assert_eq!(read["up_to"], mine);
    let (_, back, _) = post(
        &app,
        "session",
        None,
        None,
        json!({"key": KEY, "visitor": token}),
    )
    .await;
    assert_eq!(back["conversation"]["agent_read_up_to"], mine);
    // Only a message of the conversation can be marked.
    let (status, body) = api_post(
        &app,
        &format!("/api/conversations/{c}/read"),
        &s,
        json!({"message_id": 999_999}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // The agent answers; the visitor's page says it was seen, and the
    // agent's console hears it.
    assert_eq!(customer_read_up_to(&app, &s, c).await, Value::Null);
    let (status, body) = api_post(
        &app,
        &format!("/api/conversations/{c}/messages"),
        &s,
        json!({"client_id": "r-1", "text": "已到账"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reply = loop {
        let f = frame(&mut ws, "message").await;
        if f["message"]["from"] == "agent" {
            break f["message"]["id"].as_i64().unwrap();
        }
    };
    ws.send(Message::Text(
        json!({"type": "read", "up_to": reply}).to_string().into(),
    ))
    .await
    .unwrap();
    let heard = loop {
        let f = frame(&mut console, "event").await;
        if f["event"]["type"] == "read" {
            break f["event"].clone();
        }
    };
    assert_eq!(heard["conversation"], c);
    assert_eq!(heard["up_to"], reply);
    assert_eq!(heard["agent"], Value::Null);
    assert_eq!(customer_read_up_to(&app, &s, c).await, reply);

    // A mark past what was delivered, or from someone else, moves nothing;
    // the long-poll fallback's POST moves it.
    let (_, body) = api_post(
        &app,
        &format!("/api/conversations/{c}/messages"),
        &s,
        json!({"client_id": "r-2", "text": "还有别的问题吗"}),
    )
    .await;
    let second = body["message_id"].as_i64().or(body["id"].as_i64()).unwrap();
    let (status, _, _) = post(
        &app,
        "read",
        Some(&stranger),
        None,
        json!({"up_to": second}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = post(&app, "read", Some(&token), None, json!({"up_to": 999_999})).await;
    assert_eq!(status, 204);
    assert_eq!(customer_read_up_to(&app, &s, c).await, reply);
    let (status, body, _) = post(&app, "read", Some(&token), None, json!({"up_to": 0})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = post(&app, "read", Some(&token), None, json!({"up_to": second})).await;
    assert_eq!(status, 204);
    assert_eq!(customer_read_up_to(&app, &s, c).await, second);
}
