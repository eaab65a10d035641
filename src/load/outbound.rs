//! `kefu load outbound`: agent replies accepted into the outbox and
//! delivered to WeChat, measured end to end.
//!
//! The tool runs, in one process, a Kefu built with the production
//! [`Application::build`](crate::startup::Application::build) on a fresh
//! database, and a small stand-in for WeChat's API (token endpoints and
//! `message/custom/send`) on 127.0.0.1. It accepts replies at a fixed rate
//! through [`Outbox::send`](crate::conversation::outbox::Outbox::send) and
//! measures, for each, the time from acceptance (stored, status `queued`)
//! to its arrival at the stand-in. It also counts token calls: one per token
//! lifetime is expected.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use std::sync::Mutex;

use super::stats::{Histogram, LatencySummary};
use crate::config::{EnvSnapshot, Secret, Settings};
use crate::conversation::outbox::{OutboundRequest, Speaker};
use crate::ids::AgentId;
use crate::startup::Application;
use crate::wechat::api::OutboundContent;

/// `kefu load outbound …`
#[derive(Debug, Clone, Args)]
pub struct OutboundArgs {
    /// Replies accepted per second.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Distinct customers the replies go to.
    #[arg(long, default_value_t = 1000)]
    pub customers: u32,
    /// Database of the Kefu under test [default: a fresh SQLite file in a
    /// temporary folder].
    #[arg(long)]
    pub database: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the stand-in for WeChat saw.
#[derive(Default)]
struct Seen {
    token_calls: AtomicU64,
    sends: AtomicU64,
    bad_token: AtomicU64,
    /// Arrival time of each sequence number.
    arrivals: Mutex<Vec<Option<Instant>>>,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct OutboundReport {
    pub accepted: u64,
    pub delivered: u64,
    pub not_accepted: u64,
    pub duration_secs: f64,
    pub accepted_per_sec: f64,
    pub delivered_per_sec: f64,
    /// Acceptance (stored, queued) to arrival at WeChat, in ms.
    pub latency_ms: LatencySummary,
    pub token_calls: u64,
    pub rejected_tokens: u64,
}

impl OutboundReport {
    pub fn render(&self) -> String {
        let l = &self.latency_ms;
        format!(
            "Kefu outbox → WeChat\n\
             \x20 accepted     {} ({} not accepted)\n\
             \x20 delivered    {}\n\
             \x20 duration     {:.2} s\n\
             \x20 rate         {:.1} accepted/s, {:.1} delivered/s\n\
             \x20 latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (accept → delivered)\n\
             \x20 tokens       {} token call(s), {} request(s) with a rejected token\n",
            self.accepted,
            self.not_accepted,
            self.delivered,
            self.duration_secs,
            self.accepted_per_sec,
            self.delivered_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            self.token_calls,
            self.rejected_tokens
        )
    }
}

async fn token(seen: web::Data<Arc<Seen>>) -> HttpResponse {
    let n = seen.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Ok()
        .json(serde_json::json!({"access_token": format!("load-token-{n}"), "expires_in": 7200}))
}

async fn custom_send(
    seen: web::Data<Arc<Seen>>,
    q: web::Query<std::collections::HashMap<String, String>>,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    let now = Instant::now();
    let current = format!("load-token-{}", seen.token_calls.load(Ordering::SeqCst));
    if q.get("access_token") != Some(&current) {
        seen.bad_token.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::Ok()
            .json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    seen.sends.fetch_add(1, Ordering::Relaxed);
    let seq = body["text"]["content"]
        .as_str()
        .and_then(|c| c.strip_prefix("load "))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(seq) = seq
        && let Ok(mut arrivals) = seen.arrivals.lock()
        && let Some(slot) = arrivals.get_mut(seq)
    {
        slot.get_or_insert(now);
    }
    HttpResponse::Ok().json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
}

/// Runs the measurement.
pub async fn run(args: OutboundArgs, config_dir: &Path) -> anyhow::Result<OutboundReport> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(args.rate) || !positive(args.duration) {
        bail!("--rate and --duration must be positive");
    }
    if args.customers == 0 {
        bail!("--customers must be at least 1");
    }
    let total = (args.rate * args.duration).ceil() as usize;
    let seen = Arc::new(Seen {
        arrivals: Mutex::new(vec![None; total]),
        ..Default::default()
    });

    // The stand-in for WeChat.
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the fake WeChat API")?;
    let fake_addr = listener.local_addr()?;
    let data = web::Data::new(seen.clone());
    let fake = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/cgi-bin/stable_token", web::post().to(token))
            .route("/cgi-bin/token", web::get().to(token))
            .route("/cgi-bin/message/custom/send", web::post().to(custom_send))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let fake_handle = fake.handle();
    tokio::spawn(fake);

    // Kefu, as production builds it.
    let tmp = std::env::temp_dir().join(format!("kefu-load-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp)?;
    let base = format!("http://{fake_addr}");
    // KEFU__* variables tune the Kefu under test, as they would a server.
    let env = EnvSnapshot::from_process()
        .with("KEFU_WECHAT_API_BASE", base.as_str())
        .with("KEFU_WECOM_API_BASE", base.as_str());
    let mut settings = Settings::load_with_env(config_dir, &env)
        .map_err(|e| anyhow::anyhow!("configuration problems (run `kefu check-config`):\n{e}"))?;
    settings.server.port = 0;
    settings.metrics.enabled = false;
    settings.redis.url = Secret::new("");
    settings.media.dir = tmp.join("media");
    settings.database.url = Secret::new(
        args.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/kefu.db?mode=rwc", tmp.display())),
    );
    let account = super::official_account(&settings)?.id.clone();
    let app = Application::build(settings)
        .await
        .context("Kefu did not start")?;
    let outbox = app.state().outbox.clone();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    // Open loop at the given rate.
    let accepted_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let not_accepted = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for seq in 0..total {
        let due = start + interval.mul_f64(seq as f64);
        tokio::time::sleep_until(due.into()).await;
        let outbox = outbox.clone();
        let accepted_at = accepted_at.clone();
        let not_accepted = not_accepted.clone();
        let req = OutboundRequest {
            account: account.clone(),
            recipient: format!("oLOADCUSTOMER{:015}", seq as u32 % args.customers),
            content: OutboundContent::Text {
                content: format!("load {seq}"),
            },
            speaker: Speaker::Agent {
                id: AgentId(1),
                login: "load".into(),
            },
            open_kfid: None,
            idempotency_key: None,
            media: None,
        };
        tasks.spawn(async move {
            match outbox.send(req, Duration::from_secs(5)).await {
                Ok(_) => {
                    if let Ok(mut a) = accepted_at.lock() {
                        a[seq] = Some(Instant::now());
                    }
                }
                Err(_) => {
                    not_accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let load_time = start.elapsed();

    // Wait for the deliveries (at most 30 s more).
    let deadline = Instant::now() + Duration::from_secs(30);
    let accepted = total as u64 - not_accepted.load(Ordering::Relaxed);
    while seen.sends.load(Ordering::Relaxed) < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut hist = Histogram::new();
    let mut delivered = 0;
    let mut last_arrival = start;
    {
        let acc = accepted_at
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let arr = seen
            .arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (a, d) in acc.iter().zip(arr.iter()) {
            if let (Some(a), Some(d)) = (a, d) {
                delivered += 1;
                hist.record_duration(d.saturating_duration_since(*a));
                last_arrival = last_arrival.max(*d);
            }
        }
    }
    handle.stop().await;
    let _ = server.await;
    fake_handle.stop(true).await;
    let _ = std::fs::remove_dir_all(&tmp);

    let span = last_arrival
        .saturating_duration_since(start)
        .max(load_time)
        .as_secs_f64();
    Ok(OutboundReport {
        accepted,
        delivered,
        not_accepted: not_accepted.load(Ordering::Relaxed),
        duration_secs: load_time.as_secs_f64(),
        accepted_per_sec: accepted as f64 / load_time.as_secs_f64(),
        delivered_per_sec: delivered as f64 / span,
        latency_ms: LatencySummary::from_histogram(&hist),
        token_calls: seen.token_calls.load(Ordering::SeqCst),
        rejected_tokens: seen.bad_token.load(Ordering::Relaxed),
    })
}

/// Whether a run met its own expectations: everything accepted was
/// delivered, with one token.
pub fn all_ok(r: &OutboundReport) -> bool {
    r.not_accepted == 0 && r.delivered == r.accepted && r.token_calls == 1 && r.rejected_tokens == 0
}
