//! What a list write costs as the list grows: one `RPUSH` and one `LPOP` (so the length
//! stays) on lists of 16 to 131,072 elements of 16 bytes. A list is held as elements and
//! changed in place, its digest hash updated per element (see `protocol::list`), so the
//! cost should not grow with the length, as in Redis.
//!
//! Run: `cargo bench --bench kv_lists`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use corepax::protocol::list::End;
use corepax::protocol::{Command, Kv, Request};

/// A command outside any client session (client 0), so applying it again executes it.
fn request(cmd: Command) -> Request {
    Request {
        client: 0,
        seq: 0,
        ack_floor: 0,
        cmd,
    }
}

fn push_pop(c: &mut Criterion) {
    let elem = Bytes::from(vec![b'e'; 16]);
    let key = Bytes::from_static(b"queue");
    let push = request(Command::Push {
        key: key.clone(),
        values: vec![elem.clone()],
        end: End::Right,
        existing: false,
    });
    let pop = request(Command::Pop {
        key,
        end: End::Left,
        count: None,
    });
    let mut group = c.benchmark_group("kv_list_rpush_lpop");
    group.throughput(Throughput::Elements(1));
    for len in [16u64, 1 << 10, 1 << 14, 1 << 17] {
        let mut kv = Kv::new(4096, 4096);
        let mut slot = 0;
        for _ in 0..len {
            slot += 1;
            kv.apply(slot, &push);
        }
        group.bench_with_input(BenchmarkId::new("elements", len), &len, |b, _| {
            b.iter(|| {
                slot += 1;
                kv.apply(slot, &push);
                slot += 1;
                kv.apply(slot, &pop);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, push_pop);
criterion_main!(benches);
