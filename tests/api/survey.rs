//! The satisfaction survey round trip through the callbacks: a close sends
//! it, a score answers it (the conversation stays closed), anything else
//! reopens the conversation; supervisors read the averages.

use kefu::auth::Role;
use kefu::conversation::effects::survey::{SURVEY_TEXT, THANKS_TEXT};
use kefu::ids::ConversationId;
use kefu::routing::AgentStatus;
use serde_json::json;

use crate::desk::*;
use crate::helpers::{TestApp, spawn_app};

/// `open_id` asks for a person, gets the only idle agent, who closes the
/// conversation through the API; the conversation.
async fn served_and_closed(app: &TestApp, open_id: &str, agent_login: &str) -> ConversationId {
    let mut rx = app.state.bus.subscribe();
    say(app, open_id, 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let s = session(app, agent_login).await;
    let path = format!("/api/conversations/{}/close", got.conversation.0);
    let (status, body) = api_post(app, &path, &s, json!({})).await;
    assert_eq!(status, 200, "{body}");
    got.conversation
}

#[tokio::test]
async fn a_close_sends_the_survey_and_a_score_is_recorded_without_reopening() {
    let app = spawn_app().await;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let conversation = served_and_closed(&app, "oRate", "alice").await;
    let store = &app.state.store;

    let surveys = store.surveys_of(conversation).await.unwrap();
    assert_eq!(surveys.len(), 1);
    assert_eq!(surveys[0].agent_id, Some(alice.0));
    assert_eq!(surveys[0].answered_at, None);
    let said = said_in(&app, conversation).await;
    assert_eq!(
        said.last().map(String::as_str),
        Some(SURVEY_TEXT),
        "{said:?}"
    );

    let mut rx = app.state.bus.subscribe();
    say(&app, "oRate", 2, " １ 很专业，谢谢 ").await;
    let thanks = queued_to(&mut rx, "oRate").await;
    assert_eq!(
        store.message(thanks).await.unwrap().content.as_deref(),
        Some(THANKS_TEXT)
    );
    let s = &store.surveys_of(conversation).await.unwrap()[0];
    assert_eq!(s.score, Some(1));
    assert_eq!(s.comment.as_deref(), Some("很专业，谢谢"));
    assert!(s.answered_at.is_some());
    let c = store.conversation(conversation).await.unwrap();
    assert_eq!(c.state, "closed", "an answer does not reopen");

    // A second "1" is a message: the survey is answered, so it reopens.
    say(&app, "oRate", 3, "1").await;
    let reopened = changed(&mut rx, |c| c.conversation == conversation).await;
    assert_eq!(reopened.state, "bot");

    let path = format!("/api/surveys?agent_id={}", alice.0);
    let alice_s = session(&app, "alice").await;
    assert_eq!(api_get(&app, &path, Some(&alice_s)).await.0, 403);
    let sue = session(&app, "sue").await;
    let (status, stats) = api_get(&app, &path, Some(&sue)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["agents"],
        json!([{"agent_id": alice.0, "name": "alice 名字", "sent": 1, "answered": 1,
                "average_score": 1.0}])
    );
    let (status, _) = api_get(&app, "/api/surveys?since=yesterday", Some(&sue)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_reply_that_is_not_a_score_reopens_the_conversation_with_the_robot() {
    let app = spawn_app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let conversation = served_and_closed(&app, "oChat", "alice").await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oChat", 2, "3点能到吗").await;
    let reopened = changed(&mut rx, |c| c.conversation == conversation).await;
    assert_eq!(reopened.state, "bot");
    assert!(reopened.reason.contains("reopened"), "{reopened:?}");
    let s = &app.state.store.surveys_of(conversation).await.unwrap()[0];
    assert_eq!((s.score, s.answered_at), (None, None));
}

#[tokio::test]
async fn each_close_by_an_agent_has_its_own_survey() {
    let app = spawn_app().await;
    staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let conversation = served_and_closed(&app, "oTwice", "alice").await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oTwice", 2, "2").await;
    queued_to(&mut rx, "oTwice").await;

    // Reopened for a person, served and closed again: a second survey.
    say(&app, "oTwice", 3, "人工").await;
    changed(&mut rx, |c| c.state == "assigned").await;
    let s = session(&app, "alice").await;
    let path = format!("/api/conversations/{}/close", conversation.0);
    assert_eq!(api_post(&app, &path, &s, json!({})).await.0, 200);
    say(&app, "oTwice", 4, "4").await;
    loop {
        let id = queued_to(&mut rx, "oTwice").await;
        if app
            .state
            .store
            .message(id)
            .await
            .unwrap()
            .content
            .as_deref()
            == Some(THANKS_TEXT)
        {
            break;
        }
    }
    let scores: Vec<_> = app
        .state
        .store
        .surveys_of(conversation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.score)
        .collect();
    assert_eq!(scores, [Some(2), Some(4)]);
}
