//! WeChat's `{errcode, errmsg}`, decoded once into a typed error.

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry later with backoff: network trouble, 5xx, system busy, minute quota.
    Transient,
    /// The access token was rejected: refresh it once and retry.
    Token,
    /// Retrying will not help: a reason to show to a person.
    Permanent,
}

/// A failed API call.
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
}

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Timeout | ApiError::Transport(_) => ErrorClass::Transient,
            ApiError::Http(s) if *s >= 500 || *s == 429 => ErrorClass::Transient,
            ApiError::Http(_) | ApiError::Decode(_) => ErrorClass::Permanent,
            ApiError::WeChat { code, .. } => classify(*code),
        }
    }

    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::WeChat { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ApiError::Timeout
        } else if let Some(s) = e.status() {
            ApiError::Http(s.as_u16())
        } else {
            ApiError::Transport(e.to_string())
        }
    }
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
        for c in [45015, 45047, 43004, 40003, 45009, 48001] {
            assert_eq!(classify(c), ErrorClass::Permanent);
        }
        assert_eq!(ApiError::Http(502).class(), ErrorClass::Transient);
        assert_eq!(ApiError::Timeout.class(), ErrorClass::Transient);
    }
}
