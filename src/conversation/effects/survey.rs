//! The satisfaction survey: sent after a close, answered by a reply.

use super::EffectCtx;
use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::store::entities::{conversations, messages};

/// Sends the survey, channel-appropriate.
pub async fn send(_ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    Ok(())
}

/// A message to a closed conversation: when it answers a pending survey,
/// records the answer and returns `true` (the conversation stays closed).
pub async fn try_answer(
    _pipeline: &Pipeline,
    _conversation: &conversations::Model,
    _message: &messages::Model,
) -> Result<bool, PipelineError> {
    Ok(false)
}
