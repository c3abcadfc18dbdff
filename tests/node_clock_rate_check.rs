//! Node: a replica whose clock runs 10 % slow (a hundred times the default bound of
//! 1,000 ppm; `COREPAX_DEBUG_CLOCK_RATE_PPM` in a debug node) is caught by the clock-rate
//! check: every node stops serving lease reads, says so in INFO and its log, reads keep
//! returning the latest write (through the log), and lease reads resume once the clock
//! runs right again. Multi-Paxos in both lease modes, Raft in leader-lease mode.
mod node_support;
use std::time::{Duration, Instant};

use node_support::*;

/// `field` of node `i`'s `reads_total:` line.
fn node_reads_total(cluster: &Cluster, i: usize, field: &str) -> u64 {
    reads_total(&mut Client::connect(cluster.clients[i]).unwrap(), field)
}

/// Waits until every node's every shard reports `trusted=want`.
fn wait_trusted(cluster: &Cluster, want: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let trusted: Vec<u64> = (0..3)
            .map(|i| cluster.info_sum(i, "_clocks", "trusted"))
            .collect();
        if trusted.iter().all(|t| *t == want * SHARDS as u64) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "clocks trusted per node {trusted:?}, want {want} on every shard; logs:\n{}",
            (0..3)
                .map(|i| format!("--- node {i}\n{}", cluster.log(i)))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes through one node and reads back through every node for `rounds`: every read
/// returns the latest write. Returns the lease reads served meanwhile.
fn write_then_read_everywhere(cluster: &Cluster, rounds: usize, tag: &str) -> u64 {
    let local_before: u64 = (0..3).map(|i| node_reads_total(cluster, i, "local")).sum();
    let mut w = Client::connect(cluster.clients[0]).unwrap();
    let mut readers: Vec<Client> = (0..3)
        .map(|i| Client::connect(cluster.clients[i]).unwrap())
        .collect();
    for round in 0..rounds {
        let value = format!("{tag}-{round}");
        assert!(is_ok(&w.set("clock-key", &value).unwrap()));
        for (n, r) in readers.iter_mut().enumerate() {
            let got = r.cmd(&["GET", "clock-key"]).unwrap();
            assert_eq!(
                bulk(&got).as_deref(),
                Some(value.as_str()),
                "node {n} read a stale value in round {round} ({tag})"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (0..3)
        .map(|i| node_reads_total(cluster, i, "local"))
        .sum::<u64>()
        - local_before
}

fn slow_clock_stops_lease_reads(protocol: Protocol, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(
        protocol,
        3,
        dir.path(),
        &[
            "--debug",
            "--read-mode",
            mode,
            "--clock-check-window-ms",
            "400",
        ],
    );
    // Clocks within the bound: lease reads are served once measured.
    wait_trusted(&cluster, 1, Duration::from_secs(10));
    let start = Instant::now();
    while write_then_read_everywhere(&cluster, 10, "right") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{protocol} {mode}: no lease read with clocks in bound"
        );
    }
    // Node 2 comes back with a clock 10 % slow.
    cluster.kill9(2);
    cluster.set_node_env(2, &[("COREPAX_DEBUG_CLOCK_RATE_PPM", "-100000")]);
    cluster.restart(2);
    cluster.wait_for_leaders(Duration::from_secs(20));
    wait_trusted(&cluster, 0, Duration::from_secs(10));
    assert!(
        cluster.log(0).contains("lease reads stop"),
        "{}",
        cluster.log(0)
    );
    assert!(
        cluster.log(2).contains("lease reads stop"),
        "{}",
        cluster.log(2)
    );
    let failed: u64 = (0..3)
        .map(|i| node_reads_total(&cluster, i, "clock_checks_failed"))
        .sum();
    assert!(failed >= 3, "clock checks failed {failed} times");
    let local = write_then_read_everywhere(&cluster, 40, "slow");
    assert_eq!(
        local, 0,
        "{protocol} {mode}: lease reads served with a clock 10 % slow"
    );
    // The clock runs right again (a restart at the right rate): lease reads resume.
    cluster.kill9(2);
    cluster.set_node_env(2, &[]);
    cluster.restart(2);
    wait_trusted(&cluster, 1, Duration::from_secs(10));
    assert!(cluster.log(0).contains("lease reads resume"));
    let start = Instant::now();
    while write_then_read_everywhere(&cluster, 10, "again") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{protocol} {mode}: lease reads did not resume"
        );
    }
}

#[test]
fn leader_lease_stops_while_a_clock_runs_slow() {
    slow_clock_stops_lease_reads(Protocol::Multipaxos, "leader-lease");
}

#[test]
fn quorum_lease_stops_while_a_clock_runs_slow() {
    slow_clock_stops_lease_reads(Protocol::Multipaxos, "quorum-lease");
}

#[test]
fn raft_leader_lease_stops_while_a_clock_runs_slow() {
    slow_clock_stops_lease_reads(Protocol::Raft, "leader-lease");
}
