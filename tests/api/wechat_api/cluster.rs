//! Two instances sharing the access token through Redis (PROTOCOL.md §7.1,
//! §7.2): separate processes are played by separate clients with separate
//! local caches and separate Redis connections. Plain `token` mode, so
//! every token call rotates the previous token, as WeChat's does.
//! Runs only when `KEFU_TEST_REDIS_URL` is set (CI sets it).

use std::sync::Arc;

use futures_util::future::join_all;
use kefu::cluster::RedisTokenStore;
use kefu::wechat::api::{ApiClient, TokenMode, TokenStore};

use super::*;
use crate::fake_wechat::FakeWechat;

/// A Redis store under a prefix of its own, or `None` (with the reason on
/// stderr) when no test Redis is configured.
async fn redis_store(prefix: &str) -> Option<Arc<dyn TokenStore>> {
    let Some(url) = std::env::var("KEFU_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("KEFU_TEST_REDIS_URL is not set: skipping the two-instance Redis token test");
        return None;
    };
    let store = RedisTokenStore::connect(&url, prefix)
        .await
        .unwrap_or_else(|e| panic!("KEFU_TEST_REDIS_URL unreachable: {e}"));
    Some(Arc::new(store))
}

/// Two "instances" sharing one Redis prefix.
async fn two_instances(fake: &FakeWechat) -> Option<(ApiClient, ApiClient, Arc<dyn TokenStore>)> {
    let prefix = format!("kefu-test-{}", uuid::Uuid::new_v4().simple());
    let a_store = redis_store(&prefix).await?;
    let b_store = redis_store(&prefix).await?;
    let a = oa_client_in(fake, TokenMode::Plain, a_store.clone());
    let b = oa_client_in(fake, TokenMode::Plain, b_store);
    Some((a, b, a_store))
}

/// Sends `n` texts alternating between the instances, all at once.
async fn interleave(a: &ApiClient, b: &ApiClient, from: usize, n: usize) {
    let tasks: Vec<_> = (from..from + n)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { send_text(&c, &format!("m{i}")).await })
        })
        .collect();
    for r in join_all(tasks).await {
        r.expect("task").expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_redis_make_one_token_call() {
    let fake = FakeWechat::start().await;
    let Some((a, b, store)) = two_instances(&fake).await else {
        return;
    };

    // Cold start on both instances at once, then 100 more one at a time.
    interleave(&a, &b, 0, 100).await;
    for i in 100..200 {
        let c = if i % 2 == 0 { &a } else { &b };
        send_text(c, &format!("m{i}")).await.unwrap();
    }

    assert_eq!(fake.count("token"), 1, "one token call for both instances");
    let used = tokens_used(&fake, "message/custom/send");
    assert_eq!(used.len(), 200, "no 40001, hence no retry");
    assert!(used.iter().all(|t| t == &used[0]));

    store.delete_if(a.store_key(), &used[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_token_is_refreshed_once_for_both_instances() {
    let fake = FakeWechat::start().await;
    let Some((a, b, store)) = two_instances(&fake).await else {
        return;
    };
    interleave(&a, &b, 0, 10).await;
    fake.expire_all_tokens();

    // Both instances fail with the old token, both report it (compare-and-
    // delete in Redis), one of them refreshes under the Redis lock.
    interleave(&a, &b, 10, 40).await;

    assert_eq!(fake.count("token"), 2, "warm-up and one refresh");
    assert_eq!(fake.valid_tokens().len(), 1);
    let used = tokens_used(&fake, "message/custom/send");
    let current = &fake.valid_tokens()[0];
    let with_new = used.iter().filter(|t| *t == current).count();
    assert_eq!(
        with_new, 40,
        "every send finally went out with the new token"
    );

    store.delete_if(a.store_key(), current).await.unwrap();
}
