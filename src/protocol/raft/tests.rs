//! Scenario tests of the Raft core, with message delivery and disk syncs under the test's
//! control.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::protocol::kv::{Command, Reply, SetIf};

const MS: Nanos = NANOS_PER_MS;

/// A hand-driven group: messages wait in `wire` until the test delivers them; records are
/// durable at once unless the replica's disk is held.
struct Group {
    replicas: Vec<Replica>,
    wire: Vec<(ReplicaId, ReplicaId, Msg)>,
    /// Clock-rate probes and echoes (lease mode), delivered with the rest.
    clock_wire: Vec<(ReplicaId, ReplicaId, Message)>,
    /// Per replica: records waiting for a sync while its disk is held.
    unsynced: Vec<Vec<PersistId>>,
    disk_held: Vec<bool>,
    /// Per replica: every record it asked to persist.
    records: Vec<Vec<Record>>,
    /// Per replica: records whose sync it asked to start after the step's sends.
    synced_after_sends: Vec<usize>,
    replies: Vec<(Token, ClientReply)>,
    now: Nanos,
}

fn cfg(n: usize) -> ProtocolConfig {
    ProtocolConfig {
        protocol: crate::config::Protocol::Raft,
        replicas: n,
        catchup_chunk_max: 1,
        pipeline_depth: 4,
        batch_max: 1,
        ..ProtocolConfig::default()
    }
}

fn set(key: &str, value: &str, seq: u64) -> Request {
    Request {
        client: 7,
        seq,
        ack_floor: 1,
        cmd: Command::Set(Bytes::from(key.to_string()), Bytes::from(value.to_string())),
    }
}

impl Group {
    fn new(n: usize) -> Group {
        Group::from(
            (0..n)
                .map(|i| Replica::new(cfg(n), ReplicaId(i as u8), i as u64))
                .collect(),
        )
    }

    fn from(replicas: Vec<Replica>) -> Group {
        let n = replicas.len();
        Group {
            replicas,
            wire: Vec::new(),
            clock_wire: Vec::new(),
            unsynced: vec![Vec::new(); n],
            disk_held: vec![false; n],
            records: vec![Vec::new(); n],
            synced_after_sends: vec![0; n],
            replies: Vec::new(),
            now: 0,
        }
    }

    /// Takes replica `i`'s actions: sends go on the wire, records sync at once (unless held).
    fn collect(&mut self, i: usize) {
        let mut actions = Vec::new();
        self.replicas[i].drain_into(&mut actions);
        let mut synced = None;
        for a in actions {
            match a {
                Action::Send {
                    to,
                    msg: Message::Raft(msg),
                } => self.wire.push((ReplicaId(i as u8), to, msg)),
                Action::Send {
                    to,
                    msg: msg @ (Message::ClockProbe { .. } | Message::ClockEcho { .. }),
                } => self.clock_wire.push((ReplicaId(i as u8), to, msg)),
                Action::Send { .. } => panic!("a Raft replica sent another protocol's message"),
                Action::Persist { id, record, sync } => {
                    self.records[i].push(record);
                    if sync == SyncStart::AfterSends {
                        self.synced_after_sends[i] += 1;
                    }
                    if self.disk_held[i] {
                        self.unsynced[i].push(id);
                    } else {
                        synced = Some(id);
                    }
                }
                Action::Reply { token, reply } => self.replies.push((token, reply)),
                Action::SaveSnapshot => {}
                Action::CheckLazySync { .. } => panic!("Raft writes no lazy records"),
            }
        }
        if let Some(id) = synced {
            self.replicas[i].on_persisted(self.now, id);
            self.collect(i);
        }
        self.replicas[i].check_invariants();
    }

    /// Syncs replica `i`'s held records.
    fn sync(&mut self, i: usize) {
        self.disk_held[i] = false;
        if let Some(id) = self.unsynced[i].drain(..).max() {
            self.replicas[i].on_persisted(self.now, id);
            self.collect(i);
        }
    }

    fn tick(&mut self, i: usize, at: Nanos) {
        self.now = self.now.max(at);
        self.replicas[i].on_tick(self.now);
        self.collect(i);
    }

    fn request(&mut self, i: usize, token: Token, req: Request) {
        self.replicas[i].on_request(self.now, token, req);
        self.collect(i);
    }

    /// Delivers messages matching `pass` (others stay on the wire) until none is left.
    fn deliver_where(&mut self, pass: impl Fn(ReplicaId, ReplicaId, &Msg) -> bool) -> usize {
        let mut delivered = 0;
        loop {
            let Some(pos) = self.wire.iter().position(|(f, t, m)| pass(*f, *t, m)) else {
                return delivered;
            };
            let (from, to, msg) = self.wire.remove(pos);
            delivered += 1;
            self.replicas[to.index()].on_message(self.now, from, Message::Raft(msg));
            self.collect(to.index());
        }
    }

    fn deliver_all(&mut self) -> usize {
        while !self.clock_wire.is_empty() {
            let (from, to, msg) = self.clock_wire.remove(0);
            self.replicas[to.index()].on_message(self.now, from, msg);
            self.collect(to.index());
        }
        self.deliver_where(|_, _, _| true)
    }

    /// Drops every message to or from `i`.
    fn drop_involving(&mut self, i: usize) {
        let r = ReplicaId(i as u8);
        self.wire.retain(|(f, t, _)| *f != r && *t != r);
        self.clock_wire.retain(|(f, t, _)| *f != r && *t != r);
    }

    /// Lets replica `i`'s election timer run out (its first tick sets it).
    fn timeout(&mut self, i: usize) {
        self.tick(i, self.now);
        let at = self.now + 2 * cfg(1).election_timeout_ms * MS + 1;
        self.tick(i, at);
    }

    /// Times replica `i` out and delivers everything: it should win.
    fn elect(&mut self, i: usize) {
        self.timeout(i);
        self.deliver_all();
    }

    /// Runs the group for `ms` in 10 ms steps: every replica ticks and every message is
    /// delivered, except those to or from `isolated`.
    fn run_for(&mut self, ms: u64, isolated: Option<usize>) {
        for _ in 0..ms / 10 {
            let at = self.now + 10 * MS;
            for i in 0..self.replicas.len() {
                self.tick(i, at);
            }
            if let Some(i) = isolated {
                self.drop_involving(i);
            }
            self.deliver_all();
        }
    }

    fn leaders(&self) -> Vec<(usize, u64)> {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.leading_term().map(|t| (i, t)))
            .collect()
    }
}

/// A replica recovered with `term`, a vote and a log of these entry terms.
fn with_log(n: usize, id: usize, term: u64, entry_terms: &[u64]) -> Replica {
    let mut records = vec![Record::Raft(RaftRecord::Vote {
        term,
        voted_for: None,
    })];
    for (i, t) in entry_terms.iter().enumerate() {
        records.push(Record::Raft(RaftRecord::Entry {
            index: i as Slot + 1,
            term: *t,
            batch: Arc::from(vec![set("k", &format!("v{i}"), i as u64 + 1)]),
        }));
    }
    Replica::recover(cfg(n), ReplicaId(id as u8), id as u64, None, records, false)
}

#[test]
fn a_timed_out_replica_is_elected_and_commits_its_no_op() {
    let mut g = Group::new(3);
    g.elect(0);
    assert_eq!(g.leaders(), vec![(0, 1)]);
    for r in &g.replicas {
        assert_eq!(r.term(), 1);
        assert_eq!(r.last_index(), 1, "the term's no-op is everywhere");
    }
    assert_eq!(g.replicas[0].commit_index(), 1);
    // A heartbeat carries the commit index to the followers.
    g.tick(0, g.now + 60 * MS);
    g.deliver_all();
    assert!(g.replicas.iter().all(|r| r.applied_index() == 1));
}

/// The leader's lone entry is synced after its appends are sent; one beside an uncommitted
/// entry, and the followers', at once.
#[test]
fn the_leaders_lone_entry_is_synced_after_its_sends() {
    let mut g = Group::new(3);
    g.elect(0);
    let before = g.synced_after_sends[0];
    g.request(0, 1, set("a", "1", 1));
    assert_eq!(g.synced_after_sends[0], before + 1);
    let last = g.replicas[0].last_index();
    g.request(0, 2, set("b", "1", 2));
    assert_eq!(
        g.replicas[0].last_index(),
        last + 1,
        "appended beside the first"
    );
    assert_eq!(
        g.synced_after_sends[0],
        before + 1,
        "not beside an uncommitted entry"
    );
    g.deliver_all();
    assert_eq!(
        g.replies,
        vec![
            (1, ClientReply::Done(Reply::Ok)),
            (2, ClientReply::Done(Reply::Ok))
        ]
    );
    assert_eq!(g.synced_after_sends[1], 0);
    assert_eq!(g.synced_after_sends[2], 0);
}

#[test]
fn a_write_is_answered_once_a_quorum_stored_it() {
    let mut g = Group::new(3);
    g.elect(0);
    g.request(0, 1, set("a", "1", 1));
    assert!(g.replies.is_empty());
    // One follower is enough for a quorum of three.
    g.deliver_where(|_, to, _| to != ReplicaId(2));
    g.deliver_where(|from, _, _| from != ReplicaId(2));
    assert_eq!(g.replies, vec![(1, ClientReply::Done(Reply::Ok))]);
    // A follower refuses and names the leader.
    g.request(1, 2, set("a", "2", 2));
    assert_eq!(
        g.replies[1],
        (
            2,
            ClientReply::NotLeader {
                leader: Some(ReplicaId(0))
            }
        )
    );
}

#[test]
fn pre_vote_keeps_a_healthy_leader() {
    let mut g = Group::new(3);
    g.elect(0);
    // Replica 2 is cut off for ten election timeouts: without pre-vote its term would
    // climb at each, and its return would depose the leader.
    g.run_for(5_000, Some(2));
    assert!(g.replicas[2].stats().elections_started == 0);
    assert_eq!(g.replicas[2].term(), 1, "pre-votes never raise the term");
    assert_eq!(g.leaders(), vec![(0, 1)]);
    // Back on the network, it follows the leader it finds.
    g.run_for(2_000, None);
    assert_eq!(g.leaders(), vec![(0, 1)], "the healthy leader stays");
    assert_eq!(g.replicas[2].leader_hint(), Some(ReplicaId(0)));
    // A pre-vote for a later term is refused while the leader is heard, even with an
    // up-to-date log.
    let last_index = g.replicas[1].last_index();
    g.replicas[1].on_message(
        g.now,
        ReplicaId(2),
        Message::Raft(Msg::PreVote {
            term: 2,
            last_index,
            last_term: 1,
        }),
    );
    g.collect(1);
    assert!(g.wire.contains(&(
        ReplicaId(1),
        ReplicaId(2),
        Msg::PreVoteReply {
            term: 1,
            granted: false
        }
    )));
}

#[test]
fn a_vote_needs_a_log_at_least_as_up_to_date() {
    // Replica 0 lacks the term-2 entry the others hold: nobody votes for it.
    let mut g = Group::from(vec![
        with_log(3, 0, 2, &[1]),
        with_log(3, 1, 2, &[1, 2]),
        with_log(3, 2, 2, &[1, 2]),
    ]);
    g.timeout(0);
    g.deliver_all();
    assert!(g.leaders().is_empty());
    assert_eq!(g.replicas[1].term(), 2, "pre-vote refused: no term change");
    // With the bug, its pre-vote and vote pass.
    let bugs = Bugs {
        vote_without_log_check: true,
        ..Bugs::default()
    };
    for r in &mut g.replicas {
        r.set_bugs(bugs);
    }
    g.timeout(0);
    g.deliver_all();
    assert_eq!(g.leaders(), vec![(0, 3)]);
}

/// Figure 8: a leader of term 4 holding an entry of term 2 must not commit it on a count
/// alone: a replica with a term-3 entry there could still be elected and overwrite it.
fn figure_8(bugs: Bugs) -> Slot {
    let mut g = Group::from(vec![
        with_log(3, 0, 3, &[1, 2]),
        with_log(3, 1, 3, &[1]),
        with_log(3, 2, 3, &[1]),
    ]);
    for r in &mut g.replicas {
        r.set_bugs(bugs);
    }
    g.timeout(0);
    // Elected (term 4) with replica 1's vote; its no-op goes to index 3.
    g.deliver_where(|from, to, m| {
        (from == ReplicaId(1) || to == ReplicaId(1)) && !matches!(m, Msg::Append { .. })
    });
    assert_eq!(g.leaders(), vec![(0, 4)]);
    assert_eq!(g.replicas[0].last_index(), 3);
    g.wire.retain(|(_, to, _)| *to == ReplicaId(1));
    // Replica 1 conflicts, then gets index 2 (one entry per append) and answers.
    for _ in 0..3 {
        let Some(pos) = g.wire.iter().position(|(_, to, _)| *to == ReplicaId(1)) else {
            break;
        };
        let (from, _, msg) = g.wire.remove(pos);
        g.replicas[1].on_message(g.now, from, Message::Raft(msg));
        g.collect(1);
        g.deliver_where(|_, to, _| to == ReplicaId(0));
        g.wire.retain(|(_, to, m)| {
            *to == ReplicaId(1) && matches!(m, Msg::Append { prev_index: 1, .. })
        });
    }
    assert_eq!(
        g.replicas[1].last_index(),
        2,
        "index 2 on a quorum, the no-op not"
    );
    g.replicas[0].commit_index()
}

#[test]
fn figure_8_an_older_term_entry_is_not_committed_by_counting() {
    assert_eq!(figure_8(Bugs::default()), 0);
    let bug = Bugs {
        commit_older_term: true,
        ..Bugs::default()
    };
    assert_eq!(figure_8(bug), 2, "the bug commits it");
}

#[test]
fn a_conflicting_suffix_is_skipped_in_one_round_trip() {
    // Replica 1's long suffix of term 2 conflicts with the leader's term-3 entries.
    let mut g = Group::from(vec![
        with_log(3, 0, 3, &[1, 3, 3, 3, 3, 3]),
        with_log(3, 1, 3, &[1, 2, 2, 2, 2, 2, 2]),
        with_log(3, 2, 3, &[1, 3, 3, 3, 3, 3]),
    ]);
    g.timeout(0);
    g.deliver_where(|from, to, _| from != ReplicaId(1) && to != ReplicaId(1));
    assert_eq!(g.leaders(), vec![(0, 4)]);
    g.wire
        .retain(|(_, to, m)| *to == ReplicaId(1) && matches!(m, Msg::Append { .. }));
    let mut conflicts = 0;
    while !g.wire.is_empty() {
        let (from, to, msg) = g.wire.remove(0);
        g.replicas[to.index()].on_message(g.now, from, Message::Raft(msg));
        g.collect(to.index());
        for (_, _, m) in &g.wire {
            if let Msg::AppendReply {
                outcome: AppendOutcome::Conflict { index, term },
                ..
            } = m
            {
                assert_eq!((*index, *term), (2, Some(2)), "the start of its term-2 run");
                conflicts += 1;
            }
        }
        g.deliver_where(|_, to, _| to == ReplicaId(0));
    }
    assert_eq!(conflicts, 1, "one conflict skips the whole term");
    assert_eq!(g.replicas[1].last_index(), 7);
    assert_eq!(g.replicas[1].log.term_at(7), Some(4));
    assert_eq!(g.replicas[1].log.term_at(2), Some(3));
}

#[test]
fn votes_and_appends_leave_only_once_durable() {
    let mut g = Group::new(3);
    g.disk_held[1] = true;
    g.timeout(0);
    g.deliver_where(|_, _, m| matches!(m, Msg::PreVote { .. } | Msg::PreVoteReply { .. }));
    g.deliver_where(|_, to, m| to == ReplicaId(1) && matches!(m, Msg::RequestVote { .. }));
    let vote_from_1 = |g: &Group| {
        g.wire
            .iter()
            .any(|(f, _, m)| *f == ReplicaId(1) && matches!(m, Msg::VoteReply { .. }))
    };
    assert!(!vote_from_1(&g), "the vote waits for its record");
    g.sync(1);
    assert!(vote_from_1(&g));
    g.deliver_all();
    assert_eq!(g.leaders(), vec![(0, 1)]);
    g.disk_held[1] = true;
    g.disk_held[2] = true;
    g.request(0, 1, set("a", "1", 1));
    g.deliver_all();
    assert!(
        g.replies.is_empty(),
        "no follower acknowledged an unsynced entry"
    );
    g.sync(2);
    g.deliver_all();
    assert_eq!(g.replies, vec![(1, ClientReply::Done(Reply::Ok))]);
}

#[test]
fn the_bug_acknowledges_before_the_sync() {
    let mut g = Group::new(3);
    g.elect(0);
    let bug = Bugs {
        reply_before_persist: true,
        ..Bugs::default()
    };
    g.replicas[1].set_bugs(bug);
    g.disk_held[1] = true;
    g.disk_held[2] = true;
    g.request(0, 1, set("a", "1", 1));
    g.deliver_all();
    assert_eq!(g.replies, vec![(1, ClientReply::Done(Reply::Ok))]);
}

#[test]
fn a_restarted_replica_keeps_its_vote_and_log() {
    let mut g = Group::new(3);
    g.elect(0);
    g.request(0, 1, set("a", "1", 1));
    g.deliver_all();
    let records = g.records[1].clone();
    let r = Replica::recover(cfg(3), ReplicaId(1), 9, None, records, false);
    assert_eq!(r.term(), 1);
    assert_eq!(r.last_index(), 2);
    assert_eq!(r.voted_for, Some(ReplicaId(0)));
    // It will not vote for another candidate in term 1.
    g.replicas[1] = r;
    g.replicas[1].on_message(
        g.now,
        ReplicaId(2),
        Message::Raft(Msg::RequestVote {
            term: 1,
            last_index: 9,
            last_term: 1,
        }),
    );
    g.collect(1);
    assert!(
        g.wire
            .iter()
            .any(|(_, _, m)| matches!(m, Msg::VoteReply { granted: false, .. }))
    );
}

/// A group led by replica 0 that wrote 5 keys while replica 2 was cut off, then
/// compacted the leader's log; returns the compacted index.
fn leader_compacted_past_replica_2(g: &mut Group) -> Slot {
    g.elect(0);
    g.drop_involving(2);
    for seq in 1..=5 {
        g.request(0, seq, set("k", &seq.to_string(), seq));
        g.deliver_where(|from, to, _| from != ReplicaId(2) && to != ReplicaId(2));
    }
    g.wire.clear();
    let applied = g.replicas[0].applied_index();
    g.replicas[0].compact(applied);
    applied
}

#[test]
fn a_follower_behind_the_compacted_log_gets_a_snapshot() {
    let mut g = Group::new(3);
    assert_eq!(leader_compacted_past_replica_2(&mut g), 6);
    g.tick(0, g.now + 150 * MS);
    g.deliver_all();
    g.tick(0, g.now + 60 * MS);
    g.deliver_all();
    assert_eq!(g.replicas[0].stats().snapshots_sent, 1);
    assert_eq!(g.replicas[2].stats().snapshots_installed, 1);
    assert_eq!(g.replicas[2].applied_index(), 6);
    assert_eq!(g.replicas[2].kv().digest(), g.replicas[0].kv().digest());
}

/// `leader_compacted_past_replica_2` with replicas 0 and 1 handing their transfers to
/// their drivers to build (r2 installs what it receives at once).
fn leader_offloading_past_replica_2() -> Group {
    let mut g = Group::new(3);
    for r in &mut g.replicas[..2] {
        r.set_offload_transfers(true);
    }
    assert_eq!(leader_compacted_past_replica_2(&mut g), 6);
    g
}

/// What a node's driver does with the leader's transfer build: shares its frozen entries
/// a part at a time, builds it and hands it back; the leader's messages go on the wire.
fn hand_back_built(g: &mut Group, mut build: crate::protocol::transfer::TransferBuild) {
    while !g.replicas[0].kv_mut().export_step(1) {}
    let entries = g.replicas[0].kv_mut().export_end().expect("still frozen");
    build.set_entries(entries);
    let now = g.now;
    g.replicas[0].on_transfer_built(now, build.build(now));
    g.collect(0);
}

/// With transfers built off the executor (as the node does), the leader sends no chunk
/// until the build it handed out is back; a retransmission meanwhile starts no second
/// build; once back, chunk 0 goes to the follower and it installs the state.
#[test]
fn a_transfer_built_off_the_executor_is_sent_once_it_is_back() {
    let mut g = leader_offloading_past_replica_2();
    let chunk_to_2 = |g: &Group| {
        g.wire
            .iter()
            .any(|(_, to, m)| *to == ReplicaId(2) && matches!(m, Msg::InstallSnapshot { .. }))
    };
    g.tick(0, g.now + 150 * MS);
    g.deliver_all();
    let build = g.replicas[0]
        .take_transfer_build()
        .expect("a build handed out");
    // Its entries are frozen in the map, for the driver to share a part at a time.
    assert!(build.frozen());
    assert!(g.replicas[0].kv().exporting());
    // Retransmission time passes: still nothing sent, no second build.
    g.tick(0, g.now + 150 * MS);
    g.deliver_all();
    assert!(g.replicas[0].take_transfer_build().is_none());
    assert_eq!(g.replicas[0].stats().snapshots_sent, 0);
    assert_eq!(g.replicas[2].stats().snapshots_installed, 0);
    hand_back_built(&mut g, build);
    assert!(chunk_to_2(&g), "chunk 0 once the build is back");
    g.deliver_all();
    assert_eq!(g.replicas[0].stats().snapshots_sent, 1);
    assert_eq!(g.replicas[2].stats().snapshots_installed, 1);
    assert_eq!(g.replicas[2].kv().digest(), g.replicas[0].kv().digest());
}

/// A transfer the leader needs while a snapshot's freeze runs is not started: the map
/// holds one freeze, and exporting every item at once stopped the shard. The
/// retransmission after the freeze ends starts one, frozen a part at a time.
#[test]
fn a_transfer_needed_during_a_snapshot_freeze_waits_for_the_freeze_to_end() {
    let mut g = leader_offloading_past_replica_2();
    g.replicas[0].kv_mut().export_begin();
    for _ in 0..3 {
        g.tick(0, g.now + 150 * MS);
        g.deliver_all();
        assert!(
            g.replicas[0].take_transfer_build().is_none(),
            "a build during the freeze"
        );
        assert!(g.replicas[0].kv().exporting(), "the snapshot's freeze");
    }
    assert_eq!(g.replicas[2].stats().snapshots_installed, 0);
    assert!(
        g.replicas[0].transfer_wanted(g.now),
        "the next snapshot waits for it"
    );
    while !g.replicas[0].kv_mut().export_step(1) {}
    g.replicas[0]
        .kv_mut()
        .export_end()
        .expect("the snapshot's freeze");
    let mut build = None;
    for _ in 0..10 {
        g.tick(0, g.now + 150 * MS);
        g.deliver_all();
        build = g.replicas[0].take_transfer_build();
        if build.is_some() {
            break;
        }
    }
    let build = build.expect("a build once the freeze ended");
    assert!(build.frozen());
    assert!(
        !g.replicas[0].transfer_wanted(g.now),
        "wanted no more once begun"
    );
    hand_back_built(&mut g, build);
    g.deliver_all();
    assert_eq!(g.replicas[2].stats().snapshots_installed, 1);
    assert_eq!(g.replicas[2].kv().digest(), g.replicas[0].kv().digest());
}

/// With installs built off the executor (as the node does), the follower that received
/// the whole state hands its driver the build and installs nothing; the leader's chunk 0
/// sent again meanwhile starts nothing new; once the build is back the follower installs
/// it, answers, and appends go on.
#[test]
fn a_received_snapshot_built_off_the_executor_is_installed_once_it_is_back() {
    let mut g = Group::new(3);
    g.replicas[2].set_offload_transfers(true);
    assert_eq!(leader_compacted_past_replica_2(&mut g), 6);
    g.tick(0, g.now + 150 * MS);
    g.deliver_all();
    let build = g.replicas[2]
        .take_install_build()
        .expect("a build handed out");
    assert_eq!(g.replicas[2].stats().snapshots_installed, 0);
    // Retransmission time passes: the leader may send chunk 0 again; nothing is staged
    // or installed, no second build.
    for _ in 0..4 {
        g.tick(0, g.now + 150 * MS);
        g.deliver_all();
    }
    assert!(g.replicas[2].take_install_build().is_none());
    assert_eq!(g.replicas[2].stats().snapshots_installed, 0);
    assert!(g.replicas[2].applied_index() < 6);
    let now = g.now;
    g.replicas[2].on_install_built(now, build.build());
    g.collect(2);
    g.deliver_all();
    assert_eq!(g.replicas[2].stats().snapshots_installed, 1);
    assert_eq!(g.replicas[2].applied_index(), 6);
    assert_eq!(g.replicas[2].kv().digest(), g.replicas[0].kv().digest());
    // Its driver saves the installed state; then its answer leaves and appends go on.
    g.replicas[2].on_snapshot_saved(g.now, 6);
    g.collect(2);
    g.request(0, 50, set("after", "1", 6));
    for _ in 0..3 {
        g.tick(0, g.now + 60 * MS);
        g.deliver_all();
    }
    assert_eq!(g.replicas[2].kv().digest(), g.replicas[0].kv().digest());
    assert!(g.replicas[2].applied_index() > 6);
}

fn get(key: &str, seq: u64) -> Request {
    Request {
        client: 7,
        seq,
        ack_floor: 1,
        cmd: Command::Get(Bytes::from(key.to_string())),
    }
}

#[test]
fn read_index_answers_after_a_quorum_confirms_and_a_cut_off_leader_never_does() {
    let mut g = Group::from(
        (0..3)
            .map(|i| {
                let cfg = ProtocolConfig {
                    read_mode: crate::config::ReadMode::ReadIndex,
                    ..cfg(3)
                };
                Replica::new(cfg, ReplicaId(i), u64::from(i))
            })
            .collect(),
    );
    g.elect(0);
    g.request(0, 1, set("a", "1", 1));
    g.deliver_all();
    g.request(0, 2, get("a", 2));
    assert_eq!(g.replies.len(), 1, "the read waits for the probe round");
    let log_before = g.replicas[0].last_index();
    g.deliver_all();
    let one = ClientReply::Done(Reply::Value(Some(Bytes::from_static(b"1"))));
    assert_eq!(g.replies[1], (2, one));
    assert_eq!(
        g.replicas[0].last_index(),
        log_before,
        "no log entry for a read"
    );
    // Cut replica 0 off; the others elect replica 1, which overwrites the key.
    g.run_for(2_000, Some(0));
    assert_eq!(
        g.replicas[1]
            .leading_term()
            .or(g.replicas[2].leading_term()),
        Some(2)
    );
    let new = if g.replicas[1].leading_term().is_some() {
        1
    } else {
        2
    };
    g.request(new, 3, set("a", "2", 3));
    g.deliver_where(|f, t, _| f != ReplicaId(0) && t != ReplicaId(0));
    // The old leader may still think it leads, but it cannot confirm: no stale answer.
    g.wire.clear();
    let stale_leader = g.replicas[0].leading_term().is_some();
    g.request(0, 4, get("a", 4));
    g.drop_involving(0);
    assert!(
        g.replies.iter().all(|(t, _)| *t != 4) || !stale_leader,
        "a cut-off leader answered a read"
    );
    // Back on the network it learns of term 2 and refuses; the new leader answers.
    g.run_for(200, None);
    assert!(matches!(
        g.replies.iter().find(|(t, _)| *t == 4),
        Some((_, ClientReply::NotLeader { .. }))
    ));
    g.request(new, 5, get("a", 5));
    g.deliver_all();
    let two = ClientReply::Done(Reply::Value(Some(Bytes::from_static(b"2"))));
    assert_eq!(g.replies.last(), Some(&(5, two)));
}

#[test]
fn a_key_with_a_ttl_expires_on_every_replica_by_the_leaders_clock() {
    let mut g = Group::new(3);
    g.elect(0);
    let ttl = Request {
        client: 7,
        seq: 1,
        ack_floor: 1,
        cmd: Command::SetIf(Box::new(SetIf {
            key: Bytes::from_static(b"t"),
            value: Bytes::from_static(b"v"),
            cond: crate::protocol::kv::SetCond::Always,
            get: false,
            ttl: crate::protocol::expiry::Ttl::In(1_000),
        })),
    };
    g.request(0, 1, ttl);
    g.deliver_all();
    g.run_for(100, None);
    assert!(g.replicas.iter().all(|r| r.kv().get(b"t").is_some()));
    // Past the deadline by the leader's clock, an entry of its own names the key.
    g.run_for(1_200, None);
    for (i, r) in g.replicas.iter().enumerate() {
        assert!(
            r.kv().get(b"t").is_none(),
            "replica {i} still holds the key"
        );
    }
}

#[test]
fn an_installed_snapshot_is_acknowledged_only_once_saved() {
    let mut g = Group::new(3);
    let applied = leader_compacted_past_replica_2(&mut g);
    g.tick(0, g.now + 150 * MS);
    g.deliver_where(|_, to, m| to == ReplicaId(2) && matches!(m, Msg::InstallSnapshot { .. }));
    assert_eq!(g.replicas[2].stats().snapshots_installed, 1);
    let acks = |g: &Group| {
        g.wire
            .iter()
            .filter(|(f, _, m)| {
                *f == ReplicaId(2)
                    && matches!(
                        m,
                        Msg::InstallSnapshotReply { .. } | Msg::AppendReply { .. }
                    )
            })
            .count()
    };
    assert_eq!(acks(&g), 0, "acknowledged before the snapshot was saved");
    // Entries appended after it are not acknowledged either: the log before them is
    // nowhere on disk yet.
    g.request(0, 6, set("k", "6", 6));
    g.deliver_where(|_, to, m| to == ReplicaId(2) && matches!(m, Msg::Append { .. }));
    assert_eq!(acks(&g), 0);
    // A snapshot saved before the install covers too little.
    g.replicas[2].on_snapshot_saved(g.now, applied - 1);
    g.collect(2);
    assert_eq!(acks(&g), 0);
    g.replicas[2].on_snapshot_saved(g.now, applied);
    g.collect(2);
    assert!(acks(&g) >= 1, "the answers held for the snapshot went out");
}

#[test]
fn applied_entries_past_log_retain_bytes_leave_memory() {
    // Room for two writes (each key and value, and its request's own cost).
    let bound = 2 * (crate::protocol::message::REQUEST_MEMORY_OVERHEAD_BYTES + 8);
    let mut g = Group::from(
        (0..3)
            .map(|i| {
                let cfg = ProtocolConfig {
                    log_retain_bytes: bound,
                    ..cfg(3)
                };
                Replica::new(cfg, ReplicaId(i), u64::from(i))
            })
            .collect(),
    );
    g.elect(0);
    for seq in 1..=20 {
        g.request(0, seq, set("key", "value", seq));
        g.deliver_all();
    }
    g.run_for(100, None);
    for r in &g.replicas {
        assert!(r.applied_log_bytes() <= bound, "{}", r.applied_log_bytes());
        assert!(r.log_len() < 5, "{} entries held", r.log_len());
        assert!(r.stats().log_slots_trimmed > 0);
    }
    // What is trimmed is still in the state machine.
    assert_eq!(g.replicas[1].kv().digest(), g.replicas[0].kv().digest());
}

#[path = "tests_lease.rs"]
mod lease;

#[path = "tests_snapshot.rs"]
mod snapshot;

#[path = "tests_recovery.rs"]
mod recovery;

#[path = "tests_stale.rs"]
mod stale;

#[test]
fn a_pipeline_taken_in_one_step_leaves_in_full_batches_and_one_partial() {
    let cfg = ProtocolConfig {
        batch_max: 4,
        ..cfg(3)
    };
    let replicas = (0..3)
        .map(|i| Replica::new(cfg.clone(), ReplicaId(i as u8), i as u64))
        .collect();
    let mut g = Group::from(replicas);
    g.elect(0);
    let before = g.replicas[0].last_index();
    // Six requests at once to an idle leader: its head does not leave alone.
    let reqs = (1..=6).map(|seq| (seq, set(&format!("k{seq}"), "v", seq)));
    g.replicas[0].on_requests(g.now, reqs);
    g.collect(0);
    let sizes: Vec<usize> = (before + 1..=g.replicas[0].last_index())
        .map(|i| g.replicas[0].log.get(i).expect("held").batch.len())
        .collect();
    assert_eq!(sizes, vec![4, 2], "one full batch, then the rest");
    g.deliver_all();
    let mut answered: Vec<Token> = g.replies.iter().map(|(t, _)| *t).collect();
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 2, 3, 4, 5, 6]);
    assert!(
        g.replies
            .iter()
            .all(|(_, r)| *r == ClientReply::Done(Reply::Ok))
    );
}
