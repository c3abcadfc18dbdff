//! Multi-Paxos with a stable leader, pipelined and batched.
//!
//! [`Replica`] is a pure state machine: the driver feeds it client requests, peer messages,
//! ticks and storage completions, each with the current time, and takes [`Action`]s from its
//! outbox. Files by concern: `acceptor.rs` (phase 1b/2b), `leader.rs` (elections, phase 1a/2a,
//! batching), `learner.rs` (commit, catch-up, apply), `recovery.rs` (rebuild from the log; a learner
//! after storage lost records).
//!
//! Durability contract: a message that reveals a promise or an accept (Promise, Accepted,
//! and the leader's own vote) is held until the driver reports the record durable.

mod acceptor;
mod clock;
mod clocks;
mod early;
pub use clocks::ClockReport;
mod leader;
mod learner;
mod reads;
mod recovery;
mod snapshot;
mod stale;

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use super::consensus::Bugs;
use super::kv::{Kv, Request};
use super::message::{Batch, Message, Record};
use super::outbox::{Action, ClientReply, SyncStart};
use super::types::{Ballot, NANOS_PER_MS, NANOS_PER_US, Nanos, PersistId, ReplicaId, Slot, Token};
use crate::config::ProtocolConfig;

/// Answers to one accept a follower may hold for durability: the first and as many
/// retransmissions (see `Replica::held_max`).
const HELD_PER_SLOT: usize = 8;

/// An upper bound of the WAL record (`Accept` or `Learned`) that carries `batch`.
fn batch_record_bytes_max(batch: &Batch) -> usize {
    let requests: usize = batch.iter().map(Request::encoded_bytes_max).sum();
    requests + crate::limits::RECORD_OVERHEAD_BYTES
}

/// Whether `batch` fits one WAL record. No replica can have made a larger batch durable
/// (its WAL refuses the record), so a larger batch was never accepted by anyone and never
/// chosen: dropping it wherever it arrives is safe, and persisting it would fail.
fn batch_fits_record(batch: &Batch) -> bool {
    batch_record_bytes_max(batch) <= crate::limits::WAL_RECORD_BYTES_MAX
}

/// A slot's accepted value as this replica knows it.
#[derive(Clone, Debug)]
struct LogEntry {
    /// The ballot it was accepted (or proposed) at.
    ballot: Ballot,
    batch: Batch,
    /// Known chosen: the value is final.
    chosen: bool,
    /// The record that made it durable here.
    persist_id: PersistId,
}

/// The role of a replica in its group.
#[derive(Clone, Debug)]
enum Role {
    Follower,
    Candidate(Candidacy),
    Leader(Leadership),
}

#[derive(Clone, Debug)]
struct Candidacy {
    ballot: Ballot,
    from_slot: Slot,
    promised_mask: u8,
    /// Per slot, the value accepted at the highest ballot among the promises.
    found: BTreeMap<Slot, (Ballot, Batch)>,
    /// The highest `chosen_through` among the promises, and who reported it.
    known_chosen: Slot,
    known_chosen_at: Option<ReplicaId>,
}

#[derive(Clone, Debug)]
struct Leadership {
    ballot: Ballot,
    /// The next slot to propose.
    next_slot: Slot,
    /// Slots proposed and not yet chosen: who voted, and when the accept was last sent.
    in_flight: BTreeMap<Slot, InFlight>,
    /// Client requests waiting for a slot.
    queue: crate::protocol::waiting::Queue,
    last_heartbeat: Nanos,
    /// The slot of the newest clock entry that named keys to expire.
    expiry_slot: Option<Slot>,
    /// The record of the newest accept this leader proposed: until it is durable, only
    /// full batches leave (see `try_propose`).
    last_accept: PersistId,
    /// The slot whose accept this leader wrote lazily (`lazy_leader_sync`), with its
    /// record, and whether the wait for its last follower vote started and ran out.
    lazy: Option<LazySlot>,
}

/// A slot whose own accept the leader wrote without a sync (see `leader.rs`,
/// `propose_at`).
#[derive(Clone, Copy, Debug)]
struct LazySlot {
    slot: Slot,
    record: PersistId,
    /// When the wait for its last follower vote ends, once it started.
    wait_until: Option<Nanos>,
    /// Its wait ran out: the driver syncs the leader's record (`lazy_sync_due`).
    forced: bool,
}

#[derive(Clone, Debug)]
struct InFlight {
    votes_mask: u8,
    /// When it was first proposed.
    proposed_at: Nanos,
    sent_at: Nanos,
    /// Retransmissions so far: each one waits twice as long as the one before (see
    /// `leader_tick`), so a large batch still crossing the link and being logged is not
    /// sent again and again.
    retransmits: u32,
    /// Quorum leases: holders the voters reported, who must vote too…
    holders_mask: u8,
    /// …unless their leases surely ran out by then (our clock).
    holders_until: Nanos,
    /// Counted once in `lease_write_waits`.
    waited_for_holders: bool,
}

/// Counters, for INFO and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Elections this replica started.
    pub elections_started: u64,
    /// Times it became leader.
    pub became_leader: u64,
    /// Slots it proposed as leader.
    pub slots_proposed: u64,
    /// Commands it proposed as leader.
    pub commands_proposed: u64,
    /// Messages dropped as stale or unexpected.
    pub messages_ignored: u64,
    /// Accepts sent again because no quorum answered in time.
    pub accepts_retransmitted: u64,
    /// Catch-up requests sent.
    pub catchups_requested: u64,
    /// Client requests refused because the queue was full.
    pub requests_busy: u64,
    /// Snapshots installed from a peer (this replica lagged past its log).
    pub snapshots_installed: u64,
    /// Snapshots sent to lagging peers.
    pub snapshots_sent: u64,
    /// Reads answered from the local state machine under a lease or a quorum check.
    pub reads_local: u64,
    /// Reads answered after a quorum (digest or full) round.
    pub reads_quorum: u64,
    /// Reads a non-log mode sent through the log (no lease, or the wait ran out).
    pub reads_log: u64,
    /// Reads answered `NotLeader` so the node forwards them to the leader.
    pub reads_redirected: u64,
    /// Lease reads that waited for a pending write or the fence.
    pub lease_read_waits: u64,
    /// Slots whose commit waited for a lease holder beyond the quorum.
    pub lease_write_waits: u64,
    /// Slots committed only after a silent holder's lease ran out (the lease revoked).
    pub lease_revocations: u64,
    /// Prepares left unanswered because this replica granted another a leader lease.
    pub promises_deferred: u64,
    /// Digest or quorum reads whose reports disagreed.
    pub digest_mismatches: u64,
    /// Reads that fetched the entries from a fresher replica.
    pub read_fetches: u64,
    /// Stale entries this replica repaired, here or at peers, after a read.
    pub read_repairs: u64,
    /// Repairs from a reader that changed this replica's state machine.
    pub repairs_installed: u64,
    /// Snapshot chunks sent (a snapshot is sent in chunks the receiver asks for).
    pub snapshot_chunks_sent: u64,
    /// Snapshot transfers dropped before completion (stalled, leader changed, bad chunk).
    pub snapshot_transfers_abandoned: u64,
    /// Applied log entries dropped from memory by `log_retain_bytes` (not by a snapshot).
    pub log_slots_trimmed: u64,
    /// Prepares and accepts left unanswered while recovering records storage lost;
    /// Raft: pre-votes and votes held back by a lease granted to another replica.
    pub votes_withheld: u64,
    /// Client requests refused because their command exceeds `limits::COMMAND_BYTES_MAX`.
    pub requests_too_large: u64,
    /// Batches from peers (accepts, promises, catch-up) dropped because their record would
    /// exceed `limits::WAL_RECORD_BYTES_MAX` (sent by a leader that did not check).
    pub batches_too_large: u64,
    /// Times a leader gave up catching up on slots a promise said were chosen and ran
    /// phase 1 again (the replica that knew them may have lost them to storage damage).
    pub catchups_abandoned: u64,
    /// Answers to peers dropped because `held` was full (see `Replica::held_max`).
    pub held_dropped: u64,
    /// Slots a follower learned chosen from its own durable accept and the leader's vote,
    /// before the leader's commit index said so (`paxos/early.rs`).
    pub slots_learned_early: u64,
    /// Commands a follower forwarded and answered itself, having applied them before the
    /// leader's answer came (`paxos/early.rs`).
    pub forwards_answered_early: u64,
    /// Times it stopped leading or campaigning because its storage could not write.
    pub storage_full_step_downs: u64,
    /// Slots it proposed as leader and saw chosen.
    pub slots_chosen_led: u64,
    /// Their time from proposal to chosen (its own record durable and a quorum's
    /// acceptances back), summed (ns).
    pub commit_wait_ns: u64,
    /// How long each batch it proposed waited in its queue (since the oldest request
    /// arrived or the batch before left), summed (ns).
    pub queue_wait_ns: u64,
    /// Times a peer's clock rate was measured beyond the bound (lease reads stopped).
    pub clock_checks_failed: u64,
    /// Lease requests and grants ignored because of a clock not (yet) measured within
    /// the bound.
    pub leases_untrusted: u64,
    /// Times a restarted replica learned from a peer that it had acknowledged more than
    /// its storage holds (a data directory replaced by an older copy; `protocol/stale.rs`).
    pub stale_data_detected: u64,
    /// Slots it proposed as leader with its own accept written lazily (no sync of its
    /// own; `lazy_leader_sync`).
    pub slots_lazy: u64,
    /// Of those, times the second follower's vote did not come in time and it synced its
    /// own record to count its vote.
    pub lazy_syncs_forced: u64,
}

impl Stats {
    /// Adds `other`'s counts to these (sums over replicas or runs).
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            elections_started,
            became_leader,
            slots_proposed,
            commands_proposed,
            messages_ignored,
            accepts_retransmitted,
            catchups_requested,
            requests_busy,
            snapshots_installed,
            snapshots_sent,
            reads_local,
            reads_quorum,
            reads_log,
            reads_redirected,
            lease_read_waits,
            lease_write_waits,
            lease_revocations,
            promises_deferred,
            digest_mismatches,
            read_fetches,
            read_repairs,
            repairs_installed,
            snapshot_chunks_sent,
            snapshot_transfers_abandoned,
            log_slots_trimmed,
            votes_withheld,
            requests_too_large,
            batches_too_large,
            catchups_abandoned,
            held_dropped,
            slots_learned_early,
            forwards_answered_early,
            storage_full_step_downs,
            slots_chosen_led,
            commit_wait_ns,
            queue_wait_ns,
            clock_checks_failed,
            leases_untrusted,
            stale_data_detected,
            slots_lazy,
            lazy_syncs_forced,
        } = other;
        self.elections_started += elections_started;
        self.became_leader += became_leader;
        self.slots_proposed += slots_proposed;
        self.commands_proposed += commands_proposed;
        self.messages_ignored += messages_ignored;
        self.accepts_retransmitted += accepts_retransmitted;
        self.catchups_requested += catchups_requested;
        self.requests_busy += requests_busy;
        self.snapshots_installed += snapshots_installed;
        self.snapshots_sent += snapshots_sent;
        self.reads_local += reads_local;
        self.reads_quorum += reads_quorum;
        self.reads_log += reads_log;
        self.reads_redirected += reads_redirected;
        self.lease_read_waits += lease_read_waits;
        self.lease_write_waits += lease_write_waits;
        self.lease_revocations += lease_revocations;
        self.promises_deferred += promises_deferred;
        self.digest_mismatches += digest_mismatches;
        self.read_fetches += read_fetches;
        self.read_repairs += read_repairs;
        self.repairs_installed += repairs_installed;
        self.snapshot_chunks_sent += snapshot_chunks_sent;
        self.snapshot_transfers_abandoned += snapshot_transfers_abandoned;
        self.log_slots_trimmed += log_slots_trimmed;
        self.votes_withheld += votes_withheld;
        self.requests_too_large += requests_too_large;
        self.batches_too_large += batches_too_large;
        self.catchups_abandoned += catchups_abandoned;
        self.held_dropped += held_dropped;
        self.slots_learned_early += slots_learned_early;
        self.forwards_answered_early += forwards_answered_early;
        self.clock_checks_failed += clock_checks_failed;
        self.leases_untrusted += leases_untrusted;
        self.stale_data_detected += stale_data_detected;
        self.storage_full_step_downs += storage_full_step_downs;
        self.slots_chosen_led += slots_chosen_led;
        self.commit_wait_ns += commit_wait_ns;
        self.queue_wait_ns += queue_wait_ns;
        self.slots_lazy += slots_lazy;
        self.lazy_syncs_forced += lazy_syncs_forced;
    }
}

/// What one replica of one Paxos group knows and does. See the module doc.
pub struct Replica {
    cfg: ProtocolConfig,
    id: ReplicaId,
    bugs: Bugs,
    rng: ChaCha8Rng,

    /// Acceptor: the highest ballot promised.
    promised: Ballot,
    /// The highest round seen in any message, so a new candidacy outbids it.
    round_seen: u64,
    /// Acceptor and learner: values by slot.
    log: BTreeMap<Slot, LogEntry>,
    /// Every slot up to here is chosen and present in `log`.
    chosen_through: Slot,
    /// The highest commit index heard from anyone.
    commit_heard: Slot,
    /// Slots applied to `kv`.
    applied: Slot,
    /// The leader's time stamped into the log (see `set_wall_clock`).
    clock: crate::protocol::clock::LogClock,
    kv: Kv,

    role: Role,
    /// Who this replica believes leads.
    leader: Option<ReplicaId>,
    /// When a follower or candidate gives up on the current leader or election.
    election_deadline: Option<Nanos>,
    /// When the last catch-up request went out.
    catchup_sent_at: Option<Nanos>,
    /// A peer known to have the chosen slots this replica lacks.
    catchup_hint: Option<ReplicaId>,
    /// Catch-up requests sent since the commit index last moved.
    catchup_unanswered: u32,
    /// Slots up to here were compacted out of `log` (their effect is in `kv`).
    log_base: Slot,
    /// Memory of the applied entries in `log`, estimated (bounded by `log_retain_bytes`).
    applied_log_bytes: u64,
    /// Snapshots being sent to lagging peers and received from a peer.
    transfers: snapshot::Transfers,
    /// Client requests proposed here, waiting to be applied.
    waiting: crate::protocol::waiting::Waiting,
    /// Early learning (`early.rs`): this node's client session, requests of it this
    /// follower forwarded (answered here when applied first), leader votes that came
    /// before our own accept was durable, and (leader, leader-lease) keys of slots whose
    /// vote went to the followers.
    early: early::Early,

    next_persist_id: PersistId,
    durable_id: PersistId,
    /// Lazy leader sync is off until then: followers' votes came too late
    /// [`leader::LAZY_LATE_IN_A_ROW`] slots in a row (`leader.rs`).
    lazy_off_until: Nanos,
    /// Lazy slots in a row whose last follower vote came too late.
    lazy_late_in_a_row: u32,
    /// Messages held until a record is durable; those to peers at most `held_max`.
    held: VecDeque<(PersistId, ReplicaId, Message)>,
    /// Messages in `held` addressed to peers.
    held_for_peers: usize,
    /// Messages to self, processed before a step returns: empty between steps.
    loopback: VecDeque<Message>,
    /// Effects of the current step; the driver takes them after every step (`drain`).
    outbox: Vec<Action>,
    /// Leases, waiting reads and quorum reads.
    reads: reads::Reads,
    /// Keys with unapplied writes in the log, in the read modes that need them.
    pending: Option<crate::protocol::pending::PendingKeys>,
    /// Slots applied, for checkers: (slot, batch) in order. Only kept when enabled.
    applied_trace: Option<Vec<(Slot, Batch)>>,
    /// Set while recovering records storage lost: a learner until then (`recovery.rs`).
    recovering: Option<recovery::Recovering>,
    /// Set while `on_requests` takes several requests: a leader queues them and proposes
    /// full batches only, the rest once all are in (one slot for a pipeline, not one each).
    gathering: bool,
    /// Set while the node's storage cannot write (a full disk): no leading, no campaigning
    /// (see [`Replica::set_storage_full`]).
    storage_full: bool,
    /// Every peer's clock rate against ours (lease modes).
    clocks: crate::protocol::clock_check::ClockCheck,
    stats: Stats,
    /// What each peer showed it holds durably (`stale.rs`), by replica index.
    acked: Vec<stale::Acked>,
    /// Set from `recover` until enough peers told what they saw (`stale.rs`).
    restart_check: Option<crate::protocol::stale::RestartCheck>,
    /// What a peer saw this replica acknowledge that its storage lacks, if that happened.
    stale_finding: Option<String>,
}

impl Replica {
    /// A fresh replica with an empty log. `seed` drives its election jitter.
    pub fn new(cfg: ProtocolConfig, id: ReplicaId, seed: u64) -> Replica {
        assert!(cfg.validate().is_ok(), "config must be validated first");
        assert!(id.index() < cfg.replicas);
        let kv = Kv::new(cfg.client_window_max, cfg.clients_max);
        let cfg_read_mode = cfg.read_mode;
        let (cfg_drift_ppm, cfg_clock_window_ms) =
            (cfg.max_clock_drift_ppm, cfg.clock_check_window_ms);
        let cfg_replicas = cfg.replicas;
        Replica {
            cfg,
            id,
            bugs: Bugs::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            promised: Ballot::ZERO,
            round_seen: 0,
            log: BTreeMap::new(),
            chosen_through: 0,
            commit_heard: 0,
            applied: 0,
            kv,
            clock: crate::protocol::clock::LogClock::default(),
            role: Role::Follower,
            leader: None,
            election_deadline: None,
            catchup_sent_at: None,
            catchup_hint: None,
            catchup_unanswered: 0,
            log_base: 0,
            applied_log_bytes: 0,
            transfers: snapshot::Transfers::default(),
            waiting: HashMap::default(),
            early: early::Early::default(),
            next_persist_id: 1,
            durable_id: 0,
            lazy_off_until: 0,
            lazy_late_in_a_row: 0,
            held: VecDeque::new(),
            held_for_peers: 0,
            loopback: VecDeque::new(),
            outbox: Vec::new(),
            reads: reads::Reads::default(),
            pending: cfg_read_mode
                .reads_away_from_leader()
                .then(Default::default),
            applied_trace: None,
            recovering: None,
            gathering: false,
            storage_full: false,
            clocks: crate::protocol::clock_check::ClockCheck::new(
                cfg_drift_ppm,
                cfg_clock_window_ms * crate::protocol::types::NANOS_PER_MS,
            ),
            stats: Stats::default(),
            acked: vec![stale::Acked::default(); cfg_replicas],
            restart_check: None,
            stale_finding: None,
        }
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

    /// Keeps a trace of every applied slot, for the simulator's prefix check.
    pub fn enable_applied_trace(&mut self) {
        self.applied_trace = Some(Vec::new());
    }

    /// The applied slots so far, if tracing is on.
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

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The leader's ballot if this replica leads.
    pub fn leading(&self) -> Option<Ballot> {
        match &self.role {
            Role::Leader(l) => Some(l.ballot),
            _ => None,
        }
    }

    /// Who this replica believes leads the group.
    pub fn leader_hint(&self) -> Option<ReplicaId> {
        self.leader
    }

    /// Every slot up to here is chosen and known here.
    pub fn commit_index(&self) -> Slot {
        self.chosen_through
    }

    /// Every slot up to here is applied to the state machine.
    pub fn applied_index(&self) -> Slot {
        self.applied
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Takes the actions produced so far.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.outbox.drain(..)
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
        self.on_requests(now, std::iter::once((token, req)));
    }

    /// Several client requests arrive at once (a pipeline): as many `on_request`s in one
    /// step, except that a leader puts them in as few slots as its batch limits allow.
    pub fn on_requests(&mut self, now: Nanos, reqs: impl IntoIterator<Item = (Token, Request)>) {
        self.wake(now);
        self.gathering = true;
        for (token, req) in reqs {
            if self.ignore_too_large(token, &req) {
                continue;
            }
            if !self.cfg.read_mode.reads_through_log() && req.cmd.is_read_only() {
                if let Some(token) = self.redirect_read_while_recovering(token) {
                    self.on_read(now, token, req);
                }
            } else {
                self.on_client_request(now, token, req);
            }
        }
        self.gathering = false;
        self.try_propose(now);
        self.finish_step(now);
    }

    /// A message from a peer arrives.
    pub fn on_message(&mut self, now: Nanos, from: ReplicaId, msg: Message) {
        if from.index() >= self.cfg.replicas || from == self.id {
            self.stats.messages_ignored += 1;
            return;
        }
        self.wake(now);
        let checking = self.restart_check.is_some();
        match msg {
            Message::RestartQuery | Message::RestartReport { .. } => self.dispatch(now, from, msg),
            // Its state must stay what storage held until the check ends (`stale.rs`).
            _ if checking => self.stats.messages_ignored += 1,
            msg => {
                if let Some(msg) = self.filter_while_recovering(now, msg) {
                    self.dispatch(now, from, msg);
                }
            }
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
        if self.election_deadline.is_none() && self.leading().is_none() {
            self.reset_election_deadline(now);
        }
        match &self.role {
            Role::Leader(_) => self.leader_tick(now),
            Role::Follower | Role::Candidate(_) => {
                if self.election_deadline.is_some_and(|d| now >= d) {
                    if self.recovering.is_some() || self.storage_full {
                        // A learner never campaigns: its promise may be among the lost. A
                        // replica that cannot write could not keep its promise durable.
                        self.reset_election_deadline(now);
                    } else {
                        self.start_election(now);
                    }
                }
            }
        }
        self.maybe_request_catchup(now);
        self.recovery_tick(now);
        self.reads_tick(now);
        self.finish_step(now);
    }

    /// The node's storage stopped taking writes (`full`: its disk is full) or takes them
    /// again. A replica that cannot persist can neither vote nor lead: a leader or
    /// candidate steps down at once (its waiting clients are told no leader is known and
    /// retry, reaching whichever replica the others elect), and it starts no election until
    /// storage works again. It keeps learning chosen slots and answering what needs no new
    /// record; its records in flight become durable when space is back.
    pub fn set_storage_full(&mut self, now: Nanos, full: bool) {
        if self.storage_full == full {
            return;
        }
        self.storage_full = full;
        if full {
            self.stats.storage_full_step_downs += u64::from(!matches!(self.role, Role::Follower));
            self.stand_down(now, None);
        }
        self.finish_step(now);
    }

    /// True while the node's storage cannot write (see [`Replica::set_storage_full`]).
    pub fn storage_full(&self) -> bool {
        self.storage_full
    }

    /// Refuses a request whose command no WAL record could hold (front ends refuse those
    /// before; a forward from an older peer may not have): proposing it would make every
    /// replica fail to log the slot.
    fn ignore_too_large(&mut self, token: Token, req: &Request) -> bool {
        let bytes = req.cmd.encoded_bytes_max();
        if bytes <= crate::limits::COMMAND_BYTES_MAX {
            return false;
        }
        self.stats.requests_too_large += 1;
        self.reply(
            token,
            ClientReply::TooLarge {
                bytes,
                bytes_max: crate::limits::COMMAND_BYTES_MAX,
            },
        );
        true
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
        while self.held.front().is_some_and(|(pid, _, _)| *pid <= id) {
            let (_, to, msg) = self.held.pop_front().expect("front checked");
            self.held_for_peers -= usize::from(to != self.id);
            self.send(to, msg);
        }
        self.learn_held_votes(now);
        // A partial batch may have waited for our last accept's sync (see `try_propose`).
        if let Role::Leader(l) = &self.role
            && (before + 1..=id).contains(&l.last_accept)
            && !l.queue.requests.is_empty()
        {
            self.try_propose(now);
        }
        self.finish_step(now);
    }

    fn dispatch(&mut self, now: Nanos, from: ReplicaId, msg: Message) {
        self.note_acked(from, &msg);
        match msg {
            Message::Prepare { ballot, from_slot } => self.on_prepare(now, from, ballot, from_slot),
            Message::Promise {
                ballot,
                chosen_through,
                entries,
            } => self.on_promise(now, from, ballot, chosen_through, entries),
            Message::InstallSnapshot { chunk } => self.on_snapshot_chunk(now, from, *chunk),
            Message::Reject { promised } => self.on_reject(now, promised),
            Message::Accept {
                ballot,
                slot,
                batch,
                commit,
            } => self.on_accept(now, from, ballot, slot, batch, commit),
            Message::Accepted {
                ballot,
                slot,
                holders,
                lease_left,
            } => self.on_accepted(now, from, ballot, slot, holders, lease_left),
            Message::Commit { ballot, commit } => self.on_commit(now, from, ballot, commit),
            Message::CatchUpRequest { from_slot } => self.on_catchup_request(now, from, from_slot),
            Message::CatchUp { entries, commit } => self.on_catchup(now, entries, commit),
            Message::LeaseRequest { seq, ballot } => self.on_lease_request(now, from, seq, ballot),
            Message::LeaseGrant { seq, fence } => self.on_lease_grant(from, seq, fence),
            Message::ReadQuery { id, keys, full } => self.on_read_query(from, id, keys, full),
            Message::ReadReport { id, view } => self.on_read_report(from, id, view),
            Message::ReadRepair { id, entries } => self.on_read_repair(from, id, entries),
            Message::ReadRepaired { id } => self.on_read_repaired(from, id),
            Message::SnapshotChunkRequest {
                last_included,
                offset,
            } => self.on_snapshot_chunk_request(now, from, last_included, offset),
            Message::RecoveryQuery => self.on_recovery_query(from),
            Message::RecoveryReport {
                promised,
                recovering,
                leading,
            } => self.on_recovery_report(from, promised, recovering, leading),
            // Another protocol's message: a misconfigured peer.
            Message::ClockProbe { sent } => self.send(from, Message::ClockEcho { sent, at: now }),
            Message::ClockEcho { sent, at } => self.on_clock_echo(now, from, sent, at),
            Message::Raft(_) => self.stats.messages_ignored += 1,
            Message::RestartQuery => self.on_restart_query(from),
            Message::RestartReport { promised, accepted } => {
                self.on_restart_report(now, from, promised, accepted)
            }
        }
    }

    /// Runs messages a replica sent itself, then checks invariants.
    fn finish_step(&mut self, now: Nanos) {
        self.check_recovered(now);
        loop {
            while let Some(msg) = self.loopback.pop_front() {
                self.dispatch(now, self.id, msg);
            }
            // Applying may have made waiting reads answerable; answering may loop back.
            self.check_waiting_reads(now, false);
            if self.loopback.is_empty() {
                break;
            }
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Asserts what must hold between any two steps; the simulator calls it after each.
    pub fn check_invariants(&self) {
        assert!(self.applied <= self.chosen_through);
        assert!(self.durable_id < self.next_persist_id);
        assert!(self.log_base <= self.applied);
        if self.chosen_through > self.log_base {
            let e = self
                .log
                .get(&self.chosen_through)
                .expect("chosen slot in log");
            assert!(e.chosen);
        }
        assert!(self.log.keys().next().is_none_or(|s| *s > self.log_base));
        if let Role::Leader(l) = &self.role {
            assert_eq!(
                l.ballot, self.promised,
                "a leader has promised only its own ballot"
            );
            assert_eq!(l.ballot.node, self.id);
            assert!(l.next_slot > self.chosen_through);
            assert!(l.queue.requests.len() <= self.cfg.proposal_queue_max);
            for slot in l.in_flight.keys() {
                assert!(*slot < l.next_slot);
            }
        }
        if let Role::Candidate(c) = &self.role {
            assert_eq!(c.ballot.node, self.id);
        }
        if self.recovering.is_some() {
            assert!(
                matches!(self.role, Role::Follower),
                "a recovering replica neither campaigns nor leads"
            );
        }
        assert!(self.promised.round <= self.round_seen);
        assert!(
            self.loopback.is_empty(),
            "messages to self run within the step"
        );
        let held_for_peers = self.held.iter().filter(|(_, to, _)| *to != self.id).count();
        assert_eq!(held_for_peers, self.held_for_peers);
        assert!(held_for_peers <= self.held_max());
    }

    /// Answers to peers `held` for durability, at most: every peer's accepts in flight
    /// (`pipeline_depth`), each answered again per retransmission ([`HELD_PER_SLOT`]
    /// copies), and its prepare. Beyond it an answer is dropped (`Stats::held_dropped`), as
    /// the network may drop it: the leader resends its accepts, a candidate its prepare. A
    /// replica's own vote is never dropped (a leader proposes at most `pipeline_depth`
    /// slots, one vote each).
    fn held_max(&self) -> usize {
        (self.cfg.pipeline_depth * HELD_PER_SLOT + 1) * self.cfg.replicas
    }

    /// Sends `msg`, or runs it here when addressed to self.
    fn send(&mut self, to: ReplicaId, msg: Message) {
        if to == self.id {
            self.loopback.push_back(msg);
        } else {
            self.outbox.push(Action::Send { to, msg });
        }
    }

    /// Sends `msg` once every record asked for so far is durable.
    fn send_when_durable(&mut self, to: ReplicaId, msg: Message) {
        self.send_after(self.next_persist_id - 1, to, msg);
    }

    /// Sends `msg` once record `pid` is durable.
    fn send_after(&mut self, pid: PersistId, to: ReplicaId, msg: Message) {
        if self.bugs.reply_before_persist || pid <= self.durable_id {
            self.send(to, msg);
        } else if to != self.id && self.held_for_peers >= self.held_max() {
            self.stats.held_dropped += 1;
        } else {
            self.held_for_peers += usize::from(to != self.id);
            // `held` is ordered by persist id: a later id only delays the message.
            let last = self.next_persist_id - 1;
            self.held.push_back((last.max(pid), to, msg));
        }
    }

    fn broadcast(&mut self, msg: &Message) {
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id {
                self.outbox.push(Action::Send {
                    to,
                    msg: msg.clone(),
                });
            }
        }
    }

    fn persist(&mut self, record: Record) -> PersistId {
        self.persist_as(record, SyncStart::Now)
    }

    /// Persists `record`, its sync started as `sync` says (`Action::Persist`).
    fn persist_as(&mut self, record: Record, sync: SyncStart) -> PersistId {
        let id = self.next_persist_id;
        self.next_persist_id += 1;
        self.outbox.push(Action::Persist { id, record, sync });
        id
    }

    /// Puts a value into the log at `slot`; the read modes that track unapplied writes
    /// note its keys here, so no path into the log can miss them.
    fn insert_entry(&mut self, slot: Slot, entry: LogEntry) {
        self.note_pending(slot, &entry.batch);
        self.log.insert(slot, entry);
    }

    fn reply(&mut self, token: Token, reply: ClientReply) {
        self.outbox.push(Action::Reply { token, reply });
    }

    fn observe_ballot(&mut self, ballot: Ballot) {
        self.round_seen = self.round_seen.max(ballot.round);
    }

    fn reset_election_deadline(&mut self, now: Nanos) {
        let base = self.cfg.election_timeout_ms * NANOS_PER_MS;
        let jitter = self.rng.random_range(0..=base);
        self.election_deadline = Some(now + base + jitter);
    }

    fn heartbeat_interval(&self) -> Nanos {
        self.cfg.heartbeat_interval_ms * NANOS_PER_MS
    }

    fn batch_delay(&self) -> Nanos {
        self.cfg.batch_delay_us * NANOS_PER_US
    }
}

#[cfg(test)]
mod tests;
