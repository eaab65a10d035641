//! `kefu load crm`: a whole CRM sync, measured, with live traffic beside it.
//!
//! In one process it starts Kefu as production builds it (a fresh temporary
//! SQLite database, or `--database-url`; the outbox off, so nothing leaves
//! the machine), then:
//!
//! 1. plays Official Account callbacks at `--callback-rate` for
//!    `--baseline-secs` with nothing else running: the callback latency
//!    baseline;
//! 2. syncs a company through the real HTTP API, in batches of `--batch`
//!    rows: groups, the region map, agents, customers (with an openid
//!    each), bindings and vehicle trades — while the same callbacks keep
//!    coming;
//! 3. reports each kind's rows per second, every row's outcome (the exit
//!    code is 1 when any row was rejected or a callback failed), and the
//!    callback latency during the sync next to the baseline.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::callbacks::CallbackSpec;
use super::runner::{self, RunConfig, Stop};
use super::stats::{Histogram, LatencySummary};
use crate::config::{CrmKey, EnvSnapshot, Secret, Settings};
use crate::crm::apply::Report as BatchReport;
use crate::startup::Application;
use crate::wechat::crypto::MsgCrypt;

/// The key the tool gives its Kefu (never a real one: a fresh random one).
const KEY_NAME: &str = "load";
/// Callback rounds while the sync runs (merged).
const ROUND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Args)]
pub struct CrmArgs {
    #[arg(long, default_value_t = 2_000)]
    pub agents: u32,
    #[arg(long, default_value_t = 100)]
    pub groups: u32,
    /// Customers, each bound to an agent of their group.
    #[arg(long, default_value_t = 1_000_000)]
    pub customers: u32,
    #[arg(long, default_value_t = 200_000)]
    pub vehicles: u32,
    /// Rows per API call.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Live callbacks per second during the baseline and the sync.
    #[arg(long, default_value_t = 100.0)]
    pub callback_rate: f64,
    #[arg(long, default_value_t = 10.0)]
    pub baseline_secs: f64,
    /// A database to use instead of a temporary SQLite file (it must be
    /// empty: the tool migrates it).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// One kind's sync.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: &'static str,
    pub rows: u64,
    pub applied: u64,
    pub rejected: u64,
    pub calls: u64,
    pub secs: f64,
    pub rows_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrmLoadReport {
    pub database: &'static str,
    pub kinds: Vec<KindReport>,
    pub total_rows: u64,
    pub total_secs: f64,
    pub callback_rate: f64,
    pub baseline_callbacks: u64,
    pub baseline_ms: LatencySummary,
    pub during_sync_callbacks: u64,
    pub during_sync_ms: LatencySummary,
    pub callback_failures: u64,
}

impl CrmLoadReport {
    pub fn ok(&self) -> bool {
        self.callback_failures == 0
            && self
                .kinds
                .iter()
                .all(|k| k.rejected == 0 && k.applied == k.rows)
    }

    pub fn render(&self) -> String {
        let mut s = format!("CRM sync on {}\n", self.database);
        s.push_str("  kind          rows      applied   rejected  calls     secs   rows/s\n");
        for k in &self.kinds {
            s.push_str(&format!(
                "  {:<12} {:>9} {:>9} {:>9} {:>6} {:>9.1} {:>8.0}\n",
                k.kind, k.rows, k.applied, k.rejected, k.calls, k.secs, k.rows_per_sec
            ));
        }
        s.push_str(&format!(
            "  total        {:>9} rows in {:.1} s\n",
            self.total_rows, self.total_secs
        ));
        let line = |name: &str, n: u64, l: &LatencySummary| {
            format!(
                "  {name:<22} {n:>7} callbacks  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms\n",
                l.p50, l.p99, l.max
            )
        };
        s.push_str(&format!("callbacks at {} /s:\n", self.callback_rate));
        s.push_str(&line(
            "baseline (no sync)",
            self.baseline_callbacks,
            &self.baseline_ms,
        ));
        s.push_str(&line(
            "during the sync",
            self.during_sync_callbacks,
            &self.during_sync_ms,
        ));
        s.push_str(&format!("  failed callbacks: {}\n", self.callback_failures));
        s
    }
}

pub async fn run(args: CrmArgs, config_dir: &Path) -> anyhow::Result<CrmLoadReport> {
    if args.groups == 0 || args.agents < args.groups || args.batch == 0 {
        bail!("--groups must be at least 1, --agents at least --groups, --batch at least 1");
    }
    if !(args.callback_rate.is_finite() && args.callback_rate > 0.0) {
        bail!("--callback-rate must be positive");
    }
    let tmp = std::env::temp_dir().join(format!("kefu-load-crm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp)?;
    // Nothing leaves the machine: WeChat's API is a closed local port.
    let env = EnvSnapshot::from_process()
        .with("KEFU_WECHAT_API_BASE", "http://127.0.0.1:9")
        .with("KEFU_WECOM_API_BASE", "http://127.0.0.1:9");
    let mut settings = Settings::load_with_env(config_dir, &env)
        .map_err(|e| anyhow::anyhow!("configuration problems (run `kefu check-config`):\n{e}"))?;
    settings.server.port = 0;
    settings.metrics.enabled = false;
    settings.outbox.enabled = false;
    settings.media.download_enabled = false;
    settings.redis.url = Secret::new("");
    settings.media.dir = tmp.join("media");
    settings.database.url = Secret::new(
        args.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/kefu.db?mode=rwc", tmp.display())),
    );
    let database = if settings.database.url.expose().starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    settings.crm.keys = vec![CrmKey {
        name: KEY_NAME.into(),
        secret: Secret::new(secret.clone()),
    }];
    settings.crm.max_rows = settings.crm.max_rows.max(args.batch);
    let account = super::official_account(&settings)?.clone();
    let key = account
        .encoding_aes_key
        .as_ref()
        .context("the Official Account has no encoding_aes_key")?;
    let crypt = MsgCrypt::new(account.token.expose(), key.expose(), &account.app_id)?;
    let app = Application::build(settings)
        .await
        .context("Kefu did not start")?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    let spec = Arc::new(CallbackSpec::new(
        crypt,
        super::callback_url(&base, account.id.as_str())?,
        "gh_load".into(),
        1000,
        0.0,
    ));
    let round = |secs: f64| RunConfig {
        rate: Some(args.callback_rate),
        stop: Stop::After(Duration::from_secs_f64(secs)),
        concurrency: 64,
        timeout: Duration::from_secs(5),
    };
    eprintln!(
        "baseline: callbacks at {}/s for {} s",
        args.callback_rate, args.baseline_secs
    );
    let baseline = runner::run(&round(args.baseline_secs), spec.clone()).await?;
    let mut failures = baseline.failed;

    // Callbacks in rounds until the sync is over.
    let syncing = Arc::new(AtomicBool::new(true));
    let live = {
        let syncing = syncing.clone();
        let spec = spec.clone();
        let cfg = round(ROUND.as_secs_f64());
        tokio::spawn(async move {
            let mut hist = Histogram::new();
            let mut n = 0;
            let mut failed = 0;
            while syncing.load(Ordering::Relaxed) {
                match runner::run(&cfg, spec.clone()).await {
                    Ok(r) => {
                        n += r.ok;
                        failed += r.failed;
                        if let Some(h) = &r.histogram {
                            hist.merge(h);
                        }
                    }
                    Err(e) => {
                        eprintln!("callbacks: {e:#}");
                        failed += 1;
                    }
                }
            }
            (hist, n, failed)
        })
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let sync = Syncer {
        client,
        base: base.clone(),
        secret,
        batch: args.batch,
    };
    let started = Instant::now();
    let mut kinds = Vec::new();
    let a = &args;
    kinds.push(
        sync.kind(
            "groups",
            a.groups as u64,
            |i| json!({"id": format!("g{i}"), "name": format!("城市{i}"), "version": 1}),
        )
        .await?,
    );
    kinds.push(
        sync.kind(
            "regions",
            a.groups as u64,
            |i| json!({"region": format!("城市{i}"), "group": format!("g{i}"), "version": 1}),
        )
        .await?,
    );
    kinds.push(
        sync.kind("agents", a.agents as u64, |i| {
            json!({"id": format!("a{i}"), "login": format!("agent{i}"), "name": format!("客服{i}"),
                   "groups": [format!("g{}", i % a.groups as u64)], "capacity": 10, "version": 1})
        })
        .await?,
    );
    kinds.push(
        sync.kind("customers", a.customers as u64, |i| {
            json!({"id": format!("c{i}"), "name": format!("客户{i}"), "phone": format!("138{i:08}"),
                   "region": format!("城市{}", i % a.groups as u64),
                   "identities": {"oa_openid": [{"account": account.id.as_str(), "id": format!("oCRM{i:020}")}]},
                   "version": 1})
        })
        .await?,
    );
    kinds.push(
        sync.kind("bindings", a.customers as u64, |i| {
            // An agent of the customer's group.
            let group = i % a.groups as u64;
            let per_group = (a.agents / a.groups) as u64;
            let agent = group + a.groups as u64 * (i / a.groups as u64 % per_group.max(1));
            json!({"customer": format!("c{i}"), "agent": format!("a{agent}"), "version": 1})
        })
        .await?,
    );
    kinds.push(
        sync.kind("vehicles", a.vehicles as u64, |i| {
            json!({"id": format!("t{i}"), "customer": format!("c{}", i % a.customers.max(1) as u64),
                   "plate": format!("沪A{:05}", i % 100_000), "model": "大众 帕萨特", "order_no": format!("SO{i:09}"),
                   "payment_status": if i % 3 == 0 { "paid" } else { "unpaid" },
                   "sale_status": if i % 2 == 0 { "sold" } else { "listed" },
                   "version": 1})
        })
        .await?,
    );
    let total_secs = started.elapsed().as_secs_f64();
    syncing.store(false, Ordering::Relaxed);
    let (during, during_n, during_failed) = live.await?;
    failures += during_failed;
    handle.stop().await;
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(CrmLoadReport {
        database,
        total_rows: kinds.iter().map(|k| k.rows).sum(),
        kinds,
        total_secs,
        callback_rate: args.callback_rate,
        baseline_callbacks: baseline.ok,
        baseline_ms: baseline.latency_ms,
        during_sync_callbacks: during_n,
        during_sync_ms: LatencySummary::from_histogram(&during),
        callback_failures: failures,
    })
}

struct Syncer {
    client: reqwest::Client,
    base: String,
    secret: String,
    batch: usize,
}

impl Syncer {
    /// Sends `n` rows of `kind`, `batch` a call, signed like a CRM would.
    async fn kind(
        &self,
        kind: &'static str,
        n: u64,
        row: impl Fn(u64) -> Value,
    ) -> anyhow::Result<KindReport> {
        let started = Instant::now();
        let mut out = KindReport {
            kind,
            rows: n,
            applied: 0,
            rejected: 0,
            calls: 0,
            secs: 0.0,
            rows_per_sec: 0.0,
        };
        let mut i = 0;
        while i < n {
            let end = (i + self.batch as u64).min(n);
            let rows: Vec<Value> = (i..end).map(&row).collect();
            let body = serde_json::to_vec(&json!({ "rows": rows }))?;
            let ts = chrono::Utc::now().timestamp();
            let sig = crate::crm::hex(&crate::crm::sign(self.secret.as_bytes(), ts, &body));
            let r = self
                .client
                .post(format!("{}/api/crm/v1/{kind}", self.base))
                .header("content-type", "application/json")
                .header("x-kefu-key", KEY_NAME)
                .header("x-kefu-timestamp", ts.to_string())
                .header("x-kefu-signature", sig)
                .body(body)
                .send()
                .await?;
            let status = r.status();
            if !status.is_success() {
                bail!(
                    "{kind}: the API answered {status}: {}",
                    r.text().await.unwrap_or_default()
                );
            }
            let report: BatchReport = r.json().await?;
            if let Some(first) = report.rejected.first() {
                eprintln!(
                    "{kind}: rejected row {}: {}",
                    i as usize + first.index,
                    first.error
                );
            }
            out.applied += report.applied as u64;
            out.rejected += report.rejected.len() as u64;
            out.calls += 1;
            i = end;
            eprint!("\r{kind}: {i}/{n}");
        }
        eprintln!();
        out.secs = started.elapsed().as_secs_f64();
        out.rows_per_sec = n as f64 / out.secs.max(1e-9);
        Ok(out)
    }
}
