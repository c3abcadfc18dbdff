//! One shard: the replica of group i (Multi-Paxos or Raft, a [`Consensus`]), its WAL, its
//! peer links, and the session that submits client commands to the group — all owned by
//! one glommio executor.
//!
//! Inputs reach the replica from four places, each a task on this executor: peer
//! frames (transport callback), client commands (front end, local or forwarded over the
//! inter-shard mesh), the tick timer, and WAL durability reports (group committer). After
//! every input the shard executes the replica's actions: sends go to the transport,
//! persists to the WAL, replies to whoever waits for them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::protocol::client::{ClientError, ClientOutput, ClientPath, Handle, LeaderView};
use crate::protocol::consensus::record_protocol;
use crate::protocol::outbox::{Effects, Outbox, SnapshotSchedule, SyncStart};
use crate::protocol::{
    ClientReply, Command, Consensus, ConsensusSnapshot, Core, MapHasher, Message, Nanos, PersistId,
    Record, ReplicaId, Reply, Request, Token,
};
use crate::runtime::affinity::RolePlacement;
use crate::runtime::wal::{GroupCommitter, Lsn, Wal, WalOptions};
use crate::transport::{Transport, TransportConfig};

mod anti_entropy;
mod blocking;
mod client;
mod info;
mod offload;
mod peers;
mod pubsub;
mod reads_clock;
use reads_clock::ReadsClock;
mod received;
mod snapshot;
mod storage;
mod ticker;

pub use blocking::{Blocking, pops_held};
pub use client::{SubmitError, Submitted};
pub use info::{ShardCounters, ShardInfo};
pub use peers::PeerMsg;
pub use pubsub::{ConnId, PubsubAnswer, PubsubInfo, PubsubOp};

/// What a shard recovered from its disk: the replica, and the WAL to go on with.
struct Recovered {
    replica: Consensus,
    wal: Wal,
    /// Seeds the replica's and the session's randomness (per process lifetime).
    seed: u64,
    snapshot_dir: std::path::PathBuf,
    /// The WAL position the next snapshot covers at least.
    last_lsn: Lsn,
    /// Storage lost records no snapshot covers: the replica rejoins as a learner.
    forgot_records: bool,
}

impl Recovered {
    /// Loads the latest snapshot and replays the WAL after it.
    async fn open(cfg: &NodeConfig, index: usize) -> anyhow::Result<Recovered> {
        let dir = cfg.data_dir.join(format!("shard-{index}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let opts = WalOptions {
            sync: !cfg.no_fsync,
            ..WalOptions::default()
        };
        let snapshot_dir = dir.join("snapshots");
        let protocol = cfg.protocol.protocol;
        let (snapshot, snapshot_lsn, lost_snapshot) =
            load_snapshot(index, &snapshot_dir, protocol).await?;
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
        let forgot_records = lost_snapshot
            || recovery
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
        if lost_snapshot {
            eprintln!(
                "shard {index}: the newest snapshot is corrupt and the WAL before it was truncated, \
                 so this replica rejoins as a learner: no votes, elections or local reads until it has \
                 recovered the state from the group; the snapshot that ends recovery replaces it"
            );
        }
        let mut records = Vec::with_capacity(recovery.records.len());
        for (lsn, bytes) in &recovery.records {
            if lsn.0 <= snapshot_lsn {
                continue; // Covered by the snapshot.
            }
            match postcard::from_bytes::<Record>(bytes) {
                Ok(r) if record_protocol(&r) != protocol => anyhow::bail!(
                    "shard {index}: the WAL holds {} records (at {lsn}) but protocol = {protocol}: \
                     start with protocol = {} or an empty data directory",
                    record_protocol(&r),
                    record_protocol(&r)
                ),
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
        let replica = Consensus::recover(
            cfg.protocol.clone(),
            ReplicaId(cfg.id),
            seed,
            snapshot,
            records,
            forgot_records,
        );
        if replica.recovering() && !forgot_records {
            eprintln!(
                "shard {index}: the WAL holds a stale-data mark (a restart check found this data \
                 directory older than what this replica acknowledged, and it had not caught up \
                 since), so it rejoins as a learner: no votes, elections or local reads until it \
                 has caught up from the group"
            );
        }
        if !recovery.records.is_empty() {
            eprintln!(
                "shard {index}: recovered {} records; commit index {}",
                recovery.records.len(),
                replica.commit_index()
            );
        }
        Ok(Recovered {
            replica,
            wal,
            seed,
            snapshot_dir,
            // After lost records, the snapshot that ends recovery must cover every LSN
            // read, or the next start would report the loss again.
            last_lsn: Lsn(if forgot_records {
                snapshot_lsn.max(wal_end_lsn)
            } else {
                snapshot_lsn
            }),
            forgot_records,
        })
    }
}

/// Loads the newest snapshot that verifies and decodes: the state, the WAL position it
/// covers, and whether a newer snapshot was corrupt. The WAL was truncated up to the
/// newest snapshot, so without it the records between an older snapshot (or none) and the
/// WAL's start are gone: the replica must rejoin as a learner and recover them from its
/// peers (their state arrives by catch-up or snapshot transfer, and the snapshot that
/// ends recovery replaces the corrupt file). A corrupt snapshot is never half-loaded.
async fn load_snapshot(
    index: usize,
    dir: &std::path::Path,
    protocol: crate::config::Protocol,
) -> anyhow::Result<(Option<ConsensusSnapshot>, u64, bool)> {
    use crate::runtime::snapshot::SnapshotError;
    let loaded = match crate::runtime::snapshot::load_latest_offloaded(dir.to_path_buf()).await {
        Ok(loaded) => loaded,
        Err(e @ SnapshotError::AllCorrupt { .. }) => {
            eprintln!("shard {index}: {e}; starting from the WAL alone");
            return Ok((None, 0, true));
        }
        Err(e) => anyhow::bail!("loading the snapshot of shard {index}: {e}"),
    };
    let Some(s) = loaded else {
        return Ok((None, 0, false));
    };
    match snapshot::decode(&s) {
        Ok(snap) => {
            if snap.protocol() != protocol {
                anyhow::bail!(
                    "shard {index}: snapshot {} was written by a {} replica but protocol = {protocol}: \
                     start with protocol = {} or an empty data directory",
                    s.path.display(),
                    snap.protocol(),
                    snap.protocol()
                );
            }
            eprintln!(
                "shard {index}: loaded snapshot at slot {} ({}, {} keys)",
                Consensus::snapshot_slot(&snap),
                snap.protocol(),
                snap.keys()
            );
            Ok((Some(snap), s.meta.wal_lsn, !s.skipped_corrupt.is_empty()))
        }
        Err(e) => {
            // Checksums matched but the payload does not decode (written by a bug or
            // another version): as corrupt as a flipped bit.
            eprintln!(
                "shard {index}: snapshot {} does not decode ({e:#}); starting from the WAL alone",
                s.path.display()
            );
            Ok((None, 0, true))
        }
    }
}

/// The state of one shard. Shared by its tasks through `Rc`; never leaves its executor.
pub struct Shard {
    /// Shard index = Paxos group.
    pub index: usize,
    /// Debug: peer traffic is dropped both ways (`COREPAX.DEBUG PARTITION ON`).
    partitioned: std::cell::Cell<bool>,
    cfg: NodeConfig,
    replica: RefCell<Consensus>,
    transport: RefCell<Option<Transport<PeerMsg>>>,
    wal: GroupCommitter,
    storage_error: RefCell<Option<String>>,
    /// WAL positions of records not yet durable, with the core's ids for them.
    persisting: RefCell<VecDeque<(Lsn, PersistId)>>,
    /// Encoded records the WAL had no room for yet (`PendingFull`: a sync is writing what
    /// it holds), in the core's order; appended as syncs complete.
    overflow: RefCell<VecDeque<(Vec<u8>, PersistId)>>,
    /// This node's client path in the group: session, forwarding, retries, deadlines.
    client: RefCell<ClientPath>,
    /// The ticker sleeps its idle interval (`ticker::Idle`); a command wakes it.
    ticker: ticker::Idle,
    /// The frame of the last accept or append broadcast (`ShardEffects::send_encoded`),
    /// kept for its allocation.
    broadcast_frame: RefCell<Vec<u8>>,
    /// A record being encoded for the WAL (and a received message's batch being told
    /// apart from its other fields), kept for its allocation.
    record_buf: RefCell<Vec<u8>>,
    /// Local callers waiting for their command to finish (the client path expires it at
    /// its deadline, driven by the ticker: a request costs no timer of its own).
    callers: RefCell<HashMap<Handle, client::Call, MapHasher>>,
    /// Reused by `run_client_path`: the proposals handed to one step.
    proposals: Cell<Vec<(Token, Request)>>,
    /// Set while the client path's outputs are carried out (a proposal steps the replica,
    /// whose replies feed the client path again: the outer loop takes its new outputs).
    client_running: Cell<bool>,
    /// Forwards or their answers came from a peer and wait in the client path for the
    /// end of the read that brought them (`on_peer_drained`).
    client_path_waits: Cell<bool>,
    /// Commands forwarded here by the read from a peer in progress, in arrival order
    /// (from, id, command, answered there), served at its end (`serve_forwards`).
    forwards: Cell<Vec<(ReplicaId, u64, Request, bool)>>,
    /// The earliest back-off timer running, if any (`wake_client`).
    client_wake_at: Cell<Option<Nanos>>,
    /// Ids of this shard's anti-entropy requests.
    next_merkle_id: Cell<u64>,
    /// This shard, for the timers it starts.
    me: std::rc::Weak<Shard>,
    started: Instant,
    /// How much faster than real time this shard's clock runs (ppm; negative: slower).
    /// Zero unless a debug node was started with `COREPAX_DEBUG_CLOCK_RATE_PPM`, to test
    /// the clock-rate check on real processes.
    clock_rate_ppm: i64,
    /// Whether the clock-rate check trusted clocks at the last step (to log changes).
    clocks_trusted_logged: Cell<bool>,
    /// The cores this executor moves to as it leads or follows, when the node places
    /// by role (`leader_cpus`).
    placement: Option<RolePlacement>,
    /// The timer of the running lazy-sync wait, if any (`ShardEffects::check_lazy_sync`).
    lazy_timer: RefCell<Option<glommio::timer::TimerActionOnce<()>>>,
    /// The clock reading shared by the lease reads of one client pipeline
    /// ([`Shard::sharing_one_clock_reading`]).
    reads_clock: ReadsClock,
    counters: RefCell<ShardCounters>,
    /// The replica's action buffer and snapshot schedule.
    outbox: RefCell<Outbox>,
    /// The last WAL position handed out: a snapshot covers every record up to it.
    last_lsn: Cell<Lsn>,
    snapshot_running: Cell<bool>,
    /// A step found a snapshot due; the ticker starts writing it.
    snapshot_wanted: Cell<bool>,
    /// Whether the replica was recovering lost WAL records at the last step (to log the
    /// start and the end once each).
    recovering_logged: Cell<bool>,
    /// Stale data directory detections already logged (`protocol/stale.rs`).
    stale_logged: Cell<u64>,
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
    /// Blocking pops waiting for a list to appear at their keys.
    list_waiters: RefCell<blocking::ListWaiters>,
    /// Subscribers, key watches and the change history they resume from.
    pubsub: RefCell<pubsub::Pubsub>,
}

/// A shard's replica's effects: the transport, the WAL, the client path.
struct ShardEffects<'a> {
    shard: &'a Shard,
    /// The replica's view of the leader after the step.
    view: LeaderView,
    /// The time, once a reply needed it.
    now: Option<Nanos>,
    /// The broadcast message whose frame `Shard::broadcast_frame` holds, encoded in this step.
    encoded: Option<FrameKey>,
    /// The batch of the message this step handles, as it arrived: logged as it came.
    received: Option<received::Received<'a>>,
    /// The batch whose bytes `Shard::record_buf` holds from this offset on (the last
    /// record logged ended with it): a frame sending it copies them.
    logged: Option<(crate::protocol::Batch, usize)>,
    /// A record of this step syncs after its sends (`SyncStart::AfterSends`): the step
    /// flushes the WAL once every action is carried out.
    flush_after: bool,
}

/// Names a message a leader broadcasts, each a batch of up to `batch_max` commands (or
/// several): two messages with the same key are the same message, so its frame is encoded
/// once for every follower. Batches are compared by their very allocation (a broadcast
/// clones the `Arc`); none is allocated while a step's actions are carried out, so an
/// address is not reused within the step.
#[derive(Clone, PartialEq, Eq)]
enum FrameKey {
    /// A Multi-Paxos accept: ballot, slot, commit index and batch.
    Accept(crate::protocol::Ballot, u64, u64, *const Request),
    /// A Raft append: term, previous index and term, commit index, and the entries' terms
    /// and batches in order (one per follower, built from the same log entries).
    Append {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        commit: u64,
        entries: Vec<(u64, *const Request)>,
    },
}

impl FrameKey {
    /// The key of `msg` if it is a Raft append.
    fn of_append(msg: &crate::protocol::raft::Msg) -> Option<FrameKey> {
        let crate::protocol::raft::Msg::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
        } = msg
        else {
            return None;
        };
        Some(FrameKey::Append {
            term: *term,
            prev_index: *prev_index,
            prev_term: *prev_term,
            commit: *commit,
            entries: entries.iter().map(|(t, b)| (*t, b.as_ptr())).collect(),
        })
    }

    /// Whether `msg` is the Raft append this key names (compared without building a key).
    fn is_append(&self, msg: &crate::protocol::raft::Msg) -> bool {
        let (
            FrameKey::Append {
                term,
                prev_index,
                prev_term,
                commit,
                entries,
            },
            crate::protocol::raft::Msg::Append {
                term: t,
                prev_index: pi,
                prev_term: pt,
                entries: e,
                commit: c,
            },
        ) = (self, msg)
        else {
            return false;
        };
        (term, prev_index, prev_term, commit) == (t, pi, pt, c)
            && entries.len() == e.len()
            && entries
                .iter()
                .zip(e)
                .all(|(&(kt, kb), (et, eb))| kt == *et && kb == eb.as_ptr())
    }
}

impl ShardEffects<'_> {
    /// Sends a message a leader broadcasts to a follower, encoding it only for the first
    /// (`key` is `None` when the frame held is already this message's).
    fn send_encoded(&mut self, to: ReplicaId, key: Option<FrameKey>, msg: Message) {
        let s = self.shard;
        if let Some(key) = key {
            let mut frame = s.broadcast_frame.borrow_mut();
            frame.clear();
            let reused = self.logged.as_ref().is_some_and(|(batch, start)| {
                let buf = s.record_buf.borrow();
                received::encode_frame(&msg, (batch, &buf[*start..]), &mut frame)
            });
            if reused {
                s.counters.borrow_mut().frames_sent_as_logged += 1;
            }
            let msg = PeerMsg::Paxos(msg);
            if !reused && crate::wire::frame::encode(&msg, &mut frame).is_err() {
                // The transport fails to encode it too, and counts the drop.
                drop(frame);
                self.encoded = None;
                return s.send_peer(to, &msg);
            }
            self.encoded = Some(key);
        }
        s.send_peer_frame(to, &s.broadcast_frame.borrow());
    }
}

impl Effects for ShardEffects<'_> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        let s = self.shard;
        if let Message::Accept {
            ballot,
            slot,
            batch,
            commit,
        } = &msg
        {
            let key = FrameKey::Accept(*ballot, *slot, *commit, batch.as_ptr());
            let key = (self.encoded.as_ref() != Some(&key)).then_some(key);
            return self.send_encoded(to, key, msg);
        }
        if let Message::Raft(append @ crate::protocol::raft::Msg::Append { .. }) = &msg {
            let key = match &self.encoded {
                Some(k) if k.is_append(append) => None,
                _ => FrameKey::of_append(append),
            };
            return self.send_encoded(to, key, msg);
        }
        if msg.is_read_traffic() || msg.is_lease_traffic() {
            let read = msg.is_read_traffic();
            let bytes = s.send_peer_counted(to, &PeerMsg::Paxos(msg));
            let mut c = s.counters.borrow_mut();
            if read {
                c.read_bytes_sent += bytes;
            } else {
                c.lease_bytes_sent += bytes;
            }
        } else {
            s.send_peer(to, &PeerMsg::Paxos(msg));
        }
    }

    fn persist(&mut self, id: PersistId, record: Record, sync: SyncStart) {
        let s = self.shard;
        if s.storage_error.borrow().is_some() {
            return; // Never reported durable: nothing depending on it goes out.
        }
        let mut buf = s.record_buf.borrow_mut();
        let received = self.received.as_ref();
        self.logged = None;
        let tail: &[u8] = match received.and_then(|r| r.encode_record(&record, &mut buf)) {
            Some(batch) => {
                s.counters.borrow_mut().records_logged_as_received += 1;
                batch
            }
            None => match received::encode_record(&record, &mut buf) {
                Ok(logged) => {
                    self.logged = logged;
                    &[]
                }
                Err(e) => {
                    drop(buf);
                    s.fail_storage(format!("encoding a record: {e}"));
                    return;
                }
            },
        };
        if !s.overflow.borrow().is_empty() {
            // Behind records still waiting for room: keep the core's order.
            s.overflow
                .borrow_mut()
                .push_back(([&buf[..], tail].concat(), id));
            return;
        }
        // One to sync after the step's sends is appended without waking the committer;
        // the step flushes the WAL once its sends have woken the peer links' writers.
        self.flush_after |= sync == SyncStart::AfterSends;
        if let Err(back) = s.append_record(&[&buf, tail], id, sync != SyncStart::Now) {
            s.overflow.borrow_mut().push_back(back);
        }
    }

    fn reply(&mut self, token: Token, reply: ClientReply) {
        let s = self.shard;
        let now = *self.now.get_or_insert_with(|| s.now());
        s.client
            .borrow_mut()
            .on_core_reply(now, token, reply, self.view);
    }

    /// A timer of its own (the ticker's 5 ms is far too coarse for a wait of µs): when it
    /// runs out, the WAL syncs if the core still wants its lazy records durable. One per
    /// shard: a new wait replaces the last one's timer, and a step after which no wait
    /// runs drops it (`Shard::drop_idle_lazy_timer`), so a slot chosen in time costs no
    /// wake-up when its wait would have ended.
    fn check_lazy_sync(&mut self, after: Nanos) {
        let Some(shard) = self.shard.me.upgrade() else {
            return;
        };
        let timer =
            glommio::timer::TimerActionOnce::do_in(Duration::from_nanos(after), async move {
                let now = shard.now();
                if shard.replica.borrow_mut().lazy_sync_due(now) {
                    shard.wal.flush();
                }
            });
        if let Some(old) = self.shard.lazy_timer.replace(Some(timer)) {
            old.destroy();
        }
    }

    /// Written by the ticker on the blocking pool (`Shard::write_snapshot`).
    fn save_snapshot(&mut self) {
        self.shard.snapshot_wanted.set(true);
    }
}

/// Faults a test can turn on in a node started with `--debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugFault {
    /// Every message to and from peers is dropped.
    Partition,
    /// The WAL's syncs fail as on a full disk (`GroupCommitter::inject_no_space`).
    DiskFull,
    /// A blocking pop that an element woke waits before it submits its pop, counted in
    /// [`blocking::pops_held`]: a test closes its client's connection meanwhile, as when
    /// a client goes away while the log decides its pop.
    HoldPops,
}
/// Client back-offs ending this close together share a timer (the later one waits this
/// much longer at most).
const CLIENT_WAKE_COALESCE: Duration = Duration::from_micros(250);
const _: () =
    assert!(CLIENT_WAKE_COALESCE.as_nanos() < crate::protocol::client::BUSY_BACKOFF_NS as u128);
/// Bytes queued for one peer before sends are dropped (a dead peer never blocks): one
/// frame of the largest size, so an accept of the largest batch always fits an empty queue.
const PEER_SEND_QUEUE_BYTES: usize = crate::limits::PEER_FRAME_BYTES_MAX;
/// First wait before dialling a peer again after a failed connection.
const PEER_RECONNECT_MIN_MS: u64 = 5;
/// Longest wait between dials (each failure doubles the wait up to here): a restarted peer
/// is found within this, and a dead one costs a dial five times a second.
const PEER_RECONNECT_MAX_MS: u64 = 200;
const _: () = assert!(PEER_RECONNECT_MIN_MS <= PEER_RECONNECT_MAX_MS);
const _: () = assert!(PEER_SEND_QUEUE_BYTES >= crate::limits::PEER_FRAME_BYTES_MAX);

impl Shard {
    /// Opens the WAL, recovers the replica from it, and starts the shard's tasks:
    /// transport, group committer, ticker.
    pub async fn start(cfg: NodeConfig, index: usize) -> anyhow::Result<Rc<Shard>> {
        let Recovered {
            mut replica,
            wal,
            seed,
            snapshot_dir,
            last_lsn,
            forgot_records,
        } = Recovered::open(&cfg, index).await?;
        let replica_applied = replica.applied_index();
        // A stale-data mark in the WAL also makes it a learner (logged by `open`).
        let recovering_at_start = forgot_records || replica.recovering();
        // What recovery applied is not reported: only what is applied from now on.
        replica.kv_mut().record_events(true);
        replica.kv_mut().keep_replaced(true);
        replica.set_session(seed | 1);
        replica.set_offload_transfers(true);
        let client = ClientPath::new(
            ReplicaId(cfg.id),
            seed | 1,
            cfg.protocol.read_mode,
            cfg.request_timeout_ms
                .saturating_mul(crate::protocol::types::NANOS_PER_MS),
        );
        let shard = Rc::new_cyclic(|me| Shard {
            index,
            partitioned: std::cell::Cell::new(false),
            reads_clock: ReadsClock::default(),
            lazy_timer: RefCell::new(None),
            replica: RefCell::new(replica),
            transport: RefCell::new(None),
            wal: GroupCommitter::new(wal),
            storage_error: RefCell::new(None),
            persisting: RefCell::new(VecDeque::new()),
            overflow: RefCell::new(VecDeque::new()),
            client: RefCell::new(client),
            ticker: ticker::Idle::new(&cfg.protocol),
            broadcast_frame: RefCell::new(Vec::new()),
            record_buf: RefCell::new(Vec::new()),
            callers: RefCell::new(HashMap::default()),
            proposals: Cell::new(Vec::new()),
            client_running: Cell::new(false),
            client_path_waits: Cell::new(false),
            forwards: Cell::new(Vec::new()),
            client_wake_at: Cell::new(None),
            next_merkle_id: Cell::new(1),
            me: me.clone(),
            started: Instant::now(),
            clock_rate_ppm: debug_clock_rate_ppm(&cfg),
            clocks_trusted_logged: Cell::new(true),
            placement: RolePlacement::start(index, &cfg),
            counters: RefCell::new(ShardCounters::default()),
            outbox: RefCell::new(Outbox::new(
                SnapshotSchedule::new(
                    cfg.snapshot_interval_slots,
                    cfg.log_retain_slots,
                    replica_applied,
                )
                .staggered(ReplicaId(cfg.id), cfg.protocol.replicas),
            )),
            last_lsn: Cell::new(last_lsn),
            recovering_logged: Cell::new(recovering_at_start),
            stale_logged: Cell::new(0),
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
            list_waiters: RefCell::default(),
            pubsub: RefCell::new(pubsub::Pubsub::new(cfg.watch_history_max, replica_applied)),
            cfg,
        });
        // Before any proposal: the log time a leader stamps is the wall clock.
        shard.sync_wall_clock();
        let cluster_key = crate::runtime::node::load_cluster_key(&shard.cfg)?;
        let tcfg = TransportConfig {
            cluster_id: shard.cfg.cluster_id,
            cluster_key,
            me: shard.cfg.id,
            shard: index as u16,
            listen: shard.cfg.peer_addr(usize::from(shard.cfg.id), index),
            peers: (0..shard.cfg.peers.len())
                .map(|r| (r != usize::from(shard.cfg.id)).then(|| shard.cfg.peer_addr(r, index)))
                .collect(),
            frame_bytes_max: crate::limits::PEER_FRAME_BYTES_MAX,
            send_queue_bytes_max: PEER_SEND_QUEUE_BYTES,
            reconnect_backoff_min_ms: PEER_RECONNECT_MIN_MS,
            reconnect_backoff_max_ms: PEER_RECONNECT_MAX_MS,
        };
        let weak = Rc::downgrade(&shard);
        let drained = weak.clone();
        let transport = Transport::start_with_payload(
            tcfg,
            move |from, msg: PeerMsg, payload| {
                if let Some(s) = weak.upgrade() {
                    s.on_peer(ReplicaId(from), msg, payload);
                }
            },
            move |_| {
                if let Some(s) = drained.upgrade() {
                    s.on_peer_drained();
                }
            },
        )
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
                s.client.borrow_mut().fail_storage(e.to_string());
            }
        })
        .detach();
        glommio::spawn_local(shard.clone().keep_spare_segments()).detach();
        glommio::spawn_local(shard.clone().run_ticker()).detach();
        if shard.cfg.anti_entropy_interval_ms > 0 {
            glommio::spawn_local(shard.clone().run_anti_entropy()).detach();
        }
        Ok(shard)
    }

    fn now(&self) -> Nanos {
        let elapsed = self.started.elapsed().as_nanos();
        if self.clock_rate_ppm == 0 {
            return elapsed as Nanos; // Every node but a debug one: no arithmetic.
        }
        let real = elapsed as i128;
        (real + real * i128::from(self.clock_rate_ppm) / 1_000_000) as Nanos
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

    /// Runs `f`, in which the lease reads this shard answers at once ([`Shard::read_now`])
    /// share one clock reading, until the replica next steps. A client pipeline's reads
    /// run one after another without yielding, so a reading taken after they arrived
    /// and before the replica changes is as good as one per read: the state each one
    /// reads is the state at that reading, when the lease was checked. A step (a write
    /// proposed, a read that waits) may change the state: the next read reads the clock
    /// again. This spares a clock read per pipelined read (2 % of a lease GET's CPU).
    pub fn sharing_one_clock_reading<R>(&self, f: impl FnOnce() -> R) -> R {
        self.reads_clock.open();
        let r = f();
        self.reads_clock.close();
        r
    }

    /// The time a read answered at once is checked and served at (see
    /// [`Shard::sharing_one_clock_reading`]).
    fn reads_now(&self) -> Nanos {
        self.reads_clock.now(|| self.now())
    }

    /// Drops the lazy-sync timer once the wait it serves no longer runs (the slot was
    /// chosen, the record synced): it would wake the executor for nothing.
    fn drop_idle_lazy_timer(&self, r: &Consensus) {
        let mut timer = self.lazy_timer.borrow_mut();
        if timer.is_some()
            && !r.lazy_wait_running()
            && let Some(t) = timer.take()
        {
            t.destroy();
        }
    }

    /// Runs one input through the replica and executes what it asks for.
    fn step(&self, f: impl FnOnce(&mut Consensus)) {
        self.step_received(None, f);
    }

    /// [`Shard::step`] for a message that arrived with `received`, its batch's bytes.
    fn step_received(
        &self,
        received: Option<received::Received<'_>>,
        f: impl FnOnce(&mut Consensus),
    ) {
        self.reads_clock.replica_steps();
        let (step, view) = {
            let mut r = self.replica.borrow_mut();
            f(&mut r);
            self.drop_idle_lazy_timer(&r);
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
            self.log_clock_change(&r);
            self.log_stale_data(&r);
            (self.outbox.borrow_mut().take(&mut *r), LeaderView::of(&*r))
        };
        let mut fx = ShardEffects {
            shard: self,
            view,
            now: None,
            encoded: None,
            received,
            logged: None,
            flush_after: false,
        };
        let spare = step.dispatch(&mut fx);
        if fx.flush_after {
            // After the sends woke the peer links' writers: they run before the committer.
            self.wal.flush();
        }
        self.outbox.borrow_mut().recycle(spare);
        self.deliver_events();
        if self.client.borrow().view() != view {
            if let Some(p) = &self.placement {
                p.follow(view.leading);
            }
            let now = fx.now.unwrap_or_else(|| self.now());
            self.client.borrow_mut().observe(now, view);
        }
        self.run_client_path();
        self.wake_list_waiters();
        self.build_transfer_offloaded();
        self.build_install_offloaded();
        self.drop_replaced_offloaded();
    }

    /// Logs, once per detection, that a peer saw this replica acknowledge more than its
    /// data directory holds: the directory was replaced by an older copy of itself.
    fn log_stale_data(&self, r: &Consensus) {
        let detected = r.stats().stale_data_detected;
        if detected == self.stale_logged.get() {
            return;
        }
        self.stale_logged.set(detected);
        eprintln!(
            "shard {}: ERROR: stale data directory {}: {}. It is older than what this replica \
             acknowledged (a restored backup or an old copy?); treating it as lost records: \
             no vote until it caught up from the group",
            self.index,
            self.snapshot_dir
                .parent()
                .unwrap_or(&self.snapshot_dir)
                .display(),
            r.stale_finding().unwrap_or("a peer saw more than it holds"),
        );
    }

    /// Debug: turns a fault on or off (`COREPAX.DEBUG PARTITION|DISKFULL|HOLDPOPS ON|OFF`).
    pub fn set_debug_fault(&self, fault: DebugFault, on: bool) {
        match fault {
            DebugFault::Partition => self.partitioned.set(on),
            DebugFault::DiskFull => self.wal.inject_no_space(on),
            DebugFault::HoldPops => self.list_waiters.borrow_mut().hold = on,
        }
    }

    /// One step of `SCAN` over this replica's applied state ([`crate::protocol::Kv::scan`]):
    /// the keys visited that match `pattern` and hold `kind` if given, and the cursor to
    /// go on from (0: done).
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        kind: Option<crate::protocol::item::Kind>,
    ) -> (Vec<bytes::Bytes>, u64) {
        let r = self.replica.borrow();
        let mut keys = Vec::new();
        let next = r.kv().scan(cursor, count, |item| {
            if kind.is_none_or(|k| item.kind() == k)
                && pattern.is_none_or(|p| crate::protocol::glob::matches(p, item.key()))
            {
                keys.push(bytes::Bytes::copy_from_slice(item.key()));
            }
        });
        (keys, next)
    }

    /// `KEYS`: every key of this replica's applied state that matches `pattern`.
    pub fn keys(&self, pattern: &[u8]) -> Vec<bytes::Bytes> {
        let r = self.replica.borrow();
        r.kv()
            .iter()
            .filter(|i| crate::protocol::glob::matches(pattern, i.key()))
            .map(|i| bytes::Bytes::copy_from_slice(i.key()))
            .collect()
    }

    /// Debug: writes `key` in this replica's state machine only, bypassing Paxos, as a
    /// stale copy (version 0) — the kind of divergence anti-entropy must find and repair.
    pub fn set_local(&self, key: bytes::Bytes, value: bytes::Bytes) {
        let mut r = self.replica.borrow_mut();
        let kv = r.kv_mut();
        kv.force_local(key, crate::protocol::kv::Entry::string(value, 0));
    }
}

/// The clock rate a debug node was asked to run at (`COREPAX_DEBUG_CLOCK_RATE_PPM`, ppm
/// faster than real time; negative: slower); 0 otherwise.
fn debug_clock_rate_ppm(cfg: &NodeConfig) -> i64 {
    let Ok(v) = std::env::var("COREPAX_DEBUG_CLOCK_RATE_PPM") else {
        return 0;
    };
    match v.parse::<i64>() {
        Ok(ppm) if cfg.debug && (-500_000..=500_000).contains(&ppm) => ppm,
        _ => {
            eprintln!(
                "COREPAX_DEBUG_CLOCK_RATE_PPM={v} ignored: it takes -500000..=500000 and a node started with --debug"
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::FrameKey;
    use crate::protocol::Batch;
    use crate::protocol::kv::Request;
    use crate::protocol::raft::Msg;

    fn append(commit: u64, entries: &[(u64, Batch)]) -> Msg {
        Msg::Append {
            term: 3,
            prev_index: 10,
            prev_term: 2,
            entries: entries.to_vec(),
            commit,
        }
    }

    /// An append's frame is reused only for the same message built from the same log
    /// entries: another commit index, another entry list or an equal batch in another
    /// allocation is encoded again.
    #[test]
    fn an_append_frame_is_reused_only_for_the_same_entries() {
        let a: Batch = Arc::from(vec![Request::noop()]);
        let b: Batch = Arc::from(vec![Request::noop()]);
        let key =
            FrameKey::of_append(&append(7, &[(3, a.clone()), (3, b.clone())])).expect("an append");
        assert!(key.is_append(&append(7, &[(3, a.clone()), (3, b.clone())])));
        assert!(!key.is_append(&append(8, &[(3, a.clone()), (3, b.clone())])));
        assert!(!key.is_append(&append(7, &[(3, a.clone())])));
        assert!(!key.is_append(&append(7, &[(3, a.clone()), (2, b.clone())])));
        let b_copy: Batch = Arc::from(b.to_vec());
        assert!(!key.is_append(&append(7, &[(3, a.clone()), (3, b_copy)])));
        assert!(!key.is_append(&Msg::RestartQuery));
        assert!(FrameKey::of_append(&Msg::RestartQuery).is_none());
        let ballot = crate::protocol::Ballot {
            round: 3,
            node: crate::protocol::ReplicaId(0),
        };
        let accept = FrameKey::Accept(ballot, 11, 7, a.as_ptr());
        assert!(!accept.is_append(&append(7, &[(3, a), (3, b)])));
    }
}
