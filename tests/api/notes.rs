//! Internal notes through HTTP: the serving agent and a supervisor of the
//! group write notes in a conversation; they are stored once per client
//! id, reach the agent's socket, show in the thread, the customer's
//! history and search, are never sent to the customer and never count as
//! a reply; others are refused.

use kefu::bus::Event;
use kefu::ids::MessageId;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::board::world;
use crate::desk::{api_get, api_post, next_event, session};
use crate::login::browser::{ADMIN_PW, create_admin, sign_in};

fn notes_of(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter(|m| m["direction"] == "note")
        .map(|m| {
            (
                m["sender"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn staff_write_notes_that_are_never_sent() {
    let w = world().await;
    let app = &w.app;
    let conv = w.waiting.0;
    let path = format!("/api/conversations/{conv}/notes");
    let alice = session(app, "alice").await;
    let sue = session(app, "sue").await;
    let carl = session(app, "carl").await;
    let mut rx = app.state.bus.subscribe();
    let sends_before = app.fake.count("message/custom/send");

    let body = json!({"client_id": "n-1", "text": "客户说周五前要款，财务已催"});
    let (status, first) = api_post(app, &path, &alice, body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["existing"], false);
    let id = first["message_id"].as_i64().unwrap();
    // The agent's socket (and the conversation's watchers) hear it.
    let filed = next_event(&mut rx, |e| match e {
        Event::MessageFiled { message, .. } if message.id == MessageId(id) => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(filed.direction, "note");
    // A retry is stored once.
    let (status, again) = api_post(app, &path, &alice, body).await;
    assert_eq!((status, again["message_id"].as_i64()), (200, Some(id)));
    assert_eq!(again["existing"], true);
    // The supervisor of the group writes one too.
    let (status, _) = api_post(
        app,
        &path,
        &sue,
        json!({"client_id": "n-1", "text": "已知悉，优先处理"}),
    )
    .await;
    assert_eq!(status, 200);

    // In the thread, for the staff.
    let (_, shown) = api_get(app, &format!("/api/conversations/{conv}"), Some(&alice)).await;
    assert_eq!(
        notes_of(&shown),
        [
            ("alice".to_owned(), "客户说周五前要款，财务已催".to_owned()),
            ("sue".to_owned(), "已知悉，优先处理".to_owned()),
        ]
    );
    // Never sent: no outbox row, no call to WeChat; and not a reply: the
    // customer still waits for one.
    let outbox = kefu::store::entities::outbox::Entity::find()
        .filter(kefu::store::entities::outbox::Column::MessageId.eq(id))
        .count(app.state.store.conn())
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    while !app.state.outbox.run_once().await.unwrap().is_empty() {}
    assert_eq!(app.fake.count("message/custom/send"), sends_before);
    let c = app.state.store.conversation(w.waiting).await.unwrap();
    assert!(
        c.awaiting_reply_since.is_some(),
        "still waiting for a reply"
    );

    // In the customer's history and in search.
    let (_, history) = api_get(
        app,
        &format!("/api/customers/{}/messages", c.customer_id),
        Some(&alice),
    )
    .await;
    assert_eq!(notes_of(&history).len(), 2, "{history}");
    app.state.search.drain().await.unwrap();
    let (_, found) = api_get(app, "/api/search?q=%E8%B4%A2%E5%8A%A1", Some(&alice)).await;
    assert_eq!(
        found["results"][0]["message_id"].as_i64(),
        Some(id),
        "{found}"
    );
    assert_eq!(found["results"][0]["direction"], "note");

    // Refused: another group's agent, empty, too long, bad client id.
    let (status, _) = api_post(app, &path, &carl, json!({"client_id": "x", "text": "hi"})).await;
    assert_eq!(status, 403);
    for (body, words) in [
        (json!({"client_id": "n-2", "text": "  "}), "empty"),
        (
            json!({"client_id": "n-2", "text": "长".repeat(2001)}),
            "at most 2000",
        ),
        (json!({"client_id": "a b", "text": "hi"}), "client_id"),
    ] {
        let (status, err) = api_post(app, &path, &alice, body).await;
        assert_eq!(status, 400, "{err}");
        assert!(err["message"].as_str().unwrap().contains(words), "{err}");
    }
    // An admin may note any conversation, even another group's.
    create_admin(app).await;
    let ada = sign_in(app, "ada", ADMIN_PW).await;
    let (status, _) = api_post(
        app,
        &format!("/api/conversations/{}/notes", w.beijing.0),
        &ada,
        json!({"client_id": "a-1", "text": "质检：回复及时"}),
    )
    .await;
    assert_eq!(status, 200);
}
