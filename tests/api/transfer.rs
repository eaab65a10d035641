//! Agents' and supervisors' actions on a conversation through the JSON API:
//! close, transfer, and its history; who may do what.

use kefu::auth::Role;
use kefu::routing::AgentStatus;
use serde_json::json;

use crate::desk::*;
use crate::helpers::spawn_app;

#[tokio::test]
async fn only_the_serving_agent_or_a_supervisor_closes_and_a_stale_close_is_a_conflict() {
    let app = spawn_app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let sue_id = staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let tom = staff(&app, "tom", Role::Supervisor, AgentStatus::Offline).await;
    // sue supervises alice's group; tom another one.
    let store = &app.state.store;
    let (mine, other) = (
        store.create_city_group("上海").await.unwrap(),
        store.create_city_group("北京").await.unwrap(),
    );
    for (g, a) in [(mine, alice), (mine, sue_id), (other, tom)] {
        store.add_group_member(g, a).await.unwrap();
    }
    reload(&app).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oClose", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));
    let path = format!("/api/conversations/{}/close", got.conversation.0);

    let (status, body) = api_post_forged(&app, &path, None, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let bob = session(&app, "bob").await;
    let (status, body) = api_post_forged(&app, &path, Some(&bob), json!({})).await;
    assert_eq!(status, 403, "no CSRF token: {body}");
    assert!(body["message"].as_str().unwrap().contains("CSRF"), "{body}");
    let (status, body) = api_post(&app, &path, &bob, json!({})).await;
    assert_eq!(status, 403, "not bob's: {body}");
    let detail = format!("/api/conversations/{}", got.conversation.0);
    assert_eq!(api_get(&app, &detail, Some(&bob)).await.0, 403);
    // A supervisor of another group neither reads nor closes it.
    let tom_s = session(&app, "tom").await;
    assert_eq!(api_get(&app, &detail, Some(&tom_s)).await.0, 403);
    assert_eq!(api_post(&app, &path, &tom_s, json!({})).await.0, 403);
    let sue_s = session(&app, "sue").await;
    assert_eq!(
        api_get(&app, &detail, Some(&sue_s)).await.0,
        200,
        "her group's"
    );

    let alice_s = session(&app, "alice").await;
    let (status, body) = api_post(&app, &path, &alice_s, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "closed");
    let closed = changed(&mut rx, |c| c.state == "closed").await;
    assert!(
        closed.reason.contains(&format!("closed by agent {alice}")),
        "{closed:?}"
    );
    let t = app
        .state
        .store
        .transitions_of(got.conversation)
        .await
        .unwrap();
    assert_eq!(t.last().unwrap().actor, "alice");

    // Twice: the conversation is closed already (alice served it last and
    // still sees it).
    let (status, body) = api_post(&app, &path, &alice_s, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("closed"),
        "{body}"
    );
    assert_eq!(api_get(&app, &detail, Some(&alice_s)).await.0, 200);

    let sue = session(&app, "sue").await;
    let (status, _) = api_post(&app, &path, &sue, json!({})).await;
    assert_eq!(status, 409);
    let (status, body) = api_post(&app, "/api/conversations/999999/close", &sue, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(
        api_get(&app, "/api/conversations/999999", Some(&sue))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn an_agent_transfers_to_a_colleague_with_a_note_and_the_customer_is_told() {
    let app = spawn_app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let bob = staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let gone = staff(&app, "gone", Role::Agent, AgentStatus::Offline).await;
    app.state
        .store
        .set_agent_disabled(gone, true)
        .await
        .unwrap();
    let mut rx = app.state.bus.subscribe();
    say(&app, "oMove", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));
    let path = format!("/api/conversations/{}/transfer", got.conversation.0);
    let alice_s = session(&app, "alice").await;

    for (body, why) in [
        (json!({"agent_id": 999_999}), "no such agent"),
        (json!({"agent_id": gone.0}), "left or is disabled"),
        (json!({"agent_id": bob.0, "group_id": 1}), "either"),
        (json!({"note": "nobody"}), "either"),
    ] {
        let (status, answer) = api_post(&app, &path, &alice_s, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(why),
            "{answer}"
        );
    }
    let (status, answer) = api_post(&app, &path, &alice_s, json!({"agent_id": alice.0})).await;
    assert_eq!(status, 409, "to herself: {answer}");

    let (status, answer) = api_post(
        &app,
        &path,
        &alice_s,
        json!({"agent_id": bob.0, "note": "客户问的是二手车过户，bob 更熟"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "assigned");
    assert_eq!(answer["agent_id"], bob.0);
    let moved = changed(&mut rx, |c| c.agent == Some(bob)).await;
    assert!(moved.reason.contains("transferred to agent"), "{moved:?}");
    assert!(moved.reason.contains("二手车过户"), "the note: {moved:?}");
    assert_eq!(
        said_in(&app, got.conversation).await,
        ["客服 alice 名字 为您服务", "客服 bob 名字 为您服务"]
    );

    // It is bob's now.
    let detail = format!("/api/conversations/{}", got.conversation.0);
    assert_eq!(api_get(&app, &detail, Some(&alice_s)).await.0, 403);
    let bob_s = session(&app, "bob").await;
    let (status, view) = api_get(&app, &detail, Some(&bob_s)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["conversation"]["agent_id"], bob.0);
    let (status, _) = api_post(&app, &path, &alice_s, json!({"agent_id": alice.0})).await;
    assert_eq!(status, 403, "alice no longer serves it");
}

#[tokio::test]
async fn a_supervisor_transfers_to_a_group_and_routing_picks_its_agent() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oGroup", 1, "人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));

    let group = store.create_city_group("杭州").await.unwrap();
    let carol = staff(&app, "carol", Role::Agent, AgentStatus::Idle).await;
    store.add_group_member(group, carol).await.unwrap();
    let sue_id = staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let home = store.create_city_group("总部").await.unwrap();
    store.add_group_member(home, alice).await.unwrap();
    store.add_group_member(home, sue_id).await.unwrap();
    store.add_group_member(group, sue_id).await.unwrap();
    reload(&app).await;
    let sue = session(&app, "sue").await;
    let path = format!("/api/conversations/{}/transfer", got.conversation.0);
    let (status, _) = api_post(&app, &path, &sue, json!({"group_id": 999_999})).await;
    assert_eq!(status, 400);
    let (status, answer) = api_post(
        &app,
        &path,
        &sue,
        json!({"group_id": group.0, "note": "杭州的客户"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "assigned");
    assert_eq!(answer["agent_id"], carol.0);

    let (status, view) = api_get(
        &app,
        &format!("/api/conversations/{}", got.conversation.0),
        Some(&sue),
    )
    .await;
    assert_eq!(status, 200);
    let reasons: Vec<&str> = view["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    let transfer = reasons
        .iter()
        .find(|r| r.contains("转接到组"))
        .expect("the transfer is recorded");
    assert!(transfer.contains("杭州的客户"), "{reasons:?}");
    let last = view["transitions"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["to_state"].as_str(), last["agent_id"].as_i64()),
        (Some("assigned"), Some(carol.0))
    );
    assert_eq!(last["actor"], "routing");
    // The history holds both sides: the customer's words and Kefu's.
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[0]["content"], "人工");
    assert!(
        messages
            .iter()
            .any(|m| m["content"] == "客服 carol 名字 为您服务"),
        "{messages:?}"
    );
}
