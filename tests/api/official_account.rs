//! Official Account callbacks through HTTP: verification, the three modes,
//! commit-before-ack, de-duplication, followers, passive replies, bad input.

use std::time::Duration;

use kefu::bus::Event;
use kefu::ids::AccountId;

use crate::helpers::spawn_app;
use crate::wechat_client::{Mode, enc, event_xml, oa_crypt, oa_request, text_xml};

fn demo_oa() -> AccountId {
    AccountId::parse("demo-oa").unwrap()
}

#[tokio::test]
async fn url_verification_echoes_exactly_when_the_signature_holds() {
    let app = spawn_app().await;
    let crypt = oa_crypt();
    let sig = crypt.signature("1714036504", "1514711492");
    let ok = app.get(&format!("/wechat/demo-oa?signature={sig}&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "4375120948345356249");

    let bad = app.get("/wechat/demo-oa?signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=x").await;
    assert_eq!(bad.status(), 401);
    assert_eq!(
        app.get("/wechat/demo-oa?timestamp=1&nonce=2&echostr=x")
            .await
            .status(),
        400
    );
    let unknown = app
        .get(&format!(
            "/wechat/nope?signature={sig}&timestamp=1714036504&nonce=1514711492&echostr=x"
        ))
        .await;
    assert_eq!(unknown.status(), 404);
    // A WeCom account is not reachable through the OA route.
    let kf = app
        .get(&format!(
            "/wechat/demo-kf?signature={sig}&timestamp=1714036504&nonce=1514711492&echostr=x"
        ))
        .await;
    assert_eq!(kf.status(), 404);
}

#[tokio::test]
async fn each_mode_stores_the_message_before_answering_success() {
    let app = spawn_app().await;
    let mut events = app.state.bus.subscribe();
    for (i, mode) in [Mode::Plaintext, Mode::Compatible, Mode::Safe]
        .into_iter()
        .enumerate()
    {
        let (status, body) = app
            .oa_post(
                mode,
                &text_xml("oUser1", 100 + i as i64, &format!("你好 {mode:?}")),
            )
            .await;
        assert_eq!((status, body.as_str()), (200, "success"), "{mode:?}");
        // Acknowledged means committed: it is in the database now.
        let stored = app.stored("demo-oa").await;
        assert_eq!(stored.len(), i + 1);
        let m = &stored[i];
        assert_eq!(
            m.content.as_deref(),
            Some(format!("你好 {mode:?}").as_str())
        );
        assert_eq!(
            (
                m.sender.as_str(),
                m.msg_type.as_str(),
                m.direction.as_str(),
                m.channel.as_str()
            ),
            ("oUser1", "text", "in", "oa")
        );
        assert_eq!(
            m.channel_msg_id.as_deref(),
            Some((100 + i as i64).to_string().as_str())
        );
        // The pipeline's ConversationChanged and MessageFiled events
        // interleave: skip them.
        let ev = loop {
            let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap();
            if !matches!(
                ev.event,
                Event::ConversationChanged { .. } | Event::MessageFiled { .. }
            ) {
                break ev;
            }
        };
        assert_eq!(
            ev.event,
            Event::MessageStored {
                message_id: kefu::ids::MessageId(m.id),
                account: demo_oa(),
                sender: "oUser1".into()
            }
        );
    }
}

#[tokio::test]
async fn compatible_mode_trusts_only_the_encrypted_copy() {
    let app = spawn_app().await;
    let real = text_xml("oUser1", 7, "真的");
    let (q, body) = oa_request(Mode::Compatible, &real);
    let forged = body.replace("真的", "FORGED");
    assert!(forged.contains("FORGED") && forged.contains("<Encrypt>"));
    let (status, _) = app.post_raw(&format!("/wechat/demo-oa?{q}"), forged).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.stored("demo-oa").await[0].content.as_deref(),
        Some("真的")
    );
}

#[tokio::test]
async fn bad_signatures_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (q, body) = oa_request(Mode::Safe, &text_xml("oUser1", 1, "hi"));
    let bad_msg_sig = q.replace("msg_signature=", "msg_signature=0");
    assert_eq!(
        app.post_raw(&format!("/wechat/demo-oa?{bad_msg_sig}"), body.clone())
            .await
            .0,
        401
    );
    let bad_sig = q.replace("signature=", "signature=0");
    assert_eq!(
        app.post_raw(&format!("/wechat/demo-oa?{bad_sig}"), body.clone())
            .await
            .0,
        401
    );
    // Encrypted with another key: the signature over it does not hold either.
    let other = kefu::wechat::MsgCrypt::new(
        "FakeExampleToken",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "wx00000000fake0000",
    )
    .unwrap();
    let enc_other = other.encrypt(&text_xml("oUser1", 2, "x"));
    let msig = other.msg_signature("1714036504", "1514711492", &enc_other);
    let sig = oa_crypt().signature("1714036504", "1514711492");
    let (status, text) = app
        .post_raw(
            &format!("/wechat/demo-oa?signature={sig}&timestamp=1714036504&nonce=1514711492&encrypt_type=aes&msg_signature={msig}"),
            format!("<xml><Encrypt><![CDATA[{enc_other}]]></Encrypt></xml>"),
        )
        .await;
    assert_eq!(status, 400, "wrong key is a clear 4xx: {text}");
    assert!(app.stored("demo-oa").await.is_empty());
}

#[tokio::test]
async fn four_concurrent_deliveries_store_one_message_and_announce_it_once() {
    let app = spawn_app().await;
    let mut events = app.state.bus.subscribe();
    let xml = text_xml("oUser1", 6054768590064713728, "retry me");
    let sends = (0..4).map(|_| app.oa_post(Mode::Safe, &xml));
    for (status, body) in futures_util::future::join_all(sends).await {
        assert_eq!((status, body.as_str()), (200, "success"));
    }
    assert_eq!(app.stored("demo-oa").await.len(), 1);
    // Exactly one announcement: a Ping published after it arrives second.
    app.state.bus.publish(Event::Ping {
        nonce: "end".into(),
    });
    // The pipeline's events (the conversation opened, the message filed
    // in it) interleave with the Ping as they come: skip them.
    let mut next = async || loop {
        let ev = events.recv().await.unwrap().event;
        if !matches!(
            ev,
            Event::ConversationChanged { .. } | Event::MessageFiled { .. }
        ) {
            return ev;
        }
    };
    let first = next().await;
    assert!(matches!(first, Event::MessageStored { .. }), "{first:?}");
    assert_eq!(
        next().await,
        Event::Ping {
            nonce: "end".into()
        }
    );
}

#[tokio::test]
async fn the_same_msgid_from_two_followers_is_two_messages() {
    let app = spawn_app().await;
    app.oa_post(Mode::Safe, &text_xml("oUserA", 42, "a")).await;
    app.oa_post(Mode::Safe, &text_xml("oUserB", 42, "b")).await;
    let stored = app.stored("demo-oa").await;
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn subscribe_welcomes_with_an_encrypted_reply_and_tracks_the_follower() {
    let app = spawn_app().await;
    let xml = event_xml(
        "oFan",
        1714036600,
        "subscribe",
        "<EventKey><![CDATA[qrscene_123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
    );
    let (q, body) = oa_request(Mode::Safe, &xml);
    for _ in 0..2 {
        let (status, reply) = app
            .post_raw(&format!("/wechat/demo-oa?{q}"), body.clone())
            .await;
        assert_eq!(status, 200);
        let env = kefu::wechat::parse_fields(&reply).unwrap();
        let crypt = oa_crypt();
        let (enc, ts, nonce) = (&env["Encrypt"], &env["TimeStamp"], &env["Nonce"]);
        let inner = crypt
            .decrypt_verified(&env["MsgSignature"], ts, nonce, enc)
            .expect("reply signature holds");
        let fields = kefu::wechat::parse_fields(&inner).unwrap();
        assert_eq!(fields["MsgType"], "text");
        assert_eq!(fields["ToUserName"], "oFan");
        assert!(fields["Content"].starts_with("欢迎关注"), "{inner}");
    }
    let stored = app.stored("demo-oa").await;
    assert_eq!(stored.len(), 1, "a redelivered event is stored once");
    assert_eq!(stored[0].content.as_deref(), Some("subscribe qrscene_123"));
    let f = app
        .state
        .store
        .follower(&demo_oa(), "oFan")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.subscribed, Some(true));

    let (status, body) = app
        .oa_post(
            Mode::Safe,
            &event_xml("oFan", 1714036700, "unsubscribe", ""),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(
        app.state
            .store
            .follower(&demo_oa(), "oFan")
            .await
            .unwrap()
            .unwrap()
            .subscribed,
        Some(false)
    );
    // A late redelivery of the old subscribe does not resubscribe.
    app.post_raw(&format!("/wechat/demo-oa?{q}"), body_of_subscribe())
        .await;
    assert_eq!(
        app.state
            .store
            .follower(&demo_oa(), "oFan")
            .await
            .unwrap()
            .unwrap()
            .subscribed,
        Some(false)
    );
}

fn body_of_subscribe() -> String {
    oa_request(
        Mode::Safe,
        &event_xml(
            "oFan",
            1714036600,
            "subscribe",
            "<EventKey><![CDATA[qrscene_123]]></EventKey>",
        ),
    )
    .1
}

#[tokio::test]
async fn plaintext_requests_get_plaintext_replies() {
    let app = spawn_app().await;
    let (status, reply) = app
        .oa_post(
            Mode::Plaintext,
            &event_xml("oFan2", 1714036600, "subscribe", ""),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        reply.contains("<MsgType><![CDATA[text]]></MsgType>") && reply.contains("欢迎关注"),
        "{reply}"
    );
}

#[tokio::test]
async fn location_reports_update_the_follower_without_a_chat_message() {
    let app = spawn_app().await;
    let extra =
        "<Latitude>31.2304</Latitude><Longitude>121.4737</Longitude><Precision>65.0</Precision>";
    let (status, body) = app
        .oa_post(
            Mode::Safe,
            &event_xml("oWalker", 1714036600, "LOCATION", extra),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(app.stored("demo-oa").await.is_empty());
    let f = app
        .state
        .store
        .follower(&demo_oa(), "oWalker")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.latitude, f.longitude), (Some(31.2304), Some(121.4737)));
    // An older report arriving late does not win.
    let old = "<Latitude>1.0</Latitude><Longitude>2.0</Longitude><Precision>1</Precision>";
    app.oa_post(
        Mode::Safe,
        &event_xml("oWalker", 1714036500, "LOCATION", old),
    )
    .await;
    let f = app
        .state
        .store
        .follower(&demo_oa(), "oWalker")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.latitude, Some(31.2304));
}

#[tokio::test]
async fn repeated_events_and_job_reports_are_stored_once() {
    let app = spawn_app().await;
    let click = event_xml(
        "oUser1",
        1714036600,
        "CLICK",
        "<EventKey><![CDATA[HUMAN]]></EventKey>",
    );
    let job = event_xml(
        "oUser1",
        1714036601,
        "TEMPLATESENDJOBFINISH",
        "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
    );
    for _ in 0..2 {
        assert_eq!(app.oa_post(Mode::Safe, &click).await.0, 200);
        assert_eq!(app.oa_post(Mode::Safe, &job).await.0, 200);
    }
    // Inbound only: the click asks for a person, and what the customer is
    // told about it (an outbound message) may already be stored too.
    let stored: Vec<_> = app
        .stored("demo-oa")
        .await
        .into_iter()
        .filter(|m| m.direction == "in")
        .collect();
    let texts: Vec<_> = stored
        .iter()
        .map(|m| m.content.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, vec!["CLICK HUMAN", "TEMPLATESENDJOBFINISH success"]);
    assert_eq!(stored[1].channel_msg_id.as_deref(), Some("200163836"));
}

#[tokio::test]
async fn awkward_user_text_survives_exactly() {
    let app = spawn_app().await;
    let texts = [
        "emoji 😀👍🏽",
        "ctrl \u{2} and \u{1d} chars",
        "<xml><ToUserName>evil</ToUserName></xml>",
        "a]]>b &lt; & <script>",
    ];
    for (i, t) in texts.iter().enumerate() {
        let cdata_safe = t.replace("]]>", "]]]]><![CDATA[>");
        let (status, _) = app
            .oa_post(Mode::Safe, &text_xml("oUser1", i as i64 + 1, &cdata_safe))
            .await;
        assert_eq!(status, 200, "{t}");
    }
    let stored: Vec<_> = app
        .stored("demo-oa")
        .await
        .into_iter()
        .map(|m| m.content.unwrap())
        .collect();
    assert_eq!(stored, texts);
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let doctype = "<!DOCTYPE xml [<!ENTITY lol \"lol\">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol;</Content><MsgId>1</MsgId></xml>";
    assert_eq!(app.oa_post(Mode::Plaintext, doctype).await.0, 400);
    assert_eq!(app.oa_post(Mode::Safe, doctype).await.0, 400);
    let (status, text) = app.oa_post(Mode::Plaintext, "{\"ToUserName\":\"x\"}").await;
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("JSON"));
    assert_eq!(app.oa_post(Mode::Plaintext, "<xml><unclosed>").await.0, 400);
    let huge = text_xml("oUser1", 9, &"长".repeat(30_000));
    assert_eq!(app.oa_post(Mode::Plaintext, &huge).await.0, 413);
    assert!(app.stored("demo-oa").await.is_empty());
}

#[tokio::test]
async fn when_the_database_cannot_commit_wechat_is_told_to_retry() {
    let app = spawn_app().await;
    app.state.store.clone().close().await;
    let (status, body) = app
        .oa_post(Mode::Safe, &text_xml("oUser1", 1, "lost?"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body, "success");
}

#[tokio::test]
async fn signature_and_echostr_with_reserved_characters() {
    let app = spawn_app().await;
    let sig = oa_crypt().signature("1", "2");
    let echo = "a+b/c=d&e";
    let r = app
        .get(&format!(
            "/wechat/demo-oa?signature={sig}&timestamp=1&nonce=2&echostr={}",
            enc(echo)
        ))
        .await;
    assert_eq!(r.text().await.unwrap(), echo);
}
