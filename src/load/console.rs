//! `kefu load console`: thousands of agents' consoles on their WebSockets,
//! customers writing through the real callback, and a reconnect storm.
//!
//! 1. Seeds a fresh database (a temporary SQLite file, or
//!    `--database-url`): `--agents` idle agents, `--per-agent` customers
//!    bound to each, and a session per agent; then starts `kefu serve` on it
//!    as a child process (so its memory is its own).
//! 2. Opens one WebSocket per agent (`/api/ws`, the session cookie), and
//!    has every customer ask for a person: each conversation is assigned to
//!    its customer's dedicated agent.
//! 3. Customers write at `--rate` messages a second for `--duration`
//!    seconds through signed, encrypted Official Account callbacks; each
//!    message is timed from the moment its callback is sent to the moment
//!    its agent's socket receives it.
//! 4. Every socket is closed at once; customers write `--storm-messages`
//!    more; every agent reconnects at once with the last sequence it saw,
//!    and must receive exactly what it missed.
//!
//! Checked: every message reached its agent exactly once, each agent's
//! sequence had no gap, the server's memory (VmRSS and its peak VmHWM).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::callbacks::{CallbackSpec, Generator, follower_openid};
use super::stats::{Histogram, LatencySummary};
use crate::ids::AccountId;
use crate::routing::AgentStatus;
use crate::store::Store;
use crate::store::bulk::{SeedAgent, SeedCustomer};
use crate::store::sessions::NewSession;
use crate::wechat::crypto::MsgCrypt;

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    #[arg(long, default_value_t = 2_000)]
    pub agents: u32,
    /// Customers (open conversations) per agent.
    #[arg(long, default_value_t = 10)]
    pub per_agent: u32,
    /// Customer messages per second.
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Messages sent while every socket is closed.
    #[arg(long, default_value_t = 1_000)]
    pub storm_messages: u32,
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// The `kefu` binary to serve with [default: this one].
    #[arg(long, hide = true)]
    pub server_bin: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsoleReport {
    pub agents: u32,
    pub conversations: u64,
    pub assigned: u64,
    pub rate: f64,
    pub messages: u64,
    pub callback_failures: u64,
    /// Messages that reached their agent's socket, once.
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Sequence gaps seen by the sockets (must be 0).
    pub gaps: u64,
    pub delivery_ms: LatencySummary,
    pub server_rss_mb: f64,
    pub server_peak_rss_mb: f64,
    pub storm_messages: u64,
    pub storm_reconnected: u64,
    pub storm_reloads: u64,
    pub storm_delivered: u64,
    pub storm_secs: f64,
}

impl ConsoleReport {
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.gaps == 0
            && self.callback_failures == 0
            && self.storm_delivered == self.storm_messages
            && self.storm_reloads == 0
    }

    pub fn render(&self) -> String {
        format!(
            "console load: {} agents on their sockets, {} conversations ({} assigned)\n\
             \x20 {} messages at {}/s: delivered {}, lost {}, duplicated {}, sequence gaps {}, failed callbacks {}\n\
             \x20 callback → agent socket: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
             \x20 server memory: {:.0} MB now, {:.0} MB peak\n\
             \x20 reconnect storm: {} sockets back in {:.2} s, {} reloads; {} of {} missed messages delivered\n",
            self.agents,
            self.conversations,
            self.assigned,
            self.messages,
            self.rate,
            self.delivered,
            self.lost,
            self.duplicated,
            self.gaps,
            self.callback_failures,
            self.delivery_ms.p50,
            self.delivery_ms.p90,
            self.delivery_ms.p99,
            self.delivery_ms.max,
            self.server_rss_mb,
            self.server_peak_rss_mb,
            self.storm_reconnected,
            self.storm_secs,
            self.storm_reloads,
            self.storm_delivered,
            self.storm_messages,
        )
    }
}

/// What every socket task shares.
#[derive(Default)]
pub(super) struct Seen {
    /// Message seq → when it was sent.
    pub(super) sent: Mutex<HashMap<u64, Instant>>,
    /// Message seq → how many times a socket got it.
    pub(super) got: Mutex<HashMap<u64, u32>>,
    pub(super) latency: Mutex<Histogram>,
    pub(super) gaps: AtomicU64,
    pub(super) reloads: AtomicU64,
    pub(super) assigned: AtomicU64,
    /// Sockets the server closed (not stopped by the tool).
    pub(super) closed: AtomicU64,
    /// Messages numbered at or above this are not timed (the storm's wait
    /// on purpose).
    pub(super) untimed_from: AtomicU64,
}

/// One agent's console.
pub(super) struct Tab {
    pub(super) cookie: String,
    pub(super) last_seq: u64,
    pub(super) epoch: Option<String>,
}

pub async fn run(args: ConsoleArgs, config_dir: &Path) -> anyhow::Result<ConsoleReport> {
    if args.agents == 0 || args.per_agent == 0 || !(args.rate > 0.0 && args.duration > 0.0) {
        bail!("--agents, --per-agent, --rate and --duration must be positive");
    }
    let super::Scratch {
        dir: tmp,
        db_url,
        settings,
        ..
    } = super::scratch("console", args.database_url.as_deref(), config_dir)?;
    let account = super::official_account(&settings)?.clone();
    let crypt = MsgCrypt::new(
        account.token.expose(),
        account
            .encoding_aes_key
            .as_ref()
            .context("the Official Account has no encoding_aes_key")?
            .expose(),
        &account.app_id,
    )?;

    // The company, seeded.
    eprintln!(
        "seeding {} agents and {} customers",
        args.agents,
        args.agents * args.per_agent
    );
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let (agents, mut tabs) =
        seed_consoles(&store, args.agents, args.per_agent, "kefu load console").await?;
    let customers = args.agents * args.per_agent;
    store
        .seed_customers(
            &AccountId::parse(account.id.as_str())?,
            &(0..customers)
                .map(|i| SeedCustomer {
                    open_id: follower_openid(i),
                    dedicated_agent: Some(agents[(i / args.per_agent) as usize]),
                    group: None,
                    region: None,
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    store.close().await;

    // The server, as its own process.
    let exe = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let (mut server, base) = start_server(&exe, config_dir, &db_url).await?;
    let pid = server.id().context("the server has no pid")?;
    let seen = Arc::new(Seen {
        untimed_from: AtomicU64::new(u64::MAX),
        ..Seen::default()
    });
    let host = base.trim_start_matches("http://").to_owned();

    let sockets = open_all(&host, &mut tabs, &seen).await?;
    eprintln!("{} sockets open", sockets.len());

    let spec = Arc::new(CallbackSpec::new(
        crypt,
        super::callback_url(&base, account.id.as_str())?,
        "gh_load".into(),
        customers,
        0.0,
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()?;
    // Everyone asks for a person: their dedicated agent takes them.
    let failures = Arc::new(AtomicU64::new(0));
    let mut seq_base = 1_000_000_000u64;
    send_at(
        &http,
        &spec,
        &failures,
        None,
        (0..customers).map(|c| (c, "转人工")),
        args.rate.max(500.0),
        &mut seq_base,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.assigned.load(Ordering::Relaxed) < u64::from(customers) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assigned = seen.assigned.load(Ordering::Relaxed);
    eprintln!("{assigned} of {customers} conversations assigned");

    // The measured load: random customers, timed callback → socket.
    let total = (args.rate * args.duration) as u64;
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let plan: Vec<(u32, &str)> = (0..total)
        .map(|_| ((next() % u64::from(customers)) as u32, "我的车卖了吗"))
        .collect();
    let mut seq = 0u64;
    send_at(
        &http,
        &spec,
        &failures,
        Some(&seen),
        plan.into_iter(),
        args.rate,
        &mut seq,
    )
    .await;
    wait_delivered(&seen, total, Duration::from_secs(30)).await;
    let (rss, peak) = memory_of(pid);

    // The reconnect storm.
    let last: Vec<(u64, Option<String>)> = sockets
        .into_iter()
        .map(stop_socket)
        .collect::<futures_util::future::JoinAll<_>>()
        .await;
    for (tab, (seq_seen, epoch)) in tabs.iter_mut().zip(last) {
        tab.last_seq = seq_seen;
        tab.epoch = epoch;
    }
    let storm_first = seq;
    seen.untimed_from.store(storm_first, Ordering::Relaxed);
    let storm: Vec<(u32, &str)> = (0..args.storm_messages)
        .map(|_| ((next() % u64::from(customers)) as u32, "断线时的消息"))
        .collect();
    send_at(
        &http,
        &spec,
        &failures,
        Some(&seen),
        storm.into_iter(),
        args.rate,
        &mut seq,
    )
    .await;
    // Filed before anyone is back (the server's events are asynchronous).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let storm_started = Instant::now();
    let back = open_all(&host, &mut tabs, &seen).await?;
    let reconnected = back.len() as u64;
    wait_delivered(&seen, seq, Duration::from_secs(60)).await;
    let storm_secs = storm_started.elapsed().as_secs_f64();
    let got = seen
        .got
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let storm_delivered = (storm_first..seq)
        .filter(|s| got.get(s) == Some(&1))
        .count() as u64;
    let delivered = (0..total).filter(|s| got.get(s) == Some(&1)).count() as u64;
    let duplicated = got.values().filter(|n| **n > 1).count() as u64;
    let (rss2, peak2) = memory_of(pid);
    for s in back {
        s.abort();
    }
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&tmp);
    let latency = seen
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    Ok(ConsoleReport {
        agents: args.agents,
        conversations: u64::from(customers),
        assigned,
        rate: args.rate,
        messages: total,
        callback_failures: failures.load(Ordering::Relaxed),
        delivered,
        lost: (0..total).filter(|s| !got.contains_key(s)).count() as u64,
        duplicated,
        gaps: seen.gaps.load(Ordering::Relaxed),
        delivery_ms: LatencySummary::from_histogram(&latency),
        server_rss_mb: rss.max(rss2),
        server_peak_rss_mb: peak.max(peak2),
        storm_messages: u64::from(args.storm_messages),
        storm_reconnected: reconnected,
        storm_reloads: seen.reloads.load(Ordering::Relaxed),
        storm_delivered,
        storm_secs,
    })
}

/// Seeds `n` idle agents with room for `capacity` conversations each, and
/// a signed-in console (session cookie) for each.
pub(super) async fn seed_consoles(
    store: &Store,
    n: u32,
    capacity: u32,
    user_agent: &str,
) -> anyhow::Result<(Vec<crate::ids::AgentId>, Vec<Tab>)> {
    let agents = store
        .seed_agents(
            &(0..n)
                .map(|i| SeedAgent {
                    login: format!("load{i}"),
                    name: format!("客服{i}"),
                    capacity,
                    status: AgentStatus::Idle,
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut tabs = Vec::with_capacity(agents.len());
    let now = chrono::Utc::now();
    for a in &agents {
        let token = crate::auth::token::generate();
        store
            .insert_session(&NewSession {
                id: &crate::auth::token::digest(&token),
                agent_id: *a,
                csrf_token: "load",
                now,
                expires_at: now + chrono::TimeDelta::hours(12),
                ip: None,
                user_agent: Some(user_agent),
            })
            .await?;
        tabs.push(Tab {
            cookie: format!("kefu_session={token}"),
            last_seq: 0,
            epoch: None,
        });
    }
    Ok((agents, tabs))
}

/// `kefu serve` on the seeded database; its address from the banner.
pub(crate) async fn start_server(
    exe: &Path,
    config_dir: &Path,
    db_url: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    start_server_with(exe, config_dir, db_url, &[]).await
}

/// [`start_server`] with more environment (`KEFU__…` settings).
pub(crate) async fn start_server_with(
    exe: &Path,
    config_dir: &Path,
    db_url: &str,
    env: &[(&str, String)],
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(exe)
        .arg("--config")
        .arg(config_dir)
        .arg("serve")
        .env("KEFU__DATABASE__URL", db_url)
        .env("KEFU__SERVER__PORT", "0")
        .env("KEFU__METRICS__ENABLED", "false")
        .env("KEFU__OUTBOX__ENABLED", "false")
        .env("KEFU__MEDIA__DOWNLOAD_ENABLED", "false")
        .env("KEFU__LOG__LEVEL", "warn")
        .env("KEFU__ROUTING__AGENT_REPLY_TIMEOUT_MINS", "0")
        .env("KEFU__ROUTING__PRESENCE_GRACE_SECS", "86400")
        .env("KEFU_WECHAT_API_BASE", "http://127.0.0.1:9")
        .env("KEFU_WECOM_API_BASE", "http://127.0.0.1:9")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start kefu serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split(" listening on ").nth(1) {
                return Some(rest.trim().to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the server did not say where it listens")?;
    // Keep reading its output so it never blocks on a full pipe; its
    // warnings and errors are the tool's too.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("server: {line}");
            }
        }
    });
    Ok((child, format!("http://{addr}")))
}

/// VmRSS and VmHWM of a process, in MB.
pub(crate) fn memory_of(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A running socket: stop it to learn the last sequence and epoch it saw.
pub(super) struct Socket {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(u64, Option<String>)>,
}

impl Socket {
    pub(super) fn abort(self) {
        self.task.abort();
    }
}

async fn stop_socket(s: Socket) -> (u64, Option<String>) {
    let _ = s.stop.send(());
    s.task.await.unwrap_or((0, None))
}

/// Opens every tab's socket at once (resuming where it was) and waits for
/// each welcome.
pub(super) async fn open_all(
    host: &str,
    tabs: &mut [Tab],
    seen: &Arc<Seen>,
) -> anyhow::Result<Vec<Socket>> {
    let mut opening = tokio::task::JoinSet::new();
    for (i, tab) in tabs.iter().enumerate() {
        let url = format!("ws://{host}/api/ws");
        let cookie = tab.cookie.clone();
        let origin = format!("http://{host}");
        let hello = match &tab.epoch {
            Some(e) => json!({"type": "hello", "last_seq": tab.last_seq, "epoch": e}),
            None => json!({"type": "hello"}),
        };
        let start_seq = tab.last_seq;
        let seen = seen.clone();
        opening.spawn(async move {
            let mut req = url.into_client_request()?;
            req.headers_mut().insert("cookie", cookie.parse()?);
            req.headers_mut().insert("origin", origin.parse()?);
            let mut last = None;
            for attempt in 0..5 {
                match tokio_tungstenite::connect_async(req.clone()).await {
                    Ok((ws, _)) => {
                        last = Some(ws);
                        break;
                    }
                    Err(e) if attempt == 4 => return Err(anyhow::anyhow!("socket {i}: {e}")),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
                }
            }
            let mut ws = last.context("no socket")?;
            ws.send(Message::Text(hello.to_string().into())).await?;
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let (welcomed_tx, welcomed_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(follow(ws, start_seq, seen, stopped, welcomed_tx));
            welcomed_rx
                .await
                .map_err(|_| anyhow::anyhow!("socket {i}: no welcome"))?;
            anyhow::Ok((i, Socket { stop, task }))
        });
    }
    let mut out: Vec<Option<Socket>> = (0..tabs.len()).map(|_| None).collect();
    while let Some(r) = opening.join_next().await {
        let (i, s) = r??;
        out[i] = Some(s);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Reads one socket: checks its sequence, times and counts the messages.
async fn follow(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    mut last_seq: u64,
    seen: Arc<Seen>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    welcomed: tokio::sync::oneshot::Sender<()>,
) -> (u64, Option<String>) {
    let mut welcomed = Some(welcomed);
    let mut epoch = None;
    loop {
        let frame = tokio::select! {
            _ = &mut stop => break,
            f = ws.next() => f,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            if matches!(frame, Some(Ok(_))) {
                continue;
            }
            seen.closed.fetch_add(1, Ordering::Relaxed);
            break;
        };
        let now = Instant::now();
        let Ok(f) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match f["type"].as_str() {
            Some("welcome") => {
                epoch = f["epoch"].as_str().map(str::to_owned);
                if last_seq == 0 {
                    last_seq = f["seq"].as_u64().unwrap_or(0);
                }
                if let Some(w) = welcomed.take() {
                    let _ = w.send(());
                }
            }
            Some("reload") => {
                seen.reloads.fetch_add(1, Ordering::Relaxed);
                epoch = f["epoch"].as_str().map(str::to_owned);
                last_seq = f["seq"].as_u64().unwrap_or(0);
                if let Some(w) = welcomed.take() {
                    let _ = w.send(());
                }
            }
            Some("event") => {
                let s = f["seq"].as_u64().unwrap_or(0);
                if s != last_seq + 1 {
                    seen.gaps.fetch_add(1, Ordering::Relaxed);
                }
                last_seq = s;
                let ev = &f["event"];
                match ev["type"].as_str() {
                    Some("message_filed") if ev["message"]["direction"] == "in" => {
                        let content = ev["message"]["content"].as_str().unwrap_or_default();
                        if let Some(n) = content
                            .rsplit('#')
                            .next()
                            .and_then(|n| n.trim().parse::<u64>().ok())
                            && n < 1_000_000_000
                        {
                            if let Ok(mut got) = seen.got.lock() {
                                *got.entry(n).or_default() += 1;
                            }
                            let timed = n < seen.untimed_from.load(Ordering::Relaxed);
                            let t0 = seen
                                .sent
                                .lock()
                                .ok()
                                .and_then(|m| m.get(&n).copied())
                                .filter(|_| timed);
                            if let (Some(t0), Ok(mut h)) = (t0, seen.latency.lock()) {
                                h.record_duration(now.saturating_duration_since(t0));
                            }
                        }
                    }
                    Some("conversation_changed") if ev["state"] == "assigned" => {
                        seen.assigned.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    (last_seq, epoch)
}

/// Sends `(customer, text)` callbacks at `rate` a second, numbering them
/// from `seq`; when `seen` is given, each is timed.
async fn send_at<'a>(
    http: &reqwest::Client,
    spec: &Arc<CallbackSpec>,
    failures: &Arc<AtomicU64>,
    seen: Option<&Arc<Seen>>,
    plan: impl Iterator<Item = (u32, &'a str)>,
    rate: f64,
    seq: &mut u64,
) {
    let mut generator = Generator::new(spec.clone(), *seq);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    for (i, (customer, text)) in plan.enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let n = *seq;
        *seq += 1;
        let cb = generator.message(n, customer, text);
        if let Some(seen) = seen
            && let Ok(mut m) = seen.sent.lock()
        {
            m.insert(n, Instant::now());
        }
        let http = http.clone();
        let failures = failures.clone();
        inflight.spawn(async move {
            let ok = match http.post(cb.url).body(cb.body).send().await {
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

/// Waits until messages `0..n` (the timed ones) all arrived, or the time is up.
pub(super) async fn wait_delivered(seen: &Seen, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let done = seen.got.lock().map(|g| g.len() as u64 >= n).unwrap_or(true);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_of_this_process_is_read() {
        let (rss, peak) = super::memory_of(std::process::id());
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
    }
}
