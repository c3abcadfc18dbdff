//! Node: what anti-entropy repaired is on disk, not only in memory. A replica holding a
//! stale copy of a key that is already in its snapshot (so a restart brings the stale copy
//! back) is repaired by a periodic round; then it is killed with SIGKILL and restarted
//! with anti-entropy off (nothing can repair it again), and its Merkle roots still equal
//! the other replicas'. Checked with the stale replica as the round's initiator and as its
//! responder (entries pushed to it).
mod node_support;
use std::path::Path;
use std::time::{Duration, Instant};

use corepax::runtime::node::shard_of;
use node_support::*;

/// The replica holding the stale copy.
const STALE: usize = 2;
/// A replica that never runs anti-entropy nor restarts: the reference.
const WITNESS: usize = 1;

/// Snapshot at every applied slot: whatever the state machine holds reaches the disk.
const SNAPSHOT_EVERY_SLOT: &str = "1";
/// Practically never snapshot on the way: only a repair's own snapshot can save it.
const SNAPSHOT_NEVER: &str = "1000000000";

/// Kills node `i` (SIGKILL) and starts it again with the given anti-entropy interval and
/// snapshot interval; returns once it listens.
fn restart_with(cluster: &mut Cluster, i: usize, anti_entropy_ms: &str, snapshot_slots: &str) {
    cluster.kill9(i);
    cluster.set_node_args(
        i,
        &[
            "--anti-entropy-interval-ms",
            anti_entropy_ms,
            "--snapshot-interval-slots",
            snapshot_slots,
        ],
    );
    cluster.restart(i);
}

fn repaired_entry_survives_kill9(repairer: usize, dir: &Path) {
    // Every applied slot triggers a snapshot, so the stale copy reaches the disk; nobody
    // runs anti-entropy yet.
    let mut cluster = Cluster::start_per_node(3, dir, &["--debug"], |_| {
        [
            "--anti-entropy-interval-ms",
            "0",
            "--snapshot-interval-slots",
            SNAPSHOT_EVERY_SLOT,
        ]
        .map(String::from)
        .to_vec()
    });
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    for k in 0..50 {
        assert!(is_ok(&c.set(&format!("k{k}"), "good").unwrap()));
    }
    wait_until("the roots agree", Duration::from_secs(10), || {
        let r: Vec<_> = (0..3).map(|i| cluster.merkle_roots(i)).collect();
        r[0] == r[1] && r[1] == r[2]
    });

    let mut d = Client::connect(cluster.clients[STALE]).unwrap();
    let diverged = (0..50)
        .map(|k| format!("k{k}"))
        .find(|k| is_ok(&d.cmd(&["COREPAX.DEBUG", "SETLOCAL", k, "bad"]).unwrap()))
        .expect("some key belongs to the connection's shard");
    let shard = shard_of(diverged.as_bytes(), SHARDS);
    // Writes to the same shard through the log make the stale replica apply slots after
    // the stale copy, and so snapshot it; wait for the snapshot of its last applied slot.
    let mut filler = 0;
    for _ in 0..5 {
        while shard_of(format!("f{filler}").as_bytes(), SHARDS) != shard {
            filler += 1;
        }
        assert!(is_ok(&c.set(&format!("f{filler}"), "x").unwrap()));
        filler += 1;
    }
    let snapshots = dir
        .join(format!("node-{STALE}"))
        .join(format!("shard-{shard}"))
        .join("snapshots");
    wait_until(
        "the stale replica snapshots its last applied slot",
        Duration::from_secs(20),
        || {
            let applied = cluster.shard_field(STALE, shard, "applied_index");
            applied == cluster.shard_field(WITNESS, shard, "applied_index")
                && snapshots.join(format!("snap-{applied:020}.snap")).exists()
        },
    );
    // The stale copy is durable: it comes back after a crash. From now on the stale
    // replica writes no snapshot of its own accord (an election's no-op slot would
    // otherwise snapshot the repaired state by chance).
    restart_with(&mut cluster, STALE, "0", SNAPSHOT_NEVER);
    let stale_roots = cluster.merkle_roots(STALE);
    let witness_roots = cluster.merkle_roots(WITNESS);
    assert_ne!(
        stale_roots[shard], witness_roots[shard],
        "the stale copy of {diverged} did not survive a restart: the scenario proves nothing"
    );

    // One periodic round repairs it, durably before the round ends.
    let repairer_snapshots = if repairer == STALE {
        SNAPSHOT_NEVER
    } else {
        SNAPSHOT_EVERY_SLOT
    };
    restart_with(&mut cluster, repairer, "300", repairer_snapshots);
    wait_until(
        "periodic anti-entropy repairs and persists the stale key",
        Duration::from_secs(30),
        || {
            let r: Vec<_> = (0..3).map(|i| cluster.merkle_roots(i)).collect();
            r[0] == r[1]
                && r[1] == r[2]
                && cluster.info_sum(STALE, "_anti_entropy", "keys_persisted") > 0
        },
    );

    // Nothing may repair it again: anti-entropy off everywhere, then SIGKILL the repaired
    // replica and start it again.
    if repairer != STALE {
        restart_with(&mut cluster, repairer, "0", repairer_snapshots);
    }
    restart_with(&mut cluster, STALE, "0", SNAPSHOT_NEVER);
    let want = cluster.merkle_roots(WITNESS);
    let mut got = cluster.merkle_roots(STALE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = cluster.merkle_roots(STALE);
    }
    assert_eq!(
        got,
        want,
        "the repair of {diverged} was lost by the restart; node {STALE}'s log:\n{}",
        cluster.log(STALE)
    );
}

#[test]
fn repair_installed_by_the_initiator_survives_kill9() {
    let dir = tempfile::tempdir().unwrap();
    repaired_entry_survives_kill9(STALE, dir.path());
}

#[test]
fn repair_pushed_to_the_responder_survives_kill9() {
    let dir = tempfile::tempdir().unwrap();
    repaired_entry_survives_kill9(0, dir.path());
}
