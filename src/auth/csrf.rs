//! Cross-site request forgery tokens.
//!
//! Signed-in users: one random token per session (stored with it), sent
//! back as the form field [`FIELD`] or the header [`HEADER`] on every
//! state-changing request.
//!
//! The sign-in form, before any session exists: a double-submit token. The
//! page sets a random value in the `SameSite=Strict` cookie [`LOGIN_COOKIE`]
//! and in a hidden field; the submission must carry both, equal. Another
//! site can neither read the cookie nor make the browser send it.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use super::token;

/// The hidden form field carrying the token.
pub const FIELD: &str = "csrf_token";
/// The request header carrying the token (for scripts).
pub const HEADER: &str = "X-CSRF-Token";
/// The cookie of the sign-in form's double-submit token.
pub const LOGIN_COOKIE: &str = "kefu_login_csrf";

/// A fresh token.
pub fn generate() -> String {
    token::generate()
}

/// True when `presented` equals `expected`, compared in constant time
/// for equal lengths. An empty expected token never matches.
pub fn matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True for a value that [`generate`] could have made: 43 URL-safe base64
/// characters.
pub fn well_formed(t: &str) -> bool {
    t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token of the [`HEADER`] header, if any.
pub fn from_header(req: &HttpRequest) -> Option<&str> {
    req.headers().get(HEADER).and_then(|v| v.to_str().ok())
}

/// The [`FIELD`] of an `application/x-www-form-urlencoded` body, if any.
pub fn from_form(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
}

/// The sign-in form's cookie: readable only by Kefu, sent only with
/// requests from Kefu's own pages, only to `/login`.
pub fn login_cookie(value: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(LOGIN_COOKIE, value.to_owned())
        .path("/login")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish()
}

/// Deletes the sign-in form's cookie (after a successful sign-in).
pub fn login_cookie_removal(secure: bool) -> Cookie<'static> {
    let mut c = login_cookie("", secure);
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        let t = generate();
        assert!(well_formed(&t));
        assert!(matches(&t, &t.clone()));
        assert!(!matches(&t, &generate()));
        assert!(!matches(&t, &t[..42]));
        assert!(!matches(&t, ""));
        assert!(!matches("", ""));
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a/".repeat(21)));
    }

    #[test]
    fn the_form_field_is_found_among_others() {
        assert_eq!(
            from_form(b"login=ada&csrf_token=abc%2Bd&next=%2F").as_deref(),
            Some("abc+d")
        );
        assert_eq!(from_form(b"login=ada"), None);
    }

    #[test]
    fn the_login_cookie_is_strict_and_http_only() {
        let c = login_cookie("v", true);
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.path(), Some("/login"));
    }
}
