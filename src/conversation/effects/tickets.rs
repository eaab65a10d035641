//! Leave-a-message tickets: opened when nobody is on duty.

use chrono::Utc;

use super::EffectCtx;
use crate::conversation::pipeline::PipelineError;
use crate::ids::{AccountId, ConversationId};
use crate::routing::Decision;
use crate::store::tickets::{NewTicket, open_ticket_in};

/// How long a ticket may wait for its group commit.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest ticket summary, in characters (the console's list shows it
/// on one line; the whole conversation is one click away).
pub const SUMMARY_CHARS: usize = 200;

/// Opens a ticket (or adds to the customer's open one), assigned as
/// routing's `NobodyOnDuty` decision says: the dedicated agent, else the
/// group, for the next shift.
pub async fn open(ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    let (agent, group) = match ctx.decision {
        Some(Decision::NobodyOnDuty { agent, group, .. }) => (*agent, *group),
        _ => (None, None),
    };
    let Ok(account) = AccountId::parse(&ctx.conversation.account_id) else {
        return Ok(());
    };
    let summary = summary_of(ctx).await?;
    let actor = if ctx.message.is_some() {
        "customer"
    } else {
        ctx.actor
    };
    let conversation = ConversationId(ctx.conversation.id);
    let customer = ctx.customer;
    let at = Utc::now();
    // In the group commit when there is one: a night of "nobody on duty"
    // must not cost a commit per customer on the hot path's writer.
    let shared = match &ctx.pipeline.ingest {
        Some(ingest) => {
            let (account, summary, actor) = (account.clone(), summary.clone(), actor.to_owned());
            ingest
                .in_commit(
                    move |txn| {
                        Box::pin(async move {
                            let t = NewTicket {
                                customer,
                                conversation,
                                account: &account,
                                assignee: agent,
                                group,
                                summary: &summary,
                                actor: &actor,
                                at,
                            };
                            open_ticket_in(txn, &t).await
                        })
                    },
                    WRITE_TIMEOUT,
                )
                .await
                .ok()
        }
        None => None,
    };
    let (ticket, created) = match shared {
        Some(done) => done,
        // Alone, or after a race with another instance (the unique index):
        // the store's own path adds to the ticket found.
        None => {
            ctx.pipeline
                .store()
                .open_ticket(&NewTicket {
                    customer,
                    conversation,
                    account: &account,
                    assignee: agent,
                    group,
                    summary: &summary,
                    actor,
                    at,
                })
                .await?
        }
    };
    tracing::info!(
        ticket = ticket.id,
        conversation = ctx.conversation.id,
        created,
        assignee = ?ticket.assignee_agent_id,
        group = ?ticket.group_id,
        "leave-a-message ticket"
    );
    Ok(())
}

/// What the customer asked: their message's text; for a menu click or a
/// picture, what it was; without a message (a transfer found nobody), their
/// latest text in the conversation.
async fn summary_of(ctx: &EffectCtx<'_>) -> Result<String, PipelineError> {
    let text = match ctx.message {
        Some(m) if m.msg_type == "text" => m.content.clone().unwrap_or_default(),
        // A button or menu click asked for the person: what they wrote
        // before says what it is about.
        Some(m) if m.msg_type != "event" => format!(
            "[{}] {}",
            m.msg_type,
            m.content.as_deref().unwrap_or_default()
        ),
        _ => ctx
            .pipeline
            .store()
            .latest_customer_text(ConversationId(ctx.conversation.id))
            .await?
            .unwrap_or_default(),
    };
    let text = text.trim();
    Ok(if text.is_empty() {
        "（无留言 / no message）".to_owned()
    } else {
        shorten(text, SUMMARY_CHARS)
    })
}

/// At most `max` characters, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let mut s = text[..cut].trim_end().to_owned();
            s.push('…');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn summaries_are_cut_on_characters() {
        assert_eq!(shorten("你好", 2), "你好");
        assert_eq!(shorten("你好世界", 2), "你好…");
        assert_eq!(shorten("ab cd", 3), "ab…");
    }
}
