//! Carrying out what a transition asks for ([`Effect`]), after it is
//! stored. An effect that fails is logged: the state change stands, and the
//! customer is never left without their conversation moving.
//!
//! - [`queue`]: the queue (enqueue, dequeue, positions, draining when an
//!   agent is released);
//! - [`notices`]: what the customer is told, supervisor alerts;
//! - [`tickets`]: leave-a-message tickets when nobody is on duty;
//! - [`survey`]: the satisfaction survey after a close, and its answers.

use crate::conversation::pipeline::Pipeline;
use crate::conversation::state::{ConversationState, Effect, Transition};
use crate::ids::CustomerId;
use crate::routing::Decision;
use crate::store::entities::{conversations, messages};

pub mod notices;
pub mod queue;
pub mod survey;
pub mod tickets;

/// Everything an effect may need.
pub struct EffectCtx<'a> {
    pub pipeline: &'a Pipeline,
    /// The conversation as stored after the transition.
    pub conversation: &'a conversations::Model,
    pub customer: CustomerId,
    /// The state before the transition.
    pub from: ConversationState,
    pub transition: &'a Transition,
    /// The id of the transition's record; `None` for a routine step (not
    /// recorded). Notices key their idempotency on it.
    pub transition_id: Option<i64>,
    /// Routing's decision that led here, if this step follows one.
    pub decision: Option<&'a Decision>,
    /// The customer's message that started it, if one did.
    pub message: Option<&'a messages::Model>,
    /// Who acted: `customer`, `routing`, `queue`, an agent's login…
    pub actor: &'a str,
}

/// Carries out one effect (never `Route`: the pipeline runs routing itself).
pub async fn run(ctx: &EffectCtx<'_>, effect: &Effect) {
    let done = match effect {
        // The robot answers with issue 10.
        Effect::RobotAnswer => Ok(()),
        Effect::Route { .. } => Ok(()),
        Effect::Enqueue => queue::enqueue(ctx).await,
        Effect::Dequeue => queue::dequeue(ctx).await,
        Effect::NotifyQueuePosition => queue::notify_position(ctx).await,
        // The `ConversationChanged` event on the bus reaches the agent's
        // console (issue 8).
        Effect::NotifyAgent(_) => Ok(()),
        Effect::ReleaseAgent(agent) => queue::agent_released(ctx, *agent).await,
        Effect::BindIfUnbound(agent) => {
            match ctx
                .pipeline
                .store()
                .bind_if_unbound(ctx.customer, *agent)
                .await
            {
                Ok(true) => {
                    tracing::info!(customer = %ctx.customer, agent = %agent, "customer bound to their first agent");
                    ctx.pipeline
                        .store()
                        .report_binding(ctx.customer, None, *agent, "first_assignment")
                        .await
                        .map_err(Into::into)
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Effect::TellCustomer(notice) => notices::tell(ctx, *notice).await,
        Effect::OpenTicket => tickets::open(ctx).await,
        Effect::AlertSupervisor(agent) => notices::alert_supervisor(ctx, *agent).await,
        Effect::SendSurvey => survey::send(ctx).await,
    };
    if let Err(e) = done {
        tracing::warn!(
            conversation = ctx.conversation.id,
            effect = ?effect,
            error = %e,
            "effect failed; the state change stands"
        );
    }
}
