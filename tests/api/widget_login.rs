//! The widget's signed logins against a real database (SQLite, or
//! PostgreSQL when `KEFU_TEST_POSTGRES_URL` is set): a token's nonce is
//! claimed once per site, also under concurrent claims, and expired nonces
//! are purged while live ones stay.

use chrono::{DateTime, TimeDelta, Utc};
use kefu::channels::web::login::{self, LoginClaims};
use kefu::config::{DatabaseSettings, Secret};
use kefu::store::Store;

use crate::helpers::TestDb;

const SECRET: &[u8] = b"demo-web-login-secret-0123456789";

/// A migrated store on a fresh database; keep the guards for the test.
async fn store() -> (Store, TestDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path()).await;
    let settings = DatabaseSettings {
        url: Secret::new(db.url.clone()),
        max_connections: 4,
        ..Default::default()
    };
    let store = Store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    (store, db, dir)
}

/// Now, in whole seconds as tokens carry it.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

#[tokio::test]
async fn a_login_token_works_once_per_site() {
    let (store, _db, _dir) = store().await;
    let t = now();
    let claims = LoginClaims {
        user_id: "u-1001".into(),
        name: Some("王小明".into()),
        expires_at: t + TimeDelta::minutes(5),
        nonce: "3f9a1c0e7b2d4a6f8e1c".into(),
    };
    let token = login::sign(&claims, SECRET);

    let first = login::verify(&token, SECRET, t).unwrap();
    assert!(
        store
            .claim_login_nonce("demo-web", &first.nonce, first.expires_at)
            .await
            .unwrap()
    );
    // The same token again verifies, but its nonce is spent.
    let replay = login::verify(&token, SECRET, t + TimeDelta::seconds(30)).unwrap();
    assert!(
        !store
            .claim_login_nonce("demo-web", &replay.nonce, replay.expires_at)
            .await
            .unwrap()
    );
    // Another site's nonces are its own; another nonce is a new token.
    assert!(
        store
            .claim_login_nonce("demo-app", &first.nonce, first.expires_at)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_login_nonce("demo-web", "another-nonce-0123456789", first.expires_at)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_login_nonce("demo-web", "another-nonce-0123456789", first.expires_at)
            .await
            .unwrap()
    );
    // The longest nonce a token may carry fits the column, in any script.
    let longest = "随".repeat(login::MAX_NONCE_CHARS);
    assert!(
        store
            .claim_login_nonce("demo-web", &longest, first.expires_at)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_login_nonce("demo-web", &longest, first.expires_at)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_nonce_let_exactly_one_in() {
    let (store, _db, _dir) = store().await;
    let expires = now() + TimeDelta::minutes(5);
    let claims = (0..8).map(|_| {
        let s = store.clone();
        tokio::spawn(async move {
            s.claim_login_nonce("demo-web", "race-nonce-0123456789", expires)
                .await
        })
    });
    let mut won = 0;
    for c in claims.collect::<Vec<_>>() {
        if c.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn expired_nonces_are_purged_and_live_ones_kept() {
    let (store, _db, _dir) = store().await;
    let t = now();
    let soon = t + TimeDelta::seconds(10);
    let later = t + TimeDelta::hours(1);
    assert!(
        store
            .claim_login_nonce("demo-web", "soon-0123456789abc", soon)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_login_nonce("demo-app", "soon-0123456789abc", soon)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_login_nonce("demo-web", "later-0123456789ab", later)
            .await
            .unwrap()
    );

    assert_eq!(store.purge_login_nonces(t).await.unwrap(), 0);
    assert_eq!(
        store
            .purge_login_nonces(soon - TimeDelta::milliseconds(1))
            .await
            .unwrap(),
        0
    );
    // A token is refused from its expiry on: its nonce goes then.
    assert_eq!(store.purge_login_nonces(soon).await.unwrap(), 2);
    assert_eq!(store.purge_login_nonces(soon).await.unwrap(), 0);
    // The live one is still spent.
    assert!(
        !store
            .claim_login_nonce("demo-web", "later-0123456789ab", later)
            .await
            .unwrap()
    );
    // A purged one could be claimed again, but its token no longer verifies.
    let old = login::sign(
        &LoginClaims {
            user_id: "u".into(),
            name: None,
            expires_at: soon,
            nonce: "soon-0123456789abc".into(),
        },
        SECRET,
    );
    assert_eq!(
        login::verify(&old, SECRET, soon),
        Err(login::LoginError::Expired)
    );
    assert_eq!(
        store
            .purge_login_nonces(later + TimeDelta::milliseconds(250))
            .await
            .unwrap(),
        1
    );
}
