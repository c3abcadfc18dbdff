//! Node: a command its leader cannot get chosen (the leader is cut off from its peers) is
//! answered `TIMEOUT` once the request timeout passes, not held forever. Local proposals
//! wait without a timer of their own; the shard's ticker expires them at their deadline.
mod node_support;
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

#[test]
fn a_cut_off_leader_answers_timeout_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &["--debug"]);
    cluster.wait_for_leaders(Duration::from_secs(20));
    let leader = cluster.leaders()[0].expect("shard 0 has a leader");
    let mut c = Client::connect(cluster.clients[leader]).unwrap();
    assert!(is_ok(&c.set("before", "1").unwrap()));
    assert!(is_ok(
        &c.cmd(&["COREPAX.DEBUG", "PARTITION", "ON"]).unwrap()
    ));
    let started = Instant::now();
    // The client's read timeout (10 s) is twice the node's request timeout (5 s): an
    // answer that never comes fails here instead of hanging.
    let reply = c.cmd(&["SET", "after", "2"]).unwrap();
    let took = started.elapsed();
    match &reply {
        Value::Error(e) => assert!(e.starts_with("TIMEOUT"), "unexpected error {e}"),
        other => panic!("a cut-off leader answered {other:?} to a write"),
    }
    assert!(
        took >= Duration::from_millis(4_500),
        "TIMEOUT after {took:?}, before the 5 s request timeout"
    );
    assert!(
        c.cmd(&["COREPAX.DEBUG", "PARTITION", "OFF"])
            .is_ok_and(|v| is_ok(&v))
    );
}
