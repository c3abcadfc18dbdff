//! Cluster: reads away from the log: digest reads answer the committed value and repair
//! damaged copies; a replica that granted a leader lease promises nobody else.

use super::*;

/// Elects r0, writes a=1 and lets every replica apply it.
fn written_everywhere(mode: crate::config::ReadMode) -> Cluster {
    let mut c = Cluster::with_reads(3, mode);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    c.run(|_, _, _| true);
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    for i in 0..3 {
        assert_eq!(value(&c, i, "a"), Some(Bytes::from("1")));
    }
    c
}

fn damage(c: &mut Cluster, i: usize, k: &str, v: &str) {
    let entry = crate::protocol::kv::Entry {
        value: Bytes::from(v.to_string()),
        version: 0,
        kind: crate::protocol::item::Kind::String,
    };
    c.replicas[i]
        .kv_mut()
        .force_local(Bytes::from(k.to_string()), entry);
}

#[test]
fn digest_read_at_a_damaged_replica_answers_the_committed_value_and_repairs_it() {
    let mut c = written_everywhere(crate::config::ReadMode::Digest);
    damage(&mut c, 1, "a", "bad");
    c.request(1, 9, 2, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(9),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("1")))))
    );
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")), "repaired");
    let st = c.replicas[1].stats();
    assert_eq!((st.digest_mismatches, st.read_fetches), (1, 1));
    assert!(st.read_repairs >= 1);
}

#[test]
fn digest_read_repairs_a_damaged_peer_before_answering() {
    let mut c = written_everywhere(crate::config::ReadMode::Digest);
    damage(&mut c, 1, "a", "bad");
    // Only r1 reports, so the read sees the damaged copy.
    c.request(0, 9, 2, 1, get("a"));
    c.run(|_, to, _| to.index() != 2);
    assert_eq!(
        c.reply_of(9),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("1")))))
    );
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")), "r1 repaired");
    assert_eq!(c.replicas[1].stats().repairs_installed, 1);
    assert!(
        c.replies.iter().filter(|(t, _)| *t == 9).count() == 1,
        "answered once"
    );
}

#[test]
fn a_replica_that_granted_a_leader_lease_promises_nobody_else() {
    let mut c = Cluster::with_reads(3, crate::config::ReadMode::LeaderLease);
    // Time stands still while messages fly here, so no clock rate can be measured
    // (`clock_check` has its own tests): trust the clocks, as the simulator's runs of
    // this rule do not need to.
    for r in &mut c.replicas {
        r.set_bugs(Bugs {
            trust_clocks: true,
            ..Bugs::default()
        });
    }
    c.wait_out_startup_amnesia();
    c.elect(0);
    // The new leader asks for its lease at once; every replica grants it.
    c.run(|_, _, _| true);
    c.request(0, 5, 1, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(5), Some(&ClientReply::Done(Reply::Value(None))));
    assert_eq!(
        c.replicas[0].stats().reads_local,
        1,
        "served from the lease"
    );
    // r1 gives up on the leader early: r2 granted r0 a lease and stays silent.
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    assert!(c.replicas[1].leading().is_none());
    c.now += 10 * MS;
    let prepares = c.wire.len();
    c.run(|_, _, _| true);
    assert!(prepares == 0 || c.replicas[1].leading().is_none());
    // Once the grants ran out (lease plus drift allowance), an election succeeds.
    c.up[0] = false;
    c.now += 2 * c.replicas[1].cfg.lease_ms * MS;
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    c.replicas[2].on_tick(c.now);
    c.collect(2);
    c.replicas[1].election_deadline = Some(c.now);
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    c.run(|_, _, _| true);
    assert!(
        c.replicas[1].leading().is_some(),
        "r1 leads once the lease ended"
    );
}
