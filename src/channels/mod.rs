//! The channels: each translates one wire format to and from the domain.
//! Handlers are thin: check, translate, hand to the pipeline, answer.

pub mod kf_sync;
pub mod official_account;
pub mod web;
pub mod wecom;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::config::{Account, AccountKind, Settings, TokenMode};
use crate::conversation::ingest::IngestError;
use crate::store::StoreError;
use crate::wechat::api::{self, ApiClient, ApiConfig, ApiFamily, TokenStore};
use crate::wechat::{CryptoError, MsgCrypt, XmlError};

/// A configured account, ready for traffic.
pub struct ChannelAccount {
    pub account: Account,
    /// Message crypto; absent only for a plaintext-mode OA without a key.
    pub crypt: Option<MsgCrypt>,
    /// Outbound API client (access token shared by every call).
    pub api: ApiClient,
}

/// Every configured account by id, and the web chat sites.
pub struct Channels {
    by_id: HashMap<String, Arc<ChannelAccount>>,
    /// Web chat sites by id: their messages are delivered by Kefu itself.
    sites: HashMap<String, crate::config::Site>,
}

impl Channels {
    /// Builds crypto and API clients once, at start. Every client keeps its
    /// access token in `token_store` (shared by all instances when in Redis).
    pub fn new(
        settings: &Settings,
        http: &reqwest::Client,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<Self, CryptoError> {
        let mut by_id = HashMap::new();
        for a in &settings.accounts {
            let crypt = match &a.encoding_aes_key {
                Some(k) => Some(MsgCrypt::new(a.token.expose(), k.expose(), &a.app_id)?),
                None => None,
            };
            let (family, base_url) = match a.kind {
                AccountKind::OfficialAccount => {
                    (ApiFamily::OfficialAccount, settings.wechat.api_base.clone())
                }
                AccountKind::WecomKf => (ApiFamily::WeCom, settings.wecom.api_base.clone()),
            };
            let api = ApiClient::with_store(
                http.clone(),
                ApiConfig {
                    base_url,
                    family,
                    app_id: a.app_id.clone(),
                    secret: a.secret.expose().to_owned(),
                    token_mode: match a.token_mode {
                        TokenMode::Stable => api::TokenMode::Stable,
                        TokenMode::Plain => api::TokenMode::Plain,
                    },
                },
                token_store.clone(),
            )
            .with_policy(api::TokenPolicy::for_http_timeout(Duration::from_secs(
                settings.limits.outbound_timeout_secs,
            )));
            by_id.insert(
                a.id.to_string(),
                Arc::new(ChannelAccount {
                    account: a.clone(),
                    crypt,
                    api,
                }),
            );
        }
        let sites = settings
            .sites
            .iter()
            .map(|s| (s.id.to_string(), s.clone()))
            .collect();
        Ok(Self { by_id, sites })
    }

    /// The web chat site with this id.
    pub fn site(&self, id: &str) -> Option<&crate::config::Site> {
        self.sites.get(id)
    }

    /// The account with this id and kind.
    pub fn get(&self, id: &str, kind: AccountKind) -> Option<Arc<ChannelAccount>> {
        self.by_id
            .get(id)
            .filter(|a| a.account.kind == kind)
            .cloned()
    }

    /// The account with this id, whatever its kind.
    pub fn get_any(&self, id: &str) -> Option<Arc<ChannelAccount>> {
        self.by_id.get(id).cloned()
    }

    pub fn of_kind(&self, kind: AccountKind) -> impl Iterator<Item = &Arc<ChannelAccount>> {
        self.by_id.values().filter(move |a| a.account.kind == kind)
    }
}

/// Why a callback was refused. WeChat callbacks are answered in plain text,
/// never JSON.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("unknown account")]
    UnknownAccount,
    #[error("missing query parameter `{0}`")]
    MissingParam(&'static str),
    #[error("signature mismatch")]
    BadSignature,
    #[error("the account has no encoding_aes_key, but WeChat sent an encrypted message")]
    NoKey,
    #[error("JSON push format is not supported: choose XML in the console's message settings")]
    JsonBody,
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not stored: {0}")]
    Ingest(#[from] IngestError),
    #[error("not stored: {0}")]
    Store(#[from] StoreError),
}

impl ChannelError {
    pub fn status(&self) -> StatusCode {
        match self {
            ChannelError::UnknownAccount => StatusCode::NOT_FOUND,
            ChannelError::BadSignature => StatusCode::UNAUTHORIZED,
            ChannelError::Crypto(CryptoError::BadSignature | CryptoError::BadMsgSignature) => {
                StatusCode::UNAUTHORIZED
            }
            ChannelError::JsonBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ChannelError::MissingParam(_)
            | ChannelError::NoKey
            | ChannelError::NotUtf8
            | ChannelError::Crypto(_)
            | ChannelError::Xml(_) => StatusCode::BAD_REQUEST,
            // Not stored: WeChat must retry.
            ChannelError::Ingest(_) | ChannelError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The plain-text answer, logged by severity.
    pub fn respond(&self, account: &str) -> HttpResponse {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(account, error = %self, "callback not stored; WeChat will retry");
        } else {
            tracing::warn!(account, error = %self, status = status.as_u16(), "callback refused");
        }
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

/// Reads a required query parameter.
fn need<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, ChannelError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(ChannelError::MissingParam(name))
}

/// The callback body as text, refusing JSON bodies clearly.
fn body_text(body: &[u8]) -> Result<&str, ChannelError> {
    let text = std::str::from_utf8(body).map_err(|_| ChannelError::NotUtf8)?;
    if text.trim_start().starts_with('{') {
        return Err(ChannelError::JsonBody);
    }
    Ok(text)
}
