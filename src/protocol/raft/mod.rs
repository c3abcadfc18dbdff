//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm"),
//! sans-IO, with the same inputs and actions as the Multi-Paxos core.
//!
//! [`Replica`] is a pure state machine: the driver feeds it client requests, peer messages,
//! ticks and storage completions, each with the current time, and takes `Action`s from its
//! outbox. Files by concern: `log.rs` (entries after a compacted base), `election.rs`
//! (randomised timeouts, pre-vote, votes with the up-to-date check), `replication.rs` (the
//! leader: batching, pipelined appends, fast back-off, commit by counting entries of its
//! own term), `follower.rs` (the log-matching check, commit, apply, snapshot install),
//! `storage.rs` (records, recovery, snapshots, compaction).
//!
//! Durability contract: term and vote, and every log entry, are persisted before any
//! message that reveals them leaves (a vote, an append's success, a candidate's request,
//! the leader's own acknowledgement): such messages are held until the driver reports the
//! record durable.

mod election;
mod follower;
mod lease;
mod log;
mod reads;
mod recovery;
mod replication;
mod snapshot;
mod stale;
mod storage;

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use storage::{RaftRecord, Snapshot};

use super::consensus::{Bugs, Core};
use super::kv::{Kv, Request};
use super::message::{Batch, Message, Record};
use super::outbox::{Action, ClientReply, SyncStart};
use super::paxos::Stats;
use super::types::{NANOS_PER_MS, NANOS_PER_US, Nanos, PersistId, ReplicaId, Slot, Token};
use crate::config::ProtocolConfig;
use log::Log;

/// Answers to one append a follower may hold for durability: the first and as many
/// retransmissions (see `Replica::held_max`).
const HELD_PER_APPEND: usize = 8;

/// A Raft message between replicas of one group. Stale or unexpected messages are dropped
/// and counted: the network may lose, repeat and reorder anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Would-be candidate → all, before it changes its term: would you vote for me in
    /// `term`? Granted only by replicas that heard no leader for an election timeout, so
    /// a replica that rejoins after a partition does not depose a healthy leader.
    PreVote {
        /// The term it would campaign in (its own plus one).
        term: u64,
        /// Its last log entry's index and term, for the up-to-date check.
        last_index: Slot,
        /// The term of that entry.
        last_term: u64,
    },
    /// Answer to `PreVote`: `term` is the asked term if granted, else the sender's own.
    PreVoteReply {
        /// See above.
        term: u64,
        /// Whether it would vote.
        granted: bool,
    },
    /// Candidate → all: vote for me in `term` (sent once its own vote is durable).
    RequestVote {
        /// The candidate's term.
        term: u64,
        /// Its last log entry's index, for the up-to-date check.
        last_index: Slot,
        /// The term of that entry.
        last_term: u64,
    },
    /// Answer to `RequestVote`, sent once the vote is durable.
    VoteReply {
        /// The voter's term.
        term: u64,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// Leader → follower: entries after `prev_index` (none for a heartbeat), and the
    /// leader's commit index.
    Append {
        /// The leader's term.
        term: u64,
        /// The entry before the first one sent.
        prev_index: Slot,
        /// Its term: the follower accepts only if its log holds it (log matching).
        prev_term: u64,
        /// The entries' terms and batches, from `prev_index + 1` on.
        entries: Vec<(u64, Batch)>,
        /// Every entry up to here is committed.
        commit: Slot,
    },
    /// Follower → leader: the answer to `Append`, sent once the entries are durable.
    AppendReply {
        /// The follower's term.
        term: u64,
        /// Accepted through an index, or why not.
        outcome: AppendOutcome,
    },
    /// Leader → a follower behind its compacted log: a bounded chunk of its state
    /// machine at `chunk.last_included` (the follower asks for each next one).
    InstallSnapshot {
        /// The leader's term.
        term: u64,
        /// The term of the entry at `chunk.last_included`.
        last_term: u64,
        /// Part of the state, from `chunk.offset` on, with the transfer's header.
        chunk: Box<crate::protocol::message::SnapshotChunk>,
    },
    /// Follower → leader: the snapshot is installed (or it already had that much).
    InstallSnapshotReply {
        /// The follower's term.
        term: u64,
        /// Its log now matches the leader's through here.
        last_index: Slot,
    },
    /// Leader → all (read-index mode): do you still follow me? Reads that arrived before
    /// probe `seq` are served once a quorum answered it.
    ReadProbe {
        /// The leader's term.
        term: u64,
        /// Numbers the probes of this leadership.
        seq: u64,
    },
    /// Follower → leader: yes (in `term`).
    ReadProbeAck {
        /// The follower's term.
        term: u64,
        /// The probe's number.
        seq: u64,
    },
    /// Leader → all (leader-lease mode), every heartbeat: grant me a lease.
    LeaseRequest {
        /// The leader's term.
        term: u64,
        /// Matches the grants to the request (and so to its send time).
        seq: u64,
    },
    /// Follower → leader: granted for `lease_ms` from when the request arrived; until
    /// then the follower votes for nobody else (sent once its term is durable).
    LeaseGrant {
        /// The follower's term.
        term: u64,
        /// The request's number.
        seq: u64,
    },
    /// A replica whose storage lost records → every other replica: what is your term,
    /// and, if you lead, your last index? (It votes again only once it knows.)
    RecoveryQuery {
        /// Its last index: a leader resends what it counted beyond it.
        last_index: Slot,
    },
    /// Answer to `RecoveryQuery`.
    RecoveryReport {
        /// The sender's term.
        term: u64,
        /// The sender is recovering lost records too (its term then vouches for nothing).
        recovering: bool,
        /// The sender's last index, if it leads.
        leading: Option<Slot>,
    },
    /// Follower receiving a snapshot → leader: the chunk at `offset` items, please.
    SnapshotChunkRequest {
        /// The follower's term.
        term: u64,
        /// The transfer: the index the state being sent ends at.
        last_included: Slot,
        /// Items received so far.
        offset: u64,
    },
    /// A replica that restarted → every other replica, before it votes or answers: what
    /// did you see me hold durably? (`stale.rs`: a data directory replaced by an older
    /// copy of itself shows as less than that.)
    RestartQuery,
    /// Answer to `RestartQuery`, from the sender's memory (empty after it restarted).
    RestartReport {
        /// The highest term of an answer the asker sent us once its term was durable.
        term: u64,
        /// The latest term in which it voted for us.
        voted_in: Option<u64>,
        /// The last entry it acknowledged storing while we led: (our term, entry term,
        /// index).
        stored: Option<(u64, u64, Slot)>,
    },
}

/// What a follower says to an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// Its log matches the leader's through `match_index`.
    Ok {
        /// The last entry the append verified.
        match_index: Slot,
    },
    /// The log-matching check failed at `prev_index`. Fast back-off: `term` is the term
    /// of its entry there (its first index of that term is `index`), or `None` if its log
    /// ends before (`index` is then its last index plus one).
    Conflict {
        /// Where the leader should look next.
        index: Slot,
        /// The term of the follower's conflicting entry.
        term: Option<u64>,
    },
}

/// The role of a replica in its group.
#[derive(Clone, Debug)]
enum Role {
    Follower,
    /// Asking whether a quorum would vote, without changing its term.
    PreCandidate {
        granted_mask: u8,
    },
    Candidate {
        granted_mask: u8,
    },
    Leader(Box<replication::Leadership>),
}

/// What one replica of one Raft group knows and does. See the module doc.
pub struct Replica {
    cfg: ProtocolConfig,
    id: ReplicaId,
    bugs: Bugs,
    rng: ChaCha8Rng,

    /// The latest term this replica has seen (persisted).
    term: u64,
    /// Who it voted for in `term` (persisted).
    voted_for: Option<ReplicaId>,
    log: Log,
    /// Every entry up to here is committed and held (or in the state machine).
    commit: Slot,
    /// Entries applied to `kv`.
    applied: Slot,
    kv: Kv,

    role: Role,
    /// Who this replica believes leads.
    leader: Option<ReplicaId>,
    /// When it last heard from a leader of its term (pre-votes and votes are refused for
    /// an election timeout after).
    leader_heard_at: Option<Nanos>,
    /// When a follower or candidate gives up on the leader or election.
    election_deadline: Option<Nanos>,
    /// Client requests proposed here, waiting to be applied.
    waiting: crate::protocol::waiting::Waiting,
    /// True while `on_requests` takes a pipeline: only full batches leave meanwhile.
    gathering: bool,

    next_persist_id: PersistId,
    durable_id: PersistId,
    /// Messages held until a record is durable; those to peers at most `held_max`.
    held: VecDeque<(PersistId, ReplicaId, Msg)>,
    held_for_peers: usize,
    /// Messages to self, processed before a step returns: empty between steps.
    loopback: VecDeque<Msg>,
    /// Effects of the current step.
    outbox: Vec<Action>,
    /// Entries applied, for checkers: (index, batch) in order. Only kept when enabled.
    applied_trace: Option<Vec<(Slot, Batch)>>,
    stats: Stats,
    /// The node's storage takes no writes (disk full): no leading, no campaigning.
    storage_full: bool,
    /// A leader's snapshot was installed up to here and the driver has not saved it yet
    /// (`on_snapshot_saved`): until then its log before that index exists nowhere on this
    /// replica's disk, so every answer that would count it is held, as for a record not
    /// yet durable.
    unsaved_install: Option<Slot>,
    /// Memory of the applied entries still in the log, estimated (`log_retain_bytes`).
    applied_log_bytes: u64,
    /// The leader's time stamped into the log (`set_wall_clock`).
    clock: crate::protocol::clock::LogClock,
    /// Leader-lease mode: the lease held, the grants made, the clock-rate check.
    leases: lease::Leases,
    /// As leader: the state frozen for followers behind the compacted log.
    snapshot_out: Option<snapshot::Outgoing>,
    /// As leader: a frozen state being built by the driver, and who waits for it.
    snapshot_pending: crate::protocol::transfer::Pending,
    /// As follower: a leader's state, received whole, being built by the driver before
    /// it is installed.
    installing: crate::protocol::transfer::Installing,
    /// As follower: a leader's state being received in chunks.
    snapshot_in: Option<snapshot::Incoming>,
    /// Storage lost records: a learner until it knows what they said (`recovery.rs`).
    recovering: Option<recovery::Recovering>,
    /// What each peer showed it holds durably (`stale.rs`), by replica index.
    acked: Vec<stale::Acked>,
    /// Set from `recover` until enough peers told what they saw (`stale.rs`).
    restart_check: Option<crate::protocol::stale::RestartCheck>,
    /// What a peer saw this replica acknowledge that its storage lacks, if that happened.
    stale_finding: Option<String>,
}

impl Replica {
    /// A fresh replica with an empty log. `seed` drives its election timeouts.
    pub fn new(cfg: ProtocolConfig, id: ReplicaId, seed: u64) -> Replica {
        assert!(cfg.validate().is_ok(), "config must be validated first");
        assert!(id.index() < cfg.replicas);
        let kv = Kv::new(cfg.client_window_max, cfg.clients_max);
        let leases = lease::Leases::new(
            cfg.max_clock_drift_ppm,
            cfg.clock_check_window_ms * NANOS_PER_MS,
        );
        let cfg_replicas = cfg.replicas;
        Replica {
            cfg,
            id,
            bugs: Bugs::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            term: 0,
            voted_for: None,
            log: Log::default(),
            commit: 0,
            applied: 0,
            kv,
            role: Role::Follower,
            leader: None,
            leader_heard_at: None,
            election_deadline: None,
            waiting: HashMap::default(),
            gathering: false,
            next_persist_id: 1,
            durable_id: 0,
            held: VecDeque::new(),
            held_for_peers: 0,
            loopback: VecDeque::new(),
            outbox: Vec::new(),
            applied_trace: None,
            stats: Stats::default(),
            storage_full: false,
            unsaved_install: None,
            applied_log_bytes: 0,
            clock: crate::protocol::clock::LogClock::default(),
            leases,
            snapshot_out: None,
            snapshot_pending: Default::default(),
            installing: Default::default(),
            snapshot_in: None,
            recovering: None,
            acked: vec![stale::Acked::default(); cfg_replicas],
            restart_check: None,
            stale_finding: None,
        }
    }

    /// Turns on deliberate bugs (tests and simulator only).
    pub fn set_bugs(&mut self, bugs: Bugs) {
        self.bugs = bugs;
        self.kv.set_bug_insert_after(bugs.insert_after);
        self.kv.set_bug_lmove_wrong_end(bugs.lmove_wrong_end);
        if bugs.truncate_at_corruption {
            // Set right after `recover`, before any step: the learner never existed.
            self.recovering = None;
        }
    }

    /// Keeps a trace of every applied entry, for the simulator's prefix check.
    pub fn enable_applied_trace(&mut self) {
        self.applied_trace = Some(Vec::new());
    }

    /// The applied entries so far, if tracing is on.
    pub fn applied_trace(&self) -> Option<&[(Slot, Batch)]> {
        self.applied_trace.as_deref()
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The state machine.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The state machine, to repair or damage.
    pub fn kv_mut(&mut self) -> &mut Kv {
        &mut self.kv
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The term this replica leads, if it leads.
    pub fn leading_term(&self) -> Option<u64> {
        matches!(self.role, Role::Leader(_)).then_some(self.term)
    }

    /// The latest term seen.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Who this replica believes leads the group.
    pub fn leader_hint(&self) -> Option<ReplicaId> {
        self.leader
    }

    /// Every entry up to here is committed and known here.
    pub fn commit_index(&self) -> Slot {
        self.commit
    }

    /// Every entry up to here is applied to the state machine.
    pub fn applied_index(&self) -> Slot {
        self.applied
    }

    /// True while this replica checks, after a restart, that its storage holds what its
    /// peers saw it acknowledge (`protocol/stale.rs`).
    pub fn restart_checking(&self) -> bool {
        self.restart_check.is_some()
    }

    /// What a peer saw this replica acknowledge that its storage lacked (a data directory
    /// replaced by an older copy), if that was detected.
    pub fn stale_finding(&self) -> Option<&str> {
        self.stale_finding.as_deref()
    }

    /// The last entry of the log.
    pub fn last_index(&self) -> Slot {
        self.log.last_index()
    }

    /// Takes the actions produced so far into `out`, keeping both allocations.
    pub fn drain_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.outbox);
    }

    /// Whether every action produced so far was taken (true between a driver's steps).
    pub fn outbox_is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// A client request arrives. The reply comes back with `token` once it is applied, or
    /// at once if this replica cannot take it.
    pub fn on_request(&mut self, now: Nanos, token: Token, req: Request) {
        self.wake(now);
        self.take_request(now, token, req);
        self.finish_step(now);
    }

    /// Several client requests arrive at once (a pipeline), in one step. While they are
    /// taken only full batches leave; what is left leaves after the last one, as
    /// `on_request` would send it. One entry then carries the pipeline's head too, instead
    /// of an entry of its own.
    pub fn on_requests(&mut self, now: Nanos, reqs: impl IntoIterator<Item = (Token, Request)>) {
        self.wake(now);
        self.gathering = true;
        for (token, req) in reqs {
            self.take_request(now, token, req);
        }
        self.gathering = false;
        self.try_propose(now);
        self.finish_step(now);
    }

    /// One client request, within a step.
    fn take_request(&mut self, now: Nanos, token: Token, req: Request) {
        let read = req.cmd.is_read_only();
        if read && self.leading_term().is_none() {
            self.stats.reads_redirected += 1;
        }
        if read && self.cfg.read_mode == crate::config::ReadMode::ReadIndex {
            self.on_read(now, token, req);
        } else if read && self.lease_read_ready(now) {
            self.stats.reads_local += 1;
            let reply = self.kv.read(&req.cmd);
            self.reply(token, ClientReply::Done(reply));
        } else {
            if read && self.leading_term().is_some() {
                self.stats.reads_log += 1;
            }
            self.on_client_request(now, token, req);
        }
    }

    /// A message from a peer arrives.
    pub fn on_message(&mut self, now: Nanos, from: ReplicaId, msg: Message) {
        if from.index() >= self.cfg.replicas || from == self.id {
            self.stats.messages_ignored += 1;
            return;
        }
        self.wake(now);
        match msg {
            Message::Raft(msg) if self.restart_check.is_some() => match msg {
                Msg::RestartQuery | Msg::RestartReport { .. } => self.dispatch(now, from, msg),
                // Its state must stay what storage held until the check ends.
                _ => self.stats.messages_ignored += 1,
            },
            Message::Raft(msg) => self.dispatch(now, from, msg),
            msg @ (Message::ClockProbe { .. } | Message::ClockEcho { .. }) => {
                self.on_clock_message(now, from, msg)
            }
            // Another protocol's message: a misconfigured peer.
            _ => self.stats.messages_ignored += 1,
        }
        self.finish_step(now);
    }

    /// Time passes: elections, heartbeats, retransmissions, batch deadlines.
    pub fn on_tick(&mut self, now: Nanos) {
        self.wake(now);
        if self.restart_check.is_some() {
            // Nothing but the check until it ends (`stale.rs`).
            self.restart_check_tick(now);
            self.finish_step(now);
            return;
        }
        if matches!(self.role, Role::Leader(_)) {
            self.snapshot_out_tick(now);
            self.leader_tick(now);
        } else {
            self.snapshot_in_tick(now);
            self.election_tick(now);
        }
        self.recovery_tick(now);
        self.lease_tick(now);
        self.finish_step(now);
    }

    /// Records up to `id` are durable: release what waited for them.
    pub fn on_persisted(&mut self, now: Nanos, id: PersistId) {
        assert!(
            id < self.next_persist_id,
            "persisted a record never asked for"
        );
        if id <= self.durable_id {
            return;
        }
        let before = self.durable_id;
        self.durable_id = id;
        self.release_held();
        // A partial batch may have waited for our last entry's sync (see `try_propose`).
        if let Role::Leader(l) = &self.role
            && (before + 1..=id).contains(&l.last_append)
            && !l.queue.requests.is_empty()
        {
            self.try_propose(now);
        }
        self.finish_step(now);
    }

    /// The driver saved a snapshot at `at` (its file is durable): a leader's snapshot
    /// installed up to there is on disk now, and the answers that waited for it go.
    pub fn on_snapshot_saved(&mut self, now: Nanos, at: Slot) {
        if self.unsaved_install.is_some_and(|s| s <= at) {
            self.unsaved_install = None;
            self.release_held();
        }
        self.finish_step(now);
    }

    /// Sends the held messages whose records are durable, unless an installed snapshot
    /// still waits to be saved.
    fn release_held(&mut self) {
        if self.install_unsaved() {
            return;
        }
        let durable = self.durable_id;
        while self.held.front().is_some_and(|(pid, _, _)| *pid <= durable) {
            let (_, to, msg) = self.held.pop_front().expect("front checked");
            self.held_for_peers -= usize::from(to != self.id);
            self.send(to, msg);
        }
    }

    /// The node's storage stopped taking writes (`full`: its disk is full) or takes them
    /// again. A replica that cannot persist can neither vote nor lead: a leader or
    /// candidate steps down at once (its waiting clients are told no leader is known),
    /// and it campaigns no more until storage works again. It keeps following.
    pub fn set_storage_full(&mut self, now: Nanos, full: bool) {
        if self.storage_full == full {
            return;
        }
        self.storage_full = full;
        if full && !matches!(self.role, Role::Follower) {
            self.stats.storage_full_step_downs += 1;
            let term = self.term;
            self.become_follower(now, term, None);
        }
        self.finish_step(now);
    }

    /// True while the node's storage cannot write (see [`Replica::set_storage_full`]).
    pub fn storage_full(&self) -> bool {
        self.storage_full
    }

    /// The driver tells the replica the wall clock (unix ms) at `now`: the log time a
    /// leader stamps for key expiry (`protocol::clock`).
    pub fn set_wall_clock(&mut self, now: Nanos, unix_ms: u64) {
        self.clock.set_wall_clock(now, unix_ms);
    }

    /// Memory of the applied entries held, estimated (`batch_memory_bytes`).
    pub fn applied_log_bytes(&self) -> u64 {
        self.applied_log_bytes
    }

    fn dispatch(&mut self, now: Nanos, from: ReplicaId, msg: Msg) {
        self.note_acked(from, &msg);
        match msg {
            Msg::PreVote {
                term,
                last_index,
                last_term,
            } => self.on_pre_vote(now, from, term, last_index, last_term),
            Msg::PreVoteReply { term, granted } => self.on_pre_vote_reply(now, from, term, granted),
            Msg::RequestVote {
                term,
                last_index,
                last_term,
            } => self.on_request_vote(now, from, term, last_index, last_term),
            Msg::VoteReply { term, granted } => self.on_vote_reply(now, from, term, granted),
            Msg::Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.on_append(now, from, term, (prev_index, prev_term), entries, commit),
            Msg::AppendReply { term, outcome } => self.on_append_reply(now, from, term, outcome),
            Msg::InstallSnapshot {
                term,
                last_term,
                chunk,
            } => self.on_snapshot_chunk(now, from, term, last_term, *chunk),
            Msg::InstallSnapshotReply { term, last_index } => {
                self.on_install_snapshot_reply(now, from, term, last_index)
            }
            Msg::ReadProbe { term, seq } => self.on_read_probe(now, from, term, seq),
            Msg::ReadProbeAck { term, seq } => self.on_read_probe_ack(now, from, term, seq),
            Msg::LeaseRequest { term, seq } => self.on_lease_request(now, from, term, seq),
            Msg::LeaseGrant { term, seq } => self.on_lease_grant(from, term, seq),
            Msg::SnapshotChunkRequest {
                term,
                last_included,
                offset,
            } => self.on_snapshot_chunk_request(now, from, term, last_included, offset),
            Msg::RecoveryQuery { last_index } => self.on_recovery_query(now, from, last_index),
            Msg::RecoveryReport {
                term,
                recovering,
                leading,
            } => self.on_recovery_report(now, from, term, recovering, leading),
            Msg::RestartQuery => self.on_restart_query(from),
            Msg::RestartReport {
                term,
                voted_in,
                stored,
            } => self.on_restart_report(now, from, (term, voted_in, stored)),
        }
    }

    /// Runs messages a replica sent itself, then checks invariants.
    fn finish_step(&mut self, now: Nanos) {
        self.check_recovered(now);
        while let Some(msg) = self.loopback.pop_front() {
            self.dispatch(now, self.id, msg);
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Asserts what must hold between any two steps; the simulator calls it after each.
    pub fn check_invariants(&self) {
        assert!(self.applied <= self.commit);
        assert!(self.commit <= self.log.last_index());
        assert!(self.log.base() <= self.applied);
        assert!(self.durable_id < self.next_persist_id);
        assert!(self.log.last_term() <= self.term);
        if let Role::Leader(l) = &self.role {
            assert_eq!(self.voted_for, Some(self.id), "a leader voted for itself");
            assert_eq!(self.leader, Some(self.id));
            assert!(l.queue.requests.len() <= self.cfg.proposal_queue_max);
            assert!(l.proposed.len() as u64 <= self.log.last_index() - self.commit);
            for p in &l.progress {
                assert!(p.matched <= self.log.last_index());
                assert!(p.next >= 1 && p.next <= self.log.last_index() + 1);
            }
        }
        if let Role::Candidate { .. } = &self.role {
            assert_eq!(
                self.voted_for,
                Some(self.id),
                "a candidate voted for itself"
            );
        }
        assert!(
            self.loopback.is_empty(),
            "messages to self run within the step"
        );
        assert!(!self.gathering, "a pipeline is taken within one step");
        let held_for_peers = self.held.iter().filter(|(_, to, _)| *to != self.id).count();
        assert_eq!(held_for_peers, self.held_for_peers);
        assert!(held_for_peers <= self.held_max());
    }

    /// Answers to peers `held` for durability, at most: every peer's appends in flight
    /// (`pipeline_depth`), each answered again per retransmission, and a vote. Beyond it
    /// an answer is dropped (`Stats::held_dropped`), as the network may drop it.
    fn held_max(&self) -> usize {
        (self.cfg.pipeline_depth * HELD_PER_APPEND + 1) * self.cfg.replicas
    }

    /// Sends `msg`, or runs it here when addressed to self.
    fn send(&mut self, to: ReplicaId, msg: Msg) {
        if to == self.id {
            self.loopback.push_back(msg);
        } else {
            self.outbox.push(Action::Send {
                to,
                msg: Message::Raft(msg),
            });
        }
    }

    /// Whether an installed snapshot that answers must wait for is not saved yet. A
    /// recovering replica answers without waiting: no snapshot is saved while it recovers,
    /// and if it crashes before one is, it comes back recovering (its storage still
    /// reports the loss), voting for nobody until it holds again what it acknowledged.
    fn install_unsaved(&self) -> bool {
        self.unsaved_install.is_some() && self.recovering.is_none()
    }

    /// Sends `msg` once every record asked for so far is durable.
    fn send_when_durable(&mut self, to: ReplicaId, msg: Msg) {
        let pid = self.next_persist_id - 1;
        let durable = pid <= self.durable_id && !self.install_unsaved();
        if self.bugs.reply_before_persist || durable {
            self.send(to, msg);
        } else if to != self.id && self.held_for_peers >= self.held_max() {
            self.stats.held_dropped += 1;
        } else {
            self.held_for_peers += usize::from(to != self.id);
            self.held.push_back((pid, to, msg));
        }
    }

    fn broadcast(&mut self, msg: &Msg) {
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id {
                self.send(to, msg.clone());
            }
        }
    }

    /// Broadcasts `msg` once every record asked for so far is durable.
    fn broadcast_when_durable(&mut self, msg: &Msg) {
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id {
                self.send_when_durable(to, msg.clone());
            }
        }
    }

    fn persist(&mut self, record: RaftRecord) -> PersistId {
        self.persist_as(record, SyncStart::Now)
    }

    /// Persists `record`, its sync started as `sync` says (`Action::Persist`).
    fn persist_as(&mut self, record: RaftRecord, sync: SyncStart) -> PersistId {
        let id = self.next_persist_id;
        self.next_persist_id += 1;
        self.outbox.push(Action::Persist {
            id,
            record: Record::Raft(record),
            sync,
        });
        id
    }

    fn reply(&mut self, token: Token, reply: ClientReply) {
        self.outbox.push(Action::Reply { token, reply });
    }

    fn reset_election_deadline(&mut self, now: Nanos) {
        let base = self.election_timeout();
        let jitter = self.rng.random_range(0..=base);
        self.election_deadline = Some(now + base + jitter);
    }

    fn election_timeout(&self) -> Nanos {
        self.cfg.election_timeout_ms * NANOS_PER_MS
    }

    fn heartbeat_interval(&self) -> Nanos {
        self.cfg.heartbeat_interval_ms * NANOS_PER_MS
    }

    fn batch_delay(&self) -> Nanos {
        self.cfg.batch_delay_us * NANOS_PER_US
    }
}

impl Core for Replica {
    type Snapshot = Snapshot;
    fn drain_into(&mut self, out: &mut Vec<Action>) {
        Replica::drain_into(self, out);
    }
    fn is_leading(&self) -> bool {
        self.leading_term().is_some()
    }
    fn leader_hint(&self) -> Option<ReplicaId> {
        self.leader
    }
    fn applied_index(&self) -> Slot {
        self.applied
    }
    fn recovering(&self) -> bool {
        self.recovering.is_some()
    }
    fn snapshot(&self) -> Snapshot {
        Replica::snapshot(self)
    }
    fn snapshot_begin(&mut self) -> Snapshot {
        let kv = self.kv.export_begin();
        self.snapshot_with(kv)
    }
    fn snapshot_slot(snapshot: &Snapshot) -> Slot {
        snapshot.last_included
    }
    fn compact(&mut self, upto: Slot) {
        Replica::compact(self, upto);
    }
    fn read_now(&mut self, now: Nanos, cmd: &super::kv::Command) -> Option<super::kv::Reply> {
        self.lease_read_now(now, cmd)
    }
}

#[cfg(test)]
mod tests;
