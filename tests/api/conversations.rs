//! The conversation pipeline through the real callbacks: customers,
//! conversations, the state machine, routing, the transition record.

use kefu::auth::Role;
use kefu::conversation::pipeline::{Handled, Pipeline};
use kefu::conversation::state::{CloseReason, Trigger};
use kefu::ids::{AccountId, AgentId, CustomerId, MessageId};
use kefu::routing::AgentStatus;
use kefu::store::followers::IdentityKind;
use kefu::store::messages::{Channel, Direction, NewInbound};
use serde_json::json;

use crate::desk::changed;
use crate::helpers::{TestApp, spawn_app};
use crate::wechat_client::{Mode, event_xml, text_xml};

fn demo_oa() -> AccountId {
    AccountId::parse("demo-oa").unwrap()
}

fn pipeline(app: &TestApp) -> Pipeline {
    app.state.pipeline.clone()
}

/// Makes the router see what the test wrote to the database.
async fn reload(app: &TestApp) {
    app.state.router.reload(&app.state.store).await.unwrap();
}

/// Posts a text from `from` and returns the stored message's id.
async fn say(app: &TestApp, from: &str, msg_id: i64, text: &str) -> MessageId {
    let (status, body) = app.oa_post(Mode::Safe, &text_xml(from, msg_id, text)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let stored = app.stored("demo-oa").await;
    let m = stored
        .iter()
        .find(|m| m.channel_msg_id.as_deref() == Some(msg_id.to_string().as_str()))
        .expect("stored");
    MessageId(m.id)
}

/// An agent with this presence.
async fn agent(app: &TestApp, login: &str, status: AgentStatus) -> AgentId {
    let store = &app.state.store;
    let id = store
        .create_agent(login, login, Role::Agent, "not-a-hash")
        .await
        .unwrap();
    store.set_agent_status(id, status).await.unwrap();
    reload(app).await;
    id
}

async fn customer_of(app: &TestApp, open_id: &str) -> CustomerId {
    let row = app
        .state
        .store
        .identity(IdentityKind::OaOpenId, &demo_oa(), open_id)
        .await
        .unwrap();
    CustomerId(row.customer_id)
}

#[tokio::test]
async fn a_first_message_opens_a_bot_conversation_for_a_new_customer() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    let id = say(&app, "oNew", 1, "你好").await;
    let opened = changed(&mut rx, |_| true).await;
    assert_eq!(opened.state, "bot");
    assert_eq!(opened.agent, None);
    assert!(opened.reason.contains("new conversation"), "{opened:?}");
    assert_eq!(opened.customer, customer_of(&app, "oNew").await);

    let store = &app.state.store;
    let m = store.message(id).await.unwrap();
    assert_eq!(m.conversation_id, Some(opened.conversation.0));
    assert_eq!(m.customer_id, Some(opened.customer.0));
    let c = store.conversation(opened.conversation).await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.channel.as_str(), c.account_id.as_str()),
        ("bot", "oa", "demo-oa")
    );
    let t = store.transitions_of(opened.conversation).await.unwrap();
    assert_eq!(t.len(), 1, "an ordinary message is not a transition");
    assert_eq!(
        (t[0].from_state.as_deref(), t[0].to_state.as_str()),
        (None, "bot")
    );
}

#[tokio::test]
async fn a_second_message_joins_the_same_conversation() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oTwice", 1, "你好").await;
    let opened = changed(&mut rx, |_| true).await;
    let second = say(&app, "oTwice", 2, "在吗").await;
    // Handled here or by the worker: either way it is linked afterwards.
    let h = pipeline(&app).handle(second).await.unwrap();
    assert!(
        matches!(h, Handled::AlreadyHandled | Handled::Done { .. }),
        "{h:?}"
    );
    let store = &app.state.store;
    let m = store.message(second).await.unwrap();
    assert_eq!(m.conversation_id, Some(opened.conversation.0));
    let open = store
        .open_conversation_of(opened.customer, &demo_oa())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.id, opened.conversation.0);
    assert_eq!(open.state, "bot");
}

#[tokio::test]
async fn asking_for_a_human_assigns_an_available_agent_and_records_why() {
    let app = spawn_app().await;
    let a = agent(&app, "alice", AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oHuman", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(a));
    assert!(got.reason.contains("least loaded"), "{got:?}");

    let store = &app.state.store;
    let c = store.conversation(got.conversation).await.unwrap();
    assert_eq!((c.state.as_str(), c.agent_id), ("assigned", Some(a.0)));
    let t = store.transitions_of(got.conversation).await.unwrap();
    let steps: Vec<_> = t
        .iter()
        .map(|t| (t.from_state.as_deref(), t.to_state.as_str(), t.agent_id))
        .collect();
    assert_eq!(
        steps,
        [
            (None, "bot", None),
            (Some("bot"), "queued", None),
            (Some("queued"), "assigned", Some(a.0)),
        ]
    );
    assert!(t[1].reason.contains("转人工"), "{:?}", t[1]);
    assert_eq!(t[2].actor, "routing");
    assert!(t[2].reason.contains("负载最低"), "{:?}", t[2]);
    // The first assignment binds the customer to the agent.
    let customer = store.customer(got.customer).await.unwrap();
    assert_eq!(customer.dedicated_agent_id, Some(a.0));
}

#[tokio::test]
async fn with_nobody_on_duty_the_request_goes_back_to_the_robot_and_is_recorded() {
    let app = spawn_app().await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oNight", 1, "人工").await;
    let got = changed(&mut rx, |c| c.reason.contains("nobody on duty")).await;
    assert_eq!((got.state.as_str(), got.agent), ("bot", None));
    let store = &app.state.store;
    let c = store.conversation(got.conversation).await.unwrap();
    assert_eq!(c.state, "bot");
    let t = store.transitions_of(got.conversation).await.unwrap();
    let last = t.last().unwrap();
    assert_eq!(
        (last.from_state.as_deref(), last.to_state.as_str()),
        (Some("queued"), "bot")
    );
    assert!(last.reason.contains("无人值班"), "{last:?}");
}

#[tokio::test]
async fn with_the_only_agent_busy_the_customer_is_queued() {
    let app = spawn_app().await;
    agent(&app, "bob", AgentStatus::Busy).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oWait", 1, "我要转人工").await;
    let got = changed(&mut rx, |c| c.reason.contains("no agent free")).await;
    assert_eq!((got.state.as_str(), got.agent), ("queued", None));
    let store = &app.state.store;
    assert_eq!(
        store.conversation(got.conversation).await.unwrap().state,
        "queued"
    );
    let t = store.transitions_of(got.conversation).await.unwrap();
    assert_eq!(t.len(), 3, "opened, human requested, queued: {t:?}");
}

#[tokio::test]
async fn the_dedicated_agent_is_chosen_when_set() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let group = store.create_city_group("上海").await.unwrap();
    let first = agent(&app, "carol", AgentStatus::Idle).await;
    let dedicated = agent(&app, "dave", AgentStatus::Idle).await;
    for a in [first, dedicated] {
        store.add_group_member(group, a).await.unwrap();
    }
    reload(&app).await;
    let customer = customer_of(&app, "oVip").await;
    store
        .set_customer_routing(customer, Some(dedicated), None, None)
        .await
        .unwrap();
    let mut rx = app.state.bus.subscribe();
    say(&app, "oVip", 1, "人工客服").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.customer, customer);
    assert_eq!(got.agent, Some(dedicated));
    assert!(got.reason.contains("专属客服"), "{got:?}");
    assert!(got.reason.contains("dedicated agent"), "{got:?}");
}

#[tokio::test]
async fn handling_the_same_message_twice_changes_nothing() {
    let app = spawn_app().await;
    agent(&app, "erin", AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    let id = say(&app, "oAgain", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let store = &app.state.store;
    let before = store.transitions_of(got.conversation).await.unwrap();
    let p = pipeline(&app);
    assert_eq!(p.handle(id).await.unwrap(), Handled::AlreadyHandled);
    assert_eq!(p.handle(id).await.unwrap(), Handled::AlreadyHandled);
    assert_eq!(p.sweep().await.unwrap(), 0);
    assert_eq!(
        store.transitions_of(got.conversation).await.unwrap(),
        before
    );
    let c = store.conversation(got.conversation).await.unwrap();
    assert_eq!(c.state, "assigned");
}

#[tokio::test]
async fn a_message_missed_on_the_bus_is_caught_up_by_the_sweep() {
    let app = spawn_app().await;
    let store = &app.state.store;
    // Stored without an announcement, as if the bus had dropped it.
    let msg = NewInbound {
        account: demo_oa(),
        channel: Channel::OfficialAccount,
        direction: Direction::In,
        sender: "oMissed".into(),
        dedup_key: "test:missed".into(),
        msg_type: "text".into(),
        content: Some("你好".into()),
        payload: "<xml/>".into(),
        channel_msg_id: None,
        sent_at: chrono::Utc::now(),
        media_object_id: None,
    };
    let inserted = store.insert_inbound_batch(&[msg]).await.unwrap();
    let kefu::store::messages::Inserted::New(id) = inserted[0] else {
        panic!("{inserted:?}")
    };
    // Swept here, or by the worker's start-up sweep if it ran late.
    assert!(pipeline(&app).sweep().await.unwrap() <= 1);
    let m = store.message(id).await.unwrap();
    assert!(m.conversation_id.is_some());
    assert_eq!(m.customer_id, Some(customer_of(&app, "oMissed").await.0));
}

#[tokio::test]
async fn a_web_visitor_message_missed_on_the_bus_is_caught_up_by_the_sweep() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let site = AccountId::parse("demo-web").unwrap();
    let visitor = "w0123456789abcdef0123456789abcdef";
    let msg = NewInbound {
        account: site.clone(),
        channel: Channel::Web,
        direction: Direction::In,
        sender: visitor.into(),
        dedup_key: format!("w:{visitor}:c-1"),
        msg_type: "text".into(),
        content: Some("你好".into()),
        payload: json!({"text": "你好", "client_id": "c-1"}).to_string(),
        channel_msg_id: None,
        sent_at: chrono::Utc::now(),
        media_object_id: None,
    };
    // And the 转人工 button's event after it.
    let handoff = NewInbound {
        dedup_key: format!("w:{visitor}:handoff-1"),
        msg_type: "event".into(),
        content: Some(kefu::conversation::pipeline::WIDGET_HANDOFF.into()),
        ..msg.clone()
    };
    let inserted = store.insert_inbound_batch(&[msg, handoff]).await.unwrap();
    let (kefu::store::messages::Inserted::New(id), kefu::store::messages::Inserted::New(button)) =
        (&inserted[0], &inserted[1])
    else {
        panic!("{inserted:?}")
    };
    let (id, button) = (*id, *button);
    assert!(pipeline(&app).sweep().await.unwrap() <= 2);
    let m = store.message(id).await.unwrap();
    assert!(m.conversation_id.is_some(), "the sweep left it unlinked");
    let b = store.message(button).await.unwrap();
    assert!(
        b.conversation_id.is_some(),
        "the sweep left the handoff unlinked"
    );
    let identity = store
        .find_identity_of(IdentityKind::WebVisitor, &site, visitor)
        .await
        .unwrap()
        .expect("the visitor's identity");
    assert_eq!(m.customer_id, Some(identity.customer_id));
}

#[tokio::test]
async fn a_wecom_kf_message_goes_through_the_same_pipeline() {
    let app = spawn_app().await;
    let a = agent(&app, "frank", AgentStatus::Idle).await;
    app.fake.add_kf_messages(
        "wkKF9",
        vec![
            json!({"msgid": "k1", "external_userid": "wmKfUser", "send_time": 1714036504,
                    "origin": 3, "msgtype": "text", "text": {"content": "转人工"}}),
        ],
    );
    let mut rx = app.state.bus.subscribe();
    let (status, _) = app.kf_notify("wkKF9", "TOKEN").await;
    assert_eq!(status, 200);
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(a));
    let store = &app.state.store;
    let c = store.conversation(got.conversation).await.unwrap();
    assert_eq!(
        (c.channel.as_str(), c.account_id.as_str()),
        ("wecom_kf", "demo-kf")
    );
    let identity = store
        .identity(
            IdentityKind::WecomExternalUserId,
            &AccountId::parse("demo-kf").unwrap(),
            "wmKfUser",
        )
        .await
        .unwrap();
    assert_eq!(identity.customer_id, got.customer.0);
    assert_eq!(c.open_kfid.as_deref(), Some("wkKF9"), "replies need it");
    // The customer's message, and Kefu's notice that an agent joined (sent
    // before the change is announced): both in the conversation.
    let stored = app.stored("demo-kf").await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|m| m.conversation_id == Some(got.conversation.0))
    );
    assert_eq!(stored[1].direction, "out");
    assert_eq!(stored[1].content.as_deref(), Some("客服 frank 为您服务"));
}

/// Posts an Official Account event.
async fn event(app: &TestApp, from: &str, at: i64, event: &str, extra: &str) {
    let (status, body) = app
        .oa_post(Mode::Safe, &event_xml(from, at, event, extra))
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
}

#[tokio::test]
async fn a_closed_conversation_reopens_with_the_robot_and_keeps_the_dedicated_agent() {
    let app = spawn_app().await;
    agent(&app, "grace", AgentStatus::Idle).await;
    agent(&app, "heidi", AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oBack", 1, "转人工").await;
    let first = changed(&mut rx, |c| c.state == "assigned").await;
    let served_by = first.agent.unwrap();
    let customer = app.state.store.customer(first.customer).await.unwrap();
    assert_eq!(customer.dedicated_agent_id, Some(served_by.0));

    app.state
        .pipeline
        .trigger(
            first.conversation,
            Trigger::Closed {
                by: CloseReason::System,
            },
            "test",
        )
        .await
        .unwrap();
    let closed = app
        .state
        .store
        .conversation(first.conversation)
        .await
        .unwrap();
    assert_eq!(closed.state, "closed");
    assert!(closed.closed_at.is_some());

    say(&app, "oBack", 2, "你好，又是我").await;
    let reopened = changed(&mut rx, |c| c.state == "bot").await;
    assert_eq!(
        reopened.conversation, first.conversation,
        "reopened, not new"
    );
    assert!(reopened.reason.contains("reopened"), "{reopened:?}");
    let c = app
        .state
        .store
        .conversation(first.conversation)
        .await
        .unwrap();
    assert_eq!((c.state.as_str(), c.closed_at), ("bot", None));

    // Both agents are free: only the binding explains getting the same one.
    say(&app, "oBack", 3, "人工").await;
    let again = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(again.conversation, first.conversation);
    assert_eq!(
        again.agent,
        Some(served_by),
        "dedicated agent again: {again:?}"
    );
    assert!(again.reason.contains("dedicated agent"), "{again:?}");
}

#[tokio::test]
async fn a_menu_click_on_the_human_item_asks_for_a_person() {
    let app = spawn_app().await;
    let a = agent(&app, "ivan", AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    event(
        &app,
        "oMenu",
        1714036600,
        "CLICK",
        "<EventKey><![CDATA[HUMAN]]></EventKey>",
    )
    .await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(a));
    let t = app
        .state
        .store
        .transitions_of(got.conversation)
        .await
        .unwrap();
    assert!(
        t.iter()
            .any(|t| t.reason.contains("human requested (menu)")),
        "{t:?}"
    );
    // Other clicks are ordinary activity: the robot keeps the conversation.
    let mut rx = app.state.bus.subscribe();
    event(
        &app,
        "oMenu2",
        1714036601,
        "CLICK",
        "<EventKey><![CDATA[PRICES]]></EventKey>",
    )
    .await;
    let opened = changed(&mut rx, |_| true).await;
    assert_eq!(opened.state, "bot");
}

#[tokio::test]
async fn a_city_chosen_from_the_menu_routes_a_newcomer_to_that_city_group() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let shanghai = store.create_city_group("上海").await.unwrap();
    let beijing = store.create_city_group("北京").await.unwrap();
    let sh = agent(&app, "sh-agent", AgentStatus::Idle).await;
    let bj = agent(&app, "bj-agent", AgentStatus::Idle).await;
    store.add_group_member(shanghai, sh).await.unwrap();
    store.add_group_member(beijing, bj).await.unwrap();
    reload(&app).await;
    app.state.router.map_region("上海", shanghai);
    app.state.router.map_region("北京", beijing);

    let mut rx = app.state.bus.subscribe();
    event(
        &app,
        "oCity",
        1714036700,
        "CLICK",
        "<EventKey><![CDATA[CITY:上海]]></EventKey>",
    )
    .await;
    say(&app, "oCity", 11, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    let customer = customer_of(&app, "oCity").await;
    assert_eq!(
        store.customer(customer).await.unwrap().region.as_deref(),
        Some("上海")
    );
    assert_eq!(got.agent, Some(sh));
    assert!(got.reason.contains("上海"), "{got:?}");
}

#[tokio::test]
async fn a_location_gives_a_newcomer_a_region_but_never_overrides_one() {
    let app = spawn_app().await;
    let store = &app.state.store;
    // People's Square, Shanghai.
    event(
        &app,
        "oWhere",
        1714036800,
        "LOCATION",
        "<Latitude>31.2323</Latitude><Longitude>121.4691</Longitude><Precision>30.0</Precision>",
    )
    .await;
    let customer = customer_of(&app, "oWhere").await;
    assert_eq!(
        store.customer(customer).await.unwrap().region.as_deref(),
        Some("上海")
    );
    // A location message from Shenzhen later does not move them.
    let xml = "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[oWhere]]></FromUserName>\
         <CreateTime>1714036900</CreateTime><MsgType><![CDATA[location]]></MsgType>\
         <Location_X>22.5415</Location_X><Location_Y>114.0596</Location_Y><Scale>15</Scale>\
         <Label><![CDATA[广东省深圳市福田区]]></Label><MsgId>778899</MsgId></xml>";
    let mut rx = app.state.bus.subscribe();
    let (status, _) = app.oa_post(Mode::Safe, xml).await;
    assert_eq!(status, 200);
    // Handled in order: once the request that follows is queued (nobody is
    // on duty), the location was applied.
    say(&app, "oWhere", 31, "转人工").await;
    changed(&mut rx, |c| c.state == "queued" && c.customer == customer).await;
    assert_eq!(
        store.customer(customer).await.unwrap().region.as_deref(),
        Some("上海")
    );

    // A newcomer's location message names their city.
    let xml = xml.replace("oWhere", "oSz").replace("778899", "778900");
    let (status, _) = app.oa_post(Mode::Safe, &xml).await;
    assert_eq!(status, 200);
    say(&app, "oSz", 32, "转人工").await;
    let sz = customer_of(&app, "oSz").await;
    changed(&mut rx, |c| c.state == "queued" && c.customer == sz).await;
    assert_eq!(
        store.customer(sz).await.unwrap().region.as_deref(),
        Some("深圳")
    );
}
