//! Cluster: snapshots: a lagging replica catches up by a snapshot sent in chunks (despite
//! loss, duplicates, corruption and a leader change); the log asks for snapshots and is
//! trimmed to its bounds.

use super::*;
use crate::protocol::message::REQUEST_MEMORY_OVERHEAD_BYTES;

/// A cluster whose snapshot chunks hold a few entries each; r2 misses `writes` writes
/// that r0 and r1 then compact out of their logs, so r2 can only catch up by snapshot.
/// Elects r0 and writes `writes` keys (`k000`, `k001`, … = `v0`, `v1`, …) through it while
/// r2 hears nothing.
fn write_with_r2_cut_off(c: &mut Cluster, writes: u64) {
    c.elect(0);
    for i in 0..writes {
        c.request(
            0,
            i + 1,
            1,
            i + 1,
            set(&format!("k{i:03}"), &format!("v{i}")),
        );
        c.run(|_, to, _| to.index() != 2);
    }
    c.wire.retain(|(_, to, _)| to.index() != 2);
}

fn lagging_behind_compacted_log(writes: u64) -> Cluster {
    let mut c = Cluster::new(3);
    for r in &mut c.replicas {
        r.cfg.snapshot_chunk_bytes_max = 64;
    }
    write_with_r2_cut_off(&mut c, writes);
    for i in 0..2 {
        let applied = c.replicas[i].applied_index();
        c.replicas[i].compact(applied);
    }
    // r1 may lag r0 by the last slot, whose commit it hears with the next message.
    assert!(c.replicas[2].commit_index() + writes / 2 < c.replicas[0].log_base());
    assert!(c.replicas[2].commit_index() + writes / 2 < c.replicas[1].log_base());
    c
}

/// Delivers messages oldest first; `tamper` sees each and says how many copies to
/// deliver (0 drops it). When nothing is on the wire, time passes and every replica
/// ticks. Stops once `done` holds; returns the snapshot chunks seen as (from, chunk).
fn pump(
    c: &mut Cluster,
    mut tamper: impl FnMut(ReplicaId, ReplicaId, &mut Message) -> usize,
    mut done: impl FnMut(&Cluster) -> bool,
) -> Vec<(ReplicaId, SnapshotChunk)> {
    let mut chunks = Vec::new();
    for _ in 0..20_000 {
        if done(c) {
            return chunks;
        }
        c.sync_all();
        if c.wire.is_empty() {
            c.now += 10 * MS;
            for i in 0..c.replicas.len() {
                if c.up[i] {
                    c.replicas[i].on_tick(c.now);
                    c.collect(i);
                }
            }
            continue;
        }
        let (from, to, mut msg) = c.wire.remove(0);
        let copies = tamper(from, to, &mut msg);
        if let Message::InstallSnapshot { chunk } = &msg {
            chunks.push((from, (**chunk).clone()));
        }
        for _ in 0..copies {
            if c.up[to.index()] && c.up[from.index()] {
                c.replicas[to.index()].on_message(c.now, from, msg.clone());
                c.collect(to.index());
            }
        }
    }
    panic!("the cluster never reached the expected state");
}

fn caught_up(c: &Cluster) -> bool {
    c.replicas[2].commit_index() >= c.replicas[0].commit_index()
        && c.replicas[2].kv().digest() == c.replicas[0].kv().digest()
}

#[test]
fn snapshot_crosses_in_chunks_despite_loss_and_duplicates() {
    let mut c = lagging_behind_compacted_log(100);
    let mut seen = 0;
    let mut saw_partial = false;
    let chunks = pump(
        &mut c,
        |_, to, msg| {
            let Message::InstallSnapshot { .. } = msg else {
                return 1;
            };
            assert_eq!(to, ReplicaId(2));
            seen += 1;
            match seen {
                3 => 0,     // lost: r2 must ask again
                5 | 6 => 2, // duplicated
                _ => 1,
            }
        },
        |c| {
            // Halfway, r2 holds staged items but has installed nothing.
            if let Some((got, total)) = c.replicas[2].snapshot_receiving()
                && got > total / 2
            {
                saw_partial = true;
                assert_eq!(c.replicas[2].kv().len(), 0, "partial state installed");
            }
            caught_up(c)
        },
    );
    assert!(saw_partial, "never saw a transfer half done");
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshots_installed, 1);
    assert_eq!(r2.snapshot_transfers_abandoned, 0);
    // 100 entries of ~24 bytes in 64-byte chunks, plus a session.
    assert!(chunks.len() >= 100 / 3, "only {} chunks", chunks.len());
    for (_, chunk) in &chunks {
        let bytes: usize = chunk.entries.iter().map(|i| i.payload_len() + 16).sum();
        assert!(
            bytes <= 64 || chunk.entries.len() == 1,
            "chunk of {bytes} bytes"
        );
    }
    assert_eq!(c.replicas[2].snapshot_receiving(), None);
    // The sessions came too: a retry of the last write is answered from memory.
    assert!(c.replicas[2].kv().cached_reply(1, 100).is_some());
}

#[test]
fn corrupt_snapshot_is_never_installed_and_the_transfer_restarts() {
    let mut c = lagging_behind_compacted_log(40);
    let mut corrupted = false;
    let mut installed_corrupt = false;
    pump(
        &mut c,
        |_, _, msg| {
            if let Message::InstallSnapshot { chunk } = msg
                && chunk.offset > 0
                && !chunk.entries.is_empty()
                && !corrupted
            {
                corrupted = true;
                let item = &chunk.entries[0];
                chunk.entries[0] =
                    crate::protocol::kv::Item::new(item.key(), b"bit rot", item.version());
            }
            1
        },
        |c| {
            installed_corrupt |= c.replicas[2].kv().iter().any(|i| i.value() == b"bit rot");
            caught_up(c)
        },
    );
    assert!(corrupted);
    assert!(
        !installed_corrupt,
        "a state failing its digest was installed"
    );
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshot_transfers_abandoned, 1);
    assert_eq!(r2.snapshots_installed, 1);
}

#[test]
fn snapshot_transfer_restarts_from_the_new_leader() {
    let mut c = lagging_behind_compacted_log(60);
    // Heartbeats start r2's transfer from r0; stop after a few chunks.
    let mut chunks_from_r0 = 0;
    pump(
        &mut c,
        |from, _, msg| {
            if matches!(msg, Message::InstallSnapshot { .. }) && from == ReplicaId(0) {
                chunks_from_r0 += 1;
            }
            1
        },
        |c| {
            c.replicas[2]
                .snapshot_receiving()
                .is_some_and(|(got, _)| got >= 6)
        },
    );
    // r1 takes over while r2 is cut off; r0's chunks in flight are lost.
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.wire.retain(|(f, t, _)| f.index() != 2 && t.index() != 2);
    c.run(|f, t, _| f.index() != 2 && t.index() != 2);
    assert!(c.replicas[1].leading().is_some());
    c.wire.retain(|(f, t, _)| f.index() != 2 && t.index() != 2);
    let chunks = pump(&mut c, |_, _, _| 1, caught_up);
    assert!(chunks_from_r0 >= 2);
    assert!(
        chunks
            .iter()
            .any(|(from, c)| *from == ReplicaId(1) && c.offset == 0),
        "the new leader never started a transfer"
    );
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshot_transfers_abandoned, 1);
    assert_eq!(r2.snapshots_installed, 1);
    assert_eq!(c.replicas[2].kv().digest(), c.replicas[1].kv().digest());
}

/// A millisecond passes and every replica ticks (the driver's timer).
fn tick_all(c: &mut Cluster) {
    c.now += MS;
    for i in 0..c.replicas.len() {
        c.replicas[i].on_tick(c.now);
        c.collect(i);
    }
}

#[test]
fn log_growth_asks_for_a_snapshot_and_compaction_resets_it() {
    let mut c = Cluster::new(3);
    c.elect(0);
    let value = "x".repeat(1 << 20);
    let min_mib = super::snapshot::SNAPSHOT_LOG_BYTES_MIN >> 20;
    let mut asked_at = [None; 3];
    for i in 0..min_mib + 4 {
        c.request(0, i + 1, 1, i + 1, set(&format!("k{i}"), &value));
        c.run(|_, _, _| true);
        tick_all(&mut c);
        for (at, asked) in asked_at.iter_mut().zip(&c.snapshots_asked) {
            if at.is_none() && *asked > 0 {
                *at = Some(i + 1);
            }
        }
    }
    // Stored bytes stay under twice the minimum, so the minimum is the threshold; replica
    // r of 3 asks r/3 of it early the first time (`outbox::stagger`).
    for (r, at) in asked_at.into_iter().enumerate() {
        let asked = at.expect("no snapshot asked for");
        let expected = min_mib - min_mib * r as u64 / 3;
        assert!(
            (expected - 1..=expected + 1).contains(&asked),
            "replica {r} asked after {asked} MiB, not about {expected}"
        );
        assert_eq!(c.snapshots_asked[r], 1, "replica {r} asked again too soon");
    }
    let applied = c.replicas[0].applied_index();
    c.replicas[0].compact(applied);
    c.request(0, 999, 1, min_mib + 5, set("small", "v"));
    c.run(|_, _, _| true);
    tick_all(&mut c);
    assert_eq!(c.snapshots_asked[0], 1);
}

#[test]
fn malformed_snapshot_chunks_are_dropped_without_staging() {
    let mut c = Cluster::new(3);
    c.elect(0);
    let entry = |k: &str| crate::protocol::kv::Item::new(k.as_bytes(), b"v", 1);
    let good = SnapshotChunk {
        last_included: 50,
        items_total: 2,
        entries_total: 2,
        digest: 0,
        offset: 0,
        entries: vec![entry("a"), entry("b")],
        sessions: Vec::new(),
        sessions_total: 0,
        log_time: 0,
        deadlines: Vec::new(),
    };
    let deadline = |k: &str| (bytes::Bytes::copy_from_slice(k.as_bytes()), 7);
    let bad = [
        SnapshotChunk {
            sessions_total: 1,
            ..good.clone()
        },
        SnapshotChunk {
            items_total: 4,
            entries: vec![entry("a"), entry("b")],
            deadlines: vec![deadline("b"), deadline("a")],
            ..good.clone()
        },
        SnapshotChunk {
            offset: u64::MAX,
            ..good.clone()
        },
        SnapshotChunk {
            entries_total: 3,
            ..good.clone()
        },
        SnapshotChunk {
            items_total: 1,
            entries_total: 1,
            ..good.clone()
        },
        SnapshotChunk {
            entries: Vec::new(),
            ..good.clone()
        },
        SnapshotChunk {
            entries: vec![entry("b"), entry("a")],
            ..good.clone()
        },
        SnapshotChunk {
            entries: vec![entry("a"), entry("a")],
            ..good.clone()
        },
    ];
    let r2 = ReplicaId(2);
    for chunk in bad {
        c.replicas[2].on_message(
            c.now,
            ReplicaId(1),
            Message::InstallSnapshot {
                chunk: Box::new(chunk),
            },
        );
        c.collect(r2.index());
        assert_eq!(c.replicas[2].snapshot_receiving(), None);
    }
    // Well formed, but its digest is wrong: staged, then dropped, never installed.
    c.replicas[2].on_message(
        c.now,
        ReplicaId(1),
        Message::InstallSnapshot {
            chunk: Box::new(good),
        },
    );
    c.collect(r2.index());
    assert_eq!(c.replicas[2].snapshot_receiving(), None);
    assert_eq!(c.replicas[2].kv().len(), 0);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 0);
    // Two chunks out of key order (entries, deadlines) and the bad digest.
    assert_eq!(c.replicas[2].stats().snapshot_transfers_abandoned, 4);
}

#[test]
fn applied_log_is_trimmed_to_its_byte_bound_and_a_lagger_gets_a_snapshot() {
    // Room for about ten writes: their keys and values (6-7 bytes each) and each
    // request's own cost, which counting keys and values alone left out (then every one
    // of the 100 writes fit, 700 bytes).
    let room = 10 * (REQUEST_MEMORY_OVERHEAD_BYTES + 7);
    for bound in [0, room] {
        let mut c = Cluster::new(3);
        for r in &mut c.replicas {
            r.cfg.log_retain_bytes = bound;
        }
        write_with_r2_cut_off(&mut c, 100);
        let r0 = &c.replicas[0];
        if bound == 0 {
            assert_eq!(r0.log_base(), 0, "nothing trimmed without a bound");
            assert_eq!(r0.stats().log_slots_trimmed, 0);
            continue;
        }
        assert!(
            r0.applied_log_bytes() <= bound,
            "{}",
            r0.applied_log_bytes()
        );
        // Beyond the ten applied: slots not yet applied or not yet durable.
        assert!(r0.log_len() <= 15, "{} entries kept", r0.log_len());
        assert!(r0.log_base() >= 80, "log base {}", r0.log_base());
        assert_eq!(r0.stats().log_slots_trimmed, r0.log_base());
        pump(&mut c, |_, _, _| 1, caught_up);
        assert!(c.replicas[2].stats().snapshots_installed >= 1);
    }
}

#[test]
fn a_follower_answers_its_forwarded_write_applied_inside_a_snapshot() {
    use crate::protocol::waiting::ANSWERED_THERE;
    let mut c = Cluster::new(3);
    for (i, r) in c.replicas.iter_mut().enumerate() {
        r.cfg.snapshot_chunk_bytes_max = 64;
        r.set_session(100 + i as u64);
    }
    c.elect(0);
    // r2, caught up, forwards a write of its own session, which the leader logs without
    // answering it (r2 answers it when it applies it) ...
    let write = Request {
        client: 102,
        seq: 1,
        ack_floor: 1,
        cmd: set("x", "1"),
    };
    assert!(c.replicas[2].expect_forwarded(77, &write));
    c.request(0, 500 | ANSWERED_THERE, 102, 1, set("x", "1"));
    // ... but hears nothing more: its slot and 40 more are chosen and compacted away.
    for i in 0..40 {
        c.run(|_, to, _| to.index() != 2);
        c.request(0, i + 1, 1, i + 1, set(&format!("k{i:03}"), "v"));
    }
    c.run(|_, to, _| to.index() != 2);
    c.wire.retain(|(_, to, _)| to.index() != 2);
    for i in 0..2 {
        let applied = c.replicas[i].applied_index();
        c.replicas[i].compact(applied);
    }
    assert!(c.reply_of(77).is_none());
    pump(&mut c, |_, _, _| 1, caught_up);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 1);
    assert_eq!(
        c.reply_of(77),
        Some(&ClientReply::Done(Reply::Ok)),
        "answered from the reply its session kept"
    );
}

/// What a node's driver does with a transfer build: shares its frozen entries a part at a
/// time, builds it and hands it back to `sender`, whose messages go on the wire.
fn hand_back_built(
    c: &mut Cluster,
    sender: usize,
    mut build: crate::protocol::transfer::TransferBuild,
) {
    while !c.replicas[sender].kv_mut().export_step(10) {}
    let entries = c.replicas[sender]
        .kv_mut()
        .export_end()
        .expect("still frozen");
    build.set_entries(entries);
    let now = c.now;
    c.replicas[sender].on_transfer_built(now, build.build(now));
    c.collect(sender);
}

/// With transfers built off the executor (as the node does), a lagging replica's request
/// hands the sender's driver a build and sends nothing; requests meanwhile send nothing
/// either; once the build is back, chunk 0 goes out and the replica catches up.
#[test]
fn a_transfer_built_off_the_executor_is_served_once_it_is_back() {
    let mut c = lagging_behind_compacted_log(100);
    // The senders' drivers build transfers; r2 installs what it receives at once.
    for r in &mut c.replicas[..2] {
        r.set_offload_transfers(true);
    }
    let building = |c: &Cluster| c.replicas[..2].iter().position(|r| r.transfer_building());
    let chunks = pump(&mut c, |_, _, _| 1, |c| building(c).is_some());
    assert!(chunks.is_empty(), "a chunk before any build");
    let sender = building(&c).expect("a build");
    let build = c.replicas[sender]
        .take_transfer_build()
        .expect("handed out once");
    assert!(c.replicas[sender].take_transfer_build().is_none());
    // Its entries are frozen in the map, for the driver to share a part at a time
    // (`kv/tests_freeze.rs` covers writes between the parts).
    assert!(build.frozen());
    assert!(c.replicas[sender].kv().exporting());
    assert!(!c.replicas[sender].kv_mut().export_step(10));
    // Counters change meanwhile (not idempotent: a transfer holding them as they are
    // later than its slot would count them twice once r2 replays the log after it).
    for seq in 101..=103 {
        c.request(0, seq, 1, seq, Command::IncrBy(Bytes::from_static(b"n"), 1));
        c.run(|_, to, _| to.index() != 2);
    }
    // Time passes, r2 asks again: nothing is served, no second build starts.
    let until = c.now + 500 * MS;
    let chunks = pump(&mut c, |_, _, _| 1, |c| c.now >= until);
    assert!(chunks.is_empty(), "a chunk while the build was out");
    assert!(
        c.replicas
            .iter_mut()
            .all(|r| r.take_transfer_build().is_none())
    );
    hand_back_built(&mut c, sender, build);
    // Chunk 0 goes to r2 at once: it asked while the build was out.
    assert!(
        c.wire.iter().any(|(from, to, m)| from.index() == sender
            && to.index() == 2
            && matches!(m, Message::InstallSnapshot { chunk } if chunk.offset == 0)),
        "no chunk 0 when the build came back"
    );
    let chunks = pump(&mut c, |_, _, _| 1, caught_up);
    assert!(chunks.iter().all(|(from, _)| from.index() == sender));
    assert_eq!(chunks[0].1.offset, 0);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 1);
}

/// A transfer asked for while a snapshot's freeze runs waits for the freeze to end: the
/// map holds one freeze (the snapshot's must not be dropped), and exporting every item
/// at once instead stopped the shard (~18 ms at 1M keys). The lagging replica asks again
/// and gets a transfer whose items are shared a part at a time.
#[test]
fn a_transfer_asked_for_during_a_snapshot_freeze_waits_for_the_freeze_to_end() {
    let mut c = lagging_behind_compacted_log(100);
    for r in &mut c.replicas[..2] {
        r.set_offload_transfers(true);
        r.kv_mut().export_begin();
    }
    let building = |c: &Cluster| c.replicas[..2].iter().position(|r| r.transfer_building());
    // r2 asks, again and again: nothing is built or sent, the snapshots' freezes stay.
    let asked = c.replicas[2].stats().catchups_requested;
    let until = c.now + 500 * MS;
    let chunks = pump(&mut c, |_, _, _| 1, |c| c.now >= until);
    assert!(c.replicas[2].stats().catchups_requested >= asked + 3);
    assert!(chunks.is_empty(), "a chunk during the freeze");
    assert!(building(&c).is_none(), "a build during the freeze");
    assert!(c.replicas[..2].iter().all(|r| r.kv().exporting()));
    assert_eq!(c.replicas[2].stats().snapshots_installed, 0);
    // The replica it asked wants the transfer: its driver begins no next snapshot.
    let now = c.now;
    let asked_one = |c: &Cluster, now| c.replicas[..2].iter().position(|r| r.transfer_wanted(now));
    assert!(asked_one(&c, now).is_some(), "a transfer wanted");
    assert!(
        asked_one(&c, now + 2_001 * MS).is_none(),
        "wanted only for a while after the last request"
    );
    // The snapshots' freezes end; r2's next request gets a build, frozen in the map.
    for r in &mut c.replicas[..2] {
        while !r.kv_mut().export_step(10) {}
        r.kv_mut().export_end().expect("the snapshot's freeze");
    }
    pump(&mut c, |_, _, _| 1, |c| building(c).is_some());
    let sender = building(&c).expect("a build");
    let build = c.replicas[sender]
        .take_transfer_build()
        .expect("handed out once");
    assert!(build.frozen());
    assert!(c.replicas[sender].kv().exporting(), "the transfer's freeze");
    assert!(
        !c.replicas[sender].transfer_wanted(c.now),
        "wanted no more once begun"
    );
    hand_back_built(&mut c, sender, build);
    pump(&mut c, |_, _, _| 1, caught_up);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 1);
}

/// With installs built off the executor (as the node does), a replica that received a
/// whole transfer hands its driver the build and installs nothing; meanwhile it asks for
/// no other transfer, however long the build takes; once the build is back it installs
/// it and catches up.
#[test]
fn a_received_transfer_built_off_the_executor_is_installed_once_it_is_back() {
    let mut c = lagging_behind_compacted_log(100);
    c.replicas[2].set_offload_transfers(true);
    let chunks = pump(&mut c, |_, _, _| 1, |c| c.replicas[2].install_building());
    assert!(!chunks.is_empty());
    let build = c.replicas[2].take_install_build().expect("handed out once");
    assert!(c.replicas[2].take_install_build().is_none());
    let behind = c.replicas[2].commit_index();
    // Time passes, writes go on: no chunk is asked for or sent, nothing installed.
    c.request(0, 1_001, 1, 101, set("late", "1"));
    let until = c.now + 2_000 * MS;
    let chunks = pump(&mut c, |_, _, _| 1, |c| c.now >= until);
    assert!(chunks.is_empty(), "a transfer while the build was out");
    assert!(c.replicas[2].take_install_build().is_none());
    assert_eq!(c.replicas[2].stats().snapshots_installed, 0);
    assert_eq!(c.replicas[2].commit_index(), behind);
    let now = c.now;
    c.replicas[2].on_install_built(now, build.build());
    c.collect(2);
    assert!(!c.replicas[2].install_building());
    assert_eq!(c.replicas[2].stats().snapshots_installed, 1);
    pump(&mut c, |_, _, _| 1, caught_up);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 1);
}
