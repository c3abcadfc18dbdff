//! `corepax cluster`: a local cluster of node processes on 127.0.0.1, for trying corepax,
//! for tests and for benchmarks. Writes each node's configuration as a TOML file, starts
//! `corepax node --config FILE` for each, prints the endpoints, forwards Ctrl-C and stops
//! the nodes.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{NodeFlags, ProtocolArgs, num_cpus};
use crate::config::{NodeConfig, PEER_PORTS_PER_REPLICA, ProtocolConfig, SHARDS_MAX};

/// How long the nodes get to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting node's client port is tried, and the cluster's nodes are checked.
const POLL_START: Duration = Duration::from_millis(20);
/// How often the running nodes are checked for exits.
const POLL_RUNNING: Duration = Duration::from_millis(50);
/// How long one try to connect to a starting node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long stopped nodes get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `corepax cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Replicas (node processes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub replicas: u8,
    /// Client port of replica 0; replica i listens on base + i.
    #[arg(long, default_value_t = 7379)]
    pub base_port: u16,
    /// First peer port (default base-port + 1000); replica i uses peer-port + 64·i + shard.
    #[arg(long)]
    pub peer_port: Option<u16>,
    /// Data directory; replica i keeps its files in DIR/node-i and its configuration in
    /// DIR/node-i.toml.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Emulate a network: each replica in a network namespace of its own, links shaped by
    /// this profile (a built-in: lan, metro, wan3; or a TOML file; see docs/NETWORK.md).
    /// Needs root. Faults: `corepax net --data DIR cut|isolate|loss|heal|stats`.
    #[arg(long, value_name = "PROFILE")]
    pub net: Option<String>,
    /// With fewer cores than replicas × shards: each group's leader runs on a core of
    /// its own wherever it is elected, the followers share the rest (`leader_cpus`,
    /// `follower_cpus`). Lower latency at light load, less throughput near capacity: on 2
    /// cores, one client's SET p50 −7 to −12 % through the leader (+33 % through a
    /// follower), the main job's closed loop up to −10 % and its CPU per op at half load
    /// +5 to +15 % (results/role-placement-20261207/).
    /// Default: the kernel places every executor.
    #[arg(long)]
    pub place_by_role: bool,
    /// Node settings for every node (`--shards` defaults to cores ÷ replicas, at least 1,
    /// since every replica runs on this machine).
    #[command(flatten)]
    pub node: NodeFlags<true>,
    /// Protocol settings for every node.
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// Runs the cluster until SIGINT or SIGTERM, or until fewer than a majority of its nodes
/// run. A minority may die (kill -9 one to watch the others carry on): a replicated
/// cluster keeps serving then, so this one keeps running too.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let configs = node_configs(&args)?;
    std::fs::create_dir_all(&args.data)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.data.display()))?;
    ensure_cluster_key(&configs[0])?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    // Dropped after the nodes stop (declared first): the router carries their last words.
    let net = match &args.net {
        Some(spec) => {
            let profile = crate::net::Profile::load(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(crate::net::Network::start(
                spec,
                &profile,
                configs.len(),
                &args.data,
            )?)
        }
        None => None,
    };
    let mut children = spawn_nodes(&args.data, &configs, net.as_ref())?;
    let endpoints: Vec<SocketAddr> = configs.iter().map(|c| c.client_addr).collect();
    if let Err(e) = wait_listening(&mut children, &endpoints, &stop, net.as_ref()) {
        stop_all(&mut children);
        return Err(e);
    }
    if let Some(net) = &net {
        let state = net.write_state()?;
        println!(
            "network {}: replica i in its own namespace at {}; state {}; a shell beside \
             replica 0: nsenter --net=/proc/{}/ns/net",
            args.net.as_deref().unwrap_or_default(),
            crate::net::node_addr(0),
            state.display(),
            children[0].id()
        );
    }
    let list: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    println!(
        "corepax cluster ready: {} replicas × {} shards{}; anti-entropy {}; clients: {}",
        configs.len(),
        configs[0].shards,
        if configs[0].no_fsync {
            " (NO FSYNC: not durable)"
        } else {
            ""
        },
        if configs[0].anti_entropy_interval_ms == 0 {
            "off".to_string()
        } else {
            format!("every {} ms", configs[0].anti_entropy_interval_ms)
        },
        list.join(",")
    );
    println!("ready: {}", list.join(","));
    supervise(&mut children, &stop);
    stop_all(&mut children);
    println!("corepax cluster stopped");
    Ok(())
}

/// Every node's configuration, validated: addresses, shards, cores and the protocol.
fn node_configs(args: &ClusterArgs) -> anyhow::Result<Vec<NodeConfig>> {
    let n = usize::from(args.replicas);
    let given = args.node.file()?;
    // All replicas share this machine: one shard per core in total, not per node, or the
    // executors oversubscribe the cores and every cross-shard hop waits for the scheduler.
    let shards = given.shards.unwrap_or_else(|| (num_cpus() / n).max(1));
    let no_pin = given.pin == Some(false);
    anyhow::ensure!(
        (1..=SHARDS_MAX).contains(&shards),
        "invalid `--shards` = {shards}: allowed 1..={SHARDS_MAX}"
    );
    let peer_base = match args.peer_port {
        Some(p) => p,
        None => args.base_port.checked_add(1000).ok_or_else(|| {
            anyhow::anyhow!(
                "--base-port {} leaves no room for peer ports",
                args.base_port
            )
        })?,
    };
    let port = |base: u16, offset: usize, what: &str, i: usize| -> anyhow::Result<SocketAddr> {
        let p = u16::try_from(usize::from(base) + offset)
            .map_err(|_| anyhow::anyhow!("{what} port out of range for replica {i}"))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], p)))
    };
    let mut peers = (0..n)
        .map(|i| port(peer_base, PEER_PORTS_PER_REPLICA * i, "peer", i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.net.is_some() {
        // Each replica at its own address, in its own namespace.
        for (i, p) in peers.iter_mut().enumerate() {
            p.set_ip(crate::net::node_addr(i).into());
        }
    }
    let mut protocol = ProtocolConfig {
        replicas: n,
        ..ProtocolConfig::default()
    };
    args.protocol.apply(&mut protocol)?;
    anyhow::ensure!(
        !(no_pin && args.place_by_role),
        "--place-by-role and --no-pin exclude each other"
    );
    let placement = Placement::choose(n, shards, no_pin, args.place_by_role, &machine_cores());
    if let Some(note) = placement
        .note(n, shards, args.place_by_role)
        .filter(|_| !no_pin)
    {
        eprintln!("note: {note}");
    }
    let mut configs = Vec::with_capacity(n);
    for i in 0..n {
        let id = u8::try_from(i)?;
        let data = args.data.join(format!("node-{i}"));
        let mut client = port(args.base_port, i, "client", i)?;
        if args.net.is_some() {
            client.set_ip(crate::net::node_addr(i).into());
        }
        let mut file = given.clone();
        file.id = Some(id);
        file.client_addr = Some(client);
        file.peers = Some(peers.clone());
        file.data_dir = Some(data);
        file.shards = Some(shards);
        placement.apply(i, shards, &mut file);
        file.cluster_key_file = Some(Some(args.data.join(CLUSTER_KEY_FILE)));
        file.protocol = Some(protocol.clone());
        let cfg = file.into_config()?;
        cfg.validate()?;
        configs.push(cfg);
    }
    Ok(configs)
}

/// The cores this process may use, ascending (0..cores when the kernel does not say).
fn machine_cores() -> Vec<usize> {
    let cores = crate::runtime::affinity::process_cores();
    if cores.is_empty() {
        (0..num_cpus()).collect()
    } else {
        cores
    }
}

/// Where a local cluster's executors run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    /// Each replica pinned to cores of its own: `shards` of these per replica, in order.
    Pinned(Vec<usize>),
    /// Fewer cores than executors, but more than one group's leaders need, and asked for
    /// (`--place-by-role`): every shard leading its group runs on a core of its own
    /// (shard s on `leaders[s]`), the followers share the rest. Left to the scheduler, a
    /// follower woken by its leader's accept often runs on the leader's core and delays
    /// its WAL write (results/placement-20261207/); confined, the executors cannot be
    /// balanced near capacity (results/role-placement-20261207/).
    ByRole {
        leaders: Vec<usize>,
        followers: Vec<usize>,
    },
    /// The kernel places every executor: `--no-pin`, and the default with fewer cores
    /// than executors (pinning each replica would stack executors on the first cores).
    Unpinned,
}

impl Placement {
    /// The placement of `n` replicas × `shards` on `cores`, `by_role` if asked.
    fn choose(n: usize, shards: usize, no_pin: bool, by_role: bool, cores: &[usize]) -> Placement {
        if no_pin {
            Placement::Unpinned
        } else if n * shards <= cores.len() {
            Placement::Pinned(cores[..n * shards].to_vec())
        } else if by_role && shards < cores.len() {
            Placement::ByRole {
                leaders: cores[..shards].to_vec(),
                followers: cores[shards..].to_vec(),
            }
        } else {
            Placement::Unpinned
        }
    }

    /// What a user of an oversubscribed machine, or one who asked `by_role`, is told at
    /// start.
    fn note(&self, n: usize, shards: usize, by_role: bool) -> Option<String> {
        use crate::runtime::affinity::cores_text;
        let executors = format!("{n} replicas × {shards} shards > cores");
        match self {
            Placement::Pinned(_) if by_role => {
                Some("--place-by-role not needed: every replica has cores of its own".to_string())
            }
            Placement::Pinned(_) => None,
            Placement::ByRole { leaders, followers } => Some(format!(
                "{executors}: each group's leader runs on a core of its own ({}), followers share {}",
                cores_text(leaders),
                cores_text(followers)
            )),
            Placement::Unpinned if by_role => Some(format!(
                "{executors}: executors run unpinned (--place-by-role needs more cores than shards)"
            )),
            Placement::Unpinned => Some(format!(
                "{executors}: executors run unpinned (--place-by-role: leaders on cores of their own)"
            )),
        }
    }

    /// Sets replica `i`'s placement settings in its file.
    fn apply(&self, i: usize, shards: usize, file: &mut crate::config::NodeFile) {
        file.pin = Some(matches!(self, Placement::Pinned(_)));
        file.cpus = Some(match self {
            Placement::Pinned(cores) => cores[i * shards..(i + 1) * shards].to_vec(),
            _ => Vec::new(),
        });
        if let Placement::ByRole { leaders, followers } = self {
            file.leader_cpus = Some(leaders.clone());
            file.follower_cpus = Some(followers.clone());
        }
        // Unpinned, a follower woken by its leader's accept may land on the leader's core:
        // at SCHED_BATCH it waits there instead of preempting the leader, unless asked
        // otherwise (results/follower-batch-20261207/).
        if file.follower_sched_batch.is_none() {
            file.follower_sched_batch = Some(matches!(self, Placement::Unpinned));
        }
    }
}

/// The cluster key's file in the data directory, shared by the nodes.
pub const CLUSTER_KEY_FILE: &str = "cluster.key";

/// Keeps the cluster key file the nodes are configured with if it holds a valid key (nodes
/// of an earlier run may still be about, restarted by hand), else writes a random one.
fn ensure_cluster_key(cfg: &NodeConfig) -> anyhow::Result<()> {
    let Some(path) = &cfg.cluster_key_file else {
        return Ok(());
    };
    if path.exists() && crate::runtime::node::load_cluster_key(cfg).is_ok() {
        return Ok(());
    }
    crate::runtime::node::write_random_cluster_key(path)
}

/// Writes each node's configuration to DIR/node-i.toml and starts `corepax node --config`
/// on it; stops the ones started if one fails.
fn spawn_nodes(
    dir: &std::path::Path,
    configs: &[NodeConfig],
    net: Option<&crate::net::Network>,
) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe()?;
    let mut children: Vec<Child> = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let path = dir.join(format!("node-{i}.toml"));
        let started = toml::to_string(cfg)
            .map_err(anyhow::Error::from)
            .and_then(|text| {
                std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
            })
            .and_then(|()| {
                let mut cmd = Command::new(&exe);
                cmd.arg("node").arg("--config").arg(&path);
                if let Some(net) = net {
                    net.ns(i).enter_on_spawn(&mut cmd);
                }
                cmd.spawn()
                    .map_err(|e| anyhow::anyhow!("starting node {i}: {e}"))
            });
        match started {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    Ok(children)
}

/// Waits until every node accepts connections on its client address.
fn wait_listening(
    children: &mut [Child],
    endpoints: &[SocketAddr],
    stop: &AtomicBool,
    net: Option<&crate::net::Network>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let connects = |i: usize, addr: &SocketAddr| {
        let connect = || TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok();
        crate::net::run_in(net.map(|n| n.ns(i)), connect).unwrap_or(false)
    };
    for (i, addr) in endpoints.iter().enumerate() {
        while !connects(i, addr) {
            if let Ok(Some(status)) = children[i].try_wait() {
                anyhow::bail!("node {i} exited during start-up: {status}");
            }
            if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                anyhow::bail!("node {i} did not listen on {addr} within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(POLL_START);
        }
    }
    Ok(())
}

/// Watches the nodes until `stop` is set, setting it once fewer than a majority run.
fn supervise(children: &mut [Child], stop: &AtomicBool) {
    let n = children.len();
    let mut running = vec![true; n];
    while !stop.load(Ordering::Relaxed) {
        for (i, c) in children.iter_mut().enumerate() {
            if running[i]
                && let Ok(Some(status)) = c.try_wait()
            {
                running[i] = false;
                let alive = running.iter().filter(|r| **r).count();
                if alive > n / 2 {
                    eprintln!("node {i} exited: {status}; {alive} of {n} nodes still run");
                } else {
                    eprintln!(
                        "node {i} exited: {status}; {alive} of {n} nodes is no majority; stopping the cluster"
                    );
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(POLL_RUNNING);
    }
}

/// Sends SIGTERM to every node and waits for it; SIGKILL after a grace period.
fn stop_all(children: &mut [Child]) {
    for c in children.iter() {
        // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is shared.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for c in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(POLL_START),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    #[test]
    fn node_configs_carry_the_flags_and_survive_their_toml_file() {
        let args = Cli::try_parse_from([
            "x",
            "--replicas",
            "3",
            "--base-port",
            "9000",
            "--shards",
            "2",
            "--no-pin",
            "--read-mode",
            "digest",
            "--batch-max",
            "8",
            "--snapshot-interval-slots",
            "77",
            "--maxclients",
            "50",
            "--no-fsync",
        ])
        .unwrap()
        .cluster;
        let configs = node_configs(&args).unwrap();
        assert_eq!(configs.len(), 3);
        for (i, cfg) in configs.iter().enumerate() {
            assert_eq!(usize::from(cfg.id), i);
            assert_eq!(cfg.client_addr.port(), 9000 + i as u16);
            assert_eq!(
                cfg.peer_addr(i, 1).port(),
                10_000 + (PEER_PORTS_PER_REPLICA * i) as u16 + 1
            );
            assert_eq!(cfg.protocol.replicas, 3);
            assert_eq!(cfg.protocol.read_mode, crate::config::ReadMode::Digest);
            assert_eq!(cfg.protocol.batch_max, 8);
            assert_eq!(cfg.snapshot_interval_slots, 77);
            assert_eq!(cfg.maxclients, 50);
            assert!(cfg.no_fsync && !cfg.debug);
            // The cluster's own default, not a node's.
            assert_eq!(cfg.anti_entropy_interval_ms, 0);
            assert_eq!(
                cfg.cluster_key_file,
                Some(std::path::PathBuf::from("data").join(CLUSTER_KEY_FILE))
            );
            assert!(!cfg.pin && cfg.cpus.is_empty());
            assert!(cfg.leader_cpus.is_empty() && cfg.follower_cpus.is_empty());
            assert!(
                cfg.follower_sched_batch,
                "unpinned: followers at SCHED_BATCH"
            );
            let back: NodeConfig = toml::from_str(&toml::to_string(cfg).unwrap()).unwrap();
            assert_eq!(&back, cfg);
        }
    }

    /// A replica's `(pin, cpus, leader_cpus, follower_cpus, follower_sched_batch)`.
    type Placed = (bool, Vec<usize>, Vec<usize>, Vec<usize>, bool);

    /// Each replica's placement settings for `n` replicas × `shards` on `cores`,
    /// validated.
    fn placed(n: usize, shards: usize, cores: &[usize]) -> Vec<Placed> {
        let placement = Placement::choose(n, shards, false, true, cores);
        (0..n)
            .map(|i| {
                let mut cfg = NodeConfig::new(
                    i as u8,
                    "127.0.0.1:9000".parse().unwrap(),
                    (0..n)
                        .map(|j| SocketAddr::from(([127, 0, 0, 1], 10_000 + 100 * j as u16)))
                        .collect(),
                    "d".into(),
                    shards,
                );
                let mut file = crate::config::NodeFile::default();
                placement.apply(i, shards, &mut file);
                cfg.pin = file.pin.unwrap();
                cfg.cpus = file.cpus.unwrap();
                cfg.leader_cpus = file.leader_cpus.unwrap_or_default();
                cfg.follower_cpus = file.follower_cpus.unwrap_or_default();
                cfg.follower_sched_batch = file.follower_sched_batch.unwrap();
                cfg.validate().unwrap();
                let batch = cfg.follower_sched_batch;
                (cfg.pin, cfg.cpus, cfg.leader_cpus, cfg.follower_cpus, batch)
            })
            .collect()
    }

    #[test]
    fn replicas_are_pinned_apart_or_placed_by_role_or_left_to_the_kernel() {
        // Enough cores: each replica its own, in the order the process may use them.
        let p = placed(3, 2, &[2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p[0], (true, vec![2, 3], vec![], vec![], false));
        assert_eq!(p[2], (true, vec![6, 7], vec![], vec![], false));
        // Three replicas on two cores (this machine): a leader's shard on the first
        // core, every follower on the second, whichever replica leads.
        for r in placed(3, 1, &[0, 1]) {
            assert_eq!(r, (false, vec![], vec![0], vec![1], false));
        }
        // Two shards on four cores: leaders of shard 0 and 1 on 0 and 1, followers 2-3.
        for r in placed(3, 2, &[0, 1, 2, 3]) {
            assert_eq!(r, (false, vec![], vec![0, 1], vec![2, 3], false));
        }
        // No core left for followers: the kernel places them all, followers at
        // SCHED_BATCH.
        for r in placed(3, 2, &[0, 1]) {
            assert_eq!(r, (false, vec![], vec![], vec![], true));
        }
        // Not asked for, or --no-pin: the kernel places them.
        assert_eq!(
            Placement::choose(3, 1, false, false, &[0, 1]),
            Placement::Unpinned
        );
        assert_eq!(
            Placement::choose(3, 1, true, false, &[0, 1]),
            Placement::Unpinned
        );
        let note = Placement::choose(3, 1, false, true, &[0, 1])
            .note(3, 1, true)
            .unwrap();
        assert!(
            note.contains("core of its own (0), followers share 1"),
            "{note}"
        );
    }

    #[test]
    fn followers_run_at_sched_batch_unless_told_not_to() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["x", "--no-pin"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).unwrap().cluster
        };
        let configs = node_configs(&args(&["--follower-sched-batch", "false"])).unwrap();
        assert!(configs.iter().all(|c| !c.follower_sched_batch));
        let configs = node_configs(&args(&[])).unwrap();
        assert!(configs.iter().all(|c| c.follower_sched_batch));
    }

    #[test]
    fn a_bad_setting_fails_before_any_node_starts() {
        let args = Cli::try_parse_from(["x", "--heartbeat-interval-ms", "400"])
            .unwrap()
            .cluster;
        let err = node_configs(&args).unwrap_err();
        assert!(err.to_string().contains("election_timeout_ms"), "{err}");
    }
}
