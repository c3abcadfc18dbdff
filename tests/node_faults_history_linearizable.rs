//! Node: a Jepsen-style fault run on real processes. A 3-replica cluster, each node in a
//! network namespace of its own behind the emulated network's router (`lan` profile),
//! serves concurrent clients that record every operation (invocation, completion; a write
//! without a definite answer kept as indeterminate) while kill -9, SIGSTOP/SIGCONT and real
//! network cuts (the router drops the packets: a node isolated both ways, cut off one way
//! in either direction, or cut from one peer only) hit random nodes, the leader half the
//! time; after the faults heal every key is read through every node, and the history is
//! checked with the simulator's linearizability checker. Every read mode. The short runs
//! here take a few seconds each; `scripts/jepsen.sh` runs the same for as long and with as
//! many faults as asked (the `long_run` test below). Needs root and /dev/net/tun (CI runs
//! as root): without them every test fails, saying so.
mod node_support;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corepax::sim::linearizability::{self, Op, Operation, Output, Verdict};
use corepax::wire::resp::Value;
use node_support::*;
use rand::{Rng, SeedableRng};

/// Search steps per key before the checker gives up (counted as undecided).
const SEARCH_STEPS_MAX: u64 = 20_000_000;

/// One run's settings.
#[derive(Clone, Debug)]
struct Params {
    protocol: String,
    read_mode: String,
    seconds: u64,
    faults: u64,
    clients: usize,
    keys: usize,
    seed: u64,
}

/// What a run did and found.
#[derive(Debug, Default)]
struct Report {
    ops: usize,
    indeterminate: usize,
    faults: u64,
    /// The network cuts among the faults, by kind, in order.
    cuts: Vec<Cut>,
    /// Packets the router dropped on cut links (its `cut=` counter).
    cut_packets: u64,
    violations: usize,
    undecided: usize,
}

/// A network fault: which links of the victim the router drops until healed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Every link to and from the victim.
    Isolate,
    /// The victim's packets to every peer (it still hears them).
    Outgoing,
    /// Every peer's packets to the victim (it still reaches them).
    Incoming,
    /// Both ways between the victim and one peer, the leader if the victim follows it
    /// (the third node still reaches both).
    Pair,
}

impl Cut {
    const ALL: [Cut; 4] = [Cut::Isolate, Cut::Outgoing, Cut::Incoming, Cut::Pair];

    /// Cuts `victim`'s links of this kind (`peer`: the other end of a `Pair`).
    fn apply(self, net: &corepax::net::Control, victim: usize, peer: usize, nodes: usize) {
        let mut others = (0..nodes).filter(|&j| j != victim);
        let done = match self {
            Cut::Isolate => net.isolate(victim),
            Cut::Outgoing => others.try_for_each(|j| net.cut(victim, j)),
            Cut::Incoming => others.try_for_each(|j| net.cut(j, victim)),
            Cut::Pair => net.cut_both(victim, peer),
        };
        done.unwrap_or_else(|e| panic!("{self:?} of node {victim}: {e:#}"));
    }

    fn name(self) -> &'static str {
        match self {
            Cut::Isolate => "isolate",
            Cut::Outgoing => "one-way-out",
            Cut::Incoming => "one-way-in",
            Cut::Pair => "pair",
        }
    }
}

/// One recorded operation, with its key.
type Recorded = (usize, Operation);

/// Issues one operation on `c` and records it; returns false if the connection is gone.
fn one_op(
    c: &mut Client,
    client: u64,
    key: usize,
    write: Option<u64>,
    start: Instant,
    history: &Mutex<Vec<Recorded>>,
) -> bool {
    let name = format!("jepsen-{key}");
    let call = start.elapsed().as_nanos() as u64;
    let reply = match write {
        Some(v) => c.cmd(&["SET", &name, &v.to_string()]),
        None => c.cmd(&["GET", &name]),
    };
    let ret = start.elapsed().as_nanos() as u64;
    let alive = reply.is_ok();
    let (op, out) = match (write, reply) {
        (Some(v), Ok(Value::Simple(s))) if s == "OK" => (Op::Set(v), Output::Ok),
        // An error or a lost connection says nothing definite: it may have been applied.
        (Some(v), _) => (Op::Set(v), Output::Unknown),
        (None, Ok(Value::Bulk(None))) => (Op::Get, Output::Value(None)),
        (None, Ok(Value::Bulk(Some(b)))) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let v = text
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} read {text:?}, a value never written"));
            (Op::Get, Output::Value(Some(v)))
        }
        // A read without an answer observed nothing.
        (None, _) => return alive,
    };
    let ret = if out == Output::Unknown {
        u64::MAX
    } else {
        ret
    };
    let op = Operation::new(client, op, out, call, ret);
    history.lock().unwrap().push((key, op));
    alive
}

/// A client: random operations on random nodes until `stop`.
fn client_loop(
    id: u64,
    p: &Params,
    nodes: &Dialer,
    start: Instant,
    stop: &AtomicBool,
    history: &Mutex<Vec<Recorded>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed ^ ((id + 1) * 0x9e37_79b9));
    let mut conn: Option<Client> = None;
    let mut written = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() || rng.random_bool(0.05) {
            conn = nodes.connect(rng.random_range(0..nodes.nodes())).ok();
            match &conn {
                Some(c) => c.set_read_timeout(Duration::from_secs(2)).unwrap(),
                None => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let key = rng.random_range(0..p.keys);
        let write = rng.random_bool(0.5).then(|| {
            written += 1;
            (id << 32) | written
        });
        if !one_op(c, id, key, write, start, history) {
            conn = None;
        }
    }
}

/// The fault schedule: `p.faults` faults over `p.seconds`, each held for half its share,
/// in turn kill -9, SIGSTOP and a network cut (of a random kind); returns the faults done
/// and the cuts among them.
fn inject_faults(cluster: &mut Cluster, p: &Params, stop: &AtomicBool) -> (u64, Vec<Cut>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed);
    let share = Duration::from_millis(p.seconds * 1_000 / p.faults.max(1));
    let net = cluster
        .net()
        .expect("the cluster runs on an emulated network")
        .control();
    let mut done = 0;
    let mut cuts = Vec::new();
    for f in 0..p.faults {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let leader = cluster.leaders()[0];
        let victim = match leader {
            Some(l) if rng.random_bool(0.5) => l,
            _ => rng.random_range(0..3),
        };
        let hold = share / 2;
        match f % 3 {
            0 => {
                cluster.kill9(victim);
                std::thread::sleep(hold);
                cluster.restart(victim);
            }
            1 => {
                let pid = cluster.pid(victim).expect("a running node") as i32;
                // SAFETY: signals to our own child process, which we have not reaped.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                std::thread::sleep(hold);
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
            _ => {
                let cut = Cut::ALL[rng.random_range(0..Cut::ALL.len())];
                // Followers do not talk to each other: a pair cut must have the leader
                // at one end to cut anything, so one not seen before (an election after
                // the SIGSTOP) is waited for.
                let leader = leader.or_else(|| leader_within(cluster, share));
                let peer = match leader {
                    Some(l) if l != victim => l,
                    _ => (victim + rng.random_range(1..3)) % 3,
                };
                cut.apply(&net, victim, peer, 3);
                std::thread::sleep(hold);
                net.heal().expect("heal the network");
                cuts.push(cut);
            }
        }
        done += 1;
        std::thread::sleep(share - hold);
    }
    (done, cuts)
}

/// Shard 0's leader, once one is seen within `limit`.
fn leader_within(cluster: &Cluster, limit: Duration) -> Option<usize> {
    let start = Instant::now();
    loop {
        if let Some(l) = cluster.leaders()[0] {
            return Some(l);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks each key's history; returns (violations, undecided).
fn check(history: &[Recorded], keys: usize) -> (usize, usize) {
    let (mut violations, mut undecided) = (0, 0);
    for key in 0..keys {
        let ops: Vec<Operation> = history
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, o)| *o)
            .collect();
        match linearizability::check(&ops, SEARCH_STEPS_MAX) {
            Verdict::Linearizable => {}
            Verdict::Violation => {
                eprintln!(
                    "key jepsen-{key}: not linearizable ({} operations)",
                    ops.len()
                );
                violations += 1;
            }
            Verdict::Unknown => undecided += 1,
        }
    }
    (violations, undecided)
}

/// Runs one fault run and checks its history.
fn run(p: &Params) -> (Report, Vec<Recorded>) {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--protocol", &p.protocol, "--read-mode", &p.read_mode];
    let mut cluster = Cluster::start_on_net(3, dir.path(), "lan", &flags);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..p.clients as u64)
        .map(|id| {
            let (p, nodes, stop, history) =
                (p.clone(), cluster.dialer(), stop.clone(), history.clone());
            std::thread::spawn(move || client_loop(id, &p, &nodes, start, &stop, &history))
        })
        .collect();
    let (faults, cuts) = inject_faults(&mut cluster, p, &stop);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    // Healed: every key through every node, with nothing else running.
    cluster.wait_for_leaders(Duration::from_secs(20));
    for node in 0..3 {
        let mut c = cluster.connect(node).unwrap();
        for key in 0..p.keys {
            one_op(&mut c, 1_000 + node as u64, key, None, start, &history);
        }
    }
    let stats = cluster.net().expect("on a network").control().send("stats");
    let cut_packets = stats
        .as_deref()
        .ok()
        .and_then(|s| s.split_whitespace().find_map(|kv| kv.strip_prefix("cut=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the router's counters: {stats:?}"));
    let history = std::mem::take(&mut *history.lock().unwrap());
    let (violations, undecided) = check(&history, p.keys);
    let report = Report {
        ops: history.len(),
        indeterminate: history
            .iter()
            .filter(|(_, o)| o.out == Output::Unknown)
            .count(),
        faults,
        cuts,
        cut_packets,
        violations,
        undecided,
    };
    let cut_names: Vec<&str> = report.cuts.iter().map(|c| c.name()).collect();
    println!(
        "faults run: protocol {} read_mode {} seconds {} clients {} keys {} seed {}: ops {} indeterminate {} faults {} (cuts: {}; packets cut {}) violations {} undecided {}",
        p.protocol,
        p.read_mode,
        p.seconds,
        p.clients,
        p.keys,
        p.seed,
        report.ops,
        report.indeterminate,
        report.faults,
        cut_names.join(","),
        report.cut_packets,
        report.violations,
        report.undecided
    );
    (report, history)
}

fn short_run(read_mode: &str) {
    short_run_of("multipaxos", read_mode);
}

fn short_run_of(protocol: &str, read_mode: &str) {
    let p = Params {
        protocol: protocol.into(),
        read_mode: read_mode.into(),
        seconds: 3,
        faults: 3,
        clients: 4,
        keys: 6,
        seed: rand::random(),
    };
    let (report, history) = run(&p);
    assert_eq!(report.faults, 3);
    // The third fault cut the network for real: the router dropped packets then.
    assert_eq!(report.cuts.len(), 1, "{report:?}");
    assert!(report.cut_packets > 0, "no packet cut: {report:?}");
    assert!(
        report.ops >= 100,
        "{read_mode}: only {} operations",
        report.ops
    );
    assert_eq!(report.violations, 0, "{read_mode}: {report:?} ({p:?})");
    assert_eq!(report.undecided, 0, "{read_mode}: {report:?}");
    // The check can fail: a read of a value the key held before the last write, after
    // everything returned, is caught.
    let mut stale = history;
    let (key, last) = stale
        .iter()
        .filter(|(_, o)| matches!(o.op, Op::Set(_)) && o.out == Output::Ok)
        .max_by_key(|(_, o)| o.ret)
        .copied()
        .expect("some write succeeded");
    let old = stale
        .iter()
        .find_map(|(k, o)| match o.op {
            Op::Set(v) if *k == key && o.out == Output::Ok && o.ret < last.call => Some(v),
            _ => None,
        })
        .expect("the key was written before its last write");
    let t = u64::MAX - 2;
    stale.push((
        key,
        Operation::new(9_999, Op::Get, Output::Value(Some(old)), t, t + 1),
    ));
    assert_eq!(check(&stale, p.keys).0, 1, "a stale read went unnoticed");
}

#[test]
fn log_reads_linearizable_under_faults() {
    short_run("log");
}

#[test]
fn leader_lease_linearizable_under_faults() {
    short_run("leader-lease");
}

#[test]
fn quorum_lease_linearizable_under_faults() {
    short_run("quorum-lease");
}

#[test]
fn digest_reads_linearizable_under_faults() {
    short_run("digest");
}

#[test]
fn quorum_reads_linearizable_under_faults() {
    short_run("quorum");
}

#[test]
fn raft_log_reads_linearizable_under_faults() {
    short_run_of("raft", "log");
}

#[test]
fn raft_read_index_linearizable_under_faults() {
    short_run_of("raft", "read-index");
}

/// The long variant (`scripts/jepsen.sh`): `COREPAX_FAULTS_SECONDS`,
/// `COREPAX_FAULTS_COUNT`, `COREPAX_FAULTS_PROTOCOL` (multipaxos or raft; raft's modes are
/// log and read-index), `COREPAX_FAULTS_MODES` (comma-separated read modes),
/// `COREPAX_FAULTS_CLIENTS`, `COREPAX_FAULTS_SEED`.
#[test]
#[ignore = "long: run by scripts/jepsen.sh"]
fn long_run() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let num = |name: &str, default: u64| -> u64 {
        env(name, &default.to_string())
            .parse()
            .unwrap_or_else(|_| panic!("{name} takes a number"))
    };
    let protocol = env("COREPAX_FAULTS_PROTOCOL", "multipaxos");
    let all_modes = if protocol == "raft" {
        "log,read-index"
    } else {
        "log,leader-lease,quorum-lease,digest,quorum"
    };
    let modes = env("COREPAX_FAULTS_MODES", all_modes);
    let mut failed = Vec::new();
    for mode in modes.split(',') {
        let p = Params {
            protocol: protocol.clone(),
            read_mode: mode.into(),
            seconds: num("COREPAX_FAULTS_SECONDS", 60),
            faults: num("COREPAX_FAULTS_COUNT", 30),
            clients: num("COREPAX_FAULTS_CLIENTS", 6) as usize,
            keys: 8,
            seed: num("COREPAX_FAULTS_SEED", rand::random::<u32>().into()),
        };
        let (report, _) = run(&p);
        if report.violations > 0 || report.undecided > 0 {
            failed.push((mode.to_string(), report));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}
