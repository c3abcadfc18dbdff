//! A JSON result must read back equal to what was written, and its interval log must be
//! readable as standard HdrHistogram log lines with the recorded counts.
use corepax::loadgen::driver::{Interval, MachineUse, RunOutput};
use corepax::loadgen::report::{BenchResult, TargetDescription};
use corepax::loadgen::stats::OpStats;
use corepax::loadgen::workload::{Op, Workload};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use std::time::{Duration, SystemTime};

#[test]
fn json_and_interval_log_round_trip() {
    let w = Workload::default_workload();
    let mut intervals = Vec::new();
    let mut total = OpStats::default();
    for i in 0..3u32 {
        let mut s = OpStats::default();
        for k in 0..(100 * (i as u64 + 1)) {
            s.record(Op::Get, 10_000 + k * 100);
            s.record(Op::Set, 50_000 + k);
        }
        s.error(Op::Set, "WRONGTYPE", 1);
        total.merge(&s);
        intervals.push(Interval {
            start: Duration::from_secs(i as u64),
            length: Duration::from_secs(1),
            stats: s,
            ops_all: 0,
        });
    }
    let out = RunOutput {
        stats: total,
        measured_s: 3.0,
        intervals: intervals.clone(),
        started: SystemTime::now(),
        open_loop: None,
        preload: Some((100_000, 1.5)),
        server_cpu_s: vec![("127.0.0.1:1".parse().expect("addr"), 0.006)],
        machine: Some(MachineUse {
            loadgen_cpu_s: 0.0024,
            busy_share: 0.83,
            cores: 2,
        }),
    };
    let target = TargetDescription {
        kind: "external".into(),
        description: "test".into(),
        addrs: vec!["127.0.0.1:1".into()],
    };
    let mut info = std::collections::BTreeMap::new();
    info.insert("no_fsync".to_string(), serde_json::Value::Bool(true));
    let mut r = BenchResult::new(&out, &w, target.clone(), info, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.json");
    r.write(&path, &intervals).expect("write");
    let back: BenchResult =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
    assert_eq!(back, r);
    assert_eq!(back.ops["get"].count, 600);
    assert_eq!(back.errors["WRONGTYPE"], 3);
    assert_eq!(back.target_info["no_fsync"], serde_json::Value::Bool(true));
    // 6 ms of server CPU over the 1,200 measured requests.
    let cpu = &back.server_cpu[0];
    assert_eq!(cpu.addr, "127.0.0.1:1");
    assert!((cpu.us_per_op - 5.0).abs() < 1e-9, "{}", cpu.us_per_op);
    assert!(r.table().contains("127.0.0.1:1 5.00"), "{}", r.table());
    // 2.4 ms of the load generator's CPU over the same requests; the machine's share.
    assert_eq!(back.machine, r.machine);
    assert!(
        r.table()
            .contains("load generator CPU per op 2.00 µs; machine busy 83 % of 2 cores"),
        "{}",
        r.table()
    );
    // 83 % busy is not worth a note; 95 % is.
    assert!(
        !r.notes.iter().any(|n| n.contains("% busy")),
        "{:?}",
        r.notes
    );
    let mut busy = out;
    busy.machine = Some(MachineUse {
        loadgen_cpu_s: 0.0024,
        busy_share: 0.95,
        cores: 2,
    });
    let b = BenchResult::new(&busy, &w, target, std::collections::BTreeMap::new(), 2);
    assert!(
        b.notes.iter().any(|n| n.contains("cores were 95 % busy")),
        "{:?}",
        b.notes
    );
    // A result written before the field reads back without it.
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
    old.as_object_mut().expect("object").remove("machine");
    let old: BenchResult = serde_json::from_value(old).expect("an older result");
    assert_eq!(old.machine, None);
    assert!(!old.table().contains("machine busy"), "{}", old.table());

    let log = std::fs::read(back.hlog_path.as_ref().expect("hlog path")).expect("read hlog");
    let mut de = Deserializer::new();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for e in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(h) = e.expect("well-formed log line") {
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                de.deserialize(&mut &bytes[..]).expect("histogram");
            *counts
                .entry(h.tag().expect("tagged").as_str().to_string())
                .or_default() += hist.len();
        }
    }
    assert_eq!(counts["get"], 600);
    assert_eq!(counts["set"], 600);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for ch in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in ch.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..ch.len()]);
    }
    out
}
