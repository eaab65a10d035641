//! The customer panel through HTTP: the CRM record, trades, identities and
//! the whole history across channels and agents, paged; who may see a
//! customer, and their media.

use std::time::Duration;

use chrono::Utc;
use kefu::auth::Role;
use kefu::bus::Event;
use kefu::ids::CustomerId;
use kefu::routing::AgentStatus;
use kefu::store::crm::VehicleRow;
use reqwest::header::COOKIE;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::desk::{api_get, changed, customer_of, next_event, reload, say, session, staff};
use crate::helpers::{TestApp, spawn_app_with};
use crate::media::{image_xml, png};
use crate::wechat_client::Mode;

const OPENID: &str = "oCustomer";

/// A company: alice (agent) and sue (supervisor) in 上海, sam supervising
/// 北京, bob an agent of no group; the customer bound to 上海 with a CRM
/// record and a trade, on the Official Account and on WeCom kf (joined by
/// their unionid), served by alice on the OA.
struct World {
    app: TestApp,
    customer: CustomerId,
    conversation: i64,
}

async fn world() -> World {
    let app = spawn_app_with(|s| {
        s.routing.queue_sweep_secs = 3600;
        s.routing.reconcile_secs = 3600;
        for a in &mut s.accounts {
            a.link_unionid = true;
        }
    })
    .await;
    let store = &app.state.store;
    let alice = staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    staff(&app, "bob", Role::Agent, AgentStatus::Offline).await;
    let sue = staff(&app, "sue", Role::Supervisor, AgentStatus::Offline).await;
    let sam = staff(&app, "sam", Role::Supervisor, AgentStatus::Offline).await;
    let sh = store.create_city_group("上海").await.unwrap();
    let bj = store.create_city_group("北京").await.unwrap();
    store.add_group_member(sh, alice).await.unwrap();
    store.add_group_member(sh, sue).await.unwrap();
    store.add_group_member(bj, sam).await.unwrap();
    reload(&app).await;
    app.fake.set_user(OPENID, Some("uCustomer"), None);
    app.fake
        .set_user("wmCustomer", Some("uCustomer"), Some("王先生微信"));

    let customer = customer_of(&app, OPENID).await;
    kefu::store::entities::customers::ActiveModel {
        id: Set(customer.0),
        crm_id: Set(Some("c-wang".into())),
        name: Set(Some("王先生".into())),
        phone: Set(Some("13800000000".into())),
        region: Set(Some("上海".into())),
        city_group_id: Set(Some(sh.0)),
        tags: Set(Some("VIP,卖车".into())),
        ..Default::default()
    }
    .update(store.writer())
    .await
    .unwrap();
    kefu::store::crm::upsert_vehicle(
        store.writer(),
        &VehicleRow {
            crm_id: "t-1".into(),
            customer,
            plate: Some("沪A·12345".into()),
            model: Some("大众 帕萨特 2019".into()),
            order_no: Some("SO-2026-0001".into()),
            payment_status: "paid".into(),
            payment_updated_at: Some(Utc::now()),
            sale_status: "sold".into(),
            sale_updated_at: None,
            details: None,
        },
    )
    .await
    .unwrap();

    let mut rx = app.state.bus.subscribe();
    say(&app, OPENID, 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));
    app.fake.add_kf_messages(
        "wkKF1",
        vec![
            json!({"msgid": "k1", "external_userid": "wmCustomer", "send_time": 1714036504,
                    "origin": 3, "msgtype": "text", "text": {"content": "企业微信这边也问一下"}}),
        ],
    );
    assert_eq!(app.kf_notify("wkKF1", "TOKEN").await.0, 200);
    next_event(&mut rx, |e| {
        matches!(e, Event::CustomersMerged { removed, .. } if !removed.is_empty()).then_some(())
    })
    .await;
    World {
        app,
        customer,
        conversation: got.conversation.0,
    }
}

#[tokio::test]
async fn the_panel_shows_the_crm_record_trades_and_the_history_of_every_channel() {
    let w = world().await;
    let app = &w.app;
    let alice = session(app, "alice").await;
    let path = format!("/api/customers/{}", w.customer.0);
    let (status, p) = api_get(app, &path, Some(&alice)).await;
    assert_eq!(status, 200, "{p}");
    let c = &p["customer"];
    assert_eq!(c["crm_id"], "c-wang");
    assert_eq!(
        c["name"], "王先生",
        "the CRM name is not overwritten by the nickname"
    );
    assert_eq!(c["phone"], "13800000000");
    assert_eq!(c["tags"], json!(["VIP", "卖车"]));
    assert_eq!(c["city_group"]["name"], "上海");
    assert_eq!(c["dedicated_agent"]["login"], "alice");
    let kinds: Vec<&str> = p["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    for k in ["oa_openid", "wecom_external_userid", "unionid"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let oa = p["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "oa_openid")
        .unwrap();
    assert_eq!(oa["account_name"], "示例公众号 (example)");
    assert_eq!(p["vehicles"][0]["plate"], "沪A·12345");
    assert_eq!(p["vehicles"][0]["payment_status"], "paid");
    let convs = p["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "{convs:?}");
    let served = convs.iter().find(|c| c["id"] == w.conversation).unwrap();
    assert_eq!(served["agent_name"], "alice 名字");
    assert!(convs.iter().any(|c| c["channel"] == "wecom_kf"));

    // The history: both channels, paged back from the newest.
    let (status, all) = api_get(app, &format!("{path}/messages"), Some(&alice)).await;
    assert_eq!(status, 200);
    let all = all["messages"].as_array().unwrap().clone();
    let channels: Vec<&str> = all.iter().map(|m| m["channel"].as_str().unwrap()).collect();
    assert!(channels.contains(&"oa") && channels.contains(&"wecom_kf"));
    assert!(all.iter().any(|m| m["content"] == "企业微信这边也问一下"));
    let (_, page) = api_get(app, &format!("{path}/messages?limit=2"), Some(&alice)).await;
    assert_eq!(page["more"], true);
    let newest: Vec<Value> = page["messages"].as_array().unwrap().clone();
    assert_eq!(newest.as_slice(), &all[all.len() - 2..]);
    let before = newest[0]["id"].as_i64().unwrap();
    let (_, older) = api_get(
        app,
        &format!("{path}/messages?limit=100&before={before}"),
        Some(&alice),
    )
    .await;
    assert_eq!(older["more"], false);
    assert_eq!(
        older["messages"].as_array().unwrap().as_slice(),
        &all[..all.len() - 2]
    );
    let (status, _) = api_get(app, &format!("{path}/messages?limit=x"), Some(&alice)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn only_the_customers_agents_and_their_groups_supervisors_see_them() {
    let w = world().await;
    let app = &w.app;
    let path = format!("/api/customers/{}", w.customer.0);
    for (login, want) in [("alice", 200), ("sue", 200), ("bob", 403), ("sam", 403)] {
        let s = session(app, login).await;
        assert_eq!(api_get(app, &path, Some(&s)).await.0, want, "{login}");
        assert_eq!(
            api_get(app, &format!("{path}/messages"), Some(&s)).await.0,
            want,
            "{login}: history"
        );
    }
    assert_eq!(api_get(app, &path, None).await.0, 401);
    let s = session(app, "alice").await;
    assert_eq!(api_get(app, "/api/customers/999999", Some(&s)).await.0, 404);
}

#[tokio::test]
async fn media_is_served_only_to_who_may_see_its_conversation() {
    let w = world().await;
    let app = &w.app;
    app.fake.put_media("IMG_P", "image/png", png("panel"));
    let (status, _) = app
        .oa_post(
            Mode::Safe,
            &image_xml(77, "IMG_P", "http://127.0.0.1:9/x.jpg"),
        )
        .await;
    assert_eq!(status, 200);
    let stored = app.stored("demo-oa").await;
    let msg = stored
        .iter()
        .find(|m| m.channel_msg_id.as_deref() == Some("77"))
        .unwrap()
        .id;
    // The download worker is woken by the message: wait (bounded) for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let object = loop {
        let m = app
            .state
            .store
            .message(kefu::ids::MessageId(msg))
            .await
            .unwrap();
        if let (Some(o), Some(_)) = (m.media_object_id, m.conversation_id) {
            break o;
        }
        assert!(tokio::time::Instant::now() < deadline, "media not linked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for (login, want) in [("alice", 200), ("sue", 200), ("bob", 404), ("sam", 404)] {
        let s = session(app, login).await;
        let r = app
            .client
            .get(format!("{}/media/{object}", app.address))
            .header(COOKIE, s.cookie())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{login}");
    }
}
