//! Leave-a-message tickets: opened through the real callback when nobody is
//! on duty, then worked through the JSON API.

use kefu::auth::Role;
use kefu::conversation::effects::notices::NOBODY_ON_DUTY_TEXT;
use kefu::routing::AgentStatus;
use serde_json::{Value, json};

use crate::desk::*;
use crate::helpers::spawn_app;

fn kinds(detail: &Value) -> Vec<(String, String)> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ids(list: &Value) -> Vec<i64> {
    list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn nobody_on_duty_opens_a_ticket_for_the_dedicated_agent_and_tells_the_customer() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let dave = staff(&app, "dave", Role::Agent, AgentStatus::Offline).await;
    let erin = staff(&app, "erin", Role::Agent, AgentStatus::Offline).await;
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let customer = customer_of(&app, "oNight").await;
    store
        .set_customer_routing(customer, Some(dave), None, None)
        .await
        .unwrap();
    let mut rx = app.state.bus.subscribe();
    say(&app, "oNight", 1, "找人工查订单").await;
    let got = changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    assert_eq!(got.state, "bot");

    let tickets = store.tickets_of_customer(customer).await.unwrap();
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(
        (
            t.status.as_str(),
            t.assignee_agent_id,
            t.summary.as_str(),
            t.conversation_id,
            t.account_id.as_str()
        ),
        (
            "open",
            Some(dave.0),
            "找人工查订单",
            Some(got.conversation.0),
            "demo-oa"
        )
    );
    assert_eq!(said_in(&app, got.conversation).await, [NOBODY_ON_DUTY_TEXT]);

    // Asking again adds to the open ticket.
    say(&app, "oNight", 2, "人工").await;
    changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    assert_eq!(store.tickets_of_customer(customer).await.unwrap().len(), 1);

    let list = "/api/tickets?status=open";
    assert_eq!(api_get(&app, list, None).await.0, 401);
    let dave_s = session(&app, "dave").await;
    let (status, mine) = api_get(&app, list, Some(&dave_s)).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(ids(&mine), [t.id]);
    let path = format!("/api/tickets/{}", t.id);
    let (status, detail) = api_get(&app, &path, Some(&dave_s)).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        kinds(&detail),
        [
            ("opened".into(), "customer".into()),
            ("message".into(), "customer".into())
        ]
    );
    let from_customer: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(from_customer, ["找人工查订单", "人工"]);

    // Another agent neither sees nor changes it.
    let erin_s = session(&app, "erin").await;
    assert!(ids(&api_get(&app, "/api/tickets", Some(&erin_s)).await.1).is_empty());
    assert_eq!(api_get(&app, &path, Some(&erin_s)).await.0, 403);
    let (status, _) = api_post(&app, &path, &erin_s, json!({"note": "x"})).await;
    assert_eq!(status, 403);

    let pending = json!({"status": "pending", "note": "已电话联系，等客户回复"});
    let (status, _) = api_post_forged(&app, &path, Some(&dave_s), pending.clone()).await;
    assert_eq!(status, 403, "no CSRF token");
    for bad in [
        json!({"status": "done"}),
        json!({}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = api_post(&app, &path, &dave_s, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, detail) = api_post(&app, &path, &dave_s, pending).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["ticket"]["status"], "pending");
    let events = detail["events"].as_array().unwrap();
    let n = events.len();
    assert_eq!(
        (
            events[n - 2]["kind"].as_str(),
            events[n - 2]["note"].as_str()
        ),
        (Some("status"), Some("open → pending"))
    );
    assert_eq!(
        (
            events[n - 1]["kind"].as_str(),
            events[n - 1]["actor"].as_str()
        ),
        (Some("note"), Some("dave"))
    );

    // The customer writes again: the ticket wants a look again.
    say(&app, "oNight", 3, "转人工").await;
    changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    assert_eq!(store.ticket(t.id).await.unwrap().status, "open");

    // A supervisor sees every ticket, resolves it and hands it on.
    let sue = session(&app, "sue").await;
    assert_eq!(
        ids(&api_get(&app, "/api/tickets", Some(&sue)).await.1),
        [t.id]
    );
    let (status, detail) = api_post(
        &app,
        &path,
        &sue,
        json!({"status": "resolved", "assignee_agent_id": erin.0}),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["ticket"]["status"], "resolved");
    assert_eq!(detail["ticket"]["assignee_agent_id"], erin.0);
    assert!(detail["ticket"]["resolved_at"].is_string());
    let last = detail["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "assigned");
    assert_eq!(last["note"], format!("agent {dave} → agent {erin}"));
    assert_eq!(last["actor"], "sue");
    assert_eq!(
        ids(
            &api_get(&app, "/api/tickets?status=resolved", Some(&erin_s))
                .await
                .1
        ),
        [t.id]
    );

    // Resolved: the next request opens a new ticket, and the old one cannot
    // be reopened beside it.
    say(&app, "oNight", 4, "人工").await;
    changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    assert_eq!(store.tickets_of_customer(customer).await.unwrap().len(), 2);
    let (status, body) = api_post(&app, &path, &sue, json!({"status": "open"})).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_group_ticket_is_seen_and_worked_by_the_group_s_members_only() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let group = store.create_city_group("苏州").await.unwrap();
    let frank = staff(&app, "frank", Role::Agent, AgentStatus::Offline).await;
    store.add_group_member(group, frank).await.unwrap();
    staff(&app, "gina", Role::Agent, AgentStatus::Offline).await;
    reload(&app).await;
    let customer = customer_of(&app, "oGroupNight").await;
    store
        .set_customer_routing(customer, None, Some(group), None)
        .await
        .unwrap();
    let mut rx = app.state.bus.subscribe();
    say(&app, "oGroupNight", 1, "人工").await;
    changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    let t = store.tickets_of_customer(customer).await.unwrap()[0].clone();
    assert_eq!((t.assignee_agent_id, t.group_id), (None, Some(group.0)));

    let frank_s = session(&app, "frank").await;
    assert_eq!(
        ids(&api_get(&app, "/api/tickets", Some(&frank_s)).await.1),
        [t.id]
    );
    let path = format!("/api/tickets/{}", t.id);
    let (status, detail) = api_post(&app, &path, &frank_s, json!({"note": "明早回电"})).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["ticket"]["status"], "open");
    let gina_s = session(&app, "gina").await;
    assert!(ids(&api_get(&app, "/api/tickets", Some(&gina_s)).await.1).is_empty());
    let (status, _) = api_post(&app, &path, &gina_s, json!({"note": "x"})).await;
    assert_eq!(status, 403);
}
