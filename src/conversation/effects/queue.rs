//! The queue: conversations waiting for a human, oldest first per group.

use super::EffectCtx;
use crate::conversation::pipeline::PipelineError;
use crate::ids::AgentId;

/// Puts the conversation in its group's queue, keeping its place if it is
/// there already.
pub async fn enqueue(_ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    Ok(())
}

/// Takes the conversation out of the queue; those behind it move up.
pub async fn dequeue(_ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    Ok(())
}

/// Tells the customer their place in the queue.
pub async fn notify_position(_ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    Ok(())
}

/// An agent let go of a conversation: their freed slot may take a queued one.
pub async fn agent_released(_ctx: &EffectCtx<'_>, _agent: AgentId) -> Result<(), PipelineError> {
    Ok(())
}
