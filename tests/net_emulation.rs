//! Emulated networks (`corepax::net`, `corepax cluster --net`). Needs root and
//! /dev/net/tun (CI runs as root): without them every test fails, saying so.
//!
//! - One-way delays measured with timestamps (every namespace shares the machine's
//!   monotonic clock) match each directed link of the profile within 10%; a cut drops one
//!   direction only; heal restores it.
//! - The network goes with the launcher (Ctrl-C or kill -9: no namespace, device or node
//!   left), a real cut of the leader (the router drops its packets) behaves as the
//!   partition it models, and without root the command fails saying why.

mod node_support;

use corepax::net::{Attached, Network, Profile, node_addr};
use node_support::{Client, bulk, free_ports, is_ok, reads_total};
use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn need_root() {
    if let Some(m) = corepax::net::missing_capability() {
        panic!("this test needs what network emulation needs: {m}");
    }
}

/// The delay measurement runs alone (write), the clusters beside each other (read): three
/// clusters starting on a small machine would delay the router thread and the probes.
static ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    ALONE.read().unwrap_or_else(|e| e.into_inner())
}

const PROFILE: &str = r#"
regions = ["a", "b", "c"]
[[link]]
from = "a"
to = "b"
delay_ms = 4.0
[[link]]
from = "b"
to = "a"
delay_ms = 8.0
[[link]]
between = ["a", "c"]
delay_ms = 6.0
jitter_ms = 0.2
distribution = "normal"
[[link]]
between = ["b", "c"]
delay_ms = 5.0
"#;

const PORT: u16 = 7000;
const PROBES: usize = 25;

/// Median one-way delay (ms) of probes from node `a` to node `b`, or None if none arrived.
fn one_way_ms(net: &Network, a: usize, b: usize, base: Instant) -> Option<f64> {
    let rx = net
        .ns(b)
        .run(|| UdpSocket::bind(SocketAddr::from((node_addr(b), PORT))))
        .unwrap()
        .unwrap();
    let tx = net
        .ns(a)
        .run(|| UdpSocket::bind(SocketAddr::from((node_addr(a), 0))))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to = SocketAddr::from((node_addr(b), PORT));
    let recv = std::thread::spawn(move || {
        let mut delays = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(n) = rx.recv(&mut buf) {
            if n == 16 {
                let sent = u128::from_le_bytes(buf);
                delays.push((base.elapsed().as_nanos() - sent) as f64 / 1e6);
            }
        }
        delays
    });
    for _ in 0..PROBES {
        tx.send_to(&base.elapsed().as_nanos().to_le_bytes(), to)
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut d = recv.join().unwrap();
    d.sort_by(f64::total_cmp);
    (!d.is_empty()).then(|| d[d.len() / 2])
}

#[test]
fn one_way_delays_match_the_profile_and_cuts_are_one_way() {
    need_root();
    let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::from_toml(PROFILE, "test").unwrap();
    let links = profile.link_matrix(3).unwrap();
    let net = Network::start("test", &profile, 3, dir.path()).unwrap();
    let base = Instant::now();
    for (a, row) in links.iter().enumerate() {
        for (b, link) in row.iter().enumerate() {
            if a == b {
                continue;
            }
            let want = link.delay_ms;
            let got = one_way_ms(&net, a, b, base).expect("probes arrive");
            assert!(
                (got - want).abs() <= want * 0.1,
                "{a} -> {b}: measured {got:.3} ms, profile {want} ms"
            );
        }
    }
    let control = net.control();
    control.cut(0, 1).unwrap();
    assert_eq!(one_way_ms(&net, 0, 1, base), None, "cut 0 -> 1 drops");
    assert!(one_way_ms(&net, 1, 0, base).is_some(), "1 -> 0 still flows");
    control.heal().unwrap();
    assert!(one_way_ms(&net, 0, 1, base).is_some(), "healed");
    let stats = control.send("stats").unwrap();
    assert!(stats.contains("cut="), "{stats}");
}

struct Launched {
    child: Child,
    base: u16,
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `corepax cluster --net PROFILE` and waits for its network state file.
fn launch(dir: &Path, profile: &str, extra: &[&str]) -> Launched {
    let base = free_ports(3);
    let child = Command::new(env!("CARGO_BIN_EXE_corepax"))
        .args(["cluster", "--replicas", "3", "--shards", "1", "--no-pin"])
        .args(["--net", profile, "--base-port", &base.to_string()])
        .arg("--data")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut l = Launched { child, base };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join(corepax::net::STATE_FILE).exists() {
        if let Ok(Some(s)) = l.child.try_wait() {
            panic!("corepax cluster --net exited: {s}");
        }
        assert!(Instant::now() < deadline, "the network never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    l.base = base;
    l
}

fn addr(l: &Launched, i: usize) -> SocketAddr {
    SocketAddr::from((node_addr(i), l.base + i as u16))
}

/// The node processes of a launcher (its children).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Every network namespace some process is in or holds a descriptor of.
fn namespaces_in_use() -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = p.path();
        if let Ok(l) = std::fs::read_link(path.join("ns/net")) {
            seen.insert(l.to_string_lossy().into_owned());
        }
        for fd in std::fs::read_dir(path.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(l) = std::fs::read_link(fd.path())
                && l.to_string_lossy().starts_with("net:")
            {
                seen.insert(l.to_string_lossy().into_owned());
            }
        }
    }
    seen
}

fn host_devices() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn named_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// Stops the launcher with `signal` and checks that nothing of its network is left.
fn stop_leaves_nothing(signal: libc::c_int) {
    need_root();
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let (devices, named) = (host_devices(), named_namespaces());
    let mut l = launch(dir.path(), "lan", &[]);
    let state = Attached::open(dir.path()).unwrap().state.clone();
    let ours: BTreeSet<String> = state
        .namespaces
        .iter()
        .map(|p| {
            std::fs::read_link(p)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(ours.len(), 3, "three namespaces: {ours:?}");
    let nodes = children_of(l.child.id());
    assert_eq!(nodes.len(), 3, "three node processes");
    for n in &nodes {
        let ns = std::fs::read_link(format!("/proc/{n}/ns/net")).unwrap();
        assert!(ours.contains(&*ns.to_string_lossy()), "node {n} in {ns:?}");
    }
    // SAFETY: kill(2) on the launcher we started.
    unsafe { libc::kill(l.child.id() as libc::pid_t, signal) };
    let status = l.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| gone(*n)) {
        assert!(Instant::now() < deadline, "nodes outlived the launcher");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<_> = namespaces_in_use().intersection(&ours).cloned().collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert_eq!(host_devices(), devices, "no device added to this namespace");
    assert_eq!(named_namespaces(), named, "nothing under /run/netns");
    if signal == libc::SIGINT {
        assert!(status.success(), "Ctrl-C is a clean stop: {status}");
        assert!(!dir.path().join(corepax::net::CONTROL_FILE).exists());
    }
}

#[test]
fn a_killed_launcher_leaves_no_namespace_device_or_node() {
    stop_leaves_nothing(libc::SIGKILL);
}

#[test]
fn ctrl_c_stops_the_nodes_and_removes_the_network() {
    stop_leaves_nothing(libc::SIGINT);
}

#[test]
fn without_root_the_command_says_what_is_missing() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corepax"));
    cmd.args(["cluster", "--net", "lan", "--data"])
        .arg(dir.path());
    // SAFETY: setuid(2) in the child before exec: it runs as `nobody`.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The data directory must be writable for the message to be about the network.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root"), "{err}");
}

/// The shard-0 leader each replica reports (INFO, from inside the network).
fn leader(net: &Attached, l: &Launched) -> Option<usize> {
    let mut c = net.ns(0).run(|| Client::connect(addr(l, 0))).ok()?.ok()?;
    let info = bulk(&c.cmd(&["INFO"]).ok()?)?;
    let line = info.lines().find(|x| x.starts_with("shard0:"))?;
    line.split(',')
        .find_map(|kv| kv.strip_prefix("leader="))?
        .parse()
        .ok()
}

#[test]
fn an_isolated_leader_stops_lease_reads_before_a_new_leader_writes() {
    need_root();
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let l = launch(dir.path(), "lan", &["--read-mode", "leader-lease"]);
    let net = Attached::open(dir.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let old = loop {
        if let Some(x) = leader(&net, &l) {
            break x;
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Clients sit beside the replica they talk to: the cut is between replicas.
    let connect = |i: usize| {
        net.ns(i)
            .run(|| Client::connect(addr(&l, i)))
            .unwrap()
            .unwrap()
    };
    let mut c = connect(old);
    assert!(is_ok(&c.set("k", "old").unwrap()));
    // Cut only once the leader serves reads from its lease: until every peer's clock rate
    // is measured, grants do not count and reads go through the log, which the cut stops.
    let deadline = Instant::now() + Duration::from_secs(15);
    while reads_total(&mut c, "local") == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never read from its lease"
        );
        assert_eq!(bulk(&c.cmd(&["GET", "k"]).unwrap()).as_deref(), Some("old"));
        std::thread::sleep(Duration::from_millis(10));
    }
    net.control().isolate(old).unwrap();
    let cut = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut served = Vec::new();
        while cut.elapsed() < Duration::from_secs(4) {
            let started = Instant::now();
            match c.cmd(&["GET", "k"]) {
                Ok(v) if bulk(&v).is_some() => served.push((started, bulk(&v))),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        served
    });
    let mut w = connect((old + 1) % 3);
    let write_acked = w.set_until_ok("k", "new", cut + Duration::from_secs(15));
    let served = reader.join().unwrap();
    assert!(
        !served.is_empty(),
        "the old leader served no lease read after the cut"
    );
    for (start, v) in &served {
        assert_eq!(v.as_deref(), Some("old"));
        assert!(
            *start < write_acked,
            "the isolated leader answered a read sent {:?} after the cut, after the new leader acknowledged a write ({:?})",
            *start - cut,
            write_acked - cut
        );
    }
    // Healed (through the command line this time), the old leader learns the new value.
    let out = Command::new(env!("CARGO_BIN_EXE_corepax"))
        .args(["net", "--data"])
        .arg(dir.path())
        .arg("heal")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("cut="), "{said}");
    let cut_packets: u64 = said
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("cut="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        cut_packets > 0,
        "the router dropped nothing while the leader was cut off"
    );
    let mut r = connect(old);
    let deadline = Instant::now() + Duration::from_secs(15);
    while bulk(&r.cmd(&["GET", "k"]).unwrap()).as_deref() != Some("new") {
        assert!(
            Instant::now() < deadline,
            "the healed replica never read the new value"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
