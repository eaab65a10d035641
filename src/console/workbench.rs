//! The workbench page (`GET /workbench`) and its script and style, served
//! from the binary (`/static/…`). The page is a shell: the script loads the
//! state from `/api/workbench` and follows `/api/ws` (`docs/workbench.md`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;

use super::i18n::{Strings, WorkbenchStrings};
use super::{LangLink, html};
use crate::auth::CurrentUser;

static SCRIPT: &str = include_str!("../../templates/static/workbench.js");
static STYLE: &str = include_str!("../../templates/static/workbench.css");
static SHARED: &str = include_str!("../../templates/static/kefu.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/workbench", web::get().to(page))
        .route(
            "/static/workbench.js",
            web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/kefu.js",
            web::get().to(|| async { asset(SHARED, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/workbench.css",
            web::get().to(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        );
}

pub(crate) fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut res = HttpResponse::Ok().content_type(content_type).body(body);
    let h = res.headers_mut();
    // Changes with each release; a short cache is enough.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[derive(Template)]
#[template(path = "workbench.html")]
struct Page<'a> {
    t: &'static Strings,
    w: &'static WorkbenchStrings,
    user: &'a CurrentUser,
    strings_json: String,
    lang_link: LangLink,
}

async fn page(user: CurrentUser) -> HttpResponse {
    let lang = user.lang();
    let w = lang.workbench();
    html(
        StatusCode::OK,
        &Page {
            t: lang.strings(),
            w,
            strings_json: w.script_json(),
            lang_link: LangLink::new(lang, "/workbench"),
            user: &user,
        },
    )
}
