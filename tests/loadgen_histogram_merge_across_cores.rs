//! Statistics recorded on several cores must merge into exactly what the server saw:
//! every completed request counted once, intervals summing to the total.
mod loadgen_common;
use corepax::loadgen::driver::{self, Progress, RunConfig};
use corepax::loadgen::stats::{OpStats, new_histogram};
use corepax::loadgen::workload::Op;
use loadgen_common::{TestServer, workload};
use std::sync::atomic::Ordering;

#[test]
fn per_core_histograms_merge_to_the_whole() {
    // Two "cores" record disjoint halves; the merge equals one histogram of everything.
    let values: Vec<u64> = (1..=20_000u64)
        .map(|i| i * 997 % 5_000_000 + 1_000)
        .collect();
    let parts: Vec<OpStats> = std::thread::scope(|s| {
        let hs: Vec<_> = values
            .chunks(values.len() / 2)
            .map(|c| {
                s.spawn(move || {
                    let mut st = OpStats::default();
                    for &v in c {
                        st.record(Op::Get, v);
                    }
                    st.error(Op::Set, "ERR", 1);
                    st
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut merged = OpStats::default();
    for p in &parts {
        merged.merge(p);
    }
    let mut whole = new_histogram();
    for &v in &values {
        whole.record(v).expect("in range");
    }
    assert_eq!(merged.hist[Op::Get as usize], whole);
    assert_eq!(merged.errors[Op::Set as usize], 2);
    assert_eq!(merged.error_kinds["ERR"], 2);
}

#[test]
fn driver_on_two_cores_counts_every_request_once() {
    let server = TestServer::start(None);
    let w = workload(
        "connections = 8\npipeline = 4\nduration_s = 1\nwarmup_s = 0",
        "mode = \"closed\"",
    );
    let out = driver::run(&RunConfig {
        workload: w,
        targets: vec![server.addr],
        cores: 2,
        progress: Progress::Quiet,
        pinned: true,
    })
    .expect("run");
    let sent = server.commands.load(Ordering::Relaxed);
    assert!(sent > 0);
    assert_eq!(
        out.stats.count(),
        sent,
        "every request the server answered is counted once"
    );
    let by_interval: u64 = out.intervals.iter().map(|i| i.stats.count()).sum();
    assert_eq!(by_interval, sent);
    assert!(
        !out.stats.hist[Op::Get as usize].is_empty()
            && !out.stats.hist[Op::Set as usize].is_empty()
    );
}
