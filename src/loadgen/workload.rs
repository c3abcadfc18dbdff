//! Workload files (TOML): what to send, how fast, for how long; and the key, value and
//! operation generators they describe.
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest record count a workload may name (keys are 12-digit decimals).
pub const RECORD_COUNT_MAX: u64 = 1_000_000_000;
/// Largest value size, in bytes.
pub const VALUE_SIZE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most connections one run may open.
pub const CONNECTIONS_MAX: usize = 10_000;
/// Deepest pipeline per connection.
pub const PIPELINE_MAX: usize = 4096;
/// Most keys in one MGET.
pub const MGET_KEYS_MAX: usize = 1024;

/// A workload as written in a TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name, used in result file names.
    pub name: String,
    /// What this workload models.
    #[serde(default)]
    pub description: String,
    /// Number of distinct keys (records); the preload phase SETs each once.
    pub record_count: u64,
    /// SET every record before measuring.
    #[serde(default = "yes")]
    pub preload: bool,
    /// How keys are picked.
    pub keys: Keys,
    /// Value sizes.
    pub value: ValueSpec,
    /// Operation mix (weights, need not sum to 1).
    pub mix: Mix,
    /// Closed or open loop.
    pub load: Load,
    /// TCP connections in total (spread over cores and targets).
    pub connections: usize,
    /// Requests written per socket write (closed loop: in flight per connection).
    pub pipeline: usize,
    /// Measured duration, in seconds (after warm-up); ignored if `operation_count` is set.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Stop after this many measured operations instead of after a duration.
    #[serde(default)]
    pub operation_count: Option<u64>,
    /// Warm-up before measuring, in seconds; excluded from all statistics.
    #[serde(default)]
    pub warmup_s: f64,
    /// A request not answered within this time counts as a `timeout` error.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seed for every random choice (per-connection streams derive from it).
    #[serde(default)]
    pub seed: u64,
}

fn yes() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Key choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// `uniform`, `zipfian` or `latest`.
    pub distribution: KeyDistribution,
    /// Zipf exponent θ in (0, 1); YCSB uses 0.99.
    #[serde(default = "default_theta")]
    pub zipf_theta: f64,
}

fn default_theta() -> f64 {
    0.99
}

/// How keys are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDistribution {
    /// Every record equally likely.
    Uniform,
    /// A few hot records (scattered over the key space), YCSB's scrambled zipfian.
    Zipfian,
    /// Writes insert new records; reads favour the most recently inserted (YCSB D).
    Latest,
}

/// Value sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    /// `fixed` (always `size_bytes`) or `uniform` (in `size_bytes..=size_bytes_max`).
    #[serde(default = "default_value_dist")]
    pub distribution: ValueDistribution,
    /// The size, or the smallest size for `uniform`.
    pub size_bytes: usize,
    /// The largest size for `uniform`.
    #[serde(default)]
    pub size_bytes_max: Option<usize>,
}

fn default_value_dist() -> ValueDistribution {
    ValueDistribution::Fixed
}

/// Value size distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueDistribution {
    /// Always the same size.
    Fixed,
    /// Uniform between the bounds.
    Uniform,
}

/// Operation weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// GET key.
    #[serde(default)]
    pub get: f64,
    /// SET key value.
    #[serde(default)]
    pub set: f64,
    /// DEL key.
    #[serde(default)]
    pub del: f64,
    /// MGET of `mget_keys` keys.
    #[serde(default)]
    pub mget: f64,
    /// Read-modify-write: GET, then SET of the same key once the GET returns; its
    /// latency spans both. The SET leaves with the connection's next write (closed loop:
    /// the next pipeline; open loop: the next due request).
    #[serde(default)]
    pub rmw: f64,
    /// Keys per MGET.
    #[serde(default = "default_mget_keys")]
    pub mget_keys: usize,
}

fn default_mget_keys() -> usize {
    10
}

/// Closed or open loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// `closed`: each connection keeps `pipeline` requests in flight, sending the next
    /// batch when the last reply arrives. `open`: requests are due at a target rate
    /// whatever the server does; latency counts from the due time.
    pub mode: LoopMode,
    /// Open loop: target requests per second, over all connections.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Open loop: `poisson` (exponential gaps) or `uniform` (equal gaps).
    #[serde(default = "default_arrival")]
    pub arrival: Arrival,
    /// Open loop: most requests in flight per connection; due requests beyond it wait
    /// (and their latency keeps counting).
    #[serde(default = "default_outstanding")]
    pub outstanding_max: usize,
    /// Open loop: requests per arrival, all due at once and sent in one write, as a
    /// client that pipelines sends them; arrivals come at `rate_per_s / burst` a second.
    /// 1 (the default): independent requests.
    #[serde(default = "default_burst")]
    pub burst: usize,
}

fn default_arrival() -> Arrival {
    Arrival::Poisson
}
fn default_outstanding() -> usize {
    1024
}
fn default_burst() -> usize {
    1
}

/// Loop mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopMode {
    /// Fixed concurrency.
    Closed,
    /// Fixed arrival rate.
    Open,
}

/// Arrival process for the open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exponential inter-arrival times.
    Poisson,
    /// Equal inter-arrival times.
    Uniform,
}

/// What is wrong with a workload file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("cannot read workload {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML did not parse or named an unknown field or value.
    #[error("workload {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the field and allowed values).
        message: String,
    },
    /// A field held a value out of range.
    #[error("workload field `{field}` = {value}: must be {allowed}")]
    Invalid {
        /// The field, dotted (`keys.zipf_theta`).
        field: &'static str,
        /// What it held.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

fn invalid(field: &'static str, value: impl ToString, allowed: &'static str) -> WorkloadError {
    WorkloadError::Invalid {
        field,
        value: value.to_string(),
        allowed,
    }
}

/// The built-in default workload (the same text as workloads/default.toml).
pub const DEFAULT_TOML: &str = include_str!("../../workloads/default.toml");

impl Workload {
    /// Makes this an open loop at `rate_per_s` requests per second (coordinated-omission
    /// corrected), whatever its loop was.
    pub fn set_open_loop(&mut self, rate_per_s: f64) {
        self.load.mode = LoopMode::Open;
        self.load.rate_per_s = Some(rate_per_s);
    }

    /// Reads, parses and validates a workload file.
    pub fn from_file(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates workload text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Workload, WorkloadError> {
        let w: Workload = toml::from_str(text).map_err(|e| WorkloadError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        w.validate()?;
        Ok(w)
    }

    /// The default workload.
    pub fn default_workload() -> Workload {
        Self::from_toml(DEFAULT_TOML, "workloads/default.toml")
            .expect("workloads/default.toml is valid (checked by a unit test)")
    }

    /// Checks every field's range; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("name", &self.name, "non-empty, of [A-Za-z0-9_-]"));
        }
        if self.record_count == 0 || self.record_count > RECORD_COUNT_MAX {
            return Err(invalid("record_count", self.record_count, "1..=1e9"));
        }
        let t = self.keys.zipf_theta;
        if !(t > 0.0 && t < 1.0) {
            return Err(invalid("keys.zipf_theta", t, "in (0, 1), e.g. 0.99"));
        }
        let v = &self.value;
        if v.size_bytes == 0 || v.size_bytes > VALUE_SIZE_BYTES_MAX {
            return Err(invalid("value.size_bytes", v.size_bytes, "1..=64 MiB"));
        }
        match (v.distribution, v.size_bytes_max) {
            (ValueDistribution::Uniform, Some(m))
                if m >= v.size_bytes && m <= VALUE_SIZE_BYTES_MAX => {}
            (ValueDistribution::Uniform, m) => {
                return Err(invalid(
                    "value.size_bytes_max",
                    format!("{m:?}"),
                    "set, >= value.size_bytes and <= 64 MiB, for distribution = \"uniform\"",
                ));
            }
            (ValueDistribution::Fixed, Some(m)) => {
                return Err(invalid(
                    "value.size_bytes_max",
                    m,
                    "absent for distribution = \"fixed\"",
                ));
            }
            (ValueDistribution::Fixed, None) => {}
        }
        let m = &self.mix;
        for (field, w) in [
            ("mix.get", m.get),
            ("mix.set", m.set),
            ("mix.del", m.del),
            ("mix.mget", m.mget),
            ("mix.rmw", m.rmw),
        ] {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(invalid(field, w, "a finite weight >= 0"));
            }
        }
        if m.get + m.set + m.del + m.mget + m.rmw <= 0.0 {
            return Err(invalid(
                "mix",
                "all zero",
                "at least one of get, set, del, mget, rmw > 0",
            ));
        }
        if m.mget_keys == 0 || m.mget_keys > MGET_KEYS_MAX {
            return Err(invalid("mix.mget_keys", m.mget_keys, "1..=1024"));
        }
        if self.connections == 0 || self.connections > CONNECTIONS_MAX {
            return Err(invalid("connections", self.connections, "1..=10000"));
        }
        if self.pipeline == 0 || self.pipeline > PIPELINE_MAX {
            return Err(invalid("pipeline", self.pipeline, "1..=4096"));
        }
        if self.load.mode == LoopMode::Open {
            match self.load.rate_per_s {
                Some(r) if r > 0.0 && r.is_finite() => {}
                r => {
                    return Err(invalid(
                        "load.rate_per_s",
                        format!("{r:?}"),
                        "set and > 0 when load.mode = \"open\"",
                    ));
                }
            }
            if self.load.outstanding_max == 0 || self.load.outstanding_max > 1 << 20 {
                return Err(invalid(
                    "load.outstanding_max",
                    self.load.outstanding_max,
                    "1..=1048576",
                ));
            }
            if self.load.burst == 0 || self.load.burst > self.pipeline {
                return Err(invalid(
                    "load.burst",
                    self.load.burst,
                    "1..=pipeline (a burst goes out in one write)",
                ));
            }
        }
        match (self.duration_s, self.operation_count) {
            (_, Some(0)) => return Err(invalid("operation_count", 0, "> 0")),
            (_, Some(_)) => {}
            (Some(d), None) if d > 0.0 && d.is_finite() => {}
            (d, None) => {
                return Err(invalid(
                    "duration_s",
                    format!("{d:?}"),
                    "> 0 (or set operation_count)",
                ));
            }
        }
        if !(self.warmup_s >= 0.0 && self.warmup_s.is_finite()) {
            return Err(invalid("warmup_s", self.warmup_s, ">= 0"));
        }
        if self.timeout_ms == 0 {
            return Err(invalid("timeout_ms", 0, "> 0"));
        }
        Ok(())
    }
}

/// An operation type; also the histogram index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// GET.
    Get,
    /// SET.
    Set,
    /// DEL.
    Del,
    /// MGET.
    Mget,
    /// GET then SET.
    Rmw,
}

impl Op {
    /// Every op, in histogram order.
    pub const ALL: [Op; 5] = [Op::Get, Op::Set, Op::Del, Op::Mget, Op::Rmw];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Del => "del",
            Op::Mget => "mget",
            Op::Rmw => "rmw",
        }
    }
}

/// A zipfian generator over ranks `0..n`: rank 0 is the most popular and
/// P(rank i) = (1/(i+1)^θ) / ζ(n, θ), as in YCSB's workloads.
///
/// YCSB draws with Gray et al.'s closed form (SIGMOD'94), which is exact for ranks 0 and
/// 1 only: measured here it gives rank 2 about 17% more than theory at θ = 0.99. We use
/// rejection-inversion sampling instead (Hörmann & Derflinger 1996, as in Apache Commons
/// and rand_distr), which is exact, needs O(1) setup and rarely rejects.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s_coef: f64,
}

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ (for theoretical frequencies; O(n)).
pub fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over ranks `0..n`; `theta` > 0.
    pub fn new(n: u64, theta: f64) -> Zipfian {
        assert!(n >= 1, "zipfian over an empty range");
        assert!(theta > 0.0 && theta.is_finite(), "theta must be > 0");
        let mut z = Zipfian {
            n: n as f64,
            s: theta,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s_coef: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s_coef = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    /// The next rank in `0..n`.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u64 {
        loop {
            let u =
                self.h_integral_n + rng.random::<f64>() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s_coef || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64 - 1;
            }
        }
    }
}

/// ln(1 + x) / x, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x - 1) / x, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// Maps ranks to keys by a bijection on `0..n`, so hot keys are scattered (as YCSB's
/// scrambled zipfian does) while rank frequencies stay exact.
#[derive(Debug, Clone, Copy)]
pub struct Scramble {
    n: u64,
    mul: u64,
}

impl Scramble {
    /// A permutation of `0..n`.
    pub fn new(n: u64) -> Scramble {
        let mut mul = 0x9E37_79B9_7F4A_7C15 % n.max(1);
        while n > 1 && gcd(mul, n) != 1 {
            mul += 1;
        }
        Scramble { n, mul: mul.max(1) }
    }

    /// The key for rank `r`.
    pub fn apply(&self, r: u64) -> u64 {
        ((u128::from(r) * u128::from(self.mul)) % u128::from(self.n.max(1))) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Formats key number `k` as redis-benchmark does (`key:000000012345`).
pub fn key_name(k: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"key:");
    let mut b = itoa::Buffer::new();
    let s = b.format(k);
    for _ in s.len()..12 {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

/// Picks keys for one connection.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    dist: KeyDistribution,
    n: u64,
    zipf: Option<Zipfian>,
    scramble: Scramble,
    /// For `latest`: the newest inserted record, shared by all connections of a run.
    latest: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl KeyChooser {
    /// From a workload; `latest` is the run-wide insert counter (starts at record_count).
    pub fn new(w: &Workload, latest: std::sync::Arc<std::sync::atomic::AtomicU64>) -> KeyChooser {
        let zipf = match w.keys.distribution {
            KeyDistribution::Uniform => None,
            _ => Some(Zipfian::new(w.record_count, w.keys.zipf_theta)),
        };
        KeyChooser {
            dist: w.keys.distribution,
            n: w.record_count,
            zipf,
            scramble: Scramble::new(w.record_count),
            latest,
        }
    }

    /// A key to read.
    pub fn read_key<R: Rng>(&self, rng: &mut R) -> u64 {
        match (self.dist, &self.zipf) {
            (KeyDistribution::Zipfian, Some(z)) => self.scramble.apply(z.sample(rng)),
            (KeyDistribution::Latest, Some(z)) => {
                let newest = self.latest.load(std::sync::atomic::Ordering::Relaxed);
                newest.saturating_sub(1).saturating_sub(z.sample(rng))
            }
            _ => rng.random_range(0..self.n),
        }
    }

    /// A key to write: for `latest` a fresh record, otherwise as for reads.
    pub fn write_key<R: Rng>(&self, rng: &mut R) -> u64 {
        if self.dist == KeyDistribution::Latest {
            return self
                .latest
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.read_key(rng)
    }
}

/// Picks operations by weight.
#[derive(Debug, Clone)]
pub struct OpChooser {
    cumulative: [(f64, Op); 5],
    total: f64,
    last: Op,
}

impl OpChooser {
    /// From the mix weights.
    pub fn new(m: &Mix) -> OpChooser {
        let mut acc = 0.0;
        let mut cumulative = [(0.0, Op::Get); 5];
        let mut last = Op::Get;
        for (i, (op, w)) in [
            (Op::Get, m.get),
            (Op::Set, m.set),
            (Op::Del, m.del),
            (Op::Mget, m.mget),
            (Op::Rmw, m.rmw),
        ]
        .into_iter()
        .enumerate()
        {
            acc += w;
            cumulative[i] = (acc, op);
            if w > 0.0 {
                last = op;
            }
        }
        OpChooser {
            cumulative,
            total: acc,
            last,
        }
    }

    /// The next operation.
    pub fn next<R: Rng>(&self, rng: &mut R) -> Op {
        let x = rng.random::<f64>() * self.total;
        for (c, op) in self.cumulative {
            if x < c {
                return op;
            }
        }
        // Rounding at the top end: the last op with a non-zero weight.
        self.last
    }
}

/// Chooses value sizes.
#[derive(Debug, Clone, Copy)]
pub struct ValueSizer {
    min: usize,
    max: usize,
}

impl ValueSizer {
    /// From the value spec.
    pub fn new(v: &ValueSpec) -> ValueSizer {
        ValueSizer {
            min: v.size_bytes,
            max: v.size_bytes_max.unwrap_or(v.size_bytes),
        }
    }

    /// The largest size it will return.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The next size.
    pub fn next<R: Rng>(&self, rng: &mut R) -> usize {
        if self.max == self.min {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_shipped_workloads_are_valid() {
        Workload::default_workload();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            // Scenario files (a `[scenario]` table) are checked in `scenario`.
            let scenario = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
                .is_some_and(|t| t.contains_key("scenario"));
            if name.ends_with(".toml") && !name.starts_with("matrix") && !scenario {
                Workload::from_file(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 8, "expected the shipped workloads, found {n}");
    }

    #[test]
    fn invalid_fields_are_named() {
        let bad = DEFAULT_TOML.replace("distribution = \"uniform\"", "distribution = \"gauss\"");
        let e = Workload::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("gauss") && e.contains("zipfian"), "{e}");
        let bad = format!("{DEFAULT_TOML}\nbogus = 1\n");
        let e = Workload::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let bad = DEFAULT_TOML.replace("pipeline = ", "pipeline = 0 #");
        let e = Workload::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("`pipeline`"), "{e}");
    }

    #[test]
    fn scramble_is_a_permutation() {
        for n in [1u64, 2, 10, 97, 1000, 4096] {
            let s = Scramble::new(n);
            let mut seen = vec![false; n as usize];
            for r in 0..n {
                seen[s.apply(r) as usize] = true;
            }
            assert!(seen.iter().all(|&x| x), "n={n}");
        }
    }

    #[test]
    fn key_names_are_fixed_width() {
        let mut k = Vec::new();
        key_name(12345, &mut k);
        assert_eq!(k, b"key:000000012345");
    }
}
