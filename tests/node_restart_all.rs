//! Node: kill every node (kill -9, no clean shutdown), restart all from their data dirs:
//! every acknowledged key is there (under Multi-Paxos and under Raft, and with
//! `--no-fsync`, whose records the page cache holds when the processes die).
mod node_support;
use node_support::*;

#[test]
fn restart_every_node_keeps_acknowledged_keys() {
    restart_every_node(Protocol::Multipaxos, &[]);
}

/// Without fsync the WAL writes through the page cache: a process that dies loses
/// nothing it acknowledged (only the machine's failure would).
#[test]
fn restart_every_node_without_fsync_keeps_acknowledged_keys() {
    restart_every_node(Protocol::Multipaxos, &["--no-fsync"]);
}

#[test]
fn raft_restart_every_node_keeps_acknowledged_keys() {
    let dir = restart_every_node(Protocol::Raft, &[]);
    // A data directory Raft wrote is refused under the other protocol, by name.
    let port = free_ports(1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corepax"))
        .args([
            "node",
            "--id",
            "0",
            "--shards",
            &SHARDS.to_string(),
            "--no-pin",
        ])
        .args(["--client-addr", &format!("127.0.0.1:{port}")])
        .args(["--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"])
        .arg("--data")
        .arg(dir.path().join("node-0"))
        .args(["--protocol", "multipaxos"])
        .output()
        .expect("run corepax node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on Raft's data: {stderr}");
    assert!(
        stderr.contains("protocol = multipaxos") && stderr.contains("raft"),
        "{stderr}"
    );
}

/// Writes, kills every node, restarts them (nodes started with `extra`): every
/// acknowledged key is there. Returns the data directory (the nodes are stopped).
fn restart_every_node(protocol: Protocol, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), extra);
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
    drop(cluster);
    dir
}
