//! Merkle tree and anti-entropy costs, as ratios measured in one run:
//! - an incremental rebuild after k dirty keys against a full rebuild, 1,000,000 keys
//!   (target: 1% dirty costs ≤ 3% of a full rebuild);
//! - an anti-entropy session between two 1,000,000-key replicas with 100 diverged keys:
//!   bytes and round trips against the shard's total bytes (target: ≤ 1%).
//!
//! Run: `cargo bench --bench merkle` (prints its configuration and a ratio table first,
//! then the criterion timings; `cargo bench --bench merkle -- --quick` shortens the latter).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use corepax::protocol::kv::{Command, Entry, Kv, Request};
use corepax::protocol::merkle::anti_entropy::entry_size_bytes;
use corepax::protocol::merkle::{
    AntiEntropy, DEPTH_DEFAULT, FANOUT, MerkleMsg, MerkleTree, Outcome, Responder, SessionLimits,
};
use corepax::protocol::types::Slot;

const KEYS: usize = 1_000_000;
const VALUE_SIZE_BYTES: usize = 100;
const SEED: u64 = 0x6d65_726b_6c65;
/// Dirty keys per run, as fractions of KEYS: 0.01%, 0.1%, 1%, 10%.
const DIRTY: [usize; 4] = [KEYS / 10_000, KEYS / 1_000, KEYS / 100, KEYS / 10];
const DIVERGED_KEYS: usize = 100;
/// Keys per applied slot when loading a replica.
const LOAD_BATCH: usize = 1_000;
/// Repetitions of each measurement for the ratio table; the median is reported.
const RUNS: usize = 7;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:012}"))
}

/// Values are distinct slices of one seeded random buffer: no allocation per key.
fn values() -> Bytes {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut buf = vec![0u8; KEYS + VALUE_SIZE_BYTES];
    rng.fill(&mut buf[..]);
    Bytes::from(buf)
}

fn value(all: &Bytes, i: usize) -> Bytes {
    all.slice(i..i + VALUE_SIZE_BYTES)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// One shard as the node holds it: a `Kv` (values in their own allocations, iterated in
/// hash-map order) and a tree kept beside it, so the bench times the tree alone.
struct Shard {
    kv: Kv,
    tree: MerkleTree,
    rng: ChaCha8Rng,
    version: Slot,
}

/// A planned overwrite: key, old entry, new entry.
type Write = (Bytes, Entry, Entry);

impl Shard {
    fn new(all: &Bytes) -> Shard {
        let mut kv = Kv::new(1, 1);
        let mut slot = 0;
        for first in (0..KEYS).step_by(LOAD_BATCH) {
            slot += 1;
            let batch = (first..first + LOAD_BATCH)
                .map(|i| (key(i), Bytes::copy_from_slice(&value(all, i))))
                .collect();
            apply(&mut kv, slot, Command::MSet(batch));
        }
        let mut tree = MerkleTree::new(DEPTH_DEFAULT);
        tree.rebuild_full(kv.iter().map(|i| (i.key(), i.entry_ref())));
        Shard {
            kv,
            tree,
            rng: ChaCha8Rng::seed_from_u64(SEED + 1),
            version: slot,
        }
    }

    /// Overwrites of `k` distinct random keys, as the state machine has them in hand when
    /// it writes: the key and new value fresh from a request, the old entry still in the
    /// map (its value is read, and hashed, by the timed update). Untimed: choosing keys and
    /// the map lookup are the write's own cost, not the tree's.
    fn plan(&mut self, k: usize, all: &Bytes) -> Vec<Write> {
        self.version += 1;
        rand::seq::index::sample(&mut self.rng, KEYS, k)
            .into_iter()
            .map(|i| {
                let key = key(i);
                let old = self.kv.get(&key).expect("loaded").entry();
                let new = Entry::string(
                    Bytes::copy_from_slice(&value(all, (i + self.version as usize) % KEYS)),
                    self.version,
                );
                (key, old, new)
            })
            .collect()
    }

    /// Times the writes' tree updates (leaf sums, dirty bits) with the incremental rebuild,
    /// and the rebuild alone; then stores the writes in the map, untimed.
    fn write_and_rebuild(&mut self, k: usize, all: &Bytes) -> (Duration, Duration, u64) {
        let plan = self.plan(k, all);
        let t = Instant::now();
        for (key, old, new) in &plan {
            self.tree
                .update(key, Some(old.entry_ref()), Some(new.entry_ref()));
        }
        let t_rebuild = Instant::now();
        let stats = black_box(self.tree.rebuild_incremental());
        let (both, rebuild) = (t.elapsed(), t_rebuild.elapsed());
        for (key, _, new) in plan {
            assert!(self.kv.install(key, new));
        }
        (both, rebuild, stats.nodes_hashed)
    }

    /// A full rebuild from the map, as a node without incremental upkeep would run it.
    fn full(&mut self) -> Duration {
        let t = Instant::now();
        black_box(
            self.tree
                .rebuild_full(self.kv.iter().map(|i| (i.key(), i.entry_ref()))),
        );
        t.elapsed()
    }
}

/// Two replicas of KEYS keys that applied the same log, except that B lost 50 keys and A
/// lost 50 overwrites of the last slot.
fn diverged_pair(all: &Bytes) -> (Kv, Kv, Slot) {
    let mut a = Kv::new(1, 1);
    let mut b = Kv::new(1, 1);
    let stride = KEYS / (DIVERGED_KEYS / 2);
    let mut slot = 0;
    for first in (0..KEYS).step_by(LOAD_BATCH) {
        slot += 1;
        let batch = |skip: bool| {
            (first..first + LOAD_BATCH)
                .filter(|i| !skip || i % stride != 3)
                .map(|i| (key(i), value(all, i)))
                .collect::<Vec<_>>()
        };
        apply(&mut a, slot, Command::MSet(batch(false)));
        apply(&mut b, slot, Command::MSet(batch(true)));
    }
    slot += 1;
    let over = (0..DIVERGED_KEYS / 2)
        .map(|j| (key(j * stride + 11), value(all, j + 7)))
        .collect();
    apply(&mut b, slot, Command::MSet(over));
    apply(&mut a, slot, Command::Noop);
    (a, b, slot)
}

fn apply(kv: &mut Kv, slot: Slot, cmd: Command) {
    kv.apply(
        slot,
        &Request {
            cmd,
            ..Request::noop()
        },
    );
}

/// One session, repairs not installed (so it can be repeated); returns the outcome, the
/// responder's repairs and the bytes of every message encoded with postcard.
fn session(a: &mut Kv, b: &mut Kv, applied: Slot) -> (Outcome, u64, u64) {
    let limits = SessionLimits::default();
    let (mut ae, mut msg) = AntiEntropy::start(a, limits);
    let mut responder = Responder::new(limits);
    let mut postcard_bytes = 0u64;
    let encoded = |m: &MerkleMsg| postcard::to_allocvec(m).map_or(0, |v| v.len()) as u64;
    loop {
        postcard_bytes += encoded(&msg);
        let reply = responder
            .on_msg(b, applied, &msg)
            .reply
            .expect("a request gets a reply");
        postcard_bytes += encoded(&reply);
        match ae.on_msg(a, applied, reply) {
            Some(m) => msg = m,
            None => break,
        }
    }
    (ae.into_outcome(), responder.stats().repairs, postcard_bytes)
}

fn main() {
    println!(
        "merkle bench: cargo bench --bench merkle; {KEYS} keys, {VALUE_SIZE_BYTES}-byte \
         values, depth {DEPTH_DEFAULT} (fan-out {FANOUT}, {} leaves), seed {SEED:#x}, \
         median of {RUNS} runs for ratios",
        FANOUT.pow(u32::from(DEPTH_DEFAULT))
    );
    let all = values();
    let mut shard = Shard::new(&all);
    println!(
        "tree memory: {} bytes for {} entries",
        shard.tree.memory_bytes(),
        shard.tree.entries()
    );

    println!(
        "{:>9} {:>7} {:>10} {:>16} {:>8} {:>12} {:>8} {:>12}",
        "dirty", "%", "full_us", "updates+incr_us", "ratio", "incr_us", "ratio", "nodes_hashed"
    );
    for &k in &DIRTY {
        let mut full = Vec::new();
        let mut both = Vec::new();
        let mut incr = Vec::new();
        let mut nodes = 0;
        for _ in 0..RUNS {
            full.push(shard.full());
            let (w, i, n) = shard.write_and_rebuild(k, &all);
            both.push(w);
            incr.push(i);
            nodes = n;
        }
        let (f, w, i) = (median(full), median(both), median(incr));
        println!(
            "{:>9} {:>7.2} {:>10.0} {:>16.0} {:>7.2}% {:>12.0} {:>7.2}% {:>12}",
            k,
            100.0 * k as f64 / KEYS as f64,
            f.as_secs_f64() * 1e6,
            w.as_secs_f64() * 1e6,
            100.0 * w.as_secs_f64() / f.as_secs_f64(),
            i.as_secs_f64() * 1e6,
            100.0 * i.as_secs_f64() / f.as_secs_f64(),
            nodes,
        );
    }
    // The incremental path must agree with a full rebuild of the same entries, and with
    // the tree the state machine kept itself.
    let incremental_root = shard.tree.root();
    shard.full();
    assert_eq!(incremental_root, shard.tree.root());
    shard.kv.merkle_mut().rebuild_incremental();
    assert_eq!(incremental_root, shard.kv.merkle().root());

    let (mut a, mut b, applied) = diverged_pair(&all);
    let shard_bytes: u64 = b
        .iter()
        .map(|i| entry_size_bytes(i.key(), &i.entry()) as u64)
        .sum();
    let t = Instant::now();
    let (out, b_repairs, postcard_bytes) = session(&mut a, &mut b, applied);
    let took = t.elapsed();
    println!(
        "anti-entropy, {} keys, {} diverged: {} round trips, {} bytes ({:.4}% of {} shard \
         bytes; postcard {} bytes, {:.4}%), {} nodes compared, {} differing leaves, {} \
         entries received, {} sent, repairs {} at A + {} at B, {:.1} ms",
        KEYS,
        DIVERGED_KEYS,
        out.round_trips,
        out.bytes_total(),
        100.0 * out.bytes_total() as f64 / shard_bytes as f64,
        shard_bytes,
        postcard_bytes,
        100.0 * postcard_bytes as f64 / shard_bytes as f64,
        out.compared_nodes,
        out.differing_leaves,
        out.entries_received,
        out.entries_sent,
        out.repairs.len(),
        b_repairs,
        took.as_secs_f64() * 1e3,
    );
    assert_eq!(out.repairs.len() as u64 + b_repairs, DIVERGED_KEYS as u64);

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("merkle_rebuild_1m");
        g.bench_function("full", |bch| {
            bch.iter_custom(|n| (0..n).map(|_| shard.full()).sum())
        });
        for &k in &DIRTY {
            g.bench_with_input(
                BenchmarkId::new("updates_and_incremental", k),
                &k,
                |bch, &k| {
                    bch.iter_custom(|n| (0..n).map(|_| shard.write_and_rebuild(k, &all).0).sum())
                },
            );
        }
        g.finish();
    }
    c.bench_function("anti_entropy_1m_100_diverged", |bch| {
        bch.iter(|| black_box(session(&mut a, &mut b, applied)))
    });
    c.final_summary();
}
