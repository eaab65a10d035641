//! One client per account: configuration, the shared access token (see
//! `token.rs`), and JSON calls retried once when the token is rejected.

use std::sync::Arc;

use moka::future::Cache;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorClass};
use super::store::{MemoryTokenStore, TokenStore};
use super::token::{LocalToken, TokenPolicy, UntilRefresh};

/// Which API family (they differ in token endpoints and calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// Official Account: `token` / `stable_token` with appid + secret.
    OfficialAccount,
    /// WeCom: `gettoken` with corpid + corpsecret.
    WeCom,
}

/// How an Official Account obtains tokens (ignored for WeCom).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// `POST stable_token`: the same token while valid; safe to call from
    /// several places. The default.
    #[default]
    Stable,
    /// `GET token`: every call rotates the token and invalidates the
    /// previous one, hence the shared store and its lock.
    Plain,
}

/// What a client needs to know.
#[derive(Clone)]
pub struct ApiConfig {
    /// Scheme and host, without `/cgi-bin`.
    pub base_url: String,
    pub family: ApiFamily,
    /// appid or corpid.
    pub app_id: String,
    pub secret: String,
    pub token_mode: TokenMode,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("family", &self.family)
            .field("app_id", &self.app_id)
            .field("secret", &"***")
            .field("token_mode", &self.token_mode)
            .finish()
    }
}

/// A WeChat API client for one account. Cheap to clone; clones share the
/// token cache.
#[derive(Clone)]
pub struct ApiClient {
    pub(super) http: reqwest::Client,
    pub(super) cfg: Arc<ApiConfig>,
    /// This process's copy of the token, in front of `store`.
    pub(super) local: Cache<(), LocalToken>,
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) store_key: Arc<str>,
    pub(super) policy: TokenPolicy,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("cfg", &self.cfg)
            .field("store", &self.store.kind())
            .finish()
    }
}

impl ApiClient {
    /// A client with its own in-memory token store (one process, one
    /// client per account). `http` must carry a timeout.
    pub fn new(http: reqwest::Client, cfg: ApiConfig) -> Self {
        Self::with_store(http, cfg, Arc::new(MemoryTokenStore::new()))
    }

    /// A client whose token lives in `store`, shared with every client (in
    /// this process or another) using the same store for the same account.
    pub fn with_store(http: reqwest::Client, cfg: ApiConfig, store: Arc<dyn TokenStore>) -> Self {
        let store_key = store_key(&cfg).into();
        Self {
            http,
            cfg: Arc::new(cfg),
            local: Cache::builder()
                .max_capacity(1)
                .expire_after(UntilRefresh)
                .build(),
            store,
            store_key,
            policy: TokenPolicy::default(),
        }
    }

    /// Replaces the token timing (early refresh, lock lease, wait).
    pub fn with_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn config(&self) -> &ApiConfig {
        &self.cfg
    }

    /// The key of this account's token in the store: the appid for an
    /// Official Account; for WeCom, whose tokens belong to a (corpid, secret)
    /// pair, the corpid and a short fingerprint of the secret.
    pub fn store_key(&self) -> &str {
        &self.store_key
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!(
            "{}/cgi-bin/{}",
            self.cfg.base_url.trim_end_matches('/'),
            path
        )
    }

    /// Refuses a call that belongs to the other family, before any I/O.
    pub(super) fn require(&self, family: ApiFamily, what: &str) -> Result<(), ApiError> {
        if self.cfg.family == family {
            Ok(())
        } else {
            Err(ApiError::Unsupported(format!(
                "{what} is a {family:?} call; this account is {:?}",
                self.cfg.family
            )))
        }
    }

    /// POSTs JSON to `/cgi-bin/{path}?access_token=…` and decodes the answer;
    /// a non-zero `errcode` is an error. A rejected token is refreshed and the
    /// call retried once.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.call_json(reqwest::Method::POST, path, |rb| rb.json(body))
            .await
    }

    /// Any call answering JSON: `build` adds the body or extra query to a
    /// request that already carries the access token; it may run twice
    /// (after a token refresh), so it must rebuild bodies such as multipart
    /// forms each time. A rejected token (40001/40014/42001) is invalidated
    /// only if still current, refreshed once, and the call retried once.
    pub async fn call_json<T, F>(
        &self,
        method: reqwest::Method,
        path: &str,
        build: F,
    ) -> Result<T, ApiError>
    where
        T: DeserializeOwned,
        F: Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let req = self
                .http
                .request(method.clone(), self.url(path))
                .query(&[("access_token", &*token)]);
            let res = build(req).send().await;
            let value: serde_json::Value = decode(res.map_err(ApiError::from_reqwest)?).await?;
            match check_errcode(&value) {
                Ok(()) => {
                    return serde_json::from_value(value)
                        .map_err(|e| ApiError::Decode(e.to_string()));
                }
                Err(e) if e.class() == ErrorClass::Token && !retried => {
                    tracing::warn!(
                        app_id = %self.cfg.app_id, path, code = ?e.code(),
                        "access token rejected; refreshing once"
                    );
                    self.invalidate(&token).await;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn store_key(cfg: &ApiConfig) -> String {
    match cfg.family {
        ApiFamily::OfficialAccount => cfg.app_id.clone(),
        ApiFamily::WeCom => {
            let digest = Sha256::digest(cfg.secret.as_bytes());
            let fp: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}.{fp}", cfg.app_id)
        }
    }
}

pub(super) fn check_errcode(v: &serde_json::Value) -> Result<(), ApiError> {
    let code = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
    if code == 0 {
        Ok(())
    } else {
        let message = v
            .get("errmsg")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        Err(ApiError::WeChat { code, message })
    }
}

pub(super) async fn decode<T: DeserializeOwned>(res: reqwest::Response) -> Result<T, ApiError> {
    let status = res.status();
    if !status.is_success() {
        return Err(ApiError::Http(status.as_u16()));
    }
    let bytes = res.bytes().await.map_err(ApiError::from_reqwest)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(family: ApiFamily, secret: &str) -> ApiConfig {
        ApiConfig {
            base_url: "http://127.0.0.1:9/".into(),
            family,
            app_id: "wx1".into(),
            secret: secret.into(),
            token_mode: TokenMode::default(),
        }
    }

    #[test]
    fn store_keys_separate_wecom_secrets_but_not_oa_ones() {
        let oa = store_key(&cfg(ApiFamily::OfficialAccount, "s1"));
        assert_eq!(oa, "wx1");
        let a = store_key(&cfg(ApiFamily::WeCom, "s1"));
        let b = store_key(&cfg(ApiFamily::WeCom, "s2"));
        assert!(a.starts_with("wx1.") && a.len() == "wx1.".len() + 8);
        assert_ne!(a, b);
        assert!(!a.contains("s1"));
    }

    #[test]
    fn debug_hides_the_secret_and_stable_is_the_default() {
        let c = cfg(ApiFamily::OfficialAccount, "TOPSECRET");
        assert!(!format!("{c:?}").contains("TOPSECRET"));
        assert_eq!(TokenMode::default(), TokenMode::Stable);
    }

    #[test]
    fn errcode_zero_or_absent_is_success() {
        assert!(check_errcode(&serde_json::json!({"errcode": 0, "errmsg": "ok"})).is_ok());
        assert!(check_errcode(&serde_json::json!({"msgid": 1})).is_ok());
        assert_eq!(
            check_errcode(&serde_json::json!({"errcode": 45015, "errmsg": "out of time"})),
            Err(ApiError::WeChat {
                code: 45015,
                message: "out of time".into()
            })
        );
    }
}
