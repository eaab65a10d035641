//! `kefu load`: the load tool, end to end against its own baseline server
//! (the real callback endpoint has its own tests).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

use crate::helpers::repo_config_dir;

/// The binary with the repository's example configuration and a clean
/// environment.
fn kefu() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kefu"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("KEFU_") {
            c.env_remove(k);
        }
    }
    c.arg("--config").arg(repo_config_dir());
    c
}

/// `kefu load baseline-server` as a child, killed on drop.
struct Baseline {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Baseline {
    /// Starts it and reads its first line, `listening ADDR`: no sleeping.
    fn start() -> Self {
        let mut child = kefu()
            .args([
                "load",
                "baseline-server",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start kefu load baseline-server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self {
            child,
            _stdout: stdout,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kefu load callbacks ARGS --json` and parses its one JSON object.
fn callbacks(args: &[&str]) -> (Option<i32>, Value) {
    let out = kefu()
        .args(["load", "callbacks", "--json"])
        .args(args)
        .output()
        .expect("run kefu load callbacks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

/// The latency percentiles are present, positive and in order.
fn assert_percentiles_ordered(report: &Value) {
    let l = &report["latency_ms"];
    let ms: Vec<f64> = ["min", "p50", "p90", "p99", "p99.9", "max"]
        .iter()
        .map(|k| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("latency_ms.{k} missing in {report}"))
        })
        .collect();
    assert!(ms[0] > 0.0, "{report}");
    assert!(ms.windows(2).all(|w| w[0] <= w[1]), "not ordered: {ms:?}");
}

#[test]
fn closed_loop_against_the_baseline_server_answers_everything() {
    let server = Baseline::start();
    let (code, r) = callbacks(&[
        "--target",
        &server.url(),
        "--requests",
        "200",
        "--concurrency",
        "8",
        "--duplicates",
        "10",
    ]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["requests"], 200, "{r}");
    assert_eq!(r["ok"], 200, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["answers"]["success"], 200, "{r}");
    assert_eq!(r["mode"], "closed-loop");
    assert!(r["duplicates"].as_u64().unwrap() > 0, "{r}");
    assert!(r["throughput_ok_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(
        r["target"],
        format!("{}/wechat/demo-oa", server.url()),
        "{r}"
    );
    assert_percentiles_ordered(&r);
}

#[test]
fn open_loop_keeps_the_rate() {
    let server = Baseline::start();
    let (code, r) = callbacks(&[
        "--target",
        &server.url(),
        "--rate",
        "400",
        "--requests",
        "100",
        "--concurrency",
        "4",
    ]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["ok"], 100, "{r}");
    assert_eq!(r["mode"], "open-loop");
    // 100 requests due over 0.25 s.
    let secs = r["duration_secs"].as_f64().unwrap();
    assert!(secs >= 0.24, "{r}");
    assert_percentiles_ordered(&r);
}

#[test]
fn baseline_mode_compares_two_runs_and_stops_its_child() {
    let target = Baseline::start();
    let (code, r) = callbacks(&[
        "--baseline",
        "--baseline-workers",
        "1",
        "--target",
        &target.url(),
        "--requests",
        "300",
        "--concurrency",
        "8",
    ]);
    assert_eq!(code, Some(0), "{r}");
    for side in ["baseline", "kefu"] {
        assert_eq!(r[side]["ok"], 300, "{r}");
        assert_eq!(r[side]["failed"], 0, "{r}");
        assert_percentiles_ordered(&r[side]);
    }
    assert_ne!(r["baseline"]["target"], r["kefu"]["target"], "{r}");
    assert!(r["ratio"]["throughput"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["ratio"]["p99"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn failures_are_counted_by_kind_and_fail_the_exit_code() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, r) = callbacks(&[
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "--requests",
        "20",
        "--concurrency",
        "2",
    ]);
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["failed"], 20, "{r}");
    assert_eq!(r["failures"]["transport"], 20, "{r}");
    assert!(
        r["failure_examples"]["transport"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{r}"
    );
}

#[test]
fn unknown_account_is_a_usage_error() {
    let out = kefu()
        .args(["load", "callbacks", "--account", "nope", "--requests", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no account \"nope\"") && err.contains("demo-oa"),
        "{err}"
    );
}

#[test]
fn outbound_mode_delivers_every_accepted_reply_with_one_token() {
    let out = kefu()
        .args([
            "load",
            "outbound",
            "--rate",
            "300",
            "--duration",
            "1",
            "--customers",
            "20",
            "--json",
        ])
        .output()
        .expect("kefu runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["accepted"], 300);
    assert_eq!(report["delivered"], 300);
    assert_eq!(report["token_calls"], 1);
    assert_eq!(report["rejected_tokens"], 0);
    let l = &report["latency_ms"];
    assert!(l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap());
}

#[tokio::test]
async fn the_crm_sync_benchmark_applies_every_row_with_callbacks_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDb::new(dir.path()).await;
    let args = kefu::load::crm::CrmArgs {
        agents: 20,
        groups: 4,
        customers: 300,
        vehicles: 60,
        batch: 100,
        callback_rate: 20.0,
        baseline_secs: 0.5,
        database_url: Some(db.url.clone()),
        json: false,
    };
    let report = kefu::load::crm::run(args, &crate::helpers::repo_config_dir())
        .await
        .expect("the benchmark runs");
    assert!(report.ok(), "{}", report.render());
    let rows: Vec<(&str, u64)> = report.kinds.iter().map(|k| (k.kind, k.applied)).collect();
    assert_eq!(
        rows,
        [
            ("groups", 4),
            ("regions", 4),
            ("agents", 20),
            ("customers", 300),
            ("bindings", 300),
            ("vehicles", 60)
        ]
    );
    assert!(report.during_sync_callbacks > 0, "{}", report.render());
}

#[tokio::test]
async fn the_console_benchmark_delivers_every_message_once_and_survives_a_reconnect_storm() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDb::new(dir.path()).await;
    let args = kefu::load::console::ConsoleArgs {
        agents: 20,
        per_agent: 3,
        rate: 100.0,
        duration: 1.0,
        storm_messages: 30,
        database_url: Some(db.url.clone()),
        json: false,
        server_bin: Some(env!("CARGO_BIN_EXE_kefu").into()),
    };
    let report = kefu::load::console::run(args, &repo_config_dir())
        .await
        .expect("the benchmark runs");
    assert!(report.ok(), "{}", report.render());
    assert_eq!(report.assigned, 60, "{}", report.render());
    assert_eq!(
        (report.delivered, report.storm_delivered),
        (100, 30),
        "{}",
        report.render()
    );
    assert_eq!(report.storm_reconnected, 20);
    assert!(report.server_peak_rss_mb > 0.0);
}

#[tokio::test]
async fn the_widget_benchmark_holds_every_visitor_and_delivers_every_message_once() {
    // On PostgreSQL + Redis (when the suite runs there), as a cluster of two.
    let postgres = std::env::var("KEFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let redis_url = std::env::var("KEFU_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let instances = if postgres.is_some() && redis_url.is_some() {
        2
    } else {
        1
    };
    let args = kefu::load::widget::WidgetArgs {
        visitors: 60,
        agents: 6,
        rate: 50.0,
        duration: 1.0,
        handoff_rate: 200.0,
        settle: 0.5,
        instances,
        per_process: 25,
        postgres,
        redis_url,
        json: false,
        server_bin: Some(env!("CARGO_BIN_EXE_kefu").into()),
    };
    let report = kefu::load::widget::run(args, &repo_config_dir())
        .await
        .expect("the benchmark runs");
    assert!(report.ok(), "{}", report.render());
    assert_eq!(
        (report.sockets_open, report.assigned, report.delivered),
        (60, 60, 50),
        "{}",
        report.render()
    );
    // Each visitor's page saw its own messages (and its agent's greeting).
    assert!(report.visitor_frames >= 50, "{}", report.render());
    assert!(report.server_rss_mb_idle > 0.0);
}
