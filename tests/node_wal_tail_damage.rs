//! Node: a truncated and a corrupted WAL tail are detected and reported at restart; the
//! records before them survive, and the node rejoins its group and serves every key.
mod node_support;
use std::path::PathBuf;

use node_support::*;

/// The newest WAL segment of shard 0 of node 0, and where its written bytes end.
fn last_segment(cluster: &Cluster) -> (PathBuf, usize) {
    let wal = cluster.dir.join("node-0/shard-0/wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    // The segment with the most written bytes is the one in use (segments are pre-zeroed).
    let mut best = (segs[0].clone(), 0);
    for s in segs {
        let bytes = std::fs::read(&s).unwrap();
        let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        if end > best.1 {
            best = (s, end);
        }
    }
    best
}

fn write_keys(cluster: &Cluster, from: usize, to: usize) {
    let mut c = Client::connect(cluster.clients[1]).unwrap();
    for k in from..to {
        assert!(is_ok(&c.set(&format!("key{k}"), &format!("v{k}")).unwrap()));
    }
}

fn check_keys(cluster: &Cluster, node: usize, to: usize) {
    let mut c = Client::connect(cluster.clients[node]).unwrap();
    for k in 0..to {
        let got = c.cmd(&["GET", &format!("key{k}")]).unwrap();
        assert_eq!(bulk(&got), Some(format!("v{k}")), "key{k} via node {node}");
    }
}

fn restart_node0(cluster: &mut Cluster) -> String {
    cluster.restart(0);
    cluster.wait_for_leaders(std::time::Duration::from_secs(20));
    cluster.log(0)
}

#[test]
fn torn_and_corrupt_wal_tails_are_reported_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &[]);
    write_keys(&cluster, 0, 100);

    // Corrupt: flip the last written byte of the newest segment.
    cluster.kill9(0);
    let (seg, end) = last_segment(&cluster);
    assert!(end > 0, "node 0 wrote nothing to shard 0's WAL");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[end - 1] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    let log = restart_node0(&mut cluster);
    assert!(
        log.contains("WAL recovery stopped at damage"),
        "corruption not reported:\n{log}"
    );
    check_keys(&cluster, 0, 100);

    // Torn: cut the segment file in the middle of its last written block.
    write_keys(&cluster, 100, 200);
    cluster.kill9(0);
    let (seg, end) = last_segment(&cluster);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len((end - 3) as u64).unwrap();
    drop(f);
    std::fs::remove_file(dir.path().join("node-0.log")).unwrap();
    let log = restart_node0(&mut cluster);
    assert!(
        log.contains("WAL recovery stopped at damage"),
        "torn tail not reported:\n{log}"
    );
    assert!(
        log.contains("recovered"),
        "records before the tail were not replayed:\n{log}"
    );
    check_keys(&cluster, 0, 200);
}
