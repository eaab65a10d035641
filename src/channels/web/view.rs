//! What a visitor sees of messages and of their conversation (the JSON of
//! `docs/widget.md`): texts and who said them, never staff-only data.

use serde_json::{Value, json};

use super::hub::NAMES_FOR;
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

/// The page's id for a visitor's message, from its stored key
/// (`w:{visitor}:{client id}`).
fn client_id(m: &messages::Model) -> Option<&str> {
    let key = m.dedup_key.as_deref()?.strip_prefix("w:")?;
    key.split_once(':').map(|(_, id)| id)
}

/// One message as the visitor sees it.
pub async fn message(m: &messages::Model, names: &Names) -> Value {
    let (from, agent_name) = match (m.direction.as_str(), m.agent_id) {
        ("in", _) => ("customer", None),
        (_, Some(a)) => ("agent", names.of(AgentId(a)).await),
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
        "client_id": client_id(m),
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
/// how many wait before them.
pub async fn conversation(store: &Store, c: &conversations::Model, names: &Names) -> Value {
    let queue_position = if c.state == "queued" {
        store
            .queue_position(ConversationId(c.id))
            .await
            .ok()
            .flatten()
            .map(|(_, ahead)| ahead)
    } else {
        None
    };
    let agent_name = match (c.state.as_str(), c.agent_id) {
        ("assigned", Some(a)) => names.of(AgentId(a)).await,
        _ => None,
    };
    json!({
        "id": c.id,
        "state": c.state,
        "queue_position": queue_position,
        "agent_name": agent_name,
    })
}
