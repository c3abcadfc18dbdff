//! Tests of the Merkle tree (incremental == full, order independence) and of anti-entropy
//! sessions (convergence, cost, the repair rule, bad requests).

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::protocol::kv::{Command, Entry, Item, Kv, Request};
use crate::protocol::types::Slot;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key:{i:08}"))
}

fn value(i: u64, generation: u64) -> Bytes {
    Bytes::from(format!(
        "value-{i}-{generation}-{}",
        "x".repeat((i % 7) as usize)
    ))
}

fn apply(kv: &mut Kv, slot: Slot, cmd: Command) {
    kv.apply(
        slot,
        &Request {
            cmd,
            ..Request::noop()
        },
    );
}

fn full(kv: &Kv) -> MerkleTree {
    let mut t = MerkleTree::new(kv.merkle().depth());
    t.rebuild_full(kv.iter().map(|i| (i.key(), i.entry_ref())));
    t
}

fn assert_same_tree(a: &MerkleTree, b: &MerkleTree) {
    assert_eq!(a.root(), b.root());
    for level in 0..=a.depth() {
        let n = nodes_at(level);
        assert_eq!(a.level(level, 0..n), b.level(level, 0..n), "level {level}");
    }
    assert_eq!(a.entries(), b.entries());
}

#[test]
fn empty_trees_agree_and_a_write_undone_restores_the_root() {
    let mut a = MerkleTree::new(3);
    let b = MerkleTree::new(3);
    assert_eq!(a.root(), b.root());
    let e = Entry {
        value: Bytes::from_static(b"v"),
        version: 7,
        kind: crate::protocol::item::Kind::String,
    };
    a.update(b"k", None, Some(e.entry_ref()));
    assert!(!a.is_clean());
    let stats = a.rebuild_incremental();
    assert_eq!(
        stats,
        RebuildStats {
            leaves: 1,
            nodes_hashed: 3
        }
    );
    assert_ne!(a.root(), b.root());
    a.update(b"k", Some(e.entry_ref()), None);
    a.rebuild_incremental();
    assert_eq!(a.root(), b.root());
    assert_eq!(a.rebuild_incremental().nodes_hashed, 0);
}

#[test]
fn kv_writes_keep_the_tree_equal_to_a_full_rebuild() {
    let mut kv = Kv::new(1, 1);
    for i in 0..2_000 {
        apply(&mut kv, i + 1, Command::Set(key(i % 700), value(i, 0)));
        if i % 3 == 0 {
            apply(&mut kv, i + 1, Command::Del(vec![key(i % 500)]));
        }
    }
    kv.merkle_mut().rebuild_incremental();
    assert_eq!(kv.merkle().entries(), kv.len() as u64);
    assert_same_tree(kv.merkle(), &full(&kv));
}

#[test]
fn install_refuses_same_or_newer_versions() {
    let mut kv = Kv::new(1, 1);
    apply(&mut kv, 5, Command::Set(key(1), value(1, 0)));
    let older = Entry {
        value: value(1, 9),
        version: 4,
        kind: crate::protocol::item::Kind::String,
    };
    assert!(!kv.install(key(1), older));
    let newer = Entry {
        value: value(1, 1),
        version: 6,
        kind: crate::protocol::item::Kind::String,
    };
    assert!(kv.install(key(1), newer.clone()));
    assert_eq!(kv.get(&key(1)).map(Item::entry), Some(newer));
    kv.merkle_mut().rebuild_incremental();
    assert_same_tree(kv.merkle(), &full(&kv));
}

#[test]
fn memory_is_reported_and_dominated_by_the_leaves() {
    let t = MerkleTree::default();
    assert_eq!(t.leaf_count(), 65_536);
    assert!(t.memory_bytes() >= 8 * 65_536);
    assert!(t.memory_bytes() < 8 * 65_536 * 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random sets, overwrites and deletes through the state machine, with rebuilds at
    /// random points: the incremental tree always equals a full rebuild.
    #[test]
    fn incremental_equals_full(
        ops in prop::collection::vec((0u8..3, 0u64..48, any::<u8>(), any::<bool>()), 1..300),
    ) {
        let mut kv = Kv::new(1, 1);
        for (slot, (op, k, v, rebuild)) in ops.into_iter().enumerate() {
            let slot = slot as Slot + 1;
            match op {
                0 | 1 => apply(&mut kv, slot, Command::Set(key(k), value(u64::from(v), 0))),
                _ => apply(&mut kv, slot, Command::Del(vec![key(k), key(k / 2)])),
            }
            if rebuild {
                kv.merkle_mut().rebuild_incremental();
            }
        }
        kv.merkle_mut().rebuild_incremental();
        assert_same_tree(kv.merkle(), &full(&kv));
    }

    /// Two trees fed the same final contents in different orders, one after churn that it
    /// then undoes, have equal roots at every depth; changing one version changes the root.
    #[test]
    fn same_contents_same_root_whatever_the_order(
        contents in prop::collection::btree_map(0u64..200, (1u64..1_000, any::<u8>()), 1..100),
        noise in prop::collection::vec((200u64..260, 1u64..1_000), 0..50),
        depth in DEPTH_MIN..=3,
    ) {
        let entries: BTreeMap<Bytes, Entry> = contents
            .iter()
            .map(|(&k, &(version, v))| (key(k), Entry { value: value(u64::from(v), 1), version, kind: crate::protocol::item::Kind::String, }))
            .collect();
        let mut a = MerkleTree::new(depth);
        for (k, e) in &entries {
            a.update(k, None, Some(e.entry_ref()));
        }
        let mut b = MerkleTree::new(depth);
        let noise: BTreeMap<Bytes, Entry> = noise
            .into_iter()
            .map(|(k, version)| (key(k), Entry { value: value(k, 2), version, kind: crate::protocol::item::Kind::String, }))
            .collect();
        for (k, e) in &noise {
            b.update(k, None, Some(e.entry_ref()));
        }
        b.rebuild_incremental();
        for (k, e) in entries.iter().rev() {
            b.update(k, None, Some(e.entry_ref()));
        }
        for (k, e) in &noise {
            b.update(k, Some(e.entry_ref()), None);
        }
        a.rebuild_incremental();
        b.rebuild_incremental();
        prop_assert_eq!(a.root(), b.root());
        let (k, e) = entries.iter().next().expect("at least one entry");
        let bumped = Entry { version: e.version + 1, ..e.clone() };
        b.update(k, Some(e.entry_ref()), Some(bumped.entry_ref()));
        b.rebuild_incremental();
        prop_assert_ne!(a.root(), b.root());
    }
}

/// Runs a whole session, installing repairs on both sides as they come.
fn session(
    a: &mut Kv,
    a_applied: Slot,
    b: &mut Kv,
    b_applied: Slot,
    limits: SessionLimits,
) -> (Outcome, ResponderStats, u64) {
    let (mut ae, mut msg) = AntiEntropy::start(a, limits);
    let mut responder = Responder::new(limits);
    let mut installed = 0;
    for _ in 0..10_000 {
        let resp = responder.on_msg(b, b_applied, &msg);
        for (k, e) in resp.repairs {
            assert!(b.install(k, e));
            installed += 1;
        }
        let reply = resp.reply.expect("every request gets a reply");
        let next = ae.on_msg(a, a_applied, reply);
        for (k, e) in ae.take_repairs() {
            assert!(a.install(k, e));
            installed += 1;
        }
        match next {
            Some(m) => msg = m,
            None => {
                assert!(ae.is_done());
                return (ae.into_outcome(), *responder.stats(), installed);
            }
        }
    }
    panic!("session did not end");
}

const KEYS: u64 = 100_000;
const BATCH: u64 = 100;

/// Two replicas that applied the same log up to slot `KEYS / BATCH + 1`, except for
/// records each lost: 40 keys lost on B, 30 on A, and 15 overwrites lost on each side.
fn diverged_pair() -> (Kv, Kv, Slot, Vec<Bytes>) {
    let mut a = Kv::new(1, 1);
    let mut b = Kv::new(1, 1);
    let lost_on_b = |i: u64| i % 2_500 == 7; // 40 keys
    let lost_on_a = |i: u64| i % 3_333 == 17 && i < 99_990; // 30 keys
    let mut slot = 0;
    for first in (0..KEYS).step_by(BATCH as usize) {
        slot += 1;
        let batch = |lost: &dyn Fn(u64) -> bool| {
            (first..first + BATCH)
                .filter(|&i| !lost(i))
                .map(|i| (key(i), value(i, 0)))
                .collect::<Vec<_>>()
        };
        apply(&mut a, slot, Command::MSet(batch(&lost_on_a)));
        apply(&mut b, slot, Command::MSet(batch(&lost_on_b)));
    }
    // The last slot overwrites 30 keys; each side lost half of it.
    slot += 1;
    let over: Vec<u64> = (0..30).map(|j| 1_000 + j * 1_001).collect();
    let a_part = over.iter().filter(|&&i| i % 2 == 0);
    let b_part = over.iter().filter(|&&i| i % 2 == 1);
    apply(
        &mut a,
        slot,
        Command::MSet(a_part.map(|&i| (key(i), value(i, 1))).collect()),
    );
    apply(
        &mut b,
        slot,
        Command::MSet(b_part.map(|&i| (key(i), value(i, 1))).collect()),
    );
    let diverged: Vec<Bytes> = (0..KEYS)
        .filter(|&i| lost_on_a(i) || lost_on_b(i) || over.contains(&i))
        .map(key)
        .collect();
    assert_eq!(diverged.len(), 100);
    (a, b, slot, diverged)
}

#[test]
fn hundred_diverged_keys_among_100k_converge_in_one_session() {
    let (mut a, mut b, applied, diverged) = diverged_pair();
    assert_ne!(a.digest(), b.digest());
    let (out, resp, installed) =
        session(&mut a, applied, &mut b, applied, SessionLimits::default());
    assert_eq!(out.failed, None);
    assert_eq!(installed, 100);
    assert_eq!(resp.repairs, 55, "40 lost keys and 15 lost overwrites on B");
    assert_eq!(a.digest(), b.digest());
    a.merkle_mut().rebuild_incremental();
    b.merkle_mut().rebuild_incremental();
    assert_eq!(a.merkle().root(), b.merkle().root());
    for k in &diverged {
        assert_eq!(a.get(k), b.get(k));
    }
    assert!(out.differing_leaves >= 90 && out.differing_leaves <= 100);
    let total_bytes: u64 = a
        .iter()
        .map(|i| anti_entropy::entry_size_bytes(i.key(), &i.entry()) as u64)
        .sum();
    // Descend 4 levels, fetch the leaves once, push once.
    assert_eq!(out.round_trips, 6);
    assert!(
        out.bytes_total() * 50 < total_bytes,
        "{out:?} vs {total_bytes}"
    );
    eprintln!(
        "100k keys, 100 diverged: {} round trips, {} bytes ({:.3}% of {} shard bytes), {} \
         nodes compared, {} differing leaves, {} entries received, {} sent",
        out.round_trips,
        out.bytes_total(),
        100.0 * out.bytes_total() as f64 / total_bytes as f64,
        total_bytes,
        out.compared_nodes,
        out.differing_leaves,
        out.entries_received,
        out.entries_sent,
    );
    // A second session finds nothing.
    let (again, _, installed) = session(&mut a, applied, &mut b, applied, SessionLimits::default());
    assert_eq!((again.round_trips, installed), (1, 0));
}

#[test]
fn equal_trees_cost_one_round_trip() {
    let mut a = Kv::new(1, 1);
    for i in 0..1_000 {
        apply(&mut a, i + 1, Command::Set(key(i), value(i, 0)));
    }
    let mut b = a.clone();
    let (out, resp, installed) = session(&mut a, 1_000, &mut b, 1_000, SessionLimits::default());
    assert_eq!(out.round_trips, 1);
    assert_eq!(out.compared_nodes, 1);
    assert_eq!(
        (out.entries_sent, out.entries_received, installed),
        (0, 0, 0)
    );
    assert_eq!(resp.requests, 1);
}

#[test]
fn tiny_limits_still_converge_in_more_round_trips() {
    let (mut a, mut b, applied, _) = diverged_pair();
    let limits = SessionLimits {
        parents_per_msg_max: 3,
        leaves_per_msg_max: 4,
        entries_per_msg_max: 5,
    };
    let (out, _, installed) = session(&mut a, applied, &mut b, applied, limits);
    assert_eq!(out.failed, None);
    assert_eq!(installed, 100);
    assert_eq!(a.digest(), b.digest());
    assert!(out.round_trips > 6);
}

#[test]
fn a_delete_the_sender_has_not_applied_is_not_undone() {
    let mut a = Kv::new(1, 1);
    for i in 0..100 {
        apply(&mut a, i + 1, Command::Set(key(i), value(i, 0)));
    }
    let mut b = a.clone();
    // B applied slot 101 (a delete); A has not yet.
    apply(&mut b, 101, Command::Del(vec![key(5)]));
    let (out, resp, installed) = session(&mut a, 100, &mut b, 101, SessionLimits::default());
    assert_eq!(out.failed, None);
    assert_eq!(installed, 0);
    assert!(b.get(&key(5)).is_none());
    assert_eq!(resp.kept.sender_behind, 1);
    // Anti-entropy never deletes: A keeps the key until the log brings slot 101.
    assert!(a.get(&key(5)).is_some());
}

#[test]
fn repair_verdicts() {
    let e = |version: Slot, v: &'static [u8]| Entry {
        value: Bytes::from_static(v),
        version,
        kind: crate::protocol::item::Kind::String,
    };
    let theirs = e(10, b"new");
    assert_eq!(repair_verdict(None, &theirs, 12, 12), Verdict::Install);
    assert_eq!(
        repair_verdict(Some(e(9, b"old").entry_ref()), &theirs, 12, 12),
        Verdict::Install
    );
    assert_eq!(
        repair_verdict(Some(e(11, b"x").entry_ref()), &theirs, 12, 12),
        Verdict::OursNewer
    );
    assert_eq!(
        repair_verdict(Some(e(10, b"new").entry_ref()), &theirs, 12, 12),
        Verdict::Same
    );
    assert_eq!(
        repair_verdict(Some(e(10, b"bad").entry_ref()), &theirs, 12, 12),
        Verdict::Conflict
    );
    assert_eq!(repair_verdict(None, &theirs, 12, 9), Verdict::NotApplied);
    assert_eq!(repair_verdict(None, &theirs, 11, 12), Verdict::SenderBehind);
    assert_eq!(repair_verdict(None, &theirs, 9, 9), Verdict::Invalid);
    assert_eq!(repair_verdict(None, &e(0, b""), 9, 9), Verdict::Invalid);
}

#[test]
fn bad_requests_are_refused_not_panicked_on() {
    let mut kv = Kv::new(1, 1);
    apply(&mut kv, 1, Command::Set(key(1), value(1, 0)));
    let limits = SessionLimits::default();
    let mut r = Responder::new(limits);
    let cases = [
        (
            MerkleMsg::Root {
                depth: 3,
                digest: 0,
            },
            Refusal::DepthMismatch {
                ours: DEPTH_DEFAULT,
            },
        ),
        (
            MerkleMsg::GetChildren {
                level: DEPTH_DEFAULT,
                parents: vec![0],
            },
            Refusal::BadLevel,
        ),
        (
            MerkleMsg::GetChildren {
                level: 1,
                parents: vec![16],
            },
            Refusal::BadIndex,
        ),
        (
            MerkleMsg::GetChildren {
                level: 2,
                parents: vec![5, 5],
            },
            Refusal::BadIndex,
        ),
        (
            MerkleMsg::GetChildren {
                level: 3,
                parents: (0..=limits.parents_per_msg_max as u32).collect(),
            },
            Refusal::TooMany,
        ),
        (
            MerkleMsg::GetEntries {
                leaves: vec![],
                applied: 1,
                push: vec![],
            },
            Refusal::BadIndex,
        ),
        (
            MerkleMsg::GetEntries {
                leaves: vec![65_536],
                applied: 1,
                push: vec![],
            },
            Refusal::BadIndex,
        ),
    ];
    for (msg, refusal) in cases {
        let resp = r.on_msg(&mut kv, 1, &msg);
        assert_eq!(resp.reply, Some(MerkleMsg::Refused(refusal)), "{msg:?}");
        assert!(resp.repairs.is_empty());
    }
    assert_eq!(r.on_msg(&mut kv, 1, &MerkleMsg::Done).reply, None);
    assert_eq!(r.stats().refused, 7);
    assert_eq!(r.stats().ignored, 1);
}

#[test]
fn initiator_ignores_stray_replies_and_ends_on_refusal() {
    let mut kv = Kv::new(1, 1);
    let (mut ae, _) = AntiEntropy::start(&mut kv, SessionLimits::default());
    let stray = MerkleMsg::Entries {
        applied: 0,
        complete: 1,
        entries: vec![],
    };
    assert_eq!(ae.on_msg(&mut kv, 0, stray), None);
    assert_eq!(ae.ignored(), 1);
    assert!(!ae.is_done());
    let short = MerkleMsg::Children {
        level: 1,
        digests: vec![0; 3],
    };
    assert_eq!(ae.on_msg(&mut kv, 0, short), None);
    assert!(ae.is_done());
    assert_eq!(ae.outcome().failed, Some(Refusal::BadReply));
}

#[test]
fn other_depths_work_and_a_depth_mismatch_ends_the_session() {
    let (mut a, mut b, applied, _) = diverged_pair();
    a.set_merkle_depth(2);
    b.set_merkle_depth(2);
    assert_same_tree(a.merkle(), &full(&a));
    let (out, _, installed) = session(&mut a, applied, &mut b, applied, SessionLimits::default());
    assert_eq!(out.failed, None);
    assert_eq!(installed, 100);
    // 256 leaves of ~390 keys: the differing leaves' entries take several replies.
    let replies_min = out
        .entries_received
        .div_ceil(SessionLimits::default().entries_per_msg_max as u64);
    assert!(out.round_trips >= 2 + replies_min, "{out:?}");
    assert_eq!(a.digest(), b.digest());
    b.set_merkle_depth(3);
    let (out, _, installed) = session(&mut a, applied, &mut b, applied, SessionLimits::default());
    assert_eq!(out.failed, Some(Refusal::DepthMismatch { ours: 3 }));
    assert_eq!((out.round_trips, installed), (1, 0));
}

#[test]
fn an_empty_replica_receives_the_whole_shard_in_bounded_pushes() {
    let mut a = Kv::new(1, 1);
    for i in 0..5_000 {
        apply(&mut a, i / 10 + 1, Command::Set(key(i), value(i, 0)));
    }
    a.set_merkle_depth(1);
    let mut b = Kv::new(1, 1);
    b.set_merkle_depth(1);
    let limits = SessionLimits {
        parents_per_msg_max: 1,
        leaves_per_msg_max: 1,
        entries_per_msg_max: 100,
    };
    let leaf_entries_max = (0..16)
        .map(|leaf| {
            anti_entropy::entries_in_leaves(&a, &[leaf], usize::MAX)
                .1
                .len()
        })
        .max()
        .unwrap_or(0);
    let (mut ae, mut msg) = AntiEntropy::start(&mut a, limits);
    let mut responder = Responder::new(limits);
    let (mut installed, mut pending_max, mut pushes) = (0, 0, 0);
    loop {
        if let MerkleMsg::Push { entries, .. } | MerkleMsg::GetEntries { push: entries, .. } = &msg
        {
            assert!(entries.len() <= limits.entries_per_msg_max);
            pushes += entries.len();
        }
        let resp = responder.on_msg(&mut b, 500, &msg);
        for (k, e) in resp.repairs {
            assert!(b.install(k, e));
            installed += 1;
        }
        let next = ae.on_msg(&mut a, 500, resp.reply.expect("a reply"));
        pending_max = pending_max.max(ae.pending_pushes());
        match next {
            Some(m) => msg = m,
            None => break,
        }
    }
    assert_eq!(ae.outcome().failed, None);
    assert_eq!((installed, pushes), (5_000, 5_000));
    assert_eq!(a.digest(), b.digest());
    // Leaves are fetched one by one (~312 entries each) and pushes drain 100 at a time:
    // without the bound the queue would grow toward the whole shard.
    assert!(
        pending_max <= limits.entries_per_msg_max + leaf_entries_max,
        "{pending_max} > 100 + {leaf_entries_max}"
    );
}
