//! Node: a data directory written by a build that placed keys by hashing whole keys (no
//! `sharding.toml`) is refused with several shards, naming the cause, instead of serving
//! keys with hash tags from the wrong shard.
mod node_support;

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
    let args: Vec<std::ffi::OsString> = vec![
        "--id".into(),
        "0".into(),
        "--client-addr".into(),
        format!("127.0.0.1:{client}").into(),
        "--peers".into(),
        format!("127.0.0.1:{peer}").into(),
        "--data".into(),
        data.clone().into_os_string(),
        "--shards".into(),
        SHARDS.to_string().into(),
        "--no-pin".into(),
    ];
    let stderr = node_refused(&args);
    assert!(
        stderr.contains("hashing the whole key") && stderr.contains("hash tag"),
        "{stderr}"
    );
    assert!(!data.join("sharding.toml").exists(), "nothing recorded");
}
