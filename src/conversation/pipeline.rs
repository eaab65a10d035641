//! The conversation pipeline: every inbound customer message, whatever its
//! channel, finds its customer and conversation and moves the conversation's
//! state machine; a request for a human runs routing.
//!
//! The worker takes [`Event::MessageStored`] events this instance published
//! (the instance that stored a message handles it; others see it on the
//! shared bus) in **batches**: whatever is waiting on the bus, up to
//! [`BATCH`], is read with one query, its links are submitted to the
//! group-commit writer together, and then each message moves its
//! conversation, in order. Customers and open conversations are cached, so a
//! routine message costs no read of its own. For each message:
//!
//! 1. skip what is not a customer's message (outbound, channel events other
//!    than menu clicks, channels without a pipeline yet);
//! 2. identify the customer by the channel identity (OA openid, WeCom
//!    external_userid), find their open conversation on the account, else
//!    reopen their last closed one, else open one (`bot`); link the message
//!    to both — the link is the claim that makes handling idempotent;
//! 3. a reply to a pending satisfaction survey is recorded as its answer;
//!    a menu click on a city sets the customer's region;
//! 4. apply [`Trigger::HumanRequested`] when the text or menu click asks for
//!    a person, else [`Trigger::CustomerMessage`] (see [`apply`](self::apply)
//!    for the steps that follow: routing on the in-memory [`Router`], the
//!    optimistic store of each transition, the effects, the bus event).
//!
//! A receiver that lagged behind the bus sweeps the unlinked inbound messages
//! from the database (also once at start), so no message is left behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use chrono::Utc;
use moka::future::Cache;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::bus::{Bus, Event};
use crate::config::RoutingSettings;
use crate::conversation::ingest::Ingestor;
use crate::conversation::outbox::Outbox;
use crate::conversation::state::{ConversationState, HandoffKeywords, HandoffVia, Trigger};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};
use crate::routing::Router;
use crate::store::conversations::{MessageLink, OpenRequest};
use crate::store::entities::{conversations, messages};
use crate::store::followers::IdentityKind;
use crate::store::messages::{Channel, Direction};
use crate::store::{Store, StoreError};
use crate::workers::{Shutdown, Workers};

mod apply;

pub use apply::parse_state;

/// Messages per page of the catch-up sweep.
const SWEEP_PAGE: u64 = 500;
/// How far back the catch-up sweep looks. Older unlinked messages (stored
/// before the pipeline existed, or in an outage longer than this) are left
/// alone: a request for a human from days ago must not reach an agent now,
/// and WeChat's 48-hour window to answer has passed.
pub const SWEEP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(48);
/// How long a link may wait for its group commit.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages taken from the bus at once.
const BATCH: usize = 256;
/// Conversations of a batch moved at once (each one's messages in order).
const CONVERSATIONS_AT_ONCE: usize = 64;
/// Pause before retrying after a database error in the worker loop.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Customers and open conversations kept in the caches.
const CACHE_ENTRIES: u64 = 100_000;

/// What handling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Not a customer's message (outbound, an event, another channel).
    Skipped,
    /// Linked before (by this or another worker): nothing done.
    AlreadyHandled,
    /// Linked and applied; the conversation's state afterwards.
    Done {
        conversation: ConversationId,
        customer: CustomerId,
        state: ConversationState,
    },
}

/// Why a message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("conversation {0} has a state Kefu does not know: {1}")]
    UnknownState(ConversationId, String),
    #[error(transparent)]
    NotLinked(#[from] crate::conversation::ingest::IngestError),
    #[error("{0}")]
    Invalid(String),
}

/// A customer's message, ready to link and apply.
struct Prepared {
    msg: messages::Model,
    customer: CustomerId,
    conversation: conversations::Model,
    /// Opened (or reopened) for this message: announced once linked.
    opened: Option<String>,
}

/// The pipeline: cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) router: Router,
    pub(crate) settings: Arc<RoutingSettings>,
    pub(crate) outbox: Option<Outbox>,
    keywords: Arc<HandoffKeywords>,
    /// When set, links go through the group-commit writer, sharing its
    /// transactions with inbound messages instead of one fsync each.
    pub(crate) ingest: Option<Ingestor>,
    /// (identity kind, account, value) → customer. Identities move only when
    /// the CRM sync merges customers ([`Pipeline::forget_customers`]).
    customers: Cache<(&'static str, String, String), i64>,
    /// (customer, account) → their open conversation as last stored here.
    open: Cache<(i64, String), conversations::Model>,
    /// Wakes the queue drain ([`crate::routing::queue::Drainer`]): an
    /// agent's slot freed up.
    queue_signal: Arc<tokio::sync::Notify>,
}

impl Pipeline {
    pub fn new(store: Store, bus: Bus, router: Router, settings: RoutingSettings) -> Self {
        let keywords = HandoffKeywords::new(
            &settings.handoff_keywords,
            crate::conversation::state::DEFAULT_MAX_UNITS,
        );
        Self {
            store,
            bus,
            router,
            settings: Arc::new(settings),
            outbox: None,
            keywords: Arc::new(keywords),
            ingest: None,
            customers: Cache::new(CACHE_ENTRIES),
            open: Cache::new(CACHE_ENTRIES),
            queue_signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Links through the group-commit writer (what the server does).
    pub fn with_ingest(mut self, ingest: Ingestor) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// Tells customers (queue position, agent joined, survey…) through the
    /// outbox; without it those notices are skipped.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets who each identity belongs to and each open conversation (the
    /// CRM sync merged customers).
    pub fn forget_customers(&self) {
        self.customers.invalidate_all();
        self.open.invalidate_all();
    }

    /// Forgets the customers merged away and the identities that moved
    /// (all customers when `identities` is empty).
    pub async fn forget_merged(
        &self,
        removed: &[CustomerId],
        identities: &[(String, String, String)],
    ) {
        if identities.is_empty() {
            self.forget_customers();
            return;
        }
        let mut accounts = Vec::new();
        for (kind, account, value) in identities {
            if let Some(k) = IdentityKind::parse(kind) {
                self.customers
                    .invalidate(&(k.as_str(), account.clone(), value.clone()))
                    .await;
            }
            accounts.push(account.clone());
        }
        for c in removed {
            for a in &accounts {
                self.open.invalidate(&(c.0, a.clone())).await;
            }
        }
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn settings(&self) -> &RoutingSettings {
        &self.settings
    }

    /// Notified when a queue drain is worth running (a slot freed up, an
    /// agent became idle); the drain service waits on it.
    pub fn queue_signal(&self) -> &Arc<tokio::sync::Notify> {
        &self.queue_signal
    }

    /// Starts the worker: subscribed now, so nothing stored from here on is
    /// missed; the start-up sweep covers what came before.
    pub fn start(&self, workers: &mut Workers) {
        let events = self.bus.subscribe();
        let me = self.clone();
        workers.spawn("conversation-pipeline", move |shutdown| {
            me.run(events, shutdown)
        });
    }

    async fn run(
        self,
        mut events: tokio::sync::broadcast::Receiver<crate::bus::Envelope>,
        mut shutdown: Shutdown,
    ) {
        let mut sweep = true;
        loop {
            if sweep {
                match self.sweep().await {
                    Ok(n) if n > 0 => tracing::info!(messages = n, "pipeline caught up"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "pipeline sweep failed; retrying");
                        tokio::select! {
                            _ = shutdown.wait() => return,
                            _ = tokio::time::sleep(RETRY_AFTER) => continue,
                        }
                    }
                }
                sweep = false;
            }
            let first = tokio::select! {
                _ = shutdown.wait() => return,
                r = events.recv() => r,
            };
            let mut batch = Vec::new();
            let mut next = first.map_err(|e| match e {
                RecvError::Lagged(n) => TryRecvError::Lagged(n),
                RecvError::Closed => TryRecvError::Closed,
            });
            loop {
                match next {
                    Ok(env) => {
                        if env.origin == self.bus.origin() {
                            if let Event::MessageStored { message_id, .. } = env.event {
                                batch.push(message_id);
                            }
                        } else {
                            self.observe_remote(&env.event).await;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "pipeline lagged behind the bus; sweeping");
                        sweep = true;
                    }
                    Err(TryRecvError::Closed) => return,
                }
                if batch.len() >= BATCH {
                    break;
                }
                next = events.try_recv();
            }
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = self.handle_batch(&batch).await {
                // The messages stay unlinked: the sweep retries them.
                tracing::warn!(messages = batch.len(), error = %e, "pipeline could not handle a batch");
                sweep = true;
            }
        }
    }

    /// Another instance changed a conversation: forget our copy, and move
    /// the agents' load as it did. An agent's presence set there holds here
    /// too (that instance drains the queue towards them and re-routes their
    /// conversations).
    async fn observe_remote(&self, event: &Event) {
        match event {
            Event::ConversationChanged {
                customer,
                account,
                agent,
                previous_agent,
                ..
            } => {
                self.open.invalidate(&(customer.0, account.clone())).await;
                self.router.moved(*previous_agent, *agent, None);
            }
            Event::AgentPresence { agent, status } => {
                self.router.set_status(*agent, *status);
            }
            Event::CustomersMerged {
                removed,
                identities,
            } => self.forget_merged(removed, identities).await,
            _ => {}
        }
    }

    /// Handles every unlinked inbound message of the last
    /// [`SWEEP_WINDOW`]; returns how many it handled. A message that fails is
    /// logged and left for the next sweep, so one bad row never stalls the
    /// others (a failed page read stops the sweep: the next one retries).
    pub async fn sweep(&self) -> Result<usize, PipelineError> {
        let since = Utc::now() - SWEEP_WINDOW;
        let mut after = MessageId(0);
        let mut done = 0;
        loop {
            let page = self
                .store
                .unlinked_inbound(after, since, SWEEP_PAGE)
                .await?;
            let Some(last) = page.last().copied() else {
                return Ok(done);
            };
            // Batches, like the live path: a sweep after a lag may face
            // tens of thousands of messages.
            for chunk in page.chunks(BATCH) {
                let handled = self.handle_batch(chunk).await?;
                done += handled
                    .iter()
                    .filter(|h| matches!(h, Handled::Done { .. }))
                    .count();
            }
            after = last;
        }
    }

    /// Handles one stored message (see the module documentation). Safe to
    /// call more than once, and from several workers.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn handle(&self, message_id: MessageId) -> Result<Handled, PipelineError> {
        let msg = self.store.message(message_id).await?;
        let Some(p) = self.prepare(msg).await? else {
            return Ok(Handled::Skipped);
        };
        if p.msg.conversation_id.is_some() {
            return Ok(Handled::AlreadyHandled);
        }
        let linked = self.link(&p).await?;
        self.finish(p, linked).await
    }

    /// Handles messages read with one query, linked together.
    pub async fn handle_batch(&self, ids: &[MessageId]) -> Result<Vec<Handled>, PipelineError> {
        let rows = self.store.messages_by_ids(ids).await?;
        let mut prepared = Vec::with_capacity(rows.len());
        let mut out = Vec::with_capacity(rows.len());
        let mut fresh = Vec::with_capacity(rows.len());
        for msg in rows {
            if msg.conversation_id.is_some() {
                out.push(Handled::AlreadyHandled);
            } else {
                fresh.push(msg);
            }
        }
        // At once: newcomers' customers and conversations share a commit.
        for p in futures_util::future::join_all(fresh.into_iter().map(|m| self.prepare(m))).await {
            match p {
                Ok(Some(p)) => prepared.push(p),
                Ok(None) => out.push(Handled::Skipped),
                Err(e) => tracing::warn!(error = %e, "pipeline could not prepare a message"),
            }
        }
        let links = futures_util::future::join_all(prepared.iter().map(|p| self.link(p))).await;
        // Each conversation's messages in order; different conversations at
        // once, so their writes share group commits.
        let mut by_conversation: Vec<Vec<_>> = Vec::new();
        let mut slot: HashMap<i64, usize> = HashMap::new();
        for (p, linked) in prepared.into_iter().zip(links) {
            let i = *slot.entry(p.conversation.id).or_insert_with(|| {
                by_conversation.push(Vec::new());
                by_conversation.len() - 1
            });
            by_conversation[i].push((p, linked));
        }
        let finished: Vec<Vec<Handled>> = futures_util::stream::iter(by_conversation)
            .map(|messages| async move {
                let mut done = Vec::with_capacity(messages.len());
                for (p, linked) in messages {
                    let id = p.msg.id;
                    match async { self.finish(p, linked?).await }.await {
                        Ok(h) => done.push(h),
                        Err(e) => {
                            tracing::warn!(message = id, error = %e, "pipeline could not handle a message")
                        }
                    }
                }
                done
            })
            .buffer_unordered(CONVERSATIONS_AT_ONCE)
            .collect()
            .await;
        out.extend(finished.into_iter().flatten());
        Ok(out)
    }

    /// Finds the customer and conversation of a customer's message; `None`
    /// for what the pipeline does not handle.
    async fn prepare(&self, msg: messages::Model) -> Result<Option<Prepared>, PipelineError> {
        let (kind, channel) = match msg.channel.as_str() {
            c if c == Channel::OfficialAccount.as_str() => {
                (IdentityKind::OaOpenId, Channel::OfficialAccount)
            }
            c if c == Channel::WecomKf.as_str() => {
                (IdentityKind::WecomExternalUserId, Channel::WecomKf)
            }
            c if c == Channel::Web.as_str() => (IdentityKind::WebVisitor, Channel::Web),
            _ => return Ok(None),
        };
        if msg.direction != Direction::In.as_str()
            || msg.sender.is_empty()
            || (msg.msg_type == "event" && self.menu_key(&msg).is_none() && !widget_handoff(&msg))
        {
            return Ok(None);
        }
        let Ok(account) = AccountId::parse(&msg.account_id) else {
            return Ok(None);
        };
        let cached = self
            .customers
            .get(&(kind.as_str(), account.to_string(), msg.sender.clone()))
            .await;
        let (customer, (conversation, opened)) = match (cached, &self.ingest) {
            // A newcomer (or a customer this instance has not seen): both
            // found or made in the next group commit.
            (None, Some(ingest)) => {
                let got = ingest
                    .open(
                        OpenRequest {
                            kind,
                            account: account.clone(),
                            value: msg.sender.clone(),
                            channel,
                            at: Utc::now(),
                        },
                        LINK_TIMEOUT,
                    )
                    .await?;
                self.customers
                    .insert(
                        (kind.as_str(), account.to_string(), msg.sender.clone()),
                        got.customer.0,
                    )
                    .await;
                if got.conversation.state != crate::store::conversations::CLOSED_STATE {
                    self.remember(&got.conversation).await;
                }
                let opened = got.created.then(|| "新会话 / new conversation".to_owned());
                (got.customer, (got.conversation, opened))
            }
            _ => {
                let customer = self.customer_of(kind, &account, &msg.sender).await?;
                (
                    customer,
                    self.conversation_for(customer, &account, channel).await?,
                )
            }
        };
        Ok(Some(Prepared {
            msg,
            customer,
            conversation,
            opened,
        }))
    }

    async fn customer_of(
        &self,
        kind: IdentityKind,
        account: &AccountId,
        value: &str,
    ) -> Result<CustomerId, PipelineError> {
        let key = (kind.as_str(), account.to_string(), value.to_owned());
        if let Some(id) = self.customers.get(&key).await {
            return Ok(CustomerId(id));
        }
        let id = self.store.identity(kind, account, value).await?.customer_id;
        self.customers.insert(key, id).await;
        Ok(CustomerId(id))
    }

    /// The customer's open conversation on the account (cached), or their
    /// last closed one (to reopen), or a new one.
    async fn conversation_for(
        &self,
        customer: CustomerId,
        account: &AccountId,
        channel: Channel,
    ) -> Result<(conversations::Model, Option<String>), PipelineError> {
        let key = (customer.0, account.to_string());
        if let Some(c) = self.open.get(&key).await {
            return Ok((c, None));
        }
        if let Some(c) = self.store.open_conversation_of(customer, account).await? {
            self.open.insert(key, c.clone()).await;
            return Ok((c, None));
        }
        if let Some(c) = self
            .store
            .last_closed_conversation(customer, account)
            .await?
        {
            // Reopened by the state machine when the message is applied.
            return Ok((c, None));
        }
        let (c, created) = self
            .store
            .open_conversation(customer, account, channel, Utc::now())
            .await?;
        self.open.insert(key, c.clone()).await;
        Ok((c, created.then(|| "新会话 / new conversation".to_owned())))
    }

    async fn link(&self, p: &Prepared) -> Result<bool, PipelineError> {
        let link = MessageLink {
            message: MessageId(p.msg.id),
            customer: p.customer,
            conversation: ConversationId(p.conversation.id),
            at: Utc::now(),
        };
        Ok(match &self.ingest {
            Some(ingest) => ingest.link(link, LINK_TIMEOUT).await?,
            None => {
                self.store
                    .link_message(link.message, link.customer, link.conversation, link.at)
                    .await?
            }
        })
    }

    /// After the link: announce a new conversation, then move the state
    /// machine (once per message: only the worker that linked it).
    async fn finish(&self, p: Prepared, linked: bool) -> Result<Handled, PipelineError> {
        let conversation = ConversationId(p.conversation.id);
        if let Some(reason) = &p.opened {
            // Announced once linked: whoever hears it finds the message there.
            self.publish_opened(&p.conversation, reason.clone());
        }
        if !linked {
            return Ok(Handled::AlreadyHandled);
        }
        self.bus.publish(Event::MessageFiled {
            conversation,
            customer: p.customer,
            message: crate::bus::FiledMessage::of(&p.msg),
        });
        if p.msg.channel == Channel::WecomKf.as_str() && p.conversation.open_kfid.is_none() {
            self.note_open_kfid(&p).await?;
        }
        // An earlier message of the same batch may have moved it.
        let current = match self
            .open
            .get(&(p.customer.0, p.conversation.account_id.clone()))
            .await
        {
            Some(c) if c.id == p.conversation.id => c,
            _ => p.conversation.clone(),
        };
        let from = parse_state(&current)?;
        if from == ConversationState::Closed
            && crate::conversation::effects::survey::try_answer(self, &current, &p.msg).await?
        {
            return Ok(Handled::Done {
                conversation,
                customer: p.customer,
                state: from,
            });
        }
        let trigger = self.trigger_of(&p).await?;
        let state = self
            .apply(&current, p.customer, trigger, "customer", Some(&p.msg))
            .await?;
        Ok(Handled::Done {
            conversation,
            customer: p.customer,
            state,
        })
    }

    /// What the message asks for; a city chosen from the menu is stored as
    /// the customer's region first (routing reads it).
    async fn trigger_of(&self, p: &Prepared) -> Result<Trigger, PipelineError> {
        let text = p.msg.content.as_deref().unwrap_or_default();
        if widget_handoff(&p.msg) {
            return Ok(Trigger::HumanRequested {
                via: HandoffVia::WidgetButton,
            });
        }
        if let Some(key) = self.menu_key(&p.msg) {
            if self.settings.handoff_menu_keys.iter().any(|k| k == key) {
                return Ok(Trigger::HumanRequested {
                    via: HandoffVia::MenuClick,
                });
            }
            if let Some(city) = key.strip_prefix(self.settings.city_menu_prefix.as_str())
                && !city.trim().is_empty()
            {
                self.store
                    .set_customer_region_if_unset(p.customer, city.trim())
                    .await?;
            }
            return Ok(Trigger::CustomerMessage);
        }
        if p.msg.msg_type == "location"
            && let Some(city) = crate::routing::geo::city_in_text(text)
        {
            self.store
                .set_customer_region_if_unset(p.customer, city)
                .await?;
        }
        if p.msg.msg_type == "text" && self.keywords.is_human_request(text) {
            return Ok(Trigger::HumanRequested {
                via: HandoffVia::Keyword,
            });
        }
        Ok(Trigger::CustomerMessage)
    }

    /// The key of an Official Account menu click (`CLICK <key>`), if the
    /// message is one (see also [`widget_handoff`]).
    fn menu_key<'m>(&self, msg: &'m messages::Model) -> Option<&'m str> {
        if msg.msg_type != "event" {
            return None;
        }
        msg.content.as_deref()?.strip_prefix("CLICK ")
    }

    /// Keeps the kf account a WeCom customer writes to (replies need it).
    async fn note_open_kfid(&self, p: &Prepared) -> Result<(), PipelineError> {
        let kfid = p
            .msg
            .payload
            .as_deref()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw).ok())
            .and_then(|v| v.get("open_kfid")?.as_str().map(str::to_owned));
        if let Some(kfid) = kfid {
            self.store
                .set_conversation_open_kfid(ConversationId(p.conversation.id), &kfid)
                .await?;
            let mut c = p.conversation.clone();
            c.open_kfid = Some(kfid);
            self.remember(&c).await;
        }
        Ok(())
    }

    /// Caches a conversation as just stored (forgets it once closed).
    pub(crate) async fn remember(&self, c: &conversations::Model) {
        let key = (c.customer_id, c.account_id.clone());
        if c.state == crate::store::conversations::CLOSED_STATE {
            self.open.invalidate(&key).await;
        } else {
            self.open.insert(key, c.clone()).await;
        }
    }

    fn publish_opened(&self, c: &conversations::Model, reason: String) {
        self.bus.publish(Event::ConversationChanged {
            conversation: ConversationId(c.id),
            customer: CustomerId(c.customer_id),
            account: c.account_id.clone(),
            state: c.state.clone(),
            agent: c.agent_id.map(AgentId),
            previous_agent: None,
            reason,
        });
    }
}

/// The web widget's "talk to a person" button, stored as an event
/// ([`crate::channels::web`]).
fn widget_handoff(msg: &messages::Model) -> bool {
    msg.channel == Channel::Web.as_str()
        && msg.msg_type == "event"
        && msg.content.as_deref() == Some(WIDGET_HANDOFF)
}

/// The content of the widget button's event.
pub const WIDGET_HANDOFF: &str = "HANDOFF";
