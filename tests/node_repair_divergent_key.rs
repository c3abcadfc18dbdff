//! Node: a divergent key written into one replica's state machine behind Paxos' back
//! (COREPAX.DEBUG SETLOCAL, a stale copy) shows as a different Merkle root; COREPAX.REPAIR
//! finds and repairs it, and the roots agree again. Debug commands need --debug.
mod node_support;
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

fn roots(cluster: &Cluster) -> Vec<Value> {
    (0..3)
        .map(|n| {
            let mut c = Client::connect(cluster.clients[n]).unwrap();
            c.cmd(&["COREPAX.MERKLE", "ROOT"]).unwrap()
        })
        .collect()
}

fn wait_agree(cluster: &Cluster) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = roots(cluster);
        if r[0] == r[1] && r[1] == r[2] {
            return r[0].clone();
        }
        assert!(Instant::now() < deadline, "roots never agreed: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn setlocal_divergence_is_found_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &["--debug"]);
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    for k in 0..50 {
        assert!(is_ok(&c.set(&format!("k{k}"), "good").unwrap()));
    }
    let agreed = wait_agree(&cluster);

    // Overwrite one key on node 2 only (a debug command runs on the connection's shard:
    // try keys until one belongs to it).
    let mut d = Client::connect(cluster.clients[2]).unwrap();
    let diverged = (0..50)
        .map(|k| format!("k{k}"))
        .find(|k| is_ok(&d.cmd(&["COREPAX.DEBUG", "SETLOCAL", k, "bad"]).unwrap()))
        .expect("some key belongs to the connection's shard");
    let r = roots(&cluster);
    assert_ne!(
        r[2], agreed,
        "node 2's root did not change after SETLOCAL {diverged}"
    );
    assert_eq!(r[0], agreed);

    let mut a = Client::connect(cluster.clients[0]).unwrap();
    let report = bulk(&a.cmd(&["COREPAX.REPAIR"]).unwrap()).expect("a report");
    eprintln!("{report}");
    assert!(report.contains("differing leaves"), "{report}");
    assert!(!report.contains("FAILED"), "{report}");
    assert_eq!(
        wait_agree(&cluster),
        agreed,
        "repair did not restore the agreed root"
    );

    // Without --debug the command is refused.
    let dir2 = tempfile::tempdir().unwrap();
    let plain = Cluster::start(3, dir2.path(), &[]);
    let mut p = Client::connect(plain.clients[0]).unwrap();
    let v = p.cmd(&["COREPAX.DEBUG", "SETLOCAL", "x", "y"]).unwrap();
    assert!(
        matches!(v, Value::Error(ref e) if e.contains("--debug")),
        "{v:?}"
    );
}
