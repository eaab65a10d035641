//! Pure WeChat / WeCom callback protocol: signatures, message crypto
//! (WXBizMsgCrypt), inbound XML parsing and passive reply XML.
//!
//! Everything here is synchronous, allocation-light and free of I/O, so it can
//! be unit-tested, fuzzed and benchmarked in isolation. The byte-level ground
//! truth is `PROTOCOL.md` (§1.3 crypto, §1.4 encrypted reply, §2 messages);
//! every official test vector of its §4 is a unit test in the sub-modules.
//!
//! Typical safe-mode request flow:
//!
//! ```
//! use kefu::wechat::{MsgCrypt, parse, parse_envelope, Reply};
//!
//! let crypt = MsgCrypt::new(
//!     "spamtest",
//!     "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
//!     "wx2c2769f8efd9abc2",
//! )?;
//! // Pretend WeChat sent us this body (normally it comes from the HTTP layer).
//! let inner = Reply::Text { content: "hi".into() }.to_xml("gh_x", "openid", 1);
//! let encrypt = crypt.encrypt(&inner);
//! let sig = crypt.msg_signature("1409735669", "1320562132", &encrypt);
//! let body = format!("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
//!
//! let envelope = parse_envelope(&body)?;
//! let plain = crypt.decrypt_verified(&sig, "1409735669", "1320562132", &envelope.encrypt)?;
//! let inbound = parse(&plain)?;
//! assert_eq!(inbound.msg_type(), "text");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
pub mod crypto;
pub mod inbound;
pub mod reply;
pub mod signature;
pub mod xml;

pub use crypto::{AesKey, CryptoError, MsgCrypt, decrypt_raw, encrypt_raw};
pub use reply::{Article, Reply};
pub use signature::{sign, verify};
pub use xml::{
    Envelope, Event, Inbound, InboundKind, MessageBody, XmlError, parse, parse_envelope,
    parse_fields,
};

#[cfg(test)]
mod vectors;
