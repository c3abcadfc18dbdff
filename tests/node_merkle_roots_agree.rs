//! Node: after a load, every replica reports the same Merkle root per shard
//! (COREPAX.MERKLE ROOT), and a root changes when its shard's data changes.
mod node_support;
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

fn roots(cluster: &Cluster, node: usize) -> Value {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    c.cmd(&["COREPAX.MERKLE", "ROOT"]).unwrap()
}

fn wait_equal(cluster: &Cluster) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r: Vec<Value> = (0..3).map(|n| roots(cluster, n)).collect();
        if r[0] == r[1] && r[1] == r[2] {
            return r[0].clone();
        }
        assert!(Instant::now() < deadline, "roots never agreed: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replicas_report_equal_roots_after_a_load() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    for k in 0..200 {
        assert!(is_ok(&c.set(&format!("k{k}"), &format!("v{k}")).unwrap()));
    }
    let before = wait_equal(&cluster);
    let Value::Array(Some(items)) = &before else {
        panic!("not an array: {before:?}");
    };
    assert_eq!(items.len(), SHARDS);
    assert!(is_ok(&c.set("k7", "changed").unwrap()));
    let after = wait_equal(&cluster);
    assert_ne!(before, after, "a write did not change any root");
    let one = c.cmd(&["COREPAX.MERKLE", "ROOT", "0"]).unwrap();
    assert!(
        matches!(one, Value::Array(Some(ref v)) if v.len() == 1),
        "{one:?}"
    );
}
