//! Node: a corrupt snapshot is never half-loaded, and what it held is recovered from the
//! group. X (node 0) and Y (node 1) acknowledge writes while Z (node 2) is down, and X
//! snapshots (its WAL before the snapshot is gone); all stop; X's newest snapshot of each
//! shard gets flipped bytes. X and Z start: X must not vote (it may have forgotten
//! promises and votes the snapshot's WAL held), so no shard has a leader. When Y returns,
//! X recovers the state from the group, every acknowledged key is there, all three states
//! agree, and X's next snapshot replaces the corrupt one.
mod node_support;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use node_support::*;

const KEYS: usize = 600;

/// Node 0's snapshot files of shard `s`, newest first.
fn snapshots(cluster: &Cluster, s: usize) -> Vec<PathBuf> {
    let dir = cluster.dir.join(format!("node-0/shard-{s}/snapshots"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "snap"));
    files.sort();
    files.reverse();
    files
}

fn write_keys(cluster: &Cluster, node: usize, from: usize, to: usize) {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    for k in from..to {
        let reply = c.set(&format!("key{k}"), &format!("v{k}")).unwrap();
        assert!(is_ok(&reply), "SET key{k}: {reply:?}");
    }
}

#[test]
fn corrupt_snapshot_is_recovered_from_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--snapshot-interval-slots",
        "50",
        "--log-retain-slots",
        "10",
    ];
    let mut cluster = Cluster::start(3, dir.path(), &flags);
    cluster.kill9(2);
    write_keys(&cluster, 1, 0, KEYS);
    cluster.kill9(0);
    cluster.kill9(1);

    for s in 0..SHARDS {
        let newest = snapshots(&cluster, s)
            .into_iter()
            .next()
            .expect("a snapshot");
        let mut bytes = std::fs::read(&newest).unwrap();
        let mid = 64 + (bytes.len() - 64) / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(&newest, &bytes).unwrap();
    }

    cluster.start_x_and_z("newest snapshot is corrupt");
    cluster.learner_waits_for_y(Duration::from_secs(2));
    for node in 0..3 {
        let mut c = Client::connect(cluster.clients[node]).unwrap();
        for k in (0..KEYS).step_by(7) {
            let got = c.cmd(&["GET", &format!("key{k}")]).unwrap();
            assert_eq!(bulk(&got), Some(format!("v{k}")), "key{k} via node {node}");
        }
    }
    cluster.wait_states_agree(Duration::from_secs(20));

    // More writes: X snapshots again, and its newest snapshot verifies.
    write_keys(&cluster, 0, KEYS, KEYS + 300);
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in 0..SHARDS {
        loop {
            let dir = cluster.dir.join(format!("node-0/shard-{s}/snapshots"));
            let loaded = corepax::runtime::snapshot::load_latest(&dir);
            if matches!(&loaded, Ok(Some(l)) if l.skipped_corrupt.is_empty()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shard {s}: the corrupt snapshot is still the newest: {:?}",
                loaded.err()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // And a restart of X alone loads it: no learner this time.
    cluster.kill9(0);
    cluster.restart(0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cluster.recovering_shards(0), 0, "{}", cluster.log(0));
}
