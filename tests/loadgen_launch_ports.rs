//! The load generator's embedded cluster on ports it found free: a node that cannot listen
//! fails the launch with the reason (a peer port fixed by the caller is tried once: new
//! tries would take it again).
use corepax::loadgen::launch::{CorepaxCluster, Launcher};
use std::net::TcpListener;
use std::path::PathBuf;

#[test]
fn a_taken_peer_port_fails_the_launch_with_the_reason() {
    let peer = corepax::loadgen::ports::reserve(&[1]).unwrap().keep()[0].start;
    let _taken = TcpListener::bind(("127.0.0.1", peer)).unwrap();
    let mut c = CorepaxCluster::new(
        PathBuf::from(env!("CARGO_BIN_EXE_corepax")),
        3,
        vec!["--peer-port".into(), peer.to_string()],
    );
    let err = c
        .launch()
        .expect_err("replica 0 cannot listen on its peer port")
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{peer}")) && err.contains("Address already in use"),
        "{err}"
    );
}

#[test]
fn an_embedded_cluster_serves_on_ports_below_the_ephemeral_range() {
    let mut c = CorepaxCluster::new(PathBuf::from(env!("CARGO_BIN_EXE_corepax")), 3, vec![]);
    let addrs = c.launch().expect("launch");
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(addrs.len(), 3);
    for a in &addrs {
        assert!(a.port() < ephemeral_low, "{a} in the ephemeral range");
    }
    // The peer ports too: an outgoing connection could take them between the check and
    // the node's bind.
    let config = c.data_dir().unwrap().join("node-0.toml");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let peers = config["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3);
    for p in peers {
        let p: std::net::SocketAddr = p.as_str().unwrap().parse().unwrap();
        assert!(p.port() < ephemeral_low, "peer {p} in the ephemeral range");
        assert!(
            addrs.iter().all(|a| a.port() != p.port()),
            "peer {p} is a client port"
        );
    }
    c.stop();
}
