//! Satisfaction surveys: one row per close of a conversation by an agent or
//! a timeout, answered (or not) by the customer's next message.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::surveys;
use super::{Store, StoreError};
use crate::ids::{AgentId, ConversationId, CustomerId};

/// Which surveys to count.
#[derive(Debug, Clone, Default)]
pub struct SurveyFilter {
    pub agent: Option<AgentId>,
    /// Sent at or after.
    pub since: Option<DateTime<Utc>>,
    /// Sent before.
    pub until: Option<DateTime<Utc>>,
}

/// One agent's surveys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyStats {
    /// `None` for surveys of conversations no agent served.
    pub agent: Option<AgentId>,
    pub sent: u64,
    pub answered: u64,
    /// Sum of the scores (1 = very satisfied … 5 = very dissatisfied).
    pub score_sum: i64,
}

impl Store {
    /// Records a survey sent now.
    pub async fn create_survey(
        &self,
        conversation: ConversationId,
        customer: CustomerId,
        agent: Option<AgentId>,
        at: DateTime<Utc>,
    ) -> Result<surveys::Model, StoreError> {
        Ok(surveys::ActiveModel {
            conversation_id: Set(conversation.0),
            customer_id: Set(customer.0),
            agent_id: Set(agent.map(|a| a.0)),
            sent_at: Set(at),
            answered_at: Set(None),
            score: Set(None),
            comment: Set(None),
            ..Default::default()
        }
        .insert(self.writer())
        .await?)
    }

    /// The conversation's latest survey, if it is unanswered and was sent at
    /// or after `since`: the one a reply may answer.
    pub async fn pending_survey(
        &self,
        conversation: ConversationId,
        since: DateTime<Utc>,
    ) -> Result<Option<surveys::Model>, StoreError> {
        let latest = surveys::Entity::find()
            .filter(surveys::Column::ConversationId.eq(conversation.0))
            .order_by_desc(surveys::Column::Id)
            .limit(1)
            .one(self.conn())
            .await?;
        Ok(latest.filter(|s| s.answered_at.is_none() && s.sent_at >= since))
    }

    /// Records the answer unless the survey was answered already; `true`
    /// when recorded here.
    pub async fn answer_survey(
        &self,
        id: i64,
        score: i32,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(surveys::Entity::update_many()
            .col_expr(surveys::Column::Score, Expr::value(score))
            .col_expr(
                surveys::Column::Comment,
                Expr::value(comment.map(str::to_owned)),
            )
            .col_expr(surveys::Column::AnsweredAt, Expr::value(Some(at)))
            .filter(surveys::Column::Id.eq(id))
            .filter(surveys::Column::AnsweredAt.is_null())
            .exec(self.writer())
            .await?
            .rows_affected
            == 1)
    }

    /// The surveys of a conversation, oldest first.
    pub async fn surveys_of(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<surveys::Model>, StoreError> {
        Ok(surveys::Entity::find()
            .filter(surveys::Column::ConversationId.eq(conversation.0))
            .order_by_asc(surveys::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// Surveys sent and answered, and the sum of the scores, per agent.
    pub async fn survey_stats(&self, f: &SurveyFilter) -> Result<Vec<SurveyStats>, StoreError> {
        let mut q = surveys::Entity::find()
            .select_only()
            .column(surveys::Column::AgentId)
            .column_as(surveys::Column::Id.count(), "sent")
            .column_as(surveys::Column::Score.count(), "answered")
            .column_as(surveys::Column::Score.sum(), "score_sum");
        if let Some(a) = f.agent {
            q = q.filter(surveys::Column::AgentId.eq(a.0));
        }
        if let Some(s) = f.since {
            q = q.filter(surveys::Column::SentAt.gte(s));
        }
        if let Some(u) = f.until {
            q = q.filter(surveys::Column::SentAt.lt(u));
        }
        let rows: Vec<(Option<i64>, i64, i64, Option<i64>)> = q
            .group_by(surveys::Column::AgentId)
            .order_by_asc(surveys::Column::AgentId)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(agent, sent, answered, sum)| SurveyStats {
                agent: agent.map(AgentId),
                sent: u64::try_from(sent).unwrap_or(0),
                answered: u64::try_from(answered).unwrap_or(0),
                score_sum: sum.unwrap_or(0),
            })
            .collect())
    }
}
