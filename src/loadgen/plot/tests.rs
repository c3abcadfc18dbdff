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
                ..Synthetic::default()
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

/// Two read modes at three offered rates each: `quorum` keeps up at every rate, `log`
/// falls behind at the top one; latency grows with the rate.
fn rate_sweep(dir: &std::path::Path) -> Vec<Loaded> {
    let mut i = 0;
    for (mi, m) in ["log", "quorum"].iter().enumerate() {
        for (ri, rate) in [1000.0_f64, 2000.0, 4000.0].iter().enumerate() {
            // Throughput is 1,000 × ops per second; `log` completes 2,000/s at most.
            let done = if mi == 0 { rate.min(2000.0) } else { *rate };
            let s = Synthetic {
                ops: done / 1000.0,
                latency: 0.1 * (1 + ri + 3 * (1 - mi)) as f64,
                sweep: Some(serde_json::json!({"read_mode": m, "rate_per_s": rate})),
                rate_per_s: Some(*rate),
                ..Synthetic::default()
            };
            write(dir, &format!("run-{i:03}.json"), &s);
            i += 1;
        }
    }
    results::load(dir.to_str().expect("utf-8")).expect("load")
}

#[test]
fn a_rate_sweep_groups_runs_by_configuration_and_finds_the_highest_rate_within_an_objective() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = rate_sweep(dir.path());
    let rs: Vec<&BenchResult> = loaded.iter().map(|l| &l.result).collect();
    let series = load::series(&rs);
    let names: Vec<String> = series.iter().map(|s| s.ident.label()).collect();
    assert_eq!(names, ["w read_mode=log", "w read_mode=quorum"]);
    for s in &series {
        let rates: Vec<f64> = s.points.iter().map(|p| p.0).collect();
        assert_eq!(rates, [1000.0, 2000.0, 4000.0]);
    }
    // p99 of the synthetic runs is ~10 ms × latency: log 4–6 ms, quorum 1–3 ms.
    let p99 = |s: usize, i: usize| series[s].points[i].1.total.p99_us / 1000.0;
    assert!(p99(1, 2) < p99(0, 0), "{} {}", p99(1, 2), p99(0, 0));
    // An objective above every p99: log's top rate still fails (it did not keep up).
    assert_eq!(series[0].highest_rate_within(1e6), Some(2000.0));
    assert_eq!(series[1].highest_rate_within(1e6), Some(4000.0));
    // An objective between quorum's second and third rates.
    let between = (p99(1, 1) + p99(1, 2)) / 2.0;
    assert_eq!(series[1].highest_rate_within(between), Some(2000.0));
    assert_eq!(series[0].highest_rate_within(p99(1, 0) / 2.0), None);
    let svg = load::latency_vs_load_svg(&rs)
        .expect("plot")
        .expect("a load plot");
    assert!(svg.contains("offered load"), "x axis named");
    assert!(svg.contains("4k"), "human ticks on the rate axis");
    assert!(svg.contains("quorum"), "legend names the configurations");
}

#[test]
fn closed_loop_runs_draw_no_load_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = sweep(dir.path());
    let rs: Vec<&BenchResult> = loaded.iter().map(|l| &l.result).collect();
    assert!(load::series(&rs).is_empty());
    assert!(load::latency_vs_load_svg(&rs).expect("plot").is_none());
}
