//! Satisfaction survey results, for supervisors and admins:
//! `GET /api/surveys?agent_id=<id>&since=<RFC 3339>&until=<RFC 3339>` —
//! per agent, surveys sent and answered and the average score (1 = very
//! satisfied … 5 = very dissatisfied: lower is better).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation_api::{json, query};
use crate::auth::{CurrentUser, Role};
use crate::http_error::ApiError;
use crate::ids::AgentId;
use crate::state::AppState;
use crate::store::surveys::SurveyFilter;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/surveys", web::get().to(stats));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    agent_id: Option<i64>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct AgentStats {
    /// `null`: conversations closed with no agent recorded.
    agent_id: Option<AgentId>,
    name: Option<String>,
    sent: u64,
    answered: u64,
    /// Over the answered surveys, two decimals; `null` when none was.
    average_score: Option<f64>,
}

#[derive(Serialize)]
struct Stats {
    agents: Vec<AgentStats>,
}

/// `GET /api/surveys`.
async fn stats(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> actix_web::Result<HttpResponse> {
    user.require(Role::Supervisor)?;
    let q: StatsQuery = query(&req)?;
    let rows = state
        .store
        .survey_stats(&SurveyFilter {
            agent: q.agent_id.map(AgentId),
            since: q.since,
            until: q.until,
        })
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<AgentId> = rows.iter().filter_map(|r| r.agent).collect();
    let mut names = state
        .store
        .agent_names(&ids)
        .await
        .map_err(ApiError::from)?;
    let agents = rows
        .into_iter()
        .map(|r| AgentStats {
            name: r.agent.and_then(|a| names.remove(&a)),
            agent_id: r.agent,
            sent: r.sent,
            answered: r.answered,
            average_score: (r.answered > 0)
                .then(|| (r.score_sum as f64 / r.answered as f64 * 100.0).round() / 100.0),
        })
        .collect();
    Ok(json(&Stats { agents }))
}
