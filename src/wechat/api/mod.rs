//! HTTP client for WeChat's and WeCom's server APIs: access tokens and the
//! calls Kefu makes. Configured by the caller (base URL, credentials); knows
//! nothing of the rest of Kefu.

mod client;
mod error;
pub mod kf;

pub use client::{ApiClient, ApiConfig, ApiFamily, TokenMode};
pub use error::{ApiError, ErrorClass};
