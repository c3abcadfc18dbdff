use super::*;
use crate::loadgen::results::{self, Loaded};
use crate::loadgen::testdata::{Synthetic, write};

/// A sweep of 3 workloads × 3 read modes, latency growing with both.
fn sweep(dir: &std::path::Path) -> Vec<Loaded> {
    let mut i = 0;
    for (wi, w) in ["ycsb-a", "ycsb-b", "ycsb-c"].iter().enumerate() {
        for (mi, m) in ["log", "leader-lease", "quorum"].iter().enumerate() {
            let s = Synthetic {
                workload: (*w).into(),
                ops: 1.0 + wi as f64 + mi as f64,
                latency: 1.0 + 0.5 * mi as f64 + wi as f64,
                sweep: Some(serde_json::json!({"read_mode": m, "replicas": 3})),
            };
            write(dir, &format!("run-{i:03}.json"), &s);
            i += 1;
        }
    }
    results::load(dir.to_str().expect("utf-8")).expect("load")
}

fn of(loaded: &[Loaded]) -> Vec<Run<'_>> {
    let rs: Vec<&BenchResult> = loaded.iter().map(|l| &l.result).collect();
    runs(&rs)
}

#[test]
fn one_colour_per_setting_value_and_one_marker_per_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = sweep(dir.path());
    let runs = of(&loaded);
    assert_eq!(runs[1].ident.label(), "ycsb-a read_mode=leader-lease");
    let s = Styles::of(&runs);
    assert_eq!(s.workloads(), ["ycsb-a", "ycsb-b", "ycsb-c"]);
    assert_eq!(
        s.colour_legend(),
        (
            "read_mode".into(),
            vec!["log".into(), "leader-lease".into(), "quorum".into()]
        )
    );
    // The same read mode has the same colour in every workload; modes differ.
    assert_eq!(s.colour(&runs[0].ident), s.colour(&runs[3].ident));
    assert_ne!(s.colour(&runs[0].ident), s.colour(&runs[1].ident));
    assert_eq!(s.marker("ycsb-a"), Marker::Circle);
    assert_eq!(s.marker("ycsb-c"), Marker::Triangle);
    // Nothing but the workload varies: colours stand for workloads.
    let only = Styles::of(&of(&loaded[..1]));
    assert_eq!(
        only.colour_legend(),
        ("workload".into(), vec!["ycsb-a".into()])
    );
}

#[test]
fn plots_name_every_series_and_label_percentiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = sweep(dir.path());
    let runs = of(&loaded);
    let curves = latency_curves_svg(&runs).expect("curves");
    for label in [
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "leader-lease",
        "ycsb-c",
    ] {
        assert!(curves.contains(&format!("\n{label}\n")), "{label} missing");
    }
    // Nine runs: one panel per workload.
    assert!(curves.contains("workload ycsb-b"));
    assert!(!curves.contains("\n#0"));
    let scatter = throughput_vs_p99_svg(&runs).expect("scatter");
    assert!(scatter.contains("\nquorum\n") && scatter.contains("\nycsb-a\n"));
    // Human ticks: 2k, 4k ... rather than 2000.0.
    assert!(scatter.contains("\n2k\n"), "no human throughput tick");
    assert!(scatter.contains("ms\n"), "no latency unit on the ticks");
    // Three runs of one workload fit one chart.
    let one = latency_curves_svg(&runs[..3]).expect("one chart");
    assert!(!one.contains("workload ycsb-a"));
}
