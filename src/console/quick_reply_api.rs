//! Quick replies (see `docs/workbench.md`):
//!
//! - `GET /api/quick-replies[?conversation=ID]`: the shared ones, then mine;
//!   with a conversation I may see, each also `rendered` for its customer
//!   (`{customer_name}` / `{客户}`, `{agent_name}` / `{客服}`);
//! - `POST /api/quick-replies` `{"title", "content", "shared": false}`: a
//!   new one, mine, or shared (supervisors and admins);
//! - `PUT` / `DELETE /api/quick-replies/{id}`: my own, or a shared one
//!   (supervisors and admins).
//!
//! A title is one line of 1 to 64 characters, a content 1 to 2,000 (line
//! breaks and tabs allowed, no other control characters); at most 200 of
//! one's own and 500 shared. Refusals are JSON (`bad_request`, `conflict`,
//! `forbidden`) saying what is wrong.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::conversation_api::{conversation_for, json, query};
use crate::auth::{CurrentUser, Role};
use crate::http_error::{ApiError, Code};
use crate::ids::{ConversationId, CustomerId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::entities::quick_replies;

/// Longest title and content, in characters.
const TITLE_CHARS: usize = 64;
const CONTENT_CHARS: usize = 2_000;
/// Most quick replies an agent may keep of their own.
pub const MAX_OWN: u64 = 200;
/// Most shared quick replies: the workbench lists them all in one menu.
pub const MAX_SHARED: u64 = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/quick-replies")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/api/quick-replies/{id}")
            .route(web::put().to(update))
            .route(web::delete().to(remove)),
    );
}

/// Fills the variables of a quick reply.
pub fn render(content: &str, customer_name: Option<&str>, agent_name: &str) -> String {
    let customer = customer_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("客户");
    content
        .replace("{customer_name}", customer)
        .replace("{客户}", customer)
        .replace("{agent_name}", agent_name)
        .replace("{客服}", agent_name)
}

#[derive(Serialize)]
struct View {
    id: i64,
    title: String,
    content: String,
    shared: bool,
    /// I may change or delete it.
    editable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rendered: Option<String>,
}

fn may_edit(user: &CurrentUser, r: &quick_replies::Model) -> bool {
    match r.owner_agent_id {
        Some(owner) => owner == user.agent_id.0,
        None => user.role.at_least(Role::Supervisor),
    }
}

fn view(user: &CurrentUser, r: quick_replies::Model, rendered: Option<String>) -> View {
    View {
        editable: may_edit(user, &r),
        id: r.id,
        title: r.title,
        content: r.content,
        shared: r.owner_agent_id.is_none(),
        rendered,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    conversation: Option<i64>,
}

async fn list(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let customer_name = match q.conversation {
        Some(id) => {
            let conv = conversation_for(&state, &user, ConversationId(id)).await?;
            Some(
                state
                    .store
                    .customer(CustomerId(conv.customer_id))
                    .await?
                    .name,
            )
        }
        None => None,
    };
    let replies: Vec<View> = state
        .store
        .quick_replies_for(user.agent_id)
        .await?
        .into_iter()
        .map(|r| {
            let rendered = customer_name
                .as_ref()
                .map(|n| render(&r.content, n.as_deref(), &user.name));
            view(&user, r, rendered)
        })
        .collect();
    Ok(json(&serde_json::json!({ "replies": replies })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    title: String,
    content: String,
    #[serde(default)]
    shared: bool,
}

/// Trimmed title and content within their limits.
fn checked(b: &Body) -> Result<(String, String), ApiError> {
    let title = b.title.trim();
    let content = b.content.trim();
    if title.is_empty() || title.chars().count() > TITLE_CHARS {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("title must be 1 to {TITLE_CHARS} characters"),
        ));
    }
    // A title is one line in a menu.
    if title.chars().any(char::is_control) {
        return Err(ApiError::new(
            Code::BadRequest,
            "title must be one line, without control characters",
        ));
    }
    if content.is_empty() || content.chars().count() > CONTENT_CHARS {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("content must be 1 to {CONTENT_CHARS} characters"),
        ));
    }
    // Line breaks and tabs are text; other control characters are not.
    if content
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::new(
            Code::BadRequest,
            "content must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok((title.to_owned(), content.to_owned()))
}

async fn create(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<Body>,
) -> Result<HttpResponse, ApiError> {
    let (title, content) = checked(&body)?;
    let owner = if body.shared {
        if !user.role.at_least(Role::Supervisor) {
            return Err(ApiError::new(
                Code::Forbidden,
                "shared quick replies are kept by supervisors and admins",
            ));
        }
        if state.store.shared_quick_replies().await? >= MAX_SHARED {
            return Err(ApiError::new(
                Code::Conflict,
                format!("at most {MAX_SHARED} shared quick replies: delete some first"),
            ));
        }
        None
    } else {
        if state.store.own_quick_replies(user.agent_id).await? >= MAX_OWN {
            return Err(ApiError::new(
                Code::Conflict,
                format!("at most {MAX_OWN} quick replies of your own: delete some first"),
            ));
        }
        Some(user.agent_id)
    };
    let row = state
        .store
        .create_quick_reply(owner, &title, &content)
        .await?;
    Ok(json(&view(&user, row, None)))
}

/// The quick reply, if `user` may change it.
async fn editable(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
) -> Result<quick_replies::Model, ApiError> {
    let row = match state.store.quick_reply(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(Code::NotFound, "no such quick reply"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    // Another agent's own replies are not even there for me.
    if row.owner_agent_id.is_some_and(|o| o != user.agent_id.0) {
        return Err(ApiError::new(Code::NotFound, "no such quick reply"));
    }
    if !may_edit(user, &row) {
        return Err(ApiError::new(
            Code::Forbidden,
            "shared quick replies are kept by supervisors and admins",
        ));
    }
    Ok(row)
}

async fn update(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
    body: web::Json<Body>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    editable(&state, &user, id).await?;
    let (title, content) = checked(&body)?;
    let row = state.store.update_quick_reply(id, &title, &content).await?;
    Ok(json(&view(&user, row, None)))
}

async fn remove(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    editable(&state, &user, id).await?;
    state.store.delete_quick_reply(id).await?;
    Ok(json(&serde_json::json!({ "deleted": id })))
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn variables_are_filled_in_both_spellings() {
        assert_eq!(
            render("{customer_name}您好，我是{客服}", Some("王先生"), "小李"),
            "王先生您好，我是小李"
        );
        assert_eq!(
            render("{客户}您好 {agent_name}", Some("  "), "Li"),
            "客户您好 Li"
        );
        assert_eq!(render("无变量", None, "Li"), "无变量");
    }
}
