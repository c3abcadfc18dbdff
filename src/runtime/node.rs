//! A node: one glommio executor per shard, pinned to its core, joined by a lock-free
//! channel mesh. A command for a key owned by another shard crosses the mesh; nothing on
//! the request path takes a lock.
//!
//! The node knows nothing of clients: whoever starts it (the CLI) hands in the front end
//! that serves them, which is given each shard's [`Local`]. So imports point one way only,
//! from the front end down to the runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use super::shard::{Blocking, DebugFault, PubsubAnswer, PubsubOp, Shard, ShardInfo, SubmitError};
use crate::config::NodeConfig;
use crate::protocol::{Command, MapHasher, Reply};
use crate::wire::auth::ClusterKey;

/// Messages between the shards of one node.
#[derive(Debug)]
pub enum MeshMsg {
    /// Run a command on the receiving shard's group.
    Command {
        /// Correlates the answer.
        id: u64,
        /// The command.
        cmd: Command,
    },
    /// Run a blocking pop on the receiving shard (answered with `CommandReply`).
    Blocking {
        /// Correlates the answer (and a `CancelBlocking`).
        id: u64,
        /// The pop and its keys.
        b: Blocking,
        /// When it answers nil; `None`: never.
        deadline: Option<std::time::Instant>,
    },
    /// The client of a `Blocking` went away: it must consume nothing.
    CancelBlocking {
        /// The `Blocking`'s id.
        id: u64,
    },
    /// The answer to `Command`.
    CommandReply {
        /// The command's id.
        id: u64,
        /// Its outcome.
        result: Result<Reply, SubmitError>,
    },
    /// Run anti-entropy for this shard against the other replicas.
    Repair {
        /// Correlates the answer.
        id: u64,
    },
    /// The answer to `Repair`: a report.
    RepairReply {
        /// The request's id.
        id: u64,
        /// What was compared and repaired.
        report: String,
    },
    /// Debug: turn a fault on this shard on or off.
    Debug {
        /// Which fault.
        fault: DebugFault,
        /// On when true.
        on: bool,
    },
    /// Report this shard's state.
    Info {
        /// Correlates the answer.
        id: u64,
    },
    /// The answer to `Info`.
    InfoReply {
        /// The request's id.
        id: u64,
        /// The shard's state.
        info: Box<ShardInfo>,
    },
    /// One step of `SCAN` over this shard's state, or (`count` = `None`) every key
    /// matching, for `KEYS`.
    Scan {
        /// Correlates the answer.
        id: u64,
        /// Where the step starts.
        cursor: u64,
        /// Keys to visit (`None`: all, for `KEYS`).
        count: Option<usize>,
        /// Only keys matching this glob pattern.
        pattern: Option<Bytes>,
        /// Only keys of this kind (`SCAN … TYPE`).
        kind: Option<crate::protocol::item::Kind>,
    },
    /// Subscribe, watch or ask about subscriptions on the receiving shard.
    Pubsub {
        /// Correlates the answer.
        id: u64,
        /// What to do.
        op: PubsubOp,
    },
    /// The answer to `Pubsub`.
    PubsubReply {
        /// The request's id.
        id: u64,
        /// The answer.
        answer: PubsubAnswer,
    },
    /// The answer to `Scan`.
    ScanReply {
        /// The request's id.
        id: u64,
        /// Keys found.
        keys: Vec<Bytes>,
        /// The cursor to go on from (0: done).
        next: u64,
    },
}

enum Waiter {
    Command(oneshot::Sender<Result<Reply, SubmitError>>),
    Repair(oneshot::Sender<String>),
    Info(oneshot::Sender<ShardInfo>),
    Scan(oneshot::Sender<(Vec<Bytes>, u64)>),
    Pubsub(oneshot::Sender<PubsubAnswer>),
}

/// Cross-shard messages queued per link, at most.
const MESH_QUEUE_MAX: usize = 4096;
/// io_uring registered buffer memory per executor. glommio registers it with each of its
/// three rings, so 6 MiB are pinned: under this machine's 8 MiB `RLIMIT_MEMLOCK`
/// (tests/transport_executor_memlock.rs).
pub const IO_MEMORY_BYTES: usize = 2 << 20;

/// What a shard's executor holds: its shard and its links to the other shards.
pub struct Local {
    /// This executor's shard.
    pub shard: Rc<Shard>,
    /// Shards in the node.
    pub shards: usize,
    /// The node's configuration.
    pub cfg: NodeConfig,
    senders: Senders<MeshMsg>,
    waiters: RefCell<HashMap<u64, Waiter, MapHasher>>,
    next_id: Cell<u64>,
    /// Blocking pops run here for other shards, by (shard, id): set when cancelled.
    blocking_gone: RefCell<HashMap<(usize, u64), GoneFlag, MapHasher>>,
}

/// Set when a blocking pop's client went away.
type GoneFlag = Rc<Cell<bool>>;

/// Sets a flag when dropped: a local blocking pop's client went away.
struct SetOnDrop(Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Tells another shard, when dropped while armed, that a blocking pop's client went away.
struct CancelOnDrop {
    local: Rc<Local>,
    owner: usize,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.local.waiters.borrow_mut().remove(&self.id);
        let (local, owner, id) = (self.local.clone(), self.owner, self.id);
        glommio::spawn_local(async move {
            let _ = local
                .senders
                .send_to(owner, MeshMsg::CancelBlocking { id })
                .await;
        })
        .detach();
    }
}

pub use super::sharding::shard_of;

impl Local {
    /// Runs `cmd` on the group of shard `owner`, here or across the mesh.
    pub async fn command(
        self: &Rc<Self>,
        owner: usize,
        cmd: Command,
    ) -> Result<Reply, SubmitError> {
        if owner == self.shard.index {
            return self.shard.submit(cmd).await;
        }
        let id = self.id();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, Waiter::Command(tx));
        if self
            .senders
            .send_to(owner, MeshMsg::Command { id, cmd })
            .await
            .is_err()
        {
            self.waiters.borrow_mut().remove(&id);
            return Err(SubmitError::Storage(format!("shard {owner} is gone")));
        }
        rx.await
            .unwrap_or_else(|_| Err(SubmitError::Storage(format!("shard {owner} is gone"))))
    }

    /// Runs a blocking pop on shard `owner` (see [`Shard::blocking`]). Dropping the future
    /// (the client went away) tells that shard, so the pop consumes nothing.
    pub async fn blocking(
        self: &Rc<Self>,
        owner: usize,
        b: Blocking,
        deadline: Option<std::time::Instant>,
    ) -> Result<Reply, SubmitError> {
        let gone = Rc::new(Cell::new(false));
        if owner == self.shard.index {
            let shard = self.shard.clone();
            let g = gone.clone();
            // Detached: it runs to its end (and gives back what it took) even when the
            // client goes away and this future is dropped.
            let task =
                glommio::spawn_local(async move { shard.blocking(b, deadline, g).await }).detach();
            let _guard = SetOnDrop(gone);
            return task
                .await
                .unwrap_or_else(|| Err(SubmitError::Storage("blocking pop cancelled".into())));
        }
        let id = self.id();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, Waiter::Command(tx));
        if self
            .senders
            .send_to(owner, MeshMsg::Blocking { id, b, deadline })
            .await
            .is_err()
        {
            self.waiters.borrow_mut().remove(&id);
            return Err(SubmitError::Storage(format!("shard {owner} is gone")));
        }
        let mut guard = CancelOnDrop {
            local: self.clone(),
            owner,
            id,
            armed: true,
        };
        let result = rx
            .await
            .unwrap_or_else(|_| Err(SubmitError::Storage(format!("shard {owner} is gone"))));
        guard.armed = false;
        result
    }

    /// The state of every shard of the node, in shard order.
    pub async fn infos(self: &Rc<Self>) -> Vec<ShardInfo> {
        let mut out = Vec::with_capacity(self.shards);
        for s in 0..self.shards {
            if s == self.shard.index {
                out.push(self.shard.info());
                continue;
            }
            let id = self.id();
            let (tx, rx) = oneshot::channel();
            self.waiters.borrow_mut().insert(id, Waiter::Info(tx));
            if self.senders.send_to(s, MeshMsg::Info { id }).await.is_ok()
                && let Ok(info) = rx.await
            {
                out.push(info);
            }
        }
        out
    }

    /// One step of `SCAN` on shard `s` (see [`Shard::scan`]), or with `count` `None` every
    /// key of it matching `pattern` (`KEYS`): this replica's applied state, not read
    /// through the log. `None` if the shard is gone.
    pub async fn scan(
        self: &Rc<Self>,
        s: usize,
        cursor: u64,
        count: Option<usize>,
        pattern: Option<Bytes>,
        kind: Option<crate::protocol::item::Kind>,
    ) -> Option<(Vec<Bytes>, u64)> {
        if s == self.shard.index {
            return Some(match count {
                Some(count) => self.shard.scan(cursor, count, pattern.as_deref(), kind),
                None => (self.shard.keys(pattern.as_deref().unwrap_or(b"*")), 0),
            });
        }
        let id = self.id();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, Waiter::Scan(tx));
        let msg = MeshMsg::Scan {
            id,
            cursor,
            count,
            pattern,
            kind,
        };
        if self.senders.send_to(s, msg).await.is_err() {
            self.waiters.borrow_mut().remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Runs a publish/subscribe operation on shard `s` (see [`Shard::pubsub`]); `None` if
    /// the shard is gone.
    pub async fn pubsub(self: &Rc<Self>, s: usize, op: PubsubOp) -> Option<PubsubAnswer> {
        if s == self.shard.index {
            return Some(self.shard.pubsub(op));
        }
        let id = self.id();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, Waiter::Pubsub(tx));
        if self
            .senders
            .send_to(s, MeshMsg::Pubsub { id, op })
            .await
            .is_err()
        {
            self.waiters.borrow_mut().remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Runs anti-entropy on every shard of the node, one after the other.
    pub async fn repair_all(self: &Rc<Self>) -> String {
        let mut out = Vec::new();
        for s in 0..self.shards {
            if s == self.shard.index {
                out.push(self.shard.repair().await);
                continue;
            }
            let id = self.id();
            let (tx, rx) = oneshot::channel();
            self.waiters.borrow_mut().insert(id, Waiter::Repair(tx));
            if self
                .senders
                .send_to(s, MeshMsg::Repair { id })
                .await
                .is_ok()
                && let Ok(report) = rx.await
            {
                out.push(report);
            }
        }
        out.join("\n")
    }

    /// Debug: turns `fault` on or off in every shard (a partition cuts the whole node
    /// from its peers while clients still reach it).
    pub async fn debug_all(self: &Rc<Self>, fault: DebugFault, on: bool) {
        for s in 0..self.shards {
            if s == self.shard.index {
                self.shard.set_debug_fault(fault, on);
            } else {
                let _ = self.senders.send_to(s, MeshMsg::Debug { fault, on }).await;
            }
        }
    }

    fn id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    fn on_mesh(self: &Rc<Self>, from: usize, msg: MeshMsg) {
        match msg {
            MeshMsg::Command { id, cmd } => {
                let fut = self.shard.submit(cmd);
                let me = self.clone();
                glommio::spawn_local(async move {
                    let result = fut.await;
                    let _ = me
                        .senders
                        .send_to(from, MeshMsg::CommandReply { id, result })
                        .await;
                })
                .detach();
            }
            MeshMsg::Blocking { id, b, deadline } => {
                let gone = Rc::new(Cell::new(false));
                self.blocking_gone
                    .borrow_mut()
                    .insert((from, id), gone.clone());
                let me = self.clone();
                glommio::spawn_local(async move {
                    let result = me.shard.blocking(b, deadline, gone).await;
                    me.blocking_gone.borrow_mut().remove(&(from, id));
                    let _ = me
                        .senders
                        .send_to(from, MeshMsg::CommandReply { id, result })
                        .await;
                })
                .detach();
            }
            MeshMsg::CancelBlocking { id } => {
                if let Some(gone) = self.blocking_gone.borrow().get(&(from, id)) {
                    gone.set(true);
                }
            }
            MeshMsg::Repair { id } => {
                let me = self.clone();
                glommio::spawn_local(async move {
                    let report = me.shard.repair().await;
                    let _ = me
                        .senders
                        .send_to(from, MeshMsg::RepairReply { id, report })
                        .await;
                })
                .detach();
            }
            MeshMsg::RepairReply { id, report } => {
                if let Some(Waiter::Repair(tx)) = self.waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(report);
                }
            }
            MeshMsg::Debug { fault, on } => self.shard.set_debug_fault(fault, on),
            MeshMsg::Info { id } => {
                let info = Box::new(self.shard.info());
                let me = self.clone();
                glommio::spawn_local(async move {
                    let _ = me
                        .senders
                        .send_to(from, MeshMsg::InfoReply { id, info })
                        .await;
                })
                .detach();
            }
            MeshMsg::CommandReply { id, result } => {
                if let Some(Waiter::Command(tx)) = self.waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(result);
                }
            }
            MeshMsg::Scan {
                id,
                cursor,
                count,
                pattern,
                kind,
            } => {
                let (keys, next) = match count {
                    Some(count) => self.shard.scan(cursor, count, pattern.as_deref(), kind),
                    None => (self.shard.keys(pattern.as_deref().unwrap_or(b"*")), 0),
                };
                let me = self.clone();
                glommio::spawn_local(async move {
                    let reply = MeshMsg::ScanReply { id, keys, next };
                    let _ = me.senders.send_to(from, reply).await;
                })
                .detach();
            }
            MeshMsg::Pubsub { id, op } => {
                let answer = self.shard.pubsub(op);
                let me = self.clone();
                glommio::spawn_local(async move {
                    let reply = MeshMsg::PubsubReply { id, answer };
                    let _ = me.senders.send_to(from, reply).await;
                })
                .detach();
            }
            MeshMsg::PubsubReply { id, answer } => {
                if let Some(Waiter::Pubsub(tx)) = self.waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(answer);
                }
            }
            MeshMsg::ScanReply { id, keys, next } => {
                if let Some(Waiter::Scan(tx)) = self.waiters.borrow_mut().remove(&id) {
                    let _ = tx.send((keys, next));
                }
            }
            MeshMsg::InfoReply { id, info } => {
                if let Some(Waiter::Info(tx)) = self.waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(*info);
                }
            }
        }
    }
}

/// The cluster key named by `cluster_key_file`, read and checked; `None` without one.
pub fn load_cluster_key(cfg: &NodeConfig) -> anyhow::Result<Option<ClusterKey>> {
    let Some(path) = &cfg.cluster_key_file else {
        return Ok(None);
    };
    let contents = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("reading the cluster key file {}: {e}", path.display()))?;
    ClusterKey::from_file_contents(&contents)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cluster key file {}: {e}", path.display()))
}

/// Writes a new random cluster key (32 random bytes as 64 hex digits) to `path`, readable
/// by its owner only.
pub fn write_random_cluster_key(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating the cluster key file {}: {e}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("writing the cluster key file {}: {e}", path.display()))
}

/// The lock file in a data directory: held (flock) by the node serving from it.
const DATA_DIR_LOCK_FILE: &str = "LOCK";

/// Locks `dir` for this process: two nodes writing one WAL would each overwrite the
/// other's records, acknowledged ones included. Fails, naming the directory, if another
/// process holds it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(DATA_DIR_LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "data directory {} is in use by another running node ({} is locked): stop it \
             first, or give this node a directory of its own",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("locking {}: {e}", path.display())
        }
    }
}

/// Runs a node until the process is stopped. Each shard's executor opens its WAL,
/// recovers, connects to its peers, then runs `serve` (the front end) with its [`Local`]:
/// the node returns when every shard's `serve` has returned.
pub fn run<S, F>(cfg: NodeConfig, serve: S) -> anyhow::Result<()>
where
    S: Fn(Rc<Local>) -> F + Clone + Send + 'static,
    F: Future<Output = anyhow::Result<()>> + 'static,
{
    cfg.validate()?;
    if load_cluster_key(&cfg)?.is_none() {
        eprintln!(
            "WARNING: no cluster key (--cluster-key-file): anyone who can reach the peer ports \
             ({}) can pose as a replica",
            cfg.peer_addr(usize::from(cfg.id), 0)
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", cfg.data_dir.display()))?;
    // Held until the process ends (the kernel drops it with the process, kill -9 too).
    let _lock = lock_data_dir(&cfg.data_dir)?;
    super::sharding::check_data_dir(&cfg.data_dir, cfg.shards)?;
    crate::transport::check_port_free(cfg.client_addr).map_err(|e| {
        anyhow::anyhow!(
            "the client address {} is taken ({e}): is another node or server running there?",
            cfg.client_addr
        )
    })?;
    let shards = cfg.shards;
    let mesh = MeshBuilder::full(shards, MESH_QUEUE_MAX);
    let core_lists = [
        ("cpus", &cfg.cpus),
        ("leader_cpus", &cfg.leader_cpus),
        ("follower_cpus", &cfg.follower_cpus),
    ];
    let online = if core_lists.iter().any(|(_, cores)| !cores.is_empty()) {
        let online = glommio::CpuSet::online()
            .map_err(|e| anyhow::anyhow!("listing the online cores: {e}"))?;
        let mut ids: Vec<usize> = online.iter().map(|l| l.cpu).collect();
        ids.sort_unstable();
        for (name, cores) in core_lists {
            if let Some(missing) = cores.iter().find(|c| !ids.contains(c)) {
                anyhow::bail!(
                    "invalid `{name}`: core {missing} is not online (online cores: {ids:?})"
                );
            }
        }
        Some(online)
    } else {
        None
    };
    let placement = if cfg.pin {
        let allowed = online
            .filter(|_| !cfg.cpus.is_empty())
            .map(|online| online.filter(|l| cfg.cpus.contains(&l.cpu)));
        PoolPlacement::MaxSpread(shards, allowed)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let spawn = |placement: PoolPlacement| {
        let cfg = cfg.clone();
        let mesh = mesh.clone();
        let serve = serve.clone();
        LocalExecutorPoolBuilder::new(placement)
            .io_memory(IO_MEMORY_BYTES)
            .name("corepax-shard")
            .on_all_shards(move || {
                let cfg = cfg.clone();
                let mesh = mesh.clone();
                async move {
                    if let Err(e) = shard_main(cfg, mesh, serve).await {
                        eprintln!("error: {e:#}");
                        std::process::exit(1);
                    }
                }
            })
    };
    let handles = match spawn(placement) {
        Ok(h) => h,
        Err(e) if cfg.pin => {
            eprintln!("warning: pinning {shards} shards to cores failed ({e}); running unpinned");
            spawn(PoolPlacement::Unbound(shards))
                .map_err(|e| anyhow::anyhow!("starting executors: {e}"))?
        }
        Err(e) => anyhow::bail!("starting executors: {e}"),
    };
    for r in handles.join_all() {
        r.map_err(|e| anyhow::anyhow!("shard executor: {e:?}"))?;
    }
    Ok(())
}

async fn shard_main<F: Future<Output = anyhow::Result<()>>>(
    cfg: NodeConfig,
    mesh: MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>,
    serve: impl Fn(Rc<Local>) -> F,
) -> anyhow::Result<()> {
    let (senders, mut receivers) = mesh
        .join()
        .await
        .map_err(|_| anyhow::anyhow!("joining the shard mesh"))?;
    let index = senders.peer_id();
    let shard = Shard::start(cfg.clone(), index).await?;
    let local = Rc::new(Local {
        shard,
        shards: cfg.shards,
        cfg,
        senders,
        waiters: RefCell::new(HashMap::default()),
        next_id: Cell::new(1),
        blocking_gone: RefCell::default(),
    });
    for (from, mut stream) in receivers.streams() {
        let local = local.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = stream.next().await {
                local.on_mesh(from, msg);
            }
        })
        .detach();
    }
    serve(local).await
}
