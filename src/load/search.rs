//! `kefu load search`: history search on millions of messages.
//!
//! 1. Seeds a fresh database (a temporary SQLite file, or
//!    `--database-url`): `--agents` agents in city groups of
//!    `--group-size`, `--customers` customers each bound to an agent of a
//!    group, and `--messages` text messages between them over 180 days,
//!    written from customer-service phrases (plates, car models, cities,
//!    order numbers, amounts).
//! 2. Indexes them all with the search indexer, timed (messages a second).
//! 3. Starts `kefu serve` on the database and sends searches over HTTP as
//!    an admin (everything), a supervisor (one group) and an agent (their
//!    customers): rare words (a customer's plate), common words, two words,
//!    a word nobody used, filters by customer and by date, and a page
//!    further back. Each kind is timed separately; a search that must find
//!    something and finds nothing is a failure (exit 1).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{TimeDelta, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::callbacks::follower_openid;
use super::stats::{Histogram, LatencySummary};
use crate::auth::Role;
use crate::ids::{AccountId, AgentId};
use crate::routing::AgentStatus;
use crate::search::SearchIndex;
use crate::store::Store;
use crate::store::bulk::{SeedAgent, SeedCustomer, SeedMessage};
use crate::store::sessions::NewSession;

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[arg(long, default_value_t = 2_000_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 50_000)]
    pub customers: u32,
    #[arg(long, default_value_t = 500)]
    pub agents: u32,
    #[arg(long, default_value_t = 20)]
    pub group_size: u32,
    /// Searches of each kind and user.
    #[arg(long, default_value_t = 100)]
    pub queries: u32,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// The `kefu` binary to serve with [default: this one].
    #[arg(long, hide = true)]
    pub server_bin: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub user: &'static str,
    pub kind: &'static str,
    pub searches: u64,
    pub failures: u64,
    /// Results per search, on average (a page is 30).
    pub mean_results: f64,
    pub latency_ms: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    pub messages: u64,
    pub customers: u32,
    pub agents: u32,
    pub seed_secs: f64,
    pub index_secs: f64,
    pub indexed_per_sec: f64,
    pub database_mb: Option<f64>,
    pub kinds: Vec<KindReport>,
    pub server_peak_rss_mb: f64,
}

impl SearchReport {
    pub fn ok(&self) -> bool {
        self.kinds.iter().all(|k| k.failures == 0)
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "search load: {} messages, {} customers, {} agents\n\
             \x20 seeded in {:.1} s; indexed in {:.1} s ({:.0} messages/s){}\n\
             \x20 {:<10} {:<22} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}\n",
            self.messages,
            self.customers,
            self.agents,
            self.seed_secs,
            self.index_secs,
            self.indexed_per_sec,
            self.database_mb
                .map(|mb| format!("; database {mb:.0} MB"))
                .unwrap_or_default(),
            "user",
            "search",
            "n",
            "hits",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
        );
        for k in &self.kinds {
            out.push_str(&format!(
                "  {:<10} {:<22} {:>6} {:>6.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}{}\n",
                k.user,
                k.kind,
                k.searches,
                k.mean_results,
                k.latency_ms.p50,
                k.latency_ms.p90,
                k.latency_ms.p99,
                k.latency_ms.max,
                if k.failures > 0 {
                    format!("  FAILED {}", k.failures)
                } else {
                    String::new()
                }
            ));
        }
        out.push_str(&format!(
            "  server peak memory: {:.0} MB\n",
            self.server_peak_rss_mb
        ));
        out
    }
}

const PROVINCES: &[&str] = &["京", "沪", "粤", "苏", "浙", "川", "鄂", "鲁"];
const MODELS: &[&str] = &[
    "宝马X5",
    "奥迪A6L",
    "大众朗逸",
    "丰田凯美瑞",
    "本田雅阁",
    "别克君越",
    "奔驰C级",
    "日产轩逸",
    "哈弗H6",
    "比亚迪汉",
    "特斯拉Model3",
    "马自达阿特兹",
];
const CITIES: &[&str] = &[
    "北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "苏州",
];
const FROM_CUSTOMERS: &[&str] = &[
    "你好，我的车{plate}卖了吗？",
    "请问{model}什么时候打款？",
    "打款到账了吗，订单号{order}",
    "过户需要带什么材料？我在{city}",
    "{city}的门店地址在哪里",
    "我想卖一辆{model}，大概能卖多少钱",
    "检测报告什么时候出来",
    "车牌{plate}可以保留吗",
    "保险需要自己退吗",
    "定金{amount}元已经付了",
    "你好",
    "在吗",
    "转人工",
    "什么时候可以过户",
    "我的订单{order}进度怎么样",
    "能不能上门看车，我在{city}",
    "贷款还没还清可以卖车吗",
    "违章处理完了吗，车牌{plate}",
];
const FROM_AGENTS: &[&str] = &[
    "您好，很高兴为您服务",
    "您的车辆{plate}已售出，款项{amount}元预计{days}个工作日内到账",
    "过户需要身份证、行驶证和机动车登记证书",
    "{city}门店地址是{city}市中山路{n}号，营业时间9点到18点",
    "已帮您查询，订单{order}当前状态：检测中",
    "好的，稍后给您回电",
    "请提供一下您的车牌号",
    "打款一般在过户完成后1到3个工作日",
    "感谢您的耐心等待",
    "车牌可以保留，需要在过户前办理",
    "{model}目前市场价在{amount}元左右，具体以检测为准",
];

/// A customer's plate, the same every time.
fn plate_of(i: u32) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let mut rng = StdRng::seed_from_u64(u64::from(i) * 7919 + 17);
    let tail: String = (0..5)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect();
    format!(
        "{}{}{tail}",
        PROVINCES[i as usize % PROVINCES.len()],
        (b'A' + (i % 6) as u8) as char
    )
}

fn fill(template: &str, customer: u32, rng: &mut StdRng) -> String {
    let mut s = template.to_owned();
    let pick = |list: &[&str], rng: &mut StdRng| list[rng.random_range(0..list.len())].to_owned();
    if s.contains("{plate}") {
        s = s.replace("{plate}", &plate_of(customer));
    }
    if s.contains("{model}") {
        s = s.replace("{model}", &pick(MODELS, rng));
    }
    if s.contains("{city}") {
        s = s.replace("{city}", &pick(CITIES, rng));
    }
    if s.contains("{order}") {
        s = s.replace(
            "{order}",
            &format!("KF{:08}", u64::from(customer) * 31 % 99_999_989),
        );
    }
    if s.contains("{amount}") {
        s = s.replace("{amount}", &(rng.random_range(30..900) * 1000).to_string());
    }
    s.replace("{days}", &rng.random_range(1..4).to_string())
        .replace("{n}", &rng.random_range(1..300).to_string())
}

/// One search's query parameters.
type Params = Vec<(&'static str, String)>;

struct User {
    name: &'static str,
    cookie: String,
    /// Customer indexes this user may see (their plates are rare words).
    visible: Vec<u32>,
}

pub async fn run(args: SearchArgs, config_dir: &Path) -> anyhow::Result<SearchReport> {
    if args.messages == 0 || args.customers == 0 || args.agents == 0 || args.group_size == 0 {
        bail!("--messages, --customers, --agents and --group-size must be positive");
    }
    if args.customers < args.agents {
        bail!("--customers must be at least --agents (each agent has customers)");
    }
    let super::Scratch {
        dir: tmp,
        db_file,
        db_url,
        settings,
    } = super::scratch("search", args.database_url.as_deref(), config_dir)?;
    let account = AccountId::parse(super::official_account(&settings)?.id.as_str())?;

    let started = Instant::now();
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    eprintln!(
        "seeding {} agents and {} customers",
        args.agents, args.customers
    );
    let agents = store
        .seed_agents(
            &(0..args.agents)
                .map(|i| SeedAgent {
                    login: format!("load{i}"),
                    name: format!("客服{i}"),
                    capacity: 10,
                    status: AgentStatus::Offline,
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let groups = args.agents.div_ceil(args.group_size);
    let mut group_ids = Vec::with_capacity(groups as usize);
    for g in 0..groups {
        group_ids.push(store.create_city_group(&format!("城市组{g}")).await?);
    }
    let group_of = |agent: u32| group_ids[(agent / args.group_size) as usize];
    store
        .seed_group_members(
            &(0..args.agents)
                .map(|a| (group_of(a), agents[a as usize]))
                .collect::<Vec<_>>(),
        )
        .await?;
    // Customer i is served by agent i % agents.
    let agent_of = |c: u32| c % args.agents;
    let customers = store
        .seed_customers(
            &account,
            &(0..args.customers)
                .map(|i| SeedCustomer {
                    open_id: follower_openid(i),
                    dedicated_agent: Some(agents[agent_of(i) as usize]),
                    group: Some(group_of(agent_of(i))),
                    region: None,
                })
                .collect::<Vec<_>>(),
        )
        .await?;

    eprintln!("seeding {} messages", args.messages);
    let mut rng = StdRng::seed_from_u64(20261207);
    let now = Utc::now();
    let span_secs = 180 * 86_400;
    let mut written = 0u64;
    // Which customers' plates were written (the rare words to look for).
    let mut has_plate = vec![false; args.customers as usize];
    // Oldest first, as they would have been stored.
    while written < args.messages {
        let n = (args.messages - written).min(50_000);
        let batch: Vec<SeedMessage> = (0..n)
            .map(|k| {
                let c = rng.random_range(0..args.customers);
                let from_agent = rng.random_bool(0.45);
                let template = if from_agent {
                    FROM_AGENTS[rng.random_range(0..FROM_AGENTS.len())]
                } else {
                    FROM_CUSTOMERS[rng.random_range(0..FROM_CUSTOMERS.len())]
                };
                if template.contains("{plate}") {
                    has_plate[c as usize] = true;
                }
                let age = span_secs - (written + k) as i64 * span_secs / args.messages as i64;
                SeedMessage {
                    customer: customers[c as usize],
                    open_id: follower_openid(c),
                    agent: from_agent.then(|| agents[agent_of(c) as usize]),
                    content: fill(template, c, &mut rng),
                    sent_at: now - TimeDelta::seconds(age),
                }
            })
            .collect();
        store.seed_messages(&account, &batch).await?;
        written += n;
        if written.is_multiple_of(500_000) {
            eprintln!("  {written}");
        }
    }
    let seed_secs = started.elapsed().as_secs_f64();

    eprintln!("indexing");
    let t = Instant::now();
    let indexed = SearchIndex::new(store.clone()).drain().await?;
    let index_secs = t.elapsed().as_secs_f64();
    if indexed != args.messages {
        bail!("indexed {indexed} messages of {}", args.messages);
    }

    // Who searches: an admin, the supervisor of group 0, agent 0.
    let admin = store
        .create_agent("load-admin", "管理员", Role::Admin, "!")
        .await?;
    let supervisor = store
        .create_agent("load-supervisor", "主管", Role::Supervisor, "!")
        .await?;
    store
        .seed_group_members(&[(group_ids[0], supervisor)])
        .await?;
    let mut users = Vec::new();
    for (name, id, visible) in [
        ("admin", admin, (0..args.customers).collect::<Vec<u32>>()),
        (
            "supervisor",
            supervisor,
            (0..args.customers)
                .filter(|c| agent_of(*c) < args.group_size)
                .collect(),
        ),
        (
            "agent",
            agents[0],
            (0..args.customers).filter(|c| agent_of(*c) == 0).collect(),
        ),
    ] {
        users.push(User {
            name,
            cookie: session_for(&store, id).await?,
            visible,
        });
    }
    store.close().await;
    let database_mb = args.database_url.is_none().then(|| {
        std::fs::metadata(&db_file)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0)
    });

    let exe = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let (mut server, base) = super::console::start_server(&exe, config_dir, &db_url).await?;
    let pid = server.id().context("the server has no pid")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let week_ago = (now - TimeDelta::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut kinds = Vec::new();
    for user in &users {
        let mut rng = StdRng::seed_from_u64(7);
        let with_plates: Vec<u32> = user
            .visible
            .iter()
            .copied()
            .filter(|c| has_plate[*c as usize])
            .collect();
        if with_plates.is_empty() {
            bail!(
                "{}'s customers have no plates: seed more messages",
                user.name
            );
        }
        let plates: Vec<Vec<(&str, String)>> = (0..args.queries)
            .map(|_| {
                let c = with_plates[rng.random_range(0..with_plates.len())];
                vec![("q", plate_of(c))]
            })
            .collect();
        let fixed = |params: Vec<(&'static str, String)>| -> Vec<Vec<(&'static str, String)>> {
            vec![params; args.queries as usize]
        };
        // Page 2: the first page's `next_before`, found once (not timed).
        let page_two = one(&http, &base, &user.cookie, &[("q", "你好".into())])
            .await
            .and_then(|(_, n)| n)
            .map_or(String::new(), |n| n.to_string());
        // The customer filter: a customer of theirs, and their plate.
        let customer = customers[with_plates[0] as usize].0.to_string();
        let customer_plate = plate_of(with_plates[0]);
        let plans: Vec<(&'static str, Vec<Params>, bool)> = vec![
            ("rare word (a plate)", plates, true),
            ("common word 打款", fixed(vec![("q", "打款".into())]), true),
            ("very common 你好", fixed(vec![("q", "你好".into())]), true),
            (
                "two words 过户 材料",
                fixed(vec![("q", "过户 材料".into())]),
                true,
            ),
            (
                "word nobody used",
                fixed(vec![("q", "火星探测".into())]),
                false,
            ),
            (
                "customer + word",
                fixed(vec![("q", customer_plate), ("customer", customer)]),
                true,
            ),
            (
                "last 7 days + word",
                fixed(vec![("q", "过户".into()), ("from", week_ago.clone())]),
                user.name != "agent",
            ),
            (
                "page 2 of 你好",
                fixed(vec![("q", "你好".into()), ("before", page_two.clone())]),
                true,
            ),
        ];
        for (kind, queries, must_find) in plans {
            eprintln!("  {} · {kind}", user.name);
            kinds.push(
                run_kind(
                    &http,
                    &base,
                    user,
                    kind,
                    queries,
                    must_find,
                    args.concurrency,
                )
                .await,
            );
        }
    }
    let (_, peak) = super::console::memory_of(pid);
    let _ = server.kill().await;
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(SearchReport {
        messages: args.messages,
        customers: args.customers,
        agents: args.agents,
        seed_secs,
        index_secs,
        indexed_per_sec: args.messages as f64 / index_secs.max(1e-9),
        database_mb,
        kinds,
        server_peak_rss_mb: peak,
    })
}

async fn session_for(store: &Store, agent: AgentId) -> anyhow::Result<String> {
    let token = crate::auth::token::generate();
    let now = Utc::now();
    store
        .insert_session(&NewSession {
            id: &crate::auth::token::digest(&token),
            agent_id: agent,
            csrf_token: "load",
            now,
            expires_at: now + TimeDelta::hours(12),
            ip: None,
            user_agent: Some("kefu load search"),
        })
        .await?;
    Ok(format!("kefu_session={token}"))
}

/// One search; its result count (`None`: it failed) and the next page.
async fn one(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    params: &[(&str, String)],
) -> Option<(u64, Option<i64>)> {
    let r = http
        .get(format!("{base}/api/search"))
        .query(params)
        .header("Cookie", cookie)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    Some((
        v["results"].as_array()?.len() as u64,
        v["next_before"].as_i64(),
    ))
}

async fn run_kind(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    kind: &'static str,
    queries: Vec<Vec<(&str, String)>>,
    must_find: bool,
    concurrency: usize,
) -> KindReport {
    let mut hist = Histogram::new();
    let mut failures = 0u64;
    let mut results = 0u64;
    let n = queries.len() as u64;
    let mut pending = futures_util::stream::iter(queries.into_iter().map(|q| async move {
        let t = Instant::now();
        let r = one(http, base, &user.cookie, &q).await;
        (t.elapsed(), r)
    }))
    .buffer_unordered(concurrency.max(1));
    use futures_util::StreamExt as _;
    while let Some((took, r)) = pending.next().await {
        hist.record_duration(took);
        match r {
            Some((found, _)) if found > 0 || !must_find => results += found,
            _ => failures += 1,
        }
    }
    KindReport {
        user: user.name,
        kind,
        searches: n,
        failures,
        mean_results: results as f64 / n.max(1) as f64,
        latency_ms: LatencySummary::from_histogram(&hist),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_stable_and_mostly_distinct() {
        assert_eq!(plate_of(42), plate_of(42));
        let distinct: std::collections::HashSet<String> = (0..10_000).map(plate_of).collect();
        assert!(distinct.len() > 9_990, "{}", distinct.len());
        let mut rng = StdRng::seed_from_u64(1);
        let s = fill(
            "车牌{plate}，{model}在{city}，订单{order}，{amount}元",
            42,
            &mut rng,
        );
        assert!(s.contains(&plate_of(42)) && !s.contains('{'), "{s}");
    }
}
