//! Per-core statistics: one HdrHistogram per operation type, error counts by kind; and
//! merging them across cores.
use super::workload::Op;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Smallest latency told apart, in nanoseconds (1 µs).
pub const LATENCY_NS_LOW: u64 = 1_000;
/// Largest latency recorded, in nanoseconds (100 s); larger values saturate.
pub const LATENCY_NS_HIGH: u64 = 100_000_000_000;
/// Significant decimal digits kept by every histogram.
pub const LATENCY_SIGFIG: u8 = 3;

/// A fresh latency histogram (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_NS_LOW, LATENCY_NS_HIGH, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// One histogram per op plus error counts; what each core keeps and what gets merged.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latencies (ns) of successful requests, by op.
    pub hist: [Histogram<u64>; 5],
    /// Failed requests, by op.
    pub errors: [u64; 5],
    /// Failed requests by kind: the error reply's first word, `connection`, `timeout`,
    /// `protocol`.
    pub error_kinds: BTreeMap<String, u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            hist: std::array::from_fn(|_| new_histogram()),
            errors: [0; 5],
            error_kinds: BTreeMap::new(),
        }
    }
}

impl OpStats {
    /// Records one successful request.
    pub fn record(&mut self, op: Op, latency_ns: u64) {
        self.hist[op as usize].saturating_record(latency_ns.max(1));
    }

    /// Records `n` failed requests of one kind.
    pub fn error(&mut self, op: Op, kind: &str, n: u64) {
        self.errors[op as usize] += n;
        match self.error_kinds.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                self.error_kinds.insert(kind.to_string(), n);
            }
        }
    }

    /// Adds another core's statistics into these.
    pub fn merge(&mut self, other: &OpStats) {
        for (a, b) in self.hist.iter_mut().zip(other.hist.iter()) {
            a.add(b).expect("histograms share bounds");
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += b;
        }
        for (k, v) in &other.error_kinds {
            *self.error_kinds.entry(k.clone()).or_default() += v;
        }
    }

    /// Successful requests over all ops.
    pub fn count(&self) -> u64 {
        self.hist.iter().map(|h| h.len()).sum()
    }

    /// Failed requests over all ops.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Takes the contents, leaving empty statistics.
    pub fn take(&mut self) -> OpStats {
        std::mem::take(self)
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Requests recorded.
    pub count: u64,
    /// Requests per second over the measured time.
    pub throughput_per_s: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// 99.99th.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Failed requests of this op.
    pub errors: u64,
}

impl Percentiles {
    /// Summarises a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>, measured_s: f64, errors: u64) -> Percentiles {
        let us = |v: u64| v as f64 / 1000.0;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(p))
            }
        };
        Percentiles {
            count: h.len(),
            throughput_per_s: if measured_s > 0.0 {
                h.len() as f64 / measured_s
            } else {
                0.0
            },
            mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_errors() {
        let mut a = OpStats::default();
        let mut b = OpStats::default();
        a.record(Op::Get, 10_000);
        b.record(Op::Get, 2_000_000);
        b.error(Op::Set, "ERR", 2);
        a.merge(&b);
        assert_eq!(a.hist[Op::Get as usize].len(), 2);
        assert_eq!(a.errors[Op::Set as usize], 2);
        assert_eq!(a.error_kinds["ERR"], 2);
    }
}
