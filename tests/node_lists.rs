//! Node: lists through every node of a 3-replica cluster, and blocking pops answered when
//! the log applies a push: several waiters on different nodes, each element to one of
//! them, a timeout answered with nil, a waiter that went away consuming nothing, and one
//! that went away while its pop was decided giving the element back.
mod node_support;

use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

fn bulks(words: &[&str]) -> Value {
    Value::Array(Some(
        words
            .iter()
            .map(|w| Value::Bulk(Some(w.as_bytes().to_vec().into())))
            .collect(),
    ))
}

fn error(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Sends a command on a new connection to `addr` in a thread; the reply and when it came.
fn in_thread(
    addr: std::net::SocketAddr,
    args: &[&str],
) -> std::thread::JoinHandle<(Value, Instant)> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let mut c = Client::connect(addr).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = c.cmd(&args).unwrap();
        (v, Instant::now())
    })
}

#[test]
fn lists_and_blocking_pops_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c: Vec<Client> = (0..3)
        .map(|i| Client::connect(cluster.clients[i]).unwrap())
        .collect();

    // Redis's semantics, written on one node and read on the others.
    assert_eq!(
        c[0].cmd(&["RPUSH", "q", "a", "b", "c"]).unwrap(),
        Value::Integer(3)
    );
    assert_eq!(c[1].cmd(&["LPUSH", "q", "z"]).unwrap(), Value::Integer(4));
    assert_eq!(
        c[2].cmd(&["LRANGE", "q", "0", "-1"]).unwrap(),
        bulks(&["z", "a", "b", "c"])
    );
    assert_eq!(
        bulk(&c[0].cmd(&["LPOP", "q"]).unwrap()).as_deref(),
        Some("z")
    );
    assert_eq!(c[1].cmd(&["RPOP", "q", "2"]).unwrap(), bulks(&["c", "b"]));
    assert_eq!(c[2].cmd(&["LLEN", "q"]).unwrap(), Value::Integer(1));
    assert_eq!(
        c[0].cmd(&["TYPE", "q"]).unwrap(),
        Value::Simple("list".into())
    );
    assert!(error(&c[1].cmd(&["GET", "q"]).unwrap()).starts_with("WRONGTYPE"));
    assert!(is_ok(&c[1].cmd(&["SET", "s", "v"]).unwrap()));
    assert!(error(&c[2].cmd(&["LPUSH", "s", "x"]).unwrap()).starts_with("WRONGTYPE"));
    assert_eq!(
        bulk(&c[0].cmd(&["GET", "s"]).unwrap()).as_deref(),
        Some("v")
    );
    assert_eq!(
        bulk(&c[0].cmd(&["RPOPLPUSH", "q", "q2"]).unwrap()).as_deref(),
        Some("a")
    );
    assert_eq!(
        c[1].cmd(&["EXISTS", "q", "q2"]).unwrap(),
        Value::Integer(1),
        "the emptied list vanished"
    );
    assert_eq!(
        c[2].cmd(&["TYPE", "q"]).unwrap(),
        Value::Simple("none".into())
    );

    // Three waiters, one per node; two elements pushed through another connection: each
    // element goes to exactly one waiter, the third times out with nil (timeouts of seconds:
    // on a loaded machine a follower may apply the push late).
    let started = Instant::now();
    let waiters: Vec<_> = (0..3)
        .map(|i| in_thread(cluster.clients[i], &["BLPOP", "jobs", "4"]))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pushed = Instant::now();
    assert_eq!(
        c[0].cmd(&["RPUSH", "jobs", "j1", "j2"]).unwrap(),
        Value::Integer(2)
    );
    let mut got = Vec::new();
    let mut nils = 0;
    for w in waiters {
        let (v, at) = w.join().unwrap();
        match v {
            Value::Array(Some(kv)) => {
                assert_eq!(kv[0], Value::Bulk(Some("jobs".into())));
                assert!(
                    at - pushed < Duration::from_secs(3),
                    "answered {:?} after the push",
                    at - pushed
                );
                got.push(bulk(&kv[1]).unwrap());
            }
            Value::Bulk(None) => {
                nils += 1;
                assert!(at - started >= Duration::from_secs(4), "timed out early");
            }
            other => panic!("BLPOP answered {other:?}"),
        }
    }
    got.sort();
    let left = c[1].cmd(&["LRANGE", "jobs", "0", "-1"]).unwrap();
    assert_eq!(
        (got, nils, left),
        (vec!["j1".to_string(), "j2".to_string()], 1, bulks(&[])),
        "elements each waiter got, waiters answered nil, elements left"
    );

    // The queue pattern: a worker moves a task into its processing list, then removes it
    // (the two keys in one shard, as LMOVE needs; else CROSSSLOT).
    let shard = |k: &str| corepax::runtime::node::shard_of(k.as_bytes(), SHARDS);
    let processing = (0..)
        .map(|i| format!("processing{i}"))
        .find(|k| shard(k) == shard("tasks"))
        .unwrap();
    let other = (0..)
        .map(|i| format!("elsewhere{i}"))
        .find(|k| shard(k) != shard("tasks"))
        .unwrap();
    let e = error(
        &c[0]
            .cmd(&["LMOVE", "tasks", &other, "LEFT", "LEFT"])
            .unwrap(),
    );
    assert!(e.starts_with("CROSSSLOT"), "{e}");
    let worker = in_thread(
        cluster.clients[1],
        &["BLMOVE", "tasks", &processing, "LEFT", "RIGHT", "0"],
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        c[2].cmd(&["RPUSH", "tasks", "t1"]).unwrap(),
        Value::Integer(1)
    );
    let (v, _) = worker.join().unwrap();
    assert_eq!(bulk(&v).as_deref(), Some("t1"), "{v:?}");
    assert_eq!(
        c[0].cmd(&["LRANGE", &processing, "0", "-1"]).unwrap(),
        bulks(&["t1"])
    );
    assert_eq!(
        c[0].cmd(&["LREM", &processing, "1", "t1"]).unwrap(),
        Value::Integer(1)
    );

    // A waiter that closed its connection consumes nothing.
    {
        let mut gone = Client::connect(cluster.clients[2]).unwrap();
        let mut out = Vec::new();
        corepax::wire::resp::encode_command(&mut out, &["BLPOP", "left", "0"]);
        gone.send_raw(&out).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c[0].cmd(&["RPUSH", "left", "x"]).unwrap(),
        Value::Integer(1)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c[1].cmd(&["LLEN", "left"]).unwrap(), Value::Integer(1));

    // Edits in place and positions, with Redis's replies.
    assert_eq!(
        c[0].cmd(&["RPUSH", "e", "a", "b", "c", "b"]).unwrap(),
        Value::Integer(4)
    );
    assert!(is_ok(&c[1].cmd(&["LSET", "e", "-1", "B"]).unwrap()));
    assert_eq!(
        error(&c[1].cmd(&["LSET", "e", "9", "x"]).unwrap()),
        "ERR index out of range"
    );
    assert_eq!(
        error(&c[1].cmd(&["LSET", "nolist", "0", "x"]).unwrap()),
        "ERR no such key"
    );
    assert_eq!(
        c[2].cmd(&["LINSERT", "e", "BEFORE", "b", "x"]).unwrap(),
        Value::Integer(5)
    );
    assert_eq!(
        c[2].cmd(&["LINSERT", "e", "AFTER", "zz", "x"]).unwrap(),
        Value::Integer(-1)
    );
    assert_eq!(c[0].cmd(&["LPOS", "e", "x"]).unwrap(), Value::Integer(1));
    assert_eq!(
        c[0].cmd(&["LPOS", "e", "B", "RANK", "-1", "COUNT", "0"])
            .unwrap(),
        Value::Array(Some(vec![Value::Integer(4)]))
    );
    assert_eq!(c[0].cmd(&["LPOS", "e", "zz"]).unwrap(), Value::Bulk(None));
    assert!(error(&c[0].cmd(&["LPOS", "e", "x", "RANK", "0"]).unwrap()).contains("RANK"));
    assert!(is_ok(&c[1].cmd(&["LTRIM", "e", "1", "-2"]).unwrap()));
    assert_eq!(
        c[2].cmd(&["LRANGE", "e", "0", "-1"]).unwrap(),
        bulks(&["x", "b", "c"])
    );
    assert!(is_ok(&c[1].cmd(&["LTRIM", "e", "3", "-1"]).unwrap()));
    assert_eq!(c[2].cmd(&["EXISTS", "e"]).unwrap(), Value::Integer(0));

    // A short timeout, and usage errors.
    let t = Instant::now();
    assert_eq!(
        c[2].cmd(&["BLPOP", "none", "0.3"]).unwrap(),
        Value::Bulk(None)
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(error(&c[2].cmd(&["BLPOP", "none", "-1"]).unwrap()).contains("negative"));
    assert!(error(&c[2].cmd(&["LMOVE", "a", "b", "UP", "LEFT"]).unwrap()).contains("UP"));
}

/// The give-back path: a blocking pop whose client closed its connection after the pop was
/// on its way to the log (held there by `COREPAX.DEBUG HOLDPOPS` meanwhile, as a slow
/// commit would) still takes its element, and gives it back at the end it came from.
#[test]
fn a_pop_decided_after_its_client_left_gives_the_element_back() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &["--debug"]);
    let mut c0 = Client::connect(cluster.clients[0]).unwrap();
    let mut c1 = Client::connect(cluster.clients[1]).unwrap();
    let connected = |c: &mut Client| -> u64 {
        let info = bulk(&c.cmd(&["INFO"]).unwrap()).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let eventually = |what: &str, mut cond: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(is_ok(
        &c1.cmd(&["COREPAX.DEBUG", "HOLDPOPS", "ON"]).unwrap()
    ));
    let before = connected(&mut c1);
    let mut waiter = Client::connect(cluster.clients[1]).unwrap();
    let mut out = Vec::new();
    corepax::wire::resp::encode_command(&mut out, &["BLPOP", "gb", "0"]);
    waiter.send_raw(&out).unwrap();
    assert_eq!(
        c0.cmd(&["RPUSH", "gb", "x", "y"]).unwrap(),
        Value::Integer(2)
    );
    let pushed_at = match c0.cmd(&["COREPAX.VERSION", "gb"]).unwrap() {
        Value::Integer(v) => v,
        other => panic!("COREPAX.VERSION answered {other:?}"),
    };
    eventually(
        "the woken pop to be held",
        Box::new(|| c1.cmd(&["COREPAX.DEBUG", "HELDPOPS"]).unwrap() == Value::Integer(1)),
    );
    drop(waiter);
    // The node noticed the close (the connection's slot is free) before the pop goes on.
    eventually(
        "the close to be noticed",
        Box::new(|| connected(&mut c1) <= before),
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(is_ok(
        &c1.cmd(&["COREPAX.DEBUG", "HOLDPOPS", "OFF"]).unwrap()
    ));
    // The pop was applied (the key was written after the push) and its element is back
    // where it was.
    eventually(
        "the element given back",
        Box::new(|| {
            let version = c0.cmd(&["COREPAX.VERSION", "gb"]).unwrap();
            matches!(version, Value::Integer(v) if v > pushed_at)
                && c0.cmd(&["LRANGE", "gb", "0", "-1"]).unwrap() == bulks(&["x", "y"])
        }),
    );
    assert_eq!(
        c1.cmd(&["COREPAX.DEBUG", "HELDPOPS"]).unwrap(),
        Value::Integer(0)
    );
}
