//! Console users (agents, supervisors, admins): what sign-in and the admin
//! pages need.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::entities::{agents, city_groups, group_members, sessions};
use super::{Store, StoreError};
use crate::auth::Role;
use crate::ids::{AgentId, GroupId};

/// What a sign-in attempt checks.
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    pub id: AgentId,
    /// `None` for users who cannot sign in with a password (e.g. synced from
    /// the CRM and not yet given one).
    pub password_hash: Option<String>,
    /// False when disabled or departed.
    pub active: bool,
}

/// One row of the user list.
#[derive(Debug, Clone)]
pub struct AgentSummary {
    pub id: AgentId,
    pub login: String,
    pub name: String,
    /// `None` if the stored role is not one Kefu knows.
    pub role: Option<Role>,
    pub disabled: bool,
}

impl Store {
    /// Creates a user who signs in with a password. A taken login is
    /// [`StoreError::Duplicate`].
    pub async fn create_agent(
        &self,
        login: &str,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<AgentId, StoreError> {
        let now = Utc::now();
        let row = agents::ActiveModel {
            login: Set(login.to_owned()),
            name: Set(name.to_owned()),
            role: Set(role.as_str().to_owned()),
            password_hash: Set(Some(password_hash.to_owned())),
            capacity: Set(10),
            status: Set("offline".into()),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.writer())
        .await
        .map_err(StoreError::from_insert)?;
        Ok(AgentId(row.id))
    }

    /// The credentials of the user with this exact login, if any.
    pub async fn agent_credentials(
        &self,
        login: &str,
    ) -> Result<Option<AgentCredentials>, StoreError> {
        let row = agents::Entity::find()
            .filter(agents::Column::Login.eq(login))
            .one(self.conn())
            .await?;
        Ok(row.map(|a| AgentCredentials {
            id: AgentId(a.id),
            active: !a.disabled && a.departed_at.is_none(),
            password_hash: a.password_hash,
        }))
    }

    /// The stored password hash of a user (`None` if they have none).
    pub async fn agent_password_hash(&self, id: AgentId) -> Result<Option<String>, StoreError> {
        let row = agents::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row.password_hash)
    }

    /// Replaces a user's password hash and ends every session of theirs
    /// except `keep` (the one that asked for the change), atomically.
    pub async fn set_password_revoking_sessions(
        &self,
        id: AgentId,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        update_agent_in(&txn, id, agents::Column::PasswordHash, password_hash.into()).await?;
        let mut revoke = sessions::Entity::delete_many().filter(sessions::Column::AgentId.eq(id.0));
        if let Some(keep) = keep {
            revoke = revoke.filter(sessions::Column::Id.ne(keep));
        }
        revoke.exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Disables or re-enables a user; disabling also ends their sessions.
    pub async fn set_agent_disabled(&self, id: AgentId, disabled: bool) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        update_agent_in(&txn, id, agents::Column::Disabled, disabled.into()).await?;
        if disabled {
            sessions::Entity::delete_many()
                .filter(sessions::Column::AgentId.eq(id.0))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Sets a user's name and role.
    pub async fn set_agent_profile(
        &self,
        id: AgentId,
        name: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        update_agent_in(&txn, id, agents::Column::Name, name.into()).await?;
        update_agent_in(&txn, id, agents::Column::Role, role.as_str().into()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replaces a user's city groups (home first).
    pub async fn set_agent_groups(
        &self,
        id: AgentId,
        groups: &[GroupId],
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        super::crm::set_groups(&txn, id, groups).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Renames a city group; `false` when there is none with this id.
    pub async fn rename_city_group(&self, id: GroupId, name: &str) -> Result<bool, StoreError> {
        let done = super::entities::city_groups::Entity::update_many()
            .col_expr(
                super::entities::city_groups::Column::Name,
                sea_orm::sea_query::Expr::value(name),
            )
            .filter(super::entities::city_groups::Column::Id.eq(id.0))
            .exec(self.writer())
            .await
            .map_err(StoreError::from_insert)?;
        Ok(done.rows_affected == 1)
    }

    /// Every user with their city groups (home first), by login, in two
    /// queries.
    pub async fn agents_with_groups(
        &self,
    ) -> Result<Vec<(agents::Model, Vec<GroupId>)>, StoreError> {
        let rows = agents::Entity::find()
            .order_by_asc(agents::Column::Login)
            .all(self.conn())
            .await?;
        let mut groups: std::collections::HashMap<i64, Vec<GroupId>> = Default::default();
        for m in group_members::Entity::find().all(self.conn()).await? {
            groups
                .entry(m.agent_id)
                .or_default()
                .push(GroupId(m.group_id));
        }
        Ok(rows
            .into_iter()
            .map(|a| {
                let g = groups.remove(&a.id).unwrap_or_default();
                (a, g)
            })
            .collect())
    }

    /// Every user, by login.
    pub async fn list_agents(&self) -> Result<Vec<AgentSummary>, StoreError> {
        let rows = agents::Entity::find()
            .order_by_asc(agents::Column::Login)
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|a| AgentSummary {
                id: AgentId(a.id),
                role: Role::parse(&a.role),
                login: a.login,
                name: a.name,
                disabled: a.disabled,
            })
            .collect())
    }
}

impl Store {
    /// One user by id.
    pub async fn agent(&self, id: AgentId) -> Result<agents::Model, StoreError> {
        agents::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The display names of these users (unknown ids are left out).
    pub async fn agent_names(
        &self,
        ids: &[AgentId],
    ) -> Result<std::collections::HashMap<AgentId, String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        Ok(agents::Entity::find()
            .filter(agents::Column::Id.is_in(ids.iter().map(|a| a.0)))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|a| (AgentId(a.id), a.name))
            .collect())
    }

    /// The city groups a user belongs to.
    pub async fn agent_groups(&self, id: AgentId) -> Result<Vec<GroupId>, StoreError> {
        Ok(group_members::Entity::find()
            .filter(group_members::Column::AgentId.eq(id.0))
            .order_by_asc(group_members::Column::GroupId)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|m| GroupId(m.group_id))
            .collect())
    }

    /// Whether a city group exists.
    pub async fn city_group_exists(&self, id: GroupId) -> Result<bool, StoreError> {
        Ok(city_groups::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .is_some())
    }
}

/// Sets one column of an agent (and `updated_at`) inside a transaction;
/// `NotFound` when there is no such agent.
async fn update_agent_in(
    txn: &sea_orm::DatabaseTransaction,
    id: AgentId,
    column: agents::Column,
    value: sea_orm::Value,
) -> Result<(), StoreError> {
    let updated = agents::Entity::update_many()
        .col_expr(column, sea_orm::sea_query::Expr::value(value))
        .col_expr(
            agents::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(agents::Column::Id.eq(id.0))
        .exec(txn)
        .await?;
    if updated.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}
