//! Drives the load: `concurrency` worker tasks on one keep-alive HTTP client,
//! open loop (a fixed schedule) or closed loop (as fast as answers come).
//!
//! Open loop: request `i` is due at `start + i / rate`; a worker takes the
//! next index, builds the request, sleeps until it is due and sends it.
//! When the worker gets to a request only after its due time (every worker
//! was busy waiting for the server), latency is measured from the due time,
//! so the queueing shows up in the percentiles instead of being hidden
//! (coordinated omission). When the worker is early, latency is measured
//! from the send, so the timer's wake-up delay (up to ~1 ms) does not count.
//! Closed loop: each worker sends, waits for the answer, sends again;
//! latency is measured from the send.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::time::Instant;

use super::callbacks::{Answer, Callback, CallbackSpec, FailureKind, Generator, check_answer};
use super::report::{Answers, Report};
use super::stats::{Histogram, LatencySummary};

/// An open-loop request sent later than this after its due time counts as
/// "late": the workers could not keep up with the schedule.
const LATE: Duration = Duration::from_millis(10);

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (open loop: no request is due later).
    After(Duration),
    /// After this many requests.
    Requests(u64),
}

/// Everything a run needs besides the callbacks.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Requests per second; `None` = closed loop.
    pub rate: Option<f64>,
    pub stop: Stop,
    /// Closed loop: workers. Open loop: the most requests in flight.
    pub concurrency: usize,
    /// Per request, connect to last body byte.
    pub timeout: Duration,
}

/// What one worker saw.
struct WorkerStats {
    latency: Histogram,
    sent: u64,
    duplicates: u64,
    ok: u64,
    answers: Answers,
    late: u64,
    failures: BTreeMap<FailureKind, u64>,
    examples: BTreeMap<FailureKind, String>,
}

impl WorkerStats {
    fn new() -> Self {
        Self {
            latency: Histogram::new(),
            sent: 0,
            duplicates: 0,
            ok: 0,
            answers: Answers::default(),
            late: 0,
            failures: BTreeMap::new(),
            examples: BTreeMap::new(),
        }
    }

    fn merge(&mut self, o: WorkerStats) {
        self.latency.merge(&o.latency);
        self.sent += o.sent;
        self.duplicates += o.duplicates;
        self.ok += o.ok;
        self.answers.success += o.answers.success;
        self.answers.empty += o.answers.empty;
        self.answers.encrypted_reply += o.answers.encrypted_reply;
        self.late += o.late;
        for (k, n) in o.failures {
            *self.failures.entry(k).or_default() += n;
        }
        for (k, e) in o.examples {
            self.examples.entry(k).or_insert(e);
        }
    }

    fn fail(&mut self, kind: FailureKind, detail: impl FnOnce() -> String) {
        *self.failures.entry(kind).or_default() += 1;
        self.examples.entry(kind).or_insert_with(detail);
    }
}

/// The one HTTP client of a run: keep-alive, an idle pool as big as the
/// concurrency, no Nagle delay, the per-request timeout.
pub fn client(concurrency: usize, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // Needed once per process for https targets; a second install is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// Runs the load described by `cfg` with callbacks from `spec` and returns
/// the report.
pub async fn run(cfg: &RunConfig, spec: Arc<CallbackSpec>) -> anyhow::Result<Report> {
    let client = client(cfg.concurrency, cfg.timeout)?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (deadline, max_requests) = match cfg.stop {
        Stop::After(d) => (Some(start + d), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    let interval = cfg.rate.map(|r| 1.0 / r);
    let seed_base: u64 = rand::random();

    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..cfg.concurrency {
        let worker = Worker {
            client: client.clone(),
            generator: Generator::new(spec.clone(), seed_base.wrapping_add(w as u64)),
            next: next.clone(),
            start,
            deadline,
            max_requests,
            interval,
        };
        tasks.spawn(worker.run());
    }
    let mut total = WorkerStats::new();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("a load worker panicked")?);
    }
    let elapsed = start.elapsed().as_secs_f64();

    let failed = total.failures.values().sum();
    Ok(Report {
        target: spec.url.to_string(),
        mode: if cfg.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        rate: cfg.rate,
        concurrency: cfg.concurrency,
        followers: spec.followers.len(),
        duplicate_percent: spec.duplicate_ratio * 100.0,
        requests: total.sent,
        duplicates: total.duplicates,
        ok: total.ok,
        failed,
        failures: total.failures.iter().map(|(k, n)| (k.key(), *n)).collect(),
        failure_examples: total
            .examples
            .iter()
            .map(|(k, e)| (k.key(), e.clone()))
            .collect(),
        answers: total.answers,
        late_sends: cfg.rate.map(|_| total.late),
        duration_secs: elapsed,
        throughput_ok_per_sec: if elapsed > 0.0 {
            total.ok as f64 / elapsed
        } else {
            0.0
        },
        latency_ms: LatencySummary::from_histogram(&total.latency),
        histogram: Some(total.latency.clone()),
    })
}

/// One worker task.
struct Worker {
    client: reqwest::Client,
    generator: Generator,
    next: Arc<AtomicU64>,
    start: Instant,
    deadline: Option<Instant>,
    max_requests: Option<u64>,
    /// Seconds between due times (open loop).
    interval: Option<f64>,
}

impl Worker {
    async fn run(mut self) -> WorkerStats {
        let mut stats = WorkerStats::new();
        let content_type = HeaderValue::from_static("text/xml");
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if self.max_requests.is_some_and(|n| i >= n) {
                break;
            }
            let due = match self.interval {
                Some(iv) => {
                    let due = self.start + Duration::from_secs_f64(i as f64 * iv);
                    if self.deadline.is_some_and(|d| due >= d) {
                        break;
                    }
                    Some(due)
                }
                None => {
                    if self.deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    None
                }
            };
            // Build before waiting, so building is not part of the latency.
            let cb = self.generator.next(i);
            let begin = match due {
                // Behind schedule (every worker was busy): the wait since the
                // due time is queueing the server caused, so it counts.
                Some(due) if Instant::now() >= due => {
                    if due.elapsed() > LATE {
                        stats.late += 1;
                    }
                    due
                }
                // Ahead of schedule: the timer wakes up to a millisecond
                // after the due time; that delay is ours, not the server's.
                Some(due) => {
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                }
                None => Instant::now(),
            };
            stats.sent += 1;
            stats.duplicates += u64::from(cb.duplicate);
            let outcome = self.send(&cb, &content_type).await;
            let latency = begin.elapsed();
            match outcome {
                Ok(answer) => {
                    stats.ok += 1;
                    stats.latency.record_duration(latency);
                    match answer {
                        Answer::Success => stats.answers.success += 1,
                        Answer::Empty => stats.answers.empty += 1,
                        Answer::EncryptedReply => stats.answers.encrypted_reply += 1,
                    }
                }
                Err((kind, detail)) => stats.fail(kind, || detail),
            }
        }
        stats
    }

    /// Sends one callback and checks the answer.
    async fn send(
        &self,
        cb: &Callback,
        content_type: &HeaderValue,
    ) -> Result<Answer, (FailureKind, String)> {
        let resp = self
            .client
            .post(cb.url.clone())
            .header(CONTENT_TYPE, content_type.clone())
            .body(cb.body.clone())
            .send()
            .await
            .map_err(transport_failure)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport_failure)?;
        let spec = self.generator.spec();
        check_answer(
            status,
            &body,
            &spec.crypt,
            &spec.followers[cb.follower as usize],
        )
        .map_err(|f| (f.kind, f.detail))
    }
}

/// Classifies a reqwest error as timeout or transport, with its causes.
fn transport_failure(e: reqwest::Error) -> (FailureKind, String) {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Transport
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    (kind, text)
}
