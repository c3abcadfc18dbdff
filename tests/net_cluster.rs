//! `corepax cluster --net` as processes: the network goes with the launcher (Ctrl-C or
//! kill -9: no namespace, device or node left), a real cut of the leader (the router drops
//! its packets) behaves as the partition it models, and without root the command fails
//! saying why. Needs root and /dev/net/tun (CI runs as root): without them the tests fail,
//! saying so.

mod node_support;

use corepax::net::Attached;
use node_support::{Client, bulk, free_ports, is_ok};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn need_root() {
    if let Some(m) = corepax::net::missing_capability() {
        panic!("this test needs what network emulation needs: {m}");
    }
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
    SocketAddr::from((corepax::net::node_addr(i), l.base + i as u16))
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
    for _ in 0..20 {
        assert_eq!(bulk(&c.cmd(&["GET", "k"]).unwrap()).as_deref(), Some("old"));
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
    let write_acked = loop {
        if let Ok(v) = w.cmd(&["SET", "k", "new"])
            && is_ok(&v)
        {
            break Instant::now();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "no new leader wrote"
        );
    };
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
    // Healed, the old leader learns the new value.
    net.control().heal().unwrap();
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
