//! The whole path (launcher, preload, driver, report) against a real redis-server for
//! 2 seconds: non-zero throughput and no errors.
use corepax::loadgen::driver::Progress;
use corepax::loadgen::launch::{Launcher, Persistence, RedisServer};
use corepax::loadgen::run::run_against;
use corepax::loadgen::workload::Workload;

#[test]
fn two_seconds_against_redis() {
    // A missing redis-server fails the test (scripts/test.sh installs it): a skipped test
    // would pass while proving nothing.
    assert!(
        RedisServer::available(),
        "redis-server is not installed: run ./scripts/test.sh, which installs it"
    );
    let mut r = RedisServer::new(Persistence::None);
    let addrs = r.launch().expect("redis-server starts");
    let mut w = Workload::default_workload();
    w.record_count = 10_000;
    w.duration_s = Some(2.0);
    w.warmup_s = 0.5;
    w.connections = 8;
    w.validate().expect("valid");
    let (res, out) = run_against(
        &w,
        addrs,
        r.describe(),
        r.target_info(),
        Some(2),
        Progress::Quiet,
        true,
    )
    .expect("run");
    println!("{}", res.table());
    assert_eq!(res.preload.map(|p| p.0), Some(10_000));
    assert!(res.total.throughput_per_s > 1000.0, "{}", res.table());
    assert_eq!(res.total.errors, 0, "{:?}", res.errors);
    assert!(res.ops["get"].count > 0 && res.ops["set"].count > 0);
    assert!(!out.intervals.is_empty());
    assert_eq!(res.target.kind, "redis-server");
}
