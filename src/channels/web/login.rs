//! The site's signed tokens for its logged-in users (see
//! `docs/widget-login.md`).
//!
//! A site's backend signs `v1.<payload>.<sig>`: the payload is the
//! URL-safe base64 (no padding) of `{"uid", "name", "exp", "nonce"}`, the
//! signature the URL-safe base64 of HMAC-SHA256 over `v1.<payload>` with
//! the site's `login_secret`. [`verify`] checks the signature before it
//! reads the payload, and refuses tokens that expired, live longer than
//! [`MAX_LIFETIME`] or carry unusable fields. Single use is the store's
//! part (`Store::claim_login_nonce`): a token that verifies is claimed by
//! its nonce until it expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The longest token read at all, in bytes; longer ones are refused
/// before any decoding.
pub const MAX_TOKEN_LEN: usize = 2048;
/// How far ahead of now a token may expire. A token is a hand-over from
/// the site's page to Kefu, spent in seconds; a long one only widens the
/// window for a stolen one (and keeps its nonce stored longer).
pub const MAX_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// The shortest secret [`verify`] accepts: a short one can be guessed
/// from one token.
pub const MIN_SECRET_LEN: usize = 16;
/// Limits on the fields, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 64;
pub const MIN_NONCE_CHARS: usize = 16;
pub const MAX_NONCE_CHARS: usize = 128;

const PREFIX: &str = "v1.";

/// Who the site says the visitor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginClaims {
    /// The site's own id for the user (`uid`).
    pub user_id: String,
    /// The name to show agents, if the site sent one (`name`; empty counts
    /// as none).
    pub name: Option<String>,
    /// When the token stops being accepted (`exp`, whole seconds).
    pub expires_at: DateTime<Utc>,
    /// The site's random value that makes the token single-use (`nonce`).
    pub nonce: String,
}

/// Why a token was refused. The visitor stays a guest whatever the reason;
/// the reason is for the log and the site's developers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the login token is {0} bytes long; at most 2048 are read")]
    TooLong(usize),
    #[error("the login token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the site's login secret is shorter than 16 bytes")]
    WeakSecret,
    #[error("the login token's signature does not match the site's secret")]
    BadSignature,
    #[error("the login token has expired")]
    Expired,
    #[error("the login token expires more than 24 hours from now")]
    LivesTooLong,
    #[error("the login token's uid {0}")]
    BadUserId(&'static str),
    #[error("the login token's name {0}")]
    BadName(&'static str),
    #[error("the login token's nonce {0}")]
    BadNonce(&'static str),
}

/// The payload as JSON. Other fields are ignored.
#[derive(Serialize, Deserialize)]
struct Payload {
    uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    exp: i64,
    nonce: String,
}

/// The token for these claims: what a site's backend does, written here
/// for tests, the load tool and as the reference for sites. `expires_at`
/// is cut to whole seconds.
pub fn sign(claims: &LoginClaims, secret: &[u8]) -> String {
    let payload = Payload {
        uid: claims.user_id.clone(),
        name: claims.name.clone(),
        exp: claims.expires_at.timestamp(),
        nonce: claims.nonce.clone(),
    };
    // Strings and an integer always serialise.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let sig = mac(secret, &signed).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The claims of a token signed with `secret`, if it is acceptable at
/// `now`. Does not check single use: claim the nonce afterwards.
pub fn verify(token: &str, secret: &[u8], now: DateTime<Utc>) -> Result<LoginClaims, LoginError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LoginError::TooLong(token.len()));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(LoginError::WeakSecret);
    }
    let (signed, sig) = token
        .rsplit_once('.')
        .ok_or(LoginError::Malformed("it is not v1.<payload>.<signature>"))?;
    let payload = signed
        .strip_prefix(PREFIX)
        .ok_or(LoginError::Malformed("it does not start with v1."))?;
    if payload.contains('.') {
        return Err(LoginError::Malformed("it has more than three parts"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LoginError::Malformed("the signature is not URL-safe base64"))?;
    mac(secret, signed)
        .verify_slice(&sig)
        .map_err(|_| LoginError::BadSignature)?;

    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| LoginError::Malformed("the payload is not URL-safe base64"))?;
    let p: Payload = serde_json::from_slice(&json).map_err(|_| {
        LoginError::Malformed(
            "the payload is not JSON with uid and nonce as strings, exp as whole seconds",
        )
    })?;

    let expires_at =
        DateTime::from_timestamp(p.exp, 0).ok_or(LoginError::Malformed("exp is out of range"))?;
    if expires_at <= now {
        return Err(LoginError::Expired);
    }
    if expires_at - now > MAX_LIFETIME {
        return Err(LoginError::LivesTooLong);
    }
    check_text(&p.uid, 1, MAX_USER_ID_CHARS).map_err(LoginError::BadUserId)?;
    let name = match p.name {
        Some(n) if !n.is_empty() => {
            check_text(&n, 1, MAX_NAME_CHARS).map_err(LoginError::BadName)?;
            Some(n)
        }
        _ => None,
    };
    check_text(&p.nonce, MIN_NONCE_CHARS, MAX_NONCE_CHARS).map_err(LoginError::BadNonce)?;
    Ok(LoginClaims {
        user_id: p.uid,
        name,
        expires_at,
        nonce: p.nonce,
    })
}

/// HMAC-SHA256 of `signed` under `secret`.
fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` never fails for it.
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(signed.as_bytes());
    m
}

/// `min..=max` characters, none of them control characters; else why not.
fn check_text(s: &str, min: usize, max: usize) -> Result<(), &'static str> {
    let n = s.chars().count();
    if n < min {
        return Err(if min == 1 { "is empty" } else { "is too short" });
    }
    if n > max {
        return Err("is too long");
    }
    if s.chars().any(char::is_control) {
        return Err("has control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"site-secret-0123456789abcdef";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000, 0).unwrap()
    }

    fn claims() -> LoginClaims {
        LoginClaims {
            user_id: "u-42".into(),
            name: Some("王小明".into()),
            expires_at: now() + TimeDelta::minutes(5),
            nonce: "n-0123456789abcdef".into(),
        }
    }

    /// A token over this payload JSON, correctly signed.
    fn signed_json(json: &str, secret: &[u8]) -> String {
        let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(json));
        let sig = mac(secret, &signed).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn refusal(c: &LoginClaims) -> LoginError {
        verify(&sign(c, SECRET), SECRET, now()).unwrap_err()
    }

    #[test]
    fn a_good_token_gives_back_its_claims() {
        let c = claims();
        let token = sign(&c, SECRET);
        assert!(token.starts_with("v1."), "{token}");
        assert_eq!(token.split('.').count(), 3, "{token}");
        assert_eq!(verify(&token, SECRET, now()), Ok(c));
    }

    #[test]
    fn the_format_is_what_the_docs_say() {
        // The Python example in docs/widget-login.md: compact JSON, this order.
        let json = r#"{"uid":"u-42","name":"Ann","exp":1796000300,"nonce":"n-0123456789abcdef"}"#;
        let token = signed_json(json, SECRET);
        let c = verify(&token, SECRET, now()).unwrap();
        assert_eq!(c.user_id, "u-42");
        assert_eq!(c.name.as_deref(), Some("Ann"));
        assert_eq!(c.expires_at.timestamp(), 1_796_000_300);
        assert_eq!(c.nonce, "n-0123456789abcdef");
        // Our own signing gives the same token for the same claims.
        let again = LoginClaims {
            name: Some("Ann".into()),
            ..c.clone()
        };
        assert_eq!(sign(&again, SECRET), token);
        // The test vector printed in the docs.
        assert_eq!(
            token,
            "v1.eyJ1aWQiOiJ1LTQyIiwibmFtZSI6IkFubiIsImV4cCI6MTc5NjAwMDMwMCwibm9uY2UiOiJuLTAxMjM0NTY3ODlhYmNkZWYifQ.arq_xRFRlE3s2yZG6UlkMWqU3QkLb1XCthlBh_Yr3B8"
        );
    }

    #[test]
    fn tokens_from_the_docs_python_and_node_examples_verify() {
        // Printed by the examples in docs/widget-login.md with SECRET, uid
        // "u-42" and name "王小明": Python escapes it, Node writes UTF-8,
        // both put name last.
        let python = "v1.eyJ1aWQiOiJ1LTQyIiwiZXhwIjoxNzk2NjQ4MTg0LCJub25jZSI6Im5lUTBXN2tsZGVMQ293bFIxWmdxaGciLCJuYW1lIjoiXHU3MzhiXHU1YzBmXHU2NjBlIn0.SdTGTn9wqgcFqB_ZQIEmmdzfG0iGxi6Kb6Ilic9lUQU";
        let node = "v1.eyJ1aWQiOiJ1LTQyIiwiZXhwIjoxNzk2NjQ4MTg0LCJub25jZSI6IjdGRkFjRHp0ZzFKTXF3b24teVp2bnciLCJuYW1lIjoi546L5bCP5piOIn0.TYeQrBUSKxV8MERPLiqrH4IaupSxRH8-MkpE00EWhkM";
        let then = DateTime::from_timestamp(1_796_648_184 - 300, 0).unwrap();
        for (token, nonce) in [
            (python, "neQ0W7kldeLCowlR1Zgqhg"),
            (node, "7FFAcDztg1JMqwon-yZvnw"),
        ] {
            let c = verify(token, SECRET, then).unwrap();
            assert_eq!(c.user_id, "u-42");
            assert_eq!(c.name.as_deref(), Some("王小明"));
            assert_eq!(c.expires_at.timestamp(), 1_796_648_184);
            assert_eq!(c.nonce, nonce);
        }
    }

    #[test]
    fn a_missing_null_or_empty_name_is_none_and_other_fields_are_ignored() {
        for json in [
            r#"{"uid":"u","exp":1796000300,"nonce":"0123456789abcdef"}"#,
            r#"{"uid":"u","name":null,"exp":1796000300,"nonce":"0123456789abcdef"}"#,
            r#"{"uid":"u","name":"","exp":1796000300,"nonce":"0123456789abcdef","email":"x"}"#,
        ] {
            let c = verify(&signed_json(json, SECRET), SECRET, now()).unwrap();
            assert_eq!(c.name, None, "{json}");
            assert_eq!(c.user_id, "u");
        }
    }

    #[test]
    fn a_tampered_payload_with_the_old_signature_is_refused() {
        let token = sign(&claims(), SECRET);
        let (_, sig) = token.rsplit_once('.').unwrap();
        let other = sign(
            &LoginClaims {
                user_id: "admin".into(),
                ..claims()
            },
            SECRET,
        );
        let (forged_signed, _) = other.rsplit_once('.').unwrap();
        let forged = format!("{forged_signed}.{sig}");
        assert_eq!(
            verify(&forged, SECRET, now()),
            Err(LoginError::BadSignature)
        );
        // One flipped character anywhere in the payload.
        let mut bytes = token.clone().into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            verify(&flipped, SECRET, now()),
            Err(LoginError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = sign(&claims(), b"another-site-secret-0123456789");
        assert_eq!(verify(&token, SECRET, now()), Err(LoginError::BadSignature));
    }

    #[test]
    fn a_short_secret_is_refused_even_for_a_matching_token() {
        let token = sign(&claims(), b"short");
        assert_eq!(verify(&token, b"short", now()), Err(LoginError::WeakSecret));
        assert_eq!(verify(&token, b"", now()), Err(LoginError::WeakSecret));
    }

    #[test]
    fn expired_tokens_are_refused_from_their_exp_on() {
        let c = claims();
        let token = sign(&c, SECRET);
        assert!(verify(&token, SECRET, c.expires_at - TimeDelta::seconds(1)).is_ok());
        assert_eq!(
            verify(&token, SECRET, c.expires_at),
            Err(LoginError::Expired)
        );
        assert_eq!(
            verify(&token, SECRET, c.expires_at + TimeDelta::days(3)),
            Err(LoginError::Expired)
        );
    }

    #[test]
    fn tokens_living_over_24_hours_are_refused() {
        let at_limit = LoginClaims {
            expires_at: now() + MAX_LIFETIME,
            ..claims()
        };
        assert!(verify(&sign(&at_limit, SECRET), SECRET, now()).is_ok());
        let over = LoginClaims {
            expires_at: now() + MAX_LIFETIME + TimeDelta::seconds(1),
            ..claims()
        };
        assert_eq!(refusal(&over), LoginError::LivesTooLong);
        let far = signed_json(
            r#"{"uid":"u","exp":9223372036854775807,"nonce":"0123456789abcdef"}"#,
            SECRET,
        );
        assert!(matches!(
            verify(&far, SECRET, now()),
            Err(LoginError::Malformed(_) | LoginError::LivesTooLong)
        ));
    }

    #[test]
    fn unusable_uids_are_refused() {
        for (uid, why) in [
            (String::new(), "is empty"),
            ("x".repeat(129), "is too long"),
            ("u\n42".into(), "has control characters"),
            ("u\u{7f}".into(), "has control characters"),
        ] {
            let c = LoginClaims {
                user_id: uid.clone(),
                ..claims()
            };
            assert_eq!(refusal(&c), LoginError::BadUserId(why), "{uid:?}");
        }
        let longest = LoginClaims {
            user_id: "字".repeat(128),
            ..claims()
        };
        assert!(verify(&sign(&longest, SECRET), SECRET, now()).is_ok());
    }

    #[test]
    fn unusable_names_are_refused() {
        for (name, why) in [
            ("名".repeat(65), "is too long"),
            ("Ann\tB".into(), "has control characters"),
        ] {
            let c = LoginClaims {
                name: Some(name.clone()),
                ..claims()
            };
            assert_eq!(refusal(&c), LoginError::BadName(why), "{name:?}");
        }
        let longest = LoginClaims {
            name: Some("名".repeat(64)),
            ..claims()
        };
        assert!(verify(&sign(&longest, SECRET), SECRET, now()).is_ok());
    }

    #[test]
    fn unusable_nonces_are_refused() {
        for (nonce, why) in [
            ("x".repeat(15), "is too short"),
            (String::new(), "is too short"),
            ("x".repeat(129), "is too long"),
            (format!("{}\0", "x".repeat(20)), "has control characters"),
        ] {
            let c = LoginClaims {
                nonce: nonce.clone(),
                ..claims()
            };
            assert_eq!(refusal(&c), LoginError::BadNonce(why), "{nonce:?}");
        }
        for n in [16, 128] {
            let c = LoginClaims {
                nonce: "n".repeat(n),
                ..claims()
            };
            assert!(verify(&sign(&c, SECRET), SECRET, now()).is_ok(), "{n}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused_as_such() {
        let good = sign(&claims(), SECRET);
        let (signed, sig) = good.rsplit_once('.').unwrap();
        let payload = signed.strip_prefix("v1.").unwrap();
        let cases = [
            String::new(),
            "v1".into(),
            "v1.abc".into(),
            format!("v2.{payload}.{sig}"),
            format!("{payload}.{sig}"),
            format!("v1.{payload}.{sig}.x"),
            format!("v1.{payload}.x.{sig}"),
            format!("v1.{payload}.{sig}="),
            format!("v1.{payload}.!{sig}"),
        ];
        for t in &cases {
            assert!(
                matches!(verify(t, SECRET, now()), Err(LoginError::Malformed(_))),
                "{t:?}: {:?}",
                verify(t, SECRET, now())
            );
        }
        // Correctly signed, but the payload is not base64 or not the JSON.
        for (t, what) in [
            (
                {
                    let signed = "v1.*not base64*";
                    let sig = mac(SECRET, signed).finalize().into_bytes();
                    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
                },
                "base64",
            ),
            (signed_json("not json", SECRET), "JSON"),
            (
                signed_json(r#"{"uid":"u","nonce":"0123456789abcdef"}"#, SECRET),
                "JSON",
            ),
            (
                signed_json(
                    r#"{"uid":7,"exp":1796000300,"nonce":"0123456789abcdef"}"#,
                    SECRET,
                ),
                "JSON",
            ),
            (
                signed_json(
                    r#"{"uid":"u","exp":1796000300.5,"nonce":"0123456789abcdef"}"#,
                    SECRET,
                ),
                "JSON",
            ),
            (signed_json("[]", SECRET), "JSON"),
        ] {
            match verify(&t, SECRET, now()) {
                Err(LoginError::Malformed(why)) => assert!(why.contains(what), "{t}: {why}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }

    #[test]
    fn long_tokens_are_refused_before_decoding() {
        let long = format!("v1.{}.x", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            verify(&long, SECRET, now()),
            Err(LoginError::TooLong(long.len()))
        );
        // The longest uid, name and nonce fit well under the limit.
        let c = LoginClaims {
            user_id: "字".repeat(128),
            name: Some("名".repeat(64)),
            nonce: "n".repeat(128),
            ..claims()
        };
        assert!(sign(&c, SECRET).len() <= MAX_TOKEN_LEN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_strings_never_panic_and_never_verify(s in ".{0,300}") {
            prop_assert!(verify(&s, SECRET, now()).is_err());
        }

        #[test]
        fn random_dotted_base64_never_panics(
            a in "[A-Za-z0-9_=-]{0,200}",
            b in "[A-Za-z0-9_=-]{0,60}",
        ) {
            let token = format!("v1.{a}.{b}");
            prop_assert!(verify(&token, SECRET, now()).is_err());
        }

        #[test]
        fn any_signed_json_never_panics(json in ".{0,300}") {
            // Past the signature: the payload parser and the field checks.
            let _ = verify(&signed_json(&json, SECRET), SECRET, now());
        }

        #[test]
        fn valid_claims_round_trip(
            uid in "[^\\p{Cc}]{1,128}",
            name in proptest::option::of("[^\\p{Cc}]{1,64}"),
            secs in 1i64..86_400,
            nonce in "[A-Za-z0-9]{16,128}",
        ) {
            let c = LoginClaims { user_id: uid, name, expires_at: now() + TimeDelta::seconds(secs), nonce };
            prop_assert_eq!(verify(&sign(&c, SECRET), SECRET, now()), Ok(c));
        }
    }
}
