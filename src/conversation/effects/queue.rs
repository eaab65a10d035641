//! The queue: conversations waiting for a human, oldest first per group
//! (see [`crate::store::queue`]); the drain that empties it is
//! [`crate::routing::queue::Drainer`].
//!
//! Customers are told their place when they join the queue (and when they
//! ask again), and again as it moves — but only near the front: those within
//! [`TELL_WITHIN`] places hear each step, those further back hear when they
//! get there, so nobody gets a message for every customer served. Each
//! notice carries an idempotency key of the conversation's place and number,
//! so a retried effect never sends one twice.

use futures_util::future::join_all;

use super::EffectCtx;
use super::notices::send_text;
use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::conversation::state::{ConversationState, Reason, TransferTarget};
use crate::ids::{AgentId, ConversationId, GroupId};
use crate::routing::Decision;
use crate::store::entities::conversations;
use crate::store::queue::set_queue_group_on;

/// Customers this close to the front are told each move.
pub const TELL_WITHIN: u64 = 20;

/// What a customer with `ahead` customers before them is told.
pub fn position_text(ahead: u64) -> String {
    if ahead == 0 {
        "您是下一位，请稍候".to_owned()
    } else {
        format!("您前面还有 {ahead} 位，请稍候")
    }
}

/// Puts the conversation in the queue routing chose (its group's, or the
/// global one), keeping its place if it has one already (asked again,
/// transferred while waiting); else its place is now. Until then it had no
/// place, and no drain could take it from under routing.
pub async fn enqueue(ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    let Some(Decision::Queue { group, .. }) = ctx.decision else {
        return Ok(());
    };
    let (conversation, group, now) = (
        ConversationId(ctx.conversation.id),
        *group,
        chrono::Utc::now(),
    );
    match &ctx.pipeline.ingest {
        // In the group commit: no commit of its own on the hot path's writer.
        Some(ingest) => {
            ingest
                .in_commit(
                    move |txn| Box::pin(set_queue_group_on(txn, conversation, group, now)),
                    WRITE_TIMEOUT,
                )
                .await?
        }
        None => {
            ctx.pipeline
                .store()
                .set_queue_group(conversation, group, now)
                .await?
        }
    }
    Ok(())
}

/// How long a queue place may wait for its group commit.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes the conversation out of its queue (the state change already did,
/// unless it waits on: transferred to another group's queue, it moves there
/// at once, keeping its place, so a drain meanwhile looks for an agent of
/// the right group); those behind it move up and are told, when near the
/// front.
pub async fn dequeue(ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    // Its place as read before the change; a conversation routed at once
    // never had one that anyone waited behind.
    let Some(at) = ctx.conversation.queued_at else {
        return Ok(());
    };
    if ctx.from != ConversationState::Queued {
        return Ok(());
    }
    let me = ConversationId(ctx.conversation.id);
    let group = ctx.conversation.queue_group_id.map(GroupId);
    let store = ctx.pipeline.store();
    if let (ConversationState::Queued, Reason::Transferred(TransferTarget::Group(to))) =
        (ctx.transition.next, ctx.transition.reason)
    {
        store
            .set_queue_group(me, Some(to), chrono::Utc::now())
            .await?;
    }
    let ahead = store.queue_ahead(group, at, me).await?;
    if ahead >= TELL_WITHIN {
        return Ok(());
    }
    let behind = store
        .queue_behind(group, at, me, TELL_WITHIN - ahead)
        .await?;
    let sends = behind.iter().zip(ahead..).map(|(c, place)| async move {
        if let Err(e) = tell_place(ctx.pipeline, c, place, None).await {
            tracing::warn!(conversation = c.id, error = %e, "could not tell a customer their new place");
        }
    });
    join_all(sends).await;
    Ok(())
}

/// Tells the customer their place in the queue.
pub async fn notify_position(ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    let Some((place, ahead)) = ctx
        .pipeline
        .store()
        .queue_position(ConversationId(ctx.conversation.id))
        .await?
    else {
        return Ok(());
    };
    let mut conv = ctx.conversation.clone();
    conv.queued_at = Some(place.queued_at);
    // Asking again deserves an answer even if the place has not changed.
    let asked = match (ctx.transition.reason, ctx.message) {
        (Reason::AskedAgainWhileWaiting, Some(m)) => Some(m.id),
        _ => None,
    };
    tell_place(ctx.pipeline, &conv, ahead, asked).await
}

/// Sends [`position_text`] once per place (and per message when `asked`).
async fn tell_place(
    pipeline: &Pipeline,
    conv: &conversations::Model,
    ahead: u64,
    asked: Option<i64>,
) -> Result<(), PipelineError> {
    let Some(at) = conv.queued_at else {
        return Ok(());
    };
    let mut key = format!("queue:{}:{ahead}", at.timestamp_micros());
    if let Some(m) = asked {
        key.push_str(&format!(":m{m}"));
    }
    send_text(pipeline, conv, &position_text(ahead), &key).await
}

/// An agent let go of a conversation: their freed slot may take a queued
/// one. The drain runs on its own; this only wakes it.
pub async fn agent_released(ctx: &EffectCtx<'_>, _agent: AgentId) -> Result<(), PipelineError> {
    ctx.pipeline.queue_signal().notify_one();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customer_hears_how_many_are_ahead() {
        assert_eq!(position_text(0), "您是下一位，请稍候");
        assert_eq!(position_text(1), "您前面还有 1 位，请稍候");
        assert_eq!(position_text(12), "您前面还有 12 位，请稍候");
    }
}
