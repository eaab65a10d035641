//! The web console: pages for agents, supervisors and admins. For now the
//! first-run setup and the landing page.

pub mod health;
pub mod setup;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::state::AppState;

/// Registers the console's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
    setup::routes(cfg);
    health::routes(cfg);
}

/// Renders a template with a status; a render failure is a logged 500.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("X-Frame-Options", "DENY"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    needs_setup: bool,
}

async fn index(state: web::Data<AppState>) -> HttpResponse {
    let needs_setup = state.store.needs_setup().await.unwrap_or(false);
    html(StatusCode::OK, &IndexPage { needs_setup })
}
