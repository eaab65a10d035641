//! The outbox through its interface and the fake WeChat API: stored first,
//! then sent; retries, permanent failures, order, idempotency, crash safety,
//! the 48-hour window.

use std::time::Duration;

use chrono::Utc;
use kefu::bus::Event;
use kefu::conversation::outbox::{OutboundRequest, OutboxError, Speaker};
use kefu::ids::{AccountId, AgentId, MessageId};
use kefu::wechat::api::OutboundContent;

use crate::fake_wechat::{FakeWechat, Fault};
use crate::helpers::{TestApp, TestDb, spawn_app, spawn_app_with, start, test_settings};
use crate::wechat_client::{Mode, text_xml};

const T: Duration = Duration::from_secs(5);

fn text(to: &str, s: &str) -> OutboundRequest {
    OutboundRequest {
        account: AccountId::parse("demo-oa").unwrap(),
        recipient: to.into(),
        content: OutboundContent::Text { content: s.into() },
        speaker: Speaker::Agent {
            id: AgentId(1),
            login: "ada".into(),
        },
        open_kfid: None,
        idempotency_key: None,
        media: None,
    }
}

/// Waits for the status of a message on the bus.
async fn status_of(
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
    id: MessageId,
    want: &str,
) -> Option<String> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("status in time")
            .unwrap();
        if let Event::OutboundStatus {
            message_id,
            status,
            reason,
            ..
        } = ev.event
            && message_id == id
            && status == want
        {
            return reason;
        }
    }
}

fn sent_texts(app: &TestApp) -> Vec<String> {
    app.fake
        .requests_to("message/custom/send")
        .iter()
        .filter_map(|r| {
            r.json
                .as_ref()
                .and_then(|j| j["text"]["content"].as_str().map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn a_reply_is_stored_queued_then_sent_to_wechat() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    let e = app
        .state
        .outbox
        .send(text("oCustomer", "您好，车款已到账 😀"), T)
        .await
        .unwrap();
    // Stored first: the message row exists with its outbox status.
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert!(row.status == "queued" || row.status == "sent");
    status_of(&mut rx, e.message, "sent").await;
    let calls = app.fake.requests_to("message/custom/send");
    assert_eq!(calls.len(), 1);
    let body = calls[0].json.clone().unwrap();
    assert_eq!(body["touser"], "oCustomer");
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["content"], "您好，车款已到账 😀");
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    let msg = app.state.store.message(e.message).await.unwrap();
    assert_eq!(
        (msg.direction.as_str(), msg.sender.as_str(), msg.agent_id),
        ("out", "ada", Some(1))
    );
}

#[tokio::test]
async fn the_same_idempotency_key_stores_and_sends_once() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    let mut req = text("oCustomer", "only once");
    req.idempotency_key = Some("client-42".into());
    let a = app.state.outbox.send(req.clone(), T).await.unwrap();
    let b = app.state.outbox.send(req, T).await.unwrap();
    assert_eq!(a.message, b.message);
    assert!(b.existing);
    status_of(&mut rx, a.message, "sent").await;
    assert_eq!(sent_texts(&app), vec!["only once"]);
}

#[tokio::test]
async fn one_customers_messages_leave_in_order() {
    let app = spawn_app().await;
    app.fake.inject_always(
        "message/custom/send",
        Fault::Delay(Duration::from_millis(20)),
    );
    let mut rx = app.state.bus.subscribe();
    let mut last = None;
    for i in 0..6 {
        last = Some(
            app.state
                .outbox
                .send(text("oOrder", &format!("#{i}")), T)
                .await
                .unwrap()
                .message,
        );
        app.state
            .outbox
            .send(text(&format!("oOther{i}"), "x"), T)
            .await
            .unwrap();
    }
    status_of(&mut rx, last.unwrap(), "sent").await;
    let to_order: Vec<_> = app
        .fake
        .requests_to("message/custom/send")
        .iter()
        .filter(|r| r.json.as_ref().unwrap()["touser"] == "oOrder")
        .map(|r| {
            r.json.as_ref().unwrap()["text"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        to_order,
        (0..6).map(|i| format!("#{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_a_backoff() {
    // The background sender is off: the test drives each step and moves the
    // clock instead of sleeping through the backoff.
    let app = spawn_app_with(|s| s.outbox.enabled = false).await;
    app.fake
        .inject("message/custom/send", Fault::ErrCode(-1), 1);
    let e = app
        .state
        .outbox
        .send(text("oRetry", "again"), T)
        .await
        .unwrap();
    let now = Utc::now();
    let first = app.state.outbox.run_once_at(now).await.unwrap();
    assert_eq!((first.sent, first.retried), (0, 1));
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
    assert!(row.next_attempt_at > now, "the retry waits for its backoff");
    // Not due yet: nothing happens.
    assert!(app.state.outbox.run_once_at(now).await.unwrap().is_empty());
    // After the backoff (at most max_backoff_secs) it is sent.
    let later = now + chrono::Duration::seconds(301);
    assert_eq!(app.state.outbox.run_once_at(later).await.unwrap().sent, 1);
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
    assert!(row.last_error.unwrap().contains("-1"));
    assert_eq!(app.fake.count("message/custom/send"), 2);
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once_with_a_reason_an_agent_understands() {
    let app = spawn_app().await;
    app.fake
        .inject("message/custom/send", Fault::ErrCode(45015), 1);
    let mut rx = app.state.bus.subscribe();
    let e = app
        .state
        .outbox
        .send(text("oGone", "hello?"), T)
        .await
        .unwrap();
    let reason = status_of(&mut rx, e.message, "failed")
        .await
        .expect("a reason");
    assert!(reason.contains("48"), "{reason}");
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    assert_eq!(row.failure_reason.as_deref(), Some(reason.as_str()));
    assert_eq!(app.fake.count("message/custom/send"), 1, "never retried");
}

#[tokio::test]
async fn transient_failures_give_up_after_the_attempt_limit() {
    let app = spawn_app_with(|s| {
        s.outbox.max_attempts = 3;
        s.outbox.enabled = false;
    })
    .await;
    app.fake
        .inject_always("message/custom/send", Fault::Status(502));
    let mut rx = app.state.bus.subscribe();
    let e = app.state.outbox.send(text("oFlaky", "x"), T).await.unwrap();
    let mut when = Utc::now();
    while app
        .state
        .store
        .outbox_of_message(e.message)
        .await
        .unwrap()
        .status
        == "queued"
    {
        when += chrono::Duration::days(1);
        app.state.outbox.run_once_at(when).await.unwrap();
    }
    status_of(&mut rx, e.message, "failed").await;
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!(row.attempts, 3);
    assert_eq!(app.fake.count("message/custom/send"), 3);
}

#[tokio::test]
async fn a_message_leased_by_a_crashed_sender_is_sent_once_after_its_lease() {
    let app = spawn_app_with(|s| s.outbox.enabled = false).await;
    let e = app
        .state
        .outbox
        .send(text("oCrash", "survives"), T)
        .await
        .unwrap();
    // A sender claims it and dies before sending.
    let now = Utc::now();
    let claimed = app
        .state
        .store
        .claim_outbox(now, now + chrono::Duration::seconds(30), "dead-sender", 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // While the lease holds, nobody else sends it.
    assert!(
        app.state
            .outbox
            .run_once_at(now + chrono::Duration::seconds(5))
            .await
            .unwrap()
            .is_empty()
    );
    // After it, the live sender does, once.
    let step = app
        .state
        .outbox
        .run_once_at(now + chrono::Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!(step.sent, 1);
    assert!(
        app.state
            .outbox
            .run_once_at(now + chrono::Duration::seconds(120))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sent_texts(&app), vec!["survives"]);
    // The dead sender's late report is ignored.
    let applied = app
        .state
        .store
        .record_outbox_outcomes(
            "dead-sender",
            Utc::now(),
            &[(
                claimed[0].id,
                kefu::store::outbox::SendOutcome::Sent {
                    channel_msg_id: None,
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(applied, vec![false]);
    assert_eq!(
        app.state
            .store
            .outbox_of_message(e.message)
            .await
            .unwrap()
            .status,
        "sent"
    );
}

#[tokio::test]
async fn a_message_stored_before_a_restart_is_sent_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path()).await;
    let fake = FakeWechat::start().await;
    let mut settings = test_settings(dir.path(), &db.url, &fake);
    settings.outbox.enabled = false;
    let mut first = start(settings.clone(), fake, db, dir).await;
    let e = first
        .state
        .outbox
        .send(text("oRestart", "after restart"), T)
        .await
        .unwrap();
    first.stop().await.unwrap();
    assert_eq!(first.fake.count("message/custom/send"), 0);
    let TestApp { db, dir, fake, .. } = first;

    settings.outbox.enabled = true;
    let second = start(settings, fake, db, dir).await;
    second
        .fake
        .wait_for("message/custom/send", 1, Duration::from_secs(10))
        .await;
    let mut rx = second.state.bus.subscribe();
    if second
        .state
        .store
        .outbox_of_message(e.message)
        .await
        .unwrap()
        .status
        != "sent"
    {
        status_of(&mut rx, e.message, "sent").await;
    }
    assert_eq!(sent_texts(&second), vec!["after restart"]);
}

#[tokio::test]
async fn the_window_follows_the_customers_last_message_and_the_sends_since() {
    let app = spawn_app().await;
    let account = AccountId::parse("demo-oa").unwrap();
    let w = app.state.outbox.window(&account, "oWin").await.unwrap();
    assert!(!w.open, "no message from the customer yet");
    let now = Utc::now().timestamp();
    let xml = text_xml("oWin", 1, "在吗").replace("1714036504", &now.to_string());
    assert_eq!(app.oa_post(Mode::Safe, &xml).await.0, 200);
    let w = app.state.outbox.window(&account, "oWin").await.unwrap();
    assert!(w.open);
    assert_eq!(w.remaining, 5);
    let mut rx = app.state.bus.subscribe();
    let mut last = None;
    for i in 0..5 {
        last = Some(
            app.state
                .outbox
                .send(text("oWin", &format!("reply {i}")), T)
                .await
                .unwrap()
                .message,
        );
    }
    status_of(&mut rx, last.unwrap(), "sent").await;
    let w = app.state.outbox.window(&account, "oWin").await.unwrap();
    assert!(!w.open);
    assert_eq!(w.remaining, 0);
    assert!(w.reason.unwrap().contains("limit of 5"));
    let later = Utc::now() + chrono::Duration::hours(49);
    let w = app
        .state
        .outbox
        .window_at(&account, "oWin", later)
        .await
        .unwrap();
    assert!(w.reason.unwrap().contains("48 hours"));
}

#[tokio::test]
async fn invalid_messages_are_refused_before_anything_is_stored() {
    let app = spawn_app().await;
    let empty = app.state.outbox.send(text("oX", "  "), T).await;
    assert!(matches!(empty, Err(OutboxError::Invalid(_))));
    let long = app
        .state
        .outbox
        .send(text("oX", &"长".repeat(1000)), T)
        .await;
    assert!(matches!(long, Err(OutboxError::Invalid(_))));
    let mut unknown = text("oX", "x");
    unknown.account = AccountId::parse("nope").unwrap();
    assert!(matches!(
        app.state.outbox.send(unknown, T).await,
        Err(OutboxError::UnknownAccount(_))
    ));
    let mut kf = text("wmX", "x");
    kf.account = AccountId::parse("demo-kf").unwrap();
    assert!(matches!(
        app.state.outbox.send(kf, T).await,
        Err(OutboxError::Invalid(_))
    ));
    assert!(app.stored("demo-oa").await.is_empty());
}

#[tokio::test]
async fn wecom_kf_replies_go_through_kf_send_msg_with_an_idempotent_msgid() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    let mut req = text("wmCustomer", "来自 Kefu 控制台");
    req.account = AccountId::parse("demo-kf").unwrap();
    req.open_kfid = Some("wkKF1".into());
    let e = app.state.outbox.send(req, T).await.unwrap();
    status_of(&mut rx, e.message, "sent").await;
    let call = app.fake.requests_to("kf/send_msg")[0].json.clone().unwrap();
    assert_eq!(call["touser"], "wmCustomer");
    assert_eq!(call["open_kfid"], "wkKF1");
    assert_eq!(call["text"]["content"], "来自 Kefu 控制台");
    let row = app.state.store.outbox_of_message(e.message).await.unwrap();
    assert_eq!(call["msgid"], format!("kefu{}", row.id));
    assert_eq!(
        app.state
            .store
            .message(e.message)
            .await
            .unwrap()
            .channel_msg_id
            .as_deref(),
        call["msgid"].as_str()
    );
}
