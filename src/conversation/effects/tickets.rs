//! Leave-a-message tickets: opened when nobody is on duty.

use super::EffectCtx;
use crate::conversation::pipeline::PipelineError;

/// Opens a ticket (or adds to the customer's open one), assigned as
/// routing's `NobodyOnDuty` decision says.
pub async fn open(_ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    Ok(())
}
