//! Applying batches of SETs to a map much larger than the CPU's caches (1,000,000 keys,
//! 100-byte values, random keys), with and without prefetching the batch's items first
//! (`Kv::prefetch`, what `waiting::apply_batch` does). Each key's item is a cache miss;
//! prefetching lets a batch's misses overlap. The third case also records each change
//! for key watches as a node does (`Kv::record_events`, the events taken after each batch
//! into a watch history of 10,000 changes, the default `watch_history_max`): what
//! `COREPAX.WATCH … FROM version` costs every write when nobody watches.
//!
//! `apply_reads` applies GETs through client sessions, as `log` mode does. `lease_reads`
//! answers GETs from the map as a lease read does (`Kv::read`), a pipeline of 16 at a
//! time, with and without prefetching the pipeline's items first (`Kv::prefetch_keys`, what
//! the front end does for a pipeline's reads).
//!
//! `export` freezes the whole map at once (`Kv::export`: one reference taken on every
//! item, what a shard stopped for per snapshot until 2026-12-06); a node's snapshot now
//! stops it for `export_begin` (a buffer reserved, nothing copied; until 2026-12-06 the
//! table's pointers, 8 MiB at 1M keys) and then, between other work, for parts of
//! `export_step` (the walk of the table, `kv/map.rs`).
//!
//! Run: `cargo bench --bench kv_apply`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use corepax::protocol::watch::{EventRef, History};
use corepax::protocol::{Command, Kv, Request};

const KEYS: u64 = 1_000_000;
const BATCH: usize = 64;
const BATCHES: usize = 256;

/// A SET outside any client session (client 0), so applying it again executes it again.
fn set(key: u64, value: &Bytes) -> Request {
    Request {
        client: 0,
        seq: 0,
        ack_floor: 0,
        cmd: Command::Set(Bytes::from(format!("key:{key:07}")), value.clone()),
    }
}

/// A map of [`KEYS`] keys set to `value`. 1M keys is partway through the map's growth
/// from 1M to 2M buckets (`kv/map.rs`); `grown` ends it, as a node's ticks do.
fn loaded(value: &Bytes, grown: bool) -> Kv {
    let mut kv = Kv::new(4096, 4096);
    for i in 0..KEYS {
        kv.apply(i + 1, &set(i, value));
    }
    while grown && !kv.grow_step(usize::MAX) {}
    kv
}

fn apply(c: &mut Criterion) {
    let value = Bytes::from(vec![b'x'; 100]);
    let mut kv = loaded(&value, true);
    let mut rng = StdRng::seed_from_u64(7);
    let batches: Vec<Vec<Request>> = (0..BATCHES)
        .map(|_| {
            (0..BATCH)
                .map(|_| set(rng.random_range(0..KEYS), &value))
                .collect()
        })
        .collect();
    let mut slot = KEYS + 1;
    let mut group = c.benchmark_group("kv_apply_1m_keys_random_set");
    group.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    let mut history = History::new(10_000, 0);
    for (prefetch, watch) in [(false, false), (true, false), (true, true)] {
        kv.record_events(watch);
        let name = if watch { "prefetch+watch" } else { "prefetch" };
        group.bench_with_input(
            BenchmarkId::new(name, prefetch),
            &prefetch,
            |b, &prefetch| {
                b.iter(|| {
                    for batch in &batches {
                        if prefetch {
                            kv.prefetch(batch, true);
                        }
                        slot += 1;
                        for req in batch {
                            kv.apply(slot, req);
                        }
                        // As a shard does with no key watched (`Pubsub::on_event`).
                        kv.drain_events(|e| {
                            if let EventRef::Change { key, version, kind } = e {
                                history.push(key, version, kind);
                            }
                        });
                    }
                })
            },
        );
    }
    group.finish();
}

/// GETs of random keys through client sessions, as the log applies reads in `log` mode
/// (50 sessions, each with 16 requests outstanding: its acknowledged floor trails by 16).
fn apply_reads(c: &mut Criterion) {
    let value = Bytes::from(vec![b'x'; 100]);
    let mut kv = loaded(&value, true);
    let mut rng = StdRng::seed_from_u64(7);
    let keys: Vec<Bytes> = (0..BATCH * BATCHES)
        .map(|_| Bytes::from(format!("key:{:07}", rng.random_range(0..KEYS))))
        .collect();
    let mut seq = [0u64; 50];
    let mut slot = KEYS + 1;
    let mut group = c.benchmark_group("kv_apply_1m_keys_random_get_in_sessions");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("prefetch", |b| {
        b.iter(|| {
            for batch in keys.chunks(BATCH) {
                let reqs: Vec<Request> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let s = &mut seq[i % 50];
                        *s += 1;
                        Request {
                            client: (i % 50) as u64 + 1,
                            seq: *s,
                            ack_floor: s.saturating_sub(16),
                            cmd: Command::Get(k.clone()),
                        }
                    })
                    .collect();
                kv.prefetch(&reqs, true);
                slot += 1;
                for req in &reqs {
                    kv.apply(slot, req);
                }
            }
        })
    });
    group.finish();
}

/// GETs answered from the map as lease reads are (`Kv::read`), 16 per pipeline (as
/// `redis-benchmark -P 16` sends them), with and without prefetching the pipeline's keys,
/// and with a map partway through a growth (two tables to look in).
fn lease_reads(c: &mut Criterion) {
    let value = Bytes::from(vec![b'x'; 100]);
    let mut kv = loaded(&value, true);
    let mut growing = loaded(&value, false);
    let mut rng = StdRng::seed_from_u64(7);
    let gets: Vec<Command> = (0..BATCH * BATCHES)
        .map(|_| Command::Get(Bytes::from(format!("key:{:07}", rng.random_range(0..KEYS)))))
        .collect();
    let mut group = c.benchmark_group("kv_read_1m_keys_random_get_pipelined_16");
    group.throughput(Throughput::Elements(gets.len() as u64));
    for (prefetch, mid_growth) in [(false, false), (true, false), (true, true)] {
        let kv = if mid_growth { &mut growing } else { &mut kv };
        let name = if mid_growth {
            "prefetch_mid_growth"
        } else {
            "prefetch"
        };
        group.bench_with_input(
            BenchmarkId::new(name, prefetch),
            &prefetch,
            |b, &prefetch| {
                b.iter(|| {
                    let mut found = 0usize;
                    for pipeline in gets.chunks(16) {
                        if prefetch {
                            kv.prefetch_keys(|each| {
                                for cmd in pipeline {
                                    cmd.for_each_key(&mut |k| each(k));
                                }
                            });
                        }
                        for cmd in pipeline {
                            found +=
                                matches!(kv.read(cmd), corepax::protocol::Reply::Value(Some(_)))
                                    as usize;
                        }
                    }
                    assert_eq!(found, gets.len(), "every key was written");
                })
            },
        );
    }
    group.finish();
}

/// A snapshot's freeze of the whole map (`Kv::export`), after random overwrites have
/// scattered the items over the heap as a running node's are.
fn export(c: &mut Criterion) {
    let value = Bytes::from(vec![b'x'; 100]);
    let mut kv = loaded(&value, true);
    let mut rng = StdRng::seed_from_u64(7);
    let other = Bytes::from(vec![b'y'; 90]);
    for i in 0..KEYS {
        kv.apply(KEYS + i + 1, &set(rng.random_range(0..KEYS), &other));
    }
    let mut group = c.benchmark_group("kv_export_1m_keys");
    group.throughput(Throughput::Elements(KEYS));
    group.sample_size(20);
    group.bench_function("export", |b| {
        b.iter_with_large_drop(|| kv.export());
    });
    // What a node's snapshot stops the shard for at once: no item touched (each begin
    // drops the previous freeze; the items are shared later, a part at a time, by
    // `export_step`).
    group.bench_function("export_begin", |b| {
        b.iter(|| kv.export_begin());
    });
    // One part of those: 4,096 items shared (`SNAPSHOT_PART_ITEMS` in the node).
    kv.export_begin();
    group.throughput(Throughput::Elements(4096));
    group.bench_function("export_step_4096", |b| {
        b.iter(|| {
            if kv.export_step(4096) {
                kv.export_end();
                kv.export_begin();
            }
        });
    });
    kv.export_end();
    // What a snapshot costs the blocking pool: the frozen state encoded as the node writes
    // it (postcard through a 1 MiB buffer; to a sink here, no disk), and dropped after.
    let state = kv.export();
    group.throughput(Throughput::Elements(KEYS));
    group.bench_function("encode", |b| {
        b.iter(|| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::sink());
            postcard::to_io(&state, &mut out).expect("encodes");
        });
    });
    drop(state);
    group.bench_function("drop", |b| {
        b.iter_batched(|| kv.export(), drop, criterion::BatchSize::PerIteration);
    });
    group.finish();
}

criterion_group!(benches, apply, apply_reads, lease_reads, export);
criterion_main!(benches);
