//! First run: a one-time link lets the first administrator choose a
//! password. There is no default password.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::html;
use crate::auth::{password, token};
use crate::state::AppState;
use crate::store::setup::SetupRefused;
use crate::store::{Store, StoreError};

/// How long a printed setup link stays valid.
pub const LINK_LIFETIME_HOURS: i64 = 24;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/setup/{token}")
            .route(web::get().to(show))
            .route(web::post().to(submit)),
    );
}

/// If no administrator exists, makes a new one-time link (replacing any
/// earlier unused one) and returns it.
pub async fn issue_link_if_needed(
    store: &Store,
    public_url: &str,
) -> Result<Option<String>, StoreError> {
    if !store.needs_setup().await? {
        return Ok(None);
    }
    let t = token::generate();
    store
        .replace_setup_token(
            &token::digest(&t),
            Utc::now() + Duration::hours(LINK_LIFETIME_HOURS),
        )
        .await?;
    Ok(Some(format!("{public_url}/setup/{t}")))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    login: &'a str,
    name: &'a str,
    error: Option<String>,
    min_len: usize,
}

#[derive(Template)]
#[template(path = "setup_done.html")]
struct DonePage<'a> {
    login: &'a str,
}

#[derive(Template)]
#[template(path = "setup_invalid.html")]
struct InvalidPage;

#[derive(Deserialize)]
pub struct SetupForm {
    login: String,
    name: String,
    password: String,
    confirm: String,
}

/// The token sits in the URL: never let it leave in a Referer header.
fn private(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn show(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let valid = async {
        Ok::<_, StoreError>(
            state.store.needs_setup().await?
                && state.store.setup_token_valid(&token::digest(&path)).await?,
        )
    };
    private(match valid.await {
        Ok(true) => html(
            StatusCode::OK,
            &SetupPage {
                login: "admin",
                name: "",
                error: None,
                min_len: password::MIN_LEN,
            },
        ),
        Ok(false) => html(StatusCode::GONE, &InvalidPage),
        Err(e) => {
            tracing::error!(error = %e, "setup page: database error");
            HttpResponse::ServiceUnavailable().finish()
        }
    })
}

fn validate(form: &SetupForm) -> Result<(), String> {
    let login_ok = (3..=64).contains(&form.login.len())
        && form
            .login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !login_ok {
        return Err("登录名须为 3–64 个小写字母、数字或 . _ - · The login must be 3–64 lowercase letters, digits or . _ -".into());
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err("请填写姓名（最多 64 字）· Enter a name (at most 64 characters)".into());
    }
    if form.password != form.confirm {
        return Err("两次输入的密码不一致 · The passwords do not match".into());
    }
    Ok(())
}

async fn submit(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<SetupForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let again = |error: String| {
        private(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                login: &form.login,
                name: &form.name,
                error: Some(error),
                min_len: password::MIN_LEN,
            },
        ))
    };
    if let Err(msg) = validate(&form) {
        return again(msg);
    }
    let pw = form.password.clone();
    let hashed = match web::block(move || password::hash(&pw)).await {
        Ok(Ok(h)) => h,
        Ok(Err(password::PasswordError::TooShort)) => {
            return again(format!(
                "密码至少 {0} 个字符 · The password must be at least {0} characters",
                password::MIN_LEN
            ));
        }
        Ok(Err(e)) => return again(e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "setup: hashing task failed");
            return HttpResponse::InternalServerError().finish();
        }
    };
    match state
        .store
        .complete_setup(
            &token::digest(&path),
            &form.login,
            form.name.trim(),
            &hashed,
        )
        .await
    {
        Ok(id) => {
            tracing::info!(agent_id = %id, login = %form.login, "first administrator created; setup link spent");
            private(html(StatusCode::OK, &DonePage { login: &form.login }))
        }
        Err(SetupRefused::InvalidToken | SetupRefused::AdminExists) => {
            private(html(StatusCode::GONE, &InvalidPage))
        }
        Err(SetupRefused::LoginTaken) => again("该登录名已被使用 · That login is taken".into()),
        Err(SetupRefused::Store(e)) => {
            tracing::error!(error = %e, "setup: database error");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}
