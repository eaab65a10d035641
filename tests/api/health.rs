use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_when_the_database_is_up() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    // Closing the pool makes every later query fail, as a lost database would.
    app.state.store.clone().close().await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the process itself is still alive"
    );
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    let metrics_address = app.metrics_address.clone().expect("metrics enabled");
    let body = app
        .client
        .get(format!("{metrics_address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"kefu_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("kefu_http_request_duration_seconds"),
        "{body}"
    );
    // And not on the public listener.
    assert_eq!(app.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn oversized_form_bodies_are_refused_with_413() {
    let app = spawn_app_with_small_limit().await;
    let link = app.setup_link.clone().unwrap();
    let big = "x".repeat(4096);
    let r = app
        .client
        .post(&link)
        .form(&[
            ("login", "admin"),
            ("name", big.as_str()),
            ("password", "p"),
            ("confirm", "p"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

async fn spawn_app_with_small_limit() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|s| s.limits.api_body_bytes = 1024).await
}

#[tokio::test]
async fn graceful_stop_finishes_and_closes_the_port() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await.expect("server stops cleanly");
    let after = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await;
    assert!(after.is_err(), "the port is closed after stop");
}
