//! Administration, admins only: `GET /admin`, the users and city groups,
//! managed by `admin.js` through `/api/admin/*` (`admin_api`), the shared
//! quick replies (`quick_reply_api`) and the configured WeChat accounts,
//! read-only (`accounts_api`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;

use super::i18n::Strings;
use super::{LangLink, html};
use crate::auth::{AuthError, CurrentUser, Role};
use crate::state::AppState;
use crate::store::agents::AgentSummary;

static SCRIPT: &str = include_str!("../../templates/static/admin.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(users)).route(
        "/static/admin.js",
        web::get()
            .to(|| async { super::workbench::asset(SCRIPT, "text/javascript; charset=utf-8") }),
    );
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    t: &'static Strings,
    agents: &'a [AgentSummary],
    lang_link: LangLink,
    user: &'a CurrentUser,
    strings_json: String,
}

/// Every user with their login, name, role and status.
async fn users(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, AuthError> {
    user.require(Role::Admin)?;
    let agents = match state.store.list_agents().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not list users");
            return Ok(AuthError::Unavailable.error_response());
        }
    };
    Ok(html(
        StatusCode::OK,
        &UsersPage {
            t: user.lang().strings(),
            agents: &agents,
            lang_link: LangLink::new(user.lang(), "/admin"),
            user: &user,
            strings_json: user.lang().admin().script_json(),
        },
    ))
}
