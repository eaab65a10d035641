//! Administration through HTTP: users (create with a one-time password,
//! change role, capacity, groups, disable, reset password) and city groups,
//! for admins only; routing follows at once.

use kefu::auth::Role;
use kefu::routing::AgentStatus;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

use crate::desk::{api_get, api_post, changed, say, session, staff};
use crate::helpers::{TestApp, spawn_app};
use crate::login::browser::{ADMIN_PW, Session, create_admin, sign_in, try_sign_in};

async fn patch(app: &TestApp, path: &str, s: &Session, body: Value) -> (u16, Value) {
    let r = app
        .client
        .patch(format!("{}{path}", app.address))
        .header(COOKIE, s.cookie())
        .header("X-CSRF-Token", &s.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn can_sign_in(app: &TestApp, login: &str, pw: &str) -> bool {
    let r = try_sign_in(app, login, pw).await;
    r.status().as_u16() == 303
        && r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("kefu_session="))
}

#[tokio::test]
async fn an_admin_creates_and_manages_users_and_groups() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let ada = sign_in(&app, "ada", ADMIN_PW).await;

    let (status, g) = api_post(&app, "/api/admin/groups", &ada, json!({"name": "上海"})).await;
    assert_eq!(status, 200, "{g}");
    let sh = g["id"].as_i64().unwrap();
    assert_eq!(
        api_post(&app, "/api/admin/groups", &ada, json!({"name": "上海"}))
            .await
            .0,
        409
    );
    let (status, _) = patch(
        &app,
        &format!("/api/admin/groups/{sh}"),
        &ada,
        json!({"name": "上海一组"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, groups) = api_get(&app, "/api/admin/groups", Some(&ada)).await;
    assert_eq!(groups["groups"][0]["name"], "上海一组");

    // A new agent gets a one-time password, which works.
    let (status, made) = api_post(
        &app,
        "/api/admin/agents",
        &ada,
        json!({"login": "lily", "name": "李丽", "role": "agent", "capacity": 3, "groups": [sh]}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let pw = made["one_time_password"].as_str().unwrap().to_owned();
    assert!(pw.len() >= 12);
    let lily = made["agent"]["id"].as_i64().unwrap();
    assert_eq!(made["agent"]["capacity"], 3);
    assert_eq!(made["agent"]["groups"], json!([sh]));
    assert!(can_sign_in(&app, "lily", &pw).await);
    assert_eq!(
        api_post(
            &app,
            "/api/admin/agents",
            &ada,
            json!({"login": "lily", "name": "x", "role": "agent"})
        )
        .await
        .0,
        409
    );
    for bad in [
        json!({"login": "a b", "name": "x", "role": "agent"}),
        json!({"login": "x", "name": "", "role": "agent"}),
        json!({"login": "x", "name": "x", "role": "root"}),
        json!({"login": "x", "name": "x", "role": "agent", "capacity": 0}),
        json!({"login": "x", "name": "x", "role": "agent", "groups": [999]}),
    ] {
        assert_eq!(
            api_post(&app, "/api/admin/agents", &ada, bad.clone())
                .await
                .0,
            400,
            "{bad}"
        );
    }

    // Routing sees her group and capacity at once.
    let me = sign_in(&app, "lily", &pw).await;
    assert_eq!(
        api_post(&app, "/api/presence", &me, json!({"status": "idle"}))
            .await
            .0,
        200
    );
    let snapshot = app
        .state
        .router
        .agent(kefu::ids::AgentId(lily), chrono::Utc::now())
        .unwrap();
    assert_eq!((snapshot.capacity, snapshot.groups.len()), (3, 1));
    let mut rx = app.state.bus.subscribe();
    say(&app, "oNew", 1, "转人工").await;
    assert_eq!(
        changed(&mut rx, |c| c.state == "assigned")
            .await
            .agent
            .map(|a| a.0),
        Some(lily)
    );

    // Role, capacity; a reset password ends her sessions; disabled, she
    // cannot sign in.
    let path = format!("/api/admin/agents/{lily}");
    let (status, changed_row) = patch(
        &app,
        &path,
        &ada,
        json!({"role": "supervisor", "capacity": 8}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&changed_row["role"], &changed_row["capacity"]),
        (&json!("supervisor"), &json!(8))
    );
    let (status, reset) = api_post(&app, &format!("{path}/password"), &ada, json!({})).await;
    assert_eq!(status, 200);
    let pw2 = reset["one_time_password"].as_str().unwrap().to_owned();
    assert_ne!(pw, pw2);
    assert_eq!(
        api_get(&app, "/api/workbench", Some(&me)).await.0,
        401,
        "sessions ended"
    );
    assert!(!can_sign_in(&app, "lily", &pw).await);
    assert!(can_sign_in(&app, "lily", &pw2).await);
    assert_eq!(
        patch(&app, &path, &ada, json!({"disabled": true})).await.0,
        200
    );
    assert!(!can_sign_in(&app, "lily", &pw2).await);
    let (_, list) = api_get(&app, "/api/admin/agents", Some(&ada)).await;
    let row = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["login"] == "lily")
        .unwrap();
    assert_eq!(row["disabled"], true);

    // An admin cannot lock themselves out.
    let (_, me_row) = api_get(&app, "/api/admin/agents", Some(&ada)).await;
    let ada_id = me_row["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["login"] == "ada")
        .unwrap()["id"]
        .clone();
    assert_eq!(
        patch(
            &app,
            &format!("/api/admin/agents/{ada_id}"),
            &ada,
            json!({"disabled": true})
        )
        .await
        .0,
        409
    );
    assert_eq!(
        patch(&app, "/api/admin/agents/99999", &ada, json!({"name": "x"}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn only_admins_administer() {
    let app = spawn_app().await;
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let sue = session(&app, "sue").await;
    assert_eq!(api_get(&app, "/api/admin/agents", Some(&sue)).await.0, 403);
    assert_eq!(api_get(&app, "/api/admin/groups", Some(&sue)).await.0, 403);
    assert_eq!(
        api_post(
            &app,
            "/api/admin/agents",
            &sue,
            json!({"login": "x", "name": "x", "role": "admin"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api_post(&app, "/api/admin/groups", &sue, json!({"name": "g"}))
            .await
            .0,
        403
    );
    assert_eq!(api_get(&app, "/api/admin/agents", None).await.0, 401);
}
