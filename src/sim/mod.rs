//! Deterministic simulator of a corepax group, and its checkers.
//!
//! One seed fixes everything: message delays, losses, duplicates and reordering,
//! partitions (symmetric and one-way), leader isolation, crashes that lose unsynced
//! records (keeping a random prefix of what was written), crashes whose storage also lost
//! synced records in the middle of the log (the replica knows, as the WAL's recovery tells
//! it, and rejoins as a learner), disk sync latency, and the clients' choices. The protocol core runs unchanged; only its inputs are simulated.
//!
//! After the faults heal, every crashed replica restarts, clients finish, and a final read
//! of every key goes through the log. Then the checkers run:
//! 1. every key's history is linearizable ([`linearizability`]);
//! 2. every replica applied the same value at every slot (logs are prefixes of each other);
//! 3. at most one replica led each ballot;
//! 4. no acknowledged write was lost (the final reads are part of the checked history),
//!    and every replica converged to the same state.

mod blocking;
mod checks;
mod clients;
mod config;
mod disk;
mod faults;
pub mod linearizability;
mod network;
mod pause;
mod pubsub;
mod restore;
mod restore_staged;

pub use checks::{AntiEntropyCounts, SimOutcome, Summary, run_many};
use clients::{Client, Recorded, client_timeout};
pub use config::SimConfig;
use network::{Wire, describe_batch, describe_wire};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{
    ConfigError, LeaseHolders, Protocol, ProtocolConfig, ReadMode, ReadRepair, Setting,
};
use crate::protocol::client::{ClientError, ClientOutput, ClientPath, Handle, LeaderView};
use crate::protocol::kv::Item;
use crate::protocol::outbox::{Effects, Outbox, SnapshotSchedule, SyncStart};
use crate::protocol::{
    Ballot, Batch, Bugs, ClientReply, Command, Consensus, ConsensusSnapshot, Core, Message, Nanos,
    PersistId, Record, ReplicaId, Reply, Request, Slot, Stats, Token,
};
use linearizability::{Op, Operation, Output, Verdict};

const MS: Nanos = 1_000_000;
const US: Nanos = 1_000;

#[derive(Debug)]
enum Event {
    Deliver {
        to: ReplicaId,
        from: ReplicaId,
        incarnation: u32,
        msg: Wire,
    },
    Tick(ReplicaId),
    SyncDone {
        node: ReplicaId,
        incarnation: u32,
        upto: PersistId,
    },
    /// The wait of an `Action::CheckLazySync` ran out.
    LazySyncCheck {
        node: ReplicaId,
        incarnation: u32,
    },
    /// The node's state transfer ([`Node::transfer_build`]) is built, as the runtime's
    /// blocking pool would hand it back.
    TransferBuilt {
        node: ReplicaId,
        incarnation: u32,
    },
    /// The state transfer the node received ([`Node::install_build`]) is built, as the
    /// runtime's blocking pool would hand it back.
    InstallBuilt {
        node: ReplicaId,
        incarnation: u32,
    },
    ClientSend {
        client: usize,
    },
    /// A client's command reaches the node it is connected to.
    ClientRequestArrives {
        node: ReplicaId,
        incarnation: u32,
        client: usize,
        attempt: u32,
        cmd: Command,
    },
    ClientReplyArrives {
        client: usize,
        attempt: u32,
        result: Result<Reply, ClientError>,
    },
    /// A client's blocking pop reaches the node it is connected to.
    BlockingRequestArrives {
        node: ReplicaId,
        incarnation: u32,
        client: usize,
        attempt: u32,
        b: crate::protocol::blocking::Blocking,
        timeout: Nanos,
    },
    /// A blocking pop's deadline on its node.
    BlockingDeadline {
        node: ReplicaId,
        incarnation: u32,
        id: u64,
    },
    /// A back-off of a node's client path ends.
    ClientPathWake {
        node: ReplicaId,
        incarnation: u32,
    },
    Fault,
    /// An anti-entropy session between two live replicas.
    AntiEntropy,
    Restart(ReplicaId),
    Heal,
}

struct Node {
    replica: Option<Consensus>,
    incarnation: u32,
    /// Durable records, in order.
    durable: Vec<Record>,
    /// Written but not synced: a crash keeps a random prefix of these.
    pending: Vec<(PersistId, Record)>,
    /// The sync in flight covers pending ids up to this.
    syncing_upto: Option<PersistId>,
    /// A record that is not lazy (or a flush) waits in `pending` for a sync to start:
    /// lazy records alone wait for the next tick, as the runtime's WAL does.
    sync_wanted: bool,
    /// The node's client path, as the runtime's shard runs it.
    client: ClientPath,
    /// Commands submitted to the client path → (client, attempt) waiting for them.
    callers: HashMap<Handle, (usize, u32)>,
    /// Set while the client path's outputs are carried out.
    driving: bool,
    /// Blocking pops on this node, by id (`blocking.rs`).
    blocked: BTreeMap<u64, blocking::Blocked>,
    /// The last id given to a blocking pop.
    blocked_next: u64,
    /// Commands submitted for blocking pops → their id.
    blocked_handles: HashMap<Handle, u64>,
    /// The blocking pops waiting for a list, by key.
    waiters: crate::protocol::blocking::ListWaiters,
    /// The latest snapshot; `durable` holds only what was written after it.
    snapshot: Option<ConsensusSnapshot>,
    /// Records up to this id were written before the snapshot and are covered by it.
    snapshot_covers: PersistId,
    /// The action buffer and the snapshot schedule, shared with the node's code.
    outbox: Outbox,
    /// This replica's clock: its rate error (ppm, signed) and offset from real time.
    clock_rate_ppm: i64,
    clock_offset: i64,
    /// Storage lost synced records that no snapshot covers yet: the replica restarts
    /// knowing it (`forgot_records`), as the WAL's recovery reports mid-log corruption.
    lost_records: bool,
    /// A snapshot at this slot was saved within the step: the replica hears so once the
    /// step's actions are done (`Consensus::on_snapshot_saved`), as from the runtime.
    snapshot_saved: Option<Slot>,
    /// A state transfer the replica handed out to be built (`Consensus::take_transfer_build`),
    /// until [`Event::TransferBuilt`] hands it back.
    transfer_build: Option<crate::protocol::transfer::TransferBuild>,
    /// A received state transfer the replica handed out to be built before it installs it
    /// (`Consensus::take_install_build`), until [`Event::InstallBuilt`] hands it back.
    install_build: Option<crate::protocol::transfer::InstallBuild>,
    /// Entries of this life's applied trace already compared with `Sim::applied_at`.
    trace_checked: usize,
    /// An older copy of its storage, which a restart may put back (`restore.rs`).
    copy: Option<restore::StorageCopy>,
    /// Restarted from an older copy, and not yet done checking and recovering.
    restored: bool,
    /// Paused (`pause.rs`) until this time.
    paused_until: Option<Nanos>,
}

struct Sim {
    cfg: SimConfig,
    proto: ProtocolConfig,
    rng: ChaCha8Rng,
    now: Nanos,
    /// Pending events by (time, sequence): equal times run in scheduling order.
    queue: BTreeMap<(Nanos, u64), Event>,
    event_seq: u64,
    nodes: Vec<Node>,
    /// `cut[a][b]`: messages from a to b are dropped.
    cut: Vec<Vec<bool>>,
    faults_on: bool,
    loss: f64,
    dup: f64,
    clients: Vec<Client>,
    history: Vec<Recorded>,
    next_value: u64,
    /// Slot → the batch some replica applied there.
    applied_at: HashMap<Slot, Batch>,
    /// Ballot → the replica that led it.
    leaders: BTreeMap<Ballot, ReplicaId>,
    violations: Vec<String>,
    trace: String,
    snapshots_sent: u64,
    /// Counters of replicas that crashed, summed.
    dead_stats: Stats,
    anti_entropy: AntiEntropyCounts,
    snapshot_chunks_later: u64,
    /// Decides mid-log corruption at crashes, in the seeds that have it; its own stream,
    /// so seeds without it run as they did before it existed.
    corrupt_rng: Option<ChaCha8Rng>,
    records_lost_crashes: u64,
    /// Decides storage copies and their restoring, in the seeds that have them; its own
    /// stream, like `corrupt_rng`.
    restore_rng: Option<ChaCha8Rng>,
    copies_restored: u64,
    /// Of them, copies holding fewer records than the storage they replaced.
    copies_restored_older: u64,
    stale_marked_crashes: u64,
    /// The staged restore's progress (`restore_staged.rs`).
    staged: restore_staged::Stage,
    /// Decides pauses, in the seeds that have them; its own stream, like `corrupt_rng`.
    pause_rng: Option<ChaCha8Rng>,
    pauses: u64,
    forwards: u64,
    reads_now: u64,
    unanswered: u64,
    /// The newest log time (ms) any replica applied so far: what the clients' operations
    /// are checked against for expiry (see [`linearizability`]).
    log_time_max: u64,
    /// Keys named for removal by applied clock entries.
    keys_expired: u64,
    /// The copy damaged on purpose: (replica, key, its version before).
    rotted: Option<(usize, Bytes, Slot)>,
    /// Anti-entropy installs counted when the copy was damaged.
    installed_at_rot: u64,
    /// What each replica delivered to subscribers (`--pubsub`).
    deliveries: pubsub::Deliveries,
}

/// One replica's effects in the simulated world.
struct NodeEffects<'a> {
    sim: &'a mut Sim,
    node: ReplicaId,
    /// The node's clock and its view of the leader after the step.
    now: Nanos,
    view: LeaderView,
}

impl Effects for NodeEffects<'_> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        match &msg {
            Message::InstallSnapshot { chunk } if chunk.offset == 0 => {
                self.sim.snapshots_sent += 1;
            }
            Message::InstallSnapshot { .. } => self.sim.snapshot_chunks_later += 1,
            Message::Raft(crate::protocol::raft::Msg::InstallSnapshot { chunk, .. }) => {
                if chunk.offset == 0 {
                    self.sim.snapshots_sent += 1;
                } else {
                    self.sim.snapshot_chunks_later += 1;
                }
            }
            _ => {}
        }
        self.sim.net_send(self.node, to, Wire::Core(msg));
    }

    fn persist(&mut self, id: PersistId, record: Record, sync: SyncStart) {
        let n = &mut self.sim.nodes[self.node.index()];
        n.pending.push((id, record));
        // `AfterSends` is `Now` here: a step's sends and syncs all start at the step's
        // simulated instant.
        if sync != SyncStart::Lazy {
            self.sim.want_sync(self.node);
        }
    }

    fn check_lazy_sync(&mut self, after: Nanos) {
        let node = self.node;
        let incarnation = self.sim.nodes[node.index()].incarnation;
        self.sim
            .schedule(after, Event::LazySyncCheck { node, incarnation });
    }

    fn reply(&mut self, token: Token, reply: ClientReply) {
        let n = &mut self.sim.nodes[self.node.index()];
        n.client.on_core_reply(self.now, token, reply, self.view);
    }

    fn save_snapshot(&mut self) {
        self.sim.take_snapshot(self.node);
    }
}

/// Runs one seed and checks it.
pub fn run(cfg: SimConfig) -> SimOutcome {
    let mut sim = Sim::new(cfg);
    sim.run();
    sim.check()
}

impl Sim {
    fn new(cfg: SimConfig) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let proto = cfg.protocol_config(&mut rng);
        // Within the bound, rates spread over all of it; beyond, far past it.
        let bound = proto.max_clock_drift_ppm as i64;
        let drift = if cfg.drift_beyond_bound {
            18 * bound
        } else {
            bound
        };
        let mut cfg = cfg;
        if cfg.seed % 2 == 1 && cfg.snapshot_every == 0 {
            cfg.snapshot_every = rng.random_range(3..30);
            cfg.log_retain = rng.random_range(0..5);
        }
        let loss = [0.0, 0.01, 0.05][rng.random_range(0..3)];
        let dup = [0.0, 0.02][rng.random_range(0..2)];
        let n = cfg.replicas;
        let nodes = (0..n)
            .map(|i| {
                let mut r = Consensus::new(proto.clone(), ReplicaId(i as u8), rng.random());
                r.set_bugs(cfg.bugs);
                r.enable_applied_trace();
                let session = rng.random::<u64>() | 1;
                r.set_session(session);
                r.set_offload_transfers(true);
                Node {
                    replica: Some(r),
                    incarnation: 0,
                    durable: Vec::new(),
                    pending: Vec::new(),
                    syncing_upto: None,
                    sync_wanted: false,
                    client: ClientPath::new(
                        ReplicaId(i as u8),
                        session,
                        cfg.read_mode,
                        client_timeout(&cfg),
                    ),
                    callers: HashMap::new(),
                    driving: false,
                    blocked: BTreeMap::new(),
                    blocked_next: 0,
                    blocked_handles: HashMap::new(),
                    waiters: Default::default(),
                    snapshot: None,
                    snapshot_covers: 0,
                    outbox: Outbox::new(SnapshotSchedule::new(
                        cfg.snapshot_every,
                        cfg.log_retain,
                        0,
                    )),
                    clock_rate_ppm: rng.random_range(-drift..=drift),
                    clock_offset: rng.random_range(0..1_000 * MS as i64),
                    lost_records: false,
                    trace_checked: 0,
                    snapshot_saved: None,
                    transfer_build: None,
                    install_build: None,
                    copy: None,
                    restored: false,
                    paused_until: None,
                }
            })
            .collect();
        let mut nodes: Vec<Node> = nodes;
        if let Some(ppm) = cfg.slow_clock_ppm {
            nodes[(cfg.seed / 3) as usize % n].clock_rate_ppm = ppm;
        }
        let clients = (0..cfg.clients)
            .map(|_| Client {
                attempt: 0,
                target: ReplicaId(rng.random_range(0..n) as u8),
                current: None,
                done: 0,
            })
            .collect();
        let mut corrupt_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xc0ff_ee00_dead_beef);
        let corrupt_rng =
            (corrupt_rng.random_range(0..100) < cfg.corrupt_seeds_percent).then_some(corrupt_rng);
        let mut restore_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x01d0_c0b1_e5ba_c409);
        let restore_rng =
            (restore_rng.random_range(0..100) < cfg.restore_seeds_percent).then_some(restore_rng);
        let mut pause_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5157_0bbe_d0c0_ffee);
        let pause_rng =
            (pause_rng.random_range(0..100) < cfg.pause_seeds_percent).then_some(pause_rng);
        // A staged restore is the run's only fault.
        let (corrupt_rng, restore_rng, pause_rng) = if cfg.restore_staged {
            (None, None, None)
        } else {
            (corrupt_rng, restore_rng, pause_rng)
        };
        Sim {
            proto,
            rng,
            now: 0,
            queue: BTreeMap::new(),
            event_seq: 0,
            nodes,
            cut: vec![vec![false; n]; n],
            faults_on: true,
            loss,
            dup,
            clients,
            history: Vec::new(),
            next_value: 1,
            applied_at: HashMap::new(),
            leaders: BTreeMap::new(),
            violations: Vec::new(),
            trace: String::new(),
            snapshots_sent: 0,
            dead_stats: Stats::default(),
            anti_entropy: AntiEntropyCounts::default(),
            snapshot_chunks_later: 0,
            corrupt_rng,
            records_lost_crashes: 0,
            restore_rng,
            copies_restored: 0,
            copies_restored_older: 0,
            stale_marked_crashes: 0,
            staged: restore_staged::Stage::Start,
            pause_rng,
            pauses: 0,
            forwards: 0,
            reads_now: 0,
            unanswered: 0,
            log_time_max: 0,
            keys_expired: 0,
            rotted: None,
            installed_at_rot: 0,
            deliveries: pubsub::Deliveries::default(),
            cfg,
        }
    }

    fn schedule(&mut self, after: Nanos, event: Event) {
        self.event_seq += 1;
        self.queue.insert((self.now + after, self.event_seq), event);
    }

    fn log(&mut self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = what();
            let _ = writeln!(self.trace, "{:>10.3}ms {line}", self.now as f64 / MS as f64);
        }
    }

    fn run(&mut self) {
        // Far above what a seed needs (tens of thousands of events for a few hundred
        // operations), and reached within seconds.
        let events_max = (self.cfg.clients * self.cfg.ops_per_client) as u64 * 4_000;
        let events_max = events_max.max(1_000_000);
        for i in 0..self.cfg.replicas {
            self.pubsub_start(ReplicaId(i as u8));
        }
        for i in 0..self.cfg.replicas {
            let jitter = self.rng.random_range(0..5 * MS);
            self.schedule(jitter, Event::Tick(ReplicaId(i as u8)));
        }
        for c in 0..self.cfg.clients {
            let start = self.rng.random_range(0..50 * MS);
            self.schedule(start, Event::ClientSend { client: c });
        }
        let first_fault = self.rng.random_range(50 * MS..300 * MS);
        self.schedule(first_fault, Event::Fault);
        let first_repair = self.rng.random_range(50 * MS..300 * MS);
        self.schedule(first_repair, Event::AntiEntropy);
        self.schedule(self.cfg.fault_phase, Event::Heal);
        // Hard stop: after healing, everything must finish well within this.
        let deadline = self.cfg.fault_phase + 30_000 * MS;
        let mut final_reads_started = false;
        let mut damaged = false;
        let mut events = 0u64;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > deadline {
                break;
            }
            events += 1;
            if events > events_max {
                // A storm of messages answering messages: simulated time hardly moves, so
                // the deadline alone would never end the run.
                self.violations.push(format!(
                    "liveness: more than {events_max} events by {} ms (a message storm)",
                    at / MS
                ));
                return;
            }
            self.now = at;
            self.handle(event);
            let clients_done = self
                .clients
                .iter()
                .all(|c| c.current.is_none() && c.done >= self.cfg.ops_per_client);
            if clients_done && !self.faults_on {
                if !final_reads_started {
                    final_reads_started = true;
                    self.start_final_reads();
                } else if self.converged() {
                    if damaged {
                        self.note_rot_overwritten();
                        return;
                    }
                    // Converged: now rot one stored copy, which the log can never fix. Only
                    // anti-entropy can make the replicas converge again (or a later write
                    // of the key, which `damage_one_copy` tells apart).
                    damaged = true;
                    if !self.damage_one_copy() {
                        return; // Nothing stored, nothing to rot.
                    }
                }
            }
        }
        if !final_reads_started {
            self.violations.push(format!(
                "liveness: clients did not finish within {} ms after the faults healed",
                (deadline - self.cfg.fault_phase) / MS
            ));
        } else {
            self.violations
                .push("liveness: replicas did not converge after the faults healed".into());
        }
    }

    fn handle(&mut self, event: Event) {
        let Some(event) = self.held_by_pause(event) else {
            return;
        };
        match event {
            Event::Tick(node) => {
                let now = self.clock(node);
                if let Some(r) = self.nodes[node.index()].replica.as_mut() {
                    r.on_tick(now);
                    self.after_step(node);
                    self.tick_client(node);
                    // The runtime's ticker syncs lazy records too.
                    if !self.nodes[node.index()].pending.is_empty() {
                        self.want_sync(node);
                    }
                }
                let next = self.rng.random_range(2 * MS..8 * MS);
                self.schedule(next, Event::Tick(node));
            }
            Event::Deliver {
                to,
                from,
                incarnation,
                msg,
            } => {
                let n = &mut self.nodes[to.index()];
                if n.incarnation != incarnation {
                    return; // Sent to an earlier life of this replica.
                }
                if n.replica.is_some() {
                    if self.cfg.trace {
                        let line = format!("{from} → {to}: {}", describe_wire(&msg));
                        self.log(|| line);
                    }
                    self.deliver(to, from, msg);
                }
            }
            Event::SyncDone {
                node,
                incarnation,
                upto,
            } => self.sync_done(node, incarnation, upto),
            Event::LazySyncCheck { node, incarnation } => {
                let now = self.clock(node);
                let n = &mut self.nodes[node.index()];
                if n.incarnation == incarnation
                    && let Some(r) = n.replica.as_mut()
                    && r.lazy_sync_due(now)
                {
                    self.want_sync(node);
                }
            }
            Event::TransferBuilt { node, incarnation } => {
                let now = self.clock(node);
                let n = &mut self.nodes[node.index()];
                if n.incarnation == incarnation
                    && let Some(r) = n.replica.as_mut()
                    && let Some(build) = n.transfer_build.take()
                {
                    r.on_transfer_built(now, build.build(now));
                    self.after_step(node);
                }
            }
            Event::InstallBuilt { node, incarnation } => {
                let now = self.clock(node);
                let n = &mut self.nodes[node.index()];
                if n.incarnation == incarnation
                    && let Some(r) = n.replica.as_mut()
                    && let Some(build) = n.install_build.take()
                {
                    r.on_install_built(now, build.build());
                    self.after_step(node);
                }
            }
            Event::ClientSend { client } => self.start_op(client, None),
            Event::ClientRequestArrives {
                node,
                incarnation,
                client,
                attempt,
                cmd,
            } => self.client_request(node, incarnation, client, attempt, cmd),
            Event::ClientReplyArrives {
                client,
                attempt,
                result,
            } => self.client_reply(client, attempt, result),
            Event::BlockingRequestArrives {
                node,
                incarnation,
                client,
                attempt,
                b,
                timeout,
            } => self.blocking_request(node, incarnation, client, attempt, b, timeout),
            Event::BlockingDeadline {
                node,
                incarnation,
                id,
            } => self.blocking_deadline(node, incarnation, id),
            Event::ClientPathWake { node, incarnation } => {
                let n = &self.nodes[node.index()];
                if n.incarnation == incarnation && n.replica.is_some() {
                    self.tick_client(node);
                }
            }
            Event::Fault => self.inject_fault(),
            Event::AntiEntropy => self.anti_entropy(),
            Event::Restart(node) => self.restart(node),
            Event::Heal => {
                self.log(|| "heal: all links up, every replica restarts".into());
                self.faults_on = false;
                self.loss = 0.0;
                self.dup = 0.0;
                for row in &mut self.cut {
                    row.fill(false);
                }
                for i in 0..self.cfg.replicas {
                    if self.nodes[i].replica.is_none() {
                        self.restart(ReplicaId(i as u8));
                    }
                }
            }
        }
    }

    /// Routes what a replica asked for after a step.
    fn after_step(&mut self, node: ReplicaId) {
        // A transfer is built off the replica's steps, taking a while (the runtime's
        // blocking pool): steps and messages go on meanwhile. Its entries, frozen in the
        // step, are shared first, before this step's actions (a snapshot's freeze
        // would drop the transfer's); the runtime shares them in parts.
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_mut().expect("a live replica stepped");
        if let Some(mut build) = r.take_transfer_build()
            && r.transfer_export_end(&mut build)
        {
            n.transfer_build = Some(build);
            let incarnation = n.incarnation;
            let after = self.rng.random_range(US..20 * MS);
            self.schedule(after, Event::TransferBuilt { node, incarnation });
        }
        let n = &mut self.nodes[node.index()];
        n.replica
            .as_mut()
            .expect("a live replica stepped")
            .check_invariants();
        if n.restored {
            self.note_restored_done(node);
        }
        self.note_led(node);
        if self.cfg.restore_staged {
            self.staged_after_step(node);
        }
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_mut().expect("a live replica stepped");
        let step = n.outbox.take(r);
        let view = LeaderView::of(r);
        if let Some(b) = r.leadership() {
            match self.leaders.get(&b) {
                Some(other) if *other != node => self.violations.push(format!(
                    "two leaders for ballot/term {b}: {other} and {node}"
                )),
                Some(_) => {}
                None => {
                    self.leaders.insert(b, node);
                    self.log(|| format!("{node} leads ballot {b}"));
                    if self.cfg.drift_beyond_bound {
                        self.adversarial_clocks(node);
                    }
                }
            }
        }
        self.record_applied(node);
        self.pubsub_after_step(node);
        let log_time = self.nodes[node.index()]
            .replica
            .as_ref()
            .expect("live")
            .kv()
            .expiry()
            .now();
        self.log_time_max = self.log_time_max.max(log_time);
        let now = self.clock(node);
        let spare = step.dispatch(&mut NodeEffects {
            sim: self,
            node,
            now,
            view,
        });
        let n = &mut self.nodes[node.index()];
        n.outbox.recycle(spare);
        n.client.observe(now, view);
        self.drive_client(node);
        self.wake_blocked(node);
        let n = &mut self.nodes[node.index()];
        if let (Some(at), Some(r)) = (n.snapshot_saved.take(), n.replica.as_mut()) {
            r.on_snapshot_saved(now, at);
            self.after_step(node);
        }
        // So is a received transfer's map and tree, before the replica installs it.
        let n = &mut self.nodes[node.index()];
        if let Some(build) = n.replica.as_mut().and_then(Consensus::take_install_build) {
            n.install_build = Some(build);
            let incarnation = n.incarnation;
            let after = self.rng.random_range(US..20 * MS);
            self.schedule(after, Event::InstallBuilt { node, incarnation });
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_pubsub;
#[cfg(test)]
mod tests_raft;

#[cfg(test)]
mod tests_stale;

#[cfg(test)]
mod tests_pause;
