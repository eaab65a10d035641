//! One customer across WeChat accounts: the unionid WeChat reports for a
//! new customer joins them with the customer who already has it.

use kefu::auth::Role;
use kefu::bus::Event;
use kefu::ids::{AccountId, CustomerId};
use kefu::routing::AgentStatus;
use kefu::store::followers::{IdentityKind, UnionLink};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;

use crate::desk::{changed, customer_of, next_event, say, staff};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn demo_kf() -> AccountId {
    AccountId::parse("demo-kf").unwrap()
}

async fn linking_app() -> TestApp {
    spawn_app_with(|s| {
        for a in &mut s.accounts {
            a.link_unionid = true;
        }
    })
    .await
}

/// A WeCom kf customer's text, pulled after the callback.
async fn kf_say(app: &TestApp, msgid: &str, user: &str, text: &str) {
    app.fake.add_kf_messages(
        "wkKF1",
        vec![
            json!({"msgid": msgid, "external_userid": user, "send_time": 1714036504,
                    "origin": 3, "msgtype": "text", "text": {"content": text}}),
        ],
    );
    let (status, _) = app.kf_notify("wkKF1", "TOKEN").await;
    assert_eq!(status, 200);
}

async fn kf_customer(app: &TestApp, user: &str) -> CustomerId {
    CustomerId(
        app.state
            .store
            .identity(IdentityKind::WecomExternalUserId, &demo_kf(), user)
            .await
            .unwrap()
            .customer_id,
    )
}

/// The next `CustomersMerged`: (removed, moved identities).
async fn merged(
    rx: &mut tokio::sync::broadcast::Receiver<kefu::bus::Envelope>,
) -> (Vec<CustomerId>, Vec<(String, String, String)>) {
    next_event(rx, |e| match e {
        Event::CustomersMerged {
            removed,
            identities,
        } => Some((removed.clone(), identities.clone())),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn the_same_wechat_user_on_the_official_account_and_wecom_kf_is_one_customer() {
    let app = linking_app().await;
    app.fake.set_user("oWang", Some("uWang"), None);
    app.fake.set_user("wmWang", Some("uWang"), Some("小王"));
    let frank = staff(&app, "frank", Role::Agent, AgentStatus::Idle).await;
    let gina = staff(&app, "gina", Role::Agent, AgentStatus::Offline).await;
    let mut rx = app.state.bus.subscribe();

    // On the Official Account: served by frank, who becomes their agent.
    say(&app, "oWang", 1, "转人工").await;
    let first = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(first.agent, Some(frank));
    let wang = customer_of(&app, "oWang").await;
    // gina comes on duty, less loaded than frank: only the binding sends
    // the customer back to frank below.
    app.state
        .store
        .set_agent_status(gina, AgentStatus::Idle)
        .await
        .unwrap();
    crate::desk::reload(&app).await;

    // The same person writes to WeCom kf: a customer of its own at first,
    // joined with the OA customer once WeChat gives the same unionid.
    kf_say(&app, "k1", "wmWang", "你好").await;
    let (removed, moved) = merged(&mut rx).await;
    assert_eq!(removed.len(), 1);
    assert_ne!(removed[0], wang, "the older customer is kept");
    assert!(
        moved.contains(&(
            "wecom_external_userid".into(),
            "demo-kf".into(),
            "wmWang".into()
        )),
        "{moved:?}"
    );
    let store = &app.state.store;
    assert_eq!(kf_customer(&app, "wmWang").await, wang);
    let c = store.customer(wang).await.unwrap();
    assert_eq!(
        c.name.as_deref(),
        Some("小王"),
        "the WeCom nickname fills the name"
    );
    assert_eq!(c.dedicated_agent_id, Some(frank.0));
    assert!(store.customer(removed[0]).await.is_err(), "removed");
    let kinds: Vec<String> = store
        .identities_of(wang)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.kind)
        .collect();
    assert!(kinds.contains(&"unionid".to_owned()), "{kinds:?}");
    // Their WeCom message is in their history now.
    let kf_msgs = app.stored("demo-kf").await;
    assert!(
        kf_msgs.iter().all(|m| m.customer_id == Some(wang.0)),
        "{kf_msgs:?}"
    );

    // Asking for a person on WeCom reaches their dedicated agent, and the
    // conversation is the same customer's.
    kf_say(&app, "k2", "wmWang", "转人工").await;
    let second = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(second.customer, wang);
    assert_eq!(second.agent, Some(frank), "{}", second.reason);
    assert_eq!(app.fake.count("user/info"), 1);
    assert_eq!(app.fake.count("kf/customer/batchget"), 1);
}

#[tokio::test]
async fn the_customer_the_crm_knows_is_kept_whichever_came_first() {
    let app = linking_app().await;
    let store = &app.state.store;
    // WeCom first (the older customer), then the OA customer the CRM knows.
    let kf = kf_customer(&app, "wmLi").await;
    let oa = customer_of(&app, "oLi").await;
    assert!(kf.0 < oa.0);
    kefu::store::entities::customers::ActiveModel {
        id: Set(oa.0),
        crm_id: Set(Some("c-li".into())),
        ..Default::default()
    }
    .update(store.writer())
    .await
    .unwrap();
    app.fake.set_user("oLi", Some("uLi"), None);
    app.fake.set_user("wmLi", Some("uLi"), None);
    let mut rx = app.state.bus.subscribe();
    say(&app, "oLi", 1, "你好").await;
    kf_say(&app, "k1", "wmLi", "你好").await;
    let (removed, _) = merged(&mut rx).await;
    assert_eq!(removed, vec![kf]);
    assert_eq!(kf_customer(&app, "wmLi").await, oa);
    assert!(
        kefu::store::entities::customers::Entity::find_by_id(kf.0)
            .one(store.writer())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn two_crm_customers_with_one_unionid_are_not_joined() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let a = customer_of(&app, "oA").await;
    let b = kf_customer(&app, "wmB").await;
    for (c, crm) in [(a, "c-a"), (b, "c-b")] {
        kefu::store::entities::customers::ActiveModel {
            id: Set(c.0),
            crm_id: Set(Some(crm.into())),
            ..Default::default()
        }
        .update(store.writer())
        .await
        .unwrap();
    }
    assert_eq!(
        store.link_unionid(a, "uShared", None).await.unwrap(),
        UnionLink::Added
    );
    assert_eq!(
        store.link_unionid(a, "uShared", None).await.unwrap(),
        UnionLink::Already
    );
    assert_eq!(
        store.link_unionid(b, "uShared", None).await.unwrap(),
        UnionLink::Conflict { other: a }
    );
    assert_eq!(kf_customer(&app, "wmB").await, b, "nothing moved");
}

#[tokio::test]
async fn accounts_that_do_not_link_unionids_never_ask_wechat() {
    let app = spawn_app().await;
    let frank = staff(&app, "frank", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oZhao", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(frank));
    assert_eq!(app.fake.count("user/info"), 0);
    assert_eq!(app.fake.count("kf/customer/batchget"), 0);
}
