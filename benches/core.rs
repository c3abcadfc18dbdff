//! Throughput of the protocol core alone: an in-memory 3-replica group, no I/O, disks that
//! sync instantly, messages handed over directly. Target: ≥ 2,000,000 commands/s per core
//! with batching, so the core is never the bottleneck.
//!
//! Run: `cargo bench --bench core`
//!
//! Counting instructions: `CORE_BENCH_COMMANDS=N` (and `CORE_BENCH_BATCH=B`, default 64) runs
//! N commands once at batch_max B, without criterion, so that
//! `valgrind --tool=cachegrind target/release/deps/core-<hash>` counts the instructions
//! per command (the group's setup, one election, is counted too: subtract a run with a small N);
//! compare two builds with `scripts/cachegrind-functions.py`.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

use corepax::config::ProtocolConfig;
use corepax::protocol::{Action, Command, Message, Replica, ReplicaId, Request};

struct Group {
    replicas: Vec<Replica>,
    wire: VecDeque<(ReplicaId, ReplicaId, Message)>,
    actions: Vec<Action>,
    seq: u64,
    replies: u64,
    now: u64,
}

impl Group {
    fn new(batch_max: usize) -> Group {
        let cfg = ProtocolConfig {
            batch_max,
            pipeline_depth: 32,
            ..ProtocolConfig::default()
        };
        let mut g = Group {
            replicas: (0..3)
                .map(|i| Replica::new(cfg.clone(), ReplicaId(i), u64::from(i)))
                .collect(),
            wire: VecDeque::new(),
            actions: Vec::new(),
            seq: 0,
            replies: 0,
            now: 0,
        };
        // r0 times out first and wins.
        while g.replicas[0].leading().is_none() {
            g.now += 100_000_000;
            g.replicas[0].on_tick(g.now);
            g.pump(0);
            g.settle();
        }
        g
    }

    /// Moves one replica's actions: sends go on the wire, persists complete at once.
    fn pump(&mut self, i: usize) {
        loop {
            self.replicas[i].drain_into(&mut self.actions);
            if self.actions.is_empty() {
                return;
            }
            let mut last_persist = None;
            for a in self.actions.drain(..) {
                match a {
                    Action::Send { to, msg } => self.wire.push_back((ReplicaId(i as u8), to, msg)),
                    Action::Persist { id, .. } => last_persist = Some(id),
                    Action::Reply { .. } => self.replies += 1,
                    Action::SaveSnapshot => {}
                }
            }
            match last_persist {
                Some(id) => self.replicas[i].on_persisted(self.now, id),
                None => return,
            }
        }
    }

    fn settle(&mut self) {
        while let Some((from, to, msg)) = self.wire.pop_front() {
            self.replicas[to.index()].on_message(self.now, from, msg);
            self.pump(to.index());
        }
    }

    /// Submits `n` commands with up to `window` outstanding, and runs until all are answered.
    fn run(&mut self, n: u64, window: u64, key: &Bytes, value: &Bytes) {
        let target = self.replies + n;
        let mut submitted = 0;
        while self.replies < target {
            while submitted < n && submitted - (self.replies + n - target) < window {
                self.seq += 1;
                submitted += 1;
                let req = Request {
                    client: 1,
                    seq: self.seq,
                    ack_floor: self.seq.saturating_sub(window),
                    cmd: Command::Set(key.clone(), value.clone()),
                };
                self.replicas[0].on_request(self.now, self.seq, req);
            }
            self.pump(0);
            self.settle();
        }
    }
}

/// Commands outstanding at once, in both modes.
const WINDOW: u64 = 2048;

fn bench_key() -> Bytes {
    Bytes::from_static(b"key:000000001")
}

fn bench_value() -> Bytes {
    Bytes::from(vec![b'x'; 100])
}

fn throughput(c: &mut Criterion) {
    let key = bench_key();
    let value = bench_value();
    let mut group = c.benchmark_group("core_3_replicas_set_100B");
    for batch_max in [1usize, 64] {
        let n = 10_000u64;
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(
            BenchmarkId::new("batch_max", batch_max),
            &batch_max,
            |b, &bm| {
                let mut g = Group::new(bm);
                b.iter(|| g.run(n, WINDOW, &key, &value));
            },
        );
    }
    group.finish();
}

/// Reads a positive count from the environment; `None` when unset, an error message when set
/// to something else.
fn env_count(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{name}={v}: expected a positive integer")),
        },
    }
}

/// The counting mode: one group, `commands` commands at `batch_max`, once.
fn run_once(commands: u64, batch_max: usize) {
    let key = bench_key();
    let value = bench_value();
    let mut g = Group::new(batch_max);
    let before = g.replies;
    g.run(commands, WINDOW, &key, &value);
    let answered = g.replies - before;
    println!(
        "core bench, counting mode: CORE_BENCH_COMMANDS={commands} CORE_BENCH_BATCH={batch_max} \
         window {WINDOW}, 3 replicas, 100-byte SETs: {answered} commands answered"
    );
    if answered != commands {
        eprintln!("expected {commands} replies, got {answered}");
        std::process::exit(1);
    }
}

criterion_group!(benches, throughput);

fn main() {
    let counted = env_count("CORE_BENCH_COMMANDS").and_then(|n| {
        let batch = env_count("CORE_BENCH_BATCH")?.unwrap_or(64);
        Ok(n.map(|n| (n, batch)))
    });
    match counted {
        Ok(Some((commands, batch))) => match usize::try_from(batch) {
            Ok(batch_max) => run_once(commands, batch_max),
            Err(_) => {
                eprintln!("CORE_BENCH_BATCH={batch}: too large");
                std::process::exit(2);
            }
        },
        Ok(None) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
