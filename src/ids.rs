//! Typed identifiers. Domain functions take these, never bare strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string could not become an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct IdError {
    pub what: &'static str,
    pub reason: &'static str,
}

/// The id of a configured WeChat account, as used in callback URLs
/// (`/wechat/{account}`): 1–64 characters of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "account id";
        if s.is_empty() || s.len() > 64 {
            return Err(IdError {
                what: WHAT,
                reason: "must be 1 to 64 characters long",
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(IdError {
                what: WHAT,
                reason: "may contain only lowercase letters, digits, '-' and '_'",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A follower's id as WeChat gives it (`FromUserName`): an OA openid or a
/// WeCom external_userid. Printable ASCII, at most 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpenId(String);

impl OpenId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "open id";
        if s.is_empty() || s.len() > 128 {
            return Err(IdError {
                what: WHAT,
                reason: "must be 1 to 128 characters long",
            });
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError {
                what: WHAT,
                reason: "must be printable ASCII",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OpenId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OpenId> for String {
    fn from(id: OpenId) -> String {
        id.0
    }
}

impl fmt::Display for OpenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

int_id!(
    /// A Kefu user: agent, supervisor or admin.
    AgentId
);
int_id!(
    /// A city group of agents.
    GroupId
);
int_id!(
    /// A customer: one person across channels.
    CustomerId
);
int_id!(
    /// A conversation between a customer and the service.
    ConversationId
);
int_id!(
    /// A stored message, inbound or outbound.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("demo-oa_1").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("Demo").is_err());
        assert!(AccountId::parse("a/b").is_err());
        assert!(AccountId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn open_ids() {
        assert!(OpenId::parse("oyORnuP8q7ou2gfYjqLzSIWZf0rs").is_ok());
        assert!(OpenId::parse("has space").is_err());
        assert!(OpenId::parse("").is_err());
        assert!(OpenId::parse("开").is_err());
    }
}
