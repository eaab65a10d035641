//! HTTP client for WeChat's and WeCom's server APIs: access tokens and the
//! calls Kefu makes. Configured by the caller (base URL, credentials, token
//! store); knows nothing of the rest of Kefu.
//!
//! - `client`: [`ApiClient`], [`ApiConfig`], JSON calls retried once on a
//!   rejected token.
//! - `token` / `store`: the access token, cached locally in front of a
//!   [`TokenStore`] shared by every instance, refreshed single-flight under
//!   the store's lock, invalidated by compare-and-delete.
//! - `message` (OA customer-service messages, typing), `template`, `kf`
//!   (WeCom kf pull, send, session state), `outbound` (the channel-neutral
//!   [`OutboundContent`] and [`ApiClient::send`]).
//! - `user`: a customer's unionid and nickname ([`CustomerInfo`]).
//! - `media`: `media/upload` and `media/get` ([`MediaStream`]).
//! - `error` / `reason`: [`ApiError`], its [`ErrorClass`] and the sentence
//!   shown to agents.

mod client;
mod error;
pub mod kf;
pub mod media;
pub mod message;
mod outbound;
mod reason;
mod store;
pub mod template;
mod token;
pub mod user;

pub use client::{ApiClient, ApiConfig, ApiFamily, TokenMode};
pub use error::{ApiError, ErrorClass, classify};
pub use kf::{KfMessage, KfSession, ServiceState};
pub use media::{MediaStream, UploadKind, UploadedMedia, fetch_url};
pub use message::{CustomMessage, TypingCommand};
pub use outbound::{OutboundContent, SendReceipt, SendRoute};
pub use store::{MemoryTokenStore, StoredToken, TokenStore, TokenStoreError, now_ms};
pub use template::{TemplateField, TemplateMessage, TemplateMiniProgram};
pub use token::TokenPolicy;
pub use user::CustomerInfo;
