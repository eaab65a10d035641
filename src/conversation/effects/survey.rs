//! The satisfaction survey: sent after a close, answered by a reply.
//!
//! After a close by an agent or a timeout (the state machine asks for it
//! only then), a survey row is stored and the customer gets a text asking
//! for a score from 1 (very satisfied) to 5 (very dissatisfied). The web
//! widget shows the same text with a button per score (each sends its
//! digit, as a WeChat customer would type it). A message to the closed conversation
//! within `routing.survey_window_mins` that reads as a score answers it
//! (the conversation stays closed); anything else reopens the conversation
//! as usual, and the survey stays unanswered.

use chrono::{TimeDelta, Utc};

use super::EffectCtx;
use super::notices::{send_text, transition_key};
use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::conversation::state::ConversationState;
use crate::ids::{ConversationId, CustomerId};
use crate::store::entities::{conversations, messages};
use crate::store::messages::Channel;

/// What WeChat customers are asked after a close.
pub const SURVEY_TEXT: &str =
    "请对本次服务评价：回复 1 非常满意，2 满意，3 一般，4 不满意，5 非常不满意";

/// The answer to an answer.
pub const THANKS_TEXT: &str = "感谢您的评价！";

/// The longest comment kept, in characters.
const COMMENT_CHARS: usize = 500;

/// Sends the survey, channel-appropriate.
pub async fn send(ctx: &EffectCtx<'_>) -> Result<(), PipelineError> {
    let channel = ctx.conversation.channel.as_str();
    if ![Channel::OfficialAccount, Channel::WecomKf, Channel::Web]
        .iter()
        .any(|c| c.as_str() == channel)
    {
        return Ok(());
    }
    let agent = match ctx.from {
        ConversationState::Assigned(a) => Some(a),
        _ => None,
    };
    let survey = ctx
        .pipeline
        .store()
        .create_survey(
            ConversationId(ctx.conversation.id),
            ctx.customer,
            agent,
            Utc::now(),
        )
        .await?;
    tracing::debug!(
        survey = survey.id,
        conversation = ctx.conversation.id,
        "survey sent"
    );
    let key = transition_key(ctx, "survey");
    send_text(ctx.pipeline, ctx.conversation, SURVEY_TEXT, &key).await
}

/// A message to a closed conversation: when it answers a pending survey,
/// records the answer, thanks the customer and returns `true` (the
/// conversation stays closed).
pub async fn try_answer(
    pipeline: &Pipeline,
    conversation: &conversations::Model,
    message: &messages::Model,
) -> Result<bool, PipelineError> {
    if message.msg_type != "text" {
        return Ok(false);
    }
    let Some((score, comment)) = message.content.as_deref().and_then(parse_answer) else {
        return Ok(false);
    };
    let now = Utc::now();
    let window = i64::try_from(pipeline.settings().survey_window_mins)
        .ok()
        .and_then(TimeDelta::try_minutes)
        .unwrap_or(TimeDelta::MAX);
    let since = now
        .checked_sub_signed(window)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let store = pipeline.store();
    let id = ConversationId(conversation.id);
    let Some(survey) = store.pending_survey(id, since).await? else {
        return Ok(false);
    };
    if !store
        .answer_survey(survey.id, score, comment.as_deref(), now)
        .await?
    {
        // Answered meanwhile (a quick second reply): this one is a message.
        return Ok(false);
    }
    tracing::info!(
        survey = survey.id,
        conversation = conversation.id,
        customer = %CustomerId(conversation.customer_id),
        score,
        "survey answered"
    );
    if let Err(e) = store
        .report_survey(
            CustomerId(conversation.customer_id),
            survey.agent_id.map(crate::ids::AgentId),
            conversation.id,
            score,
            comment.as_deref(),
        )
        .await
    {
        tracing::warn!(survey = survey.id, error = %e, "survey answer not recorded for the CRM");
    }
    let key = format!("survey-thanks:s{}", survey.id);
    if let Err(e) = send_text(pipeline, conversation, THANKS_TEXT, &key).await {
        // The answer is recorded; only the thanks is lost.
        tracing::warn!(survey = survey.id, error = %e, "could not thank for a survey answer");
    }
    Ok(true)
}

/// Reads a reply as a survey answer: a score 1–5 (ASCII or full-width
/// digit, white space around it allowed), alone or followed by a separator
/// (space, punctuation) and a comment: `1`, `２`, ` 3 `, `4，回复太慢了`.
/// A digit followed directly by anything else (`10`, `3点到`) is not an
/// answer: "3点能到吗" is a question, not a score.
pub fn parse_answer(text: &str) -> Option<(i32, Option<String>)> {
    let t = text.trim();
    let mut chars = t.chars();
    let score = match chars.next()? {
        c @ '1'..='5' => c as i32 - '0' as i32,
        c @ '１'..='５' => c as i32 - '１' as i32 + 1,
        _ => return None,
    };
    let rest = chars.as_str();
    let Some(next) = rest.chars().next() else {
        return Some((score, None));
    };
    if !(next.is_whitespace() || is_separator(next)) {
        return None;
    }
    let comment = rest.trim_matches(|c: char| c.is_whitespace() || is_separator(c));
    Some((
        score,
        (!comment.is_empty()).then(|| comment.chars().take(COMMENT_CHARS).collect()),
    ))
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        ',' | '，'
            | '.'
            | '。'
            | '、'
            | ':'
            | '：'
            | ';'
            | '；'
            | '!'
            | '！'
            | '-'
            | '—'
            | '~'
            | '～'
            | '/'
    )
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn scores_are_read_with_full_width_digits_and_comments() {
        assert_eq!(parse_answer("1"), Some((1, None)));
        assert_eq!(parse_answer(" 5\n"), Some((5, None)));
        assert_eq!(parse_answer("\u{3000}３\u{3000}"), Some((3, None)));
        assert_eq!(parse_answer("２。"), Some((2, None)));
        assert_eq!(
            parse_answer("4，回复太慢了"),
            Some((4, Some("回复太慢了".into())))
        );
        assert_eq!(
            parse_answer("1 very helpful!"),
            Some((1, Some("very helpful".into())))
        );
    }

    #[test]
    fn other_replies_are_not_scores() {
        for text in ["", "0", "6", "10", "12", "3点能到吗", "好的", "a1", "一"] {
            assert_eq!(parse_answer(text), None, "{text:?}");
        }
    }
}
