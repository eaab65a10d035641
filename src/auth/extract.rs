//! Who is asking: the [`CurrentUser`] extractor, role checks and CSRF checks
//! for handlers.
//!
//! - `CurrentUser` needs a live session. Without one, pages answer a
//!   redirect to `/login?next=…` and paths under `/api/` a 401 JSON error.
//!   On a state-changing method (anything but GET, HEAD, OPTIONS, TRACE) it
//!   also needs the session's token in the `X-CSRF-Token` header, else 403.
//! - [`CsrfForm<T>`] is the extractor for HTML form posts: the user, and the
//!   form `T`, after checking the token of the `csrf_token` field (or of the
//!   header). Handlers taking a form use it *instead of* `CurrentUser`.
//! - [`CurrentUser::require`] refuses (403) users below a role.

use actix_web::dev::Payload;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;

use super::session::{self, Policy};
use super::{Role, csrf};
use crate::console::i18n::{Lang, Strings};
use crate::http_error::{ApiError, Code};
use crate::ids::AgentId;
use crate::state::AppState;

/// The signed-in user of a request.
#[derive(Clone)]
pub struct CurrentUser {
    pub agent_id: AgentId,
    pub login: String,
    pub name: String,
    pub role: Role,
    /// The session's CSRF token, for forms and scripts.
    pub csrf: String,
    session_id: String,
    lang: Lang,
    api: bool,
}

/// Leaves the CSRF token out of logs.
impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("agent_id", &self.agent_id)
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl CurrentUser {
    /// `Ok` when the user has at least `role`; otherwise a 403 (an HTML
    /// page, or JSON under `/api/`).
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.role.at_least(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                api: self.api,
                lang: self.lang,
            })
        }
    }

    /// The stored id of the session (the SHA-256 of its cookie token).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The language the request asked for.
    pub fn lang(&self) -> Lang {
        self.lang
    }
}

/// Why a request was refused before reaching its handler.
#[derive(Debug)]
pub enum AuthError {
    /// No live session: a redirect to the sign-in page (or 401 under `/api/`).
    SignIn {
        api: bool,
        /// Where to come back to after signing in.
        next: Option<String>,
        /// Set when a dead session cookie should be forgotten.
        forget: Option<Box<actix_web::cookie::Cookie<'static>>>,
    },
    /// Signed in, but the role is too low.
    Forbidden { api: bool, lang: Lang },
    /// A state-changing request without the session's CSRF token.
    Csrf { api: bool, lang: Lang },
    /// The session store could not be reached.
    Unavailable,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthError::SignIn { .. } => "not signed in",
            AuthError::Forbidden { .. } => "forbidden for this role",
            AuthError::Csrf { .. } => "missing or wrong CSRF token",
            AuthError::Unavailable => "session store unavailable",
        })
    }
}

/// The page shown for a 403.
#[derive(Template)]
#[template(path = "forbidden.html")]
struct RefusedPage {
    t: &'static Strings,
    title: &'static str,
    text: &'static str,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::SignIn { api: true, .. } => Code::Unauthorized.status(),
            AuthError::SignIn { api: false, .. } => StatusCode::SEE_OTHER,
            AuthError::Forbidden { .. } | AuthError::Csrf { .. } => Code::Forbidden.status(),
            AuthError::Unavailable => Code::Unavailable.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AuthError::SignIn { api, next, forget } => {
                let mut res = if *api {
                    ApiError::new(Code::Unauthorized, "sign in first").error_response()
                } else {
                    crate::console::redirect(&login_location(next.as_deref()))
                };
                if let Some(c) = forget {
                    let _ = res.add_cookie(c);
                }
                res
            }
            AuthError::Forbidden { api: true, .. } => {
                ApiError::new(Code::Forbidden, "your role may not do this").error_response()
            }
            AuthError::Csrf { api: true, .. } => {
                ApiError::new(Code::Forbidden, "missing or wrong CSRF token").error_response()
            }
            AuthError::Forbidden { api: false, lang } => {
                let t = lang.strings();
                crate::console::html(
                    self.status_code(),
                    &RefusedPage {
                        t,
                        title: t.forbidden_title,
                        text: t.forbidden_text,
                    },
                )
            }
            AuthError::Csrf { api: false, lang } => {
                let t = lang.strings();
                crate::console::html(
                    self.status_code(),
                    &RefusedPage {
                        t,
                        title: t.expired_title,
                        text: t.expired_text,
                    },
                )
            }
            AuthError::Unavailable => {
                let mut res = ApiError::new(Code::Unavailable, "try again later").error_response();
                res.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
        }
    }
}

/// `/login`, with `next` when there is somewhere to come back to.
pub fn login_location(next: Option<&str>) -> String {
    match next {
        Some(n) if n != "/" => {
            let encoded: String = url::form_urlencoded::byte_serialize(n.as_bytes()).collect();
            format!("/login?next={encoded}")
        }
        _ => "/login".to_owned(),
    }
}

fn is_api(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

/// Methods that must not change anything.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn refused_csrf(req: &HttpRequest) -> AuthError {
    AuthError::Csrf {
        api: is_api(req),
        lang: Lang::detect(req),
    }
}

/// The user of the request's session cookie, without any CSRF check (for
/// pages that behave differently when signed in, such as `/login`).
pub async fn authenticate(req: &HttpRequest) -> Result<CurrentUser, AuthError> {
    if let Some(u) = req.extensions().get::<CurrentUser>() {
        return Ok(u.clone());
    }
    let api = is_api(req);
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        tracing::error!("application state missing: cannot check sessions");
        return Err(AuthError::Unavailable);
    };
    let policy = Policy::from_settings(&state.settings);
    let next = (!api && is_safe(req.method()))
        .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
        .flatten();
    let Some(cookie) = req.cookie(session::COOKIE) else {
        return Err(AuthError::SignIn {
            api,
            next,
            forget: None,
        });
    };
    match session::resolve(&state.store, &policy, cookie.value(), Utc::now()).await {
        Ok(Some((s, role))) => {
            let user = CurrentUser {
                agent_id: s.agent_id,
                login: s.login,
                name: s.name,
                role,
                csrf: s.csrf_token,
                session_id: s.session_id,
                lang: Lang::detect(req),
                api,
            };
            req.extensions_mut().insert(user.clone());
            Ok(user)
        }
        Ok(None) => Err(AuthError::SignIn {
            api,
            next,
            forget: Some(Box::new(session::removal(&policy))),
        }),
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            Err(AuthError::Unavailable)
        }
    }
}

impl FromRequest for CurrentUser {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(&req).await?;
            if !is_safe(req.method())
                && !csrf::from_header(&req).is_some_and(|t| csrf::matches(&user.csrf, t))
            {
                return Err(refused_csrf(&req));
            }
            Ok(user)
        })
    }
}

/// A form posted by a signed-in user with the session's CSRF token (field
/// `csrf_token`, or header `X-CSRF-Token`). `T` must not deny unknown
/// fields: `csrf_token` is one.
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub user: CurrentUser,
    pub form: T,
}

/// A form with nothing but the CSRF token (e.g. sign-out).
#[derive(Debug, Deserialize)]
pub struct NoFields {}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Takes the body now; it is read only once the session is known.
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(&req).await?;
            let body = body.await?;
            let presented = match csrf::from_header(&req) {
                Some(h) => Some(h.to_owned()),
                None => csrf::from_form(&body),
            };
            if !presented.is_some_and(|t| csrf::matches(&user.csrf, &t)) {
                return Err(refused_csrf(&req).into());
            }
            if body.is_empty() {
                // A bodiless post (token in the header): no fields at all.
                let none = MapDeserializer::<_, serde::de::value::Error>::new(std::iter::empty::<(
                    &str,
                    &str,
                )>());
                let form = T::deserialize(none)
                    .map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?;
                return Ok(CsrfForm { user, form });
            }
            let mut replay = Payload::from(body);
            let form = web::Form::<T>::from_request(&req, &mut replay)
                .await?
                .into_inner();
            Ok(CsrfForm { user, form })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_location_carries_next_encoded() {
        assert_eq!(login_location(None), "/login");
        assert_eq!(login_location(Some("/")), "/login");
        assert_eq!(
            login_location(Some("/admin?x=1&y=2")),
            "/login?next=%2Fadmin%3Fx%3D1%26y%3D2"
        );
    }

    #[test]
    fn safe_methods() {
        assert!(is_safe(&Method::GET));
        assert!(is_safe(&Method::HEAD));
        assert!(!is_safe(&Method::POST));
        assert!(!is_safe(&Method::DELETE));
    }
}
