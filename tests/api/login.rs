//! Console sign-in through HTTP: sessions, lock-out, CSRF, roles, language.

pub(crate) mod browser;

use chrono::{Duration, Utc};
use kefu::auth::{Role, token};
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE};

use crate::helpers::{spawn_app, spawn_app_with};
use browser::*;

#[tokio::test]
async fn signing_in_sets_a_locked_down_cookie_and_opens_the_console() {
    let app = spawn_app().await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    let page = app.get("/login").await.text().await.unwrap();
    assert!(page.contains("初始化链接"), "no admin yet: the setup hint");

    create_admin(&app).await;
    let page = app.get("/login").await;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers().contains_key("content-security-policy"));
    let login_cookie = set_cookie(&page, "kefu_login_csrf").unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    assert!(!page.text().await.unwrap().contains("初始化链接"));

    let r = try_sign_in(&app, " Ada ", ADMIN_PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    let cookie = set_cookie(&r, "kefu_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "http: no Secure flag: {cookie}");
    let token = cookie_value(&cookie);
    // Only the digest is stored.
    let store = &app.state.store;
    assert!(store.session_user(&token).await.unwrap().is_none());
    assert!(
        store
            .session_user(&token::digest(&token))
            .await
            .unwrap()
            .is_some()
    );

    let home = get_as(&app, "/", &token).await;
    assert_eq!(home.status(), 200);
    assert_eq!(home.headers()["cache-control"], "no-store");
    let body = home.text().await.unwrap();
    assert!(body.contains("您好，Ada 管理员"), "{body}");
    assert!(body.contains("管理员"));
    assert!(body.contains("action=\"/logout\""));
    assert!(body.contains("href=\"/account/password\""));
    assert!(body.contains("href=\"/admin\""));
}

#[tokio::test]
async fn over_https_the_cookies_are_secure() {
    let app =
        spawn_app_with(|s| s.server.public_url = Some("https://kefu.example.com".into())).await;
    create_admin(&app).await;
    let page = app.get("/login").await;
    assert!(
        set_cookie(&page, "kefu_login_csrf")
            .unwrap()
            .contains("Secure")
    );
    let r = try_sign_in(&app, "ada", ADMIN_PW).await;
    assert_eq!(r.status(), 303);
    assert!(set_cookie(&r, "kefu_session").unwrap().contains("Secure"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_login_get_the_same_answer() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let csrf = login_form(&app).await;
    let wrong = post_login(
        &app,
        &csrf,
        &[("login", "ada"), ("password", "wrong password!")],
    )
    .await;
    let unknown = post_login(&app, &csrf, &[("login", "nobody"), ("password", ADMIN_PW)]).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert!(set_cookie(&wrong, "kefu_session").is_none());
    let wrong = wrong.text().await.unwrap();
    let unknown = unknown.text().await.unwrap();
    assert!(wrong.contains("登录名或密码不正确"));
    // The same page but for the login typed (and the form token).
    let same = |page: &str, login: &str| page.replace(&csrf.1, "T").replace(login, "X");
    assert_eq!(same(&wrong, "ada"), same(&unknown, "nobody"));
}

#[tokio::test]
async fn five_failures_lock_a_login_even_against_the_right_password() {
    let app = spawn_app().await;
    create_admin(&app).await;
    add_user(&app, "bob", Role::Agent, AGENT_PW).await;
    for _ in 0..5 {
        let r = try_sign_in(&app, "ada", "not the password").await;
        assert_eq!(r.status(), 401);
    }
    let r = try_sign_in(&app, "ada", ADMIN_PW).await;
    assert_eq!(r.status(), 429);
    assert!(set_cookie(&r, "kefu_session").is_none());
    let locked = r.text().await.unwrap();
    assert!(locked.contains("锁定"), "{locked}");

    // Unknown logins lock the same way: a lock reveals nothing.
    for _ in 0..5 {
        assert_eq!(
            try_sign_in(&app, "ghost", "whatever it is").await.status(),
            401
        );
    }
    let r = try_sign_in(&app, "ghost", "whatever it is").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("锁定"));

    // Other logins are not affected.
    sign_in(&app, "bob", AGENT_PW).await;
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let r = post_as(&app, "/logout", &s, &[("csrf_token", &s.csrf)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    let gone = set_cookie(&r, "kefu_session").unwrap();
    assert!(gone.contains("Max-Age=0"), "{gone}");
    let r = get_as(&app, "/", &s.token).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
}

#[tokio::test]
async fn state_changing_requests_need_the_sessions_csrf_token() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let other = sign_in(&app, "ada", ADMIN_PW).await;
    assert_ne!(s.csrf, other.csrf, "one token per session");

    assert_eq!(post_as(&app, "/logout", &s, &[]).await.status(), 403);
    let r = post_as(&app, "/logout", &s, &[("csrf_token", "forged")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("表单已过期"));
    assert_eq!(
        post_as(&app, "/logout", &s, &[("csrf_token", &other.csrf)])
            .await
            .status(),
        403,
        "another session's token does not count"
    );
    let r = post_as(
        &app,
        "/account/password",
        &s,
        &[
            ("current", ADMIN_PW),
            ("new", "a brand new password"),
            ("confirm", "a brand new password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(signed_in_still(&app, &s).await);
    sign_in(&app, "ada", ADMIN_PW).await; // the password did not change

    // The header works for scripts.
    let r = app
        .client
        .post(format!("{}/logout", app.address))
        .header(COOKIE, s.cookie())
        .header("X-CSRF-Token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(!signed_in_still(&app, &s).await);

    // Without a session: back to sign-in, not 403.
    let r = app
        .client
        .post(format!("{}/logout", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
}

#[tokio::test]
async fn the_sign_in_form_refuses_forged_submissions() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let creds = [("login", "ada"), ("password", ADMIN_PW)];
    // No cookie at all (another site posting the form).
    let r = app
        .client
        .post(format!("{}/login", app.address))
        .form(&[
            ("login", "ada"),
            ("password", ADMIN_PW),
            ("csrf_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "kefu_session").is_none());
    // A cookie, but a field that does not match it.
    let (cookie, _) = login_form(&app).await;
    let (_, other_field) = login_form(&app).await;
    let r = post_login(&app, &(cookie.clone(), other_field), &creds).await;
    assert_eq!(r.status(), 403);
    let r = post_login(&app, &(cookie, String::new()), &creds).await;
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "kefu_session").is_none());
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let here = sign_in(&app, "ada", ADMIN_PW).await;
    let elsewhere = sign_in(&app, "ada", ADMIN_PW).await;
    const NEW: &str = "a brand new password";

    let page = get_as(&app, "/account/password", &here.token).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("当前密码"));

    let r = change_password(&app, &here, "not my password", NEW).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("当前密码不正确"));
    let r = change_password(&app, &here, ADMIN_PW, "short").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("12"));
    let r = post_as(
        &app,
        "/account/password",
        &here,
        &[
            ("csrf_token", &here.csrf),
            ("current", ADMIN_PW),
            ("new", NEW),
            ("confirm", "something else entirely"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        signed_in_still(&app, &elsewhere).await,
        "nothing changed yet"
    );

    let r = change_password(&app, &here, ADMIN_PW, NEW).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("密码已修改"));
    assert!(signed_in_still(&app, &here).await, "this session stays");
    assert!(
        !signed_in_still(&app, &elsewhere).await,
        "the other one ends"
    );
    let ada = app
        .state
        .store
        .agent_credentials("ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(app.state.store.count_sessions(ada.id).await.unwrap(), 1);

    assert_eq!(try_sign_in(&app, "ada", ADMIN_PW).await.status(), 401);
    sign_in(&app, "ada", NEW).await;
}

#[tokio::test]
async fn a_disabled_users_session_stops_working_at_once() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let bob = add_user(&app, "bob", Role::Agent, AGENT_PW).await;
    let s = sign_in(&app, "bob", AGENT_PW).await;
    // Flipped behind Kefu's back: the session check itself must notice.
    app.state
        .store
        .execute_unprepared("UPDATE agents SET disabled = TRUE WHERE login = 'bob'")
        .await
        .unwrap();
    let r = get_as(&app, "/", &s.token).await;
    assert_eq!(r.status(), 303);
    assert!(
        set_cookie(&r, "kefu_session")
            .unwrap()
            .contains("Max-Age=0")
    );

    app.state
        .store
        .set_agent_disabled(bob, false)
        .await
        .unwrap();
    let s = sign_in(&app, "bob", AGENT_PW).await;
    app.state.store.set_agent_disabled(bob, true).await.unwrap();
    assert!(!signed_in_still(&app, &s).await);
    let r = try_sign_in(&app, "bob", AGENT_PW).await;
    assert_eq!(r.status(), 401, "a disabled user gets the generic answer");
    assert!(r.text().await.unwrap().contains("登录名或密码不正确"));
}

#[tokio::test]
async fn an_expired_session_goes_back_to_sign_in() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    app.state
        .store
        .set_session_expires_at(&token::digest(&s.token), Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    let r = get_as(&app, "/account/password?tab=1", &s.token).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?next=%2Faccount%2Fpassword%3Ftab%3D1");
    assert!(
        app.state
            .store
            .session_user(&token::digest(&s.token))
            .await
            .unwrap()
            .is_none(),
        "an expired session is deleted when seen"
    );
}

#[tokio::test]
async fn next_only_leads_to_local_pages() {
    let app = spawn_app().await;
    create_admin(&app).await;
    for (next, expected) in [
        ("/admin", "/admin"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
    ] {
        let csrf = login_form(&app).await;
        let r = post_login(
            &app,
            &csrf,
            &[("login", "ada"), ("password", ADMIN_PW), ("next", next)],
        )
        .await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), expected, "next={next}");
    }
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let r = get_as(&app, "/login?next=//evil.example", &s.token).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    let r = app.get("/lang/en?next=https://evil.example").await;
    assert_eq!(location(&r), "/");
    // The form carries `next` through.
    let page = app.get("/login?next=%2Fadmin").await.text().await.unwrap();
    assert_eq!(hidden(&page, "next"), "/admin");
}

#[tokio::test]
async fn only_admins_open_the_user_list() {
    let app = spawn_app().await;
    create_admin(&app).await;
    add_user(&app, "bob", Role::Agent, AGENT_PW).await;
    add_user(&app, "sue", Role::Supervisor, AGENT_PW).await;

    let r = app.get("/admin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?next=%2Fadmin");

    for login in ["bob", "sue"] {
        let s = sign_in(&app, login, AGENT_PW).await;
        let r = get_as(&app, "/admin", &s.token).await;
        assert_eq!(r.status(), 403, "{login}");
        assert!(r.text().await.unwrap().contains("无权访问"));
        let home = get_as(&app, "/", &s.token).await.text().await.unwrap();
        assert!(!home.contains("href=\"/admin\""));
    }
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let r = get_as(&app, "/admin", &s.token).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    for expected in ["ada", "bob", "sue", "主管", "客服", "管理员"] {
        assert!(body.contains(expected), "{expected} in {body}");
    }
}

#[tokio::test]
async fn api_paths_answer_json() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let r = app.get("/api/me").await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");

    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let me: serde_json::Value = get_as(&app, "/api/me", &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "ada");
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn chinese_by_default_english_on_request() {
    let app = spawn_app().await;
    create_admin(&app).await;
    let zh = app.get("/login").await.text().await.unwrap();
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("登录名"));

    let en = app
        .client
        .get(format!("{}/login", app.address))
        .header(ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        en.contains("<html lang=\"en\">") && en.contains("Sign in"),
        "{en}"
    );
    assert!(!en.contains("登录名"));

    // The switch link sets the cookie, which wins over the header.
    let r = app.get("/lang/en?next=%2Flogin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    let lang = cookie_value(&set_cookie(&r, "lang").unwrap());
    assert_eq!(lang, "en");
    let s = sign_in(&app, "ada", ADMIN_PW).await;
    let home = app
        .client
        .get(format!("{}/", app.address))
        .header(ACCEPT_LANGUAGE, "zh-CN")
        .header(COOKIE, format!("{}; lang={lang}", s.cookie()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("Hello, Ada") && home.contains("Administrator"),
        "{home}"
    );
    assert!(home.contains("Sign out"));
}
