//! Configuration, read once at start into typed structs.
//!
//! Sources, later ones winning:
//! 1. `<config dir>/kefu.toml` (the example lives in `wechat-config/`);
//! 2. environment variables `KEFU__SECTION__KEY` (e.g. `KEFU__DATABASE__URL`);
//! 3. `KEFU_WECHAT_API_BASE` / `KEFU_WECOM_API_BASE`, which point every
//!    account's outbound calls at another base URL.
//!
//! WeChat accounts are one file each under `<config dir>/accounts/` (see
//! [`account`]). Nothing reads the environment after [`Settings::load`].

pub mod account;
mod env;
mod secret;
pub mod site;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

pub use account::{Account, AccountKind, MessageMode, TokenMode};
pub use env::EnvSnapshot;
pub use secret::{Secret, redact_url};
pub use site::Site;

/// Everything Kefu is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub redis: RedisSettings,
    #[serde(default)]
    pub media: MediaSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default = "ApiSettings::wechat")]
    pub wechat: ApiSettings,
    #[serde(default = "ApiSettings::wecom")]
    pub wecom: ApiSettings,
    #[serde(default)]
    pub kf: KfSettings,
    #[serde(default)]
    pub console: ConsoleSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub routing: RoutingSettings,
    #[serde(default)]
    pub crm: CrmSettings,
    #[serde(default)]
    pub widget: WidgetSettings,
    /// The WeChat accounts, from `accounts/*.toml` (not part of kefu.toml).
    #[serde(skip)]
    pub accounts: Vec<Account>,
    /// The web chat sites, from `sites/*.toml` (not part of kefu.toml).
    #[serde(skip)]
    pub sites: Vec<Site>,
    /// Where the configuration was read from.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// The address customers' WeChat servers and agents' browsers reach Kefu
    /// at, used in printed links. Defaults to `http://{host}:{port}`.
    pub public_url: Option<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            public_url: None,
            workers: 0,
            shutdown_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://data/kefu.db?mode=rwc` or `postgres://user:pw@host/db`.
    pub url: Secret,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://data/kefu.db?mode=rwc"),
            max_connections: 16,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Empty: single node, in-process bus. `redis://127.0.0.1:6379`: the
    /// cross-instance bus, presence and the shared access token live there.
    pub url: Secret,
    /// Prefix of every key and channel, so several deployments can share
    /// one Redis.
    pub key_prefix: Option<String>,
}

impl RedisSettings {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    pub fn prefix(&self) -> &str {
        self.key_prefix.as_deref().unwrap_or("kefu")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Folder of the local media store (content-addressed).
    pub dir: PathBuf,
    pub max_image_bytes: u64,
    pub max_voice_bytes: u64,
    pub max_video_bytes: u64,
    pub max_file_bytes: u64,
    /// Run the inbound media download worker.
    pub download_enabled: bool,
    /// Attempts before a message's media is marked unavailable.
    pub download_max_attempts: u32,
    /// First retry delay; doubles each attempt.
    pub download_backoff_secs: u64,
    /// Longest retry delay.
    pub download_max_backoff_secs: u64,
    /// How often the worker looks for media messages it was not told about.
    pub download_sweep_secs: u64,
    /// How long an uploaded media id is reused (WeChat keeps it 3 days).
    pub upload_reuse_secs: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/media"),
            max_image_bytes: 10 * 1024 * 1024,
            max_voice_bytes: 2 * 1024 * 1024,
            max_video_bytes: 10 * 1024 * 1024,
            max_file_bytes: 20 * 1024 * 1024,
            download_enabled: true,
            download_max_attempts: 10,
            download_backoff_secs: 30,
            download_max_backoff_secs: 3600,
            download_sweep_secs: 60,
            upload_reuse_secs: 60 * 60 * 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest WeChat callback body accepted.
    pub callback_body_bytes: usize,
    /// Largest JSON or form body accepted by the console and APIs.
    pub api_body_bytes: usize,
    /// Timeout of every outbound HTTP call.
    pub outbound_timeout_secs: u64,
    /// How long a callback may wait for its message to be committed before
    /// answering 503 (so WeChat retries) — well inside WeChat's 5 s.
    pub callback_commit_timeout_ms: u64,
    /// Most inbound messages committed in one transaction (group commit).
    pub ingest_max_batch: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            callback_body_bytes: 64 * 1024,
            api_body_bytes: 1024 * 1024,
            outbound_timeout_secs: 10,
            callback_commit_timeout_ms: 3000,
            ingest_max_batch: 512,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve Prometheus metrics on their own listener.
    pub enabled: bool,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 9464,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `kefu=debug,info`; `RUST_LOG`
    /// wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Where one family of WeChat APIs is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Scheme and host, without `/cgi-bin`.
    pub api_base: String,
}

impl ApiSettings {
    fn wechat() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
        }
    }
    fn wecom() -> Self {
        Self {
            api_base: "https://qyapi.weixin.qq.com".into(),
        }
    }
}

/// WeCom Customer Service message pull.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KfSettings {
    /// Catch-up pull of every known kf account, in case a callback was lost.
    /// 0 disables it.
    pub poll_interval_secs: u64,
}

impl Default for KfSettings {
    fn default() -> Self {
        Self {
            poll_interval_secs: 60,
        }
    }
}

/// Sending: retries, leases, and WeChat's customer-service window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Run the sender on this instance (messages are accepted either way).
    pub enabled: bool,
    /// Attempts before a transiently failing message is given up.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub base_backoff_ms: u64,
    /// Longest retry delay.
    pub max_backoff_secs: u64,
    /// How long a sender owns a claimed message; after a crash another
    /// sender takes it over when the lease ends.
    pub lease_secs: u64,
    /// Messages claimed and sent concurrently per step.
    pub batch: u64,
    /// Sender loops per instance.
    pub senders: usize,
    /// WeChat's customer-service window after the customer's last message.
    pub window_hours: i64,
    /// Messages WeChat allows within the window.
    pub window_messages: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts: 8,
            base_backoff_ms: 500,
            max_backoff_secs: 300,
            lease_secs: 30,
            batch: 64,
            senders: 4,
            window_hours: 48,
            window_messages: 5,
        }
    }
}

/// The web chat widget (issue 9; sites are configured in `sites/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WidgetSettings {
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or addresses);
    /// empty: the peer's address is the visitor's.
    pub trusted_proxies: Vec<String>,
    /// Messages one visitor may send a minute (a burst of as many).
    pub visitor_messages_per_minute: u32,
    /// Visitor sessions one IP address may start a minute.
    pub ip_sessions_per_minute: u32,
    /// Longest text message, in characters.
    pub max_text_chars: usize,
}

impl Default for WidgetSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            visitor_messages_per_minute: 30,
            ip_sessions_per_minute: 30,
            max_text_chars: 2000,
        }
    }
}

/// Console sign-in: session lifetimes and the lock-out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// A session unused for this long ends.
    pub session_idle_timeout_mins: u64,
    /// A session ends this long after sign-in, however active.
    pub session_lifetime_hours: u64,
    /// Failed sign-ins for one login within the window that lock it.
    pub lockout_attempts: u32,
    /// The lock-out window: failures older than this no longer count.
    pub lockout_window_mins: u64,
}

impl ConsoleSettings {
    /// Upper bounds checked at load (one year; one week for the window).
    pub const MAX_IDLE_MINS: u64 = 365 * 24 * 60;
    pub const MAX_LIFETIME_HOURS: u64 = 365 * 24;
    pub const MAX_ATTEMPTS: u64 = 1000;
    pub const MAX_WINDOW_MINS: u64 = 7 * 24 * 60;
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            session_idle_timeout_mins: 12 * 60,
            session_lifetime_hours: 7 * 24,
            lockout_attempts: 5,
            lockout_window_mins: 15,
        }
    }
}

/// Routing of customers to agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// The offline IP → region database (`kefu fetch-ip2region` puts it
    /// there); absent means web visitors are routed without a region.
    pub ip2region_path: PathBuf,
    /// When true, an agent with no shift on record is off duty; when false
    /// (the default, until the CRM provides shifts), only agents with
    /// shifts on record are held to them.
    pub require_shifts: bool,
    /// How many queued conversations an agent who becomes free takes at
    /// once (a fresh login is not flooded).
    pub queue_batch_limit: u32,
    /// Seconds between sweeps of the queue (catches shift starts and
    /// anything an event missed).
    pub queue_sweep_secs: u64,
    /// Seconds an agent's console may be gone before they count as offline
    /// and their conversations are re-routed.
    pub presence_grace_secs: u64,
    /// Seconds between reconciliations of the in-memory agents' load and
    /// presence with the database.
    pub reconcile_secs: u64,
    /// Minutes an assigned conversation may wait for the agent's reply before
    /// it is offered to another agent of the group and supervisors are
    /// alerted (0: never).
    pub agent_reply_timeout_mins: u64,
    /// Minutes without a customer message after which an open conversation
    /// closes by itself (0: never). Queued conversations wait.
    pub auto_close_mins: u64,
    /// Minutes after a close during which a reply of 1–5 answers the
    /// satisfaction survey.
    pub survey_window_mins: u64,
    /// Words that ask for a person (the whole message, or inside a short one).
    pub handoff_keywords: Vec<String>,
    /// Official Account menu keys (CLICK events) that ask for a person.
    pub handoff_menu_keys: Vec<String>,
    /// Menu keys that start with this prefix choose a city: `CITY:上海`.
    pub city_menu_prefix: String,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            ip2region_path: PathBuf::from(crate::routing::region::DEFAULT_XDB_PATH),
            require_shifts: false,
            queue_batch_limit: 3,
            queue_sweep_secs: 10,
            presence_grace_secs: 90,
            reconcile_secs: 60,
            agent_reply_timeout_mins: 5,
            auto_close_mins: 30,
            survey_window_mins: 24 * 60,
            handoff_keywords: crate::conversation::state::DEFAULT_HANDOFF_KEYWORDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            handoff_menu_keys: vec!["HUMAN".into(), "KEFU_HUMAN".into()],
            city_menu_prefix: "CITY:".into(),
        }
    }
}

/// The CRM sync (`/api/crm/v1/`, `kefu import`, the outbound webhook).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmSettings {
    /// Where Kefu's decisions are delivered (empty: none; the CRM reads
    /// `GET /api/crm/v1/events` instead).
    pub webhook_url: String,
    pub webhook_timeout_secs: u64,
    /// Retries back off from 1 s, doubling up to this.
    pub webhook_max_backoff_secs: u64,
    /// Events per webhook call.
    pub webhook_batch: u64,
    /// When true, every call must be signed (`X-Kefu-Signature`); a bare
    /// key is refused.
    pub require_signature: bool,
    /// The CRM's time zone, in hours east of UTC, for shift days.
    pub utc_offset_hours: i32,
    /// Most rows in one batch call.
    pub max_rows: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// API keys, from `KEFU_CRM_KEYS` only (`name:secret,name2:secret2`):
    /// never in a file.
    #[serde(skip)]
    pub keys: Vec<CrmKey>,
    /// The webhook's signing secret, from `KEFU_CRM_WEBHOOK_SECRET`.
    #[serde(skip)]
    pub webhook_secret: Option<Secret>,
}

/// One integration's API key.
#[derive(Debug, Clone)]
pub struct CrmKey {
    /// Named in logs and `X-Kefu-Key`.
    pub name: String,
    pub secret: Secret,
}

impl Default for CrmSettings {
    fn default() -> Self {
        Self {
            webhook_url: String::new(),
            webhook_timeout_secs: 10,
            webhook_max_backoff_secs: 300,
            webhook_batch: 100,
            require_signature: false,
            utc_offset_hours: 8,
            max_rows: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
            keys: Vec::new(),
            webhook_secret: None,
        }
    }
}

/// `name:secret,name2:secret2`; a problem for each malformed or short entry.
fn parse_crm_keys(raw: &str) -> Result<Vec<CrmKey>, String> {
    let mut keys = Vec::new();
    for (i, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let Some((name, secret)) = entry.split_once(':') else {
            return Err(format!("entry {} is not name:secret", i + 1));
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "entry {}: the name must be letters, digits, - or _",
                i + 1
            ));
        }
        if secret.len() < 32 {
            return Err(format!(
                "key {name:?}: the secret must be at least 32 characters"
            ));
        }
        if keys.iter().any(|k: &CrmKey| k.name == name) {
            return Err(format!("key {name:?} is listed twice"));
        }
        keys.push(CrmKey {
            name: name.to_owned(),
            secret: Secret::new(secret),
        });
    }
    Ok(keys)
}

/// A configuration problem, worded for the person who must fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// The key at fault, dotted (`database.url`), if one is.
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: `{}`: {}", self.file.display(), k, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found, so one run of `check-config` lists them all.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Settings {
    /// Reads `dir/kefu.toml`, the process environment and `dir/accounts/`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(dir, &EnvSnapshot::from_process())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(dir: &Path, env: &EnvSnapshot) -> Result<Self, ConfigError> {
        let file = dir.join("kefu.toml");
        let mut problems = Vec::new();
        if !file.is_file() {
            problems.push(ConfigProblem {
                file: file.clone(),
                key: None,
                message: "not found: create it (copy wechat-config/kefu.toml from the repository) \
                          or pass --config DIR"
                    .into(),
            });
            return Err(ConfigError(problems));
        }
        let figment = Figment::new()
            .merge(Toml::file_exact(&file))
            .merge(env.clone());
        let mut settings: Settings = match figment.extract() {
            Ok(s) => s,
            Err(e) => {
                for err in e {
                    problems.push(problem_from_figment(&file, err));
                }
                return Err(ConfigError(problems));
            }
        };
        if let Some(base) = env.get("KEFU_WECHAT_API_BASE") {
            settings.wechat.api_base = base.to_owned();
        }
        if let Some(base) = env.get("KEFU_WECOM_API_BASE") {
            settings.wecom.api_base = base.to_owned();
        }
        if let Some(raw) = env.get("KEFU_CRM_KEYS") {
            match parse_crm_keys(raw) {
                Ok(keys) => settings.crm.keys = keys,
                Err(message) => problems.push(ConfigProblem {
                    file: PathBuf::from("$KEFU_CRM_KEYS"),
                    key: None,
                    message,
                }),
            }
        }
        if let Some(s) = env.get("KEFU_CRM_WEBHOOK_SECRET").filter(|s| !s.is_empty()) {
            settings.crm.webhook_secret = Some(Secret::new(s));
        }
        settings.config_dir = dir.to_owned();
        problems.extend(settings.validate(&file));
        match account::load_dir(&dir.join("accounts")) {
            Ok(accounts) => settings.accounts = accounts,
            Err(ConfigError(more)) => problems.extend(more),
        }
        match site::load_dir(&dir.join("sites")) {
            Ok(sites) => settings.sites = sites,
            Err(ConfigError(more)) => problems.extend(more),
        }
        for s in &settings.sites {
            if settings.account(s.id.as_str()).is_some() {
                problems.push(ConfigProblem {
                    file: s.file.clone(),
                    key: Some("id".into()),
                    message: format!(
                        "{:?} is a WeChat account's id too; a site needs its own",
                        s.id.as_str()
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(problems))
        }
    }

    fn validate(&self, file: &Path) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(ConfigProblem {
                file: file.to_owned(),
                key: Some(key.into()),
                message,
            })
        };
        if let Err(e) =
            crate::channels::web::client_ip::TrustedProxies::new(&self.widget.trusted_proxies)
        {
            bad("widget.trusted_proxies", e.to_string());
        }
        let db = self.database.url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            bad(
                "database.url",
                "must start with sqlite: or postgres:// (e.g. sqlite://data/kefu.db?mode=rwc)"
                    .into(),
            );
        }
        if self.redis.enabled() && !self.redis.url.expose().starts_with("redis://") {
            bad("redis.url", "must be empty or start with redis://".into());
        }
        for (key, base) in [
            ("wechat.api_base", &self.wechat.api_base),
            ("wecom.api_base", &self.wecom.api_base),
        ] {
            if url::Url::parse(base).map(|u| !u.has_host()).unwrap_or(true) {
                bad(key, format!("{base:?} is not an absolute http(s) URL"));
            }
        }
        if let Some(u) = &self.server.public_url
            && url::Url::parse(u).is_err()
        {
            bad("server.public_url", format!("{u:?} is not an absolute URL"));
        }
        if self.limits.callback_body_bytes < 1024 {
            bad("limits.callback_body_bytes", "must be at least 1024".into());
        }
        if !(100..=4500).contains(&self.limits.callback_commit_timeout_ms) {
            bad(
                "limits.callback_commit_timeout_ms",
                "must be between 100 and 4500: WeChat gives up after 5 s".into(),
            );
        }
        if self.limits.ingest_max_batch == 0 {
            bad("limits.ingest_max_batch", "must be at least 1".into());
        }
        for (key, value, max) in [
            (
                "console.session_idle_timeout_mins",
                self.console.session_idle_timeout_mins,
                ConsoleSettings::MAX_IDLE_MINS,
            ),
            (
                "console.session_lifetime_hours",
                self.console.session_lifetime_hours,
                ConsoleSettings::MAX_LIFETIME_HOURS,
            ),
            (
                "console.lockout_attempts",
                u64::from(self.console.lockout_attempts),
                ConsoleSettings::MAX_ATTEMPTS,
            ),
            (
                "console.lockout_window_mins",
                self.console.lockout_window_mins,
                ConsoleSettings::MAX_WINDOW_MINS,
            ),
        ] {
            if !(1..=max).contains(&value) {
                bad(key, format!("must be between 1 and {max}"));
            }
        }
        if self.database.max_connections == 0 {
            bad("database.max_connections", "must be at least 1".into());
        }
        let r = &self.routing;
        for (key, value, min, max) in [
            (
                "routing.queue_batch_limit",
                u64::from(r.queue_batch_limit),
                1,
                1000,
            ),
            ("routing.queue_sweep_secs", r.queue_sweep_secs, 1, 3600),
            (
                "routing.presence_grace_secs",
                r.presence_grace_secs,
                5,
                86_400,
            ),
            ("routing.reconcile_secs", r.reconcile_secs, 1, 86_400),
            (
                "routing.agent_reply_timeout_mins",
                r.agent_reply_timeout_mins,
                0,
                10_080,
            ),
            ("routing.auto_close_mins", r.auto_close_mins, 0, 525_600),
            (
                "routing.survey_window_mins",
                r.survey_window_mins,
                1,
                525_600,
            ),
        ] {
            if !(min..=max).contains(&value) {
                bad(key, format!("must be between {min} and {max}"));
            }
        }
        if r.handoff_keywords.iter().all(|k| k.trim().is_empty()) && r.handoff_menu_keys.is_empty()
        {
            bad(
                "routing.handoff_keywords",
                "customers could never ask for a person: give at least one keyword or menu key"
                    .into(),
            );
        }
        out
    }

    /// The base of every link Kefu prints, without a trailing slash.
    pub fn public_url(&self, bound_port: u16) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = match self.server.host.as_str() {
                    "0.0.0.0" | "::" => "127.0.0.1",
                    h => h,
                };
                format!("http://{host}:{bound_port}")
            }
        }
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id.as_str() == id)
    }

    /// The web chat site with this public key.
    pub fn site_by_key(&self, key: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.public_key == key)
    }

    /// The web chat site with this id.
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id.as_str() == id)
    }
}

fn problem_from_figment(file: &Path, err: figment::Error) -> ConfigProblem {
    let key = if err.path.is_empty() {
        None
    } else {
        Some(err.path.join("."))
    };
    let from_env = err
        .metadata
        .as_ref()
        .map(|m| m.name.contains("environment"))
        .unwrap_or(false);
    let message = match &err.kind {
        figment::error::Kind::UnknownField(name, expected) => {
            // figment's path already ends with the unknown field.
            let key_name = key.clone().unwrap_or_else(|| name.clone());
            return ConfigProblem {
                file: file.to_owned(),
                key: Some(key_name),
                message: format!(
                    "unknown key; expected one of: {}",
                    expected
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
        }
        other => other.to_string(),
    };
    let message = if from_env {
        format!("{message} (set by an environment variable)")
    } else {
        message
    };
    ConfigProblem {
        file: file.to_owned(),
        key,
        message,
    }
}

#[cfg(test)]
mod tests;
