//! Node: with frequent snapshots and a short log, a replica that was down while the log
//! moved on catches up from a snapshot; then every node restarts from its snapshot and
//! the WAL after it, and every acknowledged key is there (under Multi-Paxos and Raft).
mod node_support;
use std::time::{Duration, Instant};

use node_support::*;

fn write(cluster: &Cluster, via: usize, from: usize, to: usize) {
    let mut c = Client::connect(cluster.clients[via]).unwrap();
    for k in from..to {
        let r = c.set(&format!("key{k}"), &format!("v{k}")).unwrap();
        assert!(is_ok(&r), "SET key{k} via node {via}: {r:?}");
    }
}

fn check(cluster: &Cluster, node: usize, to: usize) {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    for k in 0..to {
        let got = c.cmd(&["GET", &format!("key{k}")]).unwrap();
        assert_eq!(bulk(&got), Some(format!("v{k}")), "key{k} via node {node}");
    }
}

#[test]
fn lagging_replica_catches_up_from_a_snapshot_and_all_restart_from_snapshots() {
    catch_up_from_a_snapshot(Protocol::Multipaxos);
}

#[test]
fn raft_lagging_replica_catches_up_from_a_snapshot_and_all_restart_from_snapshots() {
    catch_up_from_a_snapshot(Protocol::Raft);
}

fn catch_up_from_a_snapshot(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--snapshot-interval-slots",
        "20",
        "--log-retain-slots",
        "5",
        "--batch-max",
        "1",
    ];
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), &flags);
    let lagging = (0..3)
        .find(|i| !cluster.leaders().contains(&Some(*i)))
        .unwrap_or(2);
    let via = (lagging + 1) % 3;
    write(&cluster, via, 0, 100);
    cluster.kill9(lagging);
    write(&cluster, via, 100, 400);
    cluster.restart(lagging);
    // The lagging node's own reads go through the log, so they are answered by the leader;
    // wait instead until its INFO shows it applied everything (it must have caught up).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = Client::connect(cluster.clients[lagging]).unwrap();
        let keys = c.cmd(&["DBSIZE"]).unwrap();
        if keys == corepax::wire::resp::Value::Integer(400) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {lagging} never caught up: DBSIZE {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Client::connect(cluster.clients[lagging]).unwrap();
    let info = bulk(&c.cmd(&["INFO"]).unwrap()).unwrap();
    assert!(
        info.matches("snapshots_installed=").count() == SHARDS
            && !info
                .lines()
                .filter(|l| l.contains("_stats:"))
                .all(|l| l.contains("snapshots_installed=0,")),
        "node {lagging} caught up without installing a snapshot:\n{info}"
    );
    let snapshots = std::fs::read_dir(dir.path().join(format!("node-{via}/shard-0/snapshots")))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(snapshots > 0, "no snapshot was written");
    cluster.crash_and_restart_all();
    for n in 0..3 {
        check(&cluster, n, 400);
    }
    assert!(
        cluster.log(via).contains("loaded snapshot"),
        "{}",
        cluster.log(via)
    );
}
