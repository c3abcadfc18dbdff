//! Node: `COREPAX.WATCH` streams a key's changes with their versions as a follower applies
//! them; a watcher that reconnects `FROM` the last version it saw gets exactly the changes
//! it missed, then live ones; a version older than the node retains is refused as
//! compacted (after a restart, the history starts again).
mod node_support;

use std::time::Duration;

use corepax::wire::resp::Value;
use node_support::*;

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Value::Simple(s) => s.clone(),
        Value::Integer(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Array(Some(items)) => items.iter().map(text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The next change push: (version, kind).
fn change(c: &mut Client, key: &str) -> (u64, String) {
    let w = words(&c.read_reply().expect("a change within the read timeout"));
    assert_eq!((w[0].as_str(), w[1].as_str()), ("change", key), "{w:?}");
    (w[2].parse().unwrap(), w[3].clone())
}

/// Starts a watch and returns the version it starts after.
fn watch(c: &mut Client, args: &[&str]) -> u64 {
    let mut cmd = vec!["COREPAX.WATCH"];
    cmd.extend_from_slice(args);
    let w = words(&c.cmd(&cmd).unwrap());
    assert_eq!(w[0], "watch", "{w:?}");
    w[1].parse().unwrap()
}

#[test]
fn a_watch_resumes_from_the_last_version_seen_without_gap_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &[]);
    let key = "watched";
    let shard = corepax::runtime::node::shard_of(key.as_bytes(), SHARDS);
    let leader = cluster.leaders()[shard].expect("a leader");
    let follower = (leader + 1) % 3;
    let mut w = Client::connect(cluster.clients[follower]).unwrap();
    let start = watch(&mut w, &[key]);
    let mut writer = Client::connect(cluster.clients[leader]).unwrap();
    let info = bulk(&writer.cmd(&["INFO"]).unwrap()).unwrap();
    assert!(info.contains(&format!("shard{shard}_pubsub:")), "{info}");
    let mut f = Client::connect(cluster.clients[follower]).unwrap();
    let info = bulk(&f.cmd(&["INFO"]).unwrap()).unwrap();
    assert!(info.contains("watched_keys=1,"), "{info}");

    // Live changes on a follower, each with the version COREPAX.VERSION reports.
    assert!(is_ok(&writer.cmd(&["SET", key, "v1"]).unwrap()));
    let v1 = match writer.cmd(&["COREPAX.VERSION", key]).unwrap() {
        Value::Integer(v) => v as u64,
        other => panic!("{other:?}"),
    };
    assert!(v1 > start);
    assert_eq!(change(&mut w, key), (v1, "set".into()));
    writer.cmd(&["SET", "other", "x"]).unwrap();
    writer.cmd(&["DEL", key]).unwrap();
    writer.cmd(&["RPUSH", key, "a"]).unwrap();
    let (del, kind) = change(&mut w, key);
    assert!(del > v1 && kind == "del", "{del} {kind}");
    let (list, kind) = change(&mut w, key);
    assert!(list > del && kind == "list", "{list} {kind}");

    // Disconnected: changes it misses; back FROM the last version seen.
    drop(w);
    writer.cmd(&["DEL", key]).unwrap();
    writer.cmd(&["SET", key, "v3"]).unwrap();
    writer.cmd(&["SET", key, "v4"]).unwrap();
    // The follower applies asynchronously: wait until it has v4.
    let mut f = Client::connect(cluster.clients[follower]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bulk(&f.cmd(&["GET", key]).unwrap()).as_deref() != Some("v4") {
        assert!(
            std::time::Instant::now() < deadline,
            "follower never applied v4"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut w = Client::connect(cluster.clients[follower]).unwrap();
    let from = list.to_string();
    watch(&mut w, &[key, "FROM", &from]);
    let missed: Vec<(u64, String)> = (0..3).map(|_| change(&mut w, key)).collect();
    let kinds: Vec<&str> = missed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["del", "set", "set"], "{missed:?}");
    assert!(missed[0].0 > list && missed.windows(2).all(|p| p[0].0 < p[1].0));
    writer.cmd(&["SET", key, "v5"]).unwrap();
    let (v5, kind) = change(&mut w, key);
    assert!(v5 > missed[2].0 && kind == "set");
    w.set_read_timeout(Duration::from_millis(300)).unwrap();
    assert!(
        w.read_reply().is_err(),
        "nothing repeated after the live change"
    );
    drop(w);

    // A restart forgets the history: an older version is compacted, the error names the
    // oldest one accepted, and a watch from it works.
    cluster.kill9(follower);
    cluster.restart(follower);
    cluster.wait_listening(follower);
    let mut w = Client::connect(cluster.clients[follower]).unwrap();
    let refused = w
        .cmd(&["COREPAX.WATCH", key, "FROM", &v1.to_string()])
        .unwrap();
    let Value::Error(e) = refused else {
        panic!("a compacted version answered {refused:?}")
    };
    assert!(e.starts_with("COMPACTED"), "{e}");
    let oldest: u64 = e
        .split("at or after ")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no version in {e}"));
    assert!(oldest > v1, "{e}");
    watch(&mut w, &[key, "FROM", &oldest.to_string()]);
    writer = Client::connect(cluster.clients[leader]).unwrap();
    writer.cmd(&["SET", key, "v6"]).unwrap();
    let (v6, _) = change(&mut w, key);
    assert!(v6 > oldest);

    // Keys of two shards in one watch are refused, naming the shards.
    let apart = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| corepax::runtime::node::shard_of(k.as_bytes(), SHARDS) != shard)
        .unwrap();
    match w.cmd(&["COREPAX.WATCH", key, &apart]).unwrap() {
        Value::Error(e) => assert!(e.starts_with("CROSSSLOT"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A follower cut off while the log moves on catches up from a snapshot: it never saw
/// the changes and messages in between, so its key watches end with a `lost` push and
/// its subscribers of that shard are disconnected (they would otherwise miss messages
/// while connected).
#[test]
fn a_snapshot_install_ends_watches_and_disconnects_subscribers() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--snapshot-interval-slots",
        "20",
        "--log-retain-slots",
        "5",
        "--batch-max",
        "1",
        "--debug",
    ];
    let cluster = Cluster::start(3, dir.path(), &flags);
    let key = "watched";
    let shard = corepax::runtime::node::shard_of(key.as_bytes(), SHARDS);
    let leader = cluster.leaders()[shard].expect("a leader");
    let follower = (leader + 1) % 3;
    let mut w = Client::connect(cluster.clients[follower]).unwrap();
    watch(&mut w, &[key]);
    // A channel of the same shard.
    let channel = (0..)
        .map(|i| format!("ch{i}"))
        .find(|c| corepax::runtime::node::shard_of(c.as_bytes(), SHARDS) == shard)
        .unwrap();
    let mut sub = std::net::TcpStream::connect(cluster.clients[follower]).unwrap();
    std::io::Write::write_all(&mut sub, &{
        let mut out = Vec::new();
        corepax::wire::resp::encode_command(&mut out, &["SUBSCRIBE", &channel]);
        out
    })
    .unwrap();
    let mut ctl = Client::connect(cluster.clients[follower]).unwrap();
    assert!(is_ok(
        &ctl.cmd(&["COREPAX.DEBUG", "PARTITION", "ON"]).unwrap()
    ));
    let mut writer = Client::connect(cluster.clients[leader]).unwrap();
    for i in 0..100 {
        let k = format!("{{{key}}}:{i}");
        assert!(is_ok(&writer.set(&k, "x").unwrap()), "{k}");
    }
    writer.cmd(&["SET", key, "while-cut-off"]).unwrap();
    assert!(is_ok(
        &ctl.cmd(&["COREPAX.DEBUG", "PARTITION", "OFF"]).unwrap()
    ));

    let w = words(&w.read_reply().expect("a push once the follower caught up"));
    assert_eq!(w[0], "lost", "{w:?}");
    assert!(w[1].contains("snapshot"), "{w:?}");
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match sub.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the subscriber stayed connected ({e}) after reading {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}
