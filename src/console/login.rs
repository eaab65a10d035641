//! Signing in and out: `GET`/`POST /login`, `POST /logout`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::i18n::{Lang, Strings};
use super::{LangLink, html, redirect};
use crate::auth::credentials::{self, Lockout, Verdict};
use crate::auth::extract::{authenticate, login_location};
use crate::auth::session::{self, Client, Policy};
use crate::auth::{AuthError, CsrfForm, NoFields, csrf};
use crate::http_error::Code;
use crate::state::AppState;

/// Longest `next` path accepted.
const MAX_NEXT: usize = 2048;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/login")
            .route(web::get().to(show))
            .route(web::post().to(submit)),
    )
    .route("/logout", web::post().to(logout));
}

/// `next` if it is a path on this site, else `/`: never an absolute URL,
/// a protocol-relative `//host`, or anything a browser might read as one.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.len() <= MAX_NEXT
                && n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n
        }
        _ => "/",
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'static Strings,
    csrf: &'a str,
    next: &'a str,
    login: &'a str,
    error: Option<&'static str>,
    needs_setup: bool,
    lang_link: LangLink,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    next: Option<String>,
}

/// Everything a rendering of the form needs besides the status.
struct Form<'a> {
    lang: Lang,
    csrf: &'a str,
    next: &'a str,
    login: &'a str,
    error: Option<&'static str>,
}

async fn render(state: &AppState, status: StatusCode, form: Form<'_>) -> HttpResponse {
    let needs_setup = state.store.needs_setup().await.unwrap_or(false);
    html(
        status,
        &LoginPage {
            t: form.lang.strings(),
            csrf: form.csrf,
            next: form.next,
            login: form.login,
            error: form.error,
            needs_setup,
            lang_link: LangLink::new(form.lang, &login_location(Some(form.next))),
        },
    )
}

/// The sign-in form; a signed-in user goes straight on.
async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if authenticate(&req).await.is_ok() {
        return redirect(next);
    }
    let policy = Policy::from_settings(&state.settings);
    let token = req
        .cookie(csrf::LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| csrf::well_formed(v))
        .unwrap_or_else(csrf::generate);
    let form = Form {
        lang: Lang::detect(&req),
        csrf: &token,
        next,
        login: "",
        error: None,
    };
    let mut res = render(&state, StatusCode::OK, form).await;
    let _ = res.add_cookie(&csrf::login_cookie(&token, policy.secure));
    res
}

/// Checks the form's token, then the credentials; on success opens a
/// session and goes to `next`.
async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let lang = Lang::detect(&req);
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let bound = req
        .cookie(csrf::LOGIN_COOKIE)
        .is_some_and(|c| csrf::matches(c.value(), &form.csrf_token));
    if !bound {
        return AuthError::Csrf { api: false, lang }.error_response();
    }
    let now = Utc::now();
    let lockout = Lockout::new(&state.settings.console);
    let verdict =
        credentials::sign_in(&state.store, &lockout, &form.login, form.password, now).await;
    let refused = |error: &'static str| Form {
        lang,
        csrf: &form.csrf_token,
        next,
        login: &form.login,
        error: Some(error),
    };
    let t = lang.strings();
    let agent = match verdict {
        Ok(Verdict::Accepted(agent)) => agent,
        Ok(Verdict::Refused) => {
            tracing::info!("sign-in refused");
            return render(&state, Code::Unauthorized.status(), refused(t.login_failed)).await;
        }
        Ok(Verdict::Locked) => {
            tracing::warn!("sign-in refused: login locked after repeated failures");
            return render(&state, Code::TooManyRequests.status(), refused(t.locked)).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in could not be checked");
            return AuthError::Unavailable.error_response();
        }
    };

    let policy = Policy::from_settings(&state.settings);
    // A session this browser had before is replaced, never reused.
    if let Some(old) = req.cookie(session::COOKIE)
        && let Err(e) = session::end(&state.store, old.value()).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    if let Err(e) = session::purge(&state.store, &policy, now).await {
        tracing::warn!(error = %e, "could not purge expired sessions");
    }
    // Informational only: behind a proxy this is what the proxy reports.
    let ip = req
        .connection_info()
        .realip_remote_addr()
        .map(str::to_owned);
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let client = Client {
        ip: ip.as_deref(),
        user_agent,
    };
    match session::start(&state.store, &policy, agent, &client, now).await {
        Ok(token) => {
            tracing::info!(agent_id = %agent, "signed in");
            let mut res = redirect(next);
            let _ = res.add_cookie(&session::cookie(&token, &policy));
            let _ = res.add_cookie(&csrf::login_cookie_removal(policy.secure));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "could not open a session");
            AuthError::Unavailable.error_response()
        }
    }
}

/// Ends the session (CSRF-checked) and returns to the sign-in page.
async fn logout(state: web::Data<AppState>, post: CsrfForm<NoFields>) -> HttpResponse {
    let policy = Policy::from_settings(&state.settings);
    if let Err(e) = state.store.delete_session(post.user.session_id()).await {
        tracing::error!(error = %e, "could not end the session");
        return AuthError::Unavailable.error_response();
    }
    let sockets = state.hub.end_session(post.user.session_id());
    tracing::info!(agent_id = %post.user.agent_id, sockets, "signed out");
    let mut res = redirect("/login");
    let _ = res.add_cookie(&session::removal(&policy));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        for ok in [
            "/",
            "/admin",
            "/account/password?x=1",
            "/a/b%2F%2Fc",
            "/客服",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/\tevil",
            "/ //evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(MAX_NEXT)))), "/");
    }
}
