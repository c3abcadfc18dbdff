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

pub mod linearizability;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{LeaseHolders, ProtocolConfig, ReadMode, ReadRepair};
use crate::protocol::kv::Item;
use crate::protocol::{
    Action, Ballot, Batch, Bugs, ClientReply, Command, Message, Nanos, PersistId, Record, Replica,
    ReplicaId, Reply, Request, Slot, Snapshot, Stats, Token,
};
use linearizability::{Op, Operation, Output, Verdict};

const MS: Nanos = 1_000_000;
const US: Nanos = 1_000;

/// What one simulation run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds everything.
    pub seed: u64,
    /// Replicas in the group.
    pub replicas: usize,
    /// Concurrent clients, each with one request outstanding.
    pub clients: usize,
    /// Keys the clients share (few, for contention).
    pub keys: usize,
    /// Operations each client issues.
    pub ops_per_client: usize,
    /// How long faults are injected.
    pub fault_phase: Nanos,
    /// Deliberate protocol bugs, to prove the checkers can fail.
    pub bugs: Bugs,
    /// Keep a readable trace of every event.
    pub trace: bool,
    /// Take a snapshot every this many applied slots (0 = never), keeping `log_retain`
    /// slots of log for catch-up; lagging replicas then need snapshots.
    pub snapshot_every: u64,
    /// Log slots kept after a snapshot.
    pub log_retain: u64,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Let replicas' clocks drift beyond the configured bound (proof that lease checks
    /// can fail); within it otherwise.
    pub drift_beyond_bound: bool,
    /// Share of seeds (percent) whose crashes may also corrupt synced records in the
    /// middle of the crashed replica's log.
    pub corrupt_seeds_percent: u64,
}

impl SimConfig {
    /// The defaults used by `cargo test` and `corepax sim`.
    pub fn new(seed: u64, replicas: usize) -> SimConfig {
        SimConfig {
            seed,
            replicas,
            clients: 4,
            keys: 3,
            ops_per_client: 40,
            fault_phase: 3_000 * MS,
            bugs: Bugs::default(),
            trace: false,
            // Odd seeds snapshot often and keep almost no log (set in `Sim::new`).
            snapshot_every: 0,
            log_retain: 0,
            read_mode: ReadMode::Log,
            drift_beyond_bound: false,
            corrupt_seeds_percent: 50,
        }
    }
}

/// The drift bound the simulated replicas are configured with: large, so that the lease
/// arithmetic's allowance for it is exercised (real clocks drift far less).
const SIM_DRIFT_PPM: u64 = 50_000;

/// What anti-entropy sessions did during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AntiEntropyCounts {
    /// Entries sent either way for differing leaves (proof that sessions found work).
    pub entries_exchanged: u64,
    /// Entries installed by the install rule.
    pub installed: u64,
    /// Copies damaged on purpose after the clients finished (anti-entropy must fix them).
    pub damaged: u64,
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct SimOutcome {
    /// Client operations completed or attempted.
    pub ops: usize,
    /// Safety violations found, each described.
    pub violations: Vec<String>,
    /// Keys whose check gave up (too many concurrent operations).
    pub undecided: usize,
    /// The trace, when asked for.
    pub trace: String,
    /// Snapshots sent to lagging replicas (proof that the path ran).
    pub snapshots_sent: u64,
    /// Every replica's counters, summed over its lives (proof that read paths ran).
    pub stats: Stats,
    /// Anti-entropy sessions run between replicas during the run.
    pub anti_entropy: AntiEntropyCounts,
    /// Snapshot chunks sent after a first one (proof that transfers took several).
    pub snapshot_chunks_later: u64,
    /// Crashes whose storage lost synced records in the middle of the log.
    pub records_lost_crashes: u64,
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: ReplicaId,
        from: ReplicaId,
        incarnation: u32,
        msg: Message,
    },
    Tick(ReplicaId),
    SyncDone {
        node: ReplicaId,
        incarnation: u32,
        upto: PersistId,
    },
    ClientSend {
        client: usize,
    },
    ClientRequestArrives {
        node: ReplicaId,
        client: usize,
        attempt: u32,
        req: Request,
    },
    ClientReplyArrives {
        client: usize,
        attempt: u32,
        reply: ClientReply,
    },
    ClientTimeout {
        client: usize,
        attempt: u32,
    },
    Fault,
    /// An anti-entropy session between two live replicas.
    AntiEntropy,
    Restart(ReplicaId),
    Heal,
}

struct Node {
    replica: Option<Replica>,
    incarnation: u32,
    /// Durable records, in order.
    durable: Vec<Record>,
    /// Written but not synced: a crash keeps a random prefix of these.
    pending: Vec<(PersistId, Record)>,
    /// The sync in flight covers pending ids up to this.
    syncing_upto: Option<PersistId>,
    /// Pending client tokens → (client, attempt).
    tokens: HashMap<Token, (usize, u32)>,
    /// The latest snapshot; `durable` holds only what was written after it.
    snapshot: Option<Snapshot>,
    /// Records up to this id were written before the snapshot and are covered by it.
    snapshot_covers: PersistId,
    /// Applied index at the last snapshot.
    snapshot_at: Slot,
    /// This replica's clock: its rate error (ppm, signed) and offset from real time.
    clock_rate_ppm: i64,
    clock_offset: i64,
    /// Storage lost synced records that no snapshot covers yet: the replica restarts
    /// knowing it (`forgot_records`), as the WAL's recovery reports mid-log corruption.
    lost_records: bool,
}

struct Client {
    seq: u64,
    attempt: u32,
    target: ReplicaId,
    /// The operation in progress: index into `history`, and its request.
    current: Option<(usize, Request)>,
    done: usize,
}

struct Recorded {
    key: usize,
    op: Operation,
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
    next_token: Token,
    next_value: u64,
    /// Slot → the batch some replica applied there.
    applied_at: HashMap<Slot, Batch>,
    /// Ballot → the replica that led it.
    leaders: BTreeMap<Ballot, ReplicaId>,
    violations: Vec<String>,
    trace: String,
    actions: Vec<Action>,
    snapshots_sent: u64,
    /// Counters of replicas that crashed, summed.
    dead_stats: Stats,
    anti_entropy: AntiEntropyCounts,
    snapshot_chunks_later: u64,
    /// Decides mid-log corruption at crashes, in the seeds that have it; its own stream,
    /// so seeds without it run as they did before it existed.
    corrupt_rng: Option<ChaCha8Rng>,
    records_lost_crashes: u64,
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
        let proto = ProtocolConfig {
            replicas: cfg.replicas,
            pipeline_depth: rng.random_range(1..=8),
            batch_max: rng.random_range(1..=8),
            batch_delay_us: if rng.random_bool(0.3) { 500 } else { 0 },
            election_timeout_ms: 100,
            heartbeat_interval_ms: 20,
            catchup_chunk_max: rng.random_range(1..=8),
            read_mode: cfg.read_mode,
            lease_ms: rng.random_range(40..=120),
            max_clock_drift_ppm: SIM_DRIFT_PPM,
            // Sometimes only some replicas hold quorum leases.
            lease_holders: if rng.random_bool(0.3) {
                (0..cfg.replicas as u8)
                    .filter(|_| rng.random_bool(0.5))
                    .collect()
            } else {
                Vec::new()
            },
            read_repair: if rng.random_bool(0.5) {
                ReadRepair::Blocking
            } else {
                ReadRepair::Async
            },
            // Tiny chunks (1 byte: one item each), so snapshots cross in several chunks
            // that the network loses, repeats and reorders. From the seed, not `rng`, so
            // the other choices of a seed stay as they were.
            snapshot_chunk_bytes_max: [1, 40, 120][(cfg.seed / 2 % 3) as usize],
            // Applied entries dropped from memory after a few bytes, or a few slots' worth,
            // or never (the default bound is never reached here): peers behind them
            // need snapshots even when nobody snapshots on a schedule.
            log_retain_bytes: [0, 1, 60, 16 << 20][(cfg.seed / 6 % 4) as usize],
            ..ProtocolConfig::default()
        };
        // Within the bound, rates spread over all of it; beyond, far past it.
        let drift = if cfg.drift_beyond_bound {
            18 * SIM_DRIFT_PPM as i64
        } else {
            SIM_DRIFT_PPM as i64
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
                let mut r = Replica::new(proto.clone(), ReplicaId(i as u8), rng.random());
                r.set_bugs(cfg.bugs);
                r.enable_applied_trace();
                Node {
                    replica: Some(r),
                    incarnation: 0,
                    durable: Vec::new(),
                    pending: Vec::new(),
                    syncing_upto: None,
                    tokens: HashMap::new(),
                    snapshot: None,
                    snapshot_covers: 0,
                    snapshot_at: 0,
                    clock_rate_ppm: rng.random_range(-drift..=drift),
                    clock_offset: rng.random_range(0..1_000 * MS as i64),
                    lost_records: false,
                }
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|_| Client {
                seq: 0,
                attempt: 0,
                target: ReplicaId(rng.random_range(0..n) as u8),
                current: None,
                done: 0,
            })
            .collect();
        let mut corrupt_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xc0ff_ee00_dead_beef);
        let corrupt_rng =
            (corrupt_rng.random_range(0..100) < cfg.corrupt_seeds_percent).then_some(corrupt_rng);
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
            next_token: 1,
            next_value: 1,
            applied_at: HashMap::new(),
            leaders: BTreeMap::new(),
            violations: Vec::new(),
            trace: String::new(),
            actions: Vec::new(),
            snapshots_sent: 0,
            dead_stats: Stats::default(),
            anti_entropy: AntiEntropyCounts::default(),
            snapshot_chunks_later: 0,
            corrupt_rng,
            records_lost_crashes: 0,
            cfg,
        }
    }

    /// What `node`'s own clock reads now.
    fn clock(&self, node: ReplicaId) -> Nanos {
        let n = &self.nodes[node.index()];
        let skew = self.now as i128 * n.clock_rate_ppm as i128 / 1_000_000;
        (n.clock_offset as i128 + self.now as i128 + skew) as Nanos
    }

    /// Beyond the drift bound, the worst case on purpose. Leader lease: every leader's
    /// clock crawls (its lease seems to last far longer, also once deposed) and the others
    /// race (their grants end early). Quorum lease: the leader's clock races (it waits out
    /// holders' leases too briefly) and the holders' crawl. Clocks stay continuous and
    /// monotonic; only their rates change.
    fn adversarial_clocks(&mut self, leader: ReplicaId) {
        let bound = SIM_DRIFT_PPM as i64;
        for i in 0..self.nodes.len() {
            let was_leader = self.leaders.values().any(|l| l.index() == i);
            let crawls = match self.proto.read_mode.leases() {
                Some(LeaseHolders::Configured) => i != leader.index(),
                Some(LeaseHolders::Leader) | None => was_leader,
            };
            let rate = if crawls { -18 * bound } else { 18 * bound };
            let at = self.clock(ReplicaId(i as u8)) as i128;
            let n = &mut self.nodes[i];
            n.clock_rate_ppm = rate;
            let moved = self.now as i128 + self.now as i128 * rate as i128 / 1_000_000;
            n.clock_offset = (at - moved) as i64;
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
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > deadline {
                break;
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
                        return;
                    }
                    // Converged: now rot one stored copy, which the log can never fix. Only
                    // anti-entropy can make the replicas converge again.
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

    fn converged(&self) -> bool {
        let live: Vec<&Replica> = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .collect();
        if live.len() != self.nodes.len() {
            return false;
        }
        let applied = live[0].applied_index();
        live.iter().all(|r| r.applied_index() == applied)
            && live.iter().any(|r| r.leading().is_some())
            && live
                .iter()
                .all(|r| r.kv().digest() == live[0].kv().digest())
            && live.iter().all(|r| merkle_root(r) == merkle_root(live[0]))
    }

    fn start_final_reads(&mut self) {
        self.log(|| "final reads of every key".into());
        // One more operation per client: a read of each key, spread over clients.
        for c in 0..self.clients.len() {
            self.clients[c].done = 0;
        }
        self.cfg.ops_per_client = 0;
        for key in 0..self.cfg.keys {
            let c = key % self.clients.len();
            self.start_op(c, Some((key, Op::Get)));
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(node) => {
                let now = self.clock(node);
                if let Some(r) = self.nodes[node.index()].replica.as_mut() {
                    r.on_tick(now);
                    self.after_step(node);
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
                        let line = format!("{from} → {to}: {}", describe(&msg));
                        self.log(|| line);
                    }
                    let now = self.clock(to);
                    let r = self.nodes[to.index()].replica.as_mut().expect("checked");
                    r.on_message(now, from, msg);
                    self.after_step(to);
                }
            }
            Event::SyncDone {
                node,
                incarnation,
                upto,
            } => self.sync_done(node, incarnation, upto),
            Event::ClientSend { client } => self.start_op(client, None),
            Event::ClientRequestArrives {
                node,
                client,
                attempt,
                req,
            } => {
                let token = self.next_token;
                self.next_token += 1;
                let now = self.clock(node);
                let n = &mut self.nodes[node.index()];
                if let Some(r) = n.replica.as_mut() {
                    n.tokens.insert(token, (client, attempt));
                    r.on_request(now, token, req);
                    self.after_step(node);
                }
            }
            Event::ClientReplyArrives {
                client,
                attempt,
                reply,
            } => self.client_reply(client, attempt, reply),
            Event::ClientTimeout { client, attempt } => {
                if self.clients[client].attempt == attempt && self.clients[client].current.is_some()
                {
                    let n = self.cfg.replicas;
                    let c = &mut self.clients[client];
                    c.target = ReplicaId(((c.target.index() + 1) % n) as u8);
                    self.resend(client, 0);
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
        let mut actions = std::mem::take(&mut self.actions);
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_mut().expect("a live replica stepped");
        r.check_invariants();
        r.drain_into(&mut actions);
        if let Some(b) = r.leading() {
            match self.leaders.get(&b) {
                Some(other) if *other != node => self
                    .violations
                    .push(format!("two leaders for ballot {b}: {other} and {node}")),
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
        let applied = self.nodes[node.index()]
            .replica
            .as_ref()
            .expect("live")
            .applied_index();
        let every = self.cfg.snapshot_every;
        // Like the node: no snapshot while recovering lost records (it would cover them and
        // hide the loss from the next start); the one that ends recovery is asked for.
        let recovering = self.nodes[node.index()]
            .replica
            .as_ref()
            .expect("live")
            .recovering();
        if every > 0 && !recovering && applied >= self.nodes[node.index()].snapshot_at + every {
            self.take_snapshot(node);
        }
        for action in actions.drain(..) {
            match action {
                Action::SaveSnapshot if recovering => {}
                Action::SaveSnapshot => self.take_snapshot(node),
                Action::Send { to, msg } => {
                    if let Message::InstallSnapshot { chunk } = &msg {
                        if chunk.offset == 0 {
                            self.snapshots_sent += 1;
                        } else {
                            self.snapshot_chunks_later += 1;
                        }
                    }
                    self.net_send(node, to, msg)
                }
                Action::Persist { id, record } => {
                    let n = &mut self.nodes[node.index()];
                    n.pending.push((id, record));
                    if n.syncing_upto.is_none() {
                        self.start_sync(node);
                    }
                }
                Action::Reply { token, reply } => {
                    let Some((client, attempt)) = self.nodes[node.index()].tokens.remove(&token)
                    else {
                        continue;
                    };
                    let delay = self.net_delay();
                    self.schedule(
                        delay,
                        Event::ClientReplyArrives {
                            client,
                            attempt,
                            reply,
                        },
                    );
                }
            }
        }
        self.actions = actions;
    }

    fn record_applied(&mut self, node: ReplicaId) {
        let r = self.nodes[node.index()].replica.as_ref().expect("live");
        let trace = r.applied_trace().expect("tracing on");
        // Only the tail since the last look is new; the map holds what others applied.
        for (slot, batch) in trace.iter().rev() {
            match self.applied_at.get(slot) {
                Some(b) if b == batch => break,
                Some(b) => {
                    let msg = format!(
                        "replica {node} applied {} at slot {slot}, another applied {}",
                        describe_batch(batch),
                        describe_batch(b)
                    );
                    self.violations.push(msg);
                    break;
                }
                None => {
                    self.applied_at.insert(*slot, batch.clone());
                }
            }
        }
    }

    /// Like the runtime: snapshot the replica, drop the records it covers, compact the log.
    fn take_snapshot(&mut self, node: ReplicaId) {
        let retain = self.cfg.log_retain;
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_mut().expect("live");
        let snap = r.snapshot();
        let at = snap.last_included;
        r.compact(at.saturating_sub(retain));
        n.snapshot = Some(snap);
        n.snapshot_at = at;
        n.durable.clear();
        n.lost_records = false;
        n.snapshot_covers = n.pending.last().map_or(n.snapshot_covers, |(id, _)| *id);
        self.log(|| format!("{node} snapshot at slot {at}"));
    }

    fn start_sync(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let Some(&(upto, _)) = n.pending.last() else {
            return;
        };
        n.syncing_upto = Some(upto);
        let incarnation = n.incarnation;
        // Usually fast; sometimes the disk stalls (this machine's disk does).
        let latency = if self.rng.random_bool(0.05) {
            self.rng.random_range(5 * MS..40 * MS)
        } else {
            self.rng.random_range(50 * US..2 * MS)
        };
        self.schedule(
            latency,
            Event::SyncDone {
                node,
                incarnation,
                upto,
            },
        );
    }

    fn sync_done(&mut self, node: ReplicaId, incarnation: u32, upto: PersistId) {
        let now = self.clock(node);
        let n = &mut self.nodes[node.index()];
        if n.incarnation != incarnation || n.replica.is_none() {
            return;
        }
        let split = n.pending.partition_point(|(id, _)| *id <= upto);
        let synced: Vec<_> = n.pending.drain(..split).collect();
        let covers = n.snapshot_covers;
        n.durable.extend(
            synced
                .into_iter()
                .filter(|(id, _)| *id > covers)
                .map(|(_, r)| r),
        );
        n.syncing_upto = None;
        let r = n.replica.as_mut().expect("checked");
        r.on_persisted(now, upto);
        self.after_step(node);
        if !self.nodes[node.index()].pending.is_empty() {
            self.start_sync(node);
        }
    }

    fn net_delay(&mut self) -> Nanos {
        if self.faults_on && self.rng.random_bool(0.05) {
            self.rng.random_range(5 * MS..60 * MS)
        } else {
            self.rng.random_range(100 * US..2 * MS)
        }
    }

    fn net_send(&mut self, from: ReplicaId, to: ReplicaId, msg: Message) {
        if self.cut[from.index()][to.index()] || self.rng.random_bool(self.loss) {
            return;
        }
        let copies = if self.rng.random_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.net_delay();
            let incarnation = self.nodes[to.index()].incarnation;
            self.schedule(
                delay,
                Event::Deliver {
                    to,
                    from,
                    incarnation,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn inject_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.cfg.replicas;
        let leader = self
            .nodes
            .iter()
            .filter_map(|x| x.replica.as_ref())
            .find_map(|r| r.leading().map(|_| r.id()));
        match self.rng.random_range(0..10) {
            0..=2 => {
                let victim = match leader {
                    Some(l) if self.rng.random_bool(0.5) => l,
                    _ => ReplicaId(self.rng.random_range(0..n) as u8),
                };
                self.crash(victim);
                // Power loss takes a second replica with it now and then.
                if self.rng.random_bool(0.3) {
                    let other = ReplicaId(self.rng.random_range(0..n) as u8);
                    self.crash(other);
                }
            }
            3 | 4 => {
                // Symmetric partition into two random sides.
                let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        self.cut[a][b] = side[a] != side[b];
                    }
                }
                self.log(|| format!("partition {side:?}"));
            }
            5 => {
                let a = self.rng.random_range(0..n);
                let b = self.rng.random_range(0..n);
                if a != b {
                    self.cut[a][b] = true;
                    self.log(|| format!("one-way cut r{a} → r{b}"));
                }
            }
            6 => {
                if let Some(l) = leader {
                    for x in 0..n {
                        if x != l.index() {
                            self.cut[l.index()][x] = true;
                            self.cut[x][l.index()] = true;
                        }
                    }
                    self.log(|| format!("isolate leader {l}"));
                }
            }
            _ => {
                for row in &mut self.cut {
                    row.fill(false);
                }
                self.log(|| "links healed".into());
            }
        }
        let next = self.rng.random_range(50 * MS..400 * MS);
        self.schedule(next, Event::Fault);
    }

    /// Bit rot: a caught-up follower's copy of a stored key reverts to an old value
    /// (version 0). False if no follower is caught up and stores a key.
    fn damage_one_copy(&mut self) -> bool {
        let live = || self.nodes.iter().filter_map(|n| n.replica.as_ref());
        let newest = live().map(Replica::applied_index).max().unwrap_or(0);
        let followers: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].replica.as_ref().is_some_and(|r| {
                    r.leading().is_none() && !r.kv().is_empty() && r.applied_index() == newest
                })
            })
            .collect();
        if followers.is_empty() {
            return false;
        }
        let victim = followers[self.rng.random_range(0..followers.len())];
        let r = self.nodes[victim].replica.as_mut().expect("live");
        let mut keys: Vec<Bytes> = r.kv().iter().map(Item::key_bytes).collect();
        keys.sort();
        let key = keys[self.rng.random_range(0..keys.len())].clone();
        let rot = crate::protocol::kv::Entry {
            value: Bytes::from_static(b"rot"),
            version: 0,
        };
        r.kv_mut().force_local(key.clone(), rot);
        self.anti_entropy.damaged += 1;
        self.log(|| format!("bit rot: r{victim} {:?} reverted", key));
        true
    }

    /// Anti-entropy between two random live replicas, run to the end between two protocol
    /// steps (like a session whose messages all arrive at once). Its repairs land in
    /// replicas that may lag or be mid-catch-up: the checkers then prove that a repair
    /// never breaks linearizability, the applied-log prefix or convergence.
    fn anti_entropy(&mut self) {
        use crate::protocol::merkle::{AntiEntropy, Responder, SessionLimits};
        let next = self.rng.random_range(100 * MS..400 * MS);
        self.schedule(next, Event::AntiEntropy);
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].replica.is_some())
            .collect();
        if live.len() < 2 {
            return;
        }
        let a = live[self.rng.random_range(0..live.len())];
        let b = loop {
            let b = live[self.rng.random_range(0..live.len())];
            if b != a {
                break b;
            }
        };
        // Small limits, so sessions take several round trips and pushes.
        let limits = SessionLimits {
            entries_per_msg_max: 2,
            parents_per_msg_max: 4,
            leaves_per_msg_max: 4,
        };
        let mut responder = Responder::new(limits);
        let (mut session, mut msg) = {
            let ra = self.nodes[a].replica.as_mut().expect("live");
            AntiEntropy::start(ra.kv_mut(), limits)
        };
        let mut installed = 0;
        for _ in 0..10_000 {
            let reply = {
                let rb = self.nodes[b].replica.as_mut().expect("live");
                let applied = rb.applied_index();
                let resp = responder.on_msg(rb.kv_mut(), applied, &msg);
                for (k, e) in resp.repairs {
                    installed += usize::from(rb.kv_mut().install(k, e));
                }
                resp.reply
            };
            let Some(reply) = reply else { break };
            let ra = self.nodes[a].replica.as_mut().expect("live");
            let applied = ra.applied_index();
            let next = session.on_msg(ra.kv_mut(), applied, reply);
            for (k, e) in session.take_repairs() {
                installed += usize::from(ra.kv_mut().install(k, e));
            }
            match next {
                Some(m) => msg = m,
                None => break,
            }
        }
        let o = session.outcome();
        self.anti_entropy.entries_exchanged += o.entries_sent + o.entries_received;
        self.anti_entropy.installed += installed as u64;
        if installed > 0 {
            self.log(|| format!("anti-entropy r{a} ↔ r{b}: {installed} entries installed"));
        }
    }

    fn crash(&mut self, node: ReplicaId) {
        let keep_frac = self.rng.random_range(0.0..1.0);
        let n = &mut self.nodes[node.index()];
        if n.replica.is_none() {
            return;
        }
        // Written but unsynced records: some prefix may have reached the disk.
        let keep = (n.pending.len() as f64 * keep_frac) as usize;
        let covers = n.snapshot_covers;
        let kept: Vec<_> = n
            .pending
            .drain(..)
            .take(keep)
            .filter(|(id, _)| *id > covers)
            .map(|(_, r)| r)
            .collect();
        let synced = n.durable.len();
        n.durable.extend(kept);
        self.corrupt_synced(node, synced);
        let n = &mut self.nodes[node.index()];
        n.snapshot_covers = 0;
        if let Some(r) = n.replica.take() {
            self.dead_stats.add(r.stats());
        }
        n.incarnation += 1;
        n.syncing_upto = None;
        n.tokens.clear();
        self.log(|| format!("crash {node} (kept {keep} unsynced records)"));
        let down = self.rng.random_range(20 * MS..500 * MS);
        self.schedule(down, Event::Restart(node));
    }

    /// At a crash, in seeds that have it: storage damages synced records in the middle
    /// of `node`'s log (of its first `synced` durable records, with a valid record after
    /// them), as bit rot or a lost write would. Like the WAL's recovery, the replica then
    /// knows it lost records. Never on more replicas at once than a quorum can spare, or
    /// no leader could ever be elected again. With the `truncate_at_corruption` bug, the
    /// log is cut at the damage, as recovery did when it took it for a torn tail.
    fn corrupt_synced(&mut self, node: ReplicaId, synced: usize) {
        let Some(rng) = self.corrupt_rng.as_mut() else {
            return;
        };
        if !rng.random_bool(0.5) {
            return;
        }
        let spare = (self.nodes.len() - 1) / 2;
        let forgetting = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                *i != node.index()
                    && n.lost_records
                    && n.replica.as_ref().is_none_or(Replica::recovering)
            })
            .count();
        let n = &mut self.nodes[node.index()];
        let total = n.durable.len();
        if forgetting >= spare || synced == 0 || total < 2 {
            return;
        }
        // Near the end, where the records a recent choice counted on are.
        let end_max = synced.min(total - 1);
        let end = end_max - rng.random_range(0..end_max.min(4));
        let lost = rng.random_range(1..=end.min(16));
        let start = end - lost;
        if self.cfg.bugs.truncate_at_corruption {
            n.durable.truncate(start);
        } else {
            n.durable.drain(start..end);
        }
        n.lost_records = true;
        self.records_lost_crashes += 1;
        self.log(|| format!("{node}: storage lost synced records {start}..{end} of {total}"));
    }

    fn restart(&mut self, node: ReplicaId) {
        let seed = self.rng.random();
        let n = &mut self.nodes[node.index()];
        if n.replica.is_some() {
            return;
        }
        let mut r = Replica::recover(
            self.proto.clone(),
            node,
            seed,
            n.snapshot.clone(),
            n.durable.iter().cloned(),
            n.lost_records,
        );
        n.snapshot_at = r.applied_index();
        r.set_bugs(self.cfg.bugs);
        r.enable_applied_trace();
        let recovering = r.recovering();
        n.replica = Some(r);
        self.log(|| format!("restart {node} (recovering lost records: {recovering})"));
        self.after_step(node);
    }

    fn start_op(&mut self, client: usize, forced: Option<(usize, Op)>) {
        if forced.is_none() && self.clients[client].done >= self.cfg.ops_per_client {
            return;
        }
        // Reading the most gives a stale lease the most chances to show.
        let reads = if self.cfg.drift_beyond_bound { 7 } else { 3 };
        let (key, op) = forced.unwrap_or_else(|| {
            let key = self.rng.random_range(0..self.cfg.keys);
            let op = match self.rng.random_range(0..10) {
                r if r <= reads => Op::Get,
                r if r <= 8 => {
                    self.next_value += 1;
                    Op::Set(self.next_value)
                }
                _ => Op::Del,
            };
            (key, op)
        });
        let k = Bytes::from(format!("k{key}"));
        let cmd = match op {
            Op::Get => Command::Get(k),
            Op::Set(v) => Command::Set(k, Bytes::from(v.to_string())),
            Op::Del => Command::Del(vec![k]),
        };
        let c = &mut self.clients[client];
        c.seq += 1;
        let req = Request {
            client: client as u64 + 1,
            seq: c.seq,
            ack_floor: c.seq,
            cmd,
        };
        self.history.push(Recorded {
            key,
            op: Operation {
                client: client as u64,
                op,
                out: Output::Unknown,
                call: self.now,
                ret: u64::MAX,
            },
        });
        c.current = Some((self.history.len() - 1, req));
        self.resend(client, 0);
    }

    fn resend(&mut self, client: usize, after: Nanos) {
        let c = &mut self.clients[client];
        c.attempt += 1;
        let attempt = c.attempt;
        let node = c.target;
        let req = c
            .current
            .as_ref()
            .expect("an operation in progress")
            .1
            .clone();
        let delay = after + self.net_delay();
        if !(self.faults_on && self.rng.random_bool(self.loss)) {
            self.schedule(
                delay,
                Event::ClientRequestArrives {
                    node,
                    client,
                    attempt,
                    req,
                },
            );
        }
        let timeout = if self.cfg.drift_beyond_bound {
            // Clients stuck at a deposed leader move on fast, so writes complete elsewhere
            // while it still answers reads.
            60 * MS
        } else {
            300 * MS
        };
        self.schedule(delay + timeout, Event::ClientTimeout { client, attempt });
    }

    fn client_reply(&mut self, client: usize, attempt: u32, reply: ClientReply) {
        let n = self.cfg.replicas;
        let c = &mut self.clients[client];
        if c.attempt != attempt || c.current.is_none() {
            return;
        }
        match reply {
            ClientReply::Done(reply) => {
                let (idx, _) = c.current.take().expect("checked");
                c.done += 1;
                let rec = &mut self.history[idx];
                rec.op.ret = self.now;
                rec.op.out = match (rec.op.op, reply) {
                    (Op::Set(_), Reply::Ok) => Output::Ok,
                    (Op::Del, Reply::Int(n)) => Output::Removed(n > 0),
                    (Op::Get, Reply::Value(v)) => Output::Value(v.map(|b| {
                        std::str::from_utf8(&b)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(u64::MAX)
                    })),
                    (op, reply) => {
                        let msg = format!("client {client}: {op:?} got reply {reply:?}");
                        self.violations.push(msg);
                        Output::Unknown
                    }
                };
                let think = self.rng.random_range(0..5 * MS);
                self.schedule(think, Event::ClientSend { client });
            }
            ClientReply::NotLeader { leader } => {
                c.target = leader.unwrap_or(ReplicaId(((c.target.index() + 1) % n) as u8));
                let backoff = if leader.is_some() { 0 } else { 20 * MS };
                self.resend(client, backoff);
            }
            ClientReply::Busy => self.resend(client, 10 * MS),
            // Simulated commands are a few bytes: a refusal means the size check is wrong.
            ClientReply::TooLarge { bytes, bytes_max } => {
                self.violations.push(format!(
                    "client {client}: a command bounded at {bytes} bytes refused as over {bytes_max}"
                ));
                c.current = None;
            }
        }
    }

    fn check(mut self) -> SimOutcome {
        let mut by_key: Vec<Vec<Operation>> = vec![Vec::new(); self.cfg.keys];
        for rec in &self.history {
            // A read that never returned tells nothing.
            if rec.op.op == Op::Get && rec.op.out == Output::Unknown {
                continue;
            }
            by_key[rec.key].push(rec.op);
        }
        let mut undecided = 0;
        for (key, ops) in by_key.iter().enumerate() {
            match linearizability::check(ops, 5_000_000) {
                Verdict::Linearizable => {}
                Verdict::Unknown => undecided += 1,
                Verdict::Violation => {
                    let mut msg = format!("history of key k{key} is not linearizable:");
                    for o in ops {
                        let _ = write!(
                            msg,
                            "\n    client {} {:?} → {:?}  [{:.3}ms, {}]",
                            o.client,
                            o.op,
                            o.out,
                            o.call as f64 / MS as f64,
                            if o.ret == u64::MAX {
                                "never".to_string()
                            } else {
                                format!("{:.3}ms", o.ret as f64 / MS as f64)
                            }
                        );
                    }
                    self.violations.push(msg);
                }
            }
        }
        let mut stats = self.dead_stats.clone();
        for r in self.nodes.iter().filter_map(|n| n.replica.as_ref()) {
            stats.add(r.stats());
        }
        SimOutcome {
            stats,
            anti_entropy: self.anti_entropy,
            ops: self.history.len(),
            violations: self.violations,
            undecided,
            trace: self.trace,
            snapshots_sent: self.snapshots_sent,
            snapshot_chunks_later: self.snapshot_chunks_later,
            records_lost_crashes: self.records_lost_crashes,
        }
    }
}

/// The replica's Merkle root after an incremental rebuild, checked against a full rebuild
/// (the incremental tree must always agree with the state machine).
fn merkle_root(r: &Replica) -> u64 {
    let mut incremental = r.kv().merkle().clone();
    incremental.rebuild_incremental();
    let mut full = crate::protocol::merkle::MerkleTree::new(incremental.depth());
    full.rebuild_full(r.kv().iter().map(|i| (i.key(), i.entry_ref())));
    assert_eq!(
        incremental.root(),
        full.root(),
        "incremental Merkle tree diverged from kv"
    );
    incremental.root()
}

fn describe_batch(b: &Batch) -> String {
    let cmds: Vec<String> = b
        .iter()
        .map(|r| match &r.cmd {
            Command::Noop => "noop".to_string(),
            cmd => format!("c{}#{}:{}", r.client, r.seq, short_cmd(cmd)),
        })
        .collect();
    format!("[{}]", cmds.join(" "))
}

fn short_cmd(cmd: &Command) -> String {
    let s = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    match cmd {
        Command::Get(k) => format!("get {}", s(k)),
        Command::Set(k, v) => format!("set {} {}", s(k), s(v)),
        Command::Del(ks) => format!("del {}", ks.iter().map(s).collect::<Vec<_>>().join(" ")),
        other => format!("{other:?}"),
    }
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::Prepare { ballot, from_slot } => format!("prepare b{ballot} from {from_slot}"),
        Message::Promise {
            ballot,
            chosen_through,
            entries,
        } => format!(
            "promise b{ballot} chosen through {chosen_through}, {} entries",
            entries.len()
        ),
        Message::InstallSnapshot { chunk } => format!(
            "snapshot chunk at slot {}: items {}+{} of {}",
            chunk.last_included,
            chunk.offset,
            chunk.entries.len() + chunk.sessions.len(),
            chunk.items_total
        ),
        Message::SnapshotChunkRequest {
            last_included,
            offset,
        } => format!("snapshot chunk request at slot {last_included} from item {offset}"),
        Message::Reject { promised } => format!("reject (promised b{promised})"),
        Message::Accept {
            ballot,
            slot,
            batch,
            commit,
        } => format!(
            "accept b{ballot} slot {slot} {} commit {commit}",
            describe_batch(batch)
        ),
        Message::Accepted {
            ballot,
            slot,
            holders,
            lease_left,
        } => format!(
            "accepted b{ballot} slot {slot} holders {holders:#b} for {:.3}ms",
            *lease_left as f64 / MS as f64
        ),
        Message::LeaseRequest { seq, ballot } => format!("lease request #{seq} b{ballot}"),
        Message::LeaseGrant { seq, fence } => format!("lease grant #{seq} fence {fence}"),
        Message::ReadQuery { id, keys, full } => {
            format!("read query #{id} {} keys full={full}", keys.len())
        }
        Message::ReadReport { id, view } => {
            format!("read report #{id} applied {} {:?}", view.applied, view.keys)
        }
        Message::ReadRepair { id, entries } => {
            format!("read repair #{id} {} entries", entries.len())
        }
        Message::ReadRepaired { id } => format!("read repaired #{id}"),
        Message::Commit { ballot, commit } => format!("commit b{ballot} through {commit}"),
        Message::CatchUpRequest { from_slot } => format!("catch-up request from {from_slot}"),
        Message::CatchUp { entries, commit } => {
            format!("catch-up {} entries, commit {commit}", entries.len())
        }
        Message::RecoveryQuery => "recovery query".to_string(),
        Message::RecoveryReport {
            promised,
            recovering,
            leading,
        } => format!(
            "recovery report: promised b{promised} recovering={recovering} leading {}",
            leading.map_or("-".to_string(), |(b, s)| format!(
                "b{b} proposed through {s}"
            ))
        ),
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Operations over all seeds.
    pub ops: usize,
    /// Violations over all seeds.
    pub violations: usize,
    /// Seeds with at least one violation.
    pub failing_seeds: Vec<u64>,
    /// Keys whose check gave up.
    pub undecided: usize,
    /// Snapshots sent to lagging replicas over all seeds.
    pub snapshots_sent: u64,
    /// Replica counters over all seeds.
    pub stats: Stats,
    /// Anti-entropy over all seeds.
    pub anti_entropy: AntiEntropyCounts,
    /// Snapshot chunks sent after a first one, over all seeds.
    pub snapshot_chunks_later: u64,
    /// Crashes that lost synced records, over all seeds.
    pub records_lost_crashes: u64,
}

/// Runs `count` seeds from `first`, each with `base`'s settings, calling `on_failure` for
/// each failing one.
pub fn run_many(
    first: u64,
    count: u64,
    base: &SimConfig,
    mut on_failure: impl FnMut(u64, &SimOutcome),
) -> Summary {
    let mut summary = Summary::default();
    for seed in first..first + count {
        let cfg = SimConfig {
            seed,
            ..base.clone()
        };
        let outcome = run(cfg);
        summary.seeds += 1;
        summary.ops += outcome.ops;
        summary.undecided += outcome.undecided;
        summary.snapshots_sent += outcome.snapshots_sent;
        summary.stats.add(&outcome.stats);
        summary.anti_entropy.entries_exchanged += outcome.anti_entropy.entries_exchanged;
        summary.anti_entropy.installed += outcome.anti_entropy.installed;
        summary.anti_entropy.damaged += outcome.anti_entropy.damaged;
        summary.snapshot_chunks_later += outcome.snapshot_chunks_later;
        summary.records_lost_crashes += outcome.records_lost_crashes;
        if !outcome.violations.is_empty() {
            summary.violations += outcome.violations.len();
            summary.failing_seeds.push(seed);
            on_failure(seed, &outcome);
        }
    }
    summary
}

#[cfg(test)]
mod tests;
