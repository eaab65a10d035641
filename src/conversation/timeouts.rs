//! The conversations' clocks, checked every [`EVERY`]:
//!
//! - **Auto-close.** A conversation with the robot or an agent whose
//!   customer has not written for `routing.auto_close_mins` closes
//!   ([`CloseReason::Timeout`]; the survey follows when an agent served).
//!   Queued conversations wait: closing them would drop a customer who is
//!   still waiting for a person.
//! - **Reply timeout.** An assigned conversation whose oldest unanswered
//!   customer message is older than `routing.agent_reply_timeout_mins` (the
//!   clock starts at the assignment at the earliest, and an agent's reply
//!   stops it) is offered to another agent once
//!   ([`Trigger::AgentReplyTimeout`]): supervisors are alerted, and routing
//!   runs again without the slow agent; if nobody else is free, they keep
//!   it. `conversations.reoffered_at` is the claim: one instance, once per
//!   unanswered message.
//!
//! `0` turns either off. A run handles at most [`MAX_PAGES`] pages of
//! [`PAGE`] each; the rest waits for the next run. [`Timeouts::run_once_at`]
//! takes the time, so tests move the clock instead of sleeping.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::conversation::state::{CloseReason, ConversationState, Trigger};
use crate::ids::ConversationId;
use crate::workers::{Shutdown, Workers};

/// How often the clocks are checked.
pub const EVERY: Duration = Duration::from_secs(30);
/// Conversations read per query.
pub const PAGE: u64 = 100;
/// Pages of each kind per run.
pub const MAX_PAGES: usize = 10;
/// The actor of what the clocks do, in the transition record.
pub const ACTOR: &str = "timeout";

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Conversations closed for want of a customer message.
    pub closed: usize,
    /// Conversations offered to another agent (whether or not one took it).
    pub reoffered: usize,
}

/// The clocks: cheap to clone.
#[derive(Clone)]
pub struct Timeouts {
    pipeline: Pipeline,
}

impl Timeouts {
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// Starts the worker (a no-op loop when both clocks are off).
    pub fn start(&self, workers: &mut Workers) {
        let me = self.clone();
        workers.spawn("conversation-timeouts", move |shutdown| me.run(shutdown));
    }

    async fn run(self, mut shutdown: Shutdown) {
        let s = self.pipeline.settings();
        if s.auto_close_mins == 0 && s.agent_reply_timeout_mins == 0 {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            match self.run_once_at(Utc::now()).await {
                Ok(s) if s != Swept::default() => {
                    tracing::info!(
                        closed = s.closed,
                        reoffered = s.reoffered,
                        "conversation clocks"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "conversation clocks failed; retrying"),
            }
        }
    }

    /// One check of both clocks as if it were `now`. Closes first: a
    /// conversation about to close is not worth offering to someone else.
    pub async fn run_once_at(&self, now: DateTime<Utc>) -> Result<Swept, PipelineError> {
        let s = self.pipeline.settings();
        let mut swept = Swept::default();
        if let Some(cutoff) = cutoff(now, s.auto_close_mins) {
            swept.closed = self.close_idle(cutoff).await?;
        }
        if let Some(cutoff) = cutoff(now, s.agent_reply_timeout_mins) {
            swept.reoffered = self.reoffer_unanswered(cutoff, now).await?;
        }
        Ok(swept)
    }

    async fn close_idle(&self, cutoff: DateTime<Utc>) -> Result<usize, PipelineError> {
        let store = self.pipeline.store();
        let mut after = ConversationId(0);
        let mut closed = 0;
        for _ in 0..MAX_PAGES {
            let page = store.idle_conversations(cutoff, after, PAGE).await?;
            let Some(last) = page.last().copied() else {
                break;
            };
            for id in page {
                let trigger = Trigger::Closed {
                    by: CloseReason::Timeout,
                };
                match self.pipeline.trigger(id, trigger, ACTOR).await {
                    Ok(ConversationState::Closed) => closed += 1,
                    // Changed meanwhile (another instance closed it, the
                    // customer asked for a person): theirs stands.
                    Ok(_) | Err(PipelineError::Invalid(_)) => {}
                    Err(e) => {
                        tracing::warn!(conversation = %id, error = %e, "could not auto-close")
                    }
                }
            }
            after = last;
        }
        Ok(closed)
    }

    async fn reoffer_unanswered(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, PipelineError> {
        let store = self.pipeline.store();
        let mut after = ConversationId(0);
        let mut reoffered = 0;
        for _ in 0..MAX_PAGES {
            let page = store.due_reply_timeouts(cutoff, after, PAGE).await?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            for (id, agent) in page {
                // Claimed first: the offer happens once even when several
                // instances run the clocks, and even if it fails.
                if !store.claim_reoffer(id, agent, cutoff, now).await? {
                    continue;
                }
                match self
                    .pipeline
                    .trigger(id, Trigger::AgentReplyTimeout { agent }, ACTOR)
                    .await
                {
                    Ok(_) => reoffered += 1,
                    Err(PipelineError::Invalid(_)) => {}
                    Err(e) => {
                        tracing::warn!(conversation = %id, agent = %agent, error = %e, "could not re-offer")
                    }
                }
            }
            after = last;
        }
        Ok(reoffered)
    }
}

/// `now` minus `mins` minutes; `None` when the clock is off (0).
fn cutoff(now: DateTime<Utc>, mins: u64) -> Option<DateTime<Utc>> {
    if mins == 0 {
        return None;
    }
    let d = i64::try_from(mins).ok().and_then(TimeDelta::try_minutes)?;
    now.checked_sub_signed(d)
}
