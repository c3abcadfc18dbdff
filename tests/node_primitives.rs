//! Node: conditional writes, counters, compare-and-delete, transactions and the
//! connection commands clients send (HELLO, CLIENT), against a 3-replica cluster, through
//! every node.
mod node_support;

use std::io::{Read, Write};

use corepax::wire::resp::Value;
use node_support::*;

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

fn error(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Two keys of the same shard and one of another (the node hashes keys with xxh3 over
/// SHARDS shards).
fn keys_by_shard() -> (String, String, String) {
    let shard = |k: &str| corepax::runtime::node::shard_of(k.as_bytes(), SHARDS);
    let mut same = Vec::new();
    let mut other = None;
    for i in 0.. {
        let k = format!("tx{i}");
        if shard(&k) == 0 {
            same.push(k);
        } else if other.is_none() {
            other = Some(k);
        }
        if same.len() == 2 && other.is_some() {
            break;
        }
    }
    (same[0].clone(), same[1].clone(), other.unwrap())
}

#[test]
fn conditional_writes_counters_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c: Vec<Client> = (0..3)
        .map(|i| Client::connect(cluster.clients[i]).unwrap())
        .collect();

    // A lock: taken once, refused while held, released only with the holder's token.
    assert!(is_ok(&c[0].cmd(&["SET", "lock", "tok-a", "NX"]).unwrap()));
    assert_eq!(
        c[1].cmd(&["SET", "lock", "tok-b", "NX"]).unwrap(),
        Value::Bulk(None)
    );
    assert_eq!(
        int(&c[2].cmd(&["SETNX", "lock", "tok-c"]).unwrap()),
        Some(0)
    );
    assert_eq!(
        int(&c[1].cmd(&["DELIFEQ", "lock", "tok-b"]).unwrap()),
        Some(0)
    );
    let token = int(&c[2].cmd(&["COREPAX.VERSION", "lock"]).unwrap()).expect("a version");
    assert_eq!(
        int(&c[0].cmd(&["DELIFEQ", "lock", "tok-a"]).unwrap()),
        Some(1)
    );
    assert_eq!(
        int(&c[1].cmd(&["SETNX", "lock", "tok-b"]).unwrap()),
        Some(1)
    );
    let next = int(&c[0].cmd(&["COREPAX.VERSION", "lock"]).unwrap()).expect("a version");
    assert!(next > token, "a fencing token grows: {token} then {next}");

    // Compare-and-set, GET, XX, GETDEL.
    assert_eq!(
        c[2].cmd(&["SET", "cfg", "v2", "IFEQ", "nope"]).unwrap(),
        Value::Bulk(None),
        "an absent key equals nothing"
    );
    assert_eq!(
        bulk(&c[2].cmd(&["SET", "cfg", "v1", "GET"]).unwrap()),
        None,
        "no old value"
    );
    assert_eq!(
        bulk(
            &c[0]
                .cmd(&["SET", "cfg", "v2", "IFEQ", "v1", "GET"])
                .unwrap()
        )
        .as_deref(),
        Some("v1")
    );
    assert_eq!(
        c[1].cmd(&["SET", "absent", "x", "XX"]).unwrap(),
        Value::Bulk(None)
    );
    assert_eq!(
        bulk(&c[1].cmd(&["GETDEL", "cfg"]).unwrap()).as_deref(),
        Some("v2")
    );
    assert_eq!(c[0].cmd(&["GET", "cfg"]).unwrap(), Value::Bulk(None));

    // Refused options name themselves and change nothing.
    let e = error(&c[0].cmd(&["SET", "t", "v", "PX", "0"]).unwrap());
    assert!(e.contains("invalid expire time"), "{e}");
    let e = error(&c[0].cmd(&["SET", "t", "v", "SOON"]).unwrap());
    assert!(e.contains("SOON"), "{e}");
    assert_eq!(c[1].cmd(&["EXISTS", "t"]).unwrap(), Value::Integer(0));

    // Counters: increments from every node at once all count.
    let per_client = 40;
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let addr = cluster.clients[i];
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                for _ in 0..per_client {
                    assert!(int(&c.cmd(&["INCR", "hits"]).unwrap()).is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        bulk(&c[2].cmd(&["GET", "hits"]).unwrap()),
        Some(format!("{}", 3 * per_client))
    );
    assert_eq!(
        int(&c[0].cmd(&["DECRBY", "hits", "20"]).unwrap()),
        Some(3 * per_client - 20)
    );
    assert!(is_ok(&c[0].cmd(&["SET", "word", "abc"]).unwrap()));
    let e = error(&c[1].cmd(&["INCR", "word"]).unwrap());
    assert!(e.contains("not an integer"), "{e}");

    // A transaction in one shard is one log entry; across shards it is refused.
    let (a, b, other) = keys_by_shard();
    for (cmd, want) in [
        (vec!["MULTI"], "OK"),
        (vec!["SET", &a, "1"], "QUEUED"),
        (vec!["INCR", &a], "QUEUED"),
        (vec!["SETNX", &b, "x"], "QUEUED"),
        (vec!["GET", &a], "QUEUED"),
    ] {
        assert_eq!(
            c[1].cmd(&cmd).unwrap(),
            Value::Simple(want.into()),
            "{cmd:?}"
        );
    }
    assert_eq!(
        c[1].cmd(&["EXEC"]).unwrap(),
        Value::Array(Some(vec![
            Value::Simple("OK".into()),
            Value::Integer(2),
            Value::Integer(1),
            Value::Bulk(Some("2".into())),
        ]))
    );
    assert!(is_ok(&c[2].cmd(&["MULTI"]).unwrap()));
    c[2].cmd(&["SET", &a, "9"]).unwrap();
    c[2].cmd(&["SET", &other, "9"]).unwrap();
    let e = error(&c[2].cmd(&["EXEC"]).unwrap());
    assert!(e.starts_with("CROSSSLOT") && e.contains("0, 1"), "{e}");
    assert_eq!(bulk(&c[0].cmd(&["GET", &a]).unwrap()).as_deref(), Some("2"));
    assert_eq!(c[0].cmd(&["GET", &other]).unwrap(), Value::Bulk(None));
    // A command refused while queueing discards the whole transaction.
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["SET", &a, "5"]).unwrap();
    error(&c[0].cmd(&["INCRBY", &a, "x"]).unwrap());
    let e = error(&c[0].cmd(&["EXEC"]).unwrap());
    assert!(e.starts_with("EXECABORT"), "{e}");
    assert_eq!(bulk(&c[1].cmd(&["GET", &a]).unwrap()).as_deref(), Some("2"));
    assert!(error(&c[0].cmd(&["EXEC"]).unwrap()).contains("without MULTI"));

    // WATCH: a write by anyone between WATCH and EXEC makes EXEC apply nothing.
    assert!(is_ok(&c[0].cmd(&["WATCH", &a, &b]).unwrap()));
    assert!(is_ok(&c[1].cmd(&["SET", &b, "changed"]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["SET", &a, "watched"]).unwrap();
    assert_eq!(c[0].cmd(&["EXEC"]).unwrap(), Value::Array(None));
    assert_eq!(bulk(&c[2].cmd(&["GET", &a]).unwrap()).as_deref(), Some("2"));
    // Unchanged, it applies; UNWATCH forgets the keys.
    assert!(is_ok(&c[0].cmd(&["WATCH", &a]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["SET", &a, "w1"]).unwrap();
    assert_eq!(
        c[0].cmd(&["EXEC"]).unwrap(),
        Value::Array(Some(vec![Value::Simple("OK".into())]))
    );
    assert!(is_ok(&c[0].cmd(&["WATCH", &a]).unwrap()));
    assert!(is_ok(&c[1].cmd(&["SET", &a, "w2"]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["UNWATCH"]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["SET", &a, "w3"]).unwrap();
    assert_eq!(
        c[0].cmd(&["EXEC"]).unwrap(),
        Value::Array(Some(vec![Value::Simple("OK".into())]))
    );
    // Watched keys and the transaction live in one shard.
    let e = error(&c[0].cmd(&["WATCH", &a, &other]).unwrap());
    assert!(e.starts_with("CROSSSLOT"), "{e}");
    assert!(is_ok(&c[0].cmd(&["WATCH", &a]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["SET", &other, "1"]).unwrap();
    let e = error(&c[0].cmd(&["EXEC"]).unwrap());
    assert!(e.starts_with("CROSSSLOT") && e.contains("0, 1"), "{e}");
    assert_eq!(
        bulk(&c[2].cmd(&["GET", &a]).unwrap()).as_deref(),
        Some("w3")
    );
    // UNWATCH inside MULTI is queued and does nothing, as in Redis: the watch still
    // guards the transaction it is part of.
    assert!(is_ok(&c[0].cmd(&["WATCH", &a]).unwrap()));
    assert!(is_ok(&c[1].cmd(&["SET", &a, "w4"]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    assert_eq!(
        c[0].cmd(&["UNWATCH"]).unwrap(),
        Value::Simple("QUEUED".into())
    );
    c[0].cmd(&["SET", &a, "never"]).unwrap();
    assert_eq!(c[0].cmd(&["EXEC"]).unwrap(), Value::Array(None));
    assert!(is_ok(&c[0].cmd(&["WATCH", &a]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["UNWATCH"]).unwrap();
    c[0].cmd(&["SET", &a, "w5"]).unwrap();
    let ok = Value::Simple("OK".into());
    assert_eq!(
        c[0].cmd(&["EXEC"]).unwrap(),
        Value::Array(Some(vec![ok.clone(), ok.clone()]))
    );
    assert_eq!(
        bulk(&c[2].cmd(&["GET", &a]).unwrap()).as_deref(),
        Some("w5")
    );
    // Alone in a transaction, it runs in the shard of the watch (here not shard 0).
    assert!(is_ok(&c[0].cmd(&["WATCH", &other]).unwrap()));
    assert!(is_ok(&c[0].cmd(&["MULTI"]).unwrap()));
    c[0].cmd(&["UNWATCH"]).unwrap();
    assert_eq!(c[0].cmd(&["EXEC"]).unwrap(), Value::Array(Some(vec![ok])));

    // Hash tags: keys whose whole bytes hash to different shards share one through their
    // tag, so a transaction may name them.
    let (x, y) = tagged_keys_apart();
    assert!(is_ok(&c[2].cmd(&["MULTI"]).unwrap()));
    c[2].cmd(&["SET", &x, "1"]).unwrap();
    c[2].cmd(&["INCR", &y]).unwrap();
    assert_eq!(
        c[2].cmd(&["EXEC"]).unwrap(),
        Value::Array(Some(vec![Value::Simple("OK".into()), Value::Integer(1)]))
    );
    assert_eq!(
        c[0].cmd(&["MGET", &x, &y]).unwrap(),
        Value::Array(Some(vec![
            Value::Bulk(Some("1".into())),
            Value::Bulk(Some("1".into()))
        ]))
    );
}

/// Two keys with one hash tag whose whole bytes would hash to different shards.
fn tagged_keys_apart() -> (String, String) {
    let whole = |k: &str| xxhash_rust::xxh3::xxh3_64(k.as_bytes()) % SHARDS as u64;
    (0..)
        .map(|i| (format!("{{user{i}}}:cart"), format!("{{user{i}}}:visits")))
        .find(|(x, y)| whole(x) != whole(y))
        .expect("some tag")
}

#[test]
fn hello_speaks_resp3_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut s = std::net::TcpStream::connect(cluster.clients[1]).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // A pipeline: the GET before HELLO answers in RESP2, the one after in RESP3.
    s.write_all(b"GET nothing\r\nHELLO 3\r\nGET nothing\r\nCLIENT ID\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n") || !String::from_utf8_lossy(&got).contains("_\r\n:") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("$-1\r\n%7\r\n$6\r\nserver\r\n$7\r\ncorepax\r\n"),
        "{text}"
    );
    assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(text.contains("\r\n_\r\n:"), "{text}");
}

/// The Python that has redis-py: `COREPAX_PYTHON`, else the environment scripts/test.sh
/// makes under target/. Missing fails the test: a skipped client test proves nothing.
fn python_with_redis_py() -> std::path::PathBuf {
    let path = std::env::var_os("COREPAX_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyclients/bin/python")
        });
    let found = std::process::Command::new(&path)
        .args(["-c", "import redis"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{} cannot import redis: run ./scripts/test.sh, which installs redis-py there",
        path.display()
    );
    path
}

#[test]
fn redis_py_and_redis_cli_pipe_work_unchanged() {
    let python = python_with_redis_py();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let (a, b, _) = keys_by_shard();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(cluster.clients[2].port().to_string())
        .args([&a, &b])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // redis-cli --pipe: mass insertion in the RESP protocol, then its ECHO marker.
    let keys = 2000;
    let mut data = Vec::new();
    for i in 0..keys {
        corepax::wire::resp::encode_command(
            &mut data,
            &["SET", &format!("bulk:{i}"), &i.to_string()],
        );
    }
    let mut child = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.clients[0].port().to_string(),
            "--pipe",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli is missing: run ./scripts/test.sh, which installs redis-tools");
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("errors: 0, replies: {keys}")),
        "redis-cli --pipe: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Client::connect(cluster.clients[1]).unwrap();
    let got = c
        .cmd(&["MGET", "bulk:0", &format!("bulk:{}", keys - 1)])
        .unwrap();
    assert_eq!(
        got,
        Value::Array(Some(vec![
            Value::Bulk(Some("0".into())),
            Value::Bulk(Some(format!("{}", keys - 1).into())),
        ]))
    );
}

/// Polls `key` on every node until all answer nil, for at most `limit`.
fn wait_gone(cluster: &Cluster, key: &str, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    let mut clients: Vec<Client> = (0..3)
        .map(|i| Client::connect(cluster.clients[i]).unwrap())
        .collect();
    while start.elapsed() < limit {
        if clients
            .iter_mut()
            .all(|c| c.cmd(&["GET", key]).unwrap() == Value::Bulk(None))
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn keys_expire_through_the_log_in_every_read_mode() {
    for (protocol, mode) in [
        (Protocol::Multipaxos, "log"),
        (Protocol::Multipaxos, "leader-lease"),
        (Protocol::Multipaxos, "quorum-lease"),
        (Protocol::Raft, "read-index"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start_protocol(protocol, 3, dir.path(), &["--read-mode", mode]);
        let mut c: Vec<Client> = (0..3)
            .map(|i| Client::connect(cluster.clients[i]).unwrap())
            .collect();
        assert!(is_ok(
            &c[0]
                .cmd(&["SET", "lease", "holder", "NX", "PX", "800"])
                .unwrap()
        ));
        let left = int(&c[1].cmd(&["PTTL", "lease"]).unwrap()).unwrap();
        assert!((1..=800).contains(&left), "{mode}: PTTL {left}");
        // Taken while held; renewed by its holder only.
        assert_eq!(
            c[2].cmd(&["SET", "lease", "other", "NX", "PX", "800"])
                .unwrap(),
            Value::Bulk(None)
        );
        assert!(is_ok(
            &c[0]
                .cmd(&["SET", "lease", "holder", "IFEQ", "holder", "KEEPTTL"])
                .unwrap()
        ));
        assert!(
            int(&c[2].cmd(&["PTTL", "lease"]).unwrap()).unwrap() > 0,
            "{mode}: KEEPTTL"
        );
        assert!(
            wait_gone(&cluster, "lease", std::time::Duration::from_secs(10)),
            "{mode}: never expired"
        );
        // Once gone, it stays gone and can be taken again.
        assert_eq!(int(&c[1].cmd(&["TTL", "lease"]).unwrap()), Some(-2));
        assert!(is_ok(
            &c[2]
                .cmd(&["SET", "lease", "other", "NX", "EX", "100"])
                .unwrap()
        ));
        let ttl = int(&c[0].cmd(&["TTL", "lease"]).unwrap()).unwrap();
        assert!((99..=100).contains(&ttl), "{mode}: TTL {ttl}");
        assert_eq!(int(&c[0].cmd(&["PERSIST", "lease"]).unwrap()), Some(1));
        assert_eq!(int(&c[0].cmd(&["TTL", "lease"]).unwrap()), Some(-1));
        assert_eq!(
            int(&c[1].cmd(&["PEXPIRE", "lease", "50"]).unwrap()),
            Some(1)
        );
        assert!(
            wait_gone(&cluster, "lease", std::time::Duration::from_secs(10)),
            "{mode}: PEXPIRE"
        );
        // A key without a deadline is untouched by all of it.
        assert!(is_ok(&c[0].cmd(&["SET", "kept", "v"]).unwrap()));
        assert!(is_ok(&c[0].cmd(&["SETEX", "gone", "1", "v"]).unwrap()));
        assert!(
            wait_gone(&cluster, "gone", std::time::Duration::from_secs(10)),
            "{mode}: SETEX"
        );
        assert_eq!(
            bulk(&c[2].cmd(&["GET", "kept"]).unwrap()).as_deref(),
            Some("v"),
            "{mode}"
        );
    }
}
