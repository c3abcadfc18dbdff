//! Node: lazy leader sync through the runtime (docs/ARCHITECTURE.md, "Lazy leader sync").
//! One client's writes through the leader are written lazily there and chosen by the
//! followers' votes; with a follower killed, the leader's own timer (not the 5 ms tick)
//! asks the core whether to sync its record (INFO `lazy_syncs_forced`), writes go on,
//! and after a few such slots lazy writes stop (the lone client's batches are of one:
//! `--lazy-sync-batch-min 1`). By default only batches of 8 or more are lazy: a lone
//! client's writes are synced, many clients' at once are written lazily.
mod node_support;
use corepax::runtime::node::shard_of;
use node_support::*;

/// Keys of shard 0, one per call, none seen before.
fn shard0_keys() -> impl Iterator<Item = String> {
    (0u64..)
        .map(|i| format!("lazy{i}"))
        .filter(|k| shard_of(k.as_bytes(), SHARDS) == 0)
}

/// Long enough that a follower's vote rarely misses it on a busy CI machine, short
/// enough that the leader's timer, not its 5 ms tick, syncs when a follower is gone.
const WAIT_US: &str = "1000";

#[test]
fn a_lone_clients_writes_are_lazy_at_the_leader_and_a_dead_follower_makes_it_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(
        3,
        dir.path(),
        &[
            "--lazy-leader-sync",
            "true",
            "--lazy-sync-batch-min",
            "1",
            "--lazy-sync-wait-us",
            WAIT_US,
        ],
    );
    let leader = cluster.leaders()[0].expect("shard 0 has a leader");
    let value = |c: &Cluster, field: &str| c.shard_value(leader, 0, "_latency", field);
    let mut client = Client::connect(cluster.clients[leader]).unwrap();
    let mut keys = shard0_keys();
    let mut acked = Vec::new();
    let mut write = |client: &mut Client, acked: &mut Vec<String>, v: &str| {
        let k = keys.next().unwrap();
        let r = client.set(&k, v).unwrap();
        assert!(is_ok(&r), "SET {k}: {r:?}");
        acked.push(k);
    };
    // A new WAL's first syncs take ~100 ms (its files are being made), so the first lazy
    // slots miss the wait, three in a row, and lazy writes stop for a second: let that
    // pass. A disk that stalls for milliseconds can do the same later: a batch of 200
    // one-client writes must be mostly lazy in one of three tries.
    for _ in 0..20 {
        write(&mut client, &mut acked, "v");
    }
    let mut best = 0;
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let before = value(&cluster, "slots_lazy");
        for _ in 0..200 {
            write(&mut client, &mut acked, "v");
        }
        best = best.max(value(&cluster, "slots_lazy") - before);
        if best >= 150 {
            break;
        }
    }
    assert!(
        best >= 150,
        "at best {best} of 200 one-client slots written lazily"
    );

    // One follower gone: the first follower vote of each lazy slot starts the wait, the
    // timer asks, and the leader syncs its record; after three such slots in a row lazy
    // writes stop for a second.
    let forced_before = value(&cluster, "lazy_syncs_forced");
    let lazy_before = value(&cluster, "slots_lazy");
    cluster.kill9((leader + 1) % 3);
    for _ in 0..100 {
        write(&mut client, &mut acked, "w");
    }
    let forced = value(&cluster, "lazy_syncs_forced") - forced_before;
    assert!(
        forced >= 1,
        "no lazy slot's record synced by the leader's timer"
    );
    let lazy = value(&cluster, "slots_lazy") - lazy_before;
    assert!(
        lazy < 50,
        "{lazy} of 100 slots lazy with a follower gone ({forced} synced by the timer)"
    );
    // Every acknowledged write is there, through the other follower too.
    let other = (leader + 2) % 3;
    let mut reader = Client::connect(cluster.clients[other]).unwrap();
    for k in &acked {
        let v = reader.cmd(&["GET", k]).unwrap();
        assert!(bulk(&v).is_some(), "GET {k} through node {other}: {v:?}");
    }
}

/// By default only for batches of 8 commands or more (docs/ARCHITECTURE.md, "Lazy leader
/// sync", says why): one client's writes, one at a time, through a default cluster's
/// leader are synced there, none lazily; 32 clients' writes at once are, in part.
#[test]
fn a_default_cluster_writes_only_large_batches_lazily() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let leader = cluster.leaders()[0].expect("shard 0 has a leader");
    let value = |field: &str| cluster.shard_value(leader, 0, "_latency", field);
    let mut client = Client::connect(cluster.clients[leader]).unwrap();
    let before = value("slots_led");
    for k in shard0_keys().take(50) {
        let r = client.set(&k, "v").unwrap();
        assert!(is_ok(&r), "SET {k}: {r:?}");
    }
    assert!(
        value("slots_led") - before >= 50,
        "the writes went through shard 0's leader"
    );
    assert_eq!(
        value("slots_lazy"),
        0,
        "lone writes written lazily by default"
    );
    // 32 clients at once, each one write at a time: batches of many.
    let before = value("slots_led");
    let keys: Vec<String> = shard0_keys().skip(50).take(32 * 50).collect();
    std::thread::scope(|s| {
        for chunk in keys.chunks(50) {
            let addr = cluster.clients[leader];
            s.spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                for k in chunk {
                    let r = c.set(k, "v").unwrap();
                    assert!(is_ok(&r), "SET {k}: {r:?}");
                }
            });
        }
    });
    assert!(
        value("slots_lazy") > 0,
        "no batch written lazily ({} slots for 1,600 writes of 32 clients)",
        value("slots_led") - before
    );
}
