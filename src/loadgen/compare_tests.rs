use super::*;
use crate::loadgen::testdata::{Synthetic, write};

fn side(dir: &std::path::Path, name: &str, s: Synthetic) -> Vec<Loaded> {
    let p = write(dir, name, &s);
    results::load(p.to_str().expect("utf-8 path")).expect("load")
}

fn row<'a>(c: &'a Comparison, op: &str, m: Metric) -> &'a Row {
    c.rows
        .iter()
        .find(|r| r.op == op && r.metric == m)
        .unwrap_or_else(|| panic!("no row {op} {m:?}"))
}

#[test]
fn a_large_difference_is_shown_and_a_tiny_one_marked_noise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = side(dir.path(), "a.json", Synthetic::default());
    let big = Synthetic {
        ops: 2.0,
        latency: 0.5,
        ..Synthetic::default()
    };
    let tiny = Synthetic {
        ops: 1.01,
        latency: 1.005,
        ..Synthetic::default()
    };
    let b = side(dir.path(), "big.json", big);
    let c = side(dir.path(), "tiny.json", tiny);

    let large = compare(("a", &a), ("big", &b), THRESHOLD_DEFAULT).expect("compare");
    let t = row(&large, ALL_OPS, Metric::Throughput);
    assert!((t.ratio - 2.0).abs() < 0.01, "{}", t.ratio);
    assert_eq!(t.verdict(), "better");
    assert_eq!(t.a.spread, Spread::Intervals(10));
    let p99 = row(&large, "get", Metric::P99);
    assert!((p99.ratio - 0.5).abs() < 0.01, "{}", p99.ratio);
    assert_eq!(p99.verdict(), "better");
    assert!((row(&large, ALL_OPS, Metric::CpuPerOp).ratio - 0.5).abs() < 0.01);
    assert!(large.rows.iter().all(|r| !r.noise), "{}", large.table());
    // All operations, then get and set; CPU per operation only for all of them.
    assert_eq!(large.rows.len(), 7 + 6 + 6);

    let small = compare(("a", &a), ("tiny", &c), THRESHOLD_DEFAULT).expect("compare");
    assert!(small.rows.iter().all(|r| r.noise), "{}", small.table());
    let table = small.table();
    assert!(table.contains("1.010  noise"), "{table}");
    assert!(table.contains("ranges overlap"), "{table}");
    assert!(table.contains("interval log"), "{table}");
    let wide = large.table();
    assert!(wide.contains("2.000  better"), "{wide}");
    assert!(!wide.contains("noise\n"), "{wide}");
}

#[test]
fn without_interval_logs_the_threshold_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = side(dir.path(), "a.json", Synthetic::default());
    let b = side(
        dir.path(),
        "b.json",
        Synthetic {
            ops: 1.03,
            ..Synthetic::default()
        },
    );
    for f in ["a.hlog", "b.hlog"] {
        std::fs::remove_file(dir.path().join(f)).expect("remove hlog");
    }
    let c = compare(("a", &a), ("b", &b), THRESHOLD_DEFAULT).expect("compare");
    let t = row(&c, ALL_OPS, Metric::Throughput);
    assert_eq!(t.a.spread, Spread::Unknown);
    assert!(t.noise);
    let strict = compare(("a", &a), ("b", &b), 0.01).expect("compare");
    assert_eq!(
        row(&strict, ALL_OPS, Metric::Throughput).verdict(),
        "better"
    );
    assert!(strict.table().contains("without interval log"));
}

#[test]
fn repeated_runs_give_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, ops) in [
        ("a-1.json", 1.0),
        ("a-2.json", 1.2),
        ("b-1.json", 1.1),
        ("b-2.json", 1.3),
    ] {
        let s = Synthetic {
            ops,
            ..Synthetic::default()
        };
        write(dir.path(), name, &s);
    }
    let pattern = |p: &str| dir.path().join(p).display().to_string();
    let a = results::load(&pattern("a-*.json")).expect("load a");
    let b = results::load(&pattern("b-*.json")).expect("load b");
    assert_eq!((a.len(), b.len()), (2, 2));
    let c = compare(("a", &a), ("b", &b), 0.0).expect("compare");
    let t = row(&c, ALL_OPS, Metric::Throughput);
    assert_eq!(t.a.spread, Spread::Runs(2));
    // 990 ops/s at scale 1 (the per-second counts average 0.99 of it).
    assert!((t.a.value - 1089.0).abs() < 1.0, "{}", t.a.value);
    assert!((t.b.value - 1188.0).abs() < 1.0, "{}", t.b.value);
    // 990–1,188 against 1,089–1,287: the ranges overlap.
    assert!(t.noise, "{}", c.table());
    assert!(c.table().contains("repeated runs"));
}

#[test]
fn sweep_folders_are_matched_by_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    for (d, modes, lat) in [(&da, ["log", "quorum"], 1.0), (&db, ["log", "digest"], 3.0)] {
        std::fs::create_dir(d).expect("mkdir");
        for (i, m) in modes.iter().enumerate() {
            let s = Synthetic {
                latency: lat,
                sweep: Some(serde_json::json!({"read_mode": m, "replicas": 3})),
                ..Synthetic::default()
            };
            write(d, &format!("run-{i:03}.json"), &s);
        }
    }
    let a = results::load(da.to_str().expect("utf-8")).expect("load");
    let b = results::load(db.to_str().expect("utf-8")).expect("load");
    let c = compare(("a", &a), ("b", &b), THRESHOLD_DEFAULT).expect("compare");
    assert!(
        c.rows.iter().all(|r| r.config == "w read_mode=log"),
        "{}",
        c.table()
    );
    assert!((row(&c, ALL_OPS, Metric::P50).ratio - 3.0).abs() < 0.05);
    assert_eq!(
        c.unmatched,
        [
            ("A", "w read_mode=quorum".into()),
            ("B", "w read_mode=digest".into())
        ]
    );
}

#[test]
fn malformed_input_says_which_file_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"not\": \"a result\"}").expect("write");
    let err = format!(
        "{:#}",
        results::load(bad.to_str().expect("utf-8")).unwrap_err()
    );
    assert!(err.contains("bad.json is not a corepax result"), "{err}");
    assert!(err.contains("field"), "{err}");
    std::fs::write(&bad, "{ truncated").expect("write");
    let err = format!(
        "{:#}",
        results::load(bad.to_str().expect("utf-8")).unwrap_err()
    );
    assert!(err.contains("bad.json is not a corepax result"), "{err}");
    let missing = dir.path().join("none.json");
    let err = format!(
        "{:#}",
        results::load(missing.to_str().expect("utf-8")).unwrap_err()
    );
    assert!(
        err.contains("cannot read") && err.contains("none.json"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = format!(
        "{:#}",
        results::load(empty.to_str().expect("utf-8")).unwrap_err()
    );
    assert!(err.contains("no result files"), "{err}");
}
