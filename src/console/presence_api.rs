//! The signed-in user's presence, for the console's scripts (any role):
//!
//! - `POST /api/presence` `{"status": "idle" | "busy" | "break" | "offline"}`
//!   sets what they are doing;
//! - `POST /api/presence/heartbeat` tells Kefu their console is still open
//!   (a console silent for `routing.presence_grace_secs` goes offline).
//!
//! Both answer `{"agent": 7, "status": "idle"}`. See
//! [`crate::routing::presence`] for what follows.

use actix_web::{HttpResponse, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::CurrentUser;
use crate::http_error::{ApiError, Code};
use crate::ids::AgentId;
use crate::routing::AgentStatus;
use crate::routing::presence::PresenceError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/presence", web::post().to(set))
        .route("/api/presence/heartbeat", web::post().to(heartbeat));
}

/// The body of `POST /api/presence`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    status: AgentStatus,
}

#[derive(Serialize)]
struct PresenceAnswer {
    agent: AgentId,
    status: AgentStatus,
}

/// A JSON body, read once the user is known (a stranger learns nothing
/// about what the body should be).
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))
}

/// A JSON answer that is never cached.
pub(crate) fn json_ok(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

fn refused(e: PresenceError) -> ApiError {
    match e {
        // Their session outlived their row: nothing to set.
        PresenceError::UnknownAgent => ApiError::new(Code::NotFound, "no such agent"),
        PresenceError::Store(e) => ApiError::internal(e),
    }
}

async fn set(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let PresenceBody { status } = json_body(&body)?;
    state
        .presence
        .set(user.agent_id, status)
        .await
        .map_err(refused)?;
    Ok(json_ok(&PresenceAnswer {
        agent: user.agent_id,
        status,
    }))
}

async fn heartbeat(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let status = state
        .presence
        .heartbeat(user.agent_id)
        .await
        .map_err(refused)?;
    Ok(json_ok(&PresenceAnswer {
        agent: user.agent_id,
        status,
    }))
}
