//! Emulated networks: every node (replica) in a network namespace of its own, joined to
//! the others by a router that gives each directed pair the delay, jitter, loss and rate
//! of a [`Profile`], and that cuts and heals links on command. See docs/NETWORK.md.
//!
//! - [`Network`] (the launcher's side) creates the namespaces, their TUN devices and the
//!   router, and writes a state file other processes attach to ([`Attached`]).
//! - [`Control`] cuts, isolates, adds loss and heals, through the router's Unix socket.
//!
//! Nothing is named or created outside the namespaces: they live as long as the
//! launcher's descriptors and the processes inside them, so a killed launcher (its nodes
//! die with it, `PR_SET_PDEATHSIG`) leaves nothing behind.

pub mod ns;
pub mod profile;
pub mod router;

pub use ns::{Netns, run_in};
pub use profile::Profile;

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The network every emulated node's address is in: node i is `10.77.0.(i + 1)`.
pub const SUBNET_BASE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// The subnet's prefix length.
pub const SUBNET_PREFIX: u8 = 24;
/// Most nodes one network holds.
pub const NODES_MAX: usize = 64;
/// The state file a launcher writes into its data directory.
pub const STATE_FILE: &str = "net.json";
/// The router's control socket in the data directory.
pub const CONTROL_FILE: &str = "net.sock";

/// The address of node `i`.
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SUBNET_BASE) + 1 + i as u32)
}

/// What another process needs to reach a running network: written by the launcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The launcher's process id.
    pub pid: u32,
    /// Each node's namespace, as a path another process (root) can open.
    pub namespaces: Vec<String>,
    /// Each node's address.
    pub addrs: Vec<Ipv4Addr>,
    /// The router's control socket.
    pub control: PathBuf,
    /// The profile, as given (`wan3` or a file).
    pub profile: String,
}

/// Why the network cannot be built here, or None: root, the tun device.
pub fn missing_capability() -> Option<String> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "network emulation (--net) needs root: it creates network namespaces and TUN devices"
                .into(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("network emulation (--net) needs /dev/net/tun (the tun driver)".into());
    }
    None
}

/// A running emulated network: namespaces, TUN devices, the router. Dropping it stops the
/// router and closes the devices (the namespaces go once no process is left in them).
pub struct Network {
    namespaces: Vec<Netns>,
    stop: Arc<AtomicBool>,
    router: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    state: State,
}

impl Network {
    /// Builds a network of `n` nodes shaped by `profile` (named `spec`), with its state
    /// file and control socket in `dir`.
    pub fn start(spec: &str, profile: &Profile, n: usize, dir: &Path) -> anyhow::Result<Network> {
        if let Some(m) = missing_capability() {
            anyhow::bail!("{m}");
        }
        anyhow::ensure!(
            (1..=NODES_MAX).contains(&n),
            "a network holds 1..={NODES_MAX} nodes"
        );
        let links = profile
            .link_matrix(n)
            .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
        std::fs::create_dir_all(dir)?;
        let mut namespaces = Vec::with_capacity(n);
        let mut tuns = Vec::with_capacity(n);
        for i in 0..n {
            let ns = Netns::create()?;
            let tun = ns.run(|| ns::tun_here(node_addr(i), SUBNET_PREFIX))??;
            namespaces.push(ns);
            tuns.push(tun);
        }
        let control = dir.join(CONTROL_FILE);
        let _ = std::fs::remove_file(&control);
        let listener = UnixListener::bind(&control)
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", control.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let r = router::Router::new(tuns, SUBNET_BASE, links, listener);
        let router = router::spawn(r, stop.clone())?;
        let pid = std::process::id();
        let state = State {
            pid,
            namespaces: namespaces
                .iter()
                .map(|ns| format!("/proc/{pid}/fd/{}", ns.raw_fd()))
                .collect(),
            addrs: (0..n).map(node_addr).collect(),
            control,
            profile: spec.to_string(),
        };
        Ok(Network {
            namespaces,
            stop,
            router: Some(router),
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> &Netns {
        &self.namespaces[i]
    }

    /// The state other processes attach with.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Writes the state file into the data directory (once the nodes serve).
    pub fn write_state(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(STATE_FILE);
        // Whole or absent: others wait for the file to appear, then read it.
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.state)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The control client of this network.
    pub fn control(&self) -> Control {
        Control::new(self.state.control.clone())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        let _ = std::fs::remove_file(&self.state.control);
    }
}

/// A network another process runs, attached through its state file: its namespaces are
/// open here (so sockets can be made inside them) and its router takes commands.
#[derive(Debug)]
pub struct Attached {
    /// The state read.
    pub state: State,
    namespaces: Vec<Netns>,
}

impl Attached {
    /// Attaches to the network whose state file is `DIR/net.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Attached> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let state: State = serde_json::from_str(&text)?;
        let namespaces = state
            .namespaces
            .iter()
            .map(|p| Netns::open(p))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Attached { state, namespaces })
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> &Netns {
        &self.namespaces[i]
    }

    /// The network's control client.
    pub fn control(&self) -> Control {
        Control::new(self.state.control.clone())
    }
}

/// Faults on a running network: each call is one line to the router, which answers with
/// its counters.
#[derive(Debug, Clone)]
pub struct Control {
    path: PathBuf,
}

impl Control {
    /// A client of the router listening at `path` (`DIR/net.sock`).
    pub fn new(path: PathBuf) -> Control {
        Control { path }
    }

    /// Sends one command (`cut A B`, `isolate A`, `loss A B PCT`, `heal`, `stats`) and
    /// returns the router's counters.
    pub fn send(&self, command: &str) -> anyhow::Result<String> {
        let s = UnixStream::connect(&self.path)
            .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", self.path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        (&s).write_all(format!("{command}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line)?;
        match line.trim().strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => anyhow::bail!("router: {}", line.trim()),
        }
    }

    /// Drops every packet from node `a` to node `b` (one way).
    pub fn cut(&self, a: usize, b: usize) -> anyhow::Result<()> {
        self.send(&format!("cut {a} {b}")).map(|_| ())
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut_both(&self, a: usize, b: usize) -> anyhow::Result<()> {
        self.cut(a, b)?;
        self.cut(b, a)
    }

    /// Cuts node `a` off from every other node, both ways.
    pub fn isolate(&self, a: usize) -> anyhow::Result<()> {
        self.send(&format!("isolate {a}")).map(|_| ())
    }

    /// Drops `percent` of the packets from `a` to `b` (instead of the profile's loss).
    pub fn loss(&self, a: usize, b: usize, percent: f64) -> anyhow::Result<()> {
        self.send(&format!("loss {a} {b} {percent}")).map(|_| ())
    }

    /// Back to the profile: every cut and loss set here is undone.
    pub fn heal(&self) -> anyhow::Result<()> {
        self.send("heal").map(|_| ())
    }
}
