//! Node: bytes flipped in the middle of a replica's synced WAL must not make it forget what
//! it acknowledged. X (node 0) and Y (node 1) acknowledge writes while Z (node 2) is down;
//! all stop; X's WAL is damaged mid-log; X and Z start: X must not vote (else X and Z
//! would elect a leader and fill the slots with no-ops), so no shard has a leader. When Y
//! returns, X recovers what it lost from the group, and every acknowledged key is there.
mod node_support;
use std::path::PathBuf;
use std::time::Duration;

use node_support::*;

const KEYS: usize = 2000;

/// Per shard of node 0: the segment with the most written bytes, and where they end.
fn busiest_segments(cluster: &Cluster) -> Vec<(PathBuf, usize)> {
    (0..SHARDS)
        .map(|s| {
            let wal = cluster.dir.join(format!("node-0/shard-{s}/wal"));
            let mut best = (PathBuf::new(), 0);
            for e in std::fs::read_dir(&wal).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_none_or(|x| x != "wal") {
                    continue;
                }
                let bytes = std::fs::read(&p).unwrap();
                let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                if end > best.1 {
                    best = (p, end);
                }
            }
            best
        })
        .collect()
}

#[test]
fn mid_log_wal_corruption_never_loses_acknowledged_writes() {
    mid_log_wal_corruption_never_loses_acknowledged_writes_under(Protocol::Multipaxos);
}

#[test]
fn raft_mid_log_wal_corruption_never_loses_acknowledged_writes() {
    mid_log_wal_corruption_never_loses_acknowledged_writes_under(Protocol::Raft);
}

fn mid_log_wal_corruption_never_loses_acknowledged_writes_under(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), &[]);
    cluster.kill9(2);
    {
        let mut c = Client::connect(cluster.clients[1]).unwrap();
        for k in 0..KEYS {
            let reply = c.set(&format!("key{k}"), &format!("v{k}")).unwrap();
            assert!(is_ok(&reply), "SET key{k}: {reply:?}");
        }
    }
    cluster.kill9(0);
    cluster.kill9(1);

    // Flip 16 bytes in the middle of what X wrote to each shard's WAL: synced records
    // with valid ones after them. At the start of a block: the zeros a sync beside
    // another leaves before the block it starts at end at a block boundary, so these
    // bytes are a record's, not such a gap's.
    for (seg, end) in busiest_segments(&cluster) {
        assert!(end > 64 << 10, "{} holds too little: {end}", seg.display());
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = end / 2 / 4096 * 4096 + 8;
        for b in &mut bytes[at..at + 16] {
            *b ^= 0xa5;
        }
        std::fs::write(&seg, &bytes).unwrap();
    }

    cluster.start_x_and_z("WAL corruption in the middle of the log");
    // Many election timeouts: X withholds its vote, so X and Z elect nobody.
    cluster.learner_waits_for_y(Duration::from_secs(3));
    assert!(cluster.log(0).contains("finished: voting again"));
    for node in 0..3 {
        let mut c = Client::connect(cluster.clients[node]).unwrap();
        for k in 0..KEYS {
            let got = c.cmd(&["GET", &format!("key{k}")]).unwrap();
            assert_eq!(bulk(&got), Some(format!("v{k}")), "key{k} via node {node}");
        }
    }
    // Every replica holds the same state, X included (reads above went through the log).
    cluster.wait_states_agree(Duration::from_secs(20));

    // X's recovery is durable: after another restart of X alone, it votes at once.
    cluster.kill9(0);
    cluster.restart(0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cluster.recovering_shards(0), 0, "{}", cluster.log(0));
}
