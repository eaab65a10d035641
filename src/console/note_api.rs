//! `POST /api/conversations/{id}/notes` `{"client_id": "…", "text": "…"}`:
//! an internal note in the conversation, for the other staff only (see
//! [`crate::store::notes`]). Allowed to whoever may see the conversation
//! (its agent, the agent who served it last, supervisors of its group,
//! admins), in any state. Shown at once to the conversation's agent and
//! to whoever watches it; a retried client id is stored once.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::conversation_api::{conversation_for, json};
use super::workbench_api::checked_client_id;
use crate::auth::CurrentUser;
use crate::bus::{Event, FiledMessage};
use crate::http_error::{ApiError, Code};
use crate::ids::{ConversationId, CustomerId, MessageId};
use crate::state::AppState;

/// The longest note, in characters.
pub const NOTE_CHARS: usize = 2000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/conversations/{id}/notes", web::post().to(add));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    client_id: String,
    text: String,
}

#[derive(Serialize)]
struct Noted {
    message_id: MessageId,
    /// The same client id was stored before: nothing new was stored.
    existing: bool,
}

async fn add(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<NoteBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ConversationId(path.into_inner());
    let client_id = checked_client_id(&body.client_id)?;
    let text = body.text.trim();
    if text.is_empty() {
        return Err(ApiError::new(Code::BadRequest, "text: the note is empty"));
    }
    if text.chars().count() > NOTE_CHARS {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("text: at most {NOTE_CHARS} characters"),
        ));
    }
    let conv = conversation_for(&state, &user, id).await?;
    let key = format!("note:{}:{client_id}", user.agent_id);
    let (m, new) = state
        .store
        .add_note(&conv, user.agent_id, &user.login, &key, text)
        .await?;
    if new {
        state.bus.publish(Event::MessageFiled {
            conversation: id,
            customer: CustomerId(conv.customer_id),
            message: FiledMessage::of(&m),
        });
    }
    Ok(json(&Noted {
        message_id: MessageId(m.id),
        existing: !new,
    }))
}
