//! Node: a write through one node is readable through every other node (3 replicas).
mod node_support;
use node_support::*;

#[test]
fn set_through_one_node_get_through_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c0 = Client::connect(cluster.clients[0]).unwrap();
    for k in 0..20 {
        let v = c0.set(&format!("key{k}"), &format!("value{k}")).unwrap();
        assert!(is_ok(&v), "SET key{k}: {v:?}");
    }
    for (i, addr) in cluster.clients.iter().enumerate() {
        let mut c = Client::connect(*addr).unwrap();
        for k in 0..20 {
            let v = c.cmd(&["GET", &format!("key{k}")]).unwrap();
            assert_eq!(
                bulk(&v),
                Some(format!("value{k}")),
                "GET key{k} via node {i}"
            );
        }
        assert_eq!(bulk(&c.cmd(&["GET", "missing"]).unwrap()), None);
    }
    // Multi-key commands span both shards.
    let mut c2 = Client::connect(cluster.clients[2]).unwrap();
    let v = c2.cmd(&["MGET", "key1", "nope", "key2", "key3"]).unwrap();
    let expected = corepax::wire::resp::Value::Array(Some(vec![
        corepax::wire::resp::Value::Bulk(Some("value1".into())),
        corepax::wire::resp::Value::Bulk(None),
        corepax::wire::resp::Value::Bulk(Some("value2".into())),
        corepax::wire::resp::Value::Bulk(Some("value3".into())),
    ]));
    assert_eq!(v, expected);
    let v = c2.cmd(&["DEL", "key1", "key2", "nope"]).unwrap();
    assert_eq!(v, corepax::wire::resp::Value::Integer(2));
    let v = c0.cmd(&["EXISTS", "key1", "key3", "key4"]).unwrap();
    assert_eq!(v, corepax::wire::resp::Value::Integer(2));

    // INFO's latency breakdown saw those writes: each answered by a core here or through
    // a forward to its shard's leader, proposed and chosen by a leader, synced everywhere.
    let sum = |field: &str| -> u64 { (0..3).map(|i| cluster.info_sum(i, "_latency", field)).sum() };
    let answered = sum("answered_local") + sum("answered_forwarded");
    assert!(answered >= 20 + 2, "answered commands {answered}");
    assert!(sum("slots_led") >= 1, "slots chosen by a leader");
    assert!(
        sum("propose_to_chosen_avg_us") > 0,
        "a proposal takes time to be chosen"
    );
    for i in 0..3 {
        assert!(
            cluster.info_sum(i, "_latency", "syncs") >= 1,
            "node {i} synced"
        );
    }
    assert!(sum("sync_avg_us") > 0, "syncs take time");

    // A shard with nothing to do ticks at its idle interval (50 ms, the default heartbeat
    // interval), not every 5 ms: 200 wake-ups a second cost an idle node ~2% of a core.
    // The bound allows 1.5× the idle rate; a busy ticker would run 200 times a second.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let ticks = |i: usize| cluster.info_sum(i, "_stats", "ticks");
    let before: Vec<u64> = (0..3).map(ticks).collect();
    let started = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let secs = started.elapsed().as_secs_f64();
    for (i, b) in before.iter().enumerate() {
        let per_shard_per_s = (ticks(i) - b) as f64 / SHARDS as f64 / secs;
        assert!(
            per_shard_per_s >= 5.0,
            "node {i}: the ticker still runs (heartbeats): {per_shard_per_s:.0} ticks a second"
        );
        assert!(
            per_shard_per_s <= 30.0,
            "node {i}: an idle shard ticked {per_shard_per_s:.0} times a second"
        );
    }
    // And a command wakes it: answered as before.
    let v = c0.set("after-idle", "v").unwrap();
    assert!(is_ok(&v), "SET after idle: {v:?}");
}
