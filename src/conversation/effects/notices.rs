//! What the customer is told, and alerts to supervisors.

use super::EffectCtx;
use crate::conversation::pipeline::PipelineError;
use crate::conversation::state::Notice;
use crate::ids::AgentId;

/// Tells the customer `notice` on their channel.
pub async fn tell(_ctx: &EffectCtx<'_>, _notice: Notice) -> Result<(), PipelineError> {
    Ok(())
}

/// Alerts the supervisors of `agent`'s groups (reply timeout).
pub async fn alert_supervisor(_ctx: &EffectCtx<'_>, _agent: AgentId) -> Result<(), PipelineError> {
    Ok(())
}
