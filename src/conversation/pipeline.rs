//! The conversation pipeline: every inbound customer message, whatever its
//! channel, finds its customer and conversation and moves the conversation's
//! state machine; a request for a human runs routing.
//!
//! For each [`Event::MessageStored`] this instance published (the instance
//! that stored a message handles it; others see it on the shared bus), the
//! worker calls [`Pipeline::handle`]:
//!
//! 1. skip what is not a customer's message (outbound, channel events such
//!    as subscribe or kf job reports, channels without a pipeline yet);
//! 2. identify the customer by the channel identity (OA openid, WeCom
//!    external_userid), find their open conversation on the account or open
//!    one (`bot`), and link the message to both — the link is the claim that
//!    makes handling idempotent;
//! 3. apply [`Trigger::HumanRequested`] when the text asks for a person
//!    ([`HandoffKeywords`]), else [`Trigger::CustomerMessage`]; on a
//!    [`Effect::Route`], run [`routing::assign`] on a snapshot of the agents
//!    and feed its decision back;
//! 4. persist every recorded transition with an optimistic check and publish
//!    [`Event::ConversationChanged`].
//!
//! A receiver that lagged behind the bus sweeps the unlinked inbound messages
//! from the database (also once at start), so no message is left behind.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;

use crate::bus::{Bus, Event};
use crate::conversation::ingest::Ingestor;
use crate::conversation::state::{
    ConversationState, Effect, HandoffKeywords, HandoffVia, Transition, Trigger, transition,
};
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId, MessageId};
use crate::routing::{self, Decision, Request, Scope};
use crate::store::conversations::{MessageLink, StateChange, StoredState};
use crate::store::entities::conversations;
use crate::store::followers::IdentityKind;
use crate::store::messages::{Channel, Direction};
use crate::store::{Store, StoreError};
use crate::workers::{Shutdown, Workers};

/// Messages per page of the catch-up sweep.
const SWEEP_PAGE: u64 = 500;
/// How far back the catch-up sweep looks. Older unlinked messages (stored
/// before the pipeline existed, or in an outage longer than this) are left
/// alone: a request for a human from days ago must not reach an agent now,
/// and WeChat's 48-hour window to answer has passed.
pub const SWEEP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(48);
/// How long a link may wait for its group commit.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages handled at once by the worker. Links and state changes are
/// claims with optimistic checks, so concurrent handling is safe, but each
/// message still costs a few reads: measured on 2 cores, 64 at once starved
/// the callback path (2.3k callbacks/s), one at a time costs it ~30 %
/// (7.9k/s instead of 11.8k/s). Batching the pipeline's reads is the next
/// step (issue 6).
const IN_FLIGHT: usize = 1;
/// Pause before retrying after a database error in the worker loop.
const RETRY_AFTER: Duration = Duration::from_secs(1);

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

/// What [`Pipeline::persist`] did with a transition.
enum Persisted {
    /// A routine step: nothing recorded.
    Routine,
    /// Recorded; this event announces it.
    Recorded(Event),
    /// The conversation changed under us: nothing applied.
    Conflict,
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
}

/// The pipeline: cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    bus: Bus,
    keywords: HandoffKeywords,
    /// When set, links go through the group-commit writer, sharing its
    /// transactions with inbound messages instead of one fsync each.
    ingest: Option<Ingestor>,
}

impl Pipeline {
    pub fn new(store: Store, bus: Bus) -> Self {
        Self {
            store,
            bus,
            keywords: HandoffKeywords::default(),
            ingest: None,
        }
    }

    /// Links through the group-commit writer (what the server does).
    pub fn with_ingest(mut self, ingest: Ingestor) -> Self {
        self.ingest = Some(ingest);
        self
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
        let mut in_flight = tokio::task::JoinSet::new();
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
            let received = tokio::select! {
                _ = shutdown.wait() => {
                    // Let the messages in hand finish their step.
                    while in_flight.join_next().await.is_some() {}
                    return;
                }
                r = events.recv() => r,
            };
            match received {
                Ok(env) if env.origin == self.bus.origin() => {
                    if let Event::MessageStored { message_id, .. } = env.event {
                        while in_flight.len() >= IN_FLIGHT {
                            if let Some(Ok(false)) = in_flight.join_next().await {
                                sweep = true;
                            }
                        }
                        let me = self.clone();
                        in_flight.spawn(async move {
                            match me.handle(message_id).await {
                                Ok(_) => true,
                                Err(e) => {
                                    // The message stays unlinked: the next sweep retries.
                                    tracing::warn!(message = %message_id, error = %e, "pipeline could not handle a message");
                                    false
                                }
                            }
                        });
                    }
                    while let Some(done) = in_flight.try_join_next() {
                        if !matches!(done, Ok(true)) {
                            sweep = true;
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "pipeline lagged behind the bus; sweeping");
                    sweep = true;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Handles every unlinked inbound message of the last
    /// [`SWEEP_WINDOW`]; returns how many it handled. A message that fails is
    /// logged and left for the next sweep, so one bad row never stalls the
    /// others.
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
            for id in page {
                match self.handle(id).await {
                    Ok(Handled::Done { .. }) => done += 1,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(message = %id, error = %e, "pipeline could not handle a message")
                    }
                }
            }
            after = last;
        }
    }

    /// Handles one stored message (see the module documentation). Safe to
    /// call more than once, and from several workers.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn handle(&self, message_id: MessageId) -> Result<Handled, PipelineError> {
        let msg = self.store.message(message_id).await?;
        let kind = match msg.channel.as_str() {
            c if c == Channel::OfficialAccount.as_str() => IdentityKind::OaOpenId,
            c if c == Channel::WecomKf.as_str() => IdentityKind::WecomExternalUserId,
            // The web widget joins with issue 9.
            _ => return Ok(Handled::Skipped),
        };
        if msg.direction != Direction::In.as_str()
            || msg.msg_type == "event"
            || msg.sender.is_empty()
        {
            return Ok(Handled::Skipped);
        }
        if msg.conversation_id.is_some() {
            return Ok(Handled::AlreadyHandled);
        }
        let Ok(account) = AccountId::parse(&msg.account_id) else {
            return Ok(Handled::Skipped);
        };
        let channel = if kind == IdentityKind::OaOpenId {
            Channel::OfficialAccount
        } else {
            Channel::WecomKf
        };
        let now = Utc::now();
        let customer = CustomerId(
            self.store
                .identity(kind, &account, &msg.sender)
                .await?
                .customer_id,
        );
        let (conv, created) = match self.store.open_conversation_of(customer, &account).await? {
            Some(c) => (c, false),
            None => {
                self.store
                    .open_conversation(customer, &account, channel, now)
                    .await?
            }
        };
        let conversation = ConversationId(conv.id);
        let link = MessageLink {
            message: message_id,
            customer,
            conversation,
            at: now,
        };
        let linked = match &self.ingest {
            Some(ingest) => ingest.link(link, LINK_TIMEOUT).await?,
            None => {
                self.store
                    .link_message(message_id, customer, conversation, now)
                    .await?
            }
        };
        if created {
            // Announced once linked: whoever hears it finds the message there.
            self.publish(&conv, "新会话 / new conversation".into());
        }
        if !linked {
            return Ok(Handled::AlreadyHandled);
        }
        let text = msg.content.as_deref().unwrap_or_default();
        let trigger = if msg.msg_type == "text" && self.keywords.is_human_request(text) {
            Trigger::HumanRequested {
                via: HandoffVia::Keyword,
            }
        } else {
            Trigger::CustomerMessage
        };
        let state = self.apply(&conv, customer, trigger).await?;
        Ok(Handled::Done {
            conversation,
            customer,
            state,
        })
    }

    /// Applies `trigger` and then the effects this slice carries out
    /// (routing); returns the state reached.
    async fn apply(
        &self,
        conv: &conversations::Model,
        customer: CustomerId,
        trigger: Trigger,
    ) -> Result<ConversationState, PipelineError> {
        let conversation = ConversationId(conv.id);
        let mut from = parse_state(conv)?;
        let mut trigger = trigger;
        let mut actor = "customer";
        let mut explanation: Option<String> = None;
        // At most two steps: the customer's trigger, then routing's decision.
        for _ in 0..2 {
            let t = match transition(&from, &trigger) {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(conversation = %conversation, error = %e, "stale trigger dropped");
                    return Ok(from);
                }
            };
            let announce = match self
                .persist(conversation, customer, &from, &t, actor, explanation.take())
                .await?
            {
                Persisted::Routine => None,
                Persisted::Recorded(event) => Some(event),
                Persisted::Conflict => {
                    // Another worker changed the conversation first: theirs stands.
                    let now = self.store.conversation(conversation).await?;
                    return parse_state(&now);
                }
            };
            from = t.next;
            let route = t.effects.iter().find_map(|e| match e {
                Effect::Route { scope, exclude } => Some((*scope, *exclude)),
                _ => None,
            });
            // Not yet carried out, each with the issue that builds it:
            // RobotAnswer (the robot, issue 10); Enqueue, Dequeue and
            // NotifyQueuePosition (the queue, issue 6's next slice);
            // NotifyAgent, ReleaseAgent (the console, issue 8); TellCustomer,
            // OpenTicket, AlertSupervisor, SendSurvey (issue 6's next slices).
            for e in &t.effects {
                if let Effect::BindIfUnbound(agent) = e
                    && self.store.bind_if_unbound(customer, *agent).await?
                {
                    tracing::info!(customer = %customer, agent = %agent, "customer bound to their first agent");
                }
            }
            // Announced once its effects are stored: listeners see them.
            if let Some(event) = announce {
                self.bus.publish(event);
            }
            let Some((scope, exclude)) = route else {
                return Ok(from);
            };
            let (decision, why) = self.route(customer, scope, exclude).await?;
            trigger = decision;
            actor = "routing";
            explanation = Some(why);
        }
        Ok(from)
    }

    /// Runs the routing policy; returns the trigger to feed back and the
    /// decision's explanation (Chinese / English).
    async fn route(
        &self,
        customer: CustomerId,
        scope: Scope,
        exclude: Option<AgentId>,
    ) -> Result<(Trigger, String), PipelineError> {
        let row = self.store.customer(customer).await?;
        let (agents, groups) = self.store.routing_snapshot().await?;
        let who = routing::Customer {
            dedicated_agent: row.dedicated_agent_id.map(AgentId),
            group: row.city_group_id.map(crate::ids::GroupId),
            region: row.region,
        };
        let outcome = routing::assign(&Request {
            customer: &who,
            agents: &agents,
            groups: &groups,
            scope,
            exclude,
            tie_break: random(),
        });
        if let Some(r) = outcome.rebind
            && self.store.rebind(customer, r.from, r.to).await?
        {
            // Reported to the CRM by the CRM sync (issue 7).
            tracing::info!(customer = %customer, from = %r.from, to = %r.to, "customer rebound");
        }
        let d = &outcome.decision;
        let why = format!("{} / {}", d.explain_zh(), d.explain_en());
        let trigger = match d {
            Decision::Assign { agent, .. } => Trigger::Assigned { agent: *agent },
            Decision::Queue { .. } => Trigger::NoAgentAvailable,
            Decision::NobodyOnDuty { .. } => Trigger::NobodyOnDuty,
        };
        Ok((trigger, why))
    }

    /// Records `t` (when worth it) with an optimistic check; returns the
    /// event to publish once its effects are carried out.
    async fn persist(
        &self,
        conversation: ConversationId,
        customer: CustomerId,
        from: &ConversationState,
        t: &Transition,
        actor: &str,
        explanation: Option<String>,
    ) -> Result<Persisted, PipelineError> {
        if !t.worth_recording(from) {
            return Ok(Persisted::Routine);
        }
        let reason = match explanation {
            Some(why) => format!("{}：{} / {}: {}", t.reason.zh(), why, t.reason, why),
            None => format!("{} / {}", t.reason.zh(), t.reason),
        };
        let change = StateChange {
            conversation,
            from: stored(from),
            to: stored(&t.next),
            reason: reason.clone(),
            actor: actor.to_owned(),
            at: Utc::now(),
        };
        if t.next == *from {
            self.store.record_transition(&change).await?;
        } else if !self.store.apply_state_change(&change).await? {
            return Ok(Persisted::Conflict);
        }
        Ok(Persisted::Recorded(Event::ConversationChanged {
            conversation,
            customer,
            state: change.to.state,
            agent: change.to.agent,
            reason,
        }))
    }

    fn publish(&self, c: &conversations::Model, reason: String) {
        self.bus.publish(Event::ConversationChanged {
            conversation: ConversationId(c.id),
            customer: CustomerId(c.customer_id),
            state: c.state.clone(),
            agent: c.agent_id.map(AgentId),
            reason,
        });
    }
}

/// The stored form of a state.
fn stored(s: &ConversationState) -> StoredState {
    let (state, agent) = match s {
        ConversationState::Bot => ("bot", None),
        ConversationState::Queued => ("queued", None),
        ConversationState::Assigned(a) => ("assigned", Some(*a)),
        ConversationState::Closed => ("closed", None),
    };
    StoredState {
        state: state.to_owned(),
        agent,
    }
}

/// A conversation's state as stored.
fn parse_state(c: &conversations::Model) -> Result<ConversationState, PipelineError> {
    match (c.state.as_str(), c.agent_id) {
        ("bot", _) => Ok(ConversationState::Bot),
        ("queued", _) => Ok(ConversationState::Queued),
        ("assigned", Some(a)) => Ok(ConversationState::Assigned(AgentId(a))),
        ("closed", _) => Ok(ConversationState::Closed),
        (other, _) => Err(PipelineError::UnknownState(
            ConversationId(c.id),
            other.to_owned(),
        )),
    }
}

/// A random number for routing's ties.
fn random() -> u64 {
    rand::random()
}
