//! Node: replicas sharing a cluster key form a cluster; a replica started with another key
//! is refused (both sides log why) while the others keep serving; a node with
//! `--requirepass` answers nothing but AUTH/HELLO before the password, as Redis does.
mod node_support;

use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

fn is_err_with(v: &Value, text: &str) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(text))
}

/// Waits up to 20 s for `cond`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cluster_key_and_client_password() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cluster.key");
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(&wrong, "fedcba9876543210fedcba9876543210\n").unwrap();
    let key_arg = key.display().to_string();
    let mut cluster = Cluster::start_per_node(3, dir.path(), &[], |_| {
        vec!["--cluster-key-file".into(), key_arg.clone()]
    });
    let mut c = Client::connect(cluster.clients[1]).unwrap();
    assert!(is_ok(&c.set("k", "v1").unwrap()));
    assert!(
        !cluster.log(0).contains("WARNING: no cluster key"),
        "a keyed node does not warn"
    );

    // Replica 2 comes back with another key: refused in both directions, and logged.
    cluster.kill9(2);
    let wrong_arg = wrong.display().to_string();
    cluster.set_node_args(2, &["--cluster-key-file", &wrong_arg]);
    cluster.restart(2);
    eventually("replica 2 to log the refusal", || {
        cluster.log(2).contains("wrong cluster key")
    });
    eventually("replica 0 to log the refused handshake", || {
        cluster.log(0).contains("claims to be replica 2")
    });
    assert!(is_ok(&c.set("k", "v2").unwrap()), "0 and 1 still serve");

    // Replica 0 now requires a password from its clients.
    cluster.kill9(0);
    cluster.set_node_args(0, &["--cluster-key-file", &key_arg, "--requirepass", "pw"]);
    cluster.restart(0);
    let mut c0 = Client::connect(cluster.clients[0]).unwrap();
    let v = c0.cmd(&["GET", "k"]).unwrap();
    assert!(is_err_with(&v, "NOAUTH Authentication required."), "{v:?}");
    let v = c0.cmd(&["AUTH", "nope"]).unwrap();
    assert!(is_err_with(&v, "WRONGPASS"), "{v:?}");
    let v = c0.cmd(&["HELLO", "3"]).unwrap();
    assert!(is_err_with(&v, "NOAUTH HELLO must be called"), "{v:?}");
    // (RESP2: this test's client decodes RESP2 only; HELLO 3 AUTH is the same path.)
    let v = c0.cmd(&["HELLO", "2", "AUTH", "default", "pw"]).unwrap();
    assert!(matches!(v, Value::Array(Some(_))), "{v:?}");
    eventually("node 0 to serve the value", || {
        bulk(&c0.cmd(&["GET", "k"]).unwrap()).as_deref() == Some("v2")
    });
    for auth in [&["AUTH", "pw"][..], &["AUTH", "default", "pw"]] {
        let mut c = Client::connect(cluster.clients[0]).unwrap();
        assert!(is_ok(&c.cmd(auth).unwrap()), "{auth:?}");
        assert!(is_ok(&c.set("k2", "x").unwrap()), "{auth:?}");
    }
    // A node without requirepass answers without AUTH.
    assert_eq!(bulk(&c.cmd(&["GET", "k2"]).unwrap()).as_deref(), Some("x"));
}
