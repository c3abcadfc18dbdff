//! The open loop must show a 200 ms server stall in its tail (latency counts from the
//! intended send time), while a closed loop hides it behind the few requests in flight;
//! and the open loop tells the server's share (latency from the send) from its own
//! lateness (due time to send).
mod loadgen_common;
use corepax::loadgen::driver::{self, Progress, RunConfig};
use corepax::loadgen::report::BenchResult;
use corepax::loadgen::report::TargetDescription;
use loadgen_common::{Stall, TestServer, workload};
use std::time::Duration;

fn run(top: &str, load: &str) -> BenchResult {
    let server = TestServer::start(Some(Stall {
        after: Duration::from_millis(700),
        pause: Duration::from_millis(200),
    }));
    let w = workload(top, load);
    let cfg = RunConfig {
        workload: w.clone(),
        targets: vec![server.addr],
        cores: 2,
        progress: Progress::Quiet,
        pinned: true,
    };
    let out = driver::run(&cfg).expect("run");
    let t = TargetDescription {
        kind: "test".into(),
        description: "stalling test server".into(),
        addrs: vec![],
    };
    let r = BenchResult::new(&out, &w, t, Default::default(), 2);
    println!("{}", r.table());
    r
}

#[test]
fn open_loop_shows_the_stall_closed_loop_hides_it() {
    let open = run(
        "connections = 4\npipeline = 16\nduration_s = 2\nwarmup_s = 0",
        "mode = \"open\"\nrate_per_s = 2000\narrival = \"poisson\"",
    );
    assert_eq!(open.total.errors, 0);
    assert!(
        open.open_loop.expect("open loop report").kept_up,
        "{}",
        open.table()
    );
    // ~400 of ~4000 requests fall due during the stall: p99 sits inside it.
    assert!(
        open.total.p99_us >= 100_000.0,
        "open p99 {} µs",
        open.total.p99_us
    );
    assert!(
        open.total.max_us >= 190_000.0,
        "open max {} µs",
        open.total.max_us
    );
    // The stall was the server's: requests went out on time and waited for their replies,
    // so the latency from the send holds it and the generator's lateness does not.
    let o = open.open_loop.expect("open loop report");
    assert!(o.from_send_us[1] >= 100_000.0, "{o:?}");
    assert!(o.send_lag_us[1] < 50_000.0, "{o:?}");

    let closed = run(
        "connections = 4\npipeline = 1\nduration_s = 2\nwarmup_s = 0",
        "mode = \"closed\"",
    );
    assert_eq!(closed.total.errors, 0);
    // The closed loop saw the stall (its max) but only 4 requests waited through it.
    assert!(
        closed.total.max_us >= 190_000.0,
        "closed max {} µs",
        closed.total.max_us
    );
    assert!(
        closed.total.p99_us < 50_000.0,
        "closed p99 {} µs",
        closed.total.p99_us
    );
}

#[test]
fn requests_held_back_by_the_outstanding_bound_count_as_the_generators_lateness() {
    // One request in flight per connection: those due during the stall wait for a
    // permit, unsent. Their latency from the due time holds the stall, as the
    // generator's lateness; from the send, only the 4 requests in flight waited.
    let open = run(
        "connections = 4\npipeline = 16\nduration_s = 2\nwarmup_s = 0",
        "mode = \"open\"\nrate_per_s = 2000\narrival = \"poisson\"\noutstanding_max = 1",
    );
    assert_eq!(open.total.errors, 0);
    assert!(open.total.p99_us >= 100_000.0, "{}", open.table());
    let o = open.open_loop.expect("open loop report");
    assert!(o.send_lag_us[1] >= 100_000.0, "{o:?}");
    assert!(o.from_send_us[1] < 50_000.0, "{o:?}");
    assert!(
        open.table().contains("load generator's lateness"),
        "{}",
        open.table()
    );
}
