//! The web console: pages for agents, supervisors and admins. So far the
//! first-run setup, sign-in and sign-out, the console home, the account's
//! password, and the admin's user list; and the JSON API under `/api/` for
//! conversations (close, transfer, history), tickets and survey results,
//! agents' presence, and routing (agents, queue, shifts, region map).

pub mod account;
pub mod accounts_api;
pub mod admin;
pub mod admin_api;
pub mod board;
pub mod conversation_api;
pub mod customer_api;
pub mod health;
pub mod i18n;
pub mod login;
pub mod media_api;
pub mod note_api;
pub mod presence_api;
pub mod quick_reply_api;
pub mod realtime;
pub mod routing_api;
pub mod search_api;
pub mod setup;
pub mod survey_api;
pub mod ticket_api;
pub mod workbench;
pub mod workbench_api;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::{CurrentUser, Role};
use i18n::{Lang, Strings};

/// Registers the console's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/lang/{code}", web::get().to(switch_language));
    login::routes(cfg);
    account::routes(cfg);
    admin::routes(cfg);
    admin_api::routes(cfg);
    accounts_api::routes(cfg);
    setup::routes(cfg);
    health::routes(cfg);
    presence_api::routes(cfg);
    routing_api::routes(cfg);
    conversation_api::routes(cfg);
    customer_api::routes(cfg);
    ticket_api::routes(cfg);
    survey_api::routes(cfg);
    realtime::routes(cfg);
    workbench_api::routes(cfg);
    media_api::routes(cfg);
    quick_reply_api::routes(cfg);
    workbench::routes(cfg);
    board::routes(cfg);
    search_api::routes(cfg);
    note_api::routes(cfg);
}

/// What every console page may load: its own resources, inline styles, no
/// framing, forms posting only to Kefu.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers of every console response: never cached, never framed.
fn secure_headers(res: &mut HttpResponse) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
}

/// Renders a template with a status; a render failure is a logged 500.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => {
            let mut res = HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body);
            secure_headers(&mut res);
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The body of a redirect, for clients that do not follow it.
const REDIRECT_BODY: &str = "<!doctype html><meta charset=\"utf-8\"><title>Kefu</title>\
     <p><a href=\"/\">Kefu 客服</a></p>";

/// A `303 See Other` to a local path (only ever built by Kefu).
pub(crate) fn redirect(to: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther()
        .content_type("text/html; charset=utf-8")
        .body(REDIRECT_BODY);
    secure_headers(&mut res);
    match HeaderValue::from_str(to) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    res
}

/// The link to the same page in the other language.
pub(crate) struct LangLink {
    pub href: String,
    pub label: &'static str,
}

impl LangLink {
    /// Switches from `lang` and comes back to `back` (a local path).
    pub(crate) fn new(lang: Lang, back: &str) -> LangLink {
        let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        LangLink {
            href: format!("/lang/{}?next={next}", lang.other().code()),
            label: lang.strings().other_language,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    t: &'static Strings,
    user: &'a CurrentUser,
    role: &'static str,
    is_admin: bool,
    is_supervisor: bool,
    lang_link: LangLink,
}

/// The console home of a signed-in user; others go to the sign-in page.
async fn home(user: CurrentUser) -> HttpResponse {
    let t = user.lang().strings();
    html(
        StatusCode::OK,
        &HomePage {
            t,
            role: t.role(user.role),
            is_admin: user.role.at_least(Role::Admin),
            is_supervisor: user.role.at_least(Role::Supervisor),
            lang_link: LangLink::new(user.lang(), "/"),
            user: &user,
        },
    )
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Remembers a language choice in the `lang` cookie and goes back.
async fn switch_language(code: web::Path<String>, query: web::Query<NextQuery>) -> HttpResponse {
    let back = login::safe_next(query.next.as_deref());
    let mut res = redirect(back);
    if let Some(lang) = Lang::from_tag(&code) {
        let cookie = Cookie::build(i18n::COOKIE, lang.code())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::days(365))
            .finish();
        let _ = res.add_cookie(&cookie);
    }
    res
}
