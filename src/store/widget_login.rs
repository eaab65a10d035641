//! The web widget's signed logins: each token's nonce is claimed once, and
//! kept until the token expires (after that the token is refused for its
//! age, so the row can go).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement, Value};

use super::{Store, StoreError, placeholders};

impl Store {
    /// Claims a login token's nonce for `site`: true the first time, false
    /// when it was used already (a replay). `expires_at` is the token's
    /// expiry; the claim is kept until then.
    pub async fn claim_login_nonce(
        &self,
        site: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO widget_login_nonces (site, nonce, expires_at) VALUES (?, ?, ?)";
        let values: Vec<Value> = vec![site.into(), nonce.into(), expires_at.into()];
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(self.backend(), sql),
            values,
        );
        match self.writer().execute_raw(stmt).await {
            Ok(_) => Ok(true),
            Err(e) => match StoreError::from_insert(e) {
                StoreError::Duplicate => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Forgets the nonces of tokens expired at `now`; returns how many.
    /// A token is refused from its expiry on, so none of these could be
    /// replayed.
    pub async fn purge_login_nonces(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = "DELETE FROM widget_login_nonces WHERE expires_at <= ?";
        let stmt = Statement::from_sql_and_values(
            self.backend(),
            placeholders(self.backend(), sql),
            [now.into()],
        );
        Ok(self.writer().execute_raw(stmt).await?.rows_affected())
    }
}
