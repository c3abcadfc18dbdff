//! Node: kill every node (kill -9, no clean shutdown), restart all from their data dirs:
//! every acknowledged key is there.
mod node_support;
use node_support::*;

#[test]
fn restart_every_node_keeps_acknowledged_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &[]);
    let mut c = Client::connect(cluster.clients[1]).unwrap();
    for k in 0..300 {
        let v = c.set(&format!("key{k}"), &format!("v{k}")).unwrap();
        assert!(is_ok(&v));
    }
    cluster.crash_and_restart_all();
    for n in 0..3 {
        let mut c = Client::connect(cluster.clients[n]).unwrap();
        for k in 0..300 {
            let got = c.cmd(&["GET", &format!("key{k}")]).unwrap();
            assert_eq!(
                bulk(&got),
                Some(format!("v{k}")),
                "key{k} via node {n} after restart"
            );
        }
    }
    assert!(
        cluster.log(0).contains("recovered"),
        "node 0 did not report recovery"
    );
}
