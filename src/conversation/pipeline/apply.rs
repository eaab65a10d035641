//! Moving one conversation: a trigger, the state machine, routing on the
//! in-memory [`Router`](crate::routing::Router), the optimistic store of each
//! transition, its effects, and the bus event.
//!
//! The entry points beside the inbound path: [`Pipeline::trigger`] (agents,
//! supervisors, timeouts, presence) and [`Pipeline::try_assign_queued`]
//! (queue drains).

use std::collections::HashSet;

use chrono::Utc;

use super::{Pipeline, PipelineError};
use crate::bus::Event;
use crate::conversation::effects::{self, EffectCtx};
use crate::conversation::state::{ConversationState, Effect, Transition, Trigger, transition};
use crate::ids::{AgentId, ConversationId, CustomerId, GroupId};
use crate::routing::{self, Decision, Router, Scope};
use crate::store::conversations::{StateChange, StoredState};
use crate::store::entities::{conversations, messages};

/// What [`Pipeline::persist`] did with a transition.
enum Persisted {
    /// A routine step: nothing recorded.
    Routine,
    /// Recorded with this id; the event announces it.
    Recorded(Box<Event>, i64),
    /// The conversation changed under us: nothing applied.
    Conflict,
}

/// The most steps one trigger takes: the trigger, routing's decision, and
/// one more for a decision that routes again.
const MAX_STEPS: usize = 3;

/// How long a state change may wait for its group commit.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Pipeline {
    /// Applies `trigger` to a conversation on behalf of `actor` (an agent's
    /// login, `timeout`, `presence`…); returns the state reached. A trigger
    /// that does not apply (a stale event) is an error the caller can show.
    pub async fn trigger(
        &self,
        conversation: ConversationId,
        trigger: Trigger,
        actor: &str,
    ) -> Result<ConversationState, PipelineError> {
        self.trigger_with_note(conversation, trigger, actor, None)
            .await
    }

    /// [`Pipeline::trigger`] with the actor's note (a transfer's "why")
    /// written into the transition record's reason.
    pub async fn trigger_with_note(
        &self,
        conversation: ConversationId,
        trigger: Trigger,
        actor: &str,
        note: Option<&str>,
    ) -> Result<ConversationState, PipelineError> {
        let conv = self.store.conversation(conversation).await?;
        let from = parse_state(&conv)?;
        if let Err(e) = transition(&from, &trigger) {
            return Err(PipelineError::Invalid(e.to_string()));
        }
        self.run_steps(
            &conv,
            CustomerId(conv.customer_id),
            trigger,
            Steps {
                actor,
                explanation: note.map(Why::note),
                decision: None,
                reserved: Slot::none(&self.router),
                message: None,
            },
        )
        .await
    }

    /// A queue drain's attempt: if the conversation still waits and routing
    /// finds an agent for it now, assign it (an atomic claim: of two
    /// instances trying, one wins). Returns the agent it went to.
    pub async fn try_assign_queued(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<AgentId>, PipelineError> {
        self.try_assign_queued_holding(conversation, &HashSet::new())
            .await
    }

    /// [`Pipeline::try_assign_queued`], passing over the `held` agents (a
    /// drain's agents who took their batch already).
    pub async fn try_assign_queued_holding(
        &self,
        conversation: ConversationId,
        held: &HashSet<AgentId>,
    ) -> Result<Option<AgentId>, PipelineError> {
        let conv = self.store.conversation(conversation).await?;
        if parse_state(&conv)? != ConversationState::Queued {
            return Ok(None);
        }
        let customer = CustomerId(conv.customer_id);
        let scope = match conv.queue_group_id {
            Some(g) => Scope::Group(GroupId(g)),
            None => Scope::Customer,
        };
        let (decision, why) = self.route_holding(customer, scope, None, held).await?;
        let Decision::Assign { agent, .. } = decision else {
            return Ok(None);
        };
        let (state, applied) = self
            .run_steps_applied(
                &conv,
                customer,
                Trigger::Assigned { agent },
                Steps {
                    actor: "queue",
                    explanation: Some(why),
                    decision: Some(decision),
                    reserved: Slot::held(&self.router, agent),
                    message: None,
                },
            )
            .await?;
        // Another instance may have given it to the same agent first.
        Ok((applied && state == ConversationState::Assigned(agent)).then_some(agent))
    }

    /// Applies `trigger` and the effects that follow; returns the state
    /// reached.
    pub(crate) async fn apply(
        &self,
        conv: &conversations::Model,
        customer: CustomerId,
        trigger: Trigger,
        actor: &str,
        message: Option<&messages::Model>,
    ) -> Result<ConversationState, PipelineError> {
        self.run_steps(
            conv,
            customer,
            trigger,
            Steps {
                actor,
                explanation: None,
                decision: None,
                reserved: Slot::none(&self.router),
                message,
            },
        )
        .await
    }

    async fn run_steps(
        &self,
        conv: &conversations::Model,
        customer: CustomerId,
        trigger: Trigger,
        s: Steps<'_>,
    ) -> Result<ConversationState, PipelineError> {
        Ok(self.run_steps_applied(conv, customer, trigger, s).await?.0)
    }

    /// [`Pipeline::run_steps`], also saying whether this call applied its
    /// steps (`false` when another worker changed the conversation first).
    async fn run_steps_applied(
        &self,
        conv: &conversations::Model,
        customer: CustomerId,
        mut trigger: Trigger,
        mut s: Steps<'_>,
    ) -> Result<(ConversationState, bool), PipelineError> {
        let conversation = ConversationId(conv.id);
        let mut conv = conv.clone();
        let mut from = parse_state(&conv)?;
        for _ in 0..MAX_STEPS {
            let t = match transition(&from, &trigger) {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(conversation = %conversation, error = %e, "stale trigger dropped");
                    s.reserved.release();
                    return Ok((from, true));
                }
            };
            let mut transition_id = None;
            let announce = match self
                .persist(&conv, &from, &t, s.actor, s.explanation.take())
                .await
            {
                Ok(Persisted::Routine) => None,
                Ok(Persisted::Recorded(event, id)) => {
                    transition_id = Some(id);
                    Some(*event)
                }
                Ok(Persisted::Conflict) => {
                    // Another worker changed the conversation first: theirs stands.
                    s.reserved.release();
                    let now = self.store.conversation(conversation).await?;
                    self.remember(&now).await;
                    return Ok((parse_state(&now)?, false));
                }
                Err(e) => {
                    s.reserved.release();
                    return Err(e);
                }
            };
            if announce.is_some() {
                self.router
                    .moved(agent_of(&from), agent_of(&t.next), s.reserved.take());
                let stored = stored(&t.next);
                conv.state = stored.state;
                conv.agent_id = stored.agent.map(|a| a.0);
                if t.next == ConversationState::Closed {
                    conv.closed_at = Some(Utc::now());
                }
            }
            self.remember(&conv).await;
            let previous = from;
            from = t.next;
            let ctx = EffectCtx {
                pipeline: self,
                conversation: &conv,
                customer,
                from: previous,
                transition: &t,
                transition_id,
                decision: s.decision.as_ref(),
                message: s.message,
                actor: s.actor,
            };
            let mut route = None;
            for e in &t.effects {
                if let Effect::Route { scope, exclude } = e {
                    route = Some((*scope, *exclude));
                } else {
                    effects::run(&ctx, e).await;
                }
            }
            // Announced once its effects are stored: listeners see them.
            if let Some(event) = announce {
                self.bus.publish(event);
            }
            let Some((scope, exclude)) = route else {
                return Ok((from, true));
            };
            let (decision, why) = self.route(customer, scope, exclude).await?;
            trigger = match &decision {
                Decision::Assign { agent, .. } => {
                    s.reserved.hold(*agent);
                    Trigger::Assigned { agent: *agent }
                }
                Decision::Queue { .. } => Trigger::NoAgentAvailable,
                Decision::NobodyOnDuty { .. } => Trigger::NobodyOnDuty,
            };
            s.decision = Some(decision);
            s.actor = "routing";
            s.explanation = Some(why);
        }
        s.reserved.release();
        Ok((from, true))
    }

    /// Runs the routing policy on the in-memory router (reserving the chosen
    /// agent); returns the decision and its explanation (Chinese / English).
    pub(crate) async fn route(
        &self,
        customer: CustomerId,
        scope: Scope,
        exclude: Option<AgentId>,
    ) -> Result<(Decision, Why), PipelineError> {
        self.route_holding(customer, scope, exclude, &HashSet::new())
            .await
    }

    async fn route_holding(
        &self,
        customer: CustomerId,
        scope: Scope,
        exclude: Option<AgentId>,
        held: &HashSet<AgentId>,
    ) -> Result<(Decision, Why), PipelineError> {
        let row = self.store.customer(customer).await?;
        let who = routing::Customer {
            dedicated_agent: row.dedicated_agent_id.map(AgentId),
            group: row.city_group_id.map(GroupId),
            region: row.region,
        };
        let outcome =
            self.router
                .decide_holding(&who, scope, exclude, held, Utc::now(), rand::random());
        // The slot is the caller's once this returns; until then it is ours.
        let mut slot = Slot::none(&self.router);
        if let Decision::Assign { agent, .. } = &outcome.decision {
            slot.hold(*agent);
        }
        if let Some(r) = outcome.rebind
            && self.store.rebind(customer, r.from, r.to).await?
        {
            tracing::info!(customer = %customer, from = %r.from, to = %r.to, "customer rebound");
            self.store
                .report_binding(customer, Some(r.from), r.to, "dedicated_agent_left_group")
                .await?;
        }
        slot.take();
        let d = outcome.decision;
        let why = Why {
            zh: d.explain_zh(),
            en: d.explain_en(),
        };
        Ok((d, why))
    }

    /// Records `t` (when worth it) with an optimistic check; returns the
    /// event to publish once its effects are carried out.
    async fn persist(
        &self,
        conv: &conversations::Model,
        from: &ConversationState,
        t: &Transition,
        actor: &str,
        explanation: Option<Why>,
    ) -> Result<Persisted, PipelineError> {
        if !t.worth_recording(from) {
            return Ok(Persisted::Routine);
        }
        let reason = match explanation {
            Some(why) => format!("{}：{} / {}: {}", t.reason.zh(), why.zh, t.reason, why.en),
            None => format!("{} / {}", t.reason.zh(), t.reason),
        };
        let change = StateChange {
            conversation: ConversationId(conv.id),
            from: stored(from),
            to: stored(&t.next),
            reason: reason.clone(),
            actor: actor.to_owned(),
            at: Utc::now(),
        };
        // Through the group-commit writer when there is one: concurrent
        // conversations share a commit.
        let id = match &self.ingest {
            Some(ingest) => ingest.change_state(change.clone(), WRITE_TIMEOUT).await?,
            None => self.store.apply_state_change(&change).await?,
        };
        let Some(id) = id else {
            return Ok(Persisted::Conflict);
        };
        let event = Event::ConversationChanged {
            conversation: change.conversation,
            customer: CustomerId(conv.customer_id),
            account: conv.account_id.clone(),
            state: change.to.state,
            agent: change.to.agent,
            previous_agent: change.from.agent,
            reason,
        };
        Ok(Persisted::Recorded(Box::new(event), id))
    }
}

/// The explanation a transition record carries: routing's decision in both
/// languages, or an actor's note (as written).
#[derive(Debug, Clone)]
pub(crate) struct Why {
    zh: String,
    en: String,
}

impl Why {
    fn note(note: &str) -> Self {
        Self {
            zh: note.to_owned(),
            en: note.to_owned(),
        }
    }
}

/// What carries from one step to the next.
struct Steps<'a> {
    actor: &'a str,
    explanation: Option<Why>,
    decision: Option<Decision>,
    /// The agent whose slot routing reserved for the next step.
    reserved: Slot,
    message: Option<&'a messages::Model>,
}

/// A slot [`Router::decide`] reserved and not yet stored. Released when
/// dropped: an error, a lost claim or a cancelled request (a client that
/// hangs up drops its handler's future) never leaves an agent looking
/// busier than they are.
struct Slot {
    router: Router,
    agent: Option<AgentId>,
}

impl Slot {
    fn none(router: &Router) -> Self {
        Self {
            router: router.clone(),
            agent: None,
        }
    }

    fn held(router: &Router, agent: AgentId) -> Self {
        Self {
            router: router.clone(),
            agent: Some(agent),
        }
    }

    fn hold(&mut self, agent: AgentId) {
        self.release();
        self.agent = Some(agent);
    }

    /// The reserved agent, now the caller's to settle.
    fn take(&mut self) -> Option<AgentId> {
        self.agent.take()
    }

    fn release(&mut self) {
        if let Some(a) = self.agent.take() {
            self.router.unreserve(a);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

fn agent_of(s: &ConversationState) -> Option<AgentId> {
    match s {
        ConversationState::Assigned(a) => Some(*a),
        _ => None,
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
pub fn parse_state(c: &conversations::Model) -> Result<ConversationState, PipelineError> {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::routing::engine::RouterData;
    use crate::routing::{AgentSnapshot, AgentStatus, Customer, Employment, Shift};

    fn one_slot_router() -> Router {
        let r = Router::new(false);
        r.replace(RouterData {
            agents: vec![AgentSnapshot {
                id: AgentId(1),
                groups: vec![GroupId(1)],
                status: AgentStatus::Idle,
                shift: Shift::On,
                employment: Employment::Active,
                load: 0,
                capacity: 1,
                last_assigned_at: None,
                bound_customers: 0,
            }],
            groups: routing::GroupMap::new(),
            shifts: HashMap::new(),
        });
        r
    }

    fn decides(r: &Router) -> bool {
        let who = Customer::default();
        matches!(
            r.decide(&who, Scope::Customer, None, Utc::now(), 0)
                .decision,
            Decision::Assign { .. }
        )
    }

    #[test]
    fn a_dropped_slot_frees_the_agent_and_a_taken_one_does_not() {
        let r = one_slot_router();
        assert!(decides(&r));
        assert!(!decides(&r), "the only slot is reserved");
        drop(Slot::held(&r, AgentId(1)));
        assert!(decides(&r), "dropping the reservation released it");
        let mut s = Slot::held(&r, AgentId(1));
        assert_eq!(s.take(), Some(AgentId(1)));
        drop(s);
        assert!(!decides(&r), "a taken slot is the taker's to settle");
    }
}
