//! Tests of the fake itself, over real HTTP.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ERR_INVALID_OPEN_KFID, FakeWechat, Fault};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

async fn get(
    c: &reqwest::Client,
    fake: &FakeWechat,
    endpoint: &str,
    query: &[(&str, &str)],
) -> Value {
    let resp = c
        .get(fake.url(endpoint))
        .query(query)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn post(
    c: &reqwest::Client,
    fake: &FakeWechat,
    endpoint: &str,
    token: &str,
    body: Value,
) -> Value {
    let resp = c
        .post(fake.url(endpoint))
        .query(&[("access_token", token)])
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn token(c: &reqwest::Client, fake: &FakeWechat, appid: &str) -> String {
    let v = get(
        c,
        fake,
        "token",
        &[
            ("grant_type", "client_credential"),
            ("appid", appid),
            ("secret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(v["expires_in"], 7200, "{v}");
    v["access_token"].as_str().expect("access_token").to_owned()
}

async fn stable(c: &reqwest::Client, fake: &FakeWechat, appid: &str, force: bool) -> String {
    let body = json!({"grant_type": "client_credential", "appid": appid, "secret": "s", "force_refresh": force});
    let v: Value = c
        .post(fake.url("stable_token"))
        .json(&body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {v}"))
        .to_owned()
}

fn text_msg(to: &str) -> Value {
    json!({"touser": to, "msgtype": "text", "text": {"content": "hi"}})
}

#[tokio::test]
async fn token_rotation_invalidates_previous() {
    let fake = FakeWechat::start().await;
    let c = client();
    let t1 = token(&c, &fake, "wxapp").await;
    let t2 = token(&c, &fake, "wxapp").await;
    assert_ne!(t1, t2);
    let other = token(&c, &fake, "wxother").await;

    let v = post(&c, &fake, "message/custom/send", &t1, text_msg("o1")).await;
    assert_eq!(v["errcode"], 40001, "{v}");
    let v = post(&c, &fake, "message/custom/send", &t2, text_msg("o1")).await;
    assert_eq!(v, json!({"errcode": 0, "errmsg": "ok"}));
    assert_eq!(fake.valid_tokens(), vec![t2.clone(), other.clone()]);

    let v = post(&c, &fake, "message/custom/send", "", text_msg("o1")).await;
    assert_eq!(v["errcode"], 41001, "{v}");
    let v = post(&c, &fake, "message/custom/send", "made-up", text_msg("o1")).await;
    assert_eq!(v["errcode"], 40001, "{v}");

    fake.expire_all_tokens();
    assert!(fake.valid_tokens().is_empty());
    let v = post(&c, &fake, "message/custom/send", &t2, text_msg("o1")).await;
    assert_eq!(v["errcode"], 42001, "{v}");
    let v = post(&c, &fake, "message/custom/send", &t1, text_msg("o1")).await;
    assert_eq!(v["errcode"], 40001, "rotated stays 40001: {v}");
    let t3 = token(&c, &fake, "wxapp").await;
    assert_eq!(fake.valid_tokens(), vec![t3]);

    // Every call was recorded, token calls included, with their query.
    assert_eq!(fake.count("token"), 4);
    assert_eq!(
        fake.requests_to("token")[0]
            .query
            .get("secret")
            .map(String::as_str),
        Some("s3cret")
    );
    let sends = fake.requests_to("message/custom/send");
    assert_eq!(sends.len(), 6);
    assert_eq!(sends[0].method, "POST");
    assert_eq!(sends[0].json.as_ref().unwrap()["touser"], "o1");

    // Argument errors.
    let v = get(
        &c,
        &fake,
        "token",
        &[("grant_type", "client_credential"), ("secret", "s")],
    )
    .await;
    assert_eq!(v["errcode"], 41002, "{v}");
    let v = get(
        &c,
        &fake,
        "token",
        &[("grant_type", "nope"), ("appid", "a"), ("secret", "s")],
    )
    .await;
    assert_eq!(v["errcode"], 40002, "{v}");
    let v = get(
        &c,
        &fake,
        "token",
        &[("grant_type", "client_credential"), ("appid", "a")],
    )
    .await;
    assert_eq!(v["errcode"], 41004, "{v}");
}

#[tokio::test]
async fn stable_token_and_gettoken() {
    let fake = FakeWechat::start().await;
    let c = client();
    let s1 = stable(&c, &fake, "wxapp", false).await;
    assert_eq!(stable(&c, &fake, "wxapp", false).await, s1);
    // `token` is a separate namespace: it does not rotate the stable token.
    let t = token(&c, &fake, "wxapp").await;
    assert_eq!(stable(&c, &fake, "wxapp", false).await, s1);
    let s2 = stable(&c, &fake, "wxapp", true).await;
    assert_ne!(s1, s2);
    assert_eq!(stable(&c, &fake, "wxapp", false).await, s2);
    let v = post(
        &c,
        &fake,
        "message/custom/typing",
        &s1,
        json!({"touser": "o", "command": "Typing"}),
    )
    .await;
    assert_eq!(v["errcode"], 40001, "{v}");
    let v = post(
        &c,
        &fake,
        "message/custom/typing",
        &s2,
        json!({"touser": "o", "command": "Typing"}),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    let v = post(
        &c,
        &fake,
        "message/custom/typing",
        &t,
        json!({"touser": "o", "command": "CancelTyping"}),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    // After expiry a plain call issues a fresh one.
    fake.expire_all_tokens();
    let s3 = stable(&c, &fake, "wxapp", false).await;
    assert_ne!(s3, s2);

    // WeCom gettoken never invalidates earlier tokens.
    let q = [("corpid", "ww1"), ("corpsecret", "cs")];
    let w1 = get(&c, &fake, "gettoken", &q).await;
    let w2 = get(&c, &fake, "gettoken", &q).await;
    assert_eq!(w1["errcode"], 0);
    let (w1, w2) = (
        w1["access_token"].as_str().unwrap(),
        w2["access_token"].as_str().unwrap(),
    );
    assert_ne!(w1, w2);
    for t in [w1, w2] {
        let v = post(
            &c,
            &fake,
            "kf/service_state/get",
            t,
            json!({"open_kfid": "wk1", "external_userid": "wm1"}),
        )
        .await;
        assert_eq!(
            v,
            json!({"errcode": 0, "errmsg": "ok", "service_state": 1, "servicer_userid": ""})
        );
    }
    let v = get(&c, &fake, "gettoken", &[("corpsecret", "cs")]).await;
    assert_eq!(v["errcode"], 41002, "{v}");
}

#[tokio::test]
async fn faults_apply_in_order() {
    let fake = FakeWechat::start().await;
    let c = client();
    let t = token(&c, &fake, "wxapp").await;
    let ep = "message/custom/send";
    fake.inject(ep, Fault::ErrCode(-1), 2);
    fake.inject(ep, Fault::Status(503), 1);
    fake.inject(ep, Fault::Delay(Duration::from_millis(300)), 1);
    let send = || {
        c.post(fake.url(ep))
            .query(&[("access_token", t.as_str())])
            .json(&text_msg("o"))
            .send()
    };

    for _ in 0..2 {
        let v: Value = send().await.unwrap().json().await.unwrap();
        assert_eq!(v, json!({"errcode": -1, "errmsg": "fake fault"}));
    }
    let resp = send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.bytes().await.unwrap().is_empty());
    let started = Instant::now();
    let v: Value = send().await.unwrap().json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["errcode"], 0, "{v}");
    let v: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");

    // Faults apply before the token check, token endpoints included; other endpoints unaffected.
    fake.inject_always(ep, Fault::ErrCode(45015));
    fake.inject("token", Fault::ErrCode(-1), 1);
    for _ in 0..3 {
        let v = post(&c, &fake, ep, "not-a-token", text_msg("o")).await;
        assert_eq!(v["errcode"], 45015, "{v}");
    }
    let v = get(
        &c,
        &fake,
        "token",
        &[
            ("grant_type", "client_credential"),
            ("appid", "wxapp"),
            ("secret", "s"),
        ],
    )
    .await;
    assert_eq!(v["errcode"], -1, "{v}");
    let v = post(
        &c,
        &fake,
        "message/template/send",
        &t,
        json!({"touser": "o", "template_id": "T", "data": {}}),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    fake.clear_faults();
    let v = post(&c, &fake, ep, &t, text_msg("o")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(fake.count(ep), 9);
}

#[tokio::test]
async fn template_msgids_increase_and_unknown_endpoints_are_recorded() {
    let fake = FakeWechat::start().await;
    let c = client();
    let t = token(&c, &fake, "wxapp").await;
    let body = json!({"touser": "o", "template_id": "T", "data": {"k": {"value": "v"}}});
    let a = post(&c, &fake, "message/template/send", &t, body.clone()).await;
    let b = post(&c, &fake, "message/template/send", &t, body).await;
    assert_eq!(a["errcode"], 0);
    assert!(
        b["msgid"].as_i64().unwrap() > a["msgid"].as_i64().unwrap(),
        "{a} {b}"
    );
    let v = post(
        &c,
        &fake,
        "message/template/send",
        &t,
        json!({"template_id": "T"}),
    )
    .await;
    assert_eq!(v["errcode"], 40003, "{v}");

    let v = post(&c, &fake, "user/info/batchget", &t, json!({})).await;
    assert_eq!(
        v,
        json!({"errcode": -1, "errmsg": "fake: unknown endpoint"})
    );
    assert_eq!(fake.count("user/info/batchget"), 1);
    // Wrong method on a POST endpoint.
    let v = get(
        &c,
        &fake,
        "message/custom/send",
        &[("access_token", t.as_str())],
    )
    .await;
    assert_eq!(v["errcode"], 43002, "{v}");
}

#[tokio::test]
async fn kf_sync_msg_pages_with_has_more() {
    let fake = FakeWechat::start().await;
    let c = client();
    let corp = get(
        &c,
        &fake,
        "gettoken",
        &[("corpid", "ww1"), ("corpsecret", "cs")],
    )
    .await;
    let t = corp["access_token"].as_str().unwrap().to_owned();
    let msgs = |from: usize, to: usize| {
        (from..to)
            .map(|i| json!({"msgid": format!("m{i}"), "external_userid": "wm1", "msgtype": "text", "text": {"content": format!("hello {i}")}}))
            .collect::<Vec<_>>()
    };
    fake.add_kf_messages("wk1", msgs(0, 5));
    fake.add_kf_messages(
        "wk2",
        vec![json!({"msgtype": "text", "text": {"content": "other"}})],
    );
    fake.set_kf_page_size(2);

    let sync = |cursor: &str| json!({"cursor": cursor, "token": "ENC_TOKEN", "limit": 1000, "voice_format": 0, "open_kfid": "wk1"});
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut has_more_flags = Vec::new();
    loop {
        let v = post(&c, &fake, "kf/sync_msg", &t, sync(&cursor)).await;
        assert_eq!(v["errcode"], 0, "{v}");
        for m in v["msg_list"].as_array().unwrap() {
            assert_eq!(m["open_kfid"], "wk1");
            seen.push(m["msgid"].as_str().unwrap().to_owned());
        }
        cursor = v["next_cursor"].as_str().unwrap().to_owned();
        has_more_flags.push(v["has_more"].as_i64().unwrap());
        if v["has_more"] == 0 {
            break;
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(has_more_flags, [1, 1, 0]);

    // Nothing new: empty page, same cursor. New messages continue from the saved cursor.
    let v = post(&c, &fake, "kf/sync_msg", &t, sync(&cursor)).await;
    assert_eq!(
        (
            v["msg_list"].as_array().unwrap().len(),
            v["has_more"].as_i64()
        ),
        (0, Some(0))
    );
    assert_eq!(v["next_cursor"], cursor.as_str());
    fake.add_kf_messages("wk1", msgs(5, 6));
    fake.set_kf_page_size(1000);
    let mut req = sync(&cursor);
    req["limit"] = json!(1);
    let v = post(&c, &fake, "kf/sync_msg", &t, req).await;
    assert_eq!(v["msg_list"][0]["msgid"], "m5");
    assert_eq!(v["msg_list"][0]["text"]["content"], "hello 5");
    assert_eq!(v["has_more"], 0);

    // The other account's stream is separate and gets defaults filled in.
    let v = post(
        &c,
        &fake,
        "kf/sync_msg",
        &t,
        json!({"cursor": "", "open_kfid": "wk2"}),
    )
    .await;
    let list = v["msg_list"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["open_kfid"], "wk2");
    assert!(
        list[0]["msgid"].is_string() && list[0]["send_time"].is_i64(),
        "{v}"
    );

    let v = post(
        &c,
        &fake,
        "kf/sync_msg",
        &t,
        json!({"cursor": "", "limit": 10}),
    )
    .await;
    assert_eq!(v["errcode"], ERR_INVALID_OPEN_KFID, "{v}");

    // send_msg echoes a given msgid, otherwise makes one; service state can be handed over.
    let send = json!({"touser": "wm1", "open_kfid": "wk1", "msgid": "mine", "msgtype": "text", "text": {"content": "x"}});
    let v = post(&c, &fake, "kf/send_msg", &t, send).await;
    assert_eq!(v, json!({"errcode": 0, "errmsg": "ok", "msgid": "mine"}));
    let send =
        json!({"touser": "wm1", "open_kfid": "wk1", "msgtype": "text", "text": {"content": "x"}});
    let v = post(&c, &fake, "kf/send_msg", &t, send).await;
    assert!(v["msgid"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    let trans = json!({"open_kfid": "wk1", "external_userid": "wm1", "service_state": 3, "servicer_userid": "zhang"});
    assert_eq!(
        post(&c, &fake, "kf/service_state/trans", &t, trans).await["errcode"],
        0
    );
    let v = post(
        &c,
        &fake,
        "kf/service_state/get",
        &t,
        json!({"open_kfid": "wk1", "external_userid": "wm1"}),
    )
    .await;
    assert_eq!(
        (v["service_state"].as_i64(), v["servicer_userid"].as_str()),
        (Some(3), Some("zhang"))
    );
}

#[tokio::test]
async fn media_upload_then_get_round_trip() {
    let fake = FakeWechat::start().await;
    let c = client();
    let t = token(&c, &fake, "wxapp").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let boundary = "----fakeBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"pic.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let upload = |kind: &str, body: Vec<u8>| {
        c.post(fake.url("media/upload"))
            .query(&[("access_token", t.as_str()), ("type", kind)])
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };

    let v: Value = upload("image", body.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "image", "{v}");
    assert!(v["created_at"].is_i64(), "{v}");
    let media_id = v["media_id"].as_str().unwrap().to_owned();
    assert_eq!(
        fake.uploaded_media(),
        vec![(media_id.clone(), "image".to_owned(), bytes.clone())]
    );

    let resp = c
        .get(fake.url("media/get"))
        .query(&[("access_token", &t), ("media_id", &media_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);

    // Thumb limit is 64 KB; unknown type; missing part; unknown media_id.
    let v: Value = upload("thumb", body.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 40012, "{v}");
    let v: Value = upload("gif", body).await.unwrap().json().await.unwrap();
    assert_eq!(v["errcode"], 40004, "{v}");
    let v: Value = upload("voice", b"not multipart".to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 41005, "{v}");
    let v = get(
        &c,
        &fake,
        "media/get",
        &[("access_token", t.as_str()), ("media_id", "nope")],
    )
    .await;
    assert_eq!(v, json!({"errcode": 40007, "errmsg": "invalid media_id"}));
    assert_eq!(fake.uploaded_media().len(), 1);

    fake.put_media("preset", "audio/amr", b"#!AMR\n".to_vec());
    let resp = c
        .get(fake.url("media/get"))
        .query(&[("access_token", t.as_str()), ("media_id", "preset")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "audio/amr");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"#!AMR\n");
}

#[tokio::test]
async fn wait_for_wakes_on_requests() {
    let fake = FakeWechat::start().await;
    let c = client();
    let url = fake.url("message/custom/send");
    let sender = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = c
                .post(&url)
                .query(&[("access_token", "x")])
                .json(&text_msg("o"))
                .send()
                .await;
        }
    });
    let got = fake
        .wait_for("message/custom/send", 3, Duration::from_secs(10))
        .await;
    assert!(got.len() >= 3);
    assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
    sender.await.unwrap();
    // Already satisfied: returns at once.
    assert_eq!(
        fake.wait_for("message/custom/send", 1, Duration::from_millis(1))
            .await
            .len(),
        3
    );
}

#[tokio::test]
#[should_panic(expected = "timed out")]
async fn wait_for_panics_on_timeout() {
    let fake = FakeWechat::start().await;
    fake.wait_for("kf/sync_msg", 1, Duration::from_millis(50))
        .await;
}

#[tokio::test]
async fn serves_concurrent_delayed_requests_in_parallel() {
    let fake = FakeWechat::start().await;
    let c = client();
    let t = token(&c, &fake, "wxapp").await;
    fake.inject_always(
        "message/custom/send",
        Fault::Delay(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let calls = (0..50).map(|_| post(&c, &fake, "message/custom/send", &t, text_msg("o")));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|v| v["errcode"] == 0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delays ran serially: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.count("message/custom/send"), 50);
}

#[tokio::test]
async fn drop_stops_the_server() {
    let fake = FakeWechat::start().await;
    let url = fake.url("token");
    let c = client();
    assert!(c.get(&url).send().await.is_ok());
    drop(fake);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .get(&url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "server still answering after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
