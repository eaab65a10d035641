//! Console sessions (stored by the SHA-256 of the cookie's token) and the
//! failed sign-in record behind the lock-out.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use super::entities::{agents, login_failures, sessions};
use super::{Store, StoreError};
use crate::ids::AgentId;

/// A session about to be stored.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 (hex) of the cookie's token.
    pub id: &'a str,
    pub agent_id: AgentId,
    pub csrf_token: &'a str,
    pub now: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// A stored session with the user it belongs to.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub session_id: String,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub agent_id: AgentId,
    pub login: String,
    pub name: String,
    /// As stored in `agents.role`.
    pub role: String,
    /// False when the user is disabled or departed.
    pub active: bool,
}

impl Store {
    /// Stores a new session.
    pub async fn insert_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        sessions::ActiveModel {
            id: Set(s.id.to_owned()),
            agent_id: Set(s.agent_id.0),
            csrf_token: Set(s.csrf_token.to_owned()),
            created_at: Set(s.now),
            last_seen_at: Set(s.now),
            expires_at: Set(s.expires_at),
            ip: Set(s.ip.map(str::to_owned)),
            user_agent: Set(s.user_agent.map(str::to_owned)),
        }
        .insert(self.writer())
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// The session with this id and its user, whatever their state: the
    /// caller decides whether it still counts.
    pub async fn session_user(&self, id: &str) -> Result<Option<SessionUser>, StoreError> {
        let found = sessions::Entity::find_by_id(id.to_owned())
            .find_also_related(agents::Entity)
            .one(self.conn())
            .await?;
        Ok(match found {
            Some((s, Some(a))) => Some(SessionUser {
                session_id: s.id,
                csrf_token: s.csrf_token,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                agent_id: AgentId(a.id),
                login: a.login,
                name: a.name,
                role: a.role,
                active: !a.disabled && a.departed_at.is_none(),
            }),
            _ => None,
        })
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Ends one session (sign-out, or found expired).
    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sessions::Entity::delete_by_id(id.to_owned())
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Moves a session's absolute end (administration and tests).
    pub async fn set_session_expires_at(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let r = sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, Expr::value(expires_at))
            .filter(sessions::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        if r.rows_affected == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// How many sessions a user has open (expired ones not yet purged included).
    pub async fn count_sessions(&self, agent: AgentId) -> Result<u64, StoreError> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::AgentId.eq(agent.0))
            .count(self.conn())
            .await?)
    }

    /// Deletes sessions past their absolute end or idle since before
    /// `idle_before`; returns how many.
    pub async fn purge_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let r = sessions::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(sessions::Column::ExpiresAt.lte(now))
                    .add(sessions::Column::LastSeenAt.lt(idle_before)),
            )
            .exec(self.writer())
            .await?;
        Ok(r.rows_affected)
    }

    /// Remembers one failed sign-in for a login key.
    pub async fn record_login_failure(
        &self,
        login_key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        login_failures::ActiveModel {
            login_key: Set(login_key.to_owned()),
            failed_at: Set(at),
            ..Default::default()
        }
        .insert(self.writer())
        .await?;
        Ok(())
    }

    /// Failed sign-ins for a login key since `since`.
    pub async fn login_failures_since(
        &self,
        login_key: &str,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(login_failures::Entity::find()
            .filter(login_failures::Column::LoginKey.eq(login_key))
            .filter(login_failures::Column::FailedAt.gt(since))
            .count(self.conn())
            .await?)
    }

    /// Forgets the failures of a login key (after a successful sign-in).
    pub async fn clear_login_failures(&self, login_key: &str) -> Result<(), StoreError> {
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::LoginKey.eq(login_key))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets failures older than `before`, whatever the login.
    pub async fn purge_login_failures(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = login_failures::Entity::delete_many()
            .filter(login_failures::Column::FailedAt.lte(before))
            .exec(self.writer())
            .await?;
        Ok(r.rows_affected)
    }
}
