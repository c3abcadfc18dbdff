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
//!
//! Comparing protocols and read-heavy mixes (counting mode only): `CORE_BENCH_PROTOCOL=
//! multipaxos|raft` and/or `CORE_BENCH_READS=P` (percent of the commands that are GETs of
//! the written key, read through the log; default 0) drive the replicas through
//! `Consensus`, as the runtime does, handing each round's new requests over in one step
//! (`on_requests`, as the runtime hands over a pipeline). With `CORE_BENCH_ENCODE=1` each
//! message sent is also encoded into a frame (`wire::frame::encode`), as the transport does
//! for every send, and the bytes of appends/accepts and of the rest are printed.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

use corepax::config::{Protocol, ProtocolConfig};
use corepax::protocol::consensus::Core;
use corepax::protocol::{Action, Command, Consensus, Message, Replica, ReplicaId, Request};

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
                    // Every record, lazy or not, is durable at once here.
                    Action::SaveSnapshot | Action::CheckLazySync { .. } => {}
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

/// The counting mode's group when a protocol or a read share is named: replicas behind
/// `Consensus`, a share of the commands GETs.
struct MixGroup {
    replicas: Vec<Consensus>,
    wire: VecDeque<(ReplicaId, ReplicaId, Message)>,
    actions: Vec<Action>,
    requests: Vec<(u64, Request)>,
    seq: u64,
    replies: u64,
    now: u64,
    /// `CORE_BENCH_ENCODE`: each message sent is encoded into `frame`.
    encode: bool,
    frame: Vec<u8>,
    /// Bytes encoded: of messages carrying batches (accepts, appends), of the rest.
    batch_bytes: u64,
    other_bytes: u64,
}

impl MixGroup {
    fn new(protocol: Protocol, batch_max: usize, encode: bool) -> MixGroup {
        let cfg = ProtocolConfig {
            protocol,
            batch_max,
            pipeline_depth: 32,
            ..ProtocolConfig::default()
        };
        let mut g = MixGroup {
            replicas: (0..3)
                .map(|i| Consensus::new(cfg.clone(), ReplicaId(i), u64::from(i)))
                .collect(),
            wire: VecDeque::new(),
            actions: Vec::new(),
            requests: Vec::new(),
            seq: 0,
            replies: 0,
            now: 0,
            encode,
            frame: Vec::new(),
            batch_bytes: 0,
            other_bytes: 0,
        };
        // r0 times out first and wins.
        while !g.replicas[0].is_leading() {
            g.now += 100_000_000;
            g.replicas[0].on_tick(g.now);
            g.pump(0);
            g.settle();
        }
        g
    }

    /// Encodes `msg` as the transport would, counting its bytes.
    fn encode(&mut self, msg: &Message) {
        self.frame.clear();
        if corepax::wire::frame::encode(msg, &mut self.frame).is_err() {
            eprintln!("a message failed to encode");
            std::process::exit(1);
        }
        let carries_batches = match msg {
            Message::Accept { .. } => true,
            Message::Raft(m) => {
                matches!(m, corepax::protocol::raft::Msg::Append { entries, .. } if !entries.is_empty())
            }
            _ => false,
        };
        let bytes = self.frame.len() as u64;
        if carries_batches {
            self.batch_bytes += bytes;
        } else {
            self.other_bytes += bytes;
        }
    }

    /// As `Group::pump`.
    fn pump(&mut self, i: usize) {
        loop {
            self.replicas[i].drain_into(&mut self.actions);
            if self.actions.is_empty() {
                return;
            }
            let mut last_persist = None;
            let mut actions = std::mem::take(&mut self.actions);
            for a in actions.drain(..) {
                match a {
                    Action::Send { to, msg } => {
                        if self.encode {
                            self.encode(&msg);
                        }
                        self.wire.push_back((ReplicaId(i as u8), to, msg))
                    }
                    Action::Persist { id, .. } => last_persist = Some(id),
                    Action::Reply { .. } => self.replies += 1,
                    // Every record, lazy or not, is durable at once here.
                    Action::SaveSnapshot | Action::CheckLazySync { .. } => {}
                }
            }
            self.actions = actions;
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

    /// As `Group::run`, with `reads_pct` percent of the commands GETs of `key` (spread
    /// evenly: command `seq` is a SET when `seq * (100 - reads_pct) / 100` steps up).
    fn run(&mut self, n: u64, reads_pct: u64, key: &Bytes, value: &Bytes) {
        let target = self.replies + n;
        let writes_pct = 100 - reads_pct.min(100);
        let mut submitted = 0;
        while self.replies < target {
            while submitted < n && submitted - (self.replies + n - target) < WINDOW {
                self.seq += 1;
                submitted += 1;
                let write = self.seq * writes_pct / 100 != (self.seq - 1) * writes_pct / 100;
                let cmd = if write {
                    Command::Set(key.clone(), value.clone())
                } else {
                    Command::Get(key.clone())
                };
                let req = Request {
                    client: 1,
                    seq: self.seq,
                    ack_floor: self.seq.saturating_sub(WINDOW),
                    cmd,
                };
                self.requests.push((self.seq, req));
            }
            let now = self.now;
            self.replicas[0].on_requests(now, self.requests.drain(..));
            self.pump(0);
            self.settle();
        }
    }
}

/// The counting mode through `Consensus`: `commands` commands, `reads_pct` % of them GETs.
fn run_mix_once(protocol: Protocol, reads_pct: u64, commands: u64, batch_max: usize) {
    let key = bench_key();
    let value = bench_value();
    let encode = std::env::var("CORE_BENCH_ENCODE").is_ok_and(|v| v == "1");
    let mut g = MixGroup::new(protocol, batch_max, encode);
    let before = g.replies;
    let bytes_before = (g.batch_bytes, g.other_bytes);
    g.run(commands, reads_pct, &key, &value);
    let answered = g.replies - before;
    if encode {
        println!(
            "CORE_BENCH_ENCODE=1: bytes encoded per command: {:.1} in accepts/appends with \
             entries, {:.1} in other messages",
            (g.batch_bytes - bytes_before.0) as f64 / commands as f64,
            (g.other_bytes - bytes_before.1) as f64 / commands as f64
        );
    }
    println!(
        "core bench, counting mode: CORE_BENCH_PROTOCOL={protocol} CORE_BENCH_READS={reads_pct} \
         CORE_BENCH_COMMANDS={commands} CORE_BENCH_BATCH={batch_max} window {WINDOW}, \
         3 replicas, 100-byte SETs and GETs of one key through the log: {answered} commands \
         answered"
    );
    if answered != commands {
        eprintln!("expected {commands} replies, got {answered}");
        std::process::exit(1);
    }
}

/// `CORE_BENCH_PROTOCOL` and `CORE_BENCH_READS`, if either is set.
fn env_mix() -> Result<Option<(Protocol, u64)>, String> {
    let protocol = match std::env::var("CORE_BENCH_PROTOCOL") {
        Err(std::env::VarError::NotPresent) => None,
        Err(e) => return Err(format!("CORE_BENCH_PROTOCOL: {e}")),
        Ok(v) => Some(
            v.parse::<Protocol>()
                .map_err(|e| format!("CORE_BENCH_PROTOCOL={v}: {e}"))?,
        ),
    };
    let reads = match std::env::var("CORE_BENCH_READS") {
        Err(std::env::VarError::NotPresent) => None,
        Err(e) => return Err(format!("CORE_BENCH_READS: {e}")),
        Ok(v) => match v.parse::<u64>() {
            Ok(p) if p <= 100 => Some(p),
            _ => {
                return Err(format!(
                    "CORE_BENCH_READS={v}: expected a percentage, 0 to 100"
                ));
            }
        },
    };
    if protocol.is_none() && reads.is_none() {
        return Ok(None);
    }
    Ok(Some((
        protocol.unwrap_or(Protocol::Multipaxos),
        reads.unwrap_or(0),
    )))
}

criterion_group!(benches, throughput);

fn main() {
    let counted = env_count("CORE_BENCH_COMMANDS").and_then(|n| {
        let batch = env_count("CORE_BENCH_BATCH")?.unwrap_or(64);
        Ok(n.map(|n| (n, batch)))
    });
    let mix = match env_mix() {
        Ok(mix) => mix,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match counted {
        Ok(Some((commands, batch))) => match usize::try_from(batch) {
            Ok(batch_max) => match mix {
                Some((protocol, reads_pct)) => {
                    run_mix_once(protocol, reads_pct, commands, batch_max)
                }
                None => run_once(commands, batch_max),
            },
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
