//! The event bus: typed events between parts, and between instances.
//!
//! [`MemoryBus`] serves one node; [`RedisBus`] carries the same events
//! between every instance sharing a Redis. Both deliver to local subscribers
//! through a bounded broadcast channel: a subscriber that falls behind gets
//! `RecvError::Lagged` and must resynchronise from the database, which is the
//! source of truth.

mod memory;
mod redis;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};

pub use self::memory::MemoryBus;
pub use self::redis::{RedisBus, RedisBusError};

/// Capacity of each local subscriber's queue.
pub const LOCAL_CAPACITY: usize = 4096;

/// Something that happened, for whoever listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An inbound message was committed and waits for the conversation pipeline.
    MessageStored {
        message_id: MessageId,
        account: AccountId,
        sender: String,
    },
    /// A follower subscribed to or left an Official Account.
    FollowerChanged {
        account: AccountId,
        open_id: String,
        subscribed: bool,
    },
    /// An outbound message changed status: queued, sent, or failed (with the
    /// reason an agent reads).
    OutboundStatus {
        message_id: MessageId,
        account: AccountId,
        recipient: String,
        status: String,
        reason: Option<String>,
    },
    /// A conversation was opened or changed state (recorded with its reason):
    /// for the console and reports.
    ConversationChanged {
        conversation: ConversationId,
        customer: CustomerId,
        /// The account the conversation is on (instances key their caches
        /// by customer and account).
        #[serde(default)]
        account: String,
        /// `bot`, `queued`, `assigned` or `closed`.
        state: String,
        agent: Option<AgentId>,
        /// The agent who held it before this change, if any (other
        /// instances keep the agents' load from these two).
        #[serde(default)]
        previous_agent: Option<AgentId>,
        reason: String,
    },
    /// An agent set their presence (or it expired): every instance's router
    /// takes it.
    AgentPresence {
        agent: AgentId,
        status: crate::routing::AgentStatus,
    },
    /// Something supervisors should look at (an agent did not answer in
    /// time…): the console shows it.
    SupervisorAlert {
        conversation: ConversationId,
        /// The agent concerned.
        agent: AgentId,
        /// What happened: `reply_timeout`.
        kind: String,
        /// For people, in Chinese and English.
        text: String,
    },
    /// A message was filed in a conversation: a customer's, once the
    /// pipeline linked it, or one said to them, once queued in the outbox.
    /// The console's realtime channel carries it to the agent serving it.
    MessageFiled {
        conversation: ConversationId,
        customer: CustomerId,
        message: FiledMessage,
    },
    /// Customers were merged: their channel identities now belong to
    /// another customer, so every instance forgets who they belonged to.
    /// Empty `identities` means "forget every customer" (a CRM batch).
    CustomersMerged {
        removed: Vec<CustomerId>,
        #[serde(default)]
        identities: Vec<(String, String, String)>,
    },
    /// Someone is typing in a conversation: the web visitor (`agent` none),
    /// heard by the agents serving or watching it, or the serving agent,
    /// heard by the web visitor. Nothing is stored.
    Typing {
        conversation: ConversationId,
        customer: CustomerId,
        account: String,
        agent: Option<AgentId>,
    },
    /// A conversation was read up to a message: by the web visitor (`agent`
    /// none; the agent's console marks its messages read), or by the
    /// serving agent (the visitor's page shows 已读).
    Read {
        conversation: ConversationId,
        customer: CustomerId,
        account: String,
        agent: Option<AgentId>,
        up_to: MessageId,
    },
    /// Free-form signal used by health checks and tests.
    Ping { nonce: String },
}

impl FiledMessage {
    pub fn of(m: &crate::store::entities::messages::Model) -> Self {
        Self {
            id: MessageId(m.id),
            direction: m.direction.clone(),
            sender: m.sender.clone(),
            agent_id: m.agent_id.map(AgentId),
            msg_type: m.msg_type.clone(),
            content: m.content.clone(),
            media_object_id: m.media_object_id,
            sent_at: m.sent_at,
            account: m.account_id.clone(),
            client_id: m
                .dedup_key
                .as_deref()
                .and_then(|k| k.strip_prefix("w:"))
                .and_then(|k| k.split_once(':'))
                .map(|(_, id)| id.to_owned()),
        }
    }
}

/// A message as the console shows it (media by id: `/media/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledMessage {
    pub id: MessageId,
    /// `in`, `out`, or `note` (an internal note: staff only, never sent).
    pub direction: String,
    pub sender: String,
    pub agent_id: Option<AgentId>,
    pub msg_type: String,
    pub content: Option<String>,
    pub media_object_id: Option<i64>,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The account (or web site) of its conversation: the widget's tabs are
    /// per site, and need no read to know.
    #[serde(default)]
    pub account: String,
    /// A web visitor's own id for the message (from its stored key
    /// `w:{visitor}:{client id}`): their page matches its echo by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// An event with the instance it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: String,
    pub event: Event,
}

/// Publish and subscribe; the same contract in process and across instances.
pub trait EventBus: Send + Sync + 'static {
    /// Publishes to every subscriber, here and (if clustered) elsewhere.
    /// Never blocks: a full outbound queue drops the event and counts it.
    fn publish(&self, event: Event);
    /// A new subscription; sees events published after this call.
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
    /// This instance's id (origin of what it publishes).
    fn origin(&self) -> &str;
    /// Stops background tasks.
    fn shutdown(&self) {}
}

/// The bus handle held by the application.
pub type Bus = Arc<dyn EventBus>;

/// A fresh random instance id.
pub fn new_origin() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
