//! InstallSnapshot in chunks: a state of many items crosses one bounded chunk at a time,
//! a lost chunk resumes where the follower is, and a state whose digest does not match
//! is never installed.

use super::*;

/// A group with one-item chunks, led by replica 0, that wrote `keys` keys while replica 2
/// was cut off and then compacted its log: replica 2 needs a snapshot of `keys` entries
/// and one session.
fn chunked_group(keys: u64) -> Group {
    let cfg = ProtocolConfig {
        snapshot_chunk_bytes_max: 1,
        ..cfg(3)
    };
    let mut g = Group::from(
        (0..3)
            .map(|i| Replica::new(cfg.clone(), ReplicaId(i), u64::from(i)))
            .collect(),
    );
    g.elect(0);
    g.drop_involving(2);
    for seq in 1..=keys {
        g.request(0, seq, set(&format!("k{seq}"), "v", seq));
        g.deliver_where(|from, to, _| from != ReplicaId(2) && to != ReplicaId(2));
    }
    g.wire.clear();
    let applied = g.replicas[0].applied_index();
    g.replicas[0].compact(applied);
    g
}

/// Delivers the oldest message on the wire; false if there is none.
fn step(g: &mut Group) -> bool {
    if g.wire.is_empty() {
        return false;
    }
    let (from, to, msg) = g.wire.remove(0);
    g.replicas[to.index()].on_message(g.now, from, Message::Raft(msg));
    g.collect(to.index());
    true
}

fn chunks_to_2(g: &Group) -> Vec<u64> {
    g.wire
        .iter()
        .filter_map(|(_, to, m)| match m {
            Msg::InstallSnapshot { chunk, .. } if *to == ReplicaId(2) => Some(chunk.offset),
            _ => None,
        })
        .collect()
}

#[test]
fn a_snapshot_crosses_in_chunks_and_resumes_after_a_lost_chunk() {
    let mut g = chunked_group(6);
    g.tick(0, g.now + 150 * MS);
    assert_eq!(chunks_to_2(&g), vec![0], "one chunk in flight");
    // Deliver until the third chunk is on the wire, then lose it.
    let mut most_in_flight = 0;
    while !chunks_to_2(&g).contains(&2) {
        most_in_flight = most_in_flight.max(chunks_to_2(&g).len());
        assert!(step(&mut g), "the transfer stopped");
    }
    assert_eq!(most_in_flight, 1, "one chunk in flight at a time");
    g.wire
        .retain(|(_, to, m)| !(*to == ReplicaId(2) && matches!(m, Msg::InstallSnapshot { .. })));
    assert_eq!(g.replicas[2].snapshot_receiving(), Some((2, 7)));
    // The leader starts that state again after its retransmission time; the follower
    // continues from what it holds.
    g.tick(0, g.now + 120 * MS);
    assert_eq!(chunks_to_2(&g), vec![0]);
    g.deliver_all();
    let r2 = &g.replicas[2];
    assert_eq!(r2.stats().snapshots_installed, 1);
    assert_eq!(r2.stats().snapshot_transfers_abandoned, 0);
    assert_eq!(r2.applied_index(), g.replicas[0].applied_index());
    assert_eq!(r2.kv().digest(), g.replicas[0].kv().digest());
    let sent = g.replicas[0].stats().snapshot_chunks_sent;
    assert!(
        (7..=9).contains(&sent),
        "7 items in one-item chunks, a lost one and a restarted first: {sent} chunks"
    );
    assert_eq!(g.replicas[0].stats().snapshots_sent, 2);
}

#[test]
fn a_state_whose_digest_does_not_match_is_not_installed() {
    let mut g = chunked_group(3);
    g.tick(0, g.now + 150 * MS);
    loop {
        for (_, _, m) in &mut g.wire {
            if let Msg::InstallSnapshot { chunk, .. } = m {
                chunk.digest = 0xbad; // Not the state's.
            }
        }
        if !step(&mut g) {
            break;
        }
    }
    let r2 = &g.replicas[2];
    assert_eq!(r2.stats().snapshots_installed, 0);
    assert_eq!(r2.stats().snapshot_transfers_abandoned, 1);
    assert!(r2.applied_index() < g.replicas[0].applied_index());
}
