use crate::fake_wechat::FakeWechat;
use crate::helpers::{TestDb, spawn_app, start, test_settings};

async fn submit(
    app: &crate::helpers::TestApp,
    link: &str,
    login: &str,
    pw: &str,
    confirm: &str,
) -> (u16, String) {
    let r = app
        .client
        .post(link)
        .form(&[
            ("login", login),
            ("name", "Ada 管理员"),
            ("password", pw),
            ("confirm", confirm),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_fresh_database_prints_a_one_time_setup_link_that_creates_the_admin() {
    let app = spawn_app().await;
    let link = app
        .setup_link
        .clone()
        .expect("empty database: a setup link");
    assert!(
        link.starts_with(&format!("{}/setup/", app.address)),
        "{link}"
    );

    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));

    let (status, body) = submit(
        &app,
        &link,
        "ada",
        "correct horse battery",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ada"));
    assert!(!app.state.store.needs_setup().await.unwrap());

    // Spent: neither showing nor submitting works again.
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 410);
    let (status, _) = submit(
        &app,
        &link,
        "eve",
        "another long password",
        "another long password",
    )
    .await;
    assert_eq!(status, 410);
    assert!(app.get("/").await.text().await.unwrap().contains("Kefu"));
}

#[tokio::test]
async fn the_form_explains_what_is_wrong_and_keeps_the_link_usable() {
    let app = spawn_app().await;
    let link = app.setup_link.clone().unwrap();
    let (status, body) = submit(&app, &link, "ada", "short", "short").await;
    assert_eq!(status, 422);
    assert!(body.contains("12"), "{body}");
    let (status, body) = submit(
        &app,
        &link,
        "ada",
        "correct horse battery",
        "correct horse batterx",
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("do not match"), "{body}");
    let (status, body) = submit(
        &app,
        &link,
        "Bad Login!",
        "correct horse battery",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("login"), "{body}");
    // User input is escaped, never markup.
    let (status, body) = submit(&app, &link, "<script>x</script>", "p", "q").await;
    assert_eq!(status, 422);
    assert!(
        !body.contains("<script>x</script>") && body.contains("&#60;script&#62;")
            || body.contains("&lt;script&gt;"),
        "{body}"
    );
    assert!(app.state.store.needs_setup().await.unwrap());
    let (status, _) = submit(
        &app,
        &link,
        "ada",
        "correct horse battery",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_unknown_token_is_refused() {
    let app = spawn_app().await;
    let r = app.get("/setup/not-a-real-token").await;
    assert_eq!(r.status(), 410);
    let (status, _) = submit(
        &app,
        &format!("{}/setup/forged", app.address),
        "eve",
        "correct horse battery",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 410);
    assert!(app.state.store.needs_setup().await.unwrap());
}

#[tokio::test]
async fn a_restart_replaces_the_link_and_after_setup_prints_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path()).await;
    let fake = FakeWechat::start().await;
    let settings = test_settings(dir.path(), &db.url, &fake);

    let mut first = start(settings.clone(), fake, db, dir).await;
    let old_link = first.setup_link.clone().unwrap();
    first.stop().await.unwrap();
    let crate::helpers::TestApp { db, dir, .. } = first;

    let second = start(settings.clone(), FakeWechat::start().await, db, dir).await;
    let new_link = second.setup_link.clone().unwrap();
    assert_ne!(old_link, new_link);
    let old_token = &old_link[old_link.find("/setup/").unwrap()..];
    let old_on_new_port = format!("{}{old_token}", second.address);
    assert_eq!(
        second
            .client
            .get(&old_on_new_port)
            .send()
            .await
            .unwrap()
            .status(),
        410,
        "the old link is dead"
    );
    let (status, _) = submit(
        &second,
        &new_link,
        "ada",
        "correct horse battery",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 200);
    let mut second = second;
    second.stop().await.unwrap();
    let crate::helpers::TestApp { db, dir, .. } = second;

    let third = start(settings, FakeWechat::start().await, db, dir).await;
    assert!(
        third.setup_link.is_none(),
        "an administrator exists: no link"
    );
}
