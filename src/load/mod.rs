//! `kefu load`: Kefu's own load tool. It plays WeChat: sends correctly
//! signed, encrypted safe-mode Official Account text callbacks to a running
//! Kefu and measures throughput and latency (PROTOCOL.md §1.2–§1.4).
//!
//! - [`callbacks`]: building the requests and checking the answers.
//! - [`runner`]: open- and closed-loop drivers on one keep-alive client.
//! - [`stats`]: the latency histogram; [`report`]: table and JSON output.
//! - [`baseline`]: a trivial server, the HTTP floor to compare against.
//!
//! The tool needs no database: it reads only the account (token, AES key,
//! appid) from the configuration folder.
//!
//! ```sh
//! kefu load callbacks --duration 10 --concurrency 64            # closed loop
//! kefu load callbacks --rate 2000 --duration 30 --duplicates 5  # open loop, with retries
//! kefu load callbacks --baseline --requests 20000 --json        # vs. a trivial server
//! kefu load baseline-server --listen 127.0.0.1:0                # prints `listening ADDR`
//! ```
//!
//! The tool shares the machine with the server under test, so it keeps its
//! own cost low: one keep-alive client, one generator per worker (no locks),
//! reused buffers, fixed-size histograms merged at the end. Every answer is
//! checked; the exit code is 1 if any failed, 2 on usage or configuration
//! errors.

pub mod baseline;
pub mod callbacks;
pub mod console;
pub mod crm;
pub mod outbound;
pub mod report;
pub mod routing;
pub mod runner;
pub mod search;
pub mod stats;
pub mod widget;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Url;

use crate::config::{AccountKind, Settings};
use crate::wechat::crypto::MsgCrypt;
use callbacks::CallbackSpec;
use report::Comparison;
use runner::{RunConfig, Stop};

/// Exit code for usage and configuration errors (as `check-config`).
const USAGE_EXIT: u8 = 2;
/// Run length when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION_SECS: f64 = 10.0;

/// `kefu load …`
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub command: LoadCommand,
}

/// The load tool's subcommands.
#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Send signed, encrypted safe-mode Official Account text callbacks to a
    /// running Kefu and report throughput, latency and failures.
    Callbacks(CallbacksArgs),
    /// A trivial server answering `success` to POST /wechat/{account}: the
    /// HTTP floor to compare Kefu against. Prints `listening ADDR` first.
    #[command(hide = true)]
    BaselineServer(BaselineArgs),
    /// Accept agent replies into the outbox at a fixed rate and measure
    /// their delivery to a stand-in for WeChat's API (in this process, on a
    /// fresh database).
    Outbound(outbound::OutboundArgs),
    /// Seed thousands of agents and customers on a fresh database and drive
    /// the conversation pipeline and routing (in this process) with inbound
    /// messages; report decision and handling latency and check routing's
    /// invariants (exit 1 when one fails).
    Routing(routing::RoutingArgs),
    /// Start Kefu on a fresh database and sync a whole company through the
    /// CRM API (agents, groups, regions, customers, bindings, vehicle
    /// trades) while callbacks keep coming; report rows per second and the
    /// callbacks' latency during the sync against a baseline.
    Crm(crm::CrmArgs),
    /// Seed thousands of agents with open conversations, start `kefu serve`
    /// on them, open every agent's WebSocket, and time customers' messages
    /// from callback to socket; then a reconnect storm (exit 1 on a lost,
    /// duplicated or out-of-sequence event).
    Console(console::ConsoleArgs),
    /// Seed millions of messages on a fresh database, index them, start
    /// `kefu serve` on it and time history searches by an admin, a
    /// supervisor and an agent (exit 1 when a search that must find
    /// something finds nothing or fails).
    Search(search::SearchArgs),
    /// Start thousands of website visitors' chats and hold their sockets
    /// (in child processes), open agents' consoles, and time visitors'
    /// messages from request to the agent's socket; report memory per idle
    /// connection (exit 1 on a lost, duplicated or out-of-sequence message
    /// or a dropped socket).
    Widget(widget::WidgetArgs),
    /// Holds visitors' sockets for `kefu load widget` (its URLs on stdin).
    #[command(hide = true)]
    WidgetVisitors(widget::VisitorsArgs),
}

/// `kefu load callbacks …`
#[derive(Debug, Clone, Args)]
pub struct CallbacksArgs {
    /// Base URL of the Kefu under test [default: from kefu.toml's
    /// server.host and server.port, e.g. http://127.0.0.1:8080].
    #[arg(long)]
    pub target: Option<String>,
    /// Official Account (account file `id`) to play: its token, AES key and
    /// appid sign and encrypt the callbacks; the URL is /wechat/{account}.
    #[arg(long, default_value = "demo-oa")]
    pub account: String,
    /// The account's original id, the messages' ToUserName.
    #[arg(long, default_value = "gh_4b3c2d1e0f9a")]
    pub to_user: String,
    /// Requests per second on a fixed schedule (open loop: a request that
    /// waits for a free worker has its latency counted from its due time).
    /// 0 = closed loop, as fast as the answers come.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Run for this many seconds [default: 10 unless --requests].
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<f64>,
    /// Send exactly this many requests (duplicates included).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Closed loop: number of workers. Open loop: most requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Number of distinct simulated followers (openids oLOAD…).
    #[arg(long, default_value_t = 1000)]
    pub followers: u32,
    /// Percentage of requests that re-send an already answered message
    /// (same MsgId, same body), as WeChat's retries do.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Per-request timeout in seconds (WeChat gives up after 5).
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// First run the same load against a baseline server started as a
    /// child process, then against --target, and compare.
    #[arg(long)]
    pub baseline: bool,
    /// Workers of the --baseline server [default: one per core].
    #[arg(long, requires = "baseline")]
    pub baseline_workers: Option<usize>,
}

/// `kefu load baseline-server …`
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// HTTP worker threads [default: one per core, like Kefu].
    #[arg(long)]
    pub workers: Option<usize>,
}

/// The first Official Account of the configuration: the one the load
/// tools play customers on.
pub(crate) fn official_account(settings: &Settings) -> anyhow::Result<&crate::config::Account> {
    settings
        .accounts
        .iter()
        .find(|a| a.kind == AccountKind::OfficialAccount)
        .context("the configuration has no Official Account to play")
}

/// A load tool's fresh database: a temporary SQLite file in `dir` unless
/// a `--database-url` was given, and the configuration on it.
pub(crate) struct Scratch {
    pub dir: std::path::PathBuf,
    pub db_file: std::path::PathBuf,
    pub db_url: String,
    pub settings: Settings,
}

pub(crate) fn scratch(
    tool: &str,
    database_url: Option<&str>,
    config_dir: &Path,
) -> anyhow::Result<Scratch> {
    let dir = std::env::temp_dir().join(format!(
        "kefu-load-{tool}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let db_file = dir.join("kefu.db");
    let db_url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", db_file.display()));
    let env =
        crate::config::EnvSnapshot::from_process().with("KEFU__DATABASE__URL", db_url.as_str());
    let settings = Settings::load_with_env(config_dir, &env)
        .map_err(|e| anyhow::anyhow!("configuration problems (run `kefu check-config`):\n{e}"))?;
    Ok(Scratch {
        dir,
        db_file,
        db_url,
        settings,
    })
}

/// Prints a load tool's report (JSON or text) and gives the exit code:
/// success when `ok`, failure when not, usage when the run could not start.
fn finish<R: serde::Serialize>(
    result: anyhow::Result<R>,
    json: bool,
    render: impl Fn(&R) -> String,
    ok: impl Fn(&R) -> bool,
) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            } else {
                print!("{}", render(&report));
            }
            if ok(&report) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(USAGE_EXIT)
        }
    }
}

/// Runs `kefu load …`; `config_dir` is only read by `callbacks`.
pub async fn run(args: LoadArgs, config_dir: &Path) -> ExitCode {
    match args.command {
        LoadCommand::BaselineServer(a) => baseline::serve(a).await,
        LoadCommand::Outbound(a) => {
            let json = a.json;
            finish(
                outbound::run(a, config_dir).await,
                json,
                outbound::OutboundReport::render,
                outbound::all_ok,
            )
        }
        LoadCommand::Routing(a) => {
            let json = a.json;
            finish(
                routing::run(a, config_dir).await,
                json,
                routing::RoutingReport::render,
                |r: &routing::RoutingReport| r.invariants.ok(),
            )
        }
        LoadCommand::Console(a) => {
            let json = a.json;
            finish(
                console::run(a, config_dir).await,
                json,
                console::ConsoleReport::render,
                console::ConsoleReport::ok,
            )
        }
        LoadCommand::Widget(a) => {
            let json = a.json;
            finish(
                widget::run(a, config_dir).await,
                json,
                widget::WidgetReport::render,
                widget::WidgetReport::ok,
            )
        }
        LoadCommand::WidgetVisitors(a) => match widget::hold_visitors(a).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        LoadCommand::Search(a) => {
            let json = a.json;
            finish(
                search::run(a, config_dir).await,
                json,
                search::SearchReport::render,
                search::SearchReport::ok,
            )
        }
        LoadCommand::Crm(a) => {
            let json = a.json;
            finish(
                crm::run(a, config_dir).await,
                json,
                crm::CrmLoadReport::render,
                crm::CrmLoadReport::ok,
            )
        }
        LoadCommand::Callbacks(a) => match callbacks_command(a, config_dir).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(USAGE_EXIT)
            }
        },
    }
}

impl CallbacksArgs {
    /// Checks the numbers and derives the run configuration.
    pub fn run_config(&self) -> anyhow::Result<RunConfig> {
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be 0 (closed loop) or a positive number of requests per second");
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            bail!("--concurrency must be between 1 and 100000");
        }
        if self.followers == 0 {
            bail!("--followers must be at least 1");
        }
        if !(0.0..=100.0).contains(&self.duplicates) {
            bail!("--duplicates is a percentage between 0 and 100");
        }
        if !self.timeout.is_finite() || self.timeout <= 0.0 {
            bail!("--timeout must be a positive number of seconds");
        }
        let stop = match (self.duration, self.requests) {
            (_, Some(0)) => bail!("--requests must be at least 1"),
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) if !d.is_finite() || d <= 0.0 => {
                bail!("--duration must be a positive number of seconds")
            }
            (Some(d), None) => Stop::After(Duration::from_secs_f64(d)),
            (None, None) => Stop::After(Duration::from_secs_f64(DEFAULT_DURATION_SECS)),
        };
        Ok(RunConfig {
            rate: (self.rate > 0.0).then_some(self.rate),
            stop,
            concurrency: self.concurrency,
            timeout: Duration::from_secs_f64(self.timeout),
        })
    }
}

/// The callback URL `{base}/wechat/{account}`.
pub fn callback_url(base: &str, account: &str) -> anyhow::Result<Url> {
    let url = Url::parse(&format!("{}/wechat/{account}", base.trim_end_matches('/')))
        .with_context(|| format!("--target {base:?} is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("--target must be an http:// or https:// URL, got {base:?}");
    }
    Ok(url)
}

/// The account's crypto and the default target, from the configuration.
fn load_account(config_dir: &Path, args: &CallbacksArgs) -> anyhow::Result<(MsgCrypt, String)> {
    let settings = Settings::load(config_dir).map_err(|e| {
        anyhow::anyhow!(
            "the configuration in {} has problems (run `kefu check-config`):\n{e}",
            config_dir.display()
        )
    })?;
    let Some(account) = settings.account(&args.account) else {
        let known: Vec<&str> = settings
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::OfficialAccount)
            .map(|a| a.id.as_str())
            .collect();
        bail!(
            "no account {:?} in {}; Official Accounts there: {}",
            args.account,
            config_dir.join("accounts").display(),
            known.join(", ")
        );
    };
    if account.kind != AccountKind::OfficialAccount {
        bail!(
            "account {:?} is {}; the load tool plays Official Account callbacks only",
            args.account,
            account.kind.as_str()
        );
    }
    let Some(key) = &account.encoding_aes_key else {
        bail!(
            "account {:?} has no encoding_aes_key; safe-mode callbacks need one ({})",
            args.account,
            account.file.display()
        );
    };
    let crypt = MsgCrypt::new(account.token.expose(), key.expose(), &account.app_id)
        .with_context(|| format!("account {:?}: unusable encoding_aes_key", args.account))?;
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        h => h,
    };
    let default_target = format!("http://{host}:{}", settings.server.port);
    Ok((crypt, default_target))
}

/// `kefu load callbacks`: returns whether every answer was correct.
async fn callbacks_command(args: CallbacksArgs, config_dir: &Path) -> anyhow::Result<bool> {
    let cfg = args.run_config()?;
    let (crypt, default_target) = load_account(config_dir, &args)?;
    let target = args.target.clone().unwrap_or(default_target);
    let url = callback_url(&target, &args.account)?;
    let spec_for = |url: Url| {
        Arc::new(CallbackSpec::new(
            crypt.clone(),
            url,
            args.to_user.clone(),
            args.followers,
            args.duplicates / 100.0,
        ))
    };

    if !args.baseline {
        let report = runner::run(&cfg, spec_for(url)).await?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.render("Kefu"));
        }
        return Ok(report.all_ok());
    }

    // Killed by `stop` before Kefu is measured, so the two never compete
    // for the CPU; on error paths dropping it kills it too.
    let child = baseline::BaselineChild::spawn(args.baseline_workers).await?;
    let addr = child.addr;
    if !args.json {
        eprintln!("baseline server on {addr}; running the load against it first");
    }
    let base_url = callback_url(&format!("http://{addr}"), &args.account)?;
    let baseline_report = runner::run(&cfg, spec_for(base_url)).await;
    child.stop().await?;
    let baseline_report = baseline_report?;
    if !args.json {
        eprintln!("now against {url}");
    }
    let kefu_report = runner::run(&cfg, spec_for(url)).await?;
    let comparison = Comparison::new(baseline_report, kefu_report);
    if args.json {
        println!("{}", serde_json::to_string(&comparison)?);
    } else {
        print!("{}", comparison.render());
    }
    Ok(comparison.all_ok())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> CallbacksArgs {
        let cli = Cli::try_parse_from(["kefu", "load", "callbacks"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Load(LoadArgs {
                command: LoadCommand::Callbacks(a),
            }) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_a_ten_second_closed_loop() {
        let a = parse(&[]);
        assert_eq!(a.account, "demo-oa");
        let cfg = a.run_config().unwrap();
        assert_eq!(cfg.rate, None);
        assert_eq!(cfg.stop, Stop::After(Duration::from_secs(10)));
        assert_eq!(cfg.concurrency, 32);
        assert_eq!(cfg.timeout, Duration::from_secs(5));
    }

    #[test]
    fn rate_and_requests_make_an_open_loop() {
        let a = parse(&[
            "--rate",
            "500",
            "--requests",
            "1000",
            "--concurrency",
            "8",
            "--followers",
            "3",
            "--duplicates",
            "10",
            "--json",
            "--target",
            "http://h:1",
        ]);
        let cfg = a.run_config().unwrap();
        assert_eq!(cfg.rate, Some(500.0));
        assert_eq!(cfg.stop, Stop::Requests(1000));
        assert!(a.json && a.followers == 3 && a.duplicates == 10.0);
    }

    #[test]
    fn bad_numbers_are_refused_with_the_flag_named() {
        for (args, flag) in [
            (&["--rate=-1"][..], "--rate"),
            (&["--rate=inf"][..], "--rate"),
            (&["--concurrency", "0"][..], "--concurrency"),
            (&["--followers", "0"][..], "--followers"),
            (&["--duplicates", "101"][..], "--duplicates"),
            (&["--duration", "0"][..], "--duration"),
            (&["--requests", "0"][..], "--requests"),
            (&["--timeout", "0"][..], "--timeout"),
        ] {
            let err = parse(args).run_config().unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
        assert!(
            Cli::try_parse_from([
                "kefu",
                "load",
                "callbacks",
                "--duration",
                "1",
                "--requests",
                "1"
            ])
            .is_err()
        );
    }

    #[test]
    fn baseline_server_is_hidden_but_parses() {
        let cli = Cli::try_parse_from([
            "kefu",
            "load",
            "baseline-server",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Load(LoadArgs {
                command: LoadCommand::BaselineServer(BaselineArgs {
                    workers: Some(2),
                    ..
                })
            })
        ));
    }

    #[test]
    fn callback_urls() {
        assert_eq!(
            callback_url("http://127.0.0.1:8080/", "demo-oa")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/wechat/demo-oa"
        );
        assert_eq!(
            callback_url("https://kefu.example.com/prefix", "a")
                .unwrap()
                .as_str(),
            "https://kefu.example.com/prefix/wechat/a"
        );
        assert!(callback_url("127.0.0.1:8080", "a").is_err());
        assert!(callback_url("ftp://x", "a").is_err());
    }

    #[test]
    fn the_shipped_example_account_is_found() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wechat-config");
        let (crypt, target) = load_account(&dir, &parse(&[])).unwrap();
        assert_eq!(crypt.receive_id(), "wx00000000fake0000");
        assert!(target.starts_with("http://"), "{target}");
        let err = load_account(&dir, &parse(&["--account", "demo-kf"])).unwrap_err();
        assert!(err.to_string().contains("Official Account"), "{err}");
        let err = load_account(&dir, &parse(&["--account", "nope"])).unwrap_err();
        assert!(err.to_string().contains("demo-oa"), "{err}");
    }
}
