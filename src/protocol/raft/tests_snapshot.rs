//! InstallSnapshot in chunks: a state of many items crosses one bounded chunk at a time,
//! a lost chunk resumes where the follower is, a state whose digest does not match is
//! never installed, and a state built off the executor is dropped if its replica was
//! elected meanwhile.

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

/// A replica elected while the state it received was built off the executor drops the
/// build when it comes back: a leader's log holds every committed entry (the election
/// rule), so installing would only cut its log back. Here r2 holds the entries (a second
/// leader sent them during the build) but knows fewer of them committed than the state
/// holds, so only that rule keeps it from installing.
#[test]
fn a_build_back_at_a_replica_elected_meanwhile_is_dropped() {
    let (r0, r1) = (ReplicaId(0), ReplicaId(1));
    let mut g = Group::new(3);
    g.replicas[2].set_offload_transfers(true);
    assert_eq!(leader_compacted_past_replica_2(&mut g), 6);
    // r0's heartbeat reaches r2 alone: r2 gets the state and hands out its build. r1
    // last heard a commit index below it.
    g.tick(0, g.now + 150 * MS);
    g.deliver_where(|f, t, _| f != r1 && t != r1);
    g.wire.clear();
    let build = g.replicas[2]
        .take_install_build()
        .expect("a build handed out");
    assert!(g.replicas[1].commit_index() < 6);
    // r1, whose log was never compacted, is elected with r2's vote. Its appends bring
    // r2's log up to date and depose r0; nothing reaches r1 from r0, and nothing from
    // r1 says its new entry is committed.
    g.timeout(1);
    g.deliver_where(|f, t, m| {
        let quiet_r0 = f != r0 && (t != r0 || matches!(m, Msg::Append { .. }));
        let commit_news = matches!(m, Msg::Append { commit, .. } if *commit >= 6);
        quiet_r0 && !commit_news
    });
    g.wire.clear();
    assert_eq!(g.leaders(), vec![(1, 2)]);
    assert_eq!(g.replicas[2].last_index(), g.replicas[1].last_index());
    assert!(g.replicas[2].commit_index() < 6);
    // r1 goes quiet; r2 is elected with r0's vote, before any vote of r0's lets it
    // commit an entry.
    g.timeout(2);
    g.deliver_where(|f, t, m| f != r1 && t != r1 && !matches!(m, Msg::AppendReply { .. }));
    assert_eq!(g.replicas[2].leading_term(), Some(3));
    let (last, commit) = (g.replicas[2].last_index(), g.replicas[2].commit_index());
    assert!(commit < 6);
    // The build comes back: dropped, the log and the state as they were.
    let now = g.now;
    g.replicas[2].on_install_built(now, build.build());
    g.collect(2);
    assert_eq!(g.replicas[2].stats().snapshots_installed, 0);
    assert_eq!(g.replicas[2].leading_term(), Some(3));
    assert_eq!(g.replicas[2].last_index(), last);
    assert_eq!(g.replicas[2].commit_index(), commit);
    // It leads on: every replica ends with the same state, the new write in it.
    g.request(2, 60, set("after", "1", 6));
    for _ in 0..3 {
        g.tick(2, g.now + 60 * MS);
        g.deliver_all();
    }
    assert!(
        g.replies
            .iter()
            .any(|(t, r)| *t == 60 && *r == ClientReply::Done(Reply::Ok))
    );
    for i in [0, 1] {
        assert_eq!(
            g.replicas[i].kv().digest(),
            g.replicas[2].kv().digest(),
            "r{i}"
        );
    }
}
