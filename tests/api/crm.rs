//! The CRM sync through its real API: keys, signatures and replays; every
//! kind of row, bad rows beside good ones, versions out of order; agents
//! who leave or change group; bindings, shifts and identities taking effect
//! in routing at once; vehicle trades; events read by cursor and delivered
//! by a signed, retried webhook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{FixedOffset, TimeDelta, Utc};
use kefu::auth::Role;
use kefu::config::{CrmKey, Secret, Settings};
use kefu::crm::{hex, sign};
use kefu::ids::AgentId;
use kefu::routing::{AgentStatus, Shift};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::desk::{changed, customer_of, reload, say};
use crate::helpers::{TestApp, spawn_app_with};

const KEY: &str = "test-crm-secret-0123456789abcdef0123";
const WAIT: Duration = Duration::from_secs(15);

fn with_key(s: &mut Settings) {
    s.crm.keys = vec![CrmKey {
        name: "crm".into(),
        secret: Secret::new(KEY),
    }];
    s.routing.queue_sweep_secs = 3600;
    s.routing.reconcile_secs = 3600;
}

async fn app() -> TestApp {
    spawn_app_with(with_key).await
}

/// `POST /api/crm/v1/{kind}` with the bearer key; status and body.
async fn post(app: &TestApp, kind: &str, rows: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/crm/v1/{kind}", app.address))
        .bearer_auth(KEY)
        .json(&json!({ "rows": rows }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Posts rows that must all apply.
async fn put_rows(app: &TestApp, kind: &str, rows: Value) -> Value {
    let n = rows.as_array().unwrap().len();
    let (status, report) = post(app, kind, rows).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["applied"], n, "{kind}: {report}");
    report
}

async fn events(app: &TestApp, after: i64) -> Value {
    let r = app
        .client
        .get(format!("{}/api/crm/v1/events?after={after}", app.address))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn agent_by_crm(app: &TestApp, crm: &str) -> AgentId {
    let ids = kefu::store::crm::agent_ids(app.state.store.conn(), &[crm.to_owned()])
        .await
        .unwrap();
    ids[crm]
}

async fn set_idle(app: &TestApp, agents: &[AgentId]) {
    for a in agents {
        app.state
            .store
            .set_agent_status(*a, AgentStatus::Idle)
            .await
            .unwrap();
    }
    reload(app).await;
}

fn agent_row(id: &str, group: &str, version: i64) -> Value {
    json!({"id": id, "login": id, "name": format!("{id} 名字"), "groups": [group], "version": version})
}

/// Two groups, a region map, agents `a-alice`, `a-bob` (上海) and
/// `a-carol` (北京), all idle.
async fn company(app: &TestApp) -> (AgentId, AgentId, AgentId) {
    put_rows(
        app,
        "groups",
        json!([{"id": "g-sh", "name": "上海", "version": 1}, {"id": "g-bj", "name": "北京", "version": 1}]),
    )
    .await;
    put_rows(
        app,
        "regions",
        json!([{"region": "上海", "group": "g-sh", "version": 1}, {"region": "北京", "group": "g-bj", "version": 1}]),
    )
    .await;
    put_rows(
        app,
        "agents",
        json!([
            agent_row("a-alice", "g-sh", 1),
            agent_row("a-bob", "g-sh", 1),
            agent_row("a-carol", "g-bj", 1)
        ]),
    )
    .await;
    let alice = agent_by_crm(app, "a-alice").await;
    let bob = agent_by_crm(app, "a-bob").await;
    let carol = agent_by_crm(app, "a-carol").await;
    set_idle(app, &[alice, bob, carol]).await;
    (alice, bob, carol)
}

fn customer_row(id: &str, openid: &str, extra: Value) -> Value {
    let mut row = json!({
        "id": id,
        "identities": {"oa_openid": [{"account": "demo-oa", "id": openid}]},
        "version": 1,
    });
    for (k, v) in extra.as_object().unwrap() {
        row[k] = v.clone();
    }
    row
}

#[tokio::test]
async fn calls_need_a_key_or_a_fresh_signature_and_replays_are_refused() {
    let bare = spawn_app_with(|_| {}).await;
    let r = bare
        .client
        .post(format!("{}/api/crm/v1/groups", bare.address))
        .bearer_auth(KEY)
        .json(&json!({"rows": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "no keys configured");

    let app = app().await;
    let url = format!("{}/api/crm/v1/groups", app.address);
    let body = json!({"rows": [{"id": "g1", "name": "上海", "version": 1}]}).to_string();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut rb = app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(send(vec![]).await.0, 401, "no credentials");
    assert_eq!(
        send(vec![(
            "authorization",
            "Bearer wrong-key-0123456789abcdef0123".into()
        )])
        .await
        .0,
        401
    );
    let (status, text) = send(vec![("authorization", format!("Bearer {KEY}"))]).await;
    assert_eq!(status, 200, "{text}");

    let signed = |ts: i64, b: &str| {
        vec![
            ("x-kefu-key", "crm".to_owned()),
            ("x-kefu-timestamp", ts.to_string()),
            (
                "x-kefu-signature",
                hex(&sign(KEY.as_bytes(), ts, b.as_bytes())),
            ),
        ]
    };
    let now = Utc::now().timestamp();
    let (status, text) = send(signed(now, &body)).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = send(signed(now, &body)).await;
    assert_eq!(status, 401, "the same signed call again is a replay");
    assert!(text.contains("replay"), "{text}");
    let (status, text) = send(signed(now - 301, &body)).await;
    assert_eq!(status, 401);
    assert!(text.contains("five minutes"), "{text}");
    let (status, text) = send(signed(now + 1, "{\"rows\":[]}")).await;
    assert_eq!(status, 401, "signed over another body");
    assert!(text.contains("bad signature"), "{text}");
    // Console sessions are not CRM keys, and the API is described.
    let spec: Value = app
        .get("/api/crm/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );
    assert!(spec["paths"]["/api/crm/v1/bindings"].is_object());
    let r = app
        .client
        .get(format!("{}/api/crm/v1/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A signed read signs its query string and may be repeated.
    let get = |query: &'static str, signed_query: &'static str| {
        let ts = Utc::now().timestamp();
        let rb = app
            .client
            .get(format!("{}/api/crm/v1/events?{query}", app.address))
            .header("x-kefu-key", "crm")
            .header("x-kefu-timestamp", ts.to_string())
            .header(
                "x-kefu-signature",
                hex(&sign(KEY.as_bytes(), ts, signed_query.as_bytes())),
            );
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("after=0", "after=0").await, 200);
    assert_eq!(
        get("after=0", "after=0").await,
        200,
        "reads are not replays"
    );
    assert_eq!(get("after=5", "after=0").await, 401, "the query is signed");
}

#[tokio::test]
async fn bad_rows_are_answered_one_by_one_and_the_good_ones_stay() {
    let app = app().await;
    put_rows(
        &app,
        "groups",
        json!([{"id": "g-sh", "name": "上海", "version": 1}]),
    )
    .await;
    let (status, report) = post(
        &app,
        "agents",
        json!([
            agent_row("a-1", "g-sh", 1),
            {"id": "a-2", "name": "no login", "version": 1},
            agent_row("a-3", "g-nowhere", 1),
            {"id": "a-4", "login": "a-4", "name": "x", "version": 1, "colour": "red"},
            {"id": "a-5", "login": "a-1", "name": "same login", "version": 1},
            {"id": "a-6", "login": "a-6", "name": "x", "role": "god", "version": 1},
            agent_row("a-7", "g-sh", 1),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["received"], 7);
    assert_eq!(report["applied"], 2, "{report}");
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let idx: Vec<u64> = rejected.iter().map(|r| r.0).collect();
    assert_eq!(idx, [1, 2, 3, 4, 5], "{report}");
    assert!(rejected[0].1.contains("login"), "{rejected:?}");
    assert!(rejected[1].1.contains("g-nowhere"), "{rejected:?}");
    assert!(rejected[2].1.contains("colour"), "{rejected:?}");
    assert!(rejected[3].1.contains("another user"), "{rejected:?}");
    assert!(rejected[4].1.contains("role"), "{rejected:?}");
    assert_eq!(report["rejected"][1]["key"], "a-3");
    agent_by_crm(&app, "a-1").await;
    agent_by_crm(&app, "a-7").await;

    // Not a batch at all, or too many rows.
    let r = app
        .client
        .post(format!("{}/api/crm/v1/agents", app.address))
        .bearer_auth(KEY)
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let many: Vec<Value> = (0..10_001).map(|i| json!({"id": i})).collect();
    assert_eq!(post(&app, "groups", json!(many)).await.0, 413);
    assert_eq!(post(&app, "planets", json!([])).await.0, 404);
}

#[tokio::test]
async fn the_same_batch_twice_changes_nothing_and_an_older_version_never_wins() {
    let app = app().await;
    put_rows(
        &app,
        "groups",
        json!([{"id": "g-sh", "name": "上海", "version": 5}]),
    )
    .await;
    let (_, again) = post(
        &app,
        "groups",
        json!([{"id": "g-sh", "name": "上海", "version": 5}]),
    )
    .await;
    assert_eq!(
        (again["applied"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, old) = post(
        &app,
        "groups",
        json!([{"id": "g-sh", "name": "旧名字", "version": 4}]),
    )
    .await;
    assert_eq!(old["stale"], 1, "{old}");
    // Timestamps as versions; the newest of a key sent twice in one batch wins.
    let (_, both) = post(
        &app,
        "groups",
        json!([
            {"id": "g-sh", "name": "上海二", "version": "2026-12-07T10:00:00Z"},
            {"id": "g-sh", "name": "上海一", "version": "2026-12-07T09:00:00Z"},
        ]),
    )
    .await;
    assert_eq!(
        (both["applied"].as_u64(), both["stale"].as_u64()),
        (Some(1), Some(1)),
        "{both}"
    );
    let groups = app.state.store.city_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].1, "上海二");
}

#[tokio::test]
async fn a_newcomer_is_routed_by_the_region_the_crm_gave_and_a_binding_by_the_crm_wins() {
    let app = app().await;
    let (alice, bob, carol) = company(&app).await;
    put_rows(
        &app,
        "customers",
        json!([
            customer_row("c-bj", "oBj", json!({"region": "北京市", "name": "王先生"})),
            customer_row("c-sh", "oSh", json!({"region": "上海"})),
        ]),
    )
    .await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "oBj", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(carol), "北京 → 北京 group: {got:?}");

    // The CRM binds c-sh to bob: he gets them although alice is as free.
    put_rows(
        &app,
        "bindings",
        json!([{"customer": "c-sh", "agent": "a-bob", "version": 1}]),
    )
    .await;
    say(&app, "oSh", 2, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(bob), "{got:?}");
    assert!(got.reason.contains("dedicated"), "{got:?}");

    // Reassigned in the CRM while the conversation is open: it moves now.
    put_rows(
        &app,
        "bindings",
        json!([{"customer": "c-sh", "agent": "a-alice", "version": 2}]),
    )
    .await;
    let moved = changed(&mut rx, |c| c.conversation == got.conversation).await;
    assert_eq!(moved.agent, Some(alice), "{moved:?}");
    let c = app
        .state
        .store
        .customer(customer_of(&app, "oSh").await)
        .await
        .unwrap();
    assert_eq!(c.dedicated_agent_id, Some(alice.0));
    assert_eq!(c.crm_id.as_deref(), Some("c-sh"));
    // An unknown customer or agent is rejected, not guessed.
    let (_, report) = post(
        &app,
        "bindings",
        json!([{"customer": "c-none", "agent": "a-bob", "version": 1}, {"customer": "c-sh", "agent": "a-none", "version": 9}]),
    )
    .await;
    assert_eq!(report["rejected"].as_array().unwrap().len(), 2, "{report}");
}

#[tokio::test]
async fn an_agent_who_leaves_has_customers_rebound_in_the_group_and_the_crm_is_told() {
    let app = app().await;
    let (alice, bob, carol) = company(&app).await;
    put_rows(&app, "agents", json!([agent_row("a-dave", "g-sh", 1)])).await;
    let dave = agent_by_crm(&app, "a-dave").await;
    set_idle(&app, &[dave]).await;
    // alice has four customers, bob two, dave none.
    let mut customers = Vec::new();
    let mut bindings = Vec::new();
    for (i, owner) in ["a-alice", "a-alice", "a-alice", "a-alice", "a-bob", "a-bob"]
        .iter()
        .enumerate()
    {
        let id = format!("c{i}");
        customers.push(customer_row(&id, &format!("o{i}"), json!({})));
        bindings.push(json!({"customer": id, "agent": owner, "version": 1}));
    }
    put_rows(&app, "customers", json!(customers)).await;
    put_rows(&app, "bindings", json!(bindings)).await;
    let mut rx = app.state.bus.subscribe();
    say(&app, "o0", 1, "转人工").await;
    let open = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(open.agent, Some(alice));
    let before = events(&app, 0).await["next"].as_i64().unwrap();

    put_rows(
        &app,
        "agent-events",
        json!([{"agent": "a-alice", "event": "left", "version": 1}]),
    )
    .await;
    // Her open conversation goes to someone of her group.
    let moved = changed(&mut rx, |c| {
        c.conversation == open.conversation && c.state == "assigned" && c.agent != Some(alice)
    })
    .await;
    assert!(
        moved.agent == Some(bob) || moved.agent == Some(dave),
        "{moved:?}"
    );
    assert_ne!(moved.agent, Some(carol), "another group");
    // Fewest bound first: dave takes two, then they alternate.
    let mut counts = std::collections::HashMap::new();
    for i in 0..6 {
        let c = app
            .state
            .store
            .customer(customer_of(&app, &format!("o{i}")).await)
            .await
            .unwrap();
        *counts.entry(c.dedicated_agent_id.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(counts.get(&alice.0), None);
    assert_eq!(counts[&bob.0] + counts[&dave.0], 6);
    assert_eq!(counts[&dave.0], 3, "{counts:?}");
    // The CRM learns each rebinding, by cursor.
    let page = events(&app, before).await;
    let changes: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "binding.changed")
        .collect();
    assert_eq!(changes.len(), 4, "{page}");
    for e in &changes {
        assert_eq!(e["data"]["from_agent"], "a-alice");
        assert_eq!(e["data"]["reason"], "agent_left");
        assert!(["a-bob", "a-dave"].contains(&e["data"]["to_agent"].as_str().unwrap()));
    }
    let next = page["next"].as_i64().unwrap();
    assert!(
        events(&app, next).await["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // She is out of routing and cannot sign in.
    let now = Utc::now();
    assert!(
        app.state
            .router
            .agent(alice, now)
            .is_none_or(|a| !a.is_available())
    );
    let a = app.state.store.agent(alice).await.unwrap();
    assert!(a.departed_at.is_some() && a.disabled);
}

#[tokio::test]
async fn a_transferred_agent_leaves_their_customers_in_the_old_group() {
    let app = app().await;
    let (alice, bob, carol) = company(&app).await;
    put_rows(
        &app,
        "customers",
        json!([customer_row("c1", "o1", json!({}))]),
    )
    .await;
    put_rows(
        &app,
        "bindings",
        json!([{"customer": "c1", "agent": "a-alice", "version": 1}]),
    )
    .await;
    put_rows(
        &app,
        "agent-events",
        json!([{"agent": "a-alice", "event": "transferred", "group": "g-bj", "version": 1}]),
    )
    .await;
    let c = app
        .state
        .store
        .customer(customer_of(&app, "o1").await)
        .await
        .unwrap();
    assert_eq!(c.dedicated_agent_id, Some(bob.0), "rebound within 上海");
    let a = app.state.router.agent(alice, Utc::now()).unwrap();
    assert_eq!(a.groups.len(), 1);
    assert!(a.in_group(app.state.router.agent(carol, Utc::now()).unwrap().groups[0]));
    let (_, report) = post(
        &app,
        "agent-events",
        json!([{"agent": "a-bob", "event": "transferred", "version": 1}]),
    )
    .await;
    assert!(
        report["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("new group"),
        "{report}"
    );
}

/// `HH:MM` in Beijing time, and the Beijing day, of `t`.
fn beijing(t: chrono::DateTime<Utc>) -> (String, String) {
    let bj = t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    (
        bj.format("%H:%M").to_string(),
        bj.format("%Y-%m-%d").to_string(),
    )
}

#[tokio::test]
async fn shifts_from_the_crm_decide_who_is_on_duty_at_once() {
    let app = app().await;
    let (alice, _, _) = company(&app).await;
    let now = Utc::now();
    // A shift around now, on today's Beijing day (a shift crossing midnight
    // ends the next morning). It starts an hour ago, or at midnight if that
    // was yesterday: a day off declared for yesterday would not hold today.
    let (_, day) = beijing(now);
    let (start, earlier) = beijing(now - TimeDelta::hours(1));
    let start = if earlier == day {
        start
    } else {
        "00:00".to_owned()
    };
    let (end, _) = beijing(now + TimeDelta::hours(1));
    put_rows(
        &app,
        "shifts",
        json!([{"agent": "a-alice", "day": day, "shifts": [{"start": start, "end": end}], "version": 1}]),
    )
    .await;
    assert_eq!(
        app.state.router.agent(alice, Utc::now()).unwrap().shift,
        Shift::On
    );
    // The same day as a day off: off duty at once.
    put_rows(
        &app,
        "shifts",
        json!([{"agent": "a-alice", "day": day, "shifts": [], "version": 2}]),
    )
    .await;
    assert_eq!(
        app.state.router.agent(alice, Utc::now()).unwrap().shift,
        Shift::Off
    );
    // An older version of the day does not bring the shift back.
    let (_, report) = post(
        &app,
        "shifts",
        json!([{"agent": "a-alice", "day": day, "shifts": [{"start": start, "end": end}], "version": 1}]),
    )
    .await;
    assert_eq!(report["stale"], 1, "{report}");
    assert_eq!(
        app.state.router.agent(alice, Utc::now()).unwrap().shift,
        Shift::Off
    );
    let (_, report) = post(
        &app,
        "shifts",
        json!([{"agent": "a-alice", "day": day, "shifts": [{"start": "9am", "end": "18:00"}], "version": 3}]),
    )
    .await;
    assert!(
        report["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("HH:MM"),
        "{report}"
    );
    // The next day's early shift survives this day sent again.
    let next = (chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap() + TimeDelta::days(1))
        .to_string();
    put_rows(&app, "shifts", json!([{"agent": "a-alice", "day": next, "shifts": [{"start": "00:30", "end": "08:00"}], "version": 1}])).await;
    put_rows(
        &app,
        "shifts",
        json!([{"agent": "a-alice", "day": day, "shifts": [], "version": 4}]),
    )
    .await;
    let spans = app.state.store.shifts_of(alice, Utc::now()).await.unwrap();
    assert_eq!(spans.iter().filter(|(s, e)| s < e).count(), 1, "{spans:?}");
}

#[tokio::test]
async fn a_crm_customer_takes_over_what_kefu_knew_of_their_channels() {
    let app = app().await;
    company(&app).await;
    let mut rx = app.state.bus.subscribe();
    // Two channels of one person, seen by Kefu as two customers.
    say(&app, "oFirst", 1, "你好").await;
    changed(&mut rx, |c| c.state == "bot").await;
    say(&app, "oSecond", 2, "在吗").await;
    changed(&mut rx, |c| c.state == "bot").await;
    let first = customer_of(&app, "oFirst").await;
    let second = customer_of(&app, "oSecond").await;
    assert_ne!(first, second);
    put_rows(
        &app,
        "customers",
        json!([{
            "id": "c-wang",
            "name": "王先生",
            "phone": "13800000000",
            "tags": ["VIP", "卖车"],
            "identities": {
                "unionid": "union-wang",
                "oa_openid": [{"account": "demo-oa", "id": "oFirst"}, {"account": "demo-oa", "id": "oSecond"}],
            },
            "version": 1,
        }]),
    )
    .await;
    assert_eq!(
        customer_of(&app, "oFirst").await,
        first,
        "Kefu's first customer became c-wang"
    );
    assert_eq!(
        customer_of(&app, "oSecond").await,
        first,
        "the second was merged in"
    );
    let c = app.state.store.customer(first).await.unwrap();
    assert_eq!(
        (c.crm_id.as_deref(), c.name.as_deref(), c.tags.as_deref()),
        (Some("c-wang"), Some("王先生"), Some("VIP,卖车"))
    );
    assert!(
        app.state.store.customer(second).await.is_err(),
        "merged away"
    );
    let theirs = app
        .stored("demo-oa")
        .await
        .into_iter()
        .filter(|m| m.direction == "in" && m.customer_id == Some(first.0))
        .count();
    assert_eq!(theirs, 2, "both channels' messages are theirs");
    // The next message of the merged channel lands on the same customer.
    say(&app, "oSecond", 3, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.customer, first);
    // Another CRM customer cannot claim the same channel.
    let (_, report) = post(
        &app,
        "customers",
        json!([customer_row("c-li", "oFirst", json!({}))]),
    )
    .await;
    assert!(
        report["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("another CRM customer"),
        "{report}"
    );
}

#[tokio::test]
async fn vehicle_trades_are_kept_per_customer_with_their_newest_state() {
    let app = app().await;
    put_rows(
        &app,
        "customers",
        json!([customer_row("c1", "o1", json!({}))]),
    )
    .await;
    let trade = |version: i64, payment: &str| {
        json!({
            "id": "t-1", "customer": "c1", "plate": "沪a·12345", "model": "大众 帕萨特 2019",
            "order_no": "SO-2026-0001", "payment_status": payment,
            "payment_updated_at": "2026-12-06T08:00:00Z", "sale_status": "sold",
            "details": {"price": 128000}, "version": version,
        })
    };
    put_rows(&app, "vehicles", json!([trade(2, "paid")])).await;
    let (_, report) = post(&app, "vehicles", json!([trade(1, "unpaid"), {"id": "t-2", "customer": "c-none", "payment_status": "paid", "sale_status": "sold", "version": 1}])).await;
    assert_eq!(report["stale"], 1, "{report}");
    assert!(
        report["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("c-none"),
        "{report}"
    );
    let customer = kefu::store::crm::customer_ids(app.state.store.conn(), &["c1".to_owned()])
        .await
        .unwrap()["c1"];
    let trades = app.state.store.vehicle_trades_of(customer).await.unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].plate.as_deref(), Some("沪A12345"));
    assert_eq!(trades[0].payment_status, "paid");
    assert_eq!(trades[0].sale_status, "sold");
}

/// A CRM's webhook receiver: fails the first `fail` calls with 500, and
/// hands over every call's timestamp, signature and body.
async fn receiver(
    fail: usize,
) -> (
    String,
    mpsc::UnboundedReceiver<(u16, String, String, String)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let calls = Arc::new(Mutex::new(0usize));
    let server = HttpServer::new(move || {
        let tx = tx.clone();
        let calls = calls.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let tx = tx.clone();
                let calls = calls.clone();
                async move {
                    let n = {
                        let mut c = calls.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    let status = if n <= fail { 500 } else { 200 };
                    let h = |k: &str| {
                        req.headers()
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let _ = tx.send((
                        status,
                        h("x-kefu-timestamp"),
                        h("x-kefu-signature"),
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .finish()
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/hook"), rx)
}

#[tokio::test]
async fn kefu_s_decisions_reach_the_crm_by_a_signed_retried_webhook_in_order() {
    const HOOK_SECRET: &str = "hook-secret-0123456789abcdef01234567";
    let (url, mut calls) = receiver(1).await;
    let app = spawn_app_with(|s| {
        with_key(s);
        s.crm.webhook_url = url;
        s.crm.webhook_secret = Some(Secret::new(HOOK_SECRET));
    })
    .await;
    let alice = crate::desk::staff(&app, "alice", Role::Agent, AgentStatus::Idle).await;
    let mut rx = app.state.bus.subscribe();
    // A first assignment binds the customer: the CRM must learn it.
    say(&app, "oNew", 1, "转人工").await;
    let got = changed(&mut rx, |c| c.state == "assigned").await;
    assert_eq!(got.agent, Some(alice));
    app.state.crm_webhook.wake();
    let mut seen = Vec::new();
    let ok = loop {
        let call = tokio::time::timeout(WAIT, calls.recv())
            .await
            .expect("a webhook call in time")
            .unwrap();
        seen.push(call.clone());
        if call.0 == 200 {
            break call;
        }
    };
    assert_eq!(seen[0].0, 500, "the first call failed and was retried");
    assert_eq!(seen[0].3, ok.3, "the same batch again");
    let (_, ts, signature, body) = ok;
    let ts: i64 = ts.parse().unwrap();
    assert_eq!(
        signature,
        hex(&sign(HOOK_SECRET.as_bytes(), ts, body.as_bytes()))
    );
    let sent: Value = serde_json::from_str(&body).unwrap();
    let e = &sent["events"][0];
    assert_eq!(e["kind"], "binding.created", "{sent}");
    assert_eq!(e["data"]["agent"], format!("kefu:{}", alice.0));
    assert_eq!(e["data"]["reason"], "first_assignment");
    // Marked delivered once the CRM said so: nothing is left to send.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app
        .state
        .store
        .undelivered_crm_events(10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "still undelivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kefu_import(db_url: &str, args: &[&str]) -> (i32, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEFU_") {
            c.env_remove(k);
        }
    }
    let out = c
        .env("KEFU__DATABASE__URL", db_url)
        .arg("--config")
        .arg(crate::helpers::repo_config_dir())
        .arg("import")
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn kefu_import_loads_csv_files_checks_them_dry_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("kefu.db").display());
    let groups = dir.path().join("groups.csv");
    std::fs::write(
        &groups,
        "\u{feff}id,name,version\r\ng-sh,上海,1\r\ng-bj,北京,1\r\n",
    )
    .unwrap();
    let agents = dir.path().join("agents.csv");
    std::fs::write(
        &agents,
        "id,login,name,groups,capacity,version\n\
         a-1,zhang,\"张三, 组长\",g-sh|g-bj,8,1\n\
         a-2,li,李四,g-nowhere,5,1\n\
         a-3,wang,王五,g-bj,,1\n",
    )
    .unwrap();
    let rejected = dir.path().join("rejected.csv");

    let (code, text) = kefu_import(&url, &["groups", groups.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("dry run"), "{text}");
    // The dry run kept nothing: the agents' groups do not exist yet.
    let (code, text) = kefu_import(&url, &["agents", agents.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("3 rejected"), "{text}");

    let (code, text) = kefu_import(&url, &["groups", groups.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 applied"), "{text}");
    let (code, text) = kefu_import(
        &url,
        &[
            "agents",
            agents.to_str().unwrap(),
            "--report",
            rejected.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "one bad row: {text}");
    assert!(
        text.contains("2 applied") && text.contains("1 rejected"),
        "{text}"
    );
    assert!(
        text.contains("line 3: a-2: group \"g-nowhere\" does not exist"),
        "{text}"
    );
    let report = std::fs::read_to_string(&rejected).unwrap();
    assert_eq!(report.lines().count(), 2, "{report}");
    // Again: nothing changes.
    let (_, text) = kefu_import(&url, &["agents", agents.to_str().unwrap()]);
    assert!(text.contains("0 applied, 2 unchanged"), "{text}");

    let store = kefu::store::Store::connect(&kefu::config::DatabaseSettings {
        url: Secret::new(url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let a1 = kefu::store::crm::agent_ids(store.conn(), &["a-1".to_owned()])
        .await
        .unwrap()["a-1"];
    let row = store.agent(a1).await.unwrap();
    assert_eq!((row.name.as_str(), row.capacity), ("张三, 组长", 8));
    assert_eq!(store.agent_groups(a1).await.unwrap().len(), 2);
}
