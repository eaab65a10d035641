//! The outbound WeChat / WeCom API client (`kefu::wechat::api`) against the
//! fake WeChat server over real HTTP: access tokens (single-flight,
//! compare-and-delete invalidation, shared by instances through a store),
//! the JSON of every call, and how failures are classified.

mod cluster;
mod messages;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use kefu::wechat::api::{
    ApiClient, ApiConfig, ApiFamily, MemoryTokenStore, OutboundContent, SendRoute, TokenMode,
    TokenStore,
};

use crate::fake_wechat::FakeWechat;

pub const APPID: &str = "wxTESTapp00000001";
pub const CORPID: &str = "wwTESTcorp0000001";
/// Must never appear in errors or logs.
pub const SECRET: &str = "test-secret-never-shown";
pub const OPENID: &str = "oTESTuser000000000000000001";

/// The HTTP client every `ApiClient` gets in production: with a timeout.
pub fn http(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

pub fn oa_config(base_url: &str, mode: TokenMode) -> ApiConfig {
    ApiConfig {
        base_url: base_url.to_owned(),
        family: ApiFamily::OfficialAccount,
        app_id: APPID.into(),
        secret: SECRET.into(),
        token_mode: mode,
    }
}

/// An Official Account client with its own in-memory store.
pub fn oa_client(fake: &FakeWechat, mode: TokenMode) -> ApiClient {
    ApiClient::new(
        http(Duration::from_secs(5)),
        oa_config(&fake.base_url, mode),
    )
}

/// An Official Account client keeping its token in `store`.
pub fn oa_client_in(fake: &FakeWechat, mode: TokenMode, store: Arc<dyn TokenStore>) -> ApiClient {
    ApiClient::with_store(
        http(Duration::from_secs(5)),
        oa_config(&fake.base_url, mode),
        store,
    )
}

/// A WeCom kf client.
pub fn kf_client(fake: &FakeWechat) -> ApiClient {
    ApiClient::with_store(
        http(Duration::from_secs(5)),
        ApiConfig {
            base_url: fake.base_url.clone(),
            family: ApiFamily::WeCom,
            app_id: CORPID.into(),
            secret: SECRET.into(),
            token_mode: TokenMode::default(),
        },
        Arc::new(MemoryTokenStore::new()),
    )
}

/// The token endpoint a mode calls.
pub fn token_endpoint(mode: TokenMode) -> &'static str {
    match mode {
        TokenMode::Stable => "stable_token",
        TokenMode::Plain => "token",
    }
}

pub fn text(s: &str) -> OutboundContent {
    OutboundContent::Text {
        content: s.to_owned(),
    }
}

pub fn oa_route() -> SendRoute {
    SendRoute::OfficialAccount { kf_account: None }
}

/// Sends a text to [`OPENID`] through `message/custom/send`.
pub async fn send_text(
    client: &ApiClient,
    s: &str,
) -> Result<kefu::wechat::api::SendReceipt, kefu::wechat::api::ApiError> {
    client.send(OPENID, &text(s), oa_route()).await
}

/// The `access_token` each recorded call to `endpoint` carried.
pub fn tokens_used(fake: &FakeWechat, endpoint: &str) -> Vec<String> {
    fake.requests_to(endpoint)
        .iter()
        .map(|r| r.query.get("access_token").cloned().unwrap_or_default())
        .collect()
}
