//! Node: a data directory written by a build that placed keys by hashing whole keys (no
//! `sharding.toml`) is refused with several shards, naming the cause, instead of serving
//! keys with hash tags from the wrong shard.
mod node_support;

use std::time::{Duration, Instant};

use node_support::*;

#[test]
fn node_refuses_a_data_dir_of_a_build_without_hash_tags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node-0");
    for i in 0..SHARDS {
        std::fs::create_dir_all(data.join(format!("shard-{i}"))).unwrap();
    }
    let client = free_ports(1);
    let peer = free_ports(SHARDS as u16);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corepax"))
        .arg("node")
        .args(["--id", "0"])
        .args(["--client-addr", &format!("127.0.0.1:{client}")])
        .args(["--peers", &format!("127.0.0.1:{peer}")])
        .arg("--data")
        .arg(&data)
        .args(["--shards", &SHARDS.to_string(), "--no-pin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the node kept running on a data directory it cannot read correctly");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("hashing the whole key") && stderr.contains("hash tag"),
        "{stderr}"
    );
    assert!(!data.join("sharding.toml").exists(), "nothing recorded");
}
