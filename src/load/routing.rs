//! `kefu load routing`: routing at scale, measured and checked.
//!
//! In one process, on a fresh database (a temporary SQLite file, or
//! `--database-url`), the tool seeds a company — agents in city groups with
//! a region map, customers bound to a dedicated agent, or known by their
//! CRM group, their region (mapped or not) or nothing — and runs Kefu's own
//! parts on it: the group-commit [`Ingestor`], the [`Pipeline`] (its
//! batches, as the server's worker takes them), the in-memory [`Router`],
//! the queue [`Drainer`] and the [`Presence`] service with its
//! reconciliation. Then, for `--duration` seconds, customers write at
//! `--rate` messages a second (a `--human-share` of them ask for a person),
//! agents close their conversations after a while (exponential, mean
//! `--hold` seconds) and a few agents change presence every second.
//!
//! It reports the routing decision's latency (the router's lock and policy),
//! each message's handling from the moment it was handed to the ingestor
//! until its batch was applied, and what routing did. At the end, with the
//! load stopped, the router reconciled and the queue drained, it checks the
//! transition record: every transition starts where the one before it ended
//! (no conversation moved by two workers at once, so none assigned twice),
//! replayed in order no agent ever held more than their capacity, and no
//! conversation waits while an agent who could take it is available. The
//! exit code is 1 when an invariant fails.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, watch};

use super::stats::{Histogram, LatencySummary};
use crate::bus::{Bus, Event, MemoryBus};
use crate::channels::Channels;
use crate::config::{EnvSnapshot, Secret, Settings};
use crate::conversation::ingest::Ingestor;
use crate::conversation::outbox::Outbox;
use crate::conversation::pipeline::{Handled, Pipeline};
use crate::conversation::state::{CloseReason, Trigger};
use crate::ids::{AccountId, AgentId, ConversationId, GroupId};
use crate::routing::presence::Presence;
use crate::routing::queue::Drainer;
use crate::routing::{AgentStatus, OpenScopes, Router};
use crate::store::Store;
use crate::store::bulk::{SeedAgent, SeedCustomer};
use crate::store::messages::{Channel, Direction, Inserted, NewInbound};
use crate::workers::Workers;

/// City names for the groups (and their regions); more groups are numbered.
const CITIES: [&str; 20] = [
    "上海", "北京", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "天津", "苏州",
    "长沙", "郑州", "青岛", "沈阳", "厦门", "福州", "合肥", "昆明",
];
/// A region no group serves (its customers go to anyone available).
const UNMAPPED_REGION: &str = "拉萨";
/// Messages taken from the bus at once, as the pipeline's worker does.
const BATCH: usize = 256;
/// How long the handling may lag behind the load before the run gives up
/// waiting for it.
const CATCH_UP: Duration = Duration::from_secs(120);
/// Timeout of one message's commit.
const INGEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Transitions read at once when replaying the record.
const REPLAY_PAGE: u64 = 20_000;
/// Invariant failures described in the report, at most.
const EXAMPLES: usize = 10;

/// `kefu load routing …`
#[derive(Debug, Clone, Args)]
pub struct RoutingArgs {
    /// Agents to seed.
    #[arg(long, default_value_t = 2000)]
    pub agents: u32,
    /// City groups the agents are spread over (each with its region).
    #[arg(long, default_value_t = 20)]
    pub groups: u32,
    /// Customers to seed.
    #[arg(long, default_value_t = 20_000)]
    pub customers: u32,
    /// Inbound messages per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Percentage of messages that ask for a person ("转人工").
    #[arg(long, default_value_t = 10.0)]
    pub human_share: f64,
    /// Percentage of customers bound to a dedicated agent.
    #[arg(long, default_value_t = 30.0)]
    pub dedicated_share: f64,
    /// Percentage of agents idle at the start; of the others, two thirds
    /// are busy (customers queue for them) and one third offline.
    #[arg(long, default_value_t = 4.0)]
    pub idle_share: f64,
    /// Conversations each agent may hold at once (few, with few agents
    /// idle: the groups fill up and the queue works).
    #[arg(long, default_value_t = 2)]
    pub capacity: u32,
    /// Mean seconds an agent keeps a conversation before closing it.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Agents changing presence (idle ↔ busy) per second.
    #[arg(long, default_value_t = 5.0)]
    pub presence_rate: f64,
    /// Database to run on, which must be empty [default: a fresh SQLite
    /// file in a temporary folder].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Seed of the random choices (customers, shares, hold times).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Default for RoutingArgs {
    /// The command line's defaults.
    fn default() -> Self {
        Self {
            agents: 2000,
            groups: 20,
            customers: 20_000,
            rate: 1000.0,
            duration: 10.0,
            human_share: 10.0,
            dedicated_share: 30.0,
            idle_share: 4.0,
            capacity: 2,
            hold: 3.0,
            presence_rate: 5.0,
            database_url: None,
            seed: 1,
            json: false,
        }
    }
}

impl RoutingArgs {
    fn check(&self) -> anyhow::Result<()> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let share = |x: f64| (0.0..=100.0).contains(&x);
        if !positive(self.rate) || !positive(self.duration) || !positive(self.hold) {
            bail!("--rate, --duration and --hold must be positive");
        }
        if !self.presence_rate.is_finite() || self.presence_rate < 0.0 {
            bail!("--presence-rate must be 0 or more");
        }
        if !share(self.human_share) || !share(self.dedicated_share) || !share(self.idle_share) {
            bail!("--human-share, --dedicated-share and --idle-share are percentages (0 to 100)");
        }
        if self.agents == 0 || self.groups == 0 || self.customers == 0 || self.capacity == 0 {
            bail!("--agents, --groups, --customers and --capacity must be at least 1");
        }
        if self.groups > self.agents {
            bail!("--groups must not exceed --agents (every group needs an agent)");
        }
        Ok(())
    }
}

/// What the invariants found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Invariants {
    pub transitions_replayed: u64,
    pub conversations: u64,
    /// Transitions that do not start where the conversation's previous one
    /// ended: two workers moved it at once.
    pub broken_chains: u64,
    /// Assignments that took an agent above their capacity, replayed in the
    /// order they were stored.
    pub over_capacity: u64,
    /// Conversations left waiting, after the final drain, while an agent
    /// who could take them was available.
    pub queued_with_free_agent: u64,
    /// Conversations left in `queued` without a place in a queue once all
    /// routing was done (no drain would ever take them).
    pub stranded: u64,
    /// A few of the failures, described.
    pub examples: Vec<String>,
}

impl Invariants {
    pub fn ok(&self) -> bool {
        self.broken_chains == 0
            && self.over_capacity == 0
            && self.queued_with_free_agent == 0
            && self.stranded == 0
    }

    fn fail(&mut self, what: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingReport {
    pub agents: u32,
    pub groups: u32,
    pub customers: u32,
    /// Messages stored (handed to the ingestor and committed).
    pub messages: u64,
    pub not_accepted: u64,
    /// Of them, requests for a person.
    pub human_requests: u64,
    pub duration_secs: f64,
    pub messages_per_sec: f64,
    /// Messages applied by the pipeline (in batches, or by a catch-up
    /// sweep after the bus lagged).
    pub handled: u64,
    /// Messages applied per second, from the first sent until the last
    /// applied: what the pipeline sustains when below the rate.
    pub handled_per_sec: f64,
    pub swept: u64,
    /// Times the bus dropped events for the handler (then it swept).
    pub bus_lags: u64,
    /// Routing decisions taken, and their time in microseconds.
    pub decisions: u64,
    pub decision_us: LatencySummary,
    /// From the hand-over to the ingestor until the message's batch was
    /// applied, in milliseconds.
    pub handling_ms: LatencySummary,
    /// Transitions to `assigned` (first assignments, drains, re-routes).
    pub assignments: u64,
    /// "No agent free: queued" records.
    pub queued: u64,
    pub closes: u64,
    pub presence_changes: u64,
    pub drains: u64,
    /// Waiting at the end (their groups' agents all busy, off or full).
    pub left_waiting: u64,
    pub invariants: Invariants,
}

impl RoutingReport {
    pub fn render(&self) -> String {
        let d = &self.decision_us;
        let h = &self.handling_ms;
        let i = &self.invariants;
        let verdict = if i.ok() {
            "OK".to_owned()
        } else {
            format!(
                "FAILED: {} broken chain(s), {} assignment(s) above capacity, {} left waiting beside a free agent, {} stranded\n{}",
                i.broken_chains,
                i.over_capacity,
                i.queued_with_free_agent,
                i.stranded,
                i.examples
                    .iter()
                    .map(|e| format!("    {e}\n"))
                    .collect::<String>()
            )
        };
        format!(
            "Kefu routing: {} agents in {} groups, {} customers\n\
             \x20 messages     {} stored ({} not accepted) in {:.2} s: {:.1}/s; {} asked for a person\n\
             \x20 handled      {} in {:.2} s: {:.1}/s ({} by catch-up sweeps after {} bus lags)\n\
             \x20 decision µs  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} decisions)\n\
             \x20 handling ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (ingest → applied)\n\
             \x20 routing      {} assignments, {} queued, {} closes, {} presence changes, {} drains\n\
             \x20 at the end   {} waiting\n\
             \x20 invariants   {} ({} transitions of {} conversations replayed)\n",
            self.agents,
            self.groups,
            self.customers,
            self.messages,
            self.not_accepted,
            self.duration_secs,
            self.messages_per_sec,
            self.human_requests,
            self.handled,
            self.handled as f64 / self.handled_per_sec.max(f64::MIN_POSITIVE),
            self.handled_per_sec,
            self.swept,
            self.bus_lags,
            d.p50,
            d.p90,
            d.p99,
            d.p999,
            d.max,
            self.decisions,
            h.p50,
            h.p90,
            h.p99,
            h.p999,
            h.max,
            self.assignments,
            self.queued,
            self.closes,
            self.presence_changes,
            self.drains,
            self.left_waiting,
            verdict,
            i.transitions_replayed,
            i.conversations,
        )
    }
}

/// What the seeding made.
struct Company {
    agents: Vec<AgentId>,
    /// Status at the start, per agent (index as `agents`).
    statuses: Vec<AgentStatus>,
    open_ids: Vec<String>,
}

/// Seeds groups, the region map, agents and customers.
async fn seed(
    store: &Store,
    args: &RoutingArgs,
    account: &AccountId,
    rng: &mut StdRng,
) -> anyhow::Result<Company> {
    let mut groups = Vec::new();
    let mut regions = Vec::new();
    for g in 0..args.groups as usize {
        let city = CITIES
            .get(g)
            .map(|c| (*c).to_owned())
            .unwrap_or_else(|| format!("城市{g}"));
        let id = store.create_city_group(&city).await?;
        regions.push((city.clone(), id));
        groups.push((id, city));
    }
    store.replace_region_groups(&regions).await?;

    let mut seeds = Vec::with_capacity(args.agents as usize);
    let mut statuses = Vec::with_capacity(args.agents as usize);
    for i in 0..args.agents {
        let status = if rng.random_bool(args.idle_share / 100.0) {
            AgentStatus::Idle
        } else if rng.random_bool(2.0 / 3.0) {
            AgentStatus::Busy
        } else {
            AgentStatus::Offline
        };
        statuses.push(status);
        seeds.push(SeedAgent {
            login: format!("load-agent-{i:05}"),
            name: format!("客服{i}"),
            capacity: args.capacity,
            status,
        });
    }
    let agents = store.seed_agents(&seeds).await?;
    // Home groups in turn; one agent in ten also helps another group.
    let mut members = Vec::new();
    let mut home = Vec::with_capacity(agents.len());
    for (i, a) in agents.iter().enumerate() {
        let g = i % groups.len();
        members.push((groups[g].0, *a));
        home.push(g);
        if groups.len() > 1 && i % 10 == 9 {
            members.push((groups[(g + 1) % groups.len()].0, *a));
        }
    }
    store.seed_group_members(&members).await?;

    let mut customers = Vec::with_capacity(args.customers as usize);
    for i in 0..args.customers {
        let open_id = format!("oLOADROUTING{i:08}");
        let mut c = SeedCustomer {
            open_id,
            dedicated_agent: None,
            group: None,
            region: None,
        };
        if rng.random_bool(args.dedicated_share / 100.0) {
            let a = rng.random_range(0..agents.len());
            c.dedicated_agent = Some(agents[a]);
            c.group = Some(groups[home[a]].0);
        } else {
            let g = rng.random_range(0..groups.len());
            match rng.random_range(0..100) {
                // A mapped region, as a menu click or the CRM gives it.
                0..70 => {
                    let city = &groups[g].1;
                    c.region = Some(if rng.random_bool(0.3) {
                        format!("{city}市")
                    } else {
                        city.clone()
                    });
                }
                70..85 => c.group = Some(groups[g].0),
                85..95 => c.region = Some(UNMAPPED_REGION.to_owned()),
                _ => {}
            }
        }
        customers.push(c);
    }
    store.seed_customers(account, &customers).await?;
    Ok(Company {
        agents,
        statuses,
        open_ids: customers.into_iter().map(|c| c.open_id).collect(),
    })
}

/// Counters shared by the run's tasks.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    not_accepted: AtomicU64,
    human: AtomicU64,
    handled: AtomicU64,
    swept: AtomicU64,
    lags: AtomicU64,
    closes: AtomicU64,
    presence: AtomicU64,
}

/// Runs the benchmark.
pub async fn run(args: RoutingArgs, config_dir: &Path) -> anyhow::Result<RoutingReport> {
    args.check()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let env = EnvSnapshot::from_process();
    let mut settings = Settings::load_with_env(config_dir, &env)
        .map_err(|e| anyhow::anyhow!("configuration problems (run `kefu check-config`):\n{e}"))?;
    settings.redis.url = Secret::new("");
    let account = super::official_account(&settings)?.id.clone();
    // A fresh SQLite file unless told otherwise, removed afterwards.
    let tmp = match &args.database_url {
        Some(url) => {
            settings.database.url = Secret::new(url.clone());
            None
        }
        None => {
            let dir = std::env::temp_dir().join(format!(
                "kefu-load-routing-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir)?;
            settings.database.url =
                Secret::new(format!("sqlite://{}/kefu.db?mode=rwc", dir.display()));
            Some(dir)
        }
    };
    let outcome = run_on(&args, &settings, &account, &say).await;
    if let Some(dir) = tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

async fn run_on(
    args: &RoutingArgs,
    settings: &Settings,
    account: &AccountId,
    say: &dyn Fn(&str),
) -> anyhow::Result<RoutingReport> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    store.sync_accounts(&settings.accounts).await?;
    if store.queued_count().await? > 0 || !store.transitions_after(0, 1).await?.is_empty() {
        bail!("the database is not empty: the benchmark needs a fresh one");
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let seeding = Instant::now();
    let company = seed(&store, args, account, &mut rng).await?;
    say(&format!(
        "seeded {} agents in {} groups and {} customers in {:.1} s",
        args.agents,
        args.groups,
        args.customers,
        seeding.elapsed().as_secs_f64()
    ));

    // Kefu's parts, as the server assembles them (no HTTP, no sending).
    let bus: Bus = Arc::new(MemoryBus::new());
    let mut workers = Workers::new();
    let outbound_ready = Arc::new(Notify::new());
    let ingest = Ingestor::start(
        store.clone(),
        bus.clone(),
        settings.limits.ingest_max_batch,
        outbound_ready.clone(),
        &mut workers,
    );
    let http = reqwest::Client::new();
    let tokens = crate::cluster::token_store(&settings.redis).await?;
    let channels = Arc::new(Channels::new(settings, &http, tokens)?);
    let outbox = Outbox::new(
        store.clone(),
        bus.clone(),
        channels,
        ingest.clone(),
        settings.outbox.clone(),
        outbound_ready,
    );
    let decisions = Arc::new(Mutex::new(Histogram::new()));
    let sink = decisions.clone();
    let router = Router::new(settings.routing.require_shifts).with_observer(Arc::new(
        move |took: Duration| {
            if let Ok(mut h) = sink.lock() {
                h.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
        },
    ));
    router.replace(store.router_data(Utc::now()).await?);
    let pipeline = Pipeline::new(
        store.clone(),
        bus.clone(),
        router.clone(),
        settings.routing.clone(),
    )
    .with_ingest(ingest.clone())
    .with_outbox(outbox);
    let drainer = Drainer::new(pipeline.clone());
    drainer.start(&mut workers);
    let presence = Presence::new(pipeline.clone(), drainer.clone());
    presence.start(&mut workers);

    let counts = Arc::new(Counts::default());
    let started: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let done: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);

    let handler = tokio::spawn(handle(
        pipeline.clone(),
        bus.subscribe(),
        done.clone(),
        counts.clone(),
        stop_rx.clone(),
    ));
    let closer = tokio::spawn(close(
        pipeline.clone(),
        bus.subscribe(),
        args.hold,
        StdRng::seed_from_u64(args.seed.wrapping_add(1)),
        counts.clone(),
        stop_rx.clone(),
    ));
    let churn = tokio::spawn(churn(
        presence.clone(),
        company.agents.clone(),
        company.statuses.clone(),
        args.presence_rate,
        StdRng::seed_from_u64(args.seed.wrapping_add(2)),
        counts.clone(),
        stop_rx.clone(),
    ));

    // The load, open loop at the given rate.
    say(&format!(
        "sending {:.0} messages/s for {} s",
        args.rate, args.duration
    ));
    let total = (args.rate * args.duration).ceil() as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for seq in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(seq as f64)).into()).await;
        let customer = &company.open_ids[rng.random_range(0..company.open_ids.len())];
        let human = rng.random_bool(args.human_share / 100.0);
        let msg = NewInbound {
            account: account.clone(),
            channel: Channel::OfficialAccount,
            direction: Direction::In,
            sender: customer.clone(),
            dedup_key: format!("load-routing:{seq}"),
            msg_type: "text".into(),
            content: Some(if human {
                "转人工".to_owned()
            } else {
                format!("你好 {seq}")
            }),
            payload: "<xml/>".into(),
            channel_msg_id: Some(seq.to_string()),
            sent_at: Utc::now(),
            media_object_id: None,
        };
        let (ingest, started, counts) = (ingest.clone(), started.clone(), counts.clone());
        sends.spawn(async move {
            let t0 = Instant::now();
            match ingest.ingest(msg, INGEST_TIMEOUT).await {
                Ok(Inserted::New(id)) => {
                    if let Ok(mut s) = started.lock() {
                        s.insert(id.0, t0);
                    }
                    counts.accepted.fetch_add(1, Ordering::Relaxed);
                    if human {
                        counts.human.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Inserted::Duplicate) | Err(_) => {
                    counts.not_accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
    let load_time = start.elapsed();

    // Let the pipeline catch up, then stop the agents.
    let deadline = Instant::now() + CATCH_UP;
    while counts.handled.load(Ordering::Relaxed) + counts.swept.load(Ordering::Relaxed)
        < counts.accepted.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up = start.elapsed();
    let _ = stop_tx.send(true);
    let _ = churn.await;
    let _ = closer.await;
    let _ = handler.await;

    // The final state: reconciled, drained.
    say("load stopped; reconciling and draining the queue");
    // Work the load set off (a close's survey, a presence change's
    // re-routing) may still be landing: a round reconciles, drains and
    // checks, and a failure must hold for SETTLE_ROUNDS rounds to count. A
    // reservation that leaked survives a reload, so it still fails.
    let mut invariants = Invariants::default();
    for _ in 0..SETTLE_ROUNDS {
        router.reload(&store).await?;
        for _ in 0..100_000 {
            if drainer.drain_now().await? == 0 {
                break;
            }
        }
        invariants = check(&store).await?;
        if invariants.ok() {
            break;
        }
    }
    let drains = *drainer.completed().borrow();
    let left_waiting = store.queued_count().await?;
    let assignments_and_queued = count_outcomes(&store).await?;
    workers.shutdown(Duration::from_secs(10)).await;
    store.close().await;

    let decision_hist = decisions
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let mut handling = Histogram::new();
    {
        let s = started.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let d = done.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (id, t0) in s.iter() {
            if let Some(t1) = d.get(id) {
                handling.record_duration(t1.saturating_duration_since(*t0));
            }
        }
    }
    let messages = counts.accepted.load(Ordering::Relaxed);
    Ok(RoutingReport {
        agents: args.agents,
        groups: args.groups,
        customers: args.customers,
        messages,
        not_accepted: counts.not_accepted.load(Ordering::Relaxed),
        human_requests: counts.human.load(Ordering::Relaxed),
        duration_secs: load_time.as_secs_f64(),
        messages_per_sec: messages as f64 / load_time.as_secs_f64(),
        handled: counts.handled.load(Ordering::Relaxed) + counts.swept.load(Ordering::Relaxed),
        handled_per_sec: (counts.handled.load(Ordering::Relaxed)
            + counts.swept.load(Ordering::Relaxed)) as f64
            / caught_up.as_secs_f64().max(load_time.as_secs_f64()),
        swept: counts.swept.load(Ordering::Relaxed),
        bus_lags: counts.lags.load(Ordering::Relaxed),
        decisions: decision_hist.len(),
        // Recorded in nanoseconds: the summary's "milliseconds" are µs.
        decision_us: LatencySummary::from_histogram(&decision_hist),
        handling_ms: LatencySummary::from_histogram(&handling),
        assignments: assignments_and_queued.0,
        queued: assignments_and_queued.1,
        closes: counts.closes.load(Ordering::Relaxed),
        presence_changes: counts.presence.load(Ordering::Relaxed),
        drains,
        left_waiting,
        invariants,
    })
}

/// The pipeline's worker, timed: takes the messages waiting (up to
/// [`BATCH`]) and applies them as one batch. A forwarder keeps up with the
/// bus whatever the batches cost, so every message is applied in a batch
/// and timed, its wait included (the server's worker would lag behind the
/// bus instead, and catch up with sweeps); a lag of the forwarder itself
/// still sweeps.
async fn handle(
    pipeline: Pipeline,
    mut events: tokio::sync::broadcast::Receiver<crate::bus::Envelope>,
    done: Arc<Mutex<HashMap<i64, Instant>>>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stop_forwarding = stop.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            let r = tokio::select! {
                _ = stop_forwarding.changed() => return,
                r = events.recv() => r,
            };
            let next = match r {
                Ok(env) => match env.event {
                    Event::MessageStored { message_id, .. } => Some(message_id),
                    _ => continue,
                },
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            };
            if tx.send(next).is_err() {
                return;
            }
        }
    });
    loop {
        let first = tokio::select! {
            _ = stop.changed() => break,
            r = rx.recv() => r,
        };
        let Some(first) = first else {
            break;
        };
        let mut batch = Vec::new();
        let mut lagged = false;
        let mut next = Ok(first);
        loop {
            match next {
                Ok(Some(id)) => batch.push(id),
                Ok(None) => lagged = true,
                Err(_) => break,
            }
            if batch.len() >= BATCH {
                break;
            }
            next = rx.try_recv();
        }
        if !batch.is_empty() {
            match pipeline.handle_batch(&batch).await {
                Ok(results) => {
                    let now = Instant::now();
                    let n = results
                        .iter()
                        .filter(|h| matches!(h, Handled::Done { .. }))
                        .count();
                    counts.handled.fetch_add(n as u64, Ordering::Relaxed);
                    if let Ok(mut d) = done.lock() {
                        for id in &batch {
                            d.insert(id.0, now);
                        }
                    }
                }
                Err(e) => {
                    eprintln!("a batch failed: {e}");
                    lagged = true;
                }
            }
        }
        if lagged {
            counts.lags.fetch_add(1, Ordering::Relaxed);
            match pipeline.sweep().await {
                Ok(n) => {
                    counts.swept.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => eprintln!("a catch-up sweep failed: {e}"),
            }
        }
    }
    let _ = forwarder.await;
}

/// The agents closing their conversations: each assignment is closed by
/// its agent after an exponential hold time (mean `hold` seconds).
async fn close(
    pipeline: Pipeline,
    mut events: tokio::sync::broadcast::Receiver<crate::bus::Envelope>,
    hold: f64,
    mut rng: StdRng,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    let mut due: BinaryHeap<Reverse<(Instant, i64, i64)>> = BinaryHeap::new();
    let mut closing = tokio::task::JoinSet::new();
    loop {
        let next = due.peek().map(|Reverse((t, _, _))| *t);
        let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed() => break,
            r = events.recv() => match r {
                Ok(env) => {
                    if let Event::ConversationChanged { conversation, state, agent: Some(agent), .. } = env.event
                        && state == "assigned"
                    {
                        let u: f64 = rng.random();
                        let secs = (-(1.0 - u).ln() * hold).clamp(0.05, hold * 10.0);
                        due.push(Reverse((Instant::now() + Duration::from_secs_f64(secs), conversation.0, agent.0)));
                    }
                }
                // Missed assignments stay with their agents to the end.
                Err(RecvError::Lagged(n)) => eprintln!("the agents missed {n} events"),
                Err(RecvError::Closed) => break,
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                while let Some(Reverse((t, conversation, agent))) = due.peek().copied() {
                    if t > now {
                        break;
                    }
                    due.pop();
                    let (pipeline, counts) = (pipeline.clone(), counts.clone());
                    closing.spawn(async move {
                        let id = ConversationId(conversation);
                        // Only their own, if it is still theirs.
                        let Ok(c) = pipeline.store().conversation(id).await else {
                            return;
                        };
                        if c.state != "assigned" || c.agent_id != Some(agent) {
                            return;
                        }
                        let by = CloseReason::Agent(AgentId(agent));
                        if pipeline.trigger(id, Trigger::Closed { by }, "load-agent").await.is_ok() {
                            counts.closes.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        }
        while closing.try_join_next().is_some() {}
    }
    while closing.join_next().await.is_some() {}
}

/// A few agents a second switch between idle and busy (offline agents stay
/// offline).
async fn churn(
    presence: Presence,
    agents: Vec<AgentId>,
    mut statuses: Vec<AgentStatus>,
    rate: f64,
    mut rng: StdRng,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    if rate <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / rate);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let i = rng.random_range(0..agents.len());
        let next = match statuses[i] {
            AgentStatus::Idle => AgentStatus::Busy,
            AgentStatus::Busy | AgentStatus::Break => AgentStatus::Idle,
            AgentStatus::Offline => continue,
        };
        if presence.set(agents[i], next).await.is_ok() {
            statuses[i] = next;
            counts.presence.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Transitions to `assigned`, and "no agent free" records.
async fn count_outcomes(store: &Store) -> anyhow::Result<(u64, u64)> {
    let (mut assigned, mut queued) = (0, 0);
    let mut after = 0;
    loop {
        let rows = store.transitions_after(after, REPLAY_PAGE).await?;
        let Some(last) = rows.last() else {
            return Ok((assigned, queued));
        };
        after = last.id;
        for r in &rows {
            match (r.from_state.as_deref(), r.to_state.as_str()) {
                (Some("assigned"), "assigned") => {}
                (_, "assigned") => assigned += 1,
                (Some("queued"), "queued") => queued += 1,
                _ => {}
            }
        }
    }
}

/// Final reconcile-drain-check rounds before a failure counts.
const SETTLE_ROUNDS: usize = 3;

/// Replays the transition record and looks at the queue (see the module
/// documentation).
pub async fn check(store: &Store) -> anyhow::Result<Invariants> {
    let mut inv = Invariants::default();
    let (agents, _) = store.routing_snapshot().await?;
    let capacity: HashMap<i64, u32> = agents.iter().map(|a| (a.id.0, a.capacity)).collect();
    // Each conversation's last state and agent; each agent's load.
    let mut last: HashMap<i64, (String, Option<i64>)> = HashMap::new();
    let mut load: HashMap<i64, u32> = HashMap::new();
    let mut after = 0;
    loop {
        let rows = store.transitions_after(after, REPLAY_PAGE).await?;
        let Some(end) = rows.last() else {
            break;
        };
        after = end.id;
        for r in rows {
            inv.transitions_replayed += 1;
            let before = last.get(&r.conversation);
            let chained = match (before, r.from_state.as_deref()) {
                (None, None) => true,
                (Some((to, _)), Some(from)) => to == from,
                _ => false,
            };
            if !chained {
                inv.broken_chains += 1;
                inv.fail(format!(
                    "conversation {}: transition {} from {:?} after {:?}",
                    r.conversation,
                    r.id,
                    r.from_state,
                    before.map(|b| &b.0)
                ));
            }
            let held_by = before
                .filter(|(to, _)| to == "assigned")
                .and_then(|(_, a)| *a);
            let now_held = (r.to_state == "assigned").then_some(r.agent).flatten();
            if held_by != now_held {
                if let Some(a) = held_by {
                    let l = load.entry(a).or_default();
                    *l = l.saturating_sub(1);
                }
                if let Some(a) = now_held {
                    let l = load.entry(a).or_default();
                    *l += 1;
                    let cap = capacity.get(&a).copied().unwrap_or(0);
                    if *l > cap {
                        inv.over_capacity += 1;
                        inv.fail(format!(
                            "agent {a}: {l} conversations (capacity {cap}) at transition {}",
                            r.id
                        ));
                    }
                }
            }
            last.insert(r.conversation, (r.to_state, r.agent));
        }
    }
    inv.conversations = last.len() as u64;

    // Who could take a customer now, from the database.
    let mut open = OpenScopes::default();
    for a in agents.iter().filter(|a| a.is_available()) {
        open.any = true;
        open.groups.extend(a.groups.iter().copied());
    }
    let groups: Vec<GroupId> = agents
        .iter()
        .flat_map(|a| a.groups.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for w in store.queue_page(&groups, true, None, 100_000_000).await? {
        if open.admits(w.group) {
            inv.queued_with_free_agent += 1;
            inv.fail(format!(
                "conversation {} waits in {} while an agent of it is free",
                w.conversation,
                w.group
                    .map_or_else(|| "the global queue".to_owned(), |g| format!("group {g}"))
            ));
        }
    }
    inv.stranded = store.unplaced_queued_count().await?;
    if inv.stranded > 0 {
        inv.fail(format!(
            "{} conversation(s) in `queued` without a place in a queue",
            inv.stranded
        ));
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::load::{LoadArgs, LoadCommand};

    fn parse(args: &[&str]) -> RoutingArgs {
        let cli = Cli::try_parse_from(["kefu", "load", "routing"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Load(LoadArgs {
                command: LoadCommand::Routing(a),
            }) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_lines_defaults_are_the_defaults() {
        let a = parse(&[]);
        let d = RoutingArgs::default();
        assert_eq!(
            (a.agents, a.groups, a.customers, a.capacity, a.seed),
            (d.agents, d.groups, d.customers, d.capacity, d.seed)
        );
        assert_eq!(
            (a.rate, a.duration, a.human_share, a.idle_share, a.hold),
            (d.rate, d.duration, d.human_share, d.idle_share, d.hold)
        );
        assert_eq!((a.agents, a.customers, a.rate), (2000, 20_000, 1000.0));
        assert!(a.check().is_ok());
        let a = parse(&[
            "--agents",
            "50",
            "--database-url",
            "sqlite://x.db",
            "--json",
        ]);
        assert_eq!(a.agents, 50);
        assert_eq!(a.database_url.as_deref(), Some("sqlite://x.db"));
    }

    #[test]
    fn bad_numbers_are_refused_with_the_flag_named() {
        for (args, flag) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--hold=-1"][..], "--hold"),
            (&["--human-share", "101"][..], "--human-share"),
            (&["--capacity", "0"][..], "--capacity"),
            (&["--agents", "5", "--groups", "6"][..], "--groups"),
            (&["--presence-rate=-1"][..], "--presence-rate"),
        ] {
            let err = parse(args).check().unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
