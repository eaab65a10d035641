//! What the customer is told, and alerts to supervisors.

use std::time::Duration;

use super::EffectCtx;
use crate::bus::Event;
use crate::conversation::outbox::{OutboundRequest, Speaker};
use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::conversation::state::Notice;
use crate::ids::{AccountId, AgentId, ConversationId, CustomerId};
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
                media: None,
            },
            SEND_TIMEOUT,
        )
        .await
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    Ok(())
}

/// What the customer reads when a human agent takes over.
pub fn agent_joined_text(agent_name: &str) -> String {
    format!("客服 {agent_name} 为您服务")
}

/// What the customer reads when nobody is on duty (a ticket was opened).
pub const NOBODY_ON_DUTY_TEXT: &str = "当前无人值班，您的留言已记录，客服上班后会尽快回复您。";

/// The idempotency key of what a transition says: the same transition never
/// speaks twice, a later one (the agent joins again after a reopen) does.
pub(crate) fn transition_key(ctx: &EffectCtx<'_>, what: &str) -> String {
    match ctx.transition_id {
        Some(id) => format!("{what}:t{id}"),
        // Only recorded transitions tell anyone; this is a fallback.
        None => format!("{what}:{}", chrono::Utc::now().timestamp_micros()),
    }
}

/// The name the customer sees for an agent: their display name, else
/// their login.
async fn display_name(pipeline: &Pipeline, agent: AgentId) -> Result<String, PipelineError> {
    let a = pipeline.store.agent(agent).await?;
    Ok(if a.name.trim().is_empty() {
        a.login
    } else {
        a.name
    })
}

/// Tells the customer `notice` on their channel.
pub async fn tell(ctx: &EffectCtx<'_>, notice: Notice) -> Result<(), PipelineError> {
    match notice {
        Notice::AgentJoined(agent) => {
            let name = display_name(ctx.pipeline, agent).await?;
            let key = transition_key(ctx, &format!("joined:a{agent}"));
            send_text(
                ctx.pipeline,
                ctx.conversation,
                &agent_joined_text(&name),
                &key,
            )
            .await
        }
        Notice::NobodyOnDuty => {
            let key = transition_key(ctx, "nobody-on-duty");
            send_text(ctx.pipeline, ctx.conversation, NOBODY_ON_DUTY_TEXT, &key).await
        }
    }
}

/// Alerts the supervisors of `agent`'s groups (reply timeout): an event on
/// the bus, which the console shows (and a warning in the log).
pub async fn alert_supervisor(ctx: &EffectCtx<'_>, agent: AgentId) -> Result<(), PipelineError> {
    let name = display_name(ctx.pipeline, agent)
        .await
        .unwrap_or_else(|_| format!("#{agent}"));
    let mins = ctx.pipeline.settings.agent_reply_timeout_mins;
    let text = format!(
        "客服 {name} 超过 {mins} 分钟未回复客户，会话已尝试转给其他客服 / \
         Agent {name} has not answered the customer for {mins} minutes; \
         the conversation is being offered to another agent."
    );
    tracing::warn!(
        conversation = ctx.conversation.id,
        agent = %agent,
        kind = REPLY_TIMEOUT,
        "supervisor alert: {text}"
    );
    ctx.pipeline.bus.publish(Event::SupervisorAlert {
        conversation: ConversationId(ctx.conversation.id),
        agent,
        kind: REPLY_TIMEOUT.to_owned(),
        text,
    });
    Ok(())
}

/// The kind of the alert for an agent's reply timeout.
pub const REPLY_TIMEOUT: &str = "reply_timeout";
