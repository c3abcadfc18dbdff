//! Node: a replica that found its data dir stale stays a learner across a kill -9, until
//! it caught up. The finding rests on what its peers saw it acknowledge; a peer restarted
//! since forgets that, so only the replica's own durable mark can carry the finding over.
//!
//! In one shard s, with leader C, follower A (the stale one) and follower B:
//! 1. A is backed up; B is cut off (`COREPAX.DEBUG PARTITION`), so the next writes are
//!    acknowledged by C and A only.
//! 2. A's data dir is replaced by the backup: only C holds those writes now. A restarts,
//!    C's report shows it stale, and A stays a learner (it needs two peers' reports and B
//!    is cut off): it is killed there, before it caught up.
//! 3. C is killed (forgetting what it saw A acknowledge) and B rejoins; A restarts. A and
//!    B are a quorum that lacks the writes: if A voted, they would elect a leader that
//!    never heard of them. For a while no leader may appear in shard s, and A must say it
//!    is recovering.
//! 4. C returns: a leader is elected, A finishes recovering, and every acknowledged write
//!    reads back from A and from B.
mod node_support;
use std::time::{Duration, Instant};

use corepax::runtime::node::shard_of;
use node_support::*;

#[test]
fn multipaxos_stale_mark_survives_kill9_before_catch_up() {
    stale_mark_survives_kill9(Protocol::Multipaxos);
}

#[test]
fn raft_stale_mark_survives_kill9_before_catch_up() {
    stale_mark_survives_kill9(Protocol::Raft);
}

/// `n` keys that live in shard `shard`.
fn keys_in_shard(shard: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key{i}"))
        .filter(|k| shard_of(k.as_bytes(), SHARDS) == shard)
        .take(n)
        .collect()
}

fn partition(cluster: &Cluster, node: usize, on: bool) {
    let mut c = cluster.connect(node).unwrap();
    let state = if on { "ON" } else { "OFF" };
    let reply = c.cmd(&["COREPAX.DEBUG", "PARTITION", state]).unwrap();
    assert!(is_ok(&reply), "PARTITION {state} on node {node}: {reply:?}");
}

fn stale_mark_survives_kill9(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), &["--debug"]);
    let s = 0;
    let c = cluster.leaders()[s].expect("shard 0 has a leader");
    let (a, b) = ((c + 1) % 3, (c + 2) % 3);
    let keys = keys_in_shard(s, 60);
    let (old, new) = keys.split_at(20);
    let mut client = cluster.connect(c).unwrap();
    for k in old {
        assert!(is_ok(&client.set(k, "old").unwrap()));
    }

    // 1. A's backup, taken while it is down; then writes that only C and A acknowledge.
    cluster.kill9(a);
    let a_dir = dir.path().join(format!("node-{a}"));
    let backup = dir.path().join("backup");
    copy_dir(&a_dir, &backup);
    cluster.restart(a);
    wait_until("A to follow C again", Duration::from_secs(20), || {
        cluster.shard_field(a, s, "recovering") == 0 && cluster.leaders()[s] == Some(c)
    });
    partition(&cluster, b, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    for k in new {
        client.set_until_ok(k, "new", deadline);
    }

    // 2. A restarts from the backup, is found stale, and is killed while a learner.
    cluster.kill9(a);
    std::fs::remove_dir_all(&a_dir).unwrap();
    copy_dir(&backup, &a_dir);
    cluster.restart(a);
    // Shard s's own finding: another shard of A may be found stale first (its terms or
    // ballots moved while A was down), before shard s heard C's report.
    wait_until(
        "A finds its data dir stale in shard s",
        Duration::from_secs(20),
        || cluster.shard_value(a, s, "_stats", "stale_data_detected") > 0,
    );
    assert_eq!(
        cluster.shard_field(a, s, "recovering"),
        1,
        "A caught up without B; its log:\n{}",
        cluster.log(a)
    );
    cluster.kill9(a);

    // 3. C forgets what it saw; A and B alone must not form a group.
    cluster.kill9(c);
    partition(&cluster, b, false);
    cluster.restart(a);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(
            cluster.leaders()[s],
            None,
            "a leader without C, which alone holds the writes; A's log:\n{}",
            cluster.log(a)
        );
        assert_eq!(cluster.shard_field(a, s, "recovering"), 1, "A voted again");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 4. C returns; A catches up; nothing acknowledged is lost.
    cluster.restart(c);
    wait_until("A finishes recovering", Duration::from_secs(30), || {
        cluster.shard_field(a, s, "recovering") == 0
    });
    cluster.wait_states_agree(Duration::from_secs(30));
    for node in [a, b] {
        let mut r = cluster.connect(node).unwrap();
        for (k, want) in old
            .iter()
            .map(|k| (k, "old"))
            .chain(new.iter().map(|k| (k, "new")))
        {
            let got = r.cmd(&["GET", k]).unwrap();
            assert_eq!(bulk(&got).as_deref(), Some(want), "{k} via node {node}");
        }
    }
}
