//! Checking and changing passwords, behind the lock-out.
//!
//! Every attempt for a login (known or not) is counted by the SHA-256 of the
//! normalised login; after `lockout_attempts` failures within
//! `lockout_window_mins` the login is refused, even with the right password,
//! until the oldest failure leaves the window. Unknown logins, users without
//! a password and disabled users are verified against a throw-away hash, so
//! every refusal costs the same argon2 work and reads the same.

use std::sync::LazyLock;

use actix_web::web;
use chrono::{DateTime, TimeDelta, Utc};

use super::password::{self, PasswordError};
use super::token;
use crate::config::ConsoleSettings;
use crate::ids::AgentId;
use crate::store::{Store, StoreError};

/// Longest login Kefu stores (`agents.login`).
const MAX_LOGIN: usize = 64;

/// The hash unknown logins are checked against: of a random password
/// nobody knows, made once with the same parameters as real hashes.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password::hash(&token::generate()).unwrap_or_default());

/// How many failures lock a login, within which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub attempts: u64,
    pub window: TimeDelta,
}

impl Lockout {
    pub fn new(console: &ConsoleSettings) -> Lockout {
        Lockout {
            attempts: u64::from(console.lockout_attempts),
            window: TimeDelta::try_minutes(
                i64::try_from(console.lockout_window_mins).unwrap_or(i64::MAX),
            )
            .unwrap_or(TimeDelta::days(7)),
        }
    }
}

/// The answer to a sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted(AgentId),
    /// Wrong login or password, or a user who may not sign in: one answer.
    Refused,
    /// Too many recent failures for this login.
    Locked,
}

/// The answer to a password change.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordChange {
    /// Stored; the user's other sessions are ended.
    Changed,
    WrongCurrent,
    Locked,
    /// The new password is the current one.
    Same,
    /// The new password breaks the policy.
    Policy(PasswordError),
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the password check could not run: {0}")]
    Blocking(String),
}

/// Logins are stored lowercase; people type them with spaces and capitals.
pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// What the failure record keeps of a login: its SHA-256, so passwords typed
/// into the login field are never stored.
fn login_key(normalized: &str) -> String {
    token::digest(normalized)
}

/// Argon2 off the async threads.
async fn verify(password: String, phc: Option<String>) -> Result<bool, CredentialError> {
    web::block(move || {
        let phc = phc.as_deref().unwrap_or(DUMMY_HASH.as_str());
        password::verify(&password, phc)
    })
    .await
    .map_err(|e| CredentialError::Blocking(e.to_string()))
}

/// Counts this attempt as a failure up front (so concurrent guesses cannot
/// all slip in under the limit) and tells whether the login is locked.
async fn admit(
    store: &Store,
    lockout: &Lockout,
    key: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let since = now - lockout.window;
    if store.login_failures_since(key, since).await? >= lockout.attempts {
        return Ok(false);
    }
    store.record_login_failure(key, now).await?;
    Ok(store.login_failures_since(key, since).await? <= lockout.attempts)
}

/// Checks a sign-in attempt.
pub async fn sign_in(
    store: &Store,
    lockout: &Lockout,
    login: &str,
    password: String,
    now: DateTime<Utc>,
) -> Result<Verdict, CredentialError> {
    let login = normalize_login(login);
    let key = login_key(&login);
    if !admit(store, lockout, &key, now).await? {
        return Ok(Verdict::Locked);
    }
    let found = if login.is_empty() || login.len() > MAX_LOGIN {
        None
    } else {
        store.agent_credentials(&login).await?
    };
    let phc = found.as_ref().and_then(|a| a.password_hash.clone());
    let has_hash = phc.is_some();
    let matches = verify(password, phc).await?;
    match found {
        Some(agent) if matches && has_hash && agent.active => {
            store.clear_login_failures(&key).await?;
            store.purge_login_failures(now - lockout.window).await?;
            Ok(Verdict::Accepted(agent.id))
        }
        _ => Ok(Verdict::Refused),
    }
}

/// What a password change needs to know about the user asking.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub agent: AgentId,
    pub login: &'a str,
    /// The session that asked: it stays open.
    pub session_id: &'a str,
}

/// Changes a password after checking the current one (which counts towards
/// the lock-out like a sign-in); ends the user's other sessions.
pub async fn change_password(
    store: &Store,
    lockout: &Lockout,
    who: Requester<'_>,
    current: String,
    new: String,
    now: DateTime<Utc>,
) -> Result<PasswordChange, CredentialError> {
    let key = login_key(&normalize_login(who.login));
    if !admit(store, lockout, &key, now).await? {
        return Ok(PasswordChange::Locked);
    }
    let stored = store.agent_password_hash(who.agent).await?;
    let has_hash = stored.is_some();
    let same = current == new;
    if !(verify(current, stored).await? && has_hash) {
        return Ok(PasswordChange::WrongCurrent);
    }
    store.clear_login_failures(&key).await?;
    if same {
        return Ok(PasswordChange::Same);
    }
    let hashed = web::block(move || password::hash(&new))
        .await
        .map_err(|e| CredentialError::Blocking(e.to_string()))?;
    match hashed {
        Ok(h) => {
            store
                .set_password_revoking_sessions(who.agent, &h, Some(who.session_id))
                .await?;
            Ok(PasswordChange::Changed)
        }
        Err(e) => Ok(PasswordChange::Policy(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_normalised_and_hashed() {
        assert_eq!(normalize_login("  Ada.Lovelace "), "ada.lovelace");
        assert_eq!(login_key("ada"), token::digest("ada"));
        assert_ne!(login_key("ada"), login_key("bob"));
    }

    #[test]
    fn lockout_from_settings() {
        let l = Lockout::new(&ConsoleSettings::default());
        assert_eq!(l.attempts, 5);
        assert_eq!(l.window, TimeDelta::minutes(15));
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2_hash() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
        assert!(!password::verify("", &DUMMY_HASH));
    }
}
