//! `kefu load widget`: tens of thousands of website visitors with the chat
//! open, agents on their consoles, and visitors writing at a fixed rate.
//!
//! 1. Seeds a fresh database (a temporary SQLite file, or a fresh database
//!    made on `--postgres` and dropped afterwards): `--agents` idle agents
//!    with room for every visitor, and a session each. Starts
//!    `--instances` `kefu serve` processes on it (more than one share
//!    PostgreSQL and `--redis-url`, as a cluster does).
//! 2. Opens every agent's console socket, spread over the instances.
//! 3. Starts every visitor's chat through `POST /widget/api/session` and
//!    opens its socket (`/widget/api/ws`), held by child processes of
//!    `--per-process` sockets each (a process may have 20,000 files open on
//!    this machine, so one cannot hold them all); measures each server's
//!    memory before and after, per idle connection.
//! 4. Every visitor asks for a person (`POST /widget/api/handoff`) and is
//!    assigned; then visitors write (`POST /widget/api/messages`) at
//!    `--rate` a second for `--duration` seconds (after `--settle` seconds
//!    of quiet), each message timed from its request to its agent's socket.
//!
//! Checked: every message reached its agent once and in sequence, every
//! visitor's socket stayed open, and each visitor's page got its message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use super::console::{Seen, memory_of, open_all, seed_consoles, start_server_with, wait_delivered};
use super::stats::LatencySummary;
use crate::store::Store;

#[derive(Debug, Clone, Args)]
pub struct WidgetArgs {
    /// Visitors, each with the chat open on its own socket.
    #[arg(long, default_value_t = 20_000)]
    pub visitors: u32,
    /// Agents on their consoles; each has room for its share of visitors.
    #[arg(long, default_value_t = 2_000)]
    pub agents: u32,
    /// Visitors' messages per second.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Hand-offs per second while every visitor asks for a person.
    #[arg(long, default_value_t = 500.0)]
    pub handoff_rate: f64,
    /// Seconds of quiet after everyone is assigned, before the measured
    /// load (the servers finish the hand-offs' follow-up work).
    #[arg(long, default_value_t = 15.0)]
    pub settle: f64,
    /// `kefu serve` processes; more than one needs `--postgres` and
    /// `--redis-url`.
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// Visitors' sockets held by each client process.
    #[arg(long, default_value_t = 10_000)]
    pub per_process: u32,
    /// A PostgreSQL server (`postgres://postgres@127.0.0.1:5432/test`): the
    /// run makes a fresh database on it and drops it afterwards.
    #[arg(long)]
    pub postgres: Option<String>,
    /// The Redis of a cluster of `--instances`.
    #[arg(long)]
    pub redis_url: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// The `kefu` binary to serve and hold sockets with [default: this one].
    #[arg(long, hide = true)]
    pub server_bin: Option<PathBuf>,
}

/// `kefu load widget-visitors` (internal): holds the sockets of the
/// visitors whose URLs it reads on stdin, one per line, until `open`.
#[derive(Debug, Clone, Args)]
pub struct VisitorsArgs {
    /// Sockets opened at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WidgetReport {
    pub instances: u32,
    pub agents: u32,
    pub visitors: u32,
    /// Visitors' sockets open at the end of the run.
    pub sockets_open: u64,
    /// Visitors' sockets the servers closed during the run (must be 0).
    pub sockets_dropped: u64,
    pub assigned: u64,
    pub rate: f64,
    pub messages: u64,
    pub request_failures: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub gaps: u64,
    /// Agents' console sockets the servers closed (must be 0).
    pub consoles_closed: u64,
    /// Console sockets told to reload (the server lost track; must be 0).
    pub reloads: u64,
    /// Request → the agent's socket.
    pub delivery_ms: LatencySummary,
    /// Message frames the visitors' pages received (their own messages).
    pub visitor_frames: u64,
    /// The servers' memory (all instances): before the visitors' sockets,
    /// with them idle, and the peak.
    pub server_rss_mb_before: f64,
    pub server_rss_mb_idle: f64,
    pub server_peak_rss_mb: f64,
    /// (idle − before) / sockets, in KB.
    pub kb_per_idle_connection: f64,
    pub setup_secs: f64,
}

impl WidgetReport {
    pub fn ok(&self) -> bool {
        self.sockets_open == u64::from(self.visitors)
            && self.sockets_dropped == 0
            && self.assigned >= u64::from(self.visitors)
            && self.lost == 0
            && self.duplicated == 0
            && self.gaps == 0
            && self.consoles_closed == 0
            && self.reloads == 0
            && self.request_failures == 0
    }

    pub fn render(&self) -> String {
        format!(
            "widget load: {} visitors' sockets open of {} ({} dropped) on {} instance(s), {} agents, {} assigned\n\
             \x20 {} messages at {}/s: delivered {}, lost {}, duplicated {}, sequence gaps {}, failed requests {}; consoles closed {}, reloads {}\n\
             \x20 visitor request → agent socket: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
             \x20 visitors' pages got {} message frames\n\
             \x20 server memory: {:.0} MB before the visitors, {:.0} MB with them idle ({:.1} KB per idle connection), {:.0} MB peak\n\
             \x20 set-up took {:.1} s\n",
            self.sockets_open,
            self.visitors,
            self.sockets_dropped,
            self.instances,
            self.agents,
            self.assigned,
            self.messages,
            self.rate,
            self.delivered,
            self.lost,
            self.duplicated,
            self.gaps,
            self.request_failures,
            self.consoles_closed,
            self.reloads,
            self.delivery_ms.p50,
            self.delivery_ms.p90,
            self.delivery_ms.p99,
            self.delivery_ms.max,
            self.visitor_frames,
            self.server_rss_mb_before,
            self.server_rss_mb_idle,
            self.kb_per_idle_connection,
            self.server_peak_rss_mb,
            self.setup_secs,
        )
    }
}

/// A fresh PostgreSQL database for the run, dropped by [`drop_database`].
async fn fresh_database(server: &str) -> anyhow::Result<(String, String)> {
    use sea_orm::ConnectionTrait as _;
    let name = format!("kefu_load_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(server)
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let _ = admin.close().await;
    let mut url = reqwest::Url::parse(server)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

async fn drop_database(server: &str, name: &str) {
    use sea_orm::ConnectionTrait as _;
    if let Ok(admin) = sea_orm::Database::connect(server).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}

pub async fn run(args: WidgetArgs, config_dir: &Path) -> anyhow::Result<WidgetReport> {
    if args.visitors == 0
        || args.agents == 0
        || args.instances == 0
        || args.per_process == 0
        || !(args.rate > 0.0 && args.duration > 0.0 && args.handoff_rate > 0.0)
    {
        bail!("--visitors, --agents, --instances, --per-process and the rates must be positive");
    }
    if args.instances > 1 && (args.postgres.is_none() || args.redis_url.is_none()) {
        bail!("more than one instance needs --postgres and --redis-url");
    }
    let started = Instant::now();
    let pg = match &args.postgres {
        Some(server) => Some((server.clone(), fresh_database(server).await?)),
        None => None,
    };
    let result = run_on(
        &args,
        config_dir,
        pg.as_ref().map(|(_, (url, _))| url.as_str()),
        started,
    )
    .await;
    if let Some((server, (_, name))) = &pg {
        // A run that lost messages keeps its database for a post-mortem.
        if result.as_ref().is_ok_and(|r| r.lost > 0) {
            eprintln!("messages were lost: database {name} kept for inspection");
        } else {
            drop_database(server, name).await;
        }
    }
    result
}

async fn run_on(
    args: &WidgetArgs,
    config_dir: &Path,
    database_url: Option<&str>,
    started: Instant,
) -> anyhow::Result<WidgetReport> {
    let super::Scratch {
        dir: tmp,
        db_url,
        settings,
        ..
    } = super::scratch("widget", database_url, config_dir)?;
    let site = settings
        .sites
        .first()
        .context("the configuration has no web site (wechat-config/sites/*.toml)")?
        .clone();

    eprintln!("seeding {} agents", args.agents);
    let per_agent = args.visitors.div_ceil(args.agents);
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let (_, mut tabs) = seed_consoles(&store, args.agents, per_agent, "kefu load widget").await?;
    store.close().await;

    // The servers, each its own process; visitors may start chats and
    // write as fast as the load needs.
    let exe = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let mut env = vec![
        (
            "KEFU__WIDGET__IP_SESSIONS_PER_MINUTE",
            "100000000".to_owned(),
        ),
        (
            "KEFU__WIDGET__VISITOR_MESSAGES_PER_MINUTE",
            "600".to_owned(),
        ),
    ];
    if let Some(r) = &args.redis_url {
        env.push(("KEFU__REDIS__URL", r.clone()));
    }
    let mut servers = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..args.instances {
        let (child, base) = start_server_with(&exe, config_dir, &db_url, &env).await?;
        hosts.push(base.trim_start_matches("http://").to_owned());
        servers.push(child);
    }
    let pids: Vec<u32> = servers.iter().filter_map(|s| s.id()).collect();
    let memory = || {
        pids.iter()
            .map(|p| memory_of(*p))
            .fold((0.0, 0.0), |(r, h), (r2, h2)| (r + r2, h + h2))
    };

    // The agents' consoles, spread over the instances.
    let seen = Arc::new(Seen {
        untimed_from: AtomicU64::new(u64::MAX),
        ..Seen::default()
    });
    let mut consoles = Vec::new();
    let share = tabs.len().div_ceil(hosts.len());
    for (chunk, host) in tabs.chunks_mut(share).zip(&hosts) {
        consoles.extend(open_all(host, chunk, &seen).await?);
    }
    eprintln!("{} agents' consoles open", consoles.len());

    // Every visitor's chat: a session on its instance.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let host_of = |v: usize| &hosts[v % hosts.len()];
    let tokens: Vec<String> = futures_util::stream::iter(0..args.visitors as usize)
        .map(|v| {
            let http = http.clone();
            let url = format!("http://{}/widget/api/session", host_of(v));
            let key = site.public_key.clone();
            async move {
                let body: serde_json::Value = http
                    .post(url)
                    .json(&json!({"key": key}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                body["visitor"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no visitor token in the session's answer")
            }
        })
        .buffered(64)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!("{} visitors' chats started", tokens.len());

    // Their sockets, in child processes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, _) = memory();
    let mut holders = Vec::new();
    for (i, chunk) in tokens.chunks(args.per_process as usize).enumerate() {
        let mut child = tokio::process::Command::new(&exe)
            .args(["load", "widget-visitors"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a visitors' process")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let mut list = String::new();
        for (j, t) in chunk.iter().enumerate() {
            let v = i * args.per_process as usize + j;
            list.push_str(&format!(
                "ws://{}/widget/api/ws?visitor={t}&after=0\n",
                host_of(v)
            ));
        }
        list.push_str("open\n");
        stdin.write_all(list.as_bytes()).await?;
        let lines = tokio::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
        holders.push((child, stdin, lines));
    }
    let mut opened = 0u64;
    for (_, _, lines) in &mut holders {
        let line = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
            .await
            .context("a visitors' process did not open its sockets in time")??
            .context("a visitors' process ended")?;
        opened += line
            .strip_prefix("open ")
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("a visitors' process said {line:?}"))?;
    }
    eprintln!("{opened} visitors' sockets open");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle, _) = memory();

    // Everyone asks for a person.
    let failures = Arc::new(AtomicU64::new(0));
    pace(
        &http,
        args.handoff_rate,
        &failures,
        (0..tokens.len()).map(|v| {
            (
                format!("http://{}/widget/api/handoff", host_of(v)),
                tokens[v].clone(),
                json!({}),
                None,
            )
        }),
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.assigned.load(Ordering::Relaxed) < u64::from(args.visitors)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assigned = seen.assigned.load(Ordering::Relaxed);
    eprintln!("{assigned} of {} visitors assigned", args.visitors);
    let setup_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;

    // The measured load: random visitors write, timed request → agent.
    let total = (args.rate * args.duration) as u64;
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let plan: Vec<(String, String, serde_json::Value, Option<u64>)> = (0..total)
        .map(|n| {
            let v = (next() % tokens.len() as u64) as usize;
            (
                format!("http://{}/widget/api/messages", host_of(v)),
                tokens[v].clone(),
                json!({"client_id": format!("m{n}"), "text": format!("我的车卖了吗 #{n}")}),
                Some(n),
            )
        })
        .collect();
    pace(&http, args.rate, &failures, plan.into_iter(), Some(&seen)).await;
    wait_delivered(&seen, total, Duration::from_secs(30)).await;
    let (_, peak) = memory();

    // The visitors' processes tell what they saw.
    let mut visitor_frames = 0;
    let mut dropped = 0;
    let mut still_open = 0;
    for (mut child, mut stdin, mut lines) in holders {
        stdin.write_all(b"stop\n").await?;
        drop(stdin);
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await
        {
            let n: Vec<u64> = line
                .strip_prefix("done ")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [frames, gone, open] = n[..] {
                visitor_frames += frames;
                dropped += gone;
                still_open += open;
            }
        }
        let _ = child.wait().await;
    }
    let got = seen
        .got
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let latency = seen
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let missing: Vec<u64> = (0..total).filter(|s| !got.contains_key(s)).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(50).map(|n| format!("m{n}")).collect();
        eprintln!("not delivered (client ids): {}", shown.join(" "));
    }
    for c in consoles {
        c.abort();
    }
    for mut s in servers {
        let _ = s.kill().await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(WidgetReport {
        instances: args.instances,
        agents: args.agents,
        visitors: args.visitors,
        sockets_open: still_open,
        sockets_dropped: dropped,
        assigned,
        rate: args.rate,
        messages: total,
        request_failures: failures.load(Ordering::Relaxed),
        delivered: (0..total).filter(|s| got.get(s) == Some(&1)).count() as u64,
        lost: (0..total).filter(|s| !got.contains_key(s)).count() as u64,
        duplicated: got.values().filter(|n| **n > 1).count() as u64,
        gaps: seen.gaps.load(Ordering::Relaxed),
        consoles_closed: seen.closed.load(Ordering::Relaxed),
        reloads: seen.reloads.load(Ordering::Relaxed),
        delivery_ms: LatencySummary::from_histogram(&latency),
        visitor_frames,
        server_rss_mb_before: before,
        server_rss_mb_idle: idle,
        server_peak_rss_mb: peak,
        kb_per_idle_connection: if opened == 0 {
            0.0
        } else {
            (idle - before) * 1024.0 / opened as f64
        },
        setup_secs,
    })
}

/// Sends visitors' requests `(url, visitor token, body, timed as)` at
/// `rate` a second; the numbered ones are timed in `seen`.
async fn pace(
    http: &reqwest::Client,
    rate: f64,
    failures: &Arc<AtomicU64>,
    plan: impl Iterator<Item = (String, String, serde_json::Value, Option<u64>)>,
    seen: Option<&Arc<Seen>>,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    for (i, (url, token, body, n)) in plan.enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        if let (Some(seen), Some(n)) = (seen, n)
            && let Ok(mut m) = seen.sent.lock()
        {
            m.insert(n, Instant::now());
        }
        let req = http
            .post(url)
            .header("authorization", format!("Visitor {token}"))
            .json(&body);
        let failures = failures.clone();
        inflight.spawn(async move {
            let ok = match req.send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            if !ok {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// The visitors' process: opens the sockets it is given, says
/// `open {opened} {failed}`, holds them counting message frames, and on
/// `stop` (or the end of its input) says `done {frames} {dropped} {open}`.
pub async fn hold_visitors(args: VisitorsArgs) -> anyhow::Result<()> {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut urls = Vec::new();
    while let Some(line) = input.next_line().await? {
        if line == "open" {
            break;
        }
        urls.push(line);
    }
    let frames = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let results: Vec<bool> = futures_util::stream::iter(urls)
        .map(|url| {
            let frames = frames.clone();
            let dropped = dropped.clone();
            let mut stop = stop_rx.clone();
            async move {
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
                    return false;
                };
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            f = ws.next() => match f {
                                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                                    if t.starts_with("{\"message\"") || t.contains("\"type\":\"message\"") {
                                        frames.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Some(Ok(_)) => {}
                                _ => {
                                    dropped.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    }
                    let _ = ws.close(None).await;
                });
                true
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let opened = results.iter().filter(|ok| **ok).count() as u64;
    println!("open {opened} {}", results.len() as u64 - opened);
    // Hold until told to stop.
    while let Ok(Some(line)) = input.next_line().await {
        if line == "stop" {
            break;
        }
    }
    let gone = dropped.load(Ordering::Relaxed);
    println!(
        "done {} {gone} {}",
        frames.load(Ordering::Relaxed),
        opened.saturating_sub(gone)
    );
    let _ = stop_tx.send(true);
    Ok(())
}
