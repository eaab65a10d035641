//! Server-side console sessions.
//!
//! The browser holds a random token in the `kefu_session` cookie; the
//! database holds only its SHA-256, with the user, a CSRF token, the last
//! activity and an absolute end. A session ends when idle too long, at its
//! absolute end, at sign-out, when its user's password changes elsewhere,
//! and at once when its user is disabled.

use actix_web::cookie::{Cookie, SameSite};
use chrono::{DateTime, TimeDelta, Utc};

use super::{Role, csrf, token};
use crate::config::{ConsoleSettings, Settings};
use crate::ids::AgentId;
use crate::store::sessions::{NewSession, SessionUser};
use crate::store::{Store, StoreError};

/// The session cookie.
pub const COOKIE: &str = "kefu_session";

/// Longest stored `User-Agent`, in characters.
const MAX_USER_AGENT: usize = 512;
/// Longest stored client address, in characters.
const MAX_IP: usize = 64;

/// Activity is written back at most this often per session.
pub fn touch_interval() -> TimeDelta {
    TimeDelta::seconds(60)
}

/// How long sessions live and how their cookie is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A session unused for this long ends.
    pub idle: TimeDelta,
    /// A session ends this long after sign-in.
    pub lifetime: TimeDelta,
    /// Mark cookies `Secure` (Kefu is reached over https).
    pub secure: bool,
}

impl Policy {
    /// From the `[console]` settings; cookies are `Secure` when the public
    /// URL is https.
    pub fn new(console: &ConsoleSettings, public_url: Option<&str>) -> Policy {
        let minutes = |m: u64| TimeDelta::try_minutes(i64::try_from(m).unwrap_or(i64::MAX));
        let year = TimeDelta::days(365);
        Policy {
            idle: minutes(console.session_idle_timeout_mins).unwrap_or(year),
            lifetime: minutes(console.session_lifetime_hours.saturating_mul(60)).unwrap_or(year),
            secure: public_url
                .and_then(|u| url::Url::parse(u).ok())
                .is_some_and(|u| u.scheme() == "https"),
        }
    }

    pub fn from_settings(settings: &Settings) -> Policy {
        Policy::new(&settings.console, settings.server.public_url.as_deref())
    }
}

/// Whether a stored session still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It counts; `touch` when its last activity should be written back.
    Live {
        touch: bool,
    },
    Expired,
}

/// Decides from the clock alone.
pub fn liveness(
    policy: &Policy,
    now: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Liveness {
    if expires_at <= now || now - last_seen >= policy.idle {
        Liveness::Expired
    } else {
        Liveness::Live {
            touch: now - last_seen >= touch_interval(),
        }
    }
}

/// The session cookie: HttpOnly, SameSite=Lax, Path=/, Secure over https,
/// kept by the browser for the session's lifetime.
pub fn cookie(token: &str, policy: &Policy) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(policy.secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            policy.lifetime.num_seconds(),
        ))
        .finish()
}

/// A cookie that makes the browser forget the session cookie.
pub fn removal(policy: &Policy) -> Cookie<'static> {
    let mut c = cookie("", policy);
    c.make_removal();
    c
}

/// Who is signing in from where (stored for the user's information).
#[derive(Debug, Clone, Default)]
pub struct Client<'a> {
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Opens a session for `agent` and returns the token for the cookie.
pub async fn start(
    store: &Store,
    policy: &Policy,
    agent: AgentId,
    client: &Client<'_>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let token = token::generate();
    let csrf = csrf::generate();
    let ip: Option<String> = client.ip.map(|s| s.chars().take(MAX_IP).collect());
    let user_agent: Option<String> = client
        .user_agent
        .map(|s| s.chars().take(MAX_USER_AGENT).collect());
    store
        .insert_session(&NewSession {
            id: &token::digest(&token),
            agent_id: agent,
            csrf_token: &csrf,
            now,
            expires_at: now + policy.lifetime,
            ip: ip.as_deref(),
            user_agent: user_agent.as_deref(),
        })
        .await?;
    Ok(token)
}

/// The live session of a cookie token and its user's role. Sessions found
/// expired, of disabled users or with an unknown role are deleted; a live
/// one has its activity recorded (at most once a minute).
pub async fn resolve(
    store: &Store,
    policy: &Policy,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(SessionUser, Role)>, StoreError> {
    if !csrf::well_formed(token) {
        return Ok(None);
    }
    let Some(session) = store.session_user(&token::digest(token)).await? else {
        return Ok(None);
    };
    let role = Role::parse(&session.role);
    let live = liveness(policy, now, session.last_seen_at, session.expires_at);
    match (live, role) {
        (Liveness::Live { touch }, Some(role)) if session.active => {
            if touch {
                store.touch_session(&session.session_id, now).await?;
            }
            Ok(Some((session, role)))
        }
        _ => {
            if role.is_none() {
                tracing::warn!(agent_id = %session.agent_id, role = %session.role, "session of a user with an unknown role refused");
            }
            store.delete_session(&session.session_id).await?;
            Ok(None)
        }
    }
}

/// Ends the session of a cookie token, if it exists.
pub async fn end(store: &Store, token: &str) -> Result<(), StoreError> {
    store.delete_session(&token::digest(token)).await
}

/// Deletes every expired session (called now and then, e.g. at sign-in).
pub async fn purge(store: &Store, policy: &Policy, now: DateTime<Utc>) -> Result<u64, StoreError> {
    store.purge_expired_sessions(now, now - policy.idle).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(
            &ConsoleSettings::default(),
            Some("https://kefu.example.com"),
        )
    }

    #[test]
    fn defaults_and_secure_flag() {
        let p = policy();
        assert_eq!(p.idle, TimeDelta::hours(12));
        assert_eq!(p.lifetime, TimeDelta::days(7));
        assert!(p.secure);
        assert!(!Policy::new(&ConsoleSettings::default(), Some("http://x")).secure);
        assert!(!Policy::new(&ConsoleSettings::default(), None).secure);
    }

    #[test]
    fn idle_absolute_and_touch() {
        let p = policy();
        let now = Utc::now();
        let later = now + TimeDelta::days(1);
        assert_eq!(
            liveness(&p, now, now - TimeDelta::seconds(5), later),
            Liveness::Live { touch: false }
        );
        assert_eq!(
            liveness(&p, now, now - TimeDelta::minutes(2), later),
            Liveness::Live { touch: true }
        );
        assert_eq!(
            liveness(&p, now, now - TimeDelta::hours(12), later),
            Liveness::Expired
        );
        assert_eq!(liveness(&p, now, now, now), Liveness::Expired);
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let p = policy();
        let c = cookie("tok", &p);
        assert_eq!(c.name(), COOKIE);
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Lax));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.path(), Some("/"));
        let gone = removal(&p);
        assert_eq!(gone.value(), "");
        assert_eq!(
            gone.max_age(),
            Some(actix_web::cookie::time::Duration::ZERO)
        );
    }
}
