//! Cluster: a leader whose storage cannot write (a full disk) steps down, campaigns no
//! more while it lasts, and another replica leads; its waiting clients are told to retry.

use super::*;

#[test]
fn a_leader_that_cannot_write_steps_down_and_another_leads() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));

    // A request waits on r0 (its accepts are held back), then r0's disk fills up.
    c.request(0, 2, 1, 2, set("b", "2"));
    assert!(c.reply_of(2).is_none());
    c.replicas[0].set_storage_full(c.now, true);
    c.collect(0);
    assert!(c.replicas[0].leading().is_none(), "r0 stepped down");
    assert!(c.replicas[0].storage_full());
    assert_eq!(c.replicas[0].stats().storage_full_step_downs, 1);
    assert_eq!(
        c.reply_of(2),
        Some(&ClientReply::NotLeader { leader: None }),
        "its waiting client is told to retry"
    );

    // However long it goes on, r0 starts no election.
    let elections = c.replicas[0].stats().elections_started;
    for _ in 0..20 {
        c.now += 200 * MS;
        c.replicas[0].on_tick(c.now);
        c.collect(0);
    }
    assert_eq!(c.replicas[0].stats().elections_started, elections);
    assert!(c.replicas[0].leading().is_none());

    // The others elect r1, which takes the retried write and everything chosen before.
    c.wire.clear();
    c.elect(1);
    c.request(1, 3, 1, 2, set("b", "2"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(3), Some(&ClientReply::Done(Reply::Ok)));
    c.now += 100 * MS;
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    c.run(|_, _, _| true);
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")));
    assert_eq!(value(&c, 2, "b"), Some(Bytes::from("2")));

    // Space is back: r0 may campaign again.
    c.replicas[0].set_storage_full(c.now, false);
    assert!(!c.replicas[0].storage_full());
    c.now += 10_000 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    assert!(c.replicas[0].stats().elections_started > elections);
}
