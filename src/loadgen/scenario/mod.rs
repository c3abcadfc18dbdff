//! Coordination scenarios: a work queue with leased tasks and a lock service, run by
//! `corepax bench --workload FILE` when the file has a `[scenario]` table instead of an
//! operation mix. Each client is a thread with a blocking connection: what is measured is
//! how the primitives behave for their users (how long a task waits for a worker, how
//! long a lock takes to acquire and to pass on after its holder stops), not throughput.
//!
//! - [`queue`]: producers `RPUSH` tasks, workers `BLMOVE` them into their processing list
//!   and `LREM` them when done, renewing a lease key meanwhile; one worker stops in the
//!   middle of a task and a reaper gives its task back to the queue once its lease is gone.
//! - [`lock`]: clients contend for a few locks with `SET … NX PX`, renew with `SET … IFEQ
//!   … PX` and release with `DELIFEQ`; one holder stops renewing, and the time until
//!   another client holds its lock is the hand-over time.

mod lock;
mod queue;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::wire::resp::{self, Limits, Value};

/// A scenario file: `name`, `description`, `duration_s`, `seed` and a `[scenario]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name, used in the result file's name.
    pub name: String,
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// How long producers (queue) or contenders (lock) run, in seconds.
    pub duration_s: f64,
    /// Seeds the clients' random choices.
    #[serde(default)]
    pub seed: u64,
    /// What runs.
    pub scenario: Scenario,
}

/// Which scenario, and its settings (each kind reads its own and refuses the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scenario {
    /// A work queue with leased tasks.
    Queue(queue::QueueSettings),
    /// A lock service.
    Lock(lock::LockSettings),
}

impl ScenarioFile {
    /// Reads `path` if it is a scenario file (it has a `scenario` table); `Ok(None)` for
    /// an operation-mix workload.
    pub fn detect(path: &Path) -> anyhow::Result<Option<ScenarioFile>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let table: toml::Table = match toml::from_str(&text) {
            Ok(t) => t,
            // Not even TOML: the workload reader reports it.
            Err(_) => return Ok(None),
        };
        if !table.contains_key("scenario") {
            return Ok(None);
        }
        let file: ScenarioFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("scenario file {}: {e}", path.display()))?;
        file.validate()?;
        Ok(Some(file))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.duration_s > 0.0 && self.duration_s <= 3600.0,
            "duration_s must be within (0, 3600], got {}",
            self.duration_s
        );
        match &self.scenario {
            Scenario::Queue(q) => q.validate(),
            Scenario::Lock(l) => l.validate(),
        }
    }

    /// Runs the scenario against `targets` (connections spread over them); the result.
    pub fn run(&self, targets: &[SocketAddr]) -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(!targets.is_empty(), "no target address");
        let duration = Duration::from_secs_f64(self.duration_s);
        match &self.scenario {
            Scenario::Queue(q) => queue::run(q, targets, duration),
            Scenario::Lock(l) => lock::run(l, targets, duration, self.seed),
        }
    }
}

/// A blocking RESP connection for one scenario client.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects, with a read timeout of `read_timeout`.
    pub(crate) fn connect(addr: SocketAddr, read_timeout: Duration) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| anyhow::anyhow!("connecting to {addr}: {e}"))?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends a command and reads its reply (`-ERR …` comes back as `Value::Error`).
    pub(crate) fn cmd(&mut self, args: &[&str]) -> anyhow::Result<Value> {
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        self.stream.write_all(&out)?;
        loop {
            if let Some((v, used)) = resp::decode(&self.buf, &Limits::default())? {
                self.buf.drain(..used);
                return Ok(v);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A bulk reply's text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// A histogram of microseconds (1 µs to 1 h, 3 significant digits).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Percentiles of a histogram of microseconds, in milliseconds.
pub(crate) fn summary_ms(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.5)),
        "p90_ms": ms(h.value_at_quantile(0.9)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

/// A name whose key lands in the same shard as `base` for every shard count: `prefix`
/// followed by the bytes that place `base` (its hash tag, else the whole key) as its own
/// hash tag, so both hash alike (`runtime::sharding`). The keys of one `LMOVE` must share
/// a shard. A `base` whose placing bytes hold a `}` cannot lend them to a tag: then a tag
/// is searched that matches it for every shard count up to 16.
pub(crate) fn same_shard_name(base: &str, prefix: &str) -> String {
    let placing = crate::runtime::sharding::hash_tag(base.as_bytes());
    if !placing.contains(&b'}') {
        return format!("{prefix}{{{}}}", String::from_utf8_lossy(placing));
    }
    const SHARD_COUNTS_LCM: u64 = 720_720; // lcm(1..=16)
    let want = xxhash_rust::xxh3::xxh3_64(placing) % SHARD_COUNTS_LCM;
    (0u64..)
        .map(|i| format!("{prefix}{{{i}}}"))
        .find(|k| {
            let tag = crate::runtime::sharding::hash_tag(k.as_bytes());
            xxhash_rust::xxh3::xxh3_64(tag) % SHARD_COUNTS_LCM == want
        })
        .expect("some name matches")
}

/// Writes a scenario's result as JSON to `path` (creating its folder).
pub fn write_result(path: &Path, result: &serde_json::Value) -> anyhow::Result<()> {
    crate::loadgen::report::create_dir(path.parent())?;
    std::fs::write(path, serde_json::to_string_pretty(result)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_one_shard_share_it_for_every_shard_count() {
        for (base, tagged) in [
            ("queue:tasks", true),
            ("{q}tasks", true),
            ("odd}name", false),
        ] {
            let other = same_shard_name(base, "queue:processing:3");
            assert!(other.starts_with("queue:processing:3{"), "{other}");
            for shards in 1..=16 {
                assert_eq!(
                    crate::runtime::node::shard_of(base.as_bytes(), shards),
                    crate::runtime::node::shard_of(other.as_bytes(), shards),
                    "{base}, {other}: {shards} shards"
                );
            }
            if tagged {
                // The tag is the placing bytes themselves: one shard at any count.
                assert_eq!(
                    crate::runtime::sharding::hash_tag(other.as_bytes()),
                    crate::runtime::sharding::hash_tag(base.as_bytes())
                );
            }
        }
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for name in ["queue.toml", "lock.toml"] {
            let f = ScenarioFile::detect(&dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name} is a scenario"));
            assert_eq!(format!("{}.toml", f.name), name);
        }
    }

    #[test]
    fn scenario_files_parse_and_refuse_what_they_do_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let queue = write(
            "q.toml",
            "name = \"queue\"\nduration_s = 2\n[scenario]\nkind = \"queue\"\nproducers = 1\nworkers = 2\n",
        );
        let f = ScenarioFile::detect(&queue).unwrap().expect("a scenario");
        assert!(matches!(f.scenario, Scenario::Queue(ref q) if q.workers == 2));
        let lock = write(
            "l.toml",
            "name = \"lock\"\nduration_s = 2\n[scenario]\nkind = \"lock\"\nlocks = 2\n",
        );
        assert!(matches!(
            ScenarioFile::detect(&lock).unwrap().unwrap().scenario,
            Scenario::Lock(_)
        ));
        let bad = write(
            "b.toml",
            "name = \"x\"\nduration_s = 2\n[scenario]\nkind = \"lock\"\nworkers = 2\n",
        );
        let e = ScenarioFile::detect(&bad).unwrap_err().to_string();
        assert!(e.contains("workers"), "{e}");
        let mix = write("m.toml", "name = \"m\"\nrecord_count = 1\n");
        assert!(ScenarioFile::detect(&mix).unwrap().is_none());
    }
}
