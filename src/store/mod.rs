//! Storage: sea-orm over SQLite (WAL) or PostgreSQL. The only place that
//! writes SQL; callers get functions shaped like the domain.

pub mod agents;
pub mod board;
pub mod bulk;
pub mod conversations;
pub mod crm;
pub mod customer_view;
pub mod entities;
pub mod followers;
pub mod kf;
pub mod media;
pub mod messages;
pub mod notes;
pub mod outbox;
pub mod queue;
pub mod quick_replies;
pub mod routing;
pub mod search;
pub mod sessions;
pub mod setup;
pub mod surveys;
pub mod tickets;
pub mod widget;
pub mod widget_login;
pub mod workbench;

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
};

use crate::config::{Account, DatabaseSettings, Site, redact_url};

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("a row with this key exists already")]
    Duplicate,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Duplicate`].
    pub fn from_insert(e: DbErr) -> Self {
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => StoreError::Duplicate,
            _ => StoreError::Db(e),
        }
    }
}

/// The database handle, cheap to clone.
///
/// On SQLite, writes go through a pool of exactly one connection: SQLite
/// admits one writer at a time, and a second writing connection would wait
/// in SQLite's sleeping busy handler (up to 100 ms a try) instead of in a
/// fair in-process queue. Reads use the other pool, concurrently (WAL). On
/// PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    writer: DatabaseConnection,
}

impl Store {
    /// Connects; for SQLite, creates the file's folder, and uses WAL with
    /// full fsync so an acknowledged write survives a crash.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.expose();
        if let Some(path) = sqlite_file(url)
            && let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect {
                url: redact_url(url),
                reason: format!("cannot create folder {}: {e}", dir.display()),
            })?;
        }
        let limit = Duration::from_secs(settings.connect_timeout_secs.saturating_mul(2).max(1));
        let db = connect_pool(url, settings, settings.max_connections, limit).await?;
        let writer = if db.get_database_backend() == DatabaseBackend::Sqlite {
            connect_pool(url, settings, 1, limit).await?
        } else {
            db.clone()
        };
        Ok(Self { db, writer })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.writer, None)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }

    /// Names of the migrations applied so far.
    pub async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_applied_migrations(&self.db)
            .await?
            .into_iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// The pool for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The pool for writes (one connection on SQLite).
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Records the configured accounts (insert or update by id).
    pub async fn sync_accounts(&self, accounts: &[Account]) -> Result<(), StoreError> {
        for a in accounts {
            self.sync_account(a.id.as_str(), a.kind.as_str(), &a.name)
                .await?;
        }
        Ok(())
    }

    /// Records the configured web chat sites as accounts of kind `web`
    /// (their messages' account).
    pub async fn sync_sites(&self, sites: &[Site]) -> Result<(), StoreError> {
        for s in sites {
            self.sync_account(s.id.as_str(), "web", &s.name).await?;
        }
        Ok(())
    }

    async fn sync_account(&self, id: &str, kind: &str, name: &str) -> Result<(), StoreError> {
        use entities::accounts;
        use sea_orm::sea_query::OnConflict;
        use sea_orm::{EntityTrait, Set};
        let now = chrono::Utc::now();
        let row = accounts::ActiveModel {
            id: Set(id.to_owned()),
            kind: Set(kind.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        accounts::Entity::insert(row)
            .on_conflict(
                OnConflict::column(accounts::Column::Id)
                    .update_columns([
                        accounts::Column::Kind,
                        accounts::Column::Name,
                        accounts::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(self) {
        let _ = self.writer.close().await;
        let _ = self.db.close().await;
    }

    /// Runs a statement that needs no result (tests, maintenance).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), StoreError> {
        self.writer.execute_unprepared(sql).await?;
        Ok(())
    }
}

/// One connection pool, with Kefu's SQLite settings.
async fn connect_pool(
    url: &str,
    settings: &DatabaseSettings,
    max_connections: u32,
    limit: Duration,
) -> Result<DatabaseConnection, StoreError> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs.max(10)))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // 8 MiB page cache and memory-mapped reads: the writer
                // re-reads index pages from the kernel otherwise.
                .pragma("cache_size", "-8192")
                .pragma("mmap_size", "268435456")
                .pragma("temp_store", "memory")
        });
    // sqlx retries unreachable servers until its own timeout; bound the whole attempt.
    match tokio::time::timeout(limit, Database::connect(opts)).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(StoreError::Connect {
            url: redact_url(url),
            reason: e.to_string(),
        }),
        Err(_) => Err(StoreError::Connect {
            url: redact_url(url),
            reason: format!("no answer within {} s", limit.as_secs()),
        }),
    }
}

/// The file path of an SQLite URL, or None for memory and other backends.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.starts_with(":memory:") {
        None
    } else {
        Some(path)
    }
}

/// SQL written with `?` placeholders, as the backend wants them (`$1, $2, …`
/// on PostgreSQL).
pub(crate) fn placeholders(backend: DatabaseBackend, sql: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => sql.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            placeholders(DatabaseBackend::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(placeholders(DatabaseBackend::Sqlite, "a = ?"), "a = ?");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite://data/kefu.db?mode=rwc"),
            Some("data/kefu.db")
        );
        assert_eq!(sqlite_file("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
