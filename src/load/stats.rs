//! Latency statistics: a log-linear histogram in the spirit of HdrHistogram.
//!
//! Values (microseconds) below 256 are counted exactly; above, each power of
//! two is split into 128 equal buckets, so a reported value is at most 1/128
//! (< 0.8 %) above the true one. The whole table is 7 424 counters (58 KiB),
//! recording is a few instructions and never allocates, and histograms of
//! several workers merge by adding counters.

use std::time::Duration;

use serde::Serialize;

/// log2 of the number of sub-buckets per power of two.
const SUB_BITS: u32 = 7;
/// Sub-buckets per power of two.
const SUB: usize = 1 << SUB_BITS;
/// Values below this are recorded exactly (one bucket each).
const EXACT: usize = 2 * SUB;
/// 256 exact buckets plus 128 for each power of two from 2^8 to 2^63.
const BUCKETS: usize = EXACT + (64 - (SUB_BITS as usize + 1)) * SUB;

/// The bucket holding `v`.
fn index(v: u64) -> usize {
    if v < EXACT as u64 {
        // Lossless: below 256.
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // 8..=63
    let shift = exp - SUB_BITS;
    // The top 8 significant bits of `v`, minus the leading one: 0..128.
    let mantissa = (v >> shift) as usize - SUB;
    EXACT + (exp - SUB_BITS - 1) as usize * SUB + mantissa
}

/// The largest value that falls into bucket `idx`.
fn highest_equivalent(idx: usize) -> u64 {
    if idx < EXACT {
        return idx as u64;
    }
    let k = idx - EXACT;
    let exp = (k / SUB) as u32 + SUB_BITS + 1;
    let shift = exp - SUB_BITS;
    let low = ((k % SUB + SUB) as u64) << shift;
    low + ((1u64 << shift) - 1)
}

/// A latency histogram of microsecond values with < 0.8 % relative error.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value in microseconds.
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    /// Records a duration, rounded down to whole microseconds.
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Smallest recorded value (exact); 0 when empty.
    pub fn min(&self) -> u64 {
        if self.is_empty() { 0 } else { self.min }
    }

    /// Largest recorded value (exact); 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Arithmetic mean (exact); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at percentile `p` (0–100) by the nearest-rank method: the
    /// smallest recorded value such that at least `p` % of all values are
    /// less than or equal to it. Exact below 256 µs, at most 1/128 too high
    /// above, never above the maximum. 0 when empty.
    pub fn value_at_percentile(&self, p: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let p = p.clamp(0.0, 100.0);
        // Nearest rank, 1-based; the float product is exact enough for any
        // count a load run reaches (< 2^53).
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (idx, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest_equivalent(idx).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Latency percentiles of a run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a microsecond histogram in milliseconds.
    pub fn from_histogram(h: &Histogram) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_percentile(50.0)),
            p90: ms(h.value_at_percentile(90.0)),
            p99: ms(h.value_at_percentile(99.0)),
            p999: ms(h.value_at_percentile(99.9)),
            max: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact nearest-rank percentile of sorted data, the reference.
    fn exact(sorted: &[u64], p: f64) -> u64 {
        let n = sorted.len() as f64;
        let rank = ((p / 100.0 * n).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in (1..=100).rev() {
            h.record(v);
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.value_at_percentile(0.0), 1);
        assert_eq!(h.value_at_percentile(50.0), 50);
        assert_eq!(h.value_at_percentile(90.0), 90);
        assert_eq!(h.value_at_percentile(99.0), 99);
        assert_eq!(h.value_at_percentile(99.9), 100);
        assert_eq!(h.value_at_percentile(100.0), 100);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.value_at_percentile(99.0), 0);
        assert_eq!(
            LatencySummary::from_histogram(&h),
            LatencySummary {
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0
            }
        );
    }

    #[test]
    fn single_value_is_every_percentile() {
        let mut h = Histogram::new();
        h.record(123_456);
        for p in [0.0, 50.0, 99.9, 100.0] {
            assert_eq!(h.value_at_percentile(p), 123_456);
        }
    }

    #[test]
    fn bucket_bounds_are_consistent_and_monotonic() {
        let mut probes: Vec<u64> = (0..5000).collect();
        for shift in 8..64 {
            let base = 1u64 << shift;
            probes.extend([
                base - 1,
                base,
                base + 1,
                base | (base >> 1),
                base | (base - 1),
            ]);
        }
        probes.push(u64::MAX);
        probes.sort_unstable();
        let mut last = 0;
        for v in probes {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last, "index not monotonic at {v}");
            last = i;
            let hi = highest_equivalent(i);
            assert!(hi >= v, "{v}: bucket top {hi}");
            assert_eq!(index(hi), i, "{v}: top {hi} in another bucket");
            // Relative error bound: a bucket is at most 1/128 of its values wide.
            assert!((hi - v) as f64 <= v as f64 / 128.0 + 1.0, "{v} -> {hi}");
        }
    }

    #[test]
    fn percentiles_match_sorted_vector_within_precision() {
        // Deterministic pseudo-random latencies, heavy tailed: 50 µs to ~2 s.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut data = Vec::new();
        let mut h = Histogram::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 50 + (x % 1000) * (x % 1000) * (x % 3 + 1) * (x >> 60) / 8;
            data.push(v);
            h.record(v);
        }
        data.sort_unstable();
        for p in [1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0] {
            let want = exact(&data, p);
            let got = h.value_at_percentile(p);
            assert!(got >= want, "p{p}: {got} < {want}");
            assert!(
                (got - want) as f64 <= want as f64 / 128.0 + 1.0,
                "p{p}: {got} vs {want}"
            );
        }
        assert_eq!(h.max(), *data.last().unwrap());
        assert_eq!(h.min(), data[0]);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in 0..3000u64 {
            let v = v * v;
            if v % 3 == 0 { &mut a } else { &mut b }.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a.len(), all.len());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.max(), all.max());
        for p in [10.0, 50.0, 90.0, 99.0, 99.9] {
            assert_eq!(a.value_at_percentile(p), all.value_at_percentile(p));
        }
        // Merging into an empty histogram keeps the other's minimum.
        let mut empty = Histogram::new();
        empty.merge(&b);
        assert_eq!(empty.min(), b.min());
        assert_eq!(empty.value_at_percentile(100.0), b.max());
    }

    #[test]
    fn summary_is_in_milliseconds_and_ordered() {
        let mut h = Histogram::new();
        for v in [500, 1_000, 1_500, 2_000, 250_000] {
            h.record(v);
        }
        h.record_duration(Duration::from_millis(3));
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.min, 0.5);
        assert_eq!(s.max, 250.0);
        assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99);
        assert!(s.p99 <= s.p999 && s.p999 <= s.max);
        let json = serde_json::to_value(s).unwrap();
        assert!(json.get("p99.9").is_some(), "{json}");
    }
}
