//! The sweep machinery (matrix → fresh server per configuration → table and plots) must
//! work end to end; tested with the redis-server launcher, two persistence settings.
use corepax::loadgen::driver::Progress;
use corepax::loadgen::sweep::{self, Matrix};

#[test]
fn sweep_over_redis_persistence_writes_table_and_plots() {
    // A missing redis-server fails the test (scripts/test.sh installs it): a skipped test
    // would pass while proving nothing.
    assert!(
        corepax::loadgen::launch::RedisServer::available(),
        "redis-server is not installed: run ./scripts/test.sh, which installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let wl = dir.path().join("w.toml");
    std::fs::write(
        &wl,
        r#"
name = "sweep-test"
record_count = 1000
connections = 4
pipeline = 4
duration_s = 1
warmup_s = 0
[keys]
distribution = "zipfian"
[value]
size_bytes = 32
[mix]
get = 0.5
set = 0.5
[load]
mode = "closed"
"#,
    )
    .expect("write workload");
    let mtext = format!(
        "launcher = \"redis\"\nworkloads = [{:?}]\nduration_s = 1\nredis_persistence = [\"none\", \"always\"]\n",
        wl.display().to_string()
    );
    let mpath = dir.path().join("m.toml");
    std::fs::write(&mpath, mtext).expect("write matrix");
    let m = Matrix::from_file(&mpath).expect("matrix parses");
    assert_eq!(m.configs().len(), 2);
    let out = dir.path().join("out");
    let got = sweep::run(&m, Some(out.clone()), Some(1), Progress::Quiet).expect("sweep runs");
    assert_eq!(got, out);
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        md.contains("redis-fsync=none") && md.contains("redis-fsync=always"),
        "{md}"
    );
    assert!(!md.contains("failed"), "{md}");
    for f in [
        "throughput-vs-p99.svg",
        "latency-percentiles.svg",
        "run-000.json",
        "run-001.hlog",
        "report.html",
    ] {
        let meta = std::fs::metadata(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 100, "{f} is empty");
    }
}
