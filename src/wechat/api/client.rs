//! One client per account: access token cached and refreshed single-flight,
//! JSON calls retried once when the token is rejected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorClass};

/// Which API family (they differ in token endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// Official Account: `token` / `stable_token` with appid + secret.
    OfficialAccount,
    /// WeCom: `gettoken` with corpid + corpsecret.
    WeCom,
}

/// How an Official Account obtains tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    Stable,
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

#[derive(Clone)]
struct CachedToken {
    value: Arc<str>,
    /// When Kefu stops using it (a margin before WeChat's expiry).
    use_until: Instant,
}

/// Refresh this long before WeChat says the token expires.
const EARLY_REFRESH: Duration = Duration::from_secs(300);

/// A WeChat API client for one account.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    cfg: Arc<ApiConfig>,
    token: Cache<(), CachedToken>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("cfg", &self.cfg).finish()
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    #[serde(default)]
    expires_in: u64,
}

impl ApiClient {
    /// `http` must carry a timeout (every outbound call has one).
    pub fn new(http: reqwest::Client, cfg: ApiConfig) -> Self {
        Self {
            http,
            cfg: Arc::new(cfg),
            token: Cache::builder().max_capacity(1).build(),
        }
    }

    pub fn config(&self) -> &ApiConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/cgi-bin/{}",
            self.cfg.base_url.trim_end_matches('/'),
            path
        )
    }

    /// The current access token; concurrent callers on a missing or expired
    /// token share one fetch.
    pub async fn access_token(&self) -> Result<Arc<str>, ApiError> {
        if let Some(t) = self.token.get(&()).await
            && t.use_until > Instant::now()
        {
            return Ok(t.value);
        }
        // Expired entries are dropped first so the fetch below really runs.
        if self
            .token
            .get(&())
            .await
            .is_some_and(|t| t.use_until <= Instant::now())
        {
            self.token.invalidate(&()).await;
        }
        let fetched = self
            .token
            .try_get_with((), self.fetch_token())
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())?;
        Ok(fetched.value)
    }

    /// Forgets the token if it is still `failed` (compare-and-swap), so a
    /// token refreshed meanwhile by another caller is kept.
    pub async fn invalidate(&self, failed: &str) {
        if let Some(t) = self.token.get(&()).await
            && &*t.value == failed
        {
            self.token.invalidate(&()).await;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, ApiError> {
        let started = Instant::now();
        let req = match (self.cfg.family, self.cfg.token_mode) {
            (ApiFamily::WeCom, _) => self.http.get(self.url("gettoken")).query(&[
                ("corpid", self.cfg.app_id.as_str()),
                ("corpsecret", self.cfg.secret.as_str()),
            ]),
            (ApiFamily::OfficialAccount, TokenMode::Plain) => {
                self.http.get(self.url("token")).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", self.cfg.app_id.as_str()),
                    ("secret", self.cfg.secret.as_str()),
                ])
            }
            (ApiFamily::OfficialAccount, TokenMode::Stable) => self
                .http
                .post(self.url("stable_token"))
                .json(&serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": self.cfg.app_id,
                    "secret": self.cfg.secret,
                    "force_refresh": false,
                })),
        };
        let answer: TokenAnswer = decode(req.send().await.map_err(ApiError::from_reqwest)?).await?;
        match answer.access_token {
            Some(value) if answer.errcode == 0 && !value.is_empty() => {
                let lifetime = Duration::from_secs(answer.expires_in.max(60));
                let margin = EARLY_REFRESH.min(lifetime / 2);
                tracing::info!(app_id = %self.cfg.app_id, expires_in = answer.expires_in, "fetched a new access token");
                Ok(CachedToken {
                    value: value.into(),
                    use_until: started + lifetime - margin,
                })
            }
            _ => Err(ApiError::WeChat {
                code: answer.errcode,
                message: answer.errmsg,
            }),
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
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let res = self
                .http
                .post(self.url(path))
                .query(&[("access_token", &*token)])
                .json(body)
                .send()
                .await;
            let value: serde_json::Value = decode(res.map_err(ApiError::from_reqwest)?).await?;
            match check_errcode(&value) {
                Ok(()) => {
                    return serde_json::from_value(value)
                        .map_err(|e| ApiError::Decode(e.to_string()));
                }
                Err(e) if e.class() == ErrorClass::Token && !retried => {
                    tracing::warn!(app_id = %self.cfg.app_id, code = ?e.code(), "access token rejected; refreshing once");
                    self.invalidate(&token).await;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn check_errcode(v: &serde_json::Value) -> Result<(), ApiError> {
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

async fn decode<T: DeserializeOwned>(res: reqwest::Response) -> Result<T, ApiError> {
    let status = res.status();
    if !status.is_success() {
        return Err(ApiError::Http(status.as_u16()));
    }
    let bytes = res.bytes().await.map_err(ApiError::from_reqwest)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
}
