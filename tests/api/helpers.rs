//! `spawn_app()`: a running Kefu on port 0 with a fresh database per test
#![allow(dead_code)]
//! (a new SQLite file, or a new PostgreSQL database when
//! `KEFU_TEST_POSTGRES_URL` is set), Redis when `KEFU_TEST_REDIS_URL` is set,
//! and the fake WeChat API server behind every outbound call.

use std::path::{Path, PathBuf};
use std::sync::Once;

use kefu::config::{EnvSnapshot, Secret, Settings};
use kefu::startup::{AppHandle, Application};
use kefu::state::AppState;

use crate::fake_wechat::FakeWechat;

static TRACING: Once = Once::new();

/// Logs from the app under test, only when `TEST_LOG` is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            kefu::telemetry::init(&kefu::config::LogSettings {
                level: "debug".into(),
                ..Default::default()
            });
        }
    });
}

pub fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wechat-config")
}

/// A database made for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(dir: &Path) -> TestDb {
        match std::env::var("KEFU_TEST_POSTGRES_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("kefu_t_{}", uuid::Uuid::new_v4().simple());
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("KEFU_TEST_POSTGRES_URL={admin_url} unreachable: {e}")
                    });
                use sea_orm::ConnectionTrait;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let mut url = url::Url::parse(&admin_url).expect("KEFU_TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                TestDb {
                    url: url.to_string(),
                    pg_admin: Some((admin_url, name)),
                }
            }
            _ => TestDb {
                url: format!("sqlite://{}?mode=rwc", dir.join("kefu.db").display()),
                pg_admin: None,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_admin.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg_admin.take() else {
            return;
        };
        // Drop runs outside async: use a small runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                let admin = sea_orm::Database::connect(&admin_url).await.ok()?;
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
                Some(())
            })
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub fake: FakeWechat,
    pub setup_link: Option<String>,
    pub state: AppState,
    pub handle: AppHandle,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub settings: Settings,
    pub db: TestDb,
    /// Keeps the SQLite file and media folder alive for the test.
    pub dir: tempfile::TempDir,
}

/// Settings for a test: the repository's example configuration, outbound
/// calls to `fake`, port 0, the given database, media in `dir`.
pub fn test_settings(dir: &Path, db_url: &str, fake: &FakeWechat) -> Settings {
    let env = EnvSnapshot::from_pairs([
        ("KEFU_WECHAT_API_BASE", fake.base_url.as_str()),
        ("KEFU_WECOM_API_BASE", fake.base_url.as_str()),
    ]);
    let mut s =
        Settings::load_with_env(&repo_config_dir(), &env).expect("example configuration loads");
    s.server.port = 0;
    s.server.workers = 1;
    s.server.shutdown_timeout_secs = 5;
    s.metrics.port = 0;
    s.database.url = Secret::new(db_url);
    s.database.max_connections = 4;
    s.media.dir = dir.join("media");
    // Tests that need regions write their own small database.
    s.routing.ip2region_path = dir.join("ip2region.xdb");
    if let Ok(redis) = std::env::var("KEFU_TEST_REDIS_URL")
        && !redis.is_empty()
    {
        s.redis.url = Secret::new(redis);
        // Each test gets its own channels and keys.
        s.redis.key_prefix = Some(format!("kefu-test-{}", uuid::Uuid::new_v4().simple()));
    }
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the settings first.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeWechat::start().await;
    let db = TestDb::new(dir.path()).await;
    let mut settings = test_settings(dir.path(), &db.url, &fake);
    customize(&mut settings);
    start(settings, fake, db, dir).await
}

/// Starts an application on settings prepared by the caller.
pub async fn start(
    settings: Settings,
    fake: FakeWechat,
    db: TestDb,
    dir: tempfile::TempDir,
) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let port = app.port();
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let setup_link = app.setup_link().map(str::to_owned);
    let state = app.state().clone();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("test client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_address,
        client,
        fake,
        setup_link,
        state,
        handle,
        server: Some(server),
        settings,
        db,
        dir,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        self.handle.stop().await;
        match self.server.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }
}
