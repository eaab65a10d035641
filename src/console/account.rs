//! The signed-in user's own account: `GET`/`POST /account/password`, and
//! `GET /api/me` for scripts.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::i18n::Strings;
use super::{LangLink, html};
use crate::auth::credentials::{self, Lockout, PasswordChange, Requester};
use crate::auth::password::{self, PasswordError};
use crate::auth::{AuthError, CsrfForm, CurrentUser};
use crate::http_error::Code;
use crate::ids::AgentId;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/account/password")
            .route(web::get().to(show))
            .route(web::post().to(submit)),
    )
    .route("/api/me", web::get().to(me));
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    t: &'static Strings,
    csrf: &'a str,
    min_len: usize,
    min_len_hint: String,
    error: Option<String>,
    done: bool,
    lang_link: LangLink,
}

impl<'a> PasswordPage<'a> {
    fn new(user: &'a CurrentUser) -> Self {
        let t = user.lang().strings();
        PasswordPage {
            t,
            csrf: &user.csrf,
            min_len: password::MIN_LEN,
            min_len_hint: t.min_len_hint(password::MIN_LEN),
            error: None,
            done: false,
            lang_link: LangLink::new(user.lang(), "/account/password"),
        }
    }
}

/// The fields of the change-password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// The form.
async fn show(user: CurrentUser) -> HttpResponse {
    html(StatusCode::OK, &PasswordPage::new(&user))
}

/// Checks the current password and stores the new one; the user's other
/// sessions end, this one stays.
async fn submit(state: web::Data<AppState>, post: CsrfForm<PasswordForm>) -> HttpResponse {
    let CsrfForm { user, form } = post;
    let t = user.lang().strings();
    let refuse = |status: StatusCode, error: String| {
        let mut page = PasswordPage::new(&user);
        page.error = Some(error);
        html(status, &page)
    };
    if form.new != form.confirm {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, t.mismatch.to_owned());
    }
    let lockout = Lockout::new(&state.settings.console);
    let who = Requester {
        agent: user.agent_id,
        login: &user.login,
        session_id: user.session_id(),
    };
    let outcome = credentials::change_password(
        &state.store,
        &lockout,
        who,
        form.current,
        form.new,
        Utc::now(),
    )
    .await;
    match outcome {
        Ok(PasswordChange::Changed) => {
            tracing::info!(agent_id = %user.agent_id, "password changed; other sessions ended");
            let mut page = PasswordPage::new(&user);
            page.done = true;
            html(StatusCode::OK, &page)
        }
        Ok(PasswordChange::WrongCurrent) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, t.wrong_current.to_owned())
        }
        Ok(PasswordChange::Locked) => refuse(Code::TooManyRequests.status(), t.locked.to_owned()),
        Ok(PasswordChange::Same) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, t.same_password.to_owned())
        }
        Ok(PasswordChange::Policy(PasswordError::TooShort)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            t.too_short(password::MIN_LEN),
        ),
        Ok(PasswordChange::Policy(PasswordError::TooLong)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            t.too_long(password::MAX_LEN),
        ),
        Ok(PasswordChange::Policy(PasswordError::Hash)) => {
            tracing::error!("password hashing failed");
            HttpResponse::InternalServerError().finish()
        }
        Err(e) => {
            tracing::error!(error = %e, "password change failed");
            AuthError::Unavailable.error_response()
        }
    }
}

/// Who is signed in, for the console's scripts.
#[derive(Serialize)]
struct Me<'a> {
    agent_id: AgentId,
    login: &'a str,
    name: &'a str,
    role: &'static str,
}

async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Me {
            agent_id: user.agent_id,
            login: &user.login,
            name: &user.name,
            role: user.role.as_str(),
        })
}
