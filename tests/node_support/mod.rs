//! Shared by the node tests: real `corepax node` processes on 127.0.0.1 free ports (or,
//! with [`Cluster::start_on_net`], each in a network namespace of its own behind the
//! emulated network's router), and a small blocking RESP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corepax::net::{Attached, Network, Profile, node_addr};

use corepax::wire::resp::{self, Limits, Value};

/// Shards per node in tests: two, so cross-shard routing is always exercised.
pub const SHARDS: usize = 2;

/// Finds `n` consecutive free ports on 127.0.0.1 (below the kernel's ephemeral range, see
/// `corepax::loadgen::ports`), never handed out again by this process: a node restarted
/// later binds its ports again.
pub fn free_ports(n: u16) -> u16 {
    let runs = corepax::loadgen::ports::reserve(&[n])
        .unwrap_or_else(|e| panic!("{e}"))
        .keep();
    runs[0].start
}

/// Runs `corepax node` with `args`, which must refuse to start: waits (20 s at most) for
/// it to exit unsuccessfully and returns what it wrote to stderr.
pub fn node_refused(args: &[std::ffi::OsString]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corepax"))
        .arg("node")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corepax node");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the node kept running with {args:?}; its stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!status.success(), "{stderr}");
    stderr
}

/// Copies directory `from` (files and folders) to `to`: a backup of a node's data dir.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Polls `done` every 50 ms; panics naming `what` if it is still false after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Client port of every node under an emulated network (each node has a namespace, and
/// so every port, of its own).
const NET_CLIENT_PORT: u16 = 7379;
/// First peer port of every node under an emulated network (one per shard).
const NET_PEER_PORT: u16 = 8379;

/// How a test reaches the nodes' client ports: from this process's network, or, under an
/// emulated network, from inside node i's namespace (a client beside its replica: the
/// router's cuts fall between replicas, never between a node and its own clients).
#[derive(Clone)]
pub struct Dialer {
    addrs: Vec<SocketAddr>,
    net: Option<Arc<Attached>>,
}

impl Dialer {
    /// Connects to node `i`'s client port ([`Client::connect`]).
    pub fn connect(&self, i: usize) -> std::io::Result<Client> {
        self.within(i, || Client::connect(self.addrs[i]))
    }

    /// Whether node `i` accepts a connection within `timeout`.
    pub fn accepts(&self, i: usize, timeout: Duration) -> bool {
        self.within(i, || TcpStream::connect_timeout(&self.addrs[i], timeout))
            .is_ok()
    }

    /// How many nodes there are.
    pub fn nodes(&self) -> usize {
        self.addrs.len()
    }

    /// Runs `f` where node `i`'s clients sit.
    fn within<T: Send>(
        &self,
        i: usize,
        f: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> std::io::Result<T> {
        match &self.net {
            Some(net) => net.ns(i).run(f)?,
            None => f(),
        }
    }
}

/// A cluster of node processes, killed when dropped.
pub struct Cluster {
    /// Each node's client address (under an emulated network, reachable only through
    /// [`Cluster::dialer`]).
    pub clients: Vec<SocketAddr>,
    peers: Vec<String>,
    pub dir: PathBuf,
    nodes: Vec<Option<Child>>,
    extra: Vec<String>,
    /// Flags of one node only, after `extra` (see `set_node_args`).
    node_extra: Vec<Vec<String>>,
    /// Environment variables of one node only (see `set_node_env`).
    node_env: Vec<Vec<(String, String)>>,
    dialer: Dialer,
    /// The emulated network the nodes run in, if any: dropped after them (declared last;
    /// `Drop` kills the nodes first).
    net: Option<Network>,
}

/// The protocols a test runs under, by name (`--protocol`).
pub use corepax::config::Protocol;

impl Cluster {
    /// Starts `n` nodes with data under `dir` and waits until every shard has a leader.
    pub fn start(n: usize, dir: &Path, extra: &[&str]) -> Cluster {
        Cluster::start_per_node(n, dir, extra, |_| Vec::new())
    }

    /// Like `start`, every node running `protocol` (keep `--protocol` out of `extra`).
    pub fn start_protocol(protocol: Protocol, n: usize, dir: &Path, extra: &[&str]) -> Cluster {
        let name = protocol.to_string();
        let mut flags = vec!["--protocol", name.as_str()];
        flags.extend_from_slice(extra);
        Cluster::start(n, dir, &flags)
    }

    /// Like `start`, with `per_node(i)` added to node i's flags (a flag may be given once:
    /// keep per-node flags out of `extra`).
    pub fn start_per_node(
        n: usize,
        dir: &Path,
        extra: &[&str],
        per_node: impl Fn(usize) -> Vec<String>,
    ) -> Cluster {
        // A port found free may be taken before the node binds it (by a test running
        // beside this one): such a start is retried on other ports.
        for attempt in 1.. {
            let client_base = free_ports(n as u16);
            let clients = (0..n)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], client_base + i as u16)))
                .collect();
            let peers = (0..n)
                .map(|_| format!("127.0.0.1:{}", free_ports(SHARDS as u16)))
                .collect();
            match Cluster::launch(dir, extra, &per_node, clients, peers, None) {
                Ok(c) => return c,
                Err(log) if attempt < 3 && log.contains("Address already in use") => {
                    for i in 0..n {
                        let _ = std::fs::remove_dir_all(dir.join(format!("node-{i}")));
                    }
                }
                Err(log) => panic!("{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Like `start`, every node in a network namespace of its own, joined to the others by
    /// the emulated network's router shaped by `profile` (`lan`, `metro`, `wan3` or a
    /// file; see docs/NETWORK.md), run by this process: [`Cluster::net`] cuts and heals
    /// links for real. Needs root and /dev/net/tun, and panics saying so without them.
    /// The nodes die with the thread that starts them (`PR_SET_PDEATHSIG`): start, kill
    /// and restart them from the test's own thread.
    pub fn start_on_net(n: usize, dir: &Path, profile: &str, extra: &[&str]) -> Cluster {
        if let Some(missing) = corepax::net::missing_capability() {
            panic!("this test runs on an emulated network: {missing}");
        }
        let shape = Profile::load(profile).unwrap_or_else(|e| panic!("profile {profile}: {e}"));
        let net = Network::start(profile, &shape, n, dir)
            .unwrap_or_else(|e| panic!("starting the emulated network: {e:#}"));
        net.write_state().expect("network state file");
        let clients = (0..n)
            .map(|i| SocketAddr::from((node_addr(i), NET_CLIENT_PORT)))
            .collect();
        let peers = (0..n)
            .map(|i| SocketAddr::from((node_addr(i), NET_PEER_PORT)).to_string())
            .collect();
        Cluster::launch(dir, extra, |_| Vec::new(), clients, peers, Some(net))
            .unwrap_or_else(|log| panic!("{log}"))
    }

    /// Starts the nodes at these addresses and waits for their leaders.
    fn launch(
        dir: &Path,
        extra: &[&str],
        per_node: impl Fn(usize) -> Vec<String>,
        clients: Vec<SocketAddr>,
        peers: Vec<String>,
        net: Option<Network>,
    ) -> Result<Cluster, String> {
        let n = clients.len();
        let attached = net.as_ref().map(|_| {
            Arc::new(Attached::open(dir).expect("attach to the network this test started"))
        });
        let mut c = Cluster {
            dialer: Dialer {
                addrs: clients.clone(),
                net: attached,
            },
            clients,
            peers,
            dir: dir.to_path_buf(),
            nodes: (0..n).map(|_| None).collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            node_extra: (0..n).map(per_node).collect(),
            node_env: vec![Vec::new(); n],
            net,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.listening(i)?;
        }
        c.wait_for_leaders(Duration::from_secs(20));
        Ok(c)
    }

    /// The emulated network the nodes run in ([`Cluster::start_on_net`]).
    pub fn net(&self) -> Option<&Network> {
        self.net.as_ref()
    }

    /// Reaches the nodes' client ports from wherever their clients sit (also from other
    /// threads).
    pub fn dialer(&self) -> Dialer {
        self.dialer.clone()
    }

    /// Connects to node `i`'s client port.
    pub fn connect(&self, i: usize) -> std::io::Result<Client> {
        self.dialer.connect(i)
    }

    /// Starts node `i` (again), on its data dir.
    pub fn spawn(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} already runs");
        let log = std::fs::File::create(self.dir.join(format!("node-{i}.log"))).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corepax"));
        if let Some(net) = &self.net {
            net.ns(i).enter_on_spawn(&mut cmd);
        }
        let child = cmd
            .arg("node")
            .args(self.node_args(i))
            .envs(self.node_env[i].iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn corepax node");
        self.nodes[i] = Some(child);
    }

    /// The flags node `i` starts with (after `corepax node`).
    pub fn node_args(&self, i: usize) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--id".into(),
            i.to_string().into(),
            "--client-addr".into(),
            self.clients[i].to_string().into(),
            "--peers".into(),
            self.peers.join(",").into(),
            "--data".into(),
            self.dir.join(format!("node-{i}")).into(),
            "--shards".into(),
            SHARDS.to_string().into(),
            "--no-pin".into(),
        ];
        args.extend(self.extra.iter().map(Into::into));
        args.extend(self.node_extra[i].iter().map(Into::into));
        args
    }

    /// Replaces node `i`'s own flags; they apply from its next start.
    pub fn set_node_args(&mut self, i: usize, args: &[&str]) {
        self.node_extra[i] = args.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces node `i`'s own environment variables; they apply from its next start.
    pub fn set_node_env(&mut self, i: usize, vars: &[(&str, &str)]) {
        self.node_env[i] = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Starts node `i` again on its data dir and waits for its client port.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_listening(i);
    }

    /// kill -9 every node, start them all again on their data dirs, wait for leaders.
    pub fn crash_and_restart_all(&mut self) {
        let n = self.clients.len();
        for i in 0..n {
            self.kill9(i);
        }
        for i in 0..n {
            self.spawn(i);
        }
        for i in 0..n {
            self.wait_listening(i);
        }
        self.wait_for_leaders(Duration::from_secs(20));
    }

    /// Waits for node `i`'s client port.
    pub fn wait_listening(&mut self, i: usize) {
        if let Err(why) = self.listening(i) {
            panic!("{why}");
        }
    }

    /// Waits until node `i` accepts clients; says why not if it exited first or never did.
    fn listening(&mut self, i: usize) -> Result<(), String> {
        // Generous: a node opens and syncs its WAL before it listens, and on a disk shared
        // with heavy buffered writes (builds beside the tests) one sync has taken seconds.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dialer.accepts(i, Duration::from_millis(100)) {
            let exited = self.nodes[i]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!(
                    "node {i} exited ({status}); its log:\n{}",
                    self.log(i)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {i} never listened; its log:\n{}",
                    self.log(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// kill -9: the process dies with whatever it had in memory.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
            // The dead process's io_uring is torn down after it is reaped, and its client
            // listener accepts (then resets) connections until then: wait for that to end,
            // or `wait_listening` would take the old listener for a restarted node.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && self.dialer.accepts(i, Duration::from_millis(100)) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].as_ref().map(Child::id)
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Which live node leads each shard, per INFO; `None` while unknown.
    pub fn leaders(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; SHARDS];
        for i in 0..self.clients.len() {
            if !self.is_up(i) {
                continue;
            }
            let Ok(mut c) = self.connect(i) else {
                continue;
            };
            let Ok(Value::Bulk(Some(info))) = c.cmd(&["INFO"]) else {
                continue;
            };
            let text = String::from_utf8_lossy(&info).into_owned();
            for (s, slot) in out.iter_mut().enumerate() {
                if text.contains(&format!("shard{s}:leading=1,")) {
                    *slot = Some(i);
                }
            }
        }
        out
    }

    /// Waits until every shard has a live leader; returns how long that took.
    pub fn wait_for_leaders(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.leaders().iter().all(Option::is_some) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "no leader for every shard within {limit:?}: {:?}; the nodes' logs:\n{}",
                self.leaders(),
                (0..self.clients.len())
                    .map(|i| format!("--- node {i}\n{}", self.log(i)))
                    .collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Node `i`'s Merkle root per shard (`COREPAX.MERKLE ROOT`), as hex strings.
    pub fn merkle_roots(&self, i: usize) -> Vec<String> {
        let reply = self
            .connect(i)
            .and_then(|mut c| c.cmd(&["COREPAX.MERKLE", "ROOT"]));
        match reply {
            Ok(Value::Array(Some(items))) => items.iter().filter_map(bulk).collect(),
            other => panic!(
                "COREPAX.MERKLE ROOT from node {i}: {other:?}; its log:\n{}",
                self.log(i)
            ),
        }
    }

    /// `field` of node `i`'s INFO lines `shard<s><suffix>:…,field=N,…`, summed over shards
    /// (e.g. suffix `_anti_entropy`, field `keys_repaired`).
    pub fn info_sum(&self, i: usize, suffix: &str, field: &str) -> u64 {
        let info = self.info(i);
        (0..SHARDS)
            .map(|s| shard_line_field(&info, i, s, suffix, field))
            .sum()
    }

    /// `field` of one shard's `shard<s><suffix>:` line in node `i`'s INFO.
    pub fn shard_value(&self, i: usize, shard: usize, suffix: &str, field: &str) -> u64 {
        shard_line_field(&self.info(i), i, shard, suffix, field)
    }

    fn info(&self, i: usize) -> String {
        let reply = self.connect(i).and_then(|mut c| c.cmd(&["INFO"]));
        match reply.as_ref().ok().and_then(bulk) {
            Some(info) => info,
            None => panic!("INFO from node {i}: {reply:?}; its log:\n{}", self.log(i)),
        }
    }

    /// `field` of shard `shard`'s line in node `i`'s INFO (`shard<s>:…,field=N,…`).
    pub fn shard_field(&self, i: usize, shard: usize, field: &str) -> u64 {
        self.shard_value(i, shard, "", field)
    }

    /// `field`'s text in shard `shard`'s line of node `i`'s INFO (`shard<s>:…,field=…,…`).
    pub fn shard_text(&self, i: usize, shard: usize, field: &str) -> String {
        shard_line_text(&self.info(i), i, shard, "", field)
    }

    /// Shards of node `i` whose INFO line says `recovering=1` (all of them while it does
    /// not answer).
    pub fn recovering_shards(&self, i: usize) -> usize {
        let Ok(mut c) = self.connect(i) else {
            return SHARDS;
        };
        let info = bulk(&c.cmd(&["INFO"]).expect("INFO")).expect("bulk");
        (0..SHARDS)
            .filter(|s| {
                info.lines()
                    .any(|l| l.starts_with(&format!("shard{s}:")) && l.contains(",recovering=1,"))
            })
            .count()
    }

    /// The storage-fault scenario, after the damage: X (node 0) and Z (node 2) start
    /// while Y (node 1) stays down, and X's log must report the damage (`reported`).
    pub fn start_x_and_z(&mut self, reported: &str) {
        self.spawn(0);
        self.spawn(2);
        self.wait_listening(0);
        self.wait_listening(2);
        let log = self.log(0);
        assert!(log.contains(reported), "{reported:?} not reported:\n{log}");
    }

    /// The storage-fault scenario's second half: X (node 0) lost records it may have
    /// voted with and Z (node 2) lags, both running; Y (node 1) is down. For `hold`, X
    /// must withhold its vote (no shard gets a leader) and stay a learner; then Y returns,
    /// leaders are elected, and X finishes recovering from the group.
    pub fn learner_waits_for_y(&mut self, hold: Duration) {
        let until = Instant::now() + hold;
        while Instant::now() < until {
            assert_eq!(
                self.leaders(),
                vec![None; SHARDS],
                "a leader without Y; node 0's log:\n{}",
                self.log(0)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(self.recovering_shards(0), SHARDS);
        self.restart(1);
        self.wait_for_leaders(Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.recovering_shards(0) > 0 {
            assert!(
                Instant::now() < deadline,
                "node 0 never finished recovering:\n{}",
                self.log(0)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node reports the same Merkle roots (the same applied state).
    pub fn wait_states_agree(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let roots: Vec<Vec<String>> = (0..self.clients.len())
                .map(|i| self.merkle_roots(i))
                .collect();
            if roots.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(Instant::now() < deadline, "replicas differ: {roots:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The stderr of node `i` so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{i}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

/// A blocking RESP client.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects, with a read timeout so a test never hangs.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Replaces the read timeout (10 s from `connect`).
    pub fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Value> {
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        self.stream.write_all(&out)?;
        self.read_reply()
    }

    /// SET, retried (same key and value: idempotent) while the node answers TIMEOUT, which
    /// means "may or may not have taken effect" — what a careful client does under load.
    pub fn set(&mut self, key: &str, value: &str) -> std::io::Result<Value> {
        let mut reply = self.cmd(&["SET", key, value])?;
        for _ in 0..3 {
            match &reply {
                Value::Error(e) if e.starts_with("TIMEOUT") => {
                    reply = self.cmd(&["SET", key, value])?;
                }
                _ => break,
            }
        }
        Ok(reply)
    }

    /// SET until a node acknowledges it (after a cut: once a new leader is elected);
    /// returns when it was acknowledged. Panics past `deadline`.
    pub fn set_until_ok(&mut self, key: &str, value: &str, deadline: Instant) -> Instant {
        loop {
            if let Ok(v) = self.cmd(&["SET", key, value])
                && is_ok(&v)
            {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "no leader acknowledged the write"
            );
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Ends the client's side of the stream (a half-close): the node sees end of input.
    pub fn shutdown_write(&self) -> std::io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    /// Reads one reply.
    pub fn read_reply(&mut self) -> std::io::Result<Value> {
        loop {
            match resp::decode(&self.buf, &Limits::default()) {
                Ok(Some((v, used))) => {
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A bulk reply's text, for assertions.
pub fn bulk(v: &Value) -> Option<String> {
    match v {
        Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// True for `+OK`.
pub fn is_ok(v: &Value) -> bool {
    matches!(v, Value::Simple(s) if s == "OK")
}

/// `field` (a number) of the `reads_total:` line of the INFO of the node behind `c`.
pub fn reads_total(c: &mut Client, field: &str) -> u64 {
    let info = bulk(&c.cmd(&["INFO"]).unwrap()).expect("INFO is a bulk string");
    info.lines()
        .find_map(|l| l.strip_prefix("reads_total:"))
        .and_then(|l| {
            l.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO's reads_total"))
}

/// `field` (a number) of the `shard<shard><suffix>:` line of node `i`'s `info`.
fn shard_line_field(info: &str, i: usize, shard: usize, suffix: &str, field: &str) -> u64 {
    let text = shard_line_text(info, i, shard, suffix, field);
    text.trim()
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("{field}={text} of shard {shard} is not a number"))
}

/// `field`'s text in shard `shard`'s `shard<s><suffix>:` line of node `i`'s INFO.
fn shard_line_text(info: &str, i: usize, shard: usize, suffix: &str, field: &str) -> String {
    let prefix = format!("shard{shard}{suffix}:");
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in INFO of node {i}:\n{info}"));
    line.split(',')
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field} in {prefix}{line}"))
        .to_string()
}
