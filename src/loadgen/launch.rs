//! Launchers: start a server to benchmark as a child process group, wait until every
//! port accepts connections, and kill the group when dropped.
use super::ports::{self, Reservation};
use super::report::TargetDescription;
use crate::config::PEER_PORTS_PER_REPLICA;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a launched server may take before every port accepts connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped server gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// Rounds of cutting off the leader `leader_at` may take (each elects a new one).
const LEADER_MOVES_MAX: usize = 12;
/// How long a placed leader must stay before the run starts.
const LEADER_SETTLE: Duration = Duration::from_secs(1);
/// Bytes of a failed server's output quoted in the error.
pub const OUTPUT_TAIL_BYTES_MAX: usize = 2000;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program could not be spawned (not installed?).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited before accepting connections.
    #[error("{program} exited ({status}) before accepting connections; output: {output}")]
    Exited {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// The end of its output (stdout and stderr).
        output: String,
    },
    /// Some port did not accept connections in time.
    #[error("{program} did not accept connections on {addr} within {timeout_s} s")]
    NotReady {
        /// The program.
        program: String,
        /// The address that stayed closed.
        addr: SocketAddr,
        /// The wait, seconds.
        timeout_s: u64,
    },
    /// No free port, or the data directory could not be made.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
}

/// Something that starts a RESP server (or cluster) to benchmark.
pub trait Launcher {
    /// Starts it; returns once every address accepts TCP connections.
    fn launch(&mut self) -> Result<Vec<SocketAddr>, LaunchError>;
    /// What it runs, for reports.
    fn describe(&self) -> TargetDescription;
    /// Settings worth recording with results (protocol knobs, persistence, ...).
    fn target_info(&self) -> BTreeMap<String, serde_json::Value>;
    /// Stops it (also done on drop).
    fn stop(&mut self);
    /// The network namespace the load generator's connections must start from (an
    /// emulated network's), or None for this process's own.
    fn site(&self) -> Option<&crate::net::Netns> {
        None
    }
}

/// A running child process group plus the scratch directory it uses.
#[derive(Debug, Default)]
struct Proc {
    child: Option<Child>,
    dir: Option<PathBuf>,
    output_path: Option<PathBuf>,
}

impl Proc {
    fn spawn(&mut self, program: &str, cmd: Command, dir: PathBuf) -> Result<(), LaunchError> {
        self.spawn_with(program, cmd, dir, false)
    }

    /// As `spawn`; `die_with_parent` also has the child sent SIGTERM when this thread ends
    /// (a killed load generator takes its embedded cluster along).
    fn spawn_with(
        &mut self,
        program: &str,
        mut cmd: Command,
        dir: PathBuf,
        die_with_parent: bool,
    ) -> Result<(), LaunchError> {
        if die_with_parent {
            // SAFETY: prctl(2) only, async-signal-safe, in the child before exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        std::fs::create_dir_all(&dir)?;
        // Both streams into one file: redis-server says why it stopped on stdout.
        let output_path = dir.join("output.log");
        let out = std::fs::File::create(&output_path)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group, so stopping it kills every process it started.
            .process_group(0);
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: program.to_string(),
            source,
        })?;
        self.child = Some(child);
        self.dir = Some(dir);
        self.output_path = Some(output_path);
        Ok(())
    }

    /// The end of what the child wrote.
    fn output_tail(&self) -> String {
        let Some(p) = &self.output_path else {
            return String::new();
        };
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(p) {
            let _ = f.read_to_string(&mut s);
        }
        let start = s.len().saturating_sub(OUTPUT_TAIL_BYTES_MAX);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].trim().to_string()
    }

    fn wait_ready(&mut self, program: &str, addrs: &[SocketAddr]) -> Result<(), LaunchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        for &addr in addrs {
            loop {
                if let Some(c) = self.child.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    self.child = None;
                    return Err(LaunchError::Exited {
                        program: program.to_string(),
                        status: status.to_string(),
                        output: self.output_tail(),
                    });
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LaunchError::NotReady {
                        program: program.to_string(),
                        addr,
                        timeout_s: START_TIMEOUT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = c.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals the group we created; no memory is touched.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; the group may already be gone, which is fine.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = c.wait();
        }
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Launches tried, each on newly picked ports, while a server finds a port taken (another
/// process picked the same ones at the same moment).
const PORT_TRIES_MAX: usize = 3;

/// Whether a launch failed because its server found a port taken.
fn port_taken(e: &LaunchError) -> bool {
    matches!(e, LaunchError::Exited { output, .. } if output.contains("Address already in use"))
}

/// Calls `launch` until it succeeds, fails otherwise than on a taken port, or has been
/// tried `tries_max` times.
fn retry_taken_ports<T>(
    tries_max: usize,
    mut launch: impl FnMut() -> Result<T, LaunchError>,
) -> Result<T, LaunchError> {
    let mut tries = 1;
    loop {
        match launch() {
            Err(e) if port_taken(&e) && tries < tries_max => tries += 1,
            r => return r,
        }
    }
}

fn scratch_dir(tag: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("corepax-{tag}-{}-{port}", std::process::id()))
}

/// A local corepax cluster: `<exe> cluster --replicas N --base-port P --data DIR [extra]`,
/// serving RESP on 127.0.0.1:P..P+N.
#[derive(Debug)]
pub struct CorepaxCluster {
    /// The corepax binary (usually the current executable).
    pub exe: PathBuf,
    /// Replicas (processes).
    pub replicas: u16,
    /// Extra flags passed through (`--batch-max 64 ...`).
    pub extra_args: Vec<String>,
    /// An emulated network's profile (`cluster --net`): then the load generator sits in
    /// replica `client_near`'s namespace and connects to that replica only.
    pub net: Option<String>,
    /// The replica the load generator sits beside under `net`.
    pub client_near: u16,
    /// Under `net`: move every shard's leader to this replica before the run (by cutting
    /// off whichever replica leads until this one does).
    pub leader_at: Option<u16>,
    port: u16,
    ports: Option<Reservation>,
    proc: Proc,
    attached: Option<crate::net::Attached>,
}

impl CorepaxCluster {
    /// A launcher for `replicas` replicas of `exe` with extra flags.
    pub fn new(exe: PathBuf, replicas: u16, extra_args: Vec<String>) -> CorepaxCluster {
        CorepaxCluster {
            exe,
            replicas,
            extra_args,
            net: None,
            client_near: 0,
            leader_at: None,
            port: 0,
            ports: None,
            proc: Proc::default(),
            attached: None,
        }
    }

    /// The same on an emulated network `profile`, the load generator beside replica
    /// `client_near`.
    pub fn with_net(mut self, profile: Option<String>, client_near: u16) -> CorepaxCluster {
        self.net = profile;
        self.client_near = client_near;
        self
    }

    /// Under `net`: every shard's leader at replica `leader` before the run.
    pub fn with_leader_at(mut self, leader: Option<u16>) -> CorepaxCluster {
        self.leader_at = leader;
        self
    }

    /// Cuts off the replicas leading a shard, one round at a time, until replica `want`
    /// leads every shard (seen from `want`, and still so a second later).
    fn place_leader(&self, want: u16) -> Result<(), LaunchError> {
        let (Some(net), Some(site)) = (&self.attached, self.site()) else {
            return Ok(());
        };
        let control = net.control();
        let at = self.addr(want);
        let leaders = || site.run(|| super::info::leaders(at)).unwrap_or_default();
        let fail = |m: String| LaunchError::Setup(std::io::Error::other(m));
        for _ in 0..LEADER_MOVES_MAX {
            let now = leaders();
            let others: BTreeSet<u64> = now
                .iter()
                .flatten()
                .copied()
                .filter(|l| *l != u64::from(want))
                .collect();
            if others.is_empty() && !now.is_empty() && now.iter().all(Option::is_some) {
                std::thread::sleep(LEADER_SETTLE);
                if leaders().iter().all(|l| *l == Some(u64::from(want))) {
                    return Ok(());
                }
                continue;
            }
            for l in &others {
                control
                    .isolate(*l as usize)
                    .map_err(|e| fail(format!("{e:#}")))?;
            }
            let deadline = Instant::now() + START_TIMEOUT;
            while leaders()
                .iter()
                .any(|l| l.is_none_or(|l| others.contains(&l)))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            control.heal().map_err(|e| fail(format!("{e:#}")))?;
            std::thread::sleep(LEADER_SETTLE);
        }
        Err(fail(format!(
            "could not move the leader to replica {want} in {LEADER_MOVES_MAX} rounds"
        )))
    }

    /// The cluster's data directory (`corepax cluster --data`) while it runs: each
    /// replica's files and configuration (`node-i.toml`).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.proc.dir.as_ref().map(|d| d.join("data"))
    }

    fn addr(&self, i: u16) -> SocketAddr {
        match self.net {
            Some(_) => SocketAddr::from((crate::net::node_addr(usize::from(i)), self.port + i)),
            None => SocketAddr::from(([127, 0, 0, 1], self.port + i)),
        }
    }

    /// Under `net`: waits for the cluster's network state (written once every node
    /// listens) and attaches to it.
    fn attach(&mut self, data: &std::path::Path) -> Result<(), LaunchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let state = data.join(crate::net::STATE_FILE);
        while !state.exists() {
            if let Some(c) = self.proc.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.proc.child = None;
                return Err(LaunchError::Exited {
                    program: "corepax cluster".into(),
                    status: status.to_string(),
                    output: self.proc.output_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(LaunchError::NotReady {
                    program: "corepax cluster".into(),
                    addr: self.addr(0),
                    timeout_s: START_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let a = crate::net::Attached::open(data)
            .map_err(|e| LaunchError::Setup(std::io::Error::other(format!("{e:#}"))))?;
        self.attached = Some(a);
        Ok(())
    }

    /// One try at [`Launcher::launch`], on newly picked ports.
    fn launch_once(&mut self) -> Result<Vec<SocketAddr>, LaunchError> {
        self.proc.stop();
        self.attached = None;
        self.ports = None;
        // The client ports, and the peer ports: replica i's shard s listens on
        // peer + PEER_PORTS_PER_REPLICA·i + s (`corepax cluster`).
        let peer_ports = u16::try_from(PEER_PORTS_PER_REPLICA * usize::from(self.replicas))
            .map_err(|_| std::io::Error::other("too many replicas for the peer ports"))?;
        let ports = ports::reserve(&[self.replicas, peer_ports])?;
        self.port = ports.start(0);
        let dir = scratch_dir("cluster", self.port);
        let mut cmd = Command::new(&self.exe);
        cmd.arg("cluster")
            .arg("--replicas")
            .arg(self.replicas.to_string())
            .arg("--base-port")
            .arg(self.port.to_string())
            .arg("--data")
            .arg(dir.join("data"))
            .args(&self.extra_args);
        // Benchmarks measure the request path: periodic anti-entropy stays off unless the
        // extra flags ask for it.
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--anti-entropy-interval-ms"))
        {
            cmd.args(["--anti-entropy-interval-ms", "0"]);
        }
        if let Some(p) = &self.net {
            cmd.arg("--net").arg(p);
        }
        if !self.extra_args.iter().any(|a| a.starts_with("--peer-port")) {
            cmd.arg("--peer-port").arg(ports.start(1).to_string());
        }
        self.ports = Some(ports);
        let data = dir.join("data");
        // In its own process group, the cluster does not get the terminal's Ctrl-C: it
        // stops when the load generator dies, however it dies, instead of running on.
        self.proc.spawn_with("corepax cluster", cmd, dir, true)?;
        let addrs: Vec<SocketAddr> = (0..self.replicas).map(|i| self.addr(i)).collect();
        let ready = match self.net {
            Some(_) => self.attach(&data),
            None => self.proc.wait_ready("corepax cluster", &addrs),
        };
        if let Err(e) = ready {
            self.proc.stop();
            return Err(e);
        }
        // Listening is not serving: the first election is not part of the run (clients
        // would wait for it, and its counters would look like a leader change).
        let deadline = Instant::now() + START_TIMEOUT;
        let led = || addrs.iter().all(|a| super::info::every_shard_led(*a));
        while !crate::net::run_in(self.site(), led).unwrap_or(false) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(want) = self.leader_at
            && let Err(e) = self.place_leader(want)
        {
            self.stop();
            return Err(e);
        }
        if self.net.is_some() {
            // The client talks to its own region's replica.
            return Ok(vec![addrs[usize::from(self.client_near)]]);
        }
        Ok(addrs)
    }
}

impl Launcher for CorepaxCluster {
    fn launch(&mut self) -> Result<Vec<SocketAddr>, LaunchError> {
        check_net(self)?;
        // Peer ports the caller fixed are taken again on each try: one is enough.
        let fixed = self.extra_args.iter().any(|a| a.starts_with("--peer-port"));
        let tries = if fixed { 1 } else { PORT_TRIES_MAX };
        retry_taken_ports(tries, || self.launch_once())
    }

    fn site(&self) -> Option<&crate::net::Netns> {
        self.attached
            .as_ref()
            .map(|a| a.ns(usize::from(self.client_near)))
    }

    fn describe(&self) -> TargetDescription {
        let place = match &self.net {
            Some(p) => format!(
                "on emulated network {p} (one namespace each), the client beside replica {}",
                self.client_near
            ),
            None => format!("on 127.0.0.1:{}..", self.port),
        };
        TargetDescription {
            kind: "corepax-cluster".into(),
            description: format!(
                "local corepax cluster, {} replicas {place}, args {:?}",
                self.replicas, self.extra_args
            ),
            addrs: (0..self.replicas)
                .map(|i| self.addr(i).to_string())
                .collect(),
        }
    }

    fn target_info(&self) -> BTreeMap<String, serde_json::Value> {
        let mut m = BTreeMap::new();
        m.insert("replicas".into(), self.replicas.into());
        m.insert("node_args".into(), self.extra_args.clone().into());
        if let Some(p) = &self.net {
            m.insert("net".into(), p.clone().into());
            m.insert("client_near".into(), self.client_near.into());
            if let Some(l) = self.leader_at {
                m.insert("leader_at".into(), l.into());
            }
        }
        m
    }

    fn stop(&mut self) {
        self.attached = None;
        self.proc.stop();
        self.ports = None;
    }
}

/// Under `net`: the profile loads, the client's replica exists, this process may build
/// namespaces; checked before anything starts, so the error says what is missing.
fn check_net(c: &CorepaxCluster) -> Result<(), LaunchError> {
    let Some(p) = &c.net else {
        return Ok(());
    };
    let fail = |m: String| Err(LaunchError::Setup(std::io::Error::other(m)));
    if let Some(m) = crate::net::missing_capability() {
        return fail(m);
    }
    if let Err(e) = crate::net::Profile::load(p) {
        return fail(e);
    }
    if c.leader_at.is_some_and(|l| l >= c.replicas) {
        return fail(format!("--leader-at names no replica (0..{})", c.replicas));
    }
    if c.client_near >= c.replicas {
        return fail(format!(
            "--client-near {} names no replica (0..{})",
            c.client_near, c.replicas
        ));
    }
    Ok(())
}

/// Redis persistence for a launched redis-server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// No RDB, no AOF.
    None,
    /// AOF with `appendfsync always` (an fsync per write batch).
    Always,
}

/// A redis-server on a free port.
#[derive(Debug)]
pub struct RedisServer {
    /// Persistence mode.
    pub persistence: Persistence,
    /// The program (default `redis-server`).
    pub program: String,
    port: u16,
    ports: Option<Reservation>,
    proc: Proc,
}

impl RedisServer {
    /// A launcher for redis-server with the given persistence.
    pub fn new(persistence: Persistence) -> RedisServer {
        RedisServer {
            persistence,
            program: "redis-server".into(),
            port: 0,
            ports: None,
            proc: Proc::default(),
        }
    }

    /// Whether redis-server can be run here.
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// One try at [`Launcher::launch`], on a newly picked port.
    fn launch_once(&mut self) -> Result<Vec<SocketAddr>, LaunchError> {
        self.proc.stop();
        let ports = ports::reserve(&[1])?;
        self.port = ports.start(0);
        self.ports = Some(ports);
        let dir = scratch_dir("redis", self.port);
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir);
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::Always => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        self.proc.spawn(&self.program, cmd, dir)?;
        let addrs = vec![SocketAddr::from(([127, 0, 0, 1], self.port))];
        if let Err(e) = self.proc.wait_ready(&self.program, &addrs) {
            self.proc.stop();
            return Err(e);
        }
        Ok(addrs)
    }
}

impl Launcher for RedisServer {
    fn launch(&mut self) -> Result<Vec<SocketAddr>, LaunchError> {
        retry_taken_ports(PORT_TRIES_MAX, || self.launch_once())
    }

    fn describe(&self) -> TargetDescription {
        TargetDescription {
            kind: "redis-server".into(),
            description: format!(
                "redis-server on 127.0.0.1:{}, persistence {}",
                self.port,
                match self.persistence {
                    Persistence::None => "none",
                    Persistence::Always => "appendfsync always",
                }
            ),
            addrs: vec![format!("127.0.0.1:{}", self.port)],
        }
    }

    fn target_info(&self) -> BTreeMap<String, serde_json::Value> {
        let mut m = BTreeMap::new();
        m.insert(
            "persistence".into(),
            serde_json::to_value(self.persistence).unwrap_or_default(),
        );
        m.insert(
            "no_fsync".into(),
            (self.persistence == Persistence::None).into(),
        );
        m
    }

    fn stop(&mut self) {
        self.proc.stop();
        self.ports = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(output: &str) -> LaunchError {
        LaunchError::Exited {
            program: "corepax cluster".into(),
            status: "exit status: 1".into(),
            output: output.into(),
        }
    }

    const TAKEN: &str =
        "node 1: cannot listen on 127.0.0.1:46141: Address already in use (os error 98)";

    #[test]
    fn a_launch_that_found_its_port_taken_is_tried_again() {
        let mut calls = 0;
        let r = retry_taken_ports(PORT_TRIES_MAX, || {
            calls += 1;
            if calls < PORT_TRIES_MAX {
                Err(exited(TAKEN))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), PORT_TRIES_MAX);
    }

    #[test]
    fn a_launch_is_tried_a_bounded_number_of_times() {
        let mut calls = 0;
        let r: Result<(), _> = retry_taken_ports(PORT_TRIES_MAX, || {
            calls += 1;
            Err(exited(TAKEN))
        });
        assert!(port_taken(&r.unwrap_err()));
        assert_eq!(calls, PORT_TRIES_MAX);
    }

    #[test]
    fn other_failures_are_not_tried_again() {
        let mut calls = 0;
        let r: Result<(), _> = retry_taken_ports(PORT_TRIES_MAX, || {
            calls += 1;
            Err(exited("invalid `--shards` = 0"))
        });
        assert!(!port_taken(&r.unwrap_err()));
        assert_eq!(calls, 1);
    }
}
