//! One shard: the Paxos replica of group i, its WAL, its peer links, and the session that
//! submits client commands to the group — all owned by one glommio executor.
//!
//! Inputs reach the [`Replica`] from four places, each a task on this executor: peer
//! frames (transport callback), client commands (front end, local or forwarded over the
//! inter-shard mesh), the tick timer, and WAL durability reports (group committer). After
//! every input the shard executes the replica's actions: sends go to the transport,
//! persists to the WAL, replies to whoever waits for them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::protocol::{
    Action, ClientReply, Command, Nanos, PersistId, Record, Replica, ReplicaId, Reply, Request,
    Token,
};
use crate::runtime::wal::{GroupCommitter, Lsn, Wal, WalOptions};
use crate::transport::{Transport, TransportConfig};

mod anti_entropy;

/// What shards of different replicas send each other: Paxos messages, and client
/// commands forwarded to the group's leader with their answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerMsg {
    /// A protocol message.
    Paxos(crate::protocol::Message),
    /// A client command for the leader to propose.
    Forward {
        /// Matches the answer to the question.
        id: u64,
        /// The command, with the forwarding shard's session.
        req: Request,
    },
    /// An anti-entropy request from an initiating replica.
    Merkle {
        /// Matches the answer.
        id: u64,
        /// The request.
        msg: crate::protocol::merkle::MerkleMsg,
    },
    /// The answer to `Merkle`.
    MerkleReply {
        /// The request's id.
        id: u64,
        /// The answer.
        msg: Option<crate::protocol::merkle::MerkleMsg>,
    },
    /// The leader's answer to a forwarded command.
    ForwardReply {
        /// The forward's id.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
}

/// Why a client command failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// No leader answered in time; the command may or may not have taken effect.
    #[error(
        "TIMEOUT no answer from the group's leader within {0} ms; the command may or may not have taken effect"
    )]
    Timeout(u64),
    /// The shard's log cannot be written; nothing more is acknowledged.
    #[error("IOERR the write-ahead log failed: {0}")]
    Storage(String),
    /// The command is larger than a WAL record can hold; it was not proposed.
    #[error("ERR command of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    TooLarge {
        /// Its size (an upper bound of its encoding).
        bytes: usize,
        /// `limits::COMMAND_BYTES_MAX`.
        bytes_max: usize,
    },
}

/// Counters of a shard, for INFO.
#[derive(Clone, Debug, Default)]
pub struct ShardCounters {
    /// Commands submitted by clients of this node.
    pub commands: u64,
    /// Commands sent to another replica's leader.
    pub forwarded: u64,
    /// Commands answered with an error.
    pub errors: u64,
    /// Records written to the WAL.
    pub records_persisted: u64,
    /// Records the WAL refused as too large (the core's size bound was wrong).
    pub records_too_large: u64,
    /// WAL syncs completed.
    pub syncs: u64,
    /// Anti-entropy rounds run from this shard (periodic or `COREPAX.REPAIR`), each against
    /// every other replica.
    pub anti_entropy_rounds: u64,
    /// Entries installed here by anti-entropy, as initiator or responder.
    pub anti_entropy_keys_repaired: u64,
    /// Of those, entries known to be on disk (in a snapshot written after they were
    /// installed).
    pub anti_entropy_keys_persisted: u64,
    /// Sessions that failed (peer down or silent) and repairs that could not be made
    /// durable.
    pub anti_entropy_failures: u64,
    /// Snapshots written to make repairs durable.
    pub anti_entropy_snapshots: u64,
    /// Bytes of peer frames sent only to serve reads: digest/quorum read queries, reports
    /// and repairs, and read commands forwarded to the leader.
    pub read_bytes_sent: u64,
    /// Bytes of peer frames sent to keep leases alive.
    pub lease_bytes_sent: u64,
    /// Times the shard's executor fell behind its tick by [`STALL_REPORTED`] or more.
    pub executor_stalls: u64,
    /// How far behind, summed (ms).
    pub executor_stall_ms: u64,
    /// Snapshots written to disk (any reason).
    pub snapshots_written: u64,
    /// Time their states took to freeze on the executor, summed (µs).
    pub snapshot_freeze_us: u64,
    /// Time their encoding, writing and fsync took on the blocking pool, summed (ms).
    pub snapshot_write_ms: u64,
}

/// The state of one shard. Shared by its tasks through `Rc`; never leaves its executor.
pub struct Shard {
    /// Shard index = Paxos group.
    pub index: usize,
    /// Debug: peer traffic is dropped both ways (`COREPAX.DEBUG PARTITION ON`).
    partitioned: std::cell::Cell<bool>,
    cfg: NodeConfig,
    replica: RefCell<Replica>,
    transport: RefCell<Option<Transport<PeerMsg>>>,
    wal: GroupCommitter,
    storage_error: RefCell<Option<String>>,
    /// WAL positions of records not yet durable, with the core's ids for them.
    persisting: RefCell<VecDeque<(Lsn, PersistId)>>,
    /// Encoded records the WAL had no room for yet (`PendingFull`: a sync is writing what
    /// it holds), in the core's order; appended as syncs complete.
    overflow: RefCell<VecDeque<(Vec<u8>, PersistId)>>,
    /// Local callers waiting for the core's reply to a token, with their request's
    /// deadline: the ticker drops the expired ones (their callers then time out), so a
    /// request costs no timer of its own.
    waiters: RefCell<HashMap<Token, (oneshot::Sender<ClientReply>, Instant)>>,
    /// Commands another replica forwarded to us: our token → (that replica, its id).
    remote: RefCell<HashMap<Token, (ReplicaId, u64)>>,
    /// Commands we forwarded to the leader: id → waiter.
    forwarded: RefCell<HashMap<u64, oneshot::Sender<ClientReply>>>,
    next_token: Cell<u64>,
    session: RefCell<Session>,
    started: Instant,
    counters: RefCell<ShardCounters>,
    actions: RefCell<Vec<Action>>,
    /// The last WAL position handed out: a snapshot covers every record up to it.
    last_lsn: Cell<Lsn>,
    /// Applied index of the last snapshot written (or being written).
    snapshot_at: Cell<u64>,
    snapshot_running: Cell<bool>,
    snapshot_wanted: Cell<bool>,
    /// Whether the replica was recovering lost WAL records at the last step (to log the
    /// start and the end once each).
    recovering_logged: Cell<bool>,
    snapshot_dir: std::path::PathBuf,
    /// Answers other replicas' anti-entropy sessions (stateless between messages).
    responder: RefCell<crate::protocol::merkle::Responder>,
    /// Our anti-entropy requests waiting for an answer.
    merkle_waiters:
        RefCell<HashMap<u64, oneshot::Sender<Option<crate::protocol::merkle::MerkleMsg>>>>,
    /// One anti-entropy round at a time per shard: a periodic round and `COREPAX.REPAIR`
    /// wait for each other instead of comparing the same trees twice at once.
    repair_lock: glommio::sync::Semaphore,
    /// Bumped whenever anti-entropy installs entries (as initiator or responder): the
    /// in-memory state then holds something neither the WAL nor a snapshot has.
    repairs_installed: Cell<u64>,
    /// The `repairs_installed` value the newest written snapshot captured.
    repairs_durable: Cell<u64>,
    /// Whether the last periodic round failed, so a peer that stays down is reported once.
    anti_entropy_failing: Cell<bool>,
}

/// This shard's client session in its group: unique per process lifetime, so a restarted
/// node never collides with its earlier sequence numbers.
struct Session {
    client: u64,
    next_seq: u64,
    outstanding: BTreeSet<u64>,
}

impl Session {
    fn begin(&mut self) -> (u64, u64) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.outstanding.insert(seq);
        let floor = *self.outstanding.first().expect("just inserted");
        (seq, floor)
    }

    fn end(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
    }
}

/// How often the replica's timers are driven.
/// Heartbeats are 50 ms apart by default; 5 ms keeps timers precise enough without
/// waking idle shards a thousand times a second.
const TICK_INTERVAL: Duration = Duration::from_millis(5);
/// How long a forwarded command waits before it is sent again the first time; each resend
/// to the same leader waits twice as long as the one before. A large command takes seconds
/// to be logged on a quorum, and every resend crosses the link again (the leader does not
/// propose it twice). A change of leader resends at once.
const FORWARD_RETRY: Duration = Duration::from_millis(500);
/// How often a forward waiting for its answer checks whether the leader changed.
const FORWARD_LEADER_CHECK: Duration = Duration::from_millis(50);
/// A tick this late counts as an executor stall (INFO `executor_stalls`).
const STALL_REPORTED: Duration = Duration::from_millis(20);
impl Shard {
    /// Opens the WAL, recovers the replica from it, and starts the shard's tasks:
    /// transport, group committer, ticker.
    pub async fn start(cfg: NodeConfig, index: usize) -> anyhow::Result<Rc<Shard>> {
        let dir = cfg.data_dir.join(format!("shard-{index}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let opts = WalOptions {
            sync: !cfg.no_fsync,
            ..WalOptions::default()
        };
        let snapshot_dir = dir.join("snapshots");
        let loaded = crate::runtime::snapshot::load_latest_offloaded(snapshot_dir.clone())
            .await
            .map_err(|e| anyhow::anyhow!("loading the snapshot of shard {index}: {e}"))?;
        let (snapshot, snapshot_lsn) = match loaded {
            Some(s) => {
                let snap: crate::protocol::Snapshot =
                    postcard::from_bytes(s.bytes()).map_err(|e| {
                        anyhow::anyhow!("snapshot {} does not decode: {e}", s.path.display())
                    })?;
                eprintln!(
                    "shard {index}: loaded snapshot at slot {} ({} keys)",
                    snap.last_included,
                    snap.kv.entries.len()
                );
                (Some(snap), s.meta.wal_lsn)
            }
            None => (None, 0),
        };
        let (wal, recovery) = Wal::open(&dir.join("wal"), opts)
            .await
            .map_err(|e| anyhow::anyhow!("opening the WAL of shard {index}: {e}"))?;
        if let Some(damage) = &recovery.damage {
            eprintln!(
                "shard {index}: WAL recovery stopped at damage and dropped the rest, a torn tail (never synced, so never acknowledged): {damage}"
            );
        }
        let wal_end_lsn = wal.durable_lsn().0;
        // Lost records that a snapshot covers are moot: it holds what they said.
        let forgot_records = recovery
            .mid_log
            .as_ref()
            .is_some_and(|m| m.last_lost.0 > snapshot_lsn);
        if let Some(mid) = &recovery.mid_log {
            if forgot_records {
                eprintln!(
                    "shard {index}: {mid}; this replica may have forgotten promises and votes it acknowledged, \
                     so it rejoins as a learner: no votes, elections or local reads until it has recovered \
                     the chosen slots from the group"
                );
            } else {
                eprintln!(
                    "shard {index}: {mid}; the snapshot at WAL {} covers the lost records",
                    Lsn(snapshot_lsn)
                );
            }
        }
        let mut records = Vec::with_capacity(recovery.records.len());
        for (lsn, bytes) in &recovery.records {
            if lsn.0 <= snapshot_lsn {
                continue; // Covered by the snapshot.
            }
            match postcard::from_bytes::<Record>(bytes) {
                Ok(r) => records.push(r),
                Err(e) => {
                    eprintln!(
                        "shard {index}: WAL record at {lsn} does not decode ({e}); replay stops there"
                    );
                    break;
                }
            }
        }
        let seed = xxhash_rust::xxh3::xxh3_64(
            format!("{}-{index}-{:?}", cfg.id, std::time::SystemTime::now()).as_bytes(),
        );
        let replica = Replica::recover(
            cfg.protocol.clone(),
            ReplicaId(cfg.id),
            seed,
            snapshot,
            records,
            forgot_records,
        );
        if !recovery.records.is_empty() {
            eprintln!(
                "shard {index}: recovered {} records; commit index {}",
                recovery.records.len(),
                replica.commit_index()
            );
        }
        let replica_applied = replica.applied_index();
        let shard = Rc::new(Shard {
            index,
            partitioned: std::cell::Cell::new(false),
            replica: RefCell::new(replica),
            transport: RefCell::new(None),
            wal: GroupCommitter::new(wal),
            storage_error: RefCell::new(None),
            persisting: RefCell::new(VecDeque::new()),
            overflow: RefCell::new(VecDeque::new()),
            waiters: RefCell::new(HashMap::new()),
            remote: RefCell::new(HashMap::new()),
            forwarded: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            session: RefCell::new(Session {
                client: seed | 1,
                next_seq: 0,
                outstanding: BTreeSet::new(),
            }),
            started: Instant::now(),
            counters: RefCell::new(ShardCounters::default()),
            actions: RefCell::new(Vec::new()),
            // After lost records, the snapshot that ends recovery must cover every LSN
            // read, or the next start would report the loss again.
            last_lsn: Cell::new(Lsn(if forgot_records {
                snapshot_lsn.max(wal_end_lsn)
            } else {
                snapshot_lsn
            })),
            recovering_logged: Cell::new(forgot_records),
            snapshot_at: Cell::new(replica_applied),
            snapshot_running: Cell::new(false),
            snapshot_wanted: Cell::new(false),
            snapshot_dir,
            responder: RefCell::new(crate::protocol::merkle::Responder::new(
                crate::protocol::merkle::SessionLimits::default(),
            )),
            merkle_waiters: RefCell::new(HashMap::new()),
            repair_lock: glommio::sync::Semaphore::new(1),
            repairs_installed: Cell::new(0),
            repairs_durable: Cell::new(0),
            anti_entropy_failing: Cell::new(false),
            cfg,
        });
        // Before any proposal: the log time a leader stamps is the wall clock.
        shard.sync_wall_clock();
        let tcfg = TransportConfig {
            cluster_id: shard.cfg.cluster_id,
            me: shard.cfg.id,
            shard: index as u16,
            listen: shard.cfg.peer_addr(usize::from(shard.cfg.id), index),
            peers: (0..shard.cfg.peers.len())
                .map(|r| (r != usize::from(shard.cfg.id)).then(|| shard.cfg.peer_addr(r, index)))
                .collect(),
            frame_bytes_max: crate::limits::PEER_FRAME_BYTES_MAX,
            send_queue_bytes_max: crate::limits::PEER_FRAME_BYTES_MAX,
            reconnect_backoff_min_ms: 5,
            reconnect_backoff_max_ms: 200,
        };
        let weak = Rc::downgrade(&shard);
        let transport = Transport::start(tcfg, move |from, msg: PeerMsg| {
            if let Some(s) = weak.upgrade() {
                s.on_peer(ReplicaId(from), msg);
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("shard {index}: peer transport: {e}"))?;
        *shard.transport.borrow_mut() = Some(transport);

        let s = shard.clone();
        glommio::spawn_local(async move {
            let s2 = s.clone();
            let result = s.wal.run(move |lsn| s2.on_durable(lsn)).await;
            if let Err(e) = result {
                eprintln!(
                    "shard {}: WAL failed, no more writes are acknowledged: {e}",
                    s.index
                );
                *s.storage_error.borrow_mut() = Some(e.to_string());
            }
        })
        .detach();
        glommio::spawn_local(shard.clone().keep_spare_segments()).detach();
        let s = shard.clone();
        glommio::spawn_local(async move {
            let mut last = Instant::now();
            loop {
                glommio::timer::sleep(TICK_INTERVAL).await;
                // A tick much later than asked for: the executor was blocked or its
                // thread not scheduled; either way every request here waited as long.
                let late = last.elapsed().saturating_sub(TICK_INTERVAL);
                last = Instant::now();
                if late >= STALL_REPORTED {
                    let mut c = s.counters.borrow_mut();
                    c.executor_stalls += 1;
                    c.executor_stall_ms += late.as_millis() as u64;
                }
                let now = s.now();
                s.sync_wall_clock();
                s.step(|r| r.on_tick(now));
                s.expire_waiters(Instant::now());
                if s.snapshot_due() {
                    s.snapshot_running.set(true);
                    let s = s.clone();
                    glommio::spawn_local(async move {
                        // A failure is reported inside; the WAL still holds everything.
                        let _ = s.write_snapshot().await;
                    })
                    .detach();
                }
            }
        })
        .detach();
        if shard.cfg.anti_entropy_interval_ms > 0 {
            glommio::spawn_local(shard.clone().run_anti_entropy()).detach();
        }
        Ok(shard)
    }

    fn now(&self) -> Nanos {
        self.started.elapsed().as_nanos() as Nanos
    }

    /// Tells the replica the wall clock, which it stamps into the log as a leader (key
    /// expiry counts by it); read again every tick, so a clock that is corrected is
    /// followed.
    fn sync_wall_clock(&self) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.replica
            .borrow_mut()
            .set_wall_clock(self.now(), unix_ms);
    }

    /// Runs one input through the replica and executes what it asks for.
    fn step(&self, f: impl FnOnce(&mut Replica)) {
        let mut actions = std::mem::take(&mut *self.actions.borrow_mut());
        {
            let mut r = self.replica.borrow_mut();
            f(&mut r);
            r.drain_into(&mut actions);
            if r.recovering() != self.recovering_logged.get() {
                self.recovering_logged.set(r.recovering());
                eprintln!(
                    "shard {}: recovery of lost WAL records {}; commit index {}",
                    self.index,
                    if r.recovering() {
                        "started"
                    } else {
                        "finished: voting again"
                    },
                    r.commit_index()
                );
            }
        }
        for a in actions.drain(..) {
            self.execute(a);
        }
        *self.actions.borrow_mut() = actions;
    }

    /// Prepares a pre-written WAL segment, beside the committer, once the current one is
    /// half full and no free one is ready: without it, the sync that fills a segment writes
    /// a whole new one (64 MiB of zeros and an fsync) before it completes, and every write
    /// waiting on it stalls. A failure only means the next roll creates its segment inline;
    /// it is retried later.
    async fn keep_spare_segments(self: Rc<Self>) {
        const CHECK_INTERVAL: Duration = Duration::from_millis(100);
        const RETRY_INTERVAL: Duration = Duration::from_secs(5);
        loop {
            if self.wal.is_poisoned() {
                return;
            }
            if !self.wal.wants_spare() {
                glommio::timer::sleep(CHECK_INTERVAL).await;
                continue;
            }
            match self.wal.preallocate(1).await {
                Ok(()) => {}
                Err(e) => {
                    eprintln!(
                        "shard {}: preparing a spare WAL segment failed (retrying): {e}",
                        self.index
                    );
                    glommio::timer::sleep(RETRY_INTERVAL).await;
                }
            }
        }
    }

    /// Whether a snapshot is due: every `snapshot_interval_slots` applied, or asked for.
    fn snapshot_due(&self) -> bool {
        if self.snapshot_running.get() || self.storage_error.borrow().is_some() {
            return false;
        }
        if self.replica.borrow().recovering() {
            // It would cover the lost records, and the next start would vote on a state
            // missing them; the snapshot that ends recovery is the first.
            return false;
        }
        let applied = self.replica.borrow().applied_index();
        self.snapshot_wanted.get()
            || applied >= self.snapshot_at.get() + self.cfg.snapshot_interval_slots
    }

    /// Writes a snapshot on the blocking pool, then truncates the WAL it covers and
    /// compacts the in-memory log. Returns the slot it covers, or why writing it failed.
    async fn write_snapshot(self: Rc<Self>) -> Result<u64, String> {
        if self.replica.borrow().recovering() {
            self.snapshot_running.set(false);
            return Err("the replica is recovering lost WAL records (see snapshot_due)".into());
        }
        self.snapshot_running.set(true);
        self.snapshot_wanted.set(false);
        let started = Instant::now();
        let snap = self.replica.borrow().snapshot();
        let frozen = Instant::now();
        // Taken in the same step as the state it describes: the snapshot holds every
        // repair installed up to here.
        let repairs = self.repairs_installed.get();
        let covered = self.last_lsn.get();
        let at = snap.last_included;
        self.snapshot_at.set(at);
        let meta = crate::runtime::snapshot::SnapshotMeta {
            last_included: at,
            wal_lsn: covered.0,
        };
        let dir = self.snapshot_dir.clone();
        let written = glommio::executor()
            .spawn_blocking(move || {
                // Streamed to the file: the state is never encoded whole in memory.
                crate::runtime::snapshot::write_snapshot_with(&dir, meta, |w| {
                    postcard::to_io(&snap, w)
                        .map(drop)
                        .map_err(std::io::Error::other)
                })
                .map_err(|e| e.to_string())
            })
            .await;
        let result = match written {
            Ok(_) => {
                {
                    let mut c = self.counters.borrow_mut();
                    c.snapshots_written += 1;
                    c.snapshot_freeze_us += (frozen - started).as_micros() as u64;
                    c.snapshot_write_ms += frozen.elapsed().as_millis() as u64;
                }
                self.repairs_durable
                    .set(self.repairs_durable.get().max(repairs));
                if let Err(e) = self.wal.truncate_before(Lsn(covered.0 + 1)).await {
                    self.fail_storage(format!("truncating the WAL: {e}"));
                }
                let keep = self.cfg.log_retain_slots;
                self.replica.borrow_mut().compact(at.saturating_sub(keep));
                Ok(at)
            }
            // The WAL still holds everything: nothing is lost, only the compaction waits.
            Err(e) => {
                eprintln!("shard {}: snapshot at slot {at} failed: {e}", self.index);
                Err(e)
            }
        };
        self.snapshot_running.set(false);
        result
    }

    fn execute(&self, action: Action) {
        match action {
            Action::Send { to, msg } => {
                if msg.is_read_traffic() || msg.is_lease_traffic() {
                    let read = msg.is_read_traffic();
                    let bytes = self.send_peer_counted(to, &PeerMsg::Paxos(msg));
                    let mut c = self.counters.borrow_mut();
                    if read {
                        c.read_bytes_sent += bytes;
                    } else {
                        c.lease_bytes_sent += bytes;
                    }
                } else {
                    self.send_peer(to, &PeerMsg::Paxos(msg));
                }
            }
            Action::Persist { id, record } => {
                if self.storage_error.borrow().is_some() {
                    return; // Never reported durable: nothing depending on it goes out.
                }
                let bytes = match postcard::to_stdvec(&record) {
                    Ok(b) => b,
                    Err(e) => {
                        self.fail_storage(format!("encoding a record: {e}"));
                        return;
                    }
                };
                if !self.overflow.borrow().is_empty() {
                    // Behind records still waiting for room: keep the core's order.
                    self.overflow.borrow_mut().push_back((bytes, id));
                    return;
                }
                if let Err(back) = self.append_record(bytes, id) {
                    self.overflow.borrow_mut().push_back(back);
                }
            }
            Action::SaveSnapshot => self.snapshot_wanted.set(true),
            Action::Reply { token, reply } => {
                if let Some((tx, _)) = self.waiters.borrow_mut().remove(&token) {
                    let _ = tx.send(reply);
                } else if let Some((to, id)) = self.remote.borrow_mut().remove(&token) {
                    self.send_peer(to, &PeerMsg::ForwardReply { id, reply });
                }
            }
        }
    }

    /// Appends one encoded record. Without room in the WAL's buffer it is handed back, to
    /// wait in `overflow`: memory for unsynced records is bounded, and a record of the
    /// largest size always fits an empty buffer (`limits`), so it gets in once the sync in
    /// flight ends. Other errors stop the shard acknowledging.
    fn append_record(&self, bytes: Vec<u8>, id: PersistId) -> Result<(), (Vec<u8>, PersistId)> {
        use crate::runtime::wal::WalError;
        match self.wal.append(&bytes) {
            Ok(lsn) => {
                self.last_lsn.set(lsn);
                self.persisting.borrow_mut().push_back((lsn, id));
                self.counters.borrow_mut().records_persisted += 1;
            }
            Err(WalError::PendingFull { .. }) => return Err((bytes, id)),
            // The core drops every batch whose encoding bound exceeds the record limit,
            // and leaders never build one, so this means the bound is wrong. The WAL took
            // nothing and still works, but the core already counts this record as its
            // vote: skipping it would let the next durable record announce it. So the
            // shard stops acknowledging, as on an I/O error, naming the limit crossed.
            Err(e @ WalError::RecordTooLarge { .. }) => {
                self.counters.borrow_mut().records_too_large += 1;
                self.fail_storage(format!(
                    "{e} although the protocol's size bound admitted it (a bug)"
                ));
            }
            Err(e) => self.fail_storage(e.to_string()),
        }
        Ok(())
    }

    /// Appends the records that waited for room, in order, while there is room.
    fn drain_overflow(&self) {
        loop {
            let Some((bytes, id)) = self.overflow.borrow_mut().pop_front() else {
                return;
            };
            if self.storage_error.borrow().is_some() {
                // Nothing more is acknowledged: nothing more needs logging.
                self.overflow.borrow_mut().clear();
                return;
            }
            if let Err(back) = self.append_record(bytes, id) {
                self.overflow.borrow_mut().push_front(back);
                return;
            }
        }
    }

    fn fail_storage(&self, why: String) {
        eprintln!(
            "shard {}: storage failure, no more writes are acknowledged: {why}",
            self.index
        );
        *self.storage_error.borrow_mut() = Some(why);
    }

    fn send_peer(&self, to: ReplicaId, msg: &PeerMsg) {
        if self.partitioned.get() {
            return;
        }
        if let Some(t) = self.transport.borrow().as_ref() {
            t.send(to.0, msg);
        }
    }

    /// Sends like `send_peer` and says how many bytes the frame took (0 if dropped): the
    /// send only appends to the peer's queue, so the queue grows by exactly that much.
    fn send_peer_counted(&self, to: ReplicaId, msg: &PeerMsg) -> u64 {
        let t = self.transport.borrow();
        let Some(t) = t.as_ref().filter(|_| !self.partitioned.get()) else {
            return 0;
        };
        let before = t.queued_bytes(to.0);
        t.send(to.0, msg);
        t.queued_bytes(to.0).saturating_sub(before) as u64
    }

    fn on_durable(&self, lsn: Lsn) {
        self.drain_overflow();
        let mut last = None;
        {
            let mut p = self.persisting.borrow_mut();
            while p.front().is_some_and(|(l, _)| *l <= lsn) {
                last = p.pop_front().map(|(_, id)| id);
            }
        }
        self.counters.borrow_mut().syncs += 1;
        if let Some(id) = last {
            let now = self.now();
            self.step(|r| r.on_persisted(now, id));
        }
    }

    fn on_peer(self: &Rc<Self>, from: ReplicaId, msg: PeerMsg) {
        if self.partitioned.get() {
            return;
        }
        let now = self.now();
        match msg {
            PeerMsg::Paxos(m) => self.step(|r| r.on_message(now, from, m)),
            PeerMsg::Forward { id, req } => {
                let token = self.token();
                self.remote.borrow_mut().insert(token, (from, id));
                self.step(|r| r.on_request(now, token, req));
            }
            PeerMsg::Merkle { id, msg } => self.on_merkle(from, id, msg),
            PeerMsg::MerkleReply { id, msg } => {
                if let Some(tx) = self.merkle_waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(msg);
                }
            }
            PeerMsg::ForwardReply { id, reply } => {
                if let Some(tx) = self.forwarded.borrow_mut().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
        }
    }

    fn token(&self) -> Token {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        t
    }

    /// Submits a command to this shard's group and waits for it to be applied. The first
    /// attempt is made before this returns, so commands submitted one after another are
    /// proposed in that order (and batched together).
    pub fn submit(
        self: &Rc<Self>,
        cmd: Command,
    ) -> impl std::future::Future<Output = Result<Reply, SubmitError>> + 'static {
        self.counters.borrow_mut().commands += 1;
        let (seq, floor) = self.session.borrow_mut().begin();
        let req = Request {
            client: self.session.borrow().client,
            seq,
            ack_floor: floor,
            cmd,
        };
        let deadline = Instant::now() + Duration::from_millis(self.cfg.request_timeout_ms);
        let first = self.attempt(&req, self.reads_locally(&req), deadline);
        let shard = self.clone();
        async move {
            let result = shard.finish(req, first, deadline).await;
            shard.session.borrow_mut().end(seq);
            if result.is_err() {
                shard.counters.borrow_mut().errors += 1;
            }
            result
        }
    }

    /// Whether this replica may answer `req` itself in the configured read mode (leases
    /// held, or a quorum read it runs); if it cannot, the core says `NotLeader`.
    fn reads_locally(&self, req: &Request) -> bool {
        req.cmd.is_read_only() && self.cfg.protocol.read_mode.reads_away_from_leader()
    }

    /// One try: propose (or read) here if leading or reading locally, else forward to the
    /// leader.
    fn attempt(
        &self,
        req: &Request,
        local: bool,
        deadline: Instant,
    ) -> Option<(Token, oneshot::Receiver<ClientReply>, bool)> {
        let (leading, hint) = {
            let r = self.replica.borrow();
            (r.leading().is_some(), r.leader_hint())
        };
        let (tx, rx) = oneshot::channel();
        let token = self.token();
        if leading || local {
            self.waiters.borrow_mut().insert(token, (tx, deadline));
            let now = self.now();
            let req = req.clone();
            self.step(|r| r.on_request(now, token, req));
        } else {
            let leader = hint.filter(|l| l.0 != self.cfg.id)?;
            self.forwarded.borrow_mut().insert(token, tx);
            self.counters.borrow_mut().forwarded += 1;
            let msg = PeerMsg::Forward {
                id: token,
                req: req.clone(),
            };
            if req.cmd.is_read_only() {
                let bytes = self.send_peer_counted(leader, &msg);
                self.counters.borrow_mut().read_bytes_sent += bytes;
            } else {
                self.send_peer(leader, &msg);
            }
        }
        Some((token, rx, !(leading || local)))
    }

    async fn finish(
        self: &Rc<Self>,
        req: Request,
        mut pending: Option<(Token, oneshot::Receiver<ClientReply>, bool)>,
        deadline: Instant,
    ) -> Result<Reply, SubmitError> {
        let timeout_ms = self.cfg.request_timeout_ms;
        let mut local = self.reads_locally(&req);
        let mut forward_retry = FORWARD_RETRY;
        loop {
            if let Some(why) = self.storage_error.borrow().as_ref() {
                return Err(SubmitError::Storage(why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SubmitError::Timeout(timeout_ms));
            }
            let reply = match pending.take() {
                // A local proposal is answered for sure (applied, or refused when this
                // replica steps down), or its waiter is dropped at the deadline by the
                // ticker: no timer per request (creating and cancelling one was ~4% of the
                // leader's CPU under pipelined SETs).
                Some((_, rx, false)) => rx.await.ok(),
                // A forward may be lost with its leader: sent again after a while, or at
                // once when the leader it went to is no longer the one this replica knows.
                Some((token, rx, true)) => {
                    let wait = left.min(forward_retry);
                    forward_retry = forward_retry.saturating_mul(2);
                    let sent_to = self.replica.borrow().leader_hint();
                    let timed = futures_lite::future::or(async { rx.await.ok() }, async {
                        let until = Instant::now() + wait;
                        loop {
                            let left = until.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break;
                            }
                            glommio::timer::sleep(left.min(FORWARD_LEADER_CHECK)).await;
                            if self.replica.borrow().leader_hint() != sent_to {
                                break;
                            }
                        }
                        None
                    });
                    let reply = timed.await;
                    if self.replica.borrow().leader_hint() != sent_to {
                        // A new leader: its first resend waits the shortest time again.
                        forward_retry = FORWARD_RETRY;
                    }
                    if reply.is_none() {
                        // Nobody answered: forget the waiter (a late answer is dropped).
                        self.forwarded.borrow_mut().remove(&token);
                    }
                    reply
                }
                None => {
                    // No leader known yet: an election is running.
                    glommio::timer::sleep(Duration::from_millis(5).min(left)).await;
                    None
                }
            };
            match reply {
                Some(ClientReply::Done(r)) => return Ok(r),
                Some(ClientReply::NotLeader { .. }) if local => {
                    // This replica cannot answer the read itself now: the leader can.
                    local = false;
                }
                Some(ClientReply::NotLeader { .. }) => {
                    glommio::timer::sleep(Duration::from_millis(2)).await;
                }
                Some(ClientReply::Busy) => glommio::timer::sleep(Duration::from_millis(1)).await,
                Some(ClientReply::TooLarge { bytes, bytes_max }) => {
                    return Err(SubmitError::TooLarge { bytes, bytes_max });
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(SubmitError::Timeout(timeout_ms));
            }
            pending = self.attempt(&req, local, deadline);
        }
    }

    /// Drops the waiters whose request's deadline has passed; their callers then answer
    /// TIMEOUT. A reply the core gives later finds no waiter and is dropped.
    fn expire_waiters(&self, now: Instant) {
        self.waiters
            .borrow_mut()
            .retain(|_, (_, deadline)| *deadline > now);
    }

    /// Debug: drops every message to and from peers (on) or stops doing so (off).
    pub fn set_partitioned(&self, on: bool) {
        self.partitioned.set(on);
    }

    /// Debug: writes `key` in this replica's state machine only, bypassing Paxos, as a
    /// stale copy (version 0) — the kind of divergence anti-entropy must find and repair.
    pub fn set_local(&self, key: bytes::Bytes, value: bytes::Bytes) {
        let mut r = self.replica.borrow_mut();
        let kv = r.kv_mut();
        kv.force_local(key, crate::protocol::kv::Entry { value, version: 0 });
    }

    /// What INFO reports about this shard.
    pub fn info(&self) -> ShardInfo {
        let merkle_root = self.replica.borrow_mut().merkle_root();
        let r = self.replica.borrow();
        let transport = self.transport.borrow();
        ShardInfo {
            index: self.index,
            leading: r.leading().is_some(),
            recovering: r.recovering(),
            leader: r.leader_hint().map(|l| l.0),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            keys: r.kv().len(),
            merkle_root,
            merkle_bytes: r.kv().merkle().memory_bytes(),
            log_entries: r.log_len(),
            log_applied_bytes: r.applied_log_bytes(),
            stats: r.stats().clone(),
            counters: self.counters.borrow().clone(),
            peers_connected: transport.as_ref().map_or(0, |t| {
                t.stats().peers.iter().filter(|p| p.connected).count()
            }),
            storage_error: self.storage_error.borrow().clone(),
            sync_times: self.wal.sync_times(),
        }
    }
}

/// A snapshot of one shard's state, for INFO and DBSIZE.
#[derive(Clone, Debug)]
pub struct ShardInfo {
    /// Shard index.
    pub index: usize,
    /// Whether this replica leads the shard's group.
    pub leading: bool,
    /// Whether it is a learner recovering WAL records storage lost (it does not vote).
    pub recovering: bool,
    /// Who leads, if known.
    pub leader: Option<u8>,
    /// Chosen and known here.
    pub commit_index: u64,
    /// Applied to the state machine.
    pub applied_index: u64,
    /// Keys stored.
    pub keys: usize,
    /// Root of the shard's Merkle tree over its applied state.
    pub merkle_root: u64,
    /// Memory the shard's Merkle tree holds (fixed by its shape).
    pub merkle_bytes: usize,
    /// Log entries held in memory.
    pub log_entries: usize,
    /// Key and value bytes of the applied ones among them.
    pub log_applied_bytes: u64,
    /// Protocol counters.
    pub stats: crate::protocol::Stats,
    /// Runtime counters.
    pub counters: ShardCounters,
    /// Peers with an outgoing link up.
    pub peers_connected: usize,
    /// Why storage failed, if it did.
    pub storage_error: Option<String>,
    /// How long WAL syncs took.
    pub sync_times: crate::runtime::wal::SyncTimes,
}
