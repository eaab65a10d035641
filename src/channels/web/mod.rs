//! The web chat widget's channel (issue 9): customers on the company's
//! website, mobile site and app reach the same agents through the same
//! pipeline as WeChat. See `docs/widget.md`.
//!
//! - `login`: the site's signed tokens for its logged-in users.
//! - `client_ip`: the visitor's address behind trusted proxies.
//! - `limits`: per-visitor and per-IP rate limits.
//! - `page`: the chat page, its script and the embed loader.
//! - `api`: the visitor API; `media`: their files; `hub`: the visitors' sockets; `view`: what a
//!   visitor sees.

pub mod api;
pub mod client_ip;
pub mod hub;
pub mod limits;
pub mod login;
pub mod media;
pub mod page;
pub mod view;

pub use hub::WidgetHub;
