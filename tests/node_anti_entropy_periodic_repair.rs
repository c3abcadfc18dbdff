//! Node: with periodic anti-entropy on (`--anti-entropy-interval-ms 300`), a key made
//! divergent on one replica (`COREPAX.DEBUG SETLOCAL`, a stale copy) is found and repaired
//! without anyone sending COREPAX.REPAIR, and the Merkle roots agree again.
mod node_support;
use std::time::{Duration, Instant};

use node_support::*;

/// Sum over the nodes of an anti-entropy counter from INFO.
fn total(cluster: &Cluster, field: &str) -> u64 {
    (0..3)
        .map(|i| cluster.info_sum(i, "_anti_entropy", field))
        .sum()
}

#[test]
fn divergent_key_is_repaired_by_a_periodic_round() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(
        3,
        dir.path(),
        &["--debug", "--anti-entropy-interval-ms", "300"],
    );
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    for k in 0..50 {
        assert!(is_ok(&c.set(&format!("k{k}"), "good").unwrap()));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let agreed = loop {
        let r: Vec<_> = (0..3).map(|i| cluster.merkle_roots(i)).collect();
        if r[0] == r[1] && r[1] == r[2] {
            break r[0].clone();
        }
        assert!(Instant::now() < deadline, "roots never agreed: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let repaired_before = total(&cluster, "keys_repaired");

    // A stale copy of one key on node 2 only (the command runs on the connection's shard:
    // try keys until one belongs to it).
    let mut d = Client::connect(cluster.clients[2]).unwrap();
    let diverged = (0..50)
        .map(|k| format!("k{k}"))
        .find(|k| is_ok(&d.cmd(&["COREPAX.DEBUG", "SETLOCAL", k, "bad"]).unwrap()))
        .expect("some key belongs to the connection's shard");

    // Nobody sends COREPAX.REPAIR: only the periodic rounds can undo it. A round may
    // already have run before the first look, so the proof is the repair counter.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r: Vec<_> = (0..3).map(|i| cluster.merkle_roots(i)).collect();
        let repaired = total(&cluster, "keys_repaired");
        if r.iter().all(|x| *x == agreed) && repaired > repaired_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{diverged} was not repaired by periodic anti-entropy: roots {r:?} (agreed {agreed:?}), \
             keys repaired {repaired} (before {repaired_before}); node 2's log:\n{}",
            cluster.log(2)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        let rounds = cluster.info_sum(i, "_anti_entropy", "rounds");
        assert!(rounds > 0, "node {i} ran no periodic round");
    }
    let mut g = Client::connect(cluster.clients[1]).unwrap();
    assert_eq!(
        bulk(&g.cmd(&["GET", &diverged]).unwrap()).as_deref(),
        Some("good")
    );
}
