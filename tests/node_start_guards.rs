//! Node: a second node started onto a running node's data directory or client port is
//! refused with an error naming the cause, and the running node goes on serving. Two
//! nodes on one WAL would overwrite each other's records (acknowledged ones included);
//! two on one client port (SO_REUSEPORT) would each take half the clients. A node
//! killed with -9 leaves no lock behind: it starts again on its directory.
mod node_support;

use std::ffi::OsString;
use std::time::Duration;

use node_support::*;

/// `args` with the value after `flag` replaced by `value`.
fn with_flag(args: &[OsString], flag: &str, value: OsString) -> Vec<OsString> {
    let mut out = args.to_vec();
    let at = out
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    out[at + 1] = value;
    out
}

fn set_and_get(cluster: &Cluster, key: &str, value: &str) {
    let mut c = cluster.connect(0).unwrap();
    assert!(is_ok(&c.set(key, value).unwrap()));
    assert_eq!(bulk(&c.cmd(&["GET", key]).unwrap()).as_deref(), Some(value));
}

#[test]
fn a_second_node_on_a_used_data_dir_or_client_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &[]);
    set_and_get(&cluster, "before", "1");
    let args = cluster.node_args(0);

    // Node 0's data directory, on ports of its own.
    let free_client = format!("127.0.0.1:{}", free_ports(1));
    let stderr = node_refused(&with_flag(&args, "--client-addr", free_client.into()));
    assert!(
        stderr.contains("is in use by another running node") && stderr.contains("LOCK"),
        "{stderr}"
    );

    // Node 0's client port, with a directory of its own.
    let stderr = node_refused(&with_flag(
        &args,
        "--data",
        dir.path().join("intruder").into(),
    ));
    assert!(
        stderr.contains("the client address") && stderr.contains("is taken"),
        "{stderr}"
    );

    // Node 0 goes on serving (each connection lands on one of its shards' listeners).
    for round in 0..20 {
        set_and_get(&cluster, &format!("after-{round}"), "2");
    }

    // kill -9 releases the lock: node 0 starts again on its directory.
    cluster.kill9(0);
    cluster.restart(0);
    cluster.wait_for_leaders(Duration::from_secs(20));
    set_and_get(&cluster, "restarted", "3");
    let mut c = cluster.connect(0).unwrap();
    assert_eq!(
        bulk(&c.cmd(&["GET", "before"]).unwrap()).as_deref(),
        Some("1")
    );
}
