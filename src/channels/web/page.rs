//! The widget's front end: the chat page (`GET /widget/chat?key=…`), its
//! script and style (`/widget/static/…`), and the loader a site puts in its
//! pages (`GET /widget.js`), all served from the binary.
//!
//! The chat page is a shell like the workbench: its script starts a visitor
//! session with the visitor API (`docs/widget.md`) and follows the visitor's
//! socket. The loader frames it in a panel behind a chat bubble; mobile
//! sites and app WebViews open it as a plain URL. Only the site's allowed
//! origins may frame it (`frame-ancestors`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Site;
use crate::state::AppState;

static SCRIPT: &str = include_str!("../../../templates/static/widget.js");
static STYLE: &str = include_str!("../../../templates/static/widget.css");
static LOADER: &str = include_str!("../../../templates/static/widget-loader.js");

/// Registers the chat page, its assets and the loader.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/widget/chat", web::get().to(chat))
        .route(
            "/widget/static/widget.js",
            web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/widget/static/widget.css",
            web::get().to(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/widget.js", web::get().to(|| async { loader() }));
}

/// A static file: changes with each release, so cached briefly, by anyone
/// (it is the same for every site and visitor).
fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut res = HttpResponse::Ok().content_type(content_type).body(body);
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The loader runs in the site's pages: a plain cross-origin `<script>`,
/// which needs no CORS; `Cross-Origin-Resource-Policy` lets pages that
/// require it (COEP) load it too.
fn loader() -> HttpResponse {
    let mut res = asset(LOADER, "text/javascript; charset=utf-8");
    res.headers_mut().insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    res
}

#[derive(Deserialize)]
struct ChatQuery {
    key: Option<String>,
    lang: Option<String>,
}

/// The page's language: Chinese unless `lang=en`. The script holds the
/// strings; the page only says which to use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Zh,
    En,
}

impl Lang {
    fn from_query(lang: Option<&str>) -> Lang {
        match lang {
            Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

#[derive(Template)]
#[template(path = "widget.html")]
struct ChatPage<'a> {
    /// None: the key is unknown (the 404 page).
    site: Option<&'a Site>,
    key: &'a str,
    lang: &'static str,
    html_lang: &'static str,
    /// The allowed origins, space-separated: the only parents whose
    /// messages (the signed-in user's token) the page accepts.
    origins: String,
    /// The longest text a visitor may send, in characters.
    max_chars: usize,
}

/// The chat page of the site with the public key `key`; an unknown or
/// missing key: a 404 page that says so.
async fn chat(state: web::Data<AppState>, query: web::Query<ChatQuery>) -> HttpResponse {
    let lang = Lang::from_query(query.lang.as_deref());
    let key = query.key.as_deref().unwrap_or("");
    let site = state.settings.site_by_key(key);
    let page = ChatPage {
        site,
        key,
        lang: lang.code(),
        html_lang: lang.html_lang(),
        origins: site
            .map(|s| s.allowed_origins.join(" "))
            .unwrap_or_default(),
        max_chars: state.settings.widget.max_text_chars,
    };
    let status = if site.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "widget page failed to render");
            return HttpResponse::InternalServerError().finish();
        }
    };
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body);
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    match HeaderValue::from_str(&content_security_policy(site)) {
        Ok(v) => {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        Err(_) => {
            // Origins are checked at load; this cannot happen. Never framed then.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(NOT_FRAMED),
            );
        }
    }
    res
}

/// The console's policy without the framing rule (media and `blob:` for
/// what visitors may be sent later).
const BASE_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

const NOT_FRAMED: &str = "default-src 'none'; frame-ancestors 'none'";

/// The page's policy: framed only by Kefu itself and the site's allowed
/// origins. The 404 page may be framed anywhere: it has nothing to click,
/// and a site whose key is wrong then shows why in its panel.
fn content_security_policy(site: Option<&Site>) -> String {
    match site {
        Some(site) => {
            let mut p = format!("{BASE_POLICY}; frame-ancestors 'self'");
            for o in &site.allowed_origins {
                p.push(' ');
                p.push_str(o);
            }
            p
        }
        None => format!("{BASE_POLICY}; frame-ancestors *"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn site() -> Site {
        crate::config::site::parse(
            Path::new("sites/demo-web.toml"),
            r#"name = "<官网> & co"
public_key = "pk_demo_web_0123456789"
allowed_origins = ["https://www.example.com", "http://127.0.0.1:8080"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_policy_names_the_allowed_origins_as_frame_ancestors() {
        let p = content_security_policy(Some(&site()));
        assert!(
            p.ends_with("; frame-ancestors 'self' https://www.example.com http://127.0.0.1:8080"),
            "{p}"
        );
        assert!(p.contains("script-src 'self';"), "{p}");
        assert!(!p.contains("unsafe-eval"), "{p}");
        assert_eq!(p.matches("frame-ancestors").count(), 1, "{p}");
    }

    #[test]
    fn english_only_when_asked() {
        assert_eq!(Lang::from_query(None), Lang::Zh);
        assert_eq!(Lang::from_query(Some("en")), Lang::En);
        assert_eq!(Lang::from_query(Some("EN")), Lang::En);
        assert_eq!(Lang::from_query(Some("fr")), Lang::Zh);
    }

    #[test]
    fn the_page_escapes_the_site_name_and_carries_no_inline_script() {
        let site = site();
        let html = ChatPage {
            site: Some(&site),
            key: &site.public_key,
            lang: "zh",
            html_lang: "zh-CN",
            origins: site.allowed_origins.join(" "),
            max_chars: 2000,
        }
        .render()
        .unwrap();
        assert!(html.contains("&#60;官网&#62; &#38; co"), "{html}");
        assert!(!html.contains("<官网>"), "{html}");
        assert!(
            html.contains(r#"data-key="pk_demo_web_0123456789""#),
            "{html}"
        );
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains(" src=\""), "inline script: <script{open}>");
            assert!(
                tag[open.len() + 1..].starts_with("</script>"),
                "a script with a body: {tag}"
            );
        }
    }
}
