//! The one interface the runtime and the simulator drive, whatever the protocol.
//!
//! Every protocol core is a sans-IO state machine with the same inputs (a client request,
//! a peer message, a tick, a storage completion, each with `now`) and the same outputs
//! (`outbox::Action`s: send, persist (maybe lazily), check a lazy sync, reply, save a
//! snapshot). [`Core`] is what the shared
//! driver code (`outbox::Outbox`, `outbox::SnapshotSchedule`, `client::LeaderView`) needs
//! of a core; [`Consensus`] is the replica a driver holds, one variant per protocol.

use super::kv::{Command, Kv, Reply, Request};
use super::message::{Batch, Message, Record, Snapshot};
use super::outbox::Action;
use super::paxos::{self, Stats};
use super::raft;
use super::transfer::{InstallBuild, InstallBuilt, SnapshotOut, TransferBuild};
use super::types::{Ballot, ClientId, Nanos, PersistId, ReplicaId, Slot, Token};
use crate::config::{Protocol, ProtocolConfig};
use serde::{Deserialize, Serialize};

/// Items a growing map moves to its new table per tick (`Kv::grow_step`): about 50 µs
/// of the shard's time (`cargo bench --bench kv_memory -- grow`), every 5 ms while a
/// growth runs (the node's busy tick, which a shard with no requests keeps while its map
/// grows), so a million-item growth ends in ~2.5 s if no write moves any.
pub const GROW_TICK_ITEMS: usize = 2048;

/// Deliberate protocol bugs, for proving that the simulator's checkers catch them.
/// Never set outside tests and the simulator's hidden `--bug` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Answer a peer (Paxos: Promise/Accepted; Raft: a vote or an append) and count the
    /// leader's own vote before the record that justifies it is durable.
    pub reply_before_persist: bool,
    /// Paxos: a new leader ignores values reported in phase 1 and fills the slots with
    /// no-ops.
    pub skip_phase1_recovery: bool,
    /// Paxos: a replica whose storage lost synced records votes at once, as if they had
    /// never been written (`Replica::recover`'s `forgot_records` ignored): what recovery
    /// did when it truncated the log at mid-log corruption like at a torn tail.
    pub truncate_at_corruption: bool,
    /// Raft: the leader commits an entry of an earlier term once a majority stores it
    /// (the paper's Figure 8), not only entries of its own term.
    pub commit_older_term: bool,
    /// Raft: a replica grants its vote without checking that the candidate's log is at
    /// least as up to date as its own.
    pub vote_without_log_check: bool,
    /// Lease modes: serve, grant and count leases whatever the clock-rate check
    /// measured (`protocol::clock_check`), as if every clock kept within its bound.
    pub trust_clocks: bool,
    /// Paxos lease reads: a replica hides a key whose deadline its own clock has passed,
    /// instead of waiting for the log's entry that removes it (Redis replicas' lazy expiry).
    pub expire_local_clock: bool,
    /// Raft leader lease: a replica votes, pre-votes and campaigns while a lease it
    /// granted to another replica may still run (and right after a restart, when it
    /// forgot what it granted).
    pub vote_inside_lease: bool,
    /// Both protocols: a restarted replica ignores what its peers report it acknowledged
    /// (`protocol/stale.rs`), so a data directory replaced by an older copy votes at once.
    pub ignore_stale_data: bool,
    /// Paxos early learning, leader lease: the leader serves lease reads of keys whose
    /// slot it sent its vote for before it applied them (a follower may have acknowledged
    /// the write already).
    pub early_lease_unguarded: bool,
    /// Paxos early learning: a replica counts its own vote (a deposed leader's, released
    /// by a sync after it stepped down) as the leader's, and learns a slot from one vote.
    pub early_own_vote: bool,
    /// Paxos lazy leader sync: the leader counts its own vote of a slot whose accept it
    /// wrote lazily at once, before the record is durable.
    pub lazy_vote_counted: bool,
    /// The state machine applies `LINSERT … BEFORE` as `AFTER` (the list checker's test).
    pub insert_after: bool,
    /// The state machine's `LMOVE` between two keys pushes at the other end of the
    /// destination than asked (the list checker's test of two-key moves).
    pub lmove_wrong_end: bool,
}

/// What the shared driver code needs of a protocol core.
pub trait Core {
    /// The state a snapshot saves: everything the records written so far said.
    type Snapshot;
    /// Takes the actions produced so far into `out`, keeping both allocations.
    fn drain_into(&mut self, out: &mut Vec<Action>);
    /// Whether this replica leads its group now.
    fn is_leading(&self) -> bool;
    /// Who this replica believes leads the group.
    fn leader_hint(&self) -> Option<ReplicaId>;
    /// Every entry up to here is applied to the state machine.
    fn applied_index(&self) -> Slot;
    /// True while this replica recovers records its storage lost (no snapshot then).
    fn recovering(&self) -> bool;
    /// The state at the applied index, to be saved.
    fn snapshot(&self) -> Self::Snapshot;
    /// [`Core::snapshot`], with the state machine's items frozen but not yet shared (see
    /// `Kv::export_begin`): [`Consensus::snapshot_step`] shares them a part at a time while
    /// the replica runs on, [`Consensus::snapshot_end`] puts them in. The snapshot holds
    /// the state at this call whatever the replica applies meanwhile.
    fn snapshot_begin(&mut self) -> Self::Snapshot;
    /// The applied index a snapshot holds.
    fn snapshot_slot(snapshot: &Self::Snapshot) -> Slot;
    /// Forgets log entries up to `upto` (at most the applied index).
    fn compact(&mut self, upto: Slot);
    /// A read this replica can answer at once, without a step (a lease read it may serve
    /// now); `None`: submit it. Answering changes nothing the protocol relies on.
    fn read_now(&mut self, now: Nanos, cmd: &Command) -> Option<Reply>;
}

impl Core for paxos::Replica {
    type Snapshot = Snapshot;
    fn drain_into(&mut self, out: &mut Vec<Action>) {
        paxos::Replica::drain_into(self, out);
    }
    fn is_leading(&self) -> bool {
        self.leading().is_some()
    }
    fn leader_hint(&self) -> Option<ReplicaId> {
        paxos::Replica::leader_hint(self)
    }
    fn applied_index(&self) -> Slot {
        paxos::Replica::applied_index(self)
    }
    fn recovering(&self) -> bool {
        paxos::Replica::recovering(self)
    }
    fn snapshot(&self) -> Snapshot {
        paxos::Replica::snapshot(self)
    }
    fn snapshot_begin(&mut self) -> Snapshot {
        let kv = self.kv_mut().export_begin();
        self.snapshot_with(kv)
    }
    fn snapshot_slot(snapshot: &Snapshot) -> Slot {
        snapshot.last_included
    }
    fn compact(&mut self, upto: Slot) {
        paxos::Replica::compact(self, upto);
    }
    fn read_now(&mut self, now: Nanos, cmd: &Command) -> Option<Reply> {
        paxos::Replica::read_now(self, now, cmd)
    }
}

/// One replica of one group, running the protocol its config names.
pub enum Consensus {
    /// Multi-Paxos.
    Paxos(Box<paxos::Replica>),
    /// Raft.
    Raft(Box<raft::Replica>),
}

/// A snapshot of either protocol's replica (what a node's snapshot file holds; variants
/// are only ever appended).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsensusSnapshot {
    /// Multi-Paxos: state, promise and accepted tail.
    Paxos(Snapshot),
    /// Raft: state, term, vote and log tail.
    Raft(raft::Snapshot),
}

impl ConsensusSnapshot {
    /// The protocol whose replica it saves.
    pub fn protocol(&self) -> Protocol {
        match self {
            ConsensusSnapshot::Paxos(_) => Protocol::Multipaxos,
            ConsensusSnapshot::Raft(_) => Protocol::Raft,
        }
    }

    /// Keys in its state machine.
    pub fn keys(&self) -> usize {
        match self {
            ConsensusSnapshot::Paxos(s) => s.kv.entries.len(),
            ConsensusSnapshot::Raft(s) => s.kv.entries.len(),
        }
    }
}

/// The protocol whose replica writes `record`.
pub fn record_protocol(record: &Record) -> Protocol {
    match record {
        Record::Raft(_) => Protocol::Raft,
        _ => Protocol::Multipaxos,
    }
}

/// Runs `$body` with `$r` bound to the replica, whichever protocol it runs.
macro_rules! each {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            Consensus::Paxos($r) => $body,
            Consensus::Raft($r) => $body,
        }
    };
}

impl Consensus {
    /// A fresh replica of `cfg.protocol` with an empty log. `seed` drives its timeouts.
    pub fn new(cfg: ProtocolConfig, id: ReplicaId, seed: u64) -> Consensus {
        match cfg.protocol {
            Protocol::Multipaxos => Consensus::Paxos(Box::new(paxos::Replica::new(cfg, id, seed))),
            Protocol::Raft => Consensus::Raft(Box::new(raft::Replica::new(cfg, id, seed))),
        }
    }

    /// A replica restarted from its latest snapshot, if any, and the durable records
    /// written after it (see `paxos::Replica::recover`, `raft::Replica::recover`). A
    /// snapshot of the other protocol is ignored (a config error the caller reports).
    /// Unless it knows it lost records, it first checks with its peers that its storage
    /// holds what they saw it acknowledge (`protocol/stale.rs`).
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<ConsensusSnapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Consensus {
        match cfg.protocol {
            Protocol::Multipaxos => {
                let snap = match snapshot {
                    Some(ConsensusSnapshot::Paxos(s)) => Some(s),
                    _ => None,
                };
                let mut r = paxos::Replica::recover(cfg, id, seed, snap, records, forgot_records);
                r.start_restart_check();
                Consensus::Paxos(Box::new(r))
            }
            Protocol::Raft => {
                let snap = match snapshot {
                    Some(ConsensusSnapshot::Raft(s)) => Some(s),
                    _ => None,
                };
                let mut r = raft::Replica::recover(cfg, id, seed, snap, records, forgot_records);
                r.start_restart_check();
                Consensus::Raft(Box::new(r))
            }
        }
    }

    /// As `recover`, with the applied trace on from the start, so the slots recovery
    /// applies are in it (for the simulator's prefix check).
    pub fn recover_traced(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<ConsensusSnapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Consensus {
        match cfg.protocol {
            Protocol::Multipaxos => {
                let snap = match snapshot {
                    Some(ConsensusSnapshot::Paxos(s)) => Some(s),
                    _ => None,
                };
                let mut r =
                    paxos::Replica::recover_traced(cfg, id, seed, snap, records, forgot_records);
                r.start_restart_check();
                Consensus::Paxos(Box::new(r))
            }
            // Raft's recovery applies nothing (its commit index is not persisted).
            Protocol::Raft => {
                let mut r = Consensus::recover(cfg, id, seed, snapshot, records, forgot_records);
                r.enable_applied_trace();
                r
            }
        }
    }

    /// A client request arrives; its reply comes back with `token`.
    pub fn on_request(&mut self, now: Nanos, token: Token, req: Request) {
        self.begin_step();
        each!(self, r => r.on_request(now, token, req))
    }

    /// Several client requests arrive at once (a pipeline), in one step.
    pub fn on_requests(&mut self, now: Nanos, reqs: impl IntoIterator<Item = (Token, Request)>) {
        self.begin_step();
        each!(self, r => r.on_requests(now, reqs))
    }

    /// Names this node's client session (`ClientPath`'s), for early learning
    /// (`paxos/early.rs`; Raft learns only from its leader's commit index).
    pub fn set_session(&mut self, client: ClientId) {
        if let Consensus::Paxos(r) = self {
            r.set_session(client);
        }
    }

    /// This replica forwarded `req` to the leader as `id`: a follower that learns its
    /// slot chosen first answers `id` itself (`paxos/early.rs`). Changes nothing else.
    /// True if the leader need not answer it once logged (the forward's `answered_there`).
    pub fn expect_forwarded(&mut self, id: Token, req: &Request) -> bool {
        match self {
            Consensus::Paxos(r) => r.expect_forwarded(id, req),
            Consensus::Raft(_) => false,
        }
    }

    /// The timer of an [`Action::CheckLazySync`](super::outbox::Action::CheckLazySync)
    /// ran out: whether the lazy records should be synced now (a Multi-Paxos leader's slot
    /// still waits for the vote its own record would give). Not a step: it asks for
    /// nothing else.
    pub fn lazy_sync_due(&mut self, now: Nanos) -> bool {
        match self {
            Consensus::Paxos(r) => r.lazy_sync_due(now),
            Consensus::Raft(_) => false,
        }
    }

    /// Whether a Multi-Paxos leader's lazy slot still waits for its last follower vote
    /// (its `Action::CheckLazySync` timer still matters). Not a step.
    pub fn lazy_wait_running(&self) -> bool {
        match self {
            Consensus::Paxos(r) => r.lazy_wait_running(),
            Consensus::Raft(_) => false,
        }
    }

    /// A message from a peer arrives.
    pub fn on_message(&mut self, now: Nanos, from: ReplicaId, msg: Message) {
        self.begin_step();
        each!(self, r => r.on_message(now, from, msg))
    }

    /// Time passes. A growing map moves a part of its items ([`GROW_TICK_ITEMS`]), so
    /// a growth ends when writes stop too.
    pub fn on_tick(&mut self, now: Nanos) {
        self.begin_step();
        self.kv_mut().grow_step(GROW_TICK_ITEMS);
        each!(self, r => r.on_tick(now))
    }

    /// Records up to `id` are durable.
    pub fn on_persisted(&mut self, now: Nanos, id: PersistId) {
        self.begin_step();
        each!(self, r => r.on_persisted(now, id))
    }

    /// Asserts (where debug assertions are on) that the driver took every action of the
    /// last step ([`Core::drain_into`], through `outbox::Outbox::take`) before it hands the
    /// replica new input: a driver that left some behind would carry them out a step late,
    /// after effects that were asked for later (a reply before the record it waits for).
    fn begin_step(&self) {
        debug_assert!(
            each!(self, r => r.outbox_is_empty()),
            "a step began with the last step's actions still in the outbox: the driver \
             must take them (Outbox::take) after every step"
        );
    }

    /// Asserts what must hold between any two steps.
    pub fn check_invariants(&self) {
        each!(self, r => r.check_invariants())
    }

    /// Turns on deliberate bugs (tests and simulator only).
    pub fn set_bugs(&mut self, bugs: Bugs) {
        each!(self, r => r.set_bugs(bugs))
    }

    /// Keeps a trace of every applied entry, for the simulator's prefix check.
    pub fn enable_applied_trace(&mut self) {
        each!(self, r => r.enable_applied_trace())
    }

    /// The applied entries so far, if tracing is on.
    pub fn applied_trace(&self) -> Option<&[(Slot, Batch)]> {
        each!(self, r => r.applied_trace())
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        each!(self, r => r.id())
    }

    /// Whether lease reads may trust the clocks now (the `trusted` of
    /// [`clock_report`](Self::clock_report), without the rest of the report).
    pub fn clocks_ok(&self) -> bool {
        match self {
            Consensus::Paxos(r) => r.clocks_ok(),
            Consensus::Raft(r) => r.clocks_ok(),
        }
    }

    /// What the clock-rate check measured (outside the lease modes nothing is measured
    /// and nothing stops: trusted).
    pub fn clock_report(&self) -> super::paxos::ClockReport {
        each!(self, r => r.clock_report())
    }

    /// The state machine.
    pub fn kv(&self) -> &Kv {
        each!(self, r => r.kv())
    }

    /// The state machine, to repair (anti-entropy) or damage (simulator).
    pub fn kv_mut(&mut self) -> &mut Kv {
        each!(self, r => r.kv_mut())
    }

    /// Builds state transfers off the driver's executor from now on, both ways: the
    /// driver takes each [`TransferBuild`] for a lagging peer
    /// ([`Consensus::take_transfer_build`]), builds it (sorting and hashing the whole
    /// state) and hands it back ([`Consensus::on_transfer_built`]); and each
    /// [`InstallBuild`] received whole ([`Consensus::take_install_build`]), whose map and
    /// Merkle tree it builds and hands back ([`Consensus::on_install_built`]). Off, each
    /// is built in the step that needs it.
    pub fn set_offload_transfers(&mut self, on: bool) {
        each!(self, r => r.set_offload_transfers(on))
    }

    /// Whether a peer waits for a transfer that a snapshot's freeze held back: begin no
    /// snapshot meanwhile, so that its transfer can begin.
    pub fn transfer_wanted(&self, now: Nanos) -> bool {
        each!(self, r => r.transfer_wanted(now))
    }

    /// A state transfer to build, if a peer needs one (see
    /// [`Consensus::set_offload_transfers`]).
    pub fn take_transfer_build(&mut self) -> Option<TransferBuild> {
        each!(self, r => r.take_transfer_build())
    }

    /// Gives a [`TransferBuild::frozen`] build its entries, all shared now; false if the
    /// freeze was gone (another export ended it): the build is dropped, and the peers
    /// that waited for it ask again.
    pub fn transfer_export_end(&mut self, build: &mut TransferBuild) -> bool {
        match self.kv_mut().export_end() {
            Some(entries) => {
                build.set_entries(entries);
                true
            }
            None => {
                each!(self, r => r.on_transfer_abandoned());
                false
            }
        }
    }

    /// A transfer [`Consensus::take_transfer_build`] handed out, built: served to the
    /// peers that asked for it meanwhile.
    pub fn on_transfer_built(&mut self, now: Nanos, out: SnapshotOut) {
        each!(self, r => r.on_transfer_built(now, out))
    }

    /// A received state transfer to build before it is installed, if one arrived whole
    /// (see [`Consensus::set_offload_transfers`], which covers these too).
    pub fn take_install_build(&mut self) -> Option<InstallBuild> {
        each!(self, r => r.take_install_build())
    }

    /// A state [`Consensus::take_install_build`] handed out, built: installed, unless
    /// the log caught the replica up meanwhile.
    pub fn on_install_built(&mut self, now: Nanos, built: InstallBuilt) {
        self.begin_step();
        each!(self, r => r.on_install_built(now, built))
    }

    /// Shares up to `items` more of the state machine's items [`Core::snapshot_begin`]
    /// froze; true once all are.
    pub fn snapshot_step(&mut self, items: usize) -> bool {
        self.kv_mut().export_step(items)
    }

    /// Puts the frozen items, shared, into the snapshot [`Core::snapshot_begin`] returned;
    /// false (the snapshot is not whole: do not save it) if no freeze was running.
    pub fn snapshot_end(&mut self, snapshot: &mut ConsensusSnapshot) -> bool {
        let Some(entries) = self.kv_mut().export_end() else {
            return false;
        };
        match snapshot {
            ConsensusSnapshot::Paxos(s) => s.kv.entries = entries,
            ConsensusSnapshot::Raft(s) => s.kv.entries = entries,
        }
        true
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        each!(self, r => r.stats())
    }

    /// What this replica leads under, if it leads: the Paxos ballot, or for Raft the term
    /// (as round, node 0). No two replicas may ever lead under equal ones.
    pub fn leadership(&self) -> Option<Ballot> {
        match self {
            Consensus::Paxos(r) => r.leading(),
            Consensus::Raft(r) => r.leading_term().map(|term| Ballot {
                round: term,
                node: ReplicaId(0),
            }),
        }
    }

    /// Every entry up to here is committed and known here.
    pub fn commit_index(&self) -> Slot {
        each!(self, r => r.commit_index())
    }

    /// The protocol this replica runs.
    pub fn protocol(&self) -> Protocol {
        match self {
            Consensus::Paxos(_) => Protocol::Multipaxos,
            Consensus::Raft(_) => Protocol::Raft,
        }
    }

    /// What orders leaderships, for INFO: the promised ballot (Multi-Paxos) or the term
    /// (Raft), as `name=value`.
    pub fn epoch(&self) -> String {
        match self {
            Consensus::Paxos(r) => format!("promised={}", r.promised()),
            Consensus::Raft(r) => format!("term={}", r.term()),
        }
    }

    /// True while a restarted replica checks its storage against what its peers saw
    /// (`protocol/stale.rs`).
    pub fn restart_checking(&self) -> bool {
        each!(self, r => r.restart_checking())
    }

    /// What a peer saw this replica acknowledge that its storage lacked, if detected.
    pub fn stale_finding(&self) -> Option<&str> {
        each!(self, r => r.stale_finding())
    }

    /// The driver saved a snapshot at `at` (its file is durable). Raft holds the answers
    /// that count a leader's installed snapshot until then; Multi-Paxos needs no word.
    pub fn on_snapshot_saved(&mut self, now: Nanos, at: Slot) {
        self.begin_step();
        match self {
            Consensus::Paxos(_) => {}
            Consensus::Raft(r) => r.on_snapshot_saved(now, at),
        }
    }

    /// Tells the replica the wall clock (unix ms) at `now`, the log time a leader stamps
    /// for key expiry (see `paxos::Replica::set_wall_clock`).
    pub fn set_wall_clock(&mut self, now: Nanos, unix_ms: u64) {
        each!(self, r => r.set_wall_clock(now, unix_ms))
    }

    /// The node's storage stopped taking writes (disk full) or takes them again: the
    /// replica neither leads nor campaigns meanwhile.
    pub fn set_storage_full(&mut self, now: Nanos, full: bool) {
        self.begin_step();
        each!(self, r => r.set_storage_full(now, full))
    }

    /// True while the node's storage cannot write.
    pub fn storage_full(&self) -> bool {
        each!(self, r => r.storage_full())
    }

    /// The root of the state machine's Merkle tree, after rehashing only dirty paths.
    pub fn merkle_root(&mut self) -> u64 {
        let kv = self.kv_mut();
        kv.merkle_mut().rebuild_incremental();
        kv.merkle().root()
    }

    /// Log entries held in memory.
    pub fn log_len(&self) -> usize {
        each!(self, r => r.log_len())
    }

    /// Memory of the applied entries held, estimated (`message::batch_memory_bytes`).
    pub fn applied_log_bytes(&self) -> u64 {
        each!(self, r => r.applied_log_bytes())
    }
}

impl Core for Consensus {
    type Snapshot = ConsensusSnapshot;
    fn drain_into(&mut self, out: &mut Vec<Action>) {
        each!(self, r => r.drain_into(out))
    }
    fn is_leading(&self) -> bool {
        each!(self, r => Core::is_leading(r.as_ref()))
    }
    fn leader_hint(&self) -> Option<ReplicaId> {
        each!(self, r => r.leader_hint())
    }
    fn applied_index(&self) -> Slot {
        each!(self, r => r.applied_index())
    }
    fn recovering(&self) -> bool {
        each!(self, r => r.recovering())
    }
    fn snapshot(&self) -> ConsensusSnapshot {
        match self {
            Consensus::Paxos(r) => ConsensusSnapshot::Paxos(r.snapshot()),
            Consensus::Raft(r) => ConsensusSnapshot::Raft(r.snapshot()),
        }
    }
    fn snapshot_begin(&mut self) -> ConsensusSnapshot {
        match self {
            Consensus::Paxos(r) => ConsensusSnapshot::Paxos(Core::snapshot_begin(r.as_mut())),
            Consensus::Raft(r) => ConsensusSnapshot::Raft(Core::snapshot_begin(r.as_mut())),
        }
    }
    fn snapshot_slot(snapshot: &ConsensusSnapshot) -> Slot {
        match snapshot {
            ConsensusSnapshot::Paxos(s) => s.last_included,
            ConsensusSnapshot::Raft(s) => s.last_included,
        }
    }
    fn compact(&mut self, upto: Slot) {
        each!(self, r => r.compact(upto))
    }
    fn read_now(&mut self, now: Nanos, cmd: &Command) -> Option<Reply> {
        each!(self, r => Core::read_now(r.as_mut(), now, cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seq: u64) -> Request {
        Request {
            client: 7,
            seq,
            ack_floor: seq,
            cmd: Command::Get(bytes::Bytes::from_static(b"k")),
        }
    }

    /// A follower that leads nothing answers a request at once (not the leader): one
    /// action per request, left in the outbox when the driver does not take it.
    fn follower(protocol: Protocol) -> Consensus {
        let cfg = ProtocolConfig {
            protocol,
            ..ProtocolConfig::default()
        };
        Consensus::new(cfg, ReplicaId(1), 1)
    }

    #[test]
    fn steps_run_while_the_driver_takes_every_steps_actions() {
        for protocol in Protocol::ALL {
            let mut c = follower(protocol);
            let mut out = Vec::new();
            for seq in 1..=3 {
                c.on_request(0, seq, request(seq));
                c.drain_into(&mut out);
            }
            assert_eq!(out.len(), 3, "{protocol}: one answer per request");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "still in the outbox")]
    fn a_step_before_the_driver_took_the_last_steps_actions_panics() {
        let mut c = follower(Protocol::Multipaxos);
        c.on_request(0, 1, request(1));
        c.on_request(0, 2, request(2));
    }
}
