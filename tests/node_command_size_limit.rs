//! Node: a command over `limits::COMMAND_BYTES_MAX` (the reported MSET of 33 values of
//! 1 MiB, more than a WAL record can hold) is refused with an error naming its size and
//! the limit, before anything is proposed; one exactly at the limit is logged on every
//! replica within the request timeout; afterwards every node
//! still serves SET and GET (before the limit existed, every replica's WAL refused the
//! replicated record and every later SET answered IOERR).
mod node_support;

use corepax::limits::{COMMAND_BYTES_MAX, COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};
use corepax::runtime::node::shard_of;
use corepax::wire::resp::{self, Value};
use node_support::*;

const MIB: usize = 1 << 20;

/// `n` keys that all belong to shard 0, so the whole MSET is one command of one group.
fn keys_of_one_shard(n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("big{i:05}"))
        .filter(|k| shard_of(k.as_bytes(), SHARDS) == 0)
        .take(n)
        .collect()
}

/// MSET of `keys` with 1 MiB values, the last value resized so the command's size
/// (counted as the node counts it) is `bytes`.
fn mset_of(keys: &[String], bytes: usize) -> Vec<u8> {
    let fixed: usize = COMMAND_OVERHEAD_BYTES
        + keys
            .iter()
            .map(|k| k.len() + ITEM_OVERHEAD_BYTES)
            .sum::<usize>()
        + (keys.len() - 1) * (MIB + ITEM_OVERHEAD_BYTES)
        + ITEM_OVERHEAD_BYTES;
    let last = bytes - fixed;
    assert!(last <= MIB, "the last value stays within the bulk limit");
    let full = vec![b'v'; MIB];
    let short = vec![b'w'; last];
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    for (i, k) in keys.iter().enumerate() {
        args.push(k.as_bytes());
        args.push(if i + 1 == keys.len() { &short } else { &full });
    }
    let mut out = Vec::new();
    resp::encode_command(&mut out, &args);
    out
}

fn expect_too_large(v: &Value, bytes: usize) {
    let want =
        format!("ERR command of {bytes} bytes exceeds the limit of {COMMAND_BYTES_MAX} bytes");
    assert!(matches!(v, Value::Error(e) if *e == want), "{v:?}");
}

#[test]
fn commands_over_the_wal_record_limit_are_refused_and_the_cluster_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let keys = keys_of_one_shard(33);
    let mut c = Client::connect(cluster.clients[0]).unwrap();

    // The reported command: 33 values of 1 MiB. The connection stays usable.
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    let value = vec![b'v'; MIB];
    for k in &keys {
        args.push(k.as_bytes());
        args.push(&value);
    }
    let mut reported = Vec::new();
    resp::encode_command(&mut reported, &args);
    let reported_bytes = COMMAND_OVERHEAD_BYTES
        + keys
            .iter()
            .map(|k| k.len() + MIB + 2 * ITEM_OVERHEAD_BYTES)
            .sum::<usize>();
    c.send_raw(&reported).unwrap();
    expect_too_large(&c.read_reply().unwrap(), reported_bytes);
    assert_eq!(c.cmd(&["PING"]).unwrap(), Value::Simple("PONG".into()));

    // One byte over the limit, then exactly at it, on the same connection: as many keys
    // as the limit holds whole MiB, the last value a little short.
    let at_limit = &keys[..COMMAND_BYTES_MAX / MIB];
    c.send_raw(&mset_of(at_limit, COMMAND_BYTES_MAX + 1))
        .unwrap();
    expect_too_large(&c.read_reply().unwrap(), COMMAND_BYTES_MAX + 1);
    let started = std::time::Instant::now();
    c.send_raw(&mset_of(at_limit, COMMAND_BYTES_MAX)).unwrap();
    let v = c.read_reply().unwrap();
    assert!(is_ok(&v), "a command at the limit is logged: {v:?}");
    eprintln!("MSET at the limit answered in {:?}", started.elapsed());

    // Every node serves writes and reads afterwards, and has the large write.
    for (i, addr) in cluster.clients.iter().enumerate() {
        let mut c = Client::connect(*addr).unwrap();
        let key = format!("after-{i}");
        assert!(is_ok(&c.set(&key, "1").unwrap()), "SET through node {i}");
        assert_eq!(bulk(&c.cmd(&["GET", &key]).unwrap()).as_deref(), Some("1"));
        let v = c.cmd(&["GET", &keys[0]]).unwrap();
        assert!(
            matches!(&v, Value::Bulk(Some(b)) if b.len() == MIB),
            "node {i}"
        );
        let v = c.cmd(&["GET", &keys[32]]).unwrap();
        assert_eq!(
            v,
            Value::Bulk(None),
            "nothing of a refused command was applied"
        );
    }
    for i in 0..3 {
        assert_eq!(
            cluster.info_sum(i, "_stats", "records_too_large"),
            0,
            "node {i}: {}",
            cluster.log(i)
        );
        assert!(
            !cluster.log(i).contains("storage failure"),
            "{}",
            cluster.log(i)
        );
    }
}
