//! Media kept forever: inbound media fetched from the fake WeChat API and
//! stored content-addressed, retried, served to signed-in users; outbound
//! media uploaded once and again after WeChat forgets it.

use std::time::Duration;

use chrono::Utc;
use kefu::ids::{AccountId, MessageId};
use kefu::media::MediaKind;
use kefu::store::entities::messages;
use kefu::wechat::api::{ApiError, OutboundContent, SendRoute};
use reqwest::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE};
use serde_json::json;

use crate::fake_wechat::Fault;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::login::browser;
use crate::wechat_client::Mode;

/// A small real PNG header and some body bytes.
pub(crate) fn png(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

fn jpeg(tag: &str) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend_from_slice(tag.as_bytes());
    b
}

pub(crate) fn image_xml(msg_id: i64, media_id: &str, pic_url: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[oCustomer]]></FromUserName>\
         <CreateTime>1714036504</CreateTime><MsgType><![CDATA[image]]></MsgType>\
         <PicUrl><![CDATA[{pic_url}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>\
         <MsgId>{msg_id}</MsgId></xml>"
    )
}

fn voice_xml(msg_id: i64, media_id: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[oCustomer]]></FromUserName>\
         <CreateTime>1714036504</CreateTime><MsgType><![CDATA[voice]]></MsgType>\
         <MediaId><![CDATA[{media_id}]]></MediaId><Format><![CDATA[amr]]></Format>\
         <MsgId>{msg_id}</MsgId></xml>"
    )
}

/// Settings with the download worker off: tests drive `run_once_at`.
async fn spawn_manual() -> TestApp {
    spawn_app_with(|s| s.media.download_enabled = false).await
}

/// Posts an OA callback and returns the stored message.
async fn post_oa(app: &TestApp, xml: &str) -> messages::Model {
    let (status, _) = app.oa_post(Mode::Safe, xml).await;
    assert_eq!(status, 200);
    app.stored("demo-oa").await.pop().expect("stored")
}

fn oa() -> AccountId {
    AccountId::parse("demo-oa").unwrap()
}

async fn message(app: &TestApp, id: i64) -> messages::Model {
    app.state.store.message(MessageId(id)).await.unwrap()
}

async fn download(app: &TestApp, id: i64) -> kefu::store::entities::media_downloads::Model {
    app.state
        .store
        .media_download(MessageId(id))
        .await
        .unwrap()
        .expect("a download row")
}

/// Signs in as the first administrator; the session cookie's token.
async fn signed_in(app: &TestApp) -> String {
    browser::create_admin(app).await;
    browser::sign_in(app, "ada", browser::ADMIN_PW).await.token
}

async fn get_media(app: &TestApp, id: i64, token: Option<&str>) -> reqwest::Response {
    let mut rb = app.client.get(format!("{}/media/{id}", app.address));
    if let Some(t) = token {
        rb = rb.header(COOKIE, format!("kefu_session={t}"));
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn an_oa_image_is_fetched_stored_linked_and_served_to_signed_in_users_only() {
    let app = spawn_app().await;
    let bytes = png("first picture");
    app.fake.put_media("IMG_1", "image/png", bytes.clone());
    let msg = post_oa(
        &app,
        &image_xml(1001, "IMG_1", "http://127.0.0.1:9/unused.jpg"),
    )
    .await;

    // The worker is woken by MessageStored: wait (bounded) for the link.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let object_id = loop {
        if let Some(id) = message(&app, msg.id).await.media_object_id {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "media not fetched in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let get = app.fake.requests_to("media/get");
    assert_eq!(get.len(), 1);
    assert_eq!(get[0].query["media_id"], "IMG_1");
    assert_eq!(download(&app, msg.id).await.status, "done");

    let row = app.state.store.media_object(object_id).await.unwrap();
    assert_eq!(row.size, bytes.len() as i64);
    assert_eq!(row.content_type, "image/png");
    assert_eq!(row.sha256.len(), 64);
    assert_eq!(
        row.path,
        format!("{}/{}/{}", &row.sha256[..2], &row.sha256[2..4], row.sha256)
    );
    let on_disk = std::fs::read(app.settings.media.dir.join(&row.path)).unwrap();
    assert_eq!(on_disk, bytes);

    // Signed out: sent to the sign-in page, nothing served.
    let r = get_media(&app, object_id, None).await;
    assert_eq!(r.status(), 303);
    assert!(browser::location(&r).starts_with("/login"));

    let token = signed_in(&app).await;
    let r = get_media(&app, object_id, Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    assert_eq!(r.headers()[CONTENT_DISPOSITION], "inline");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    assert_eq!(
        get_media(&app, object_id + 1000, Some(&token))
            .await
            .status(),
        404
    );
    let r = app
        .client
        .get(format!("{}/media/not-a-number", app.address))
        .header(COOKIE, format!("kefu_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_same_bytes_are_stored_once() {
    let app = spawn_manual().await;
    let bytes = jpeg("same picture twice");
    app.fake.put_media("A", "image/jpeg", bytes.clone());
    app.fake.put_media("B", "image/jpeg", bytes.clone());
    let first = post_oa(&app, &image_xml(1, "A", "")).await;
    let second = post_oa(&app, &image_xml(2, "B", "")).await;

    let step = app.state.media.downloader.run_once().await.unwrap();
    assert_eq!((step.queued, step.done), (2, 2));
    let a = message(&app, first.id).await.media_object_id.unwrap();
    let b = message(&app, second.id).await.media_object_id.unwrap();
    assert_eq!(a, b, "one object for one content");
    assert_eq!(app.state.store.media_object_count().await.unwrap(), 1);
    let files: Vec<_> = walk(&app.settings.media.dir)
        .into_iter()
        .filter(|p| !p.starts_with(app.settings.media.dir.join("tmp")))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        walk(&app.settings.media.dir.join("tmp")).is_empty(),
        "no temporary file left"
    );
    // Nothing more to do.
    assert!(
        app.state
            .media
            .downloader
            .run_once()
            .await
            .unwrap()
            .is_empty()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_transient_failure_is_retried_with_backoff_until_it_succeeds() {
    let app = spawn_manual().await;
    app.fake
        .put_media("V1", "audio/amr", b"#!AMR\nvoice".to_vec());
    app.fake.inject("media/get", Fault::Status(502), 2);
    let msg = post_oa(&app, &voice_xml(7, "V1")).await;
    let d = &app.state.media.downloader;

    let now = Utc::now();
    let step = d.run_once_at(now).await.unwrap();
    assert_eq!((step.done, step.retried), (0, 1));
    let row = download(&app, msg.id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
    assert!(row.last_error.unwrap().contains("502"));
    assert!(row.next_attempt_at > now);
    // Not due yet.
    assert!(d.run_once_at(now).await.unwrap().is_empty());

    let later = now + chrono::Duration::hours(1);
    assert_eq!(d.run_once_at(later).await.unwrap().retried, 1);
    let step = d
        .run_once_at(later + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(step.done, 1);
    assert_eq!(app.fake.count("media/get"), 3);
    let object = message(&app, msg.id).await.media_object_id.unwrap();
    let row = app.state.store.media_object(object).await.unwrap();
    assert_eq!(row.content_type, "audio/amr");
    assert_eq!(download(&app, msg.id).await.status, "done");
}

#[tokio::test]
async fn retries_end_and_the_message_says_why() {
    let app = spawn_app_with(|s| {
        s.media.download_enabled = false;
        s.media.download_max_attempts = 2;
    })
    .await;
    app.fake.inject_always("media/get", Fault::Status(503));
    let msg = post_oa(&app, &voice_xml(8, "V2")).await;
    let d = &app.state.media.downloader;
    let now = Utc::now();
    assert_eq!(d.run_once_at(now).await.unwrap().retried, 1);
    assert_eq!(
        d.run_once_at(now + chrono::Duration::days(1))
            .await
            .unwrap()
            .failed,
        1
    );
    let row = download(&app, msg.id).await;
    assert_eq!(row.status, "failed");
    assert!(row.reason.unwrap().contains("after 2 attempts"));
    assert_eq!(message(&app, msg.id).await.media_object_id, None);
}

#[tokio::test]
async fn expired_or_oversized_media_is_marked_unavailable_at_once() {
    let app = spawn_app_with(|s| {
        s.media.download_enabled = false;
        s.media.max_voice_bytes = 1024;
    })
    .await;
    // Unknown to WeChat (40007): permanent.
    let gone = post_oa(&app, &voice_xml(1, "EXPIRED")).await;
    app.fake.put_media("BIG", "audio/amr", vec![b'#'; 4096]);
    let big = post_oa(&app, &voice_xml(2, "BIG")).await;

    let step = app.state.media.downloader.run_once().await.unwrap();
    assert_eq!(step.failed, 2);
    let row = download(&app, gone.id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    let reason = row.reason.unwrap();
    assert!(
        reason.contains("WeChat no longer provides this media"),
        "{reason}"
    );
    assert!(row.last_error.unwrap().contains("40007"));
    let reason = download(&app, big.id).await.reason.unwrap();
    assert_eq!(
        reason,
        "语音超过 1 KB，无法保存。The voice message is larger than 1 KB."
    );
    assert_eq!(message(&app, big.id).await.media_object_id, None);
    assert!(
        walk(&app.settings.media.dir.join("tmp")).is_empty(),
        "partial file removed"
    );
}

#[tokio::test]
async fn an_oa_image_falls_back_on_its_pic_url() {
    let app = spawn_manual().await;
    let bytes = jpeg("from the picture URL");
    let url = app
        .fake
        .put_file("/mmbiz_jpg/pic1.jpg", "image/jpeg", bytes.clone());
    // media/get fails: WeChat no longer has the media id.
    let msg = post_oa(&app, &image_xml(5, "NOT_THERE", &url)).await;

    let step = app.state.media.downloader.run_once().await.unwrap();
    assert_eq!(step.done, 1);
    assert_eq!(app.fake.count("media/get"), 1);
    assert_eq!(app.fake.count("/mmbiz_jpg/pic1.jpg"), 1);
    let object = message(&app, msg.id).await.media_object_id.unwrap();
    let (row, stored) = app.state.media.store.read(object).await.unwrap();
    assert_eq!(row.content_type, "image/jpeg");
    assert_eq!(stored, bytes);
}

#[tokio::test]
async fn wecom_kf_images_and_files_are_kept() {
    let app = spawn_manual().await;
    let pdf = b"%PDF-1.4 a contract".to_vec();
    app.fake.put_media("KF_IMG", "image/png", png("kf picture"));
    app.fake
        .put_media("KF_FILE", "application/pdf", pdf.clone());
    app.fake.add_kf_messages(
        "wkKF1",
        vec![
            json!({"msgid": "k1", "external_userid": "wmUser", "origin": 3, "msgtype": "image", "image": {"media_id": "KF_IMG"}}),
            json!({"msgid": "k2", "external_userid": "wmUser", "origin": 3, "msgtype": "file", "file": {"media_id": "KF_FILE"}}),
        ],
    );
    let syncer = kefu::channels::kf_sync::KfSyncer {
        store: app.state.store.clone(),
        bus: app.state.bus.clone(),
        channels: app.state.channels.clone(),
    };
    syncer
        .sync(
            &AccountId::parse("demo-kf").unwrap(),
            "wkKF1",
            Some("TOKEN"),
        )
        .await
        .unwrap();
    let stored = app.stored("demo-kf").await;
    assert_eq!(stored.len(), 2);

    assert_eq!(app.state.media.downloader.run_once().await.unwrap().done, 2);
    let image = message(&app, stored[0].id).await.media_object_id.unwrap();
    let file = message(&app, stored[1].id).await.media_object_id.unwrap();
    assert_eq!(
        app.state
            .store
            .media_object(image)
            .await
            .unwrap()
            .content_type,
        "image/png"
    );
    let token = signed_in(&app).await;
    let r = get_media(&app, file, Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/pdf");
    assert!(
        r.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), pdf);
}

#[tokio::test]
async fn outbound_media_is_uploaded_once_cached_and_uploaded_again_after_40007() {
    let app = spawn_manual().await;
    let media = &app.state.media;
    let bytes = jpeg("agent's picture");
    let object = media
        .store
        .put(MediaKind::Image, Some("image/jpeg"), &bytes)
        .await
        .unwrap();

    let first = media.upload_for_send(&oa(), object.id).await.unwrap();
    let uploads = app.fake.uploaded_media();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        (uploads[0].0.as_str(), uploads[0].1.as_str()),
        (first.as_str(), "image")
    );
    assert_eq!(uploads[0].2, bytes);
    assert_eq!(
        media.upload_for_send(&oa(), object.id).await.unwrap(),
        first
    );
    assert_eq!(app.fake.uploaded_media().len(), 1, "cached");
    // After 2.5 days WeChat is about to forget it: uploaded again.
    let later = Utc::now() + chrono::Duration::hours(61);
    let second = media
        .upload_for_send_at(&oa(), object.id, later)
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(app.fake.uploaded_media().len(), 2);

    // WeChat says the cached id is invalid: uploaded again, sent again.
    app.fake
        .inject("message/custom/send", Fault::ErrCode(40007), 1);
    let acc = app.state.channels.get_any("demo-oa").unwrap();
    media
        .with_uploaded(&oa(), object.id, |media_id| {
            let api = acc.api.clone();
            async move {
                api.send(
                    "oCustomer",
                    &OutboundContent::Image { media_id },
                    SendRoute::OfficialAccount { kf_account: None },
                )
                .await
            }
        })
        .await
        .unwrap();
    let uploads = app.fake.uploaded_media();
    assert_eq!(uploads.len(), 3);
    let sends = app.fake.requests_to("message/custom/send");
    assert_eq!(sends.len(), 2);
    let sent_id = sends[1].json.as_ref().unwrap()["image"]["media_id"].clone();
    assert_eq!(sent_id, json!(uploads[2].0));
    assert_eq!(
        media.upload_for_send(&oa(), object.id).await.unwrap(),
        uploads[2].0,
        "the new id is cached"
    );

    // WeCom kf takes files.
    let pdf = media
        .store
        .put(MediaKind::File, Some("application/pdf"), b"%PDF-1.4 x")
        .await
        .unwrap();
    let kf = AccountId::parse("demo-kf").unwrap();
    media.upload_for_send(&kf, pdf.id).await.unwrap();
    assert_eq!(app.fake.uploaded_media().last().unwrap().1, "file");
    // An Official Account cannot send a file.
    assert!(media.upload_for_send(&oa(), pdf.id).await.is_err());
}

#[tokio::test]
async fn size_limits_and_types_are_refused_with_a_clear_error() {
    let app = spawn_manual().await;
    let store = &app.state.media.store;
    let big = vec![0xFFu8; 10 * 1024 * 1024 + 1];
    let e = store
        .put(MediaKind::Image, Some("image/jpeg"), &big)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "图片超过 10 MB，无法保存。The image is larger than 10 MB."
    );
    let e = store
        .put(MediaKind::Image, Some("text/html"), b"<html>")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("text/html"), "{e}");
    assert!(e.to_string().contains("not accepted"), "{e}");
    // Files take any type, but active content is only ever downloaded.
    let html = store
        .put(
            MediaKind::File,
            Some("text/html"),
            b"<script>alert(1)</script>",
        )
        .await
        .unwrap();
    assert_eq!(html.content_type, "application/octet-stream");
    assert_eq!(app.state.store.media_object_count().await.unwrap(), 1);
}

#[tokio::test]
async fn media_get_decodes_errors_and_refreshes_a_rejected_token_once() {
    let app = spawn_manual().await;
    let api = app.state.channels.get_any("demo-oa").unwrap().api.clone();
    let e = api.media_get("UNKNOWN").await.unwrap_err();
    assert_eq!(e.code(), Some(40007));
    assert!(matches!(e, ApiError::WeChat { .. }));

    app.fake.put_media("M", "image/png", png("token"));
    app.fake.expire_all_tokens();
    let mut stream = api.media_get("M").await.unwrap();
    assert_eq!(stream.content_type.as_deref(), Some("image/png"));
    let mut got = Vec::new();
    while let Some(c) = stream.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, png("token"));
    assert_eq!(
        app.fake.count("media/get"),
        3,
        "40007, then 42001 and the retry"
    );
}
