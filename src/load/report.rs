//! The result of a load run: a serialisable report, printed as a table for
//! people or as one JSON object with `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{Histogram, LatencySummary};

/// How the accepted answers looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Answers {
    /// Body `success`.
    pub success: u64,
    /// Empty body.
    pub empty: u64,
    /// Valid encrypted passive replies.
    pub encrypted_reply: u64,
}

/// One run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The callback URL (without query).
    pub target: String,
    /// `open-loop` (fixed rate) or `closed-loop`.
    pub mode: &'static str,
    /// Requests per second (open loop).
    pub rate: Option<f64>,
    /// Workers (closed loop) or the most requests in flight (open loop).
    pub concurrency: usize,
    /// Distinct simulated followers.
    pub followers: usize,
    /// The requested share of re-sends, in percent.
    pub duplicate_percent: f64,
    /// Requests sent, re-sends included.
    pub requests: u64,
    /// Re-sends of an already sent message (same MsgId, same body).
    pub duplicates: u64,
    /// Answers that passed the check.
    pub ok: u64,
    /// Requests that failed, all kinds.
    pub failed: u64,
    /// Failures by kind: `status_NNN`, `bad_body`, `transport`, `timeout`.
    pub failures: BTreeMap<String, u64>,
    /// The first failure of each kind, described.
    pub failure_examples: BTreeMap<String, String>,
    /// The accepted answers by form.
    pub answers: Answers,
    /// Open loop: requests sent more than 10 ms after their due time
    /// (the workers were all busy; raise `--concurrency`).
    pub late_sends: Option<u64>,
    /// Wall time from the first due time to the last answer.
    pub duration_secs: f64,
    /// `ok / duration_secs`.
    pub throughput_ok_per_sec: f64,
    /// Latency of the accepted answers, in milliseconds.
    pub latency_ms: LatencySummary,
    /// The same latencies, to merge runs (`kefu load crm`).
    #[serde(skip)]
    pub histogram: Option<Histogram>,
}

impl Report {
    /// Whether every request was answered correctly.
    pub fn all_ok(&self) -> bool {
        self.failed == 0
    }

    /// The human-readable table.
    pub fn render(&self, title: &str) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_table(&mut s, title);
        s
    }

    fn write_table(&self, s: &mut String, title: &str) -> std::fmt::Result {
        let mode = match self.rate {
            Some(r) => format!(
                "open loop at {r} req/s, up to {} in flight",
                self.concurrency
            ),
            None => format!("closed loop, {} workers", self.concurrency),
        };
        writeln!(s, "{title}: {}", self.target)?;
        writeln!(
            s,
            "  load         {mode}; {} followers; {}% duplicates",
            self.followers, self.duplicate_percent
        )?;
        writeln!(
            s,
            "  requests     {} sent ({} duplicates), {} ok, {} failed",
            self.requests, self.duplicates, self.ok, self.failed
        )?;
        writeln!(s, "  duration     {:.2} s", self.duration_secs)?;
        writeln!(s, "  throughput   {:.1} ok/s", self.throughput_ok_per_sec)?;
        let l = &self.latency_ms;
        writeln!(
            s,
            "  latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        writeln!(
            s,
            "  answers      {} success, {} empty, {} encrypted replies",
            self.answers.success, self.answers.empty, self.answers.encrypted_reply
        )?;
        if let Some(late) = self.late_sends.filter(|&n| n > 0) {
            writeln!(
                s,
                "  late sends   {late} sent > 10 ms after their due time (all workers busy: \
                 latencies include that wait; raise --concurrency)"
            )?;
        }
        for (kind, n) in &self.failures {
            let example = self
                .failure_examples
                .get(kind)
                .map(String::as_str)
                .unwrap_or_default();
            writeln!(s, "  failed       {kind}: {n}  e.g. {example}")?;
        }
        Ok(())
    }
}

/// Kefu relative to the baseline server (`None` when the baseline value is 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Kefu throughput / baseline throughput.
    pub throughput: Option<f64>,
    /// Kefu p99 latency / baseline p99 latency.
    pub p99: Option<f64>,
}

/// The `--baseline` result: the same load against the trivial server and
/// against Kefu.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: Report,
    pub kefu: Report,
    pub ratio: Ratio,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Comparison {
    /// Pairs the two reports and computes the ratios.
    pub fn new(baseline: Report, kefu: Report) -> Self {
        let ratio = Ratio {
            throughput: ratio(kefu.throughput_ok_per_sec, baseline.throughput_ok_per_sec),
            p99: ratio(kefu.latency_ms.p99, baseline.latency_ms.p99),
        };
        Self {
            baseline,
            kefu,
            ratio,
        }
    }

    /// Whether both runs answered every request correctly.
    pub fn all_ok(&self) -> bool {
        self.baseline.all_ok() && self.kefu.all_ok()
    }

    /// Both tables and a side-by-side summary.
    pub fn render(&self) -> String {
        let mut s = self.baseline.render("Baseline (trivial actix-web server)");
        s.push('\n');
        s.push_str(&self.kefu.render("Kefu"));
        s.push('\n');
        let fmt_ratio = |r: Option<f64>| r.map_or_else(|| "n/a".into(), |r| format!("{r:.3}"));
        let b = &self.baseline;
        let k = &self.kefu;
        let _ = writeln!(
            s,
            "{:<16}{:>12}{:>12}{:>16}",
            "", "baseline", "kefu", "kefu/baseline"
        );
        let _ = writeln!(
            s,
            "{:<16}{:>12.1}{:>12.1}{:>16}",
            "throughput ok/s",
            b.throughput_ok_per_sec,
            k.throughput_ok_per_sec,
            fmt_ratio(self.ratio.throughput)
        );
        for (name, bv, kv) in [
            ("p50 ms", b.latency_ms.p50, k.latency_ms.p50),
            ("p99 ms", b.latency_ms.p99, k.latency_ms.p99),
            ("p99.9 ms", b.latency_ms.p999, k.latency_ms.p999),
        ] {
            let _ = writeln!(
                s,
                "{name:<16}{bv:>12.3}{kv:>12.3}{:>16}",
                fmt_ratio(ratio(kv, bv))
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Histogram;

    fn report(throughput: f64, p99_us: u64, failed: u64) -> Report {
        let mut h = Histogram::new();
        for v in [100, 200, p99_us] {
            h.record(v);
        }
        Report {
            target: "http://127.0.0.1:1/wechat/demo-oa".into(),
            mode: "closed-loop",
            rate: None,
            concurrency: 8,
            followers: 100,
            duplicate_percent: 0.0,
            requests: 10,
            duplicates: 0,
            ok: 10 - failed,
            failed,
            failures: if failed > 0 {
                BTreeMap::from([("status_500".to_string(), failed)])
            } else {
                BTreeMap::new()
            },
            failure_examples: BTreeMap::new(),
            answers: Answers {
                success: 10 - failed,
                ..Answers::default()
            },
            late_sends: None,
            duration_secs: 1.0,
            throughput_ok_per_sec: throughput,
            latency_ms: LatencySummary::from_histogram(&h),
            histogram: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v = serde_json::to_value(report(100.0, 5000, 1)).unwrap();
        for key in [
            "requests",
            "ok",
            "failed",
            "failures",
            "duration_secs",
            "throughput_ok_per_sec",
            "latency_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["failures"]["status_500"], 1);
        assert_eq!(v["latency_ms"]["max"], 5.0);
    }

    #[test]
    fn comparison_ratios() {
        let c = Comparison::new(report(1000.0, 2000, 0), report(250.0, 8000, 0));
        assert_eq!(c.ratio.throughput, Some(0.25));
        assert_eq!(c.ratio.p99, Some(4.0));
        assert!(c.all_ok());
        let text = c.render();
        assert!(
            text.contains("kefu/baseline") && text.contains("0.250"),
            "{text}"
        );
        let zero = Comparison::new(report(0.0, 0, 10), report(1.0, 1, 1));
        assert_eq!(zero.ratio.throughput, None);
        assert!(!zero.all_ok());
    }

    #[test]
    fn table_lists_failures_by_kind() {
        let text = report(10.0, 300, 2).render("Kefu");
        assert!(text.contains("failed       status_500: 2"), "{text}");
        assert!(text.contains("p99.9"), "{text}");
    }
}
