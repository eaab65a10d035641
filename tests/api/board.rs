//! The supervisors' board through HTTP: a supervisor sees their groups'
//! agents, queues, customers waiting for a reply and routing decisions,
//! and nothing of another group; takes a conversation over; admins see
//! everything; agents are refused.

use kefu::auth::Role;
use kefu::bus::Event;
use kefu::ids::{AgentId, ConversationId, GroupId};
use kefu::routing::AgentStatus;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::desk::{
    api_get, api_post, changed, customer_of, next_event, reload, say, session, staff,
};
use crate::helpers::{TestApp, spawn_app_with};
use crate::login::browser::{ADMIN_PW, create_admin, sign_in};

async fn in_group(app: &TestApp, open_id: &str, g: GroupId) {
    let c = customer_of(app, open_id).await;
    kefu::store::entities::customers::ActiveModel {
        id: Set(c.0),
        city_group_id: Set(Some(g.0)),
        ..Default::default()
    }
    .update(app.state.store.writer())
    .await
    .unwrap();
}

pub(crate) struct World {
    pub app: TestApp,
    pub alice: AgentId,
    pub sue: AgentId,
    /// alice's customer in 上海, waiting for her reply.
    pub waiting: ConversationId,
    /// A customer queued in 上海 (alice is busy).
    pub queued: ConversationId,
    /// carl's customer in 北京.
    pub beijing: ConversationId,
}

pub(crate) async fn world() -> World {
    let app = spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
    })
    .await;
    let store = &app.state.store;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let carl = staff(&app, "carl", Role::Agent, AgentStatus::Idle).await;
    let sue = staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let sam = staff(&app, "sam", Role::Supervisor, AgentStatus::Offline).await;
    let sh = store.create_city_group("上海").await.unwrap();
    let bj = store.create_city_group("北京").await.unwrap();
    for (g, a) in [(sh, alice), (sh, sue), (bj, carl), (bj, sam)] {
        store.add_group_member(g, a).await.unwrap();
    }
    reload(&app).await;
    in_group(&app, "oA", sh).await;
    in_group(&app, "oB", sh).await;
    in_group(&app, "oC", bj).await;
    let mut rx = app.state.bus.subscribe();

    say(&app, "oA", 1, "转人工").await;
    let a = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(a.agent, Some(alice));
    say(&app, "oA", 2, "在吗？").await;
    next_event(&mut rx, |e| match e {
        Event::MessageFiled { message, .. } if message.content.as_deref() == Some("在吗？") => {
            Some(())
        }
        _ => None,
    })
    .await;
    store
        .set_agent_status(alice, AgentStatus::Busy)
        .await
        .unwrap();
    reload(&app).await;
    say(&app, "oB", 3, "转人工").await;
    let b = changed(&mut rx, |c| c.state == "queued").await;
    say(&app, "oC", 4, "转人工").await;
    let c = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(c.agent, Some(carl));
    World {
        app,
        alice,
        sue,
        waiting: a.conversation,
        queued: b.conversation,
        beijing: c.conversation,
    }
}

fn group<'a>(board: &'a Value, name: &str) -> Option<&'a Value> {
    board["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
}

fn ids(board: &Value, key: &str, field: &str) -> Vec<i64> {
    board[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u[field].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_supervisor_sees_their_groups_agents_queue_and_who_waits_for_a_reply() {
    let w = world().await;
    let app = &w.app;
    let sue = session(app, "sue").await;
    let (status, board) = api_get(app, "/api/board", Some(&sue)).await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["groups"].as_array().unwrap().len(), 1, "{board}");
    let sh = group(&board, "上海").unwrap();
    assert_eq!(sh["queued"], 1);
    assert!(sh["longest_wait_secs"].as_i64().unwrap() >= 0);
    let alice = sh["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["login"] == "alice")
        .unwrap();
    assert_eq!(
        (&alice["status"], &alice["load"], &alice["available"]),
        (&json!("busy"), &json!(1), &json!(false))
    );
    assert!(group(&board, "北京").is_none());
    let waiting = ids(&board, "unanswered", "conversation");
    assert_eq!(waiting, vec![w.waiting.0], "{board}");
    assert_eq!(board["unanswered"][0]["agent_name"], "alice 名字");
    let decided = ids(&board, "decisions", "conversation");
    assert!(decided.contains(&w.waiting.0));
    assert!(!decided.contains(&w.beijing.0), "another group's decision");
    assert!(
        board["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["reason"].as_str().unwrap().is_empty())
    );

    // The routing lists are scoped the same way.
    let (_, agents) = api_get(app, "/api/routing/agents", Some(&sue)).await;
    let logins: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["login"].as_str().unwrap())
        .collect();
    assert!(
        logins.contains(&"alice") && !logins.contains(&"carl"),
        "{logins:?}"
    );
    let (_, queue) = api_get(app, "/api/routing/queue", Some(&sue)).await;
    assert_eq!(
        ids(&queue, "conversations", "conversation"),
        vec![w.queued.0]
    );

    // sam (北京) sees none of it.
    let sam = session(app, "sam").await;
    let (_, theirs) = api_get(app, "/api/board", Some(&sam)).await;
    assert!(group(&theirs, "上海").is_none());
    assert_eq!(group(&theirs, "北京").unwrap()["queued"], 0);
    assert!(!ids(&theirs, "unanswered", "conversation").contains(&w.waiting.0));
    let (_, queue) = api_get(app, "/api/routing/queue", Some(&sam)).await;
    assert_eq!(queue["total"], 0);
}

#[tokio::test]
async fn a_supervisor_takes_a_waiting_customer_over_and_the_board_follows() {
    let w = world().await;
    let app = &w.app;
    let sue = session(app, "sue").await;
    assert_eq!(
        api_post(app, "/api/presence", &sue, json!({"status": "idle"}))
            .await
            .0,
        200
    );
    let mut rx = app.state.bus.subscribe();
    let (status, moved) = api_post(
        app,
        &format!("/api/conversations/{}/transfer", w.waiting.0),
        &sue,
        json!({"agent_id": w.sue.0, "note": "接管"}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let got = changed(&mut rx, |c| c.conversation == w.waiting).await;
    assert_eq!(got.agent, Some(w.sue));
    let (_, board) = api_get(app, "/api/board", Some(&sue)).await;
    let waiting = &board["unanswered"];
    assert!(
        waiting
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["agent_id"] != w.alice.0),
        "{waiting}"
    );
    // Another group's supervisor cannot take it.
    let sam = session(app, "sam").await;
    let (status, _) = api_post(
        app,
        &format!("/api/conversations/{}/transfer", w.waiting.0),
        &sam,
        json!({"agent_id": 1}),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn admins_see_every_group_and_agents_are_refused() {
    let w = world().await;
    let app = &w.app;
    create_admin(app).await;
    let ada = sign_in(app, "ada", ADMIN_PW).await;
    let (status, board) = api_get(app, "/api/board", Some(&ada)).await;
    assert_eq!(status, 200);
    assert!(group(&board, "上海").is_some() && group(&board, "北京").is_some());
    assert!(
        board["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"].is_null()),
        "agents and queue of no group"
    );
    let decided = ids(&board, "decisions", "conversation");
    assert!(decided.contains(&w.waiting.0) && decided.contains(&w.beijing.0));

    let alice = session(app, "alice").await;
    assert_eq!(api_get(app, "/api/board", Some(&alice)).await.0, 403);
    assert_eq!(api_get(app, "/board", Some(&alice)).await.0, 403);
    assert_eq!(api_get(app, "/api/board", None).await.0, 401);
    let sue = session(app, "sue").await;
    let (status, page) = api_get(app, "/board", Some(&sue)).await;
    assert_eq!(status, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("主管看板") && page.contains("/static/board.js"));
}
