//! Node: kill -9 the leader while a client writes; a new leader takes over within 2 s and
//! every acknowledged write is readable afterwards, through every surviving node (under
//! Multi-Paxos and under Raft).
//!
//! With the default timeouts (election 500 ms) a follower campaigns 1–2 election timeouts
//! after the last heartbeat, so a new leader is due within 1 s plus one election (a
//! round trip and a WAL sync); the 2 s promise leaves room for one more round after a
//! split vote. Measured on the 2-core machine while other builds ran: INFO showed the new
//! leader 0.50–1.09 s after the kill, and the first write to the victim's shard was
//! acknowledged 0.55–0.91 s after it. The tests allow [`TAKEOVER_BOUND`], the promise
//! plus 1 s for a CI machine whose two cores also run the three nodes, the client and
//! other jobs (scheduling delays, slow fsyncs): failing it means a takeover went wrong,
//! not that a machine was slow.
mod node_support;
use std::time::{Duration, Instant};

use corepax::runtime::node::shard_of;
use node_support::*;

/// How soon after kill -9 a new leader must be serving: see the module doc.
const TAKEOVER_BOUND: Duration = Duration::from_secs(3);

#[test]
fn leader_killed_while_writing_loses_no_acknowledged_write() {
    leader_killed_while_writing(Protocol::Multipaxos);
}

#[test]
fn raft_leader_killed_while_writing_loses_no_acknowledged_write() {
    leader_killed_while_writing(Protocol::Raft);
}

fn leader_killed_while_writing(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_protocol(protocol, 3, dir.path(), &[]);
    let victim = cluster.leaders()[0].expect("shard 0 has a leader");
    let writer_node = (victim + 1) % 3;
    let mut client = Client::connect(cluster.clients[writer_node]).unwrap();
    let mut acked = Vec::new();
    let mut killed_at = None;
    let mut first_ack_after_kill = None;
    let mut failures = 0;
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(6) {
        i += 1;
        if i == 200 {
            cluster.kill9(victim);
            killed_at = Some(Instant::now());
        }
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        match client.cmd(&["SET", &k, &v]) {
            Ok(r) if is_ok(&r) => {
                // Only a key of shard 0, whose leader was killed, needs the new leader.
                if let Some(at) = killed_at
                    && first_ack_after_kill.is_none()
                    && shard_of(k.as_bytes(), SHARDS) == 0
                {
                    first_ack_after_kill = Some(at.elapsed());
                }
                acked.push((k, v));
            }
            Ok(_) => failures += 1,
            Err(_) => {
                failures += 1;
                client = Client::connect(cluster.clients[writer_node]).unwrap();
            }
        }
    }
    let killed_at = killed_at.expect("the leader was killed mid-run");
    let took = cluster.wait_for_leaders(Duration::from_secs(10));
    let new_leaders = cluster.leaders();
    assert!(new_leaders.iter().all(|l| *l != Some(victim)));
    let since_kill = killed_at.elapsed();
    eprintln!(
        "{protocol}: acked {} writes, {failures} failed; leaders {new_leaders:?} ({took:?} after the run, run ended {since_kill:?} after the kill)",
        acked.len()
    );
    assert!(acked.len() > 200, "writes did not resume after the kill");
    // A new leader within the bound: the first write to shard 0 acknowledged after the
    // kill proves one was serving it (the writer's node is not the victim, so it forwarded
    // the write to the new leader).
    let resumed = first_ack_after_kill.expect("no write to shard 0 acknowledged after the kill");
    eprintln!("first write to shard 0 acknowledged {resumed:?} after the kill");
    assert!(
        resumed <= TAKEOVER_BOUND,
        "writes resumed {resumed:?} after kill -9 of the leader, more than {TAKEOVER_BOUND:?}"
    );
    for n in 0..3 {
        if !cluster.is_up(n) {
            continue;
        }
        let mut c = Client::connect(cluster.clients[n]).unwrap();
        for (k, v) in &acked {
            let got = c.cmd(&["GET", k]).unwrap();
            assert_eq!(bulk(&got).as_deref(), Some(v.as_str()), "{k} via node {n}");
        }
    }
}

#[test]
fn new_leader_within_two_seconds_of_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &[]);
    let victim = cluster.leaders()[0].expect("shard 0 has a leader");
    cluster.kill9(victim);
    let killed = Instant::now();
    loop {
        let leaders = cluster.leaders();
        if leaders[0].is_some_and(|l| l != victim) {
            break;
        }
        assert!(
            killed.elapsed() < TAKEOVER_BOUND,
            "no new leader for shard 0 within {TAKEOVER_BOUND:?} of kill -9 (default timeouts)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("new leader after {:?}", killed.elapsed());
}
