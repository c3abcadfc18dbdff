//! Node: a full disk (injected: `COREPAX.DEBUG DISKFULL ON` makes the WAL's syncs fail with
//! ENOSPC) is a state, not a death. The leader whose disk fills steps down and the others
//! elect one that can write; the full node's clients still get their writes through it;
//! with every disk full a write is refused with a clear error; INFO shows the state; once
//! space is back the node resumes by itself and no acknowledged write is lost.
mod node_support;

use std::time::{Duration, Instant};

use corepax::runtime::node::shard_of;
use corepax::wire::resp::Value;
use node_support::*;

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn debug(cluster: &Cluster, node: usize, on: &str) {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    assert!(is_ok(&c.cmd(&["COREPAX.DEBUG", "DISKFULL", on]).unwrap()));
}

fn info(cluster: &Cluster, node: usize) -> String {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    bulk(&c.cmd(&["INFO"]).unwrap()).unwrap()
}

/// SET through `node`, retried while the group has no leader for it; the last answer.
fn set_eventually(cluster: &Cluster, node: usize, key: &str, value: &str) -> Value {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.set(key, value).unwrap();
        if is_ok(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_is_a_state_and_its_leader_steps_down() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &["--debug"]);
    let mut acked = Vec::new();
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    for i in 0..20 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert!(is_ok(&c.set(&k, &v).unwrap()));
        acked.push((k, v));
    }

    // The leader of shard 0 runs out of space. Writes to both shards, through it and
    // through another node, make every shard of it try to sync: it steps down where it
    // leads, another replica leads, and its clients' writes go through the new leaders.
    let full = cluster.leaders()[0].expect("shard 0 has a leader");
    debug(&cluster, full, "ON");
    for i in 20..30 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        let node = if i % 2 == 0 { full } else { (full + 1) % 3 };
        let reply = set_eventually(&cluster, node, &k, &v);
        assert!(is_ok(&reply), "SET {k} through node {node}: {reply:?}");
        acked.push((k, v));
    }
    assert!(
        (20..30).any(|i| shard_of(format!("k{i}").as_bytes(), SHARDS) == 0)
            && (20..30).any(|i| shard_of(format!("k{i}").as_bytes(), SHARDS) == 1),
        "the writes reach both shards"
    );
    eventually("the full node to show the state in INFO", || {
        info(&cluster, full).matches("disk_full=1").count() == SHARDS
    });
    eventually("a leader other than the full node for every shard", || {
        cluster
            .leaders()
            .iter()
            .all(|l| l.is_some_and(|l| l != full))
    });
    let text = info(&cluster, full);
    assert!(text.contains("storage=disk full"), "{text}");
    assert!(cluster.log(full).contains("disk full: stepping down"));

    // Every disk is full: no replica can lead, and a write is refused with a clear error
    // by a node that knows no other leader (the last leader of the key's shard).
    let leaders = cluster.leaders();
    for node in 0..3 {
        debug(&cluster, node, "ON");
    }
    let key = (0..)
        .map(|i| format!("x{i}"))
        .find(|k| shard_of(k.as_bytes(), SHARDS) == 0)
        .unwrap();
    let node = leaders[0].expect("shard 0 had a leader");
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    let mut refused = None;
    eventually("a write refused for a full disk", || {
        match c.cmd(&["SET", &key, "never"]).unwrap() {
            Value::Error(e) if e.starts_with("IOERR disk full") => {
                refused = Some(e);
                true
            }
            _ => false,
        }
    });

    // Space is back everywhere: the nodes resume by themselves.
    for node in 0..3 {
        debug(&cluster, node, "OFF");
    }
    for node in 0..3 {
        eventually("the WAL to resume", || {
            info(&cluster, node).matches("disk_full=0").count() == SHARDS
        });
    }
    cluster.wait_for_leaders(Duration::from_secs(20));
    let reply = set_eventually(&cluster, full, "after", "1");
    assert!(is_ok(&reply), "{reply:?}");
    acked.push(("after".into(), "1".into()));
    for node in 0..3 {
        let mut c = Client::connect(cluster.clients[node]).unwrap();
        for (k, v) in &acked {
            assert_eq!(
                bulk(&c.cmd(&["GET", k]).unwrap()).as_deref(),
                Some(v.as_str()),
                "{k} through node {node}"
            );
        }
    }
}
