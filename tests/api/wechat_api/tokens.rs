//! Access tokens in one process: single-flight fetches, refresh-once-and-
//! retry-once on the three token errors, compare-and-delete invalidation,
//! and the store's refresh lock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kefu::wechat::api::{
    ApiClient, ApiError, ErrorClass, MemoryTokenStore, StoredToken, TokenMode, TokenPolicy,
    TokenStore, now_ms,
};

use super::*;
use crate::fake_wechat::{FakeWechat, Fault};

const MODES: [TokenMode; 2] = [TokenMode::Stable, TokenMode::Plain];

/// 50 tasks ask at once; returns what they got.
async fn fifty_at_once(client: &ApiClient) -> Vec<String> {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.access_token().await })
        })
        .collect();
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("token").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_callers_on_a_cold_cache_make_one_token_call() {
    for mode in MODES {
        let fake = FakeWechat::start().await;
        let client = oa_client(&fake, mode);
        let got = fifty_at_once(&client).await;
        assert_eq!(fake.count(token_endpoint(mode)), 1, "{mode:?}");
        assert!(
            got.iter().all(|t| t == &got[0]),
            "{mode:?}: one token for all"
        );
        assert_eq!(fake.valid_tokens(), vec![got[0].clone()]);
    }
    let fake = FakeWechat::start().await;
    let got = fifty_at_once(&kf_client(&fake)).await;
    assert_eq!(fake.count("gettoken"), 1);
    assert!(got.iter().all(|t| t == &got[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_callers_on_a_due_token_make_one_token_call() {
    for mode in MODES {
        let fake = FakeWechat::start().await;
        let store = Arc::new(MemoryTokenStore::new());
        // Another instance stored a token that is now due for refresh.
        let now = now_ms();
        let old = StoredToken {
            value: "OLD_TOKEN".into(),
            refresh_at_ms: now - 1,
            expires_at_ms: now + 60_000,
        };
        store.put(APPID, &old).await.unwrap();
        let client = oa_client_in(&fake, mode, store.clone());
        let got = fifty_at_once(&client).await;
        assert_eq!(fake.count(token_endpoint(mode)), 1, "{mode:?}");
        assert!(got.iter().all(|t| t == &got[0] && t != "OLD_TOKEN"));
        let shared = store.get(APPID).await.unwrap().expect("stored");
        assert_eq!(shared.value, got[0], "the new token is shared");
        assert!(shared.refresh_at_ms < shared.expires_at_ms);
    }
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_send_succeeds() {
    for mode in MODES {
        let fake = FakeWechat::start().await;
        let client = oa_client(&fake, mode);
        send_text(&client, "warm-up").await.unwrap();
        let first = tokens_used(&fake, "message/custom/send")[0].clone();
        fake.expire_all_tokens();

        send_text(&client, "after expiry").await.unwrap();

        assert_eq!(fake.count(token_endpoint(mode)), 2, "{mode:?}: one refresh");
        let used = tokens_used(&fake, "message/custom/send");
        assert_eq!(used.len(), 3, "{mode:?}: warm-up, 42001, retry");
        assert_eq!(used[1], first);
        assert_ne!(used[2], first);
    }
}

#[tokio::test]
async fn each_token_error_refreshes_once_and_retries_once() {
    for mode in MODES {
        for code in [40001, 40014, 42001] {
            let fake = FakeWechat::start().await;
            let client = oa_client(&fake, mode);
            send_text(&client, "warm-up").await.unwrap();
            fake.inject("message/custom/send", Fault::ErrCode(code), 1);

            send_text(&client, "hello").await.unwrap();

            assert_eq!(fake.count(token_endpoint(mode)), 2, "{mode:?} {code}");
            assert_eq!(fake.count("message/custom/send"), 3, "{mode:?} {code}");
        }
    }
}

#[tokio::test]
async fn a_second_token_error_fails_without_looping() {
    for mode in MODES {
        let fake = FakeWechat::start().await;
        let client = oa_client(&fake, mode);
        send_text(&client, "warm-up").await.unwrap();
        fake.inject("message/custom/send", Fault::ErrCode(40014), 1);
        fake.inject("message/custom/send", Fault::ErrCode(42001), 1);

        let e = send_text(&client, "hello").await.unwrap_err();

        assert_eq!(e.code(), Some(42001));
        assert_eq!(e.class(), ErrorClass::Token);
        assert_eq!(
            fake.count(token_endpoint(mode)),
            2,
            "{mode:?}: refreshed once"
        );
        assert_eq!(
            fake.count("message/custom/send"),
            3,
            "{mode:?}: retried once"
        );
        // The refreshed token was not thrown away: the next send needs no call.
        send_text(&client, "again").await.unwrap();
        assert_eq!(fake.count(token_endpoint(mode)), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_of_one_token_trigger_one_refresh() {
    for mode in MODES {
        let fake = FakeWechat::start().await;
        let client = oa_client(&fake, mode);
        send_text(&client, "warm-up").await.unwrap();
        fake.expire_all_tokens();

        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move { send_text(&c, &format!("m{i}")).await })
            })
            .collect();
        for r in join_all(tasks).await {
            r.expect("task").expect("send succeeds after one refresh");
        }

        // In plain mode a second refresh would have rotated the first one
        // and failed sends with 40001; there is exactly one.
        assert_eq!(fake.count(token_endpoint(mode)), 2, "{mode:?}");
        assert_eq!(fake.valid_tokens().len(), 1);
    }
}

#[tokio::test]
async fn a_late_failure_report_keeps_the_newer_token() {
    let fake = FakeWechat::start().await;
    let store = Arc::new(MemoryTokenStore::new());
    let client = oa_client_in(&fake, TokenMode::Plain, store.clone());
    let t1 = client.access_token().await.unwrap();
    client.invalidate(&t1).await;
    let t2 = client.access_token().await.unwrap();
    assert_ne!(t1, t2);
    assert_eq!(fake.count("token"), 2);

    // A caller that failed with t1 reports it after the refresh: t2 stays,
    // here and in the store.
    client.invalidate(&t1).await;
    assert_eq!(client.access_token().await.unwrap(), t2);
    assert_eq!(store.get(APPID).await.unwrap().unwrap().value, *t2);
    assert_eq!(fake.count("token"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_sharing_a_store_make_one_token_call() {
    // Two clients with separate local caches and one store: what two
    // instances sharing Redis do, in one process.
    let fake = FakeWechat::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let a = oa_client_in(&fake, TokenMode::Plain, store.clone());
    let b = oa_client_in(&fake, TokenMode::Plain, store);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { send_text(&c, &format!("m{i}")).await })
        })
        .collect();
    for r in join_all(tasks).await {
        r.expect("task").expect("send");
    }
    assert_eq!(fake.count("token"), 1);
    assert_eq!(fake.count("message/custom/send"), 200, "no 40001, no retry");
}

#[tokio::test]
async fn separate_stores_rotate_each_other_s_tokens() {
    // The failure mode the shared store prevents (PROTOCOL.md §7.1): two
    // instances with their own caches and plain `token` calls invalidate
    // each other's token at every refresh. Retry-once keeps each send alive,
    // at the price of a 40001 and a token call almost every time.
    let fake = FakeWechat::start().await;
    let a = oa_client(&fake, TokenMode::Plain);
    let b = oa_client(&fake, TokenMode::Plain);
    for i in 0..20 {
        let c = if i % 2 == 0 { &a } else { &b };
        send_text(c, &format!("m{i}")).await.unwrap();
    }
    assert!(
        fake.count("token") >= 10,
        "token calls: {}",
        fake.count("token")
    );
    assert!(fake.count("message/custom/send") >= 30);
}

#[tokio::test]
async fn waiting_for_another_refresh_is_bounded_and_a_lapsed_lock_is_taken_over() {
    let fake = FakeWechat::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let policy = TokenPolicy {
        wait_timeout: Duration::from_millis(300),
        ..TokenPolicy::default()
    };
    let client = oa_client_in(&fake, TokenMode::Plain, store.clone()).with_policy(policy);

    // Another instance holds the lock and never stores a token.
    assert!(
        store
            .try_lock(APPID, "stuck", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let e = client.access_token().await.unwrap_err();
    assert!(matches!(e, ApiError::TokenStore(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(fake.count("token"), 0, "no token call without the lock");

    // A crashed holder: its short lease lapses and a waiter takes over.
    assert!(store.unlock(APPID, "stuck").await.unwrap());
    assert!(
        store
            .try_lock(APPID, "crashed", Duration::from_millis(100))
            .await
            .unwrap()
    );
    client.access_token().await.unwrap();
    assert_eq!(fake.count("token"), 1);
}

#[tokio::test]
async fn errors_never_show_the_secret_or_the_token() {
    // Nothing listens on port 9 (discard) here: a transport error, whose
    // URL would carry the secret of a plain `token` call.
    let client = ApiClient::new(
        http(Duration::from_secs(2)),
        oa_config("http://127.0.0.1:9", TokenMode::Plain),
    );
    let e = client.access_token().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e:?}");
    assert!(!e.to_string().contains(SECRET), "{e}");
    assert!(!format!("{e:?}").contains(SECRET));
    assert!(!format!("{client:?}").contains(SECRET));

    // A send that times out: its URL carried the access token.
    let fake = FakeWechat::start().await;
    let client = ApiClient::new(
        http(Duration::from_millis(300)),
        oa_config(&fake.base_url, TokenMode::Stable),
    );
    let token = client.access_token().await.unwrap();
    fake.inject(
        "message/custom/send",
        Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let e = send_text(&client, "slow").await.unwrap_err();
    assert_eq!(e, ApiError::Timeout);
    assert!(!format!("{e} {e:?}").contains(&*token));
}

#[tokio::test]
async fn a_failing_token_endpoint_is_reported_by_class() {
    let fake = FakeWechat::start().await;
    let client = oa_client(&fake, TokenMode::Stable);
    fake.inject("stable_token", Fault::Status(503), 1);
    let e = send_text(&client, "x").await.unwrap_err();
    assert_eq!(
        (e.clone(), e.class()),
        (ApiError::Http(503), ErrorClass::Transient)
    );
    assert_eq!(fake.count("message/custom/send"), 0);
    // Not cached: the next call fetches again and succeeds.
    send_text(&client, "x").await.unwrap();
    assert_eq!(fake.count("stable_token"), 2);
}
