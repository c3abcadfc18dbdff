//! `corepax cluster --replicas 5`: the five nodes start and replicate (a SET through one
//! is read through all five), and after kill -9 of a node that leads no shard the
//! cluster keeps running and writes still succeed.
mod node_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::{Client, bulk, free_ports, is_ok};

const REPLICAS: usize = 5;
/// `corepax cluster` puts replica i's peer ports at base + 1000 + 64·i + shard.
const PEER_OFFSET: u16 = 1000;
const PEER_STRIDE: u16 = 64;
/// Shards per node: two, so cross-shard forwarding runs too.
const SHARDS: u16 = 2;
/// Everything this test waits for, at most.
const WAIT: Duration = Duration::from_secs(30);

/// The `corepax cluster` process, stopped (SIGTERM, then SIGKILL) when dropped.
struct LocalCluster {
    child: Child,
    clients: Vec<SocketAddr>,
    log: std::path::PathBuf,
}

impl LocalCluster {
    fn start(dir: &std::path::Path) -> LocalCluster {
        let base = free_base_port();
        let log = dir.join("cluster.log");
        let child = Command::new(env!("CARGO_BIN_EXE_corepax"))
            .args(["cluster", "--replicas", &REPLICAS.to_string()])
            .args(["--base-port", &base.to_string()])
            .args(["--shards", &SHARDS.to_string(), "--no-pin"])
            .arg("--data")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn corepax cluster");
        let clients = (0..REPLICAS as u16)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)))
            .collect();
        let mut c = LocalCluster {
            child,
            clients,
            log,
        };
        let deadline = Instant::now() + WAIT;
        for i in 0..REPLICAS {
            while TcpStream::connect_timeout(&c.clients[i], Duration::from_millis(100)).is_err() {
                if let Ok(Some(status)) = c.child.try_wait() {
                    panic!("the cluster exited ({status}):\n{}", c.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} never listened:\n{}",
                    c.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Which nodes lead a shard, per their INFO; waits until every shard has a leader.
    fn leaders(&self, alive: &[usize]) -> Vec<usize> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut leaders = vec![None; usize::from(SHARDS)];
            for &i in alive {
                let Ok(mut c) = Client::connect(self.clients[i]) else {
                    continue;
                };
                let Ok(Value::Bulk(Some(info))) = c.cmd(&["INFO"]) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&info).into_owned();
                for (s, slot) in leaders.iter_mut().enumerate() {
                    if text.contains(&format!("shard{s}:leading=1,")) {
                        *slot = Some(i);
                    }
                }
            }
            if let Some(all) = leaders.iter().copied().collect::<Option<Vec<usize>>>() {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "no leader for every shard: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 of the node process of replica i, a child of the cluster process.
    fn kill9_node(&self, i: usize) {
        let pid = child_pids(self.child.id())
            .into_iter()
            .find(|&pid| node_id_of(pid) == Some(i))
            .unwrap_or_else(|| panic!("no node process of replica {i}"));
        // SAFETY: kill(2) on a pid that is a child of our own child; no memory is shared.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid}");
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let nodes = child_pids(self.child.id());
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in nodes {
            // SAFETY: kill(2) on the nodes our child started and failed to stop.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// A client base port P with P..P+5 and every node's peer ports free.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let base = free_ports(REPLICAS as u16);
        let peers_free = (0..REPLICAS as u16).all(|i| {
            (0..SHARDS).all(|s| {
                base.checked_add(PEER_OFFSET + PEER_STRIDE * i + s)
                    .is_some_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
            })
        });
        if peers_free {
            return base;
        }
    }
    panic!("no free ports for a 5-replica cluster");
}

/// Processes whose parent is `parent`, from /proc.
fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = &s[s.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// The `--id` argument of a `corepax node` process.
/// The replica id of node process `pid`, from the configuration file `corepax cluster`
/// starts it with (`node --config FILE`).
fn node_id_of(pid: u32) -> Option<usize> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args.iter().position(|a| *a == b"--config")?;
    let path = std::str::from_utf8(args.get(at + 1)?).ok()?;
    let cfg: corepax::config::NodeConfig =
        toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(usize::from(cfg.id))
}

fn set_via(cluster: &LocalCluster, node: usize, key: &str, value: &str) {
    let mut c = Client::connect(cluster.clients[node]).expect("connect");
    let r = c.set(key, value).expect("SET reply");
    assert!(is_ok(&r), "SET {key} via node {node}: {r:?}");
}

/// GET through `node` until it returns `value` (a follower applies a moment later).
fn read_via(cluster: &LocalCluster, node: usize, key: &str, value: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(cluster.clients[node]).expect("connect");
        let got = c.cmd(&["GET", key]).expect("GET reply");
        if bulk(&got).as_deref() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {key} via node {node}: {got:?}, want {value}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn five_replica_cluster_serves_every_node_and_survives_a_kill9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::start(dir.path());
    let all: Vec<usize> = (0..REPLICAS).collect();
    let leaders = cluster.leaders(&all);
    for k in 0..20 {
        set_via(&cluster, k % REPLICAS, &format!("key{k}"), &format!("v{k}"));
    }
    for node in 0..REPLICAS {
        for k in 0..20 {
            read_via(&cluster, node, &format!("key{k}"), &format!("v{k}"));
        }
    }
    let victim = (0..REPLICAS)
        .rev()
        .find(|i| !leaders.contains(i))
        .expect("5 nodes, at most 2 leaders");
    cluster.kill9_node(victim);
    let alive: Vec<usize> = all.iter().copied().filter(|i| *i != victim).collect();
    // Writes after the kill, through every surviving node, and reads of them.
    for k in 20..40 {
        set_via(
            &cluster,
            alive[k % alive.len()],
            &format!("key{k}"),
            &format!("w{k}"),
        );
    }
    for &node in &alive {
        for k in 20..40 {
            read_via(&cluster, node, &format!("key{k}"), &format!("w{k}"));
        }
    }
    let mut cluster = cluster;
    assert!(
        matches!(cluster.child.try_wait(), Ok(None)),
        "the cluster stopped when one of five nodes died:\n{}",
        cluster.log()
    );
    assert_eq!(cluster.leaders(&alive).len(), usize::from(SHARDS));
}
