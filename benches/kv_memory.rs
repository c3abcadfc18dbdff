//! Memory per key of the state machine's map alone (no log, no node): 1,000,000 keys of
//! 100-byte values, set through `Kv::apply` as requests arrive. Also how long a snapshot
//! export of the map takes (it runs on the shard's executor) and the sort a snapshot
//! transfer adds. A measurement, printed:
//!
//! `cargo bench --bench kv_memory -- map`
//!
//! `cargo bench --bench kv_memory -- grow`: 2,000,000 keys set one by one, each SET
//! timed: the longest ones are the table's growths (`kv/map.rs`), a stop of the shard
//! for as long as one takes. Then the growth still running is ended a tick's part at a
//! time (`Kv::grow_step`), each part timed.
//!
//! `cargo bench --bench kv_memory -- list`: one list filled with 1-byte elements until a
//! push is refused (the held-bytes limit, `protocol::list::LIST_ELEMENT_OVERHEAD_BYTES`),
//! and the memory it then takes.

use bytes::Bytes;
use corepax::protocol::consensus::GROW_TICK_ITEMS;
use corepax::protocol::list::{End, LIST_BYTES_MAX};
use corepax::protocol::{Command, Kv, Reply, Request};

const KEYS: u64 = 1_000_000;
const VALUE_BYTES: usize = 100;
const KEY_BYTES: u64 = 11;

/// VmRSS of this process in KiB (Linux), 0 where unknown.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn report(what: &str, before: u64, after: u64) {
    let raw = KEYS * (KEY_BYTES + VALUE_BYTES as u64);
    println!(
        "{what}: {} bytes/key ({:.2}x the raw key + value bytes)",
        (after - before) * 1024 / KEYS,
        ((after - before) * 1024) as f64 / raw as f64
    );
}

fn map() {
    let before = rss_kib();
    let mut kv = Kv::new(4096, 4096);
    for i in 0..KEYS {
        let key = format!("key:{i:07}");
        let req = Request {
            cmd: Command::Set(
                Bytes::copy_from_slice(key.as_bytes()),
                Bytes::from(vec![b'x'; VALUE_BYTES]),
            ),
            ..Request::noop()
        };
        kv.apply(i + 1, &req);
    }
    // 1M keys is partway through the growth from 1M to 2M buckets: both tables held.
    report("kv map after load, growing", before, rss_kib());
    while !kv.grow_step(usize::MAX) {}
    report("kv map after load, the growth ended", before, rss_kib());
    let started = std::time::Instant::now();
    let state = kv.export();
    println!(
        "snapshot export of {} keys: {} ms",
        state.entries.len(),
        started.elapsed().as_millis()
    );
    report("kv map with an export held", before, rss_kib());
    let started = std::time::Instant::now();
    let mut sorted = state;
    sorted.sort();
    println!(
        "sorting it for a transfer: {} ms",
        started.elapsed().as_millis()
    );
    drop(sorted);
}

fn grow() {
    const GROW_KEYS: u64 = 2_000_000;
    let before = rss_kib();
    let mut kv = Kv::new(4096, 4096);
    let mut took: Vec<(std::time::Duration, u64)> = Vec::with_capacity(GROW_KEYS as usize);
    let started = std::time::Instant::now();
    for i in 0..GROW_KEYS {
        let req = Request {
            cmd: Command::Set(
                Bytes::from(format!("key:{i:07}")),
                Bytes::from(vec![b'x'; VALUE_BYTES]),
            ),
            ..Request::noop()
        };
        let at = std::time::Instant::now();
        kv.apply(i + 1, &req);
        took.push((at.elapsed(), i));
    }
    let total = started.elapsed();
    let over = |limit_us: u128| {
        took.iter()
            .filter(|(t, _)| t.as_micros() > limit_us)
            .count()
    };
    let (over_100us, over_1ms) = (over(100), over(1_000));
    took.sort_unstable_by(|a, b| b.cmp(a));
    println!(
        "{GROW_KEYS} SETs of new keys: {} ms in all; {over_100us} took over 100 µs, \
         {over_1ms} over 1 ms; memory {} MiB",
        total.as_millis(),
        (rss_kib() - before) / 1024
    );
    for (t, keys) in &took[..8] {
        println!("  {:>9.3} ms  with {keys} keys", t.as_secs_f64() * 1e3);
    }
    // The growth still running ends as a node's ticks end it when no write comes.
    let mut steps = Vec::new();
    loop {
        let at = std::time::Instant::now();
        let done = kv.grow_step(GROW_TICK_ITEMS);
        steps.push(at.elapsed());
        if done {
            break;
        }
    }
    steps.sort_unstable();
    println!(
        "ending the growth {GROW_TICK_ITEMS} items a tick: {} ticks, median {} µs, longest {} µs",
        steps.len(),
        steps[steps.len() / 2].as_micros(),
        steps[steps.len() - 1].as_micros()
    );
}

fn list() {
    const CHUNK: usize = 1_000;
    let before = rss_kib();
    let mut kv = Kv::new(4096, 4096);
    let mut held = 0usize;
    for slot in 1.. {
        let req = Request {
            cmd: Command::Push {
                key: Bytes::from_static(b"list"),
                values: vec![Bytes::from_static(b"x"); CHUNK],
                end: End::Right,
                existing: false,
            },
            ..Request::noop()
        };
        let corepax::protocol::kv::Applied::Reply(reply) = kv.apply(slot, &req) else {
            break;
        };
        match reply {
            Reply::Int(n) => held = n as usize,
            _ => break,
        }
    }
    // The last chunk was refused: up to CHUNK - 1 more single pushes would still fit.
    let after = rss_kib();
    let bytes = (after - before) * 1024;
    println!(
        "one list of 1-byte elements, pushed {CHUNK} at a time until refused: {held} \
         elements, {} KiB of memory ({} bytes/element; limit {} KiB)",
        after - before,
        bytes / held.max(1) as u64,
        LIST_BYTES_MAX / 1024
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument picks the part.
    let part = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "map".into());
    match part.as_str() {
        "map" => map(),
        "grow" => grow(),
        "list" => list(),
        other => eprintln!("unknown part {other:?}: the part is `map`, `grow` or `list`"),
    }
}
