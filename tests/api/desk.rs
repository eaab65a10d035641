//! What the ticket, survey, timeout and transfer tests share: customers
//! writing through the Official Account callback, staff signed in to the
//! console, the JSON API with its CSRF header, and waiting on the bus.

use std::time::Duration;

use kefu::auth::Role;
use kefu::bus::{Envelope, Event};
use kefu::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};
use kefu::routing::AgentStatus;
use kefu::store::entities::messages;
use kefu::store::followers::IdentityKind;
use reqwest::header::COOKIE;
use serde_json::Value;
use tokio::sync::broadcast::Receiver;

use crate::helpers::TestApp;
use crate::login::browser::{AGENT_PW, Session, add_user, sign_in};
use crate::wechat_client::{Mode, text_xml};

/// How long any awaited event may take.
const WAIT: Duration = Duration::from_secs(10);

pub fn demo_oa() -> AccountId {
    AccountId::parse("demo-oa").unwrap()
}

/// A `ConversationChanged` as the tests read it.
#[derive(Debug, Clone)]
pub struct Changed {
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub state: String,
    pub agent: Option<AgentId>,
    pub reason: String,
}

/// The next event for which `pick` gives something.
pub async fn next_event<T>(rx: &mut Receiver<Envelope>, pick: impl Fn(&Event) -> Option<T>) -> T {
    loop {
        let env = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("bus open");
        if let Some(t) = pick(&env.event) {
            return t;
        }
    }
}

/// Waits for the first `ConversationChanged` matching `want`.
pub async fn changed(rx: &mut Receiver<Envelope>, want: impl Fn(&Changed) -> bool) -> Changed {
    next_event(rx, |e| match e {
        Event::ConversationChanged {
            conversation,
            customer,
            state,
            agent,
            reason,
            ..
        } => {
            let c = Changed {
                conversation: *conversation,
                customer: *customer,
                state: state.clone(),
                agent: *agent,
                reason: reason.clone(),
            };
            want(&c).then_some(c)
        }
        _ => None,
    })
    .await
}

/// Waits until a message to `recipient` is queued in the outbox; its id.
pub async fn queued_to(rx: &mut Receiver<Envelope>, to: &str) -> MessageId {
    next_event(rx, |e| match e {
        Event::OutboundStatus {
            message_id,
            recipient,
            status,
            ..
        } if recipient == to && status == "queued" => Some(*message_id),
        _ => None,
    })
    .await
}

/// Posts a text from `from` to the Official Account; the stored message.
pub async fn say(app: &TestApp, from: &str, msg_id: i64, text: &str) -> MessageId {
    let (status, body) = app.oa_post(Mode::Safe, &text_xml(from, msg_id, text)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let stored = app.stored("demo-oa").await;
    let m = stored
        .iter()
        .find(|m| m.channel_msg_id.as_deref() == Some(msg_id.to_string().as_str()))
        .expect("stored");
    MessageId(m.id)
}

/// Makes the router see what the test wrote to the database.
pub async fn reload(app: &TestApp) {
    app.state.router.reload(&app.state.store).await.unwrap();
}

/// A console user (password [`AGENT_PW`], name `<login> 名字`) with this
/// role and presence.
pub async fn staff(app: &TestApp, login: &str, role: Role, status: AgentStatus) -> AgentId {
    let id = add_user(app, login, role, AGENT_PW).await;
    app.state.store.set_agent_status(id, status).await.unwrap();
    reload(app).await;
    id
}

/// Signs `login` in.
pub async fn session(app: &TestApp, login: &str) -> Session {
    sign_in(app, login, AGENT_PW).await
}

pub async fn customer_of(app: &TestApp, open_id: &str) -> CustomerId {
    let row = app
        .state
        .store
        .identity(IdentityKind::OaOpenId, &demo_oa(), open_id)
        .await
        .unwrap();
    CustomerId(row.customer_id)
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// `GET` as the session's user (no session: `None`).
pub async fn api_get(app: &TestApp, path: &str, s: Option<&Session>) -> (u16, Value) {
    let mut req = app.client.get(format!("{}{path}", app.address));
    if let Some(s) = s {
        req = req.header(COOKIE, s.cookie());
    }
    json_of(req.send().await.unwrap()).await
}

/// `POST` of a JSON body as the session's user, with the CSRF header.
pub async fn api_post(app: &TestApp, path: &str, s: &Session, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.address))
        .header(COOKIE, s.cookie())
        .header("X-CSRF-Token", &s.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(r).await
}

/// `POST` without the CSRF header (a forged request), or without a
/// session at all.
pub async fn api_post_forged(
    app: &TestApp,
    path: &str,
    s: Option<&Session>,
    body: Value,
) -> (u16, Value) {
    let mut req = app.client.post(format!("{}{path}", app.address));
    if let Some(s) = s {
        req = req.header(COOKIE, s.cookie());
    }
    json_of(req.json(&body).send().await.unwrap()).await
}

/// What Kefu said in a conversation (its outbound messages), oldest first.
pub async fn said_in(app: &TestApp, conversation: ConversationId) -> Vec<String> {
    outbound_in(app, conversation)
        .await
        .into_iter()
        .filter_map(|m| m.content)
        .collect()
}

pub async fn outbound_in(app: &TestApp, conversation: ConversationId) -> Vec<messages::Model> {
    app.state
        .store
        .conversation_messages(conversation, None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.direction == "out")
        .collect()
}
