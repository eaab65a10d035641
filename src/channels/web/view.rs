//! What a visitor sees of messages and of their conversation (the JSON of
//! `docs/widget.md`): texts and who said them, never staff-only data.

use serde_json::{Value, json};

use super::hub::NAMES_FOR;
use crate::bus::FiledMessage;
use crate::ids::{AgentId, ConversationId};
use crate::store::Store;
use crate::store::entities::{conversations, messages};

/// Agents' display names, read once per few minutes.
#[derive(Clone)]
pub struct Names {
    store: Store,
    cache: moka::future::Cache<i64, String>,
}

impl Names {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(NAMES_FOR)
                .build(),
        }
    }

    pub async fn of(&self, agent: AgentId) -> Option<String> {
        if let Some(n) = self.cache.get(&agent.0).await {
            return Some(n);
        }
        let name = self.store.agent(agent).await.ok()?.name;
        self.cache.insert(agent.0, name.clone()).await;
        Some(name)
    }
}

/// One stored message as the visitor sees it.
pub async fn message(m: &messages::Model, names: &Names) -> Value {
    filed(&FiledMessage::of(m), names).await
}

/// One message as the visitor sees it (from the bus, no read needed).
pub async fn filed(m: &FiledMessage, names: &Names) -> Value {
    let (from, agent_name) = match (m.direction.as_str(), m.agent_id) {
        ("in", _) => ("customer", None),
        (_, Some(a)) => ("agent", names.of(a).await),
        _ if m.sender == "robot" => ("robot", None),
        // Notices: who serves them now, the survey…
        _ => ("system", None),
    };
    json!({
        "id": m.id,
        "direction": m.direction,
        "from": from,
        "agent_name": agent_name,
        "msg_type": m.msg_type,
        "text": m.content,
        // A picture, recording, video or file: fetched with the visitor's
        // token (never put in a URL) from `/widget/api/media/{id}`.
        "media": m.media_object_id.map(|id| json!({
            "id": id,
            "url": format!("/widget/api/media/{id}"),
        })),
        "client_id": m.client_id,
        "sent_at": m.sent_at,
        // The satisfaction survey: the page offers a button per score.
        "survey": from == "system"
            && m.content.as_deref() == Some(crate::conversation::effects::survey::SURVEY_TEXT),
    })
}

/// Messages as the visitor sees them.
pub async fn messages(list: &[messages::Model], names: &Names) -> Vec<Value> {
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        out.push(message(m, names).await);
    }
    out
}

/// The conversation's state as the visitor sees it: who serves them, or
/// how many wait before them, and how far the agent has read.
pub async fn conversation(store: &Store, c: &conversations::Model, names: &Names) -> Value {
    let queue_position = if c.state == "queued" {
        queue_place(store, ConversationId(c.id)).await
    } else {
        None
    };
    let mut v = state(
        c.id,
        &c.state,
        c.agent_id.map(AgentId),
        queue_position,
        names,
    )
    .await;
    // How far the agent has read (已读); live changes come as `read` frames,
    // so the frames of state changes leave it out.
    v["agent_read_up_to"] = json!(
        store
            .agents_read_up_to(ConversationId(c.id))
            .await
            .ok()
            .flatten()
    );
    v
}

/// How many wait before a queued conversation (none: not placed yet).
pub async fn queue_place(store: &Store, conversation: ConversationId) -> Option<u64> {
    store
        .queue_position(conversation)
        .await
        .ok()
        .flatten()
        .map(|(_, ahead)| ahead)
}

/// A conversation's state from what is known of it (a bus event, the
/// queue's order), without reading it again.
pub async fn state(
    id: i64,
    state: &str,
    agent: Option<AgentId>,
    queue_position: Option<u64>,
    names: &Names,
) -> Value {
    let agent_name = match (state, agent) {
        ("assigned", Some(a)) => names.of(a).await,
        _ => None,
    };
    json!({
        "id": id,
        "state": state,
        "queue_position": queue_position,
        "agent_name": agent_name,
    })
}
