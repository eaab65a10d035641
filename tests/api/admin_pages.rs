//! The admin page's other sections through HTTP: the shared quick replies
//! (kept by admins and supervisors, not agents; clear JSON errors) and the
//! read-only overview of the configured WeChat accounts (admins only, with
//! the callback URL to paste and never a secret).

use kefu::auth::Role;
use kefu::ids::AccountId;
use kefu::routing::AgentStatus;
use reqwest::Method;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

use crate::desk::{api_get, api_post, session, staff};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::login::browser::{ADMIN_PW, Session, create_admin, sign_in};

/// A `PUT` or `DELETE` as the session's user, with the CSRF header unless
/// `csrf` is false.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    s: &Session,
    body: Option<Value>,
    csrf: bool,
) -> (u16, Value) {
    let mut rb = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header(COOKIE, s.cookie());
    if csrf {
        rb = rb.header("X-CSRF-Token", &s.csrf);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn shared_titles(list: &Value) -> Vec<String> {
    list["replies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["shared"] == true)
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_admin_keeps_the_shared_quick_replies_and_agents_only_use_them() {
    let app = spawn_app().await;
    create_admin(&app).await;
    staff(&app, "alice", Role::Agent, AgentStatus::Offline).await;
    let ada = sign_in(&app, "ada", ADMIN_PW).await;
    let alice = session(&app, "alice").await;

    // Create.
    let (status, made) = api_post(
        &app,
        "/api/quick-replies",
        &ada,
        json!({"title": " 问候 ", "content": "{客户}您好，我是{agent_name}。\n请问有什么可以帮您？", "shared": true}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(
        (&made["title"], &made["shared"], &made["editable"]),
        (&json!("问候"), &json!(true), &json!(true)),
        "trimmed, shared, the admin's to edit"
    );
    let id = made["id"].as_i64().unwrap();
    let path = format!("/api/quick-replies/{id}");

    // Every agent sees it, none may change it.
    let (_, seen) = api_get(&app, "/api/quick-replies", Some(&alice)).await;
    assert_eq!(shared_titles(&seen), ["问候"]);
    assert_eq!(seen["replies"][0]["editable"], false);
    let change = json!({"title": "问候2", "content": "改了"});
    for (method, body) in [(Method::PUT, Some(change.clone())), (Method::DELETE, None)] {
        let (status, err) = send(&app, method.clone(), &path, &alice, body, true).await;
        assert_eq!(status, 403, "{method}: {err}");
        assert_eq!(err["code"], "forbidden");
    }
    let (status, _) = api_post(
        &app,
        "/api/quick-replies",
        &alice,
        json!({"title": "我的共享", "content": "x", "shared": true}),
    )
    .await;
    assert_eq!(status, 403);

    // Edit: not without the CSRF header; then with it.
    let (status, _) = send(&app, Method::PUT, &path, &ada, Some(change.clone()), false).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, edited) = send(&app, Method::PUT, &path, &ada, Some(change), true).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (&edited["title"], &edited["content"]),
        (&json!("问候2"), &json!("改了"))
    );
    let (_, seen) = api_get(&app, "/api/quick-replies", Some(&alice)).await;
    assert_eq!(shared_titles(&seen), ["问候2"]);

    // Validation errors are JSON that says what is wrong.
    let long_title = "字".repeat(65);
    let long_content = "字".repeat(2001);
    for (body, says) in [
        (
            json!({"title": "", "content": "x", "shared": true}),
            "title must be 1 to 64",
        ),
        (
            json!({"title": "   ", "content": "x", "shared": true}),
            "title must be 1 to 64",
        ),
        (
            json!({"title": long_title, "content": "x", "shared": true}),
            "title must be 1 to 64",
        ),
        (
            json!({"title": "a\nb", "content": "x", "shared": true}),
            "one line",
        ),
        (
            json!({"title": "t", "content": "", "shared": true}),
            "content must be 1 to 2000",
        ),
        (
            json!({"title": "t", "content": long_content, "shared": true}),
            "content must be 1 to 2000",
        ),
        (
            json!({"title": "t", "content": "a\u{7}b", "shared": true}),
            "control characters",
        ),
        (
            json!({"content": "x", "shared": true}),
            "missing field `title`",
        ),
        (
            json!({"title": "t", "content": "x", "shared": true, "owner": 1}),
            "unknown field",
        ),
    ] {
        let (status, err) = api_post(&app, "/api/quick-replies", &ada, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["code"], "bad_request", "{body}");
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
    }
    let (status, err) = send(
        &app,
        Method::PUT,
        &path,
        &ada,
        Some(json!({"title": "t", "content": " "})),
        true,
    )
    .await;
    assert_eq!((status, &err["code"]), (400, &json!("bad_request")));
    let (status, _) = send(
        &app,
        Method::PUT,
        "/api/quick-replies/99999",
        &ada,
        Some(json!({"title": "t", "content": "x"})),
        true,
    )
    .await;
    assert_eq!(status, 404);
    let (_, seen) = api_get(&app, "/api/quick-replies", Some(&ada)).await;
    assert_eq!(
        shared_titles(&seen),
        ["问候2"],
        "nothing refused was stored"
    );

    // Delete.
    let (status, gone) = send(&app, Method::DELETE, &path, &ada, None, true).await;
    assert_eq!((status, &gone["deleted"]), (200, &json!(id)));
    let (_, seen) = api_get(&app, "/api/quick-replies", Some(&alice)).await;
    assert!(shared_titles(&seen).is_empty());
    assert_eq!(
        send(&app, Method::DELETE, &path, &ada, None, true).await.0,
        404
    );
}

#[tokio::test]
async fn shared_quick_replies_stop_at_their_limit_and_supervisors_keep_them_too() {
    let app = spawn_app().await;
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let sue = session(&app, "sue").await;
    for i in 0..kefu::console::quick_reply_api::MAX_SHARED {
        app.state
            .store
            .create_quick_reply(None, &format!("r{i:03}"), "x")
            .await
            .unwrap();
    }
    let (status, err) = api_post(
        &app,
        "/api/quick-replies",
        &sue,
        json!({"title": "one more", "content": "x", "shared": true}),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], "conflict");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("at most 500 shared")
    );
    // A supervisor may still change and delete them (the API's rule); the
    // /admin page is for admins.
    let (_, list) = api_get(&app, "/api/quick-replies", Some(&sue)).await;
    let first = list["replies"][0]["id"].as_i64().unwrap();
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/quick-replies/{first}"),
        &sue,
        None,
        true,
    )
    .await;
    assert_eq!(status, 200);
    let (status, made) = api_post(
        &app,
        "/api/quick-replies",
        &sue,
        json!({"title": "one more", "content": "x", "shared": true}),
    )
    .await;
    assert_eq!((status, &made["shared"]), (200, &json!(true)));
    assert_eq!(api_get(&app, "/admin", Some(&sue)).await.0, 403);
}

fn account<'a>(overview: &'a Value, id: &str) -> &'a Value {
    overview["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {overview}"))
}

/// Every secret of the configured accounts (AppSecret, Token, EncodingAESKey).
fn secrets(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for a in &app.settings.accounts {
        out.push(a.secret.expose().to_owned());
        out.push(a.token.expose().to_owned());
        if let Some(k) = &a.encoding_aes_key {
            out.push(k.expose().to_owned());
        }
    }
    assert!(out.len() >= 6 && out.iter().all(|s| s.len() >= 8));
    out
}

#[tokio::test]
async fn admins_see_each_accounts_settings_and_callback_url_but_no_secret() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let ada = sign_in(&app, "ada", ADMIN_PW).await;
    let kf = AccountId::parse("demo-kf").unwrap();
    app.state
        .store
        .save_kf_page(&kf, "wkDemo0001", "c1", &[])
        .await
        .unwrap();

    let r = app
        .client
        .get(format!("{}/api/admin/accounts", app.address))
        .header(COOKIE, ada.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let o: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(o["public_url"], app.address);
    assert_eq!(o["public_url_configured"], false);
    assert_eq!(o["accounts"].as_array().unwrap().len(), 2);

    let oa = account(&o, "demo-oa");
    assert_eq!(oa["kind"], "official_account");
    assert_eq!(oa["name"], "示例公众号 (example)");
    assert_eq!(oa["app_id"], "wx00000000fake0000");
    assert!(oa.get("corp_id").is_none() && oa.get("open_kfids").is_none());
    assert_eq!(
        oa["callback_url"],
        format!("{}/wechat/demo-oa", app.address)
    );
    assert_eq!(oa["encryption"], "safe");
    assert_eq!(oa["token_mode"], "stable");
    assert_eq!(oa["link_unionid"], false);
    assert_eq!(oa["secret_configured"], true);
    assert_eq!(oa["token_configured"], true);
    assert_eq!(oa["encoding_aes_key_configured"], true);
    assert_eq!(oa["file"], "demo-oa.toml");

    let wk = account(&o, "demo-kf");
    assert_eq!(wk["kind"], "wecom_kf");
    assert_eq!(wk["corp_id"], "ww00000000fake0000");
    assert!(wk.get("app_id").is_none());
    assert_eq!(wk["open_kfids"], json!(["wkDemo0001"]));
    assert_eq!(wk["callback_url"], format!("{}/wecom/demo-kf", app.address));
    assert_eq!(wk["encryption"], "safe");

    // No secret in the answer, nor on the page.
    let page = app
        .client
        .get(format!("{}/admin", app.address))
        .header(COOKIE, ada.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"id="accounts""#));
    for s in secrets(&app) {
        assert!(!text.contains(&s), "a secret in the JSON");
        assert!(!html.contains(&s), "a secret on the page");
    }

    // Admins only.
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    staff(&app, "alice", Role::Agent, AgentStatus::Offline).await;
    for login in ["sue", "alice"] {
        let s = session(&app, login).await;
        let (status, err) = api_get(&app, "/api/admin/accounts", Some(&s)).await;
        assert_eq!(
            (status, &err["code"]),
            (403, &json!("forbidden")),
            "{login}"
        );
        assert!(!err.to_string().contains("wx00000000fake0000"));
    }
    assert_eq!(api_get(&app, "/api/admin/accounts", None).await.0, 401);
}

#[tokio::test]
async fn callback_urls_use_the_configured_public_url_and_modes_show_as_configured() {
    let app = spawn_app_with(|s| {
        s.server.public_url = Some("https://kefu.example.com/".into());
        let oa = s
            .accounts
            .iter_mut()
            .find(|a| a.id.as_str() == "demo-oa")
            .unwrap();
        oa.message_mode = kefu::config::MessageMode::Plaintext;
        oa.encoding_aes_key = None;
        oa.link_unionid = true;
    })
    .await;
    create_admin(&app).await;
    let ada = sign_in(&app, "ada", ADMIN_PW).await;
    let (status, o) = api_get(&app, "/api/admin/accounts", Some(&ada)).await;
    assert_eq!(status, 200);
    assert_eq!(o["public_url_configured"], true);
    let oa = account(&o, "demo-oa");
    assert_eq!(
        oa["callback_url"],
        "https://kefu.example.com/wechat/demo-oa"
    );
    assert_eq!(oa["encryption"], "plaintext");
    assert_eq!(oa["encoding_aes_key_configured"], false);
    assert_eq!(oa["link_unionid"], true);
    let wk = account(&o, "demo-kf");
    assert_eq!(wk["callback_url"], "https://kefu.example.com/wecom/demo-kf");
    assert_eq!(wk["open_kfids"], json!([]));
}
