//! Node: PUBLISH goes through the log, so subscribers on every replica get each channel's
//! messages in one order, none missing or repeated; Redis's subscribe-mode replies and
//! limits; redis-py's `pubsub()` with its defaults (RESP3 pushes).
mod node_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

/// Two channel names in different shards.
fn channels_apart() -> (String, String) {
    let shard = |k: &str| corepax::runtime::node::shard_of(k.as_bytes(), SHARDS);
    let a = "news".to_string();
    let b = (0..)
        .map(|i| format!("alerts{i}"))
        .find(|c| shard(c) != shard(&a))
        .expect("some channel");
    (a, b)
}

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Value::Simple(s) => s.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Bulk(None) => "nil".into(),
        other => format!("{other:?}"),
    }
}

/// An array reply's items as text.
fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Array(Some(items)) => items.iter().map(text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// Reads `n` messages from a subscriber: (channel, message) in the order received.
fn read_messages(c: &mut Client, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let w = words(&c.read_reply().expect("a message within the read timeout"));
        match w[0].as_str() {
            "message" => got.push((w[1].clone(), w[2].clone())),
            "pmessage" => got.push((w[2].clone(), w[3].clone())),
            other => panic!("unexpected push {other}: {w:?}"),
        }
    }
    got
}

#[test]
fn every_subscriber_on_every_replica_sees_one_order_per_channel() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let (a, b) = channels_apart();
    // One subscriber of both channels per node, and one by pattern on node 0.
    let mut subs: Vec<Client> = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(cluster.clients[i]).unwrap();
        c.send_raw(&corepax_command(&["SUBSCRIBE", &a, &b]))
            .unwrap();
        assert_eq!(words(&c.read_reply().unwrap()), ["subscribe", &a, "1"]);
        assert_eq!(words(&c.read_reply().unwrap()), ["subscribe", &b, "2"]);
        subs.push(c);
    }
    let mut by_pattern = Client::connect(cluster.clients[0]).unwrap();
    let pattern = "*";
    assert_eq!(
        words(&by_pattern.cmd(&["PSUBSCRIBE", pattern]).unwrap()),
        ["psubscribe", "*", "1"]
    );

    // Subscribe mode in RESP2: other commands refused as Redis refuses them; PING pongs.
    let c = &mut subs[1];
    match c.cmd(&["GET", "x"]).unwrap() {
        Value::Error(e) => assert!(e.starts_with("ERR Can't execute 'get'"), "{e}"),
        other => panic!("GET in subscribe mode answered {other:?}"),
    }
    assert_eq!(words(&c.cmd(&["PING"]).unwrap()), ["pong", ""]);

    let mut q = Client::connect(cluster.clients[0]).unwrap();
    let numsub = words(&q.cmd(&["PUBSUB", "NUMSUB", &a, &b, "none"]).unwrap());
    assert_eq!(numsub, [a.as_str(), "1", b.as_str(), "1", "none", "0"]);
    assert_eq!(q.cmd(&["PUBSUB", "NUMPAT"]).unwrap(), Value::Integer(1));
    let mut chans = words(&q.cmd(&["PUBSUB", "CHANNELS"]).unwrap());
    chans.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(chans, want);

    // Publishers on every node at once, each alternating the two channels.
    let per_publisher = 60;
    let started = Instant::now();
    let publishers: Vec<_> = (0..3)
        .map(|i| {
            let addr = cluster.clients[i];
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                for n in 0..per_publisher {
                    let ch = if n % 2 == 0 { &a } else { &b };
                    let reply = c.cmd(&["PUBLISH", ch, &format!("p{i}-{n}")]).unwrap();
                    // This node's receivers: its subscriber, and on node 0 the pattern's.
                    let receivers = if i == 0 { 2 } else { 1 };
                    assert_eq!(reply, Value::Integer(receivers), "PUBLISH on node {i}");
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let published = Duration::from_millis(started.elapsed().as_millis() as u64);

    let total = 3 * per_publisher;
    let mut sequences: Vec<HashMap<String, Vec<String>>> = Vec::new();
    for c in subs.iter_mut().chain(std::iter::once(&mut by_pattern)) {
        let mut per_channel: HashMap<String, Vec<String>> = HashMap::new();
        for (ch, m) in read_messages(c, total) {
            per_channel.entry(ch).or_default().push(m);
        }
        sequences.push(per_channel);
    }
    for (ch, first) in &sequences[0] {
        assert_eq!(first.len(), total / 2, "channel {ch}: every message once");
        let distinct: std::collections::HashSet<&String> = first.iter().collect();
        assert_eq!(distinct.len(), first.len(), "channel {ch}: no repeats");
        // Each publisher waited for every answer: its messages keep its order.
        for i in 0..3 {
            let mine: Vec<usize> = first
                .iter()
                .filter_map(|m| m.strip_prefix(&format!("p{i}-")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{ch}: {mine:?}");
        }
    }
    for (k, s) in sequences.iter().enumerate().skip(1) {
        assert_eq!(s, &sequences[0], "subscriber {k} saw another order");
    }
    // Nothing more arrives: no message is delivered twice.
    let c = &mut subs[2];
    c.set_read_timeout(Duration::from_millis(300)).unwrap();
    assert!(c.read_reply().is_err(), "a message after all were read");
    eprintln!("{total} messages from 3 publishers in {published:?}, same order on 4 subscribers");

    // UNSUBSCRIBE with no channel leaves every channel, one confirmation each.
    let c = &mut subs[0];
    c.send_raw(&corepax_command(&["UNSUBSCRIBE"])).unwrap();
    let first = words(&c.read_reply().unwrap());
    let second = words(&c.read_reply().unwrap());
    assert_eq!((first[0].as_str(), first[2].as_str()), ("unsubscribe", "1"));
    assert_eq!(
        (second[0].as_str(), second[2].as_str()),
        ("unsubscribe", "0")
    );
    assert!(
        is_ok(&c.cmd(&["SET", "after", "1"]).unwrap()),
        "out of subscribe mode"
    );
}

fn corepax_command(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    corepax::wire::resp::encode_command(&mut out, args);
    out
}

/// The Python that has redis-py (see tests/node_primitives.rs).
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
fn redis_py_pubsub_with_default_settings() {
    let python = python_with_redis_py();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_pubsub.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(cluster.clients[1].port().to_string())
        .arg(cluster.clients[2].port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py pub/sub check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
