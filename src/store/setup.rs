//! First-run setup: one-time tokens that let the first admin choose a password.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};

use super::entities::{agents, setup_tokens};
use super::{Store, StoreError};
use crate::ids::AgentId;

/// Why a setup token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SetupRefused {
    #[error("this setup link is unknown, used or expired")]
    InvalidToken,
    #[error("an administrator exists already")]
    AdminExists,
    #[error("the login is taken")]
    LoginTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// True while no administrator account exists.
    pub async fn needs_setup(&self) -> Result<bool, StoreError> {
        let admins = agents::Entity::find()
            .filter(agents::Column::Role.eq("admin"))
            .count(self.conn())
            .await?;
        Ok(admins == 0)
    }

    /// Stores a new setup token (by its hash) and forgets every unused one,
    /// so only the newest printed link works.
    pub async fn replace_setup_token(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await?;
        setup_tokens::Entity::delete_many()
            .filter(setup_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        setup_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// True if the token is usable now.
    pub async fn setup_token_valid(&self, token_hash: &str) -> Result<bool, StoreError> {
        let row = setup_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(self.conn())
            .await?;
        Ok(matches!(row, Some(t) if t.used_at.is_none() && t.expires_at > Utc::now()))
    }

    /// Spends the token and creates the first administrator, atomically.
    pub async fn complete_setup(
        &self,
        token_hash: &str,
        login: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<AgentId, SetupRefused> {
        let txn = self.writer().begin().await.map_err(StoreError::from)?;
        let now = Utc::now();
        // Spend the token first: a concurrent second use updates nothing.
        let spent = setup_tokens::Entity::update_many()
            .col_expr(
                setup_tokens::Column::UsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(setup_tokens::Column::TokenHash.eq(token_hash))
            .filter(setup_tokens::Column::UsedAt.is_null())
            .filter(setup_tokens::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .map_err(StoreError::from)?;
        if spent.rows_affected != 1 {
            return Err(SetupRefused::InvalidToken);
        }
        let admins = agents::Entity::find()
            .filter(agents::Column::Role.eq("admin"))
            .count(&txn)
            .await
            .map_err(StoreError::from)?;
        if admins > 0 {
            return Err(SetupRefused::AdminExists);
        }
        let agent = agents::ActiveModel {
            login: Set(login.to_owned()),
            name: Set(name.to_owned()),
            role: Set("admin".into()),
            password_hash: Set(Some(password_hash.to_owned())),
            capacity: Set(10),
            status: Set("offline".into()),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| match StoreError::from_insert(e) {
            StoreError::Duplicate => SetupRefused::LoginTaken,
            other => SetupRefused::Store(other),
        })?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(AgentId(agent.id))
    }
}
