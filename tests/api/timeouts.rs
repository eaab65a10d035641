//! The conversations' clocks: reply timeouts and auto-close, run with a
//! future `now` instead of waiting.

use chrono::{Duration, Utc};
use kefu::auth::Role;
use kefu::bus::Event;
use kefu::conversation::effects::survey::SURVEY_TEXT;
use kefu::conversation::outbox::{OutboundRequest, Speaker};
use kefu::conversation::timeouts::{Swept, Timeouts};
use kefu::ids::AgentId;
use kefu::routing::AgentStatus;
use kefu::wechat::api::OutboundContent;

use crate::desk::*;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn clocks(app: &TestApp) -> Timeouts {
    Timeouts::new(app.state.pipeline.clone())
}

/// Waits for a supervisor alert; its agent, kind and text.
async fn alert(
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
) -> (AgentId, String, String) {
    next_event(rx, |e| match e {
        Event::SupervisorAlert {
            agent, kind, text, ..
        } => Some((*agent, kind.clone(), text.clone())),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn an_unanswered_customer_is_offered_to_another_agent_and_supervisors_are_alerted() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let group = store.create_city_group("南京").await.unwrap();
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let bob = staff(&app, "bob", Role::Agent, AgentStatus::Idle).await;
    for a in [alice, bob] {
        store.add_group_member(group, a).await.unwrap();
    }
    reload(&app).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oSlow", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let slow = got.agent.unwrap();
    let other = if slow == alice { bob } else { alice };
    let c = store.conversation(got.conversation).await.unwrap();
    assert!(c.awaiting_reply_since.is_some(), "the customer waits");

    let now = Utc::now();
    let early = clocks(&app).run_once_at(now + Duration::minutes(4)).await;
    assert_eq!(early.unwrap(), Swept::default(), "5 minutes are not up");
    let swept = clocks(&app)
        .run_once_at(now + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(swept.reoffered, 1);
    let (agent, kind, text) = alert(&mut rx).await;
    assert_eq!((agent, kind.as_str()), (slow, "reply_timeout"));
    assert!(text.contains("5 分钟"), "{text}");
    let moved = changed(&mut rx, |c| c.state == "assigned" && c.agent != Some(slow)).await;
    assert_eq!(moved.agent, Some(other));
    assert!(moved.reason.contains("reassigned"), "{moved:?}");
    let t = store.transitions_of(got.conversation).await.unwrap();
    let timeout = t
        .iter()
        .find(|t| t.reason.contains("agent reply timeout"))
        .expect("recorded");
    assert_eq!(
        (timeout.actor.as_str(), timeout.agent_id),
        ("timeout", Some(slow.0))
    );
    let said = said_in(&app, got.conversation).await;
    assert_eq!(said.len(), 2, "{said:?}");

    // Offered once: the next run leaves it with the new agent.
    let again = clocks(&app)
        .run_once_at(now + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(again.reoffered, 0);
}

#[tokio::test]
async fn with_nobody_else_free_the_slow_agent_keeps_the_conversation() {
    let app = spawn_app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oKept", 1, "人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let now = Utc::now();
    let swept = clocks(&app)
        .run_once_at(now + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(swept.reoffered, 1);
    assert_eq!(alert(&mut rx).await.0, alice);
    let kept = changed(&mut rx, |c| c.reason.contains("kept")).await;
    assert_eq!((kept.state.as_str(), kept.agent), ("assigned", Some(alice)));
    let c = app
        .state
        .store
        .conversation(got.conversation)
        .await
        .unwrap();
    assert_eq!(c.agent_id, Some(alice.0));
    assert!(c.reoffered_at.is_some());
    let again = clocks(&app)
        .run_once_at(now + Duration::minutes(12))
        .await
        .unwrap();
    assert_eq!(again.reoffered, 0, "once per unanswered message");
}

#[tokio::test]
async fn an_agent_s_reply_stops_the_clock_and_joins_the_conversation() {
    let app = spawn_app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oAnswered", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let sent = app
        .state
        .outbox
        .send(
            OutboundRequest {
                account: demo_oa(),
                recipient: "oAnswered".into(),
                content: OutboundContent::Text {
                    content: "您好，我来看看".into(),
                },
                speaker: Speaker::Agent {
                    id: alice,
                    login: "alice".into(),
                },
                open_kfid: None,
                idempotency_key: None,
                media: None,
            },
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let store = &app.state.store;
    let m = store.message(sent.message).await.unwrap();
    assert_eq!(m.conversation_id, Some(got.conversation.0));
    assert_eq!(m.customer_id, Some(got.customer.0));
    let c = store.conversation(got.conversation).await.unwrap();
    assert_eq!(c.awaiting_reply_since, None);
    let swept = clocks(&app)
        .run_once_at(Utc::now() + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(swept.reoffered, 0);

    // The customer writes again: the clock starts again.
    let id = say(&app, "oAnswered", 2, "好的，订单号 12345").await;
    // Linked here or by the worker: either way it is linked afterwards.
    app.state.pipeline.handle(id).await.unwrap();
    let waiting = store.conversation(got.conversation).await.unwrap();
    assert!(waiting.awaiting_reply_since > Some(m.sent_at));
}

#[tokio::test]
async fn idle_conversations_close_after_the_configured_minutes_and_queued_ones_wait() {
    let app = spawn_app_with(|s| {
        s.routing.auto_close_mins = 30;
        s.routing.agent_reply_timeout_mins = 0;
    })
    .await;
    let store = &app.state.store;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let group = store.create_city_group("无锡").await.unwrap();
    let bob = staff(&app, "bob", Role::Agent, AgentStatus::Busy).await;
    store.add_group_member(group, bob).await.unwrap();
    reload(&app).await;
    let waiting = customer_of(&app, "oQueued").await;
    store
        .set_customer_routing(waiting, None, Some(group), None)
        .await
        .unwrap();

    let mut rx = app.state.bus.subscribe();
    say(&app, "oServed", 1, "转人工").await;
    let served = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(served.agent, Some(alice));
    say(&app, "oRobot", 1, "你好").await;
    let robot = changed(&mut rx, |c| c.state == "bot").await;
    say(&app, "oQueued", 1, "人工").await;
    let queued = changed(&mut rx, |c| c.reason.contains("no agent free")).await;
    assert_eq!(queued.state, "queued");

    let now = Utc::now();
    let early = clocks(&app)
        .run_once_at(now + Duration::minutes(29))
        .await
        .unwrap();
    assert_eq!(early, Swept::default());
    let swept = clocks(&app)
        .run_once_at(now + Duration::minutes(31))
        .await
        .unwrap();
    assert_eq!(
        swept,
        Swept {
            closed: 2,
            reoffered: 0
        }
    );
    for c in [served.conversation, robot.conversation] {
        let row = store.conversation(c).await.unwrap();
        assert_eq!(row.state, "closed");
        let last = store.transitions_of(c).await.unwrap().pop().unwrap();
        assert_eq!(last.actor, "timeout");
        assert!(last.reason.contains("超时自动结束"), "{last:?}");
    }
    assert_eq!(
        store.conversation(queued.conversation).await.unwrap().state,
        "queued"
    );
    // The survey follows where an agent served, not after the robot.
    let surveys = store.surveys_of(served.conversation).await.unwrap();
    assert_eq!(surveys.len(), 1);
    assert_eq!(surveys[0].agent_id, Some(alice.0));
    assert_eq!(
        said_in(&app, served.conversation)
            .await
            .last()
            .map(String::as_str),
        Some(SURVEY_TEXT)
    );
    assert!(
        store
            .surveys_of(robot.conversation)
            .await
            .unwrap()
            .is_empty()
    );
}
