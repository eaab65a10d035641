//! History search through HTTP: Chinese words find messages; each user
//! finds only what they may see (agent: their customers; supervisor: their
//! groups; admin: all); filters by customer, agent, channel and date;
//! paging; bad input gets clear errors; the indexer catches up with
//! history and, on PostgreSQL, with rows committed behind its cursor.

use chrono::Utc;
use kefu::auth::Role;
use kefu::ids::MessageId;
use serde_json::Value;

use crate::board::world;
use crate::desk::{api_get, customer_of, say, session, staff};
use crate::login::browser::{ADMIN_PW, create_admin, sign_in};

/// `/api/search?...` with these parameters, encoded.
fn search_path(params: &[(&str, &str)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/api/search?{q}")
}

fn found(body: &Value) -> Vec<i64> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["message_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn chinese_words_find_only_the_messages_the_user_may_see() {
    let w = world().await;
    let app = &w.app;
    // alice serves oA (上海), oB waits in 上海's queue, carl serves oC (北京).
    let a = say(app, "oA", 11, "我的车卖了吗？什么时候打款").await;
    let b = say(app, "oB", 12, "打款进度怎么样了").await;
    let c = say(app, "oC", 13, "请问打款到账了吗").await;
    let other = say(app, "oA", 14, "过户需要带什么材料").await;
    app.state.search.drain().await.unwrap();
    create_admin(app).await;
    let admin = sign_in(app, "ada", ADMIN_PW).await;
    let alice = session(app, "alice").await;
    let carl = session(app, "carl").await;
    let sue = session(app, "sue").await;
    let q = search_path(&[("q", "打款")]);

    let (status, body) = api_get(app, &q, Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(found(&body), [c.0, b.0, a.0], "admin: all, newest first");
    assert_eq!(body["words"], serde_json::json!(["打款"]));
    let hit = &body["results"][2];
    assert_eq!(hit["channel"], "oa");
    assert_eq!(hit["direction"], "in");
    let marked: Vec<&str> = hit["excerpt"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hit"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["打款"], "{hit}");

    let (_, body) = api_get(app, &q, Some(&alice)).await;
    assert_eq!(found(&body), [a.0], "alice: her customer only");
    let (_, body) = api_get(app, &q, Some(&carl)).await;
    assert_eq!(found(&body), [c.0], "carl: his customer only");
    let (_, body) = api_get(app, &q, Some(&sue)).await;
    assert_eq!(
        found(&body),
        [b.0, a.0],
        "sue: 上海's customers, not 北京's"
    );

    // Words jieba cuts differently alone and in the sentence still match.
    let (_, body) = api_get(app, &search_path(&[("q", "车卖了")]), Some(&alice)).await;
    assert_eq!(found(&body), [a.0]);
    // All words are required.
    let (_, body) = api_get(app, &search_path(&[("q", "打款 过户")]), Some(&admin)).await;
    assert_eq!(found(&body), Vec::<i64>::new());
    let (_, body) = api_get(app, &search_path(&[("q", "过户 材料")]), Some(&admin)).await;
    assert_eq!(found(&body), [other.0]);

    // Asking for another group's customer by id finds nothing.
    let oc = customer_of(app, "oC").await;
    let (status, body) = api_get(
        app,
        &search_path(&[("q", "打款"), ("customer", &oc.0.to_string())]),
        Some(&alice),
    )
    .await;
    assert_eq!((status, found(&body)), (200, vec![]), "{body}");
    // A customer's whole history, without words.
    let oa = customer_of(app, "oA").await;
    let (_, body) = api_get(
        app,
        &search_path(&[("customer", &oa.0.to_string())]),
        Some(&alice),
    )
    .await;
    let ids = found(&body);
    assert!(ids.contains(&a.0) && ids.contains(&other.0), "{body}");
    assert!(!ids.contains(&b.0) && !ids.contains(&c.0), "{body}");
}

#[tokio::test]
async fn filters_paging_and_bad_input() {
    let w = world().await;
    let app = &w.app;
    let a = say(app, "oA", 21, "打款了没有").await;
    let c = say(app, "oC", 22, "打款到账没有").await;
    app.state.search.drain().await.unwrap();
    create_admin(app).await;
    let admin = sign_in(app, "ada", ADMIN_PW).await;
    let get = |params: Vec<(&'static str, String)>| {
        let path = search_path(
            &params
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        );
        let admin = &admin;
        async move { api_get(app, &path, Some(admin)).await }
    };
    let q = || ("q", "打款".to_owned());

    let (_, body) = get(vec![q(), ("channel", "oa".into())]).await;
    assert_eq!(found(&body), [c.0, a.0]);
    let (_, body) = get(vec![q(), ("channel", "wecom_kf".into())]).await;
    assert_eq!(found(&body), Vec::<i64>::new());
    let carl = app
        .state
        .store
        .conversation(w.beijing)
        .await
        .unwrap()
        .agent_id
        .unwrap();
    let (_, body) = get(vec![q(), ("agent", carl.to_string())]).await;
    assert_eq!(found(&body), [c.0], "the conversations carl held");
    // Dates: the day the messages were sent, RFC 3339 bounds around them.
    let (_, body) = get(vec![q()]).await;
    let sent: chrono::DateTime<Utc> = body["results"][0]["sent_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let day = sent.date_naive().to_string();
    let (_, body) = get(vec![q(), ("from", day.clone()), ("to", day)]).await;
    assert_eq!(found(&body), [c.0, a.0], "that day");
    let next_day = sent.date_naive().succ_opt().unwrap().to_string();
    let (_, body) = get(vec![q(), ("from", next_day)]).await;
    assert_eq!(found(&body), Vec::<i64>::new(), "from the next day");
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, body) = get(vec![q(), ("to", rfc(sent - chrono::Duration::hours(1)))]).await;
    assert_eq!(found(&body), Vec::<i64>::new(), "up to an hour before");
    let (_, body) = get(vec![
        q(),
        ("from", rfc(sent - chrono::Duration::hours(1))),
        ("to", rfc(sent + chrono::Duration::hours(1))),
    ])
    .await;
    assert_eq!(found(&body), [c.0, a.0], "within the hour");

    // Pages, newest first.
    let (_, first) = get(vec![q(), ("limit", "1".into())]).await;
    assert_eq!(found(&first), [c.0]);
    let next = first["next_before"].as_i64().expect("more");
    let (_, second) = get(vec![
        q(),
        ("limit", "1".into()),
        ("before", next.to_string()),
    ])
    .await;
    assert_eq!(found(&second), [a.0]);
    let (_, last) = get(vec![
        q(),
        ("limit", "1".into()),
        ("before", a.0.to_string()),
    ])
    .await;
    assert_eq!(
        (found(&last), last["next_before"].clone()),
        (vec![], Value::Null)
    );

    // Particles only: nothing to look for, an empty answer.
    let (status, body) = get(vec![("q", "的了吗".into())]).await;
    assert_eq!((status, found(&body)), (200, vec![]));
    // Bad input gets clear errors.
    for (params, words) in [
        (vec![], "type words"),
        (vec![("q", "车".repeat(201))], "at most 200"),
        (vec![q(), ("channel", "sms".into())], "channel"),
        (vec![q(), ("from", "yesterday".into())], "from"),
        (vec![q(), ("before", "x".into())], "before"),
    ] {
        let (status, body) = get(params).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().contains(words), "{body}");
    }
    let (status, _) = api_get(app, &search_path(&[("q", "打款")]), None).await;
    assert_eq!(status, 401);
    let (status, page) = api_get(app, "/search", Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("历史搜索"));
}

#[tokio::test]
async fn the_indexer_catches_up_with_history_and_with_late_commits() {
    let app = crate::helpers::spawn_app().await;
    staff(
        &app,
        "ann",
        Role::Agent,
        kefu::routing::AgentStatus::Offline,
    )
    .await;
    let first = say(&app, "oX", 31, "京A12345 的过户手续").await;
    app.state.search.drain().await.unwrap();
    assert_eq!(app.state.search.drain().await.unwrap(), 0, "nothing new");
    assert_eq!(app.state.store.index_cursor().await.unwrap(), first.0);
    create_admin(&app).await;
    let admin = sign_in(&app, "ada", ADMIN_PW).await;
    // A plate fragment finds the plate.
    let (_, body) = api_get(&app, &search_path(&[("q", "a123")]), Some(&admin)).await;
    assert_eq!(found(&body), [first.0], "{body}");

    if !app.db.is_postgres() {
        return;
    }
    // PostgreSQL: a transaction that took its id first can commit after
    // the indexer moved past it. Written here as a row behind the cursor.
    let store = &app.state.store;
    let ahead = insert_text(&app, first.0 + 1000, "ahead 后来的消息").await;
    app.state.search.drain().await.unwrap();
    assert_eq!(store.index_cursor().await.unwrap(), ahead.0);
    let late = insert_text(&app, first.0 + 500, "late 迟到的消息").await;
    app.state.search.drain().await.unwrap();
    let (_, body) = api_get(&app, &search_path(&[("q", "迟到")]), Some(&admin)).await;
    assert_eq!(found(&body), [late.0], "{body}");
}

/// A text message row with this id (as a late commit would leave it).
async fn insert_text(app: &crate::helpers::TestApp, id: i64, text: &str) -> MessageId {
    use sea_orm::{ActiveModelTrait, Set};
    let now = Utc::now();
    kefu::store::entities::messages::ActiveModel {
        id: Set(id),
        account_id: Set("demo-oa".into()),
        channel: Set("oa".into()),
        direction: Set("in".into()),
        sender: Set("oX".into()),
        msg_type: Set("text".into()),
        content: Set(Some(text.into())),
        sent_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(app.state.store.writer())
    .await
    .unwrap();
    MessageId(id)
}
