//! Node: a replica whose data dir is replaced by an older copy of itself learns from its
//! peers that it acknowledged more than the copy holds (INFO's `stale_data_detected`, an
//! error line naming the directory), rejoins as a learner, catches up with its group and
//! converges: equal Merkle roots and every acknowledged write readable.
mod node_support;
use std::time::{Duration, Instant};

use node_support::*;

#[test]
fn replica_restored_from_an_older_copy_is_detected_and_converges() {
    restored_from_an_older_copy_under(Protocol::Multipaxos);
}

#[test]
fn raft_replica_restored_from_an_older_copy_is_detected_and_converges() {
    restored_from_an_older_copy_under(Protocol::Raft);
}

fn restored_from_an_older_copy_under(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), &[]);
    let stale = (0..3)
        .find(|i| !cluster.leaders().contains(&Some(*i)))
        .unwrap_or(2);
    let via = (stale + 1) % 3;
    let mut c = Client::connect(cluster.clients[via]).unwrap();
    for k in 0..100 {
        assert!(is_ok(&c.set(&format!("k{k}"), "old").unwrap()));
    }
    // An older copy of the stale node's data dir, taken while it is down.
    cluster.kill9(stale);
    let node_dir = dir.path().join(format!("node-{stale}"));
    let backup = dir.path().join("backup");
    copy_dir(&node_dir, &backup);
    cluster.restart(stale);
    for k in 50..200 {
        assert!(is_ok(&c.set(&format!("k{k}"), "new").unwrap()));
    }
    // Restarted from its own, current data dir: nothing is detected.
    cluster.kill9(stale);
    cluster.restart(stale);
    cluster.wait_states_agree(Duration::from_secs(20));
    assert_eq!(
        cluster.info_sum(stale, "_stats", "stale_data_detected"),
        0,
        "a current data dir taken for stale; its log:\n{}",
        cluster.log(stale)
    );
    cluster.kill9(stale);
    std::fs::remove_dir_all(&node_dir).unwrap();
    copy_dir(&backup, &node_dir);
    cluster.restart(stale);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.info_sum(stale, "_stats", "stale_data_detected") == 0 {
        assert!(
            Instant::now() < deadline,
            "the older copy went unnoticed; its log:\n{}",
            cluster.log(stale)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = cluster.log(stale);
    let line = log
        .lines()
        .find(|l| l.contains("ERROR: stale data directory"))
        .unwrap_or_else(|| panic!("no error line in its log:\n{log}"));
    assert!(
        line.contains(&node_dir.display().to_string()),
        "the line names the directory: {line}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let roots: Vec<_> = (0..3)
            .map(|n| {
                let mut c = Client::connect(cluster.clients[n]).unwrap();
                c.cmd(&["COREPAX.MERKLE", "ROOT"]).unwrap()
            })
            .collect();
        if roots[0] == roots[1] && roots[1] == roots[2] {
            break;
        }
        assert!(Instant::now() < deadline, "never converged: {roots:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut s = Client::connect(cluster.clients[stale]).unwrap();
    for k in 0..200 {
        let want = if k < 50 { "old" } else { "new" };
        let got = s.cmd(&["GET", &format!("k{k}")]).unwrap();
        assert_eq!(bulk(&got).as_deref(), Some(want), "k{k} via node {stale}");
    }
}
