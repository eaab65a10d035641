//! A browser for the sign-in tests: forms, cookies and hidden fields by hand
//! (the test client keeps no cookies and follows no redirects).

use kefu::auth::{Role, password};
use kefu::ids::AgentId;
use reqwest::Response;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::TestApp;

pub(crate) const ADMIN_PW: &str = "correct horse battery";
pub(crate) const AGENT_PW: &str = "agent staple battery";

/// A signed-in browser: the session cookie's token and the page's CSRF token.
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) csrf: String,
}

impl Session {
    pub(crate) fn cookie(&self) -> String {
        format!("kefu_session={}", self.token)
    }
}

/// Creates the first admin `ada` through the setup link, as a person would.
pub(crate) async fn create_admin(app: &TestApp) {
    let link = app.setup_link.clone().expect("a setup link");
    let path = &link[link.find("/setup/").expect("setup path")..];
    let r = app
        .client
        .post(format!("{}{path}", app.address))
        .form(&[
            ("login", "ada"),
            ("name", "Ada 管理员"),
            ("password", ADMIN_PW),
            ("confirm", ADMIN_PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("href=\"/login\""));
}

pub(crate) async fn add_user(app: &TestApp, login: &str, role: Role, pw: &str) -> AgentId {
    let hash = password::hash(pw).unwrap();
    app.state
        .store
        .create_agent(login, &format!("{login} 名字"), role, &hash)
        .await
        .unwrap()
}

/// The value of a cookie the response sets.
pub(crate) fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

pub(crate) fn cookie_value(header: &str) -> String {
    let pair = header.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

pub(crate) fn location(r: &Response) -> &str {
    r.headers()[LOCATION].to_str().unwrap()
}

/// The value of a hidden form field.
pub(crate) fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).expect("field present") + marker.len();
    body[start..][..body[start..].find('"').unwrap()].to_owned()
}

/// The sign-in form: its cookie and its hidden token.
pub(crate) async fn login_form(app: &TestApp) -> (String, String) {
    let r = app.get("/login").await;
    assert_eq!(r.status(), 200);
    let cookie = cookie_value(&set_cookie(&r, "kefu_login_csrf").expect("login cookie"));
    let field = hidden(&r.text().await.unwrap(), "csrf_token");
    (cookie, field)
}

pub(crate) async fn post_login(
    app: &TestApp,
    csrf: &(String, String),
    fields: &[(&str, &str)],
) -> Response {
    let mut form = vec![("csrf_token", csrf.1.as_str())];
    form.extend_from_slice(fields);
    app.client
        .post(format!("{}/login", app.address))
        .header(COOKIE, format!("kefu_login_csrf={}", csrf.0))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn try_sign_in(app: &TestApp, login: &str, pw: &str) -> Response {
    let csrf = login_form(app).await;
    post_login(app, &csrf, &[("login", login), ("password", pw)]).await
}

pub(crate) async fn sign_in(app: &TestApp, login: &str, pw: &str) -> Session {
    let r = try_sign_in(app, login, pw).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let token = cookie_value(&set_cookie(&r, "kefu_session").expect("session cookie"));
    let home = get_as(app, "/", &token).await;
    assert_eq!(home.status(), 200);
    let csrf = hidden(&home.text().await.unwrap(), "csrf_token");
    Session { token, csrf }
}

pub(crate) async fn get_as(app: &TestApp, path: &str, token: &str) -> Response {
    app.client
        .get(format!("{}{path}", app.address))
        .header(COOKIE, format!("kefu_session={token}"))
        .send()
        .await
        .unwrap()
}

pub(crate) async fn post_as(
    app: &TestApp,
    path: &str,
    s: &Session,
    form: &[(&str, &str)],
) -> Response {
    app.client
        .post(format!("{}{path}", app.address))
        .header(COOKIE, s.cookie())
        .form(form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn change_password(
    app: &TestApp,
    s: &Session,
    current: &str,
    new: &str,
) -> Response {
    post_as(
        app,
        "/account/password",
        s,
        &[
            ("csrf_token", &s.csrf),
            ("current", current),
            ("new", new),
            ("confirm", new),
        ],
    )
    .await
}

pub(crate) async fn signed_in_still(app: &TestApp, s: &Session) -> bool {
    get_as(app, "/", &s.token).await.status() == 200
}
