//! Quick replies through HTTP: shared ones kept by supervisors, each
//! agent's own private to them, variables filled in for the customer of a
//! conversation the agent may see.

use kefu::auth::Role;
use kefu::routing::AgentStatus;
use reqwest::header::COOKIE;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::desk::{api_get, api_post, changed, customer_of, say, session, staff};
use crate::helpers::TestApp;
use crate::login::browser::Session;

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    s: &Session,
    body: Option<Value>,
) -> u16 {
    let mut rb = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header(COOKIE, s.cookie())
        .header("X-CSRF-Token", &s.csrf);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap().status().as_u16()
}

fn titles(list: &Value) -> Vec<String> {
    list["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn shared_and_own_quick_replies_filled_in_for_the_customer() {
    let app = crate::helpers::spawn_app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let (alice, bob, sue) = (
        session(&app, "alice").await,
        session(&app, "bob").await,
        session(&app, "sue").await,
    );
    let shared = json!({"title": "问候", "content": "{customer_name}您好，我是{客服}，很高兴为您服务", "shared": true});
    let (status, greeting) = api_post(&app, "/api/quick-replies", &sue, shared.clone()).await;
    assert_eq!(status, 200, "{greeting}");
    assert_eq!(greeting["shared"], true);
    assert_eq!(
        api_post(&app, "/api/quick-replies", &alice, shared).await.0,
        403
    );
    let (status, own) = api_post(
        &app,
        "/api/quick-replies",
        &alice,
        json!({"title": "结束语", "content": "感谢您的咨询，再见"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&own["shared"], &own["editable"]),
        (&json!(false), &json!(true))
    );

    // Shared first, then mine; nobody else's.
    let (_, mine) = api_get(&app, "/api/quick-replies", Some(&alice)).await;
    assert_eq!(titles(&mine), ["问候", "结束语"]);
    assert_eq!(mine["replies"][0]["editable"], false);
    let (_, theirs) = api_get(&app, "/api/quick-replies", Some(&bob)).await;
    assert_eq!(titles(&theirs), ["问候"]);

    // Filled in for the customer of my conversation.
    let mut rx = app.state.bus.subscribe();
    say(&app, "oWang", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let customer = customer_of(&app, "oWang").await;
    kefu::store::entities::customers::ActiveModel {
        id: Set(customer.0),
        name: Set(Some("王先生".into())),
        ..Default::default()
    }
    .update(app.state.store.writer())
    .await
    .unwrap();
    let path = format!("/api/quick-replies?conversation={}", got.conversation.0);
    let (status, filled) = api_get(&app, &path, Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(
        filled["replies"][0]["rendered"],
        "王先生您好，我是alice 名字，很高兴为您服务"
    );
    assert_eq!(
        api_get(&app, &path, Some(&bob)).await.0,
        403,
        "not bob's conversation"
    );

    // Changing and deleting: mine, or shared ones as a supervisor.
    let g = format!("/api/quick-replies/{}", greeting["id"]);
    let o = format!("/api/quick-replies/{}", own["id"]);
    let edit = json!({"title": "问候", "content": "您好"});
    assert_eq!(
        send(&app, reqwest::Method::PUT, &g, &alice, Some(edit.clone())).await,
        403
    );
    assert_eq!(
        send(&app, reqwest::Method::PUT, &g, &sue, Some(edit)).await,
        200
    );
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &o, &bob, None).await,
        404,
        "alice's own"
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::PUT,
            &o,
            &alice,
            Some(json!({"title": "再见", "content": "再见"}))
        )
        .await,
        200
    );
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &o, &alice, None).await,
        200
    );
    let (_, after) = api_get(&app, "/api/quick-replies", Some(&alice)).await;
    assert_eq!(titles(&after), ["问候"]);
    assert_eq!(after["replies"][0]["content"], "您好");

    // Bad input, no CSRF token, no session.
    let (status, bad) = api_post(
        &app,
        "/api/quick-replies",
        &alice,
        json!({"title": " ", "content": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let long = "长".repeat(2001);
    assert_eq!(
        api_post(
            &app,
            "/api/quick-replies",
            &alice,
            json!({"title": "t", "content": long})
        )
        .await
        .0,
        400
    );
    let r = app
        .client
        .post(format!("{}/api/quick-replies", app.address))
        .header(COOKIE, alice.cookie())
        .json(&json!({"title": "t", "content": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no CSRF token");
    assert_eq!(api_get(&app, "/api/quick-replies", None).await.0, 401);
}
