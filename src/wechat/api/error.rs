//! WeChat's `{errcode, errmsg}`, decoded once into a typed error.
//!
//! The class says what a caller does about a failure (PROTOCOL.md §3.6);
//! [`ApiError::agent_reason`] (in `reason.rs`) says it to a person.

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry later with backoff: network trouble, 5xx, system busy, minute quota.
    Transient,
    /// The access token was rejected: refresh it once and retry. Seen by a
    /// caller only when the client's own refresh-and-retry failed too.
    Token,
    /// Retrying will not help: a reason to show to a person.
    Permanent,
}

/// A failed API call. `Display` never contains an access token or a secret
/// (transport errors are stripped of their URL, whose query carries them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("WeChat API did not answer in time")]
    Timeout,
    #[error("cannot reach the WeChat API: {0}")]
    Transport(String),
    #[error("WeChat API answered HTTP {0}")]
    Http(u16),
    #[error("WeChat API error {code}: {message}")]
    WeChat { code: i64, message: String },
    #[error("unexpected answer from the WeChat API: {0}")]
    Decode(String),
    /// Kefu will not send this: a content or route this account cannot carry
    /// (e.g. a WeCom kf route on an Official Account). Nothing was sent.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The shared access-token store (Redis) failed or no instance produced a
    /// token in time. Nothing was sent.
    #[error("access-token store: {0}")]
    TokenStore(String),
}

impl ApiError {
    /// Whether to retry, refresh, or give up.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Timeout | ApiError::Transport(_) | ApiError::TokenStore(_) => {
                ErrorClass::Transient
            }
            ApiError::Http(s) if *s >= 500 || *s == 429 => ErrorClass::Transient,
            ApiError::Http(_) | ApiError::Decode(_) | ApiError::Unsupported(_) => {
                ErrorClass::Permanent
            }
            ApiError::WeChat { code, .. } => classify(*code),
        }
    }

    /// WeChat's `errcode`, when WeChat answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::WeChat { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A transport-level failure. The URL is dropped from the message: its
    /// query holds the access token (or, for token calls, the secret).
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        let e = e.without_url();
        if e.is_timeout() {
            ApiError::Timeout
        } else if let Some(s) = e.status() {
            ApiError::Http(s.as_u16())
        } else {
            ApiError::Transport(error_chain(&e))
        }
    }
}

/// `e` and its sources, so "error sending request" says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The class of a WeChat `errcode` (PROTOCOL.md §3.6).
pub fn classify(code: i64) -> ErrorClass {
    match code {
        40001 | 40014 | 42001 => ErrorClass::Token,
        -1 | 45011 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        for c in [40001, 40014, 42001] {
            assert_eq!(classify(c), ErrorClass::Token);
        }
        for c in [-1, 45011] {
            assert_eq!(classify(c), ErrorClass::Transient);
        }
        for c in [
            45015, 45047, 43004, 40003, 45009, 48001, 95001, 95002, 95018,
        ] {
            assert_eq!(classify(c), ErrorClass::Permanent);
        }
    }

    #[test]
    fn non_wechat_errors_are_classified() {
        assert_eq!(ApiError::Http(502).class(), ErrorClass::Transient);
        assert_eq!(ApiError::Http(429).class(), ErrorClass::Transient);
        assert_eq!(ApiError::Http(404).class(), ErrorClass::Permanent);
        assert_eq!(ApiError::Timeout.class(), ErrorClass::Transient);
        assert_eq!(
            ApiError::Transport("reset".into()).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ApiError::TokenStore("down".into()).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ApiError::Unsupported("x".into()).class(),
            ErrorClass::Permanent
        );
        assert_eq!(ApiError::Decode("x".into()).class(), ErrorClass::Permanent);
        assert_eq!(
            ApiError::WeChat {
                code: 45015,
                message: String::new()
            }
            .code(),
            Some(45015)
        );
        assert_eq!(ApiError::Timeout.code(), None);
    }
}
