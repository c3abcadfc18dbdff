//! Cluster: replication: a write is applied everywhere and answered once chosen, a
//! minority's value survives, dueling proposers agree, followers catch up, retries take
//! effect once, a restart keeps promises and accepted values, and batches keep their limits.

use super::*;

#[test]
fn write_is_applied_everywhere_and_answered_once_chosen() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    assert!(
        c.reply_of(1).is_none(),
        "no answer before a quorum accepted"
    );
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    // Followers apply once the next heartbeat carries the commit index.
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    for i in 0..3 {
        assert_eq!(value(&c, i, "a"), Some(Bytes::from("1")), "replica {i}");
    }
}

#[test]
fn non_leader_names_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.request(2, 7, 1, 1, get("a"));
    assert_eq!(
        c.reply_of(7),
        Some(&ClientReply::NotLeader {
            leader: Some(ReplicaId(1))
        })
    );
}

#[test]
fn accepted_is_never_sent_before_the_accept_is_durable() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    // Deliver the accept to r1 but do not sync r1's disk.
    let accepts: Vec<_> = c
        .wire
        .drain(..)
        .filter(|(_, t, _)| t.index() == 1)
        .collect();
    assert!(!accepts.is_empty());
    for (from, _, msg) in accepts {
        c.replicas[1].on_message(c.now, from, msg);
        c.collect(1);
    }
    assert!(
        !c.wire
            .iter()
            .any(|(f, _, m)| f.index() == 1 && matches!(m, Message::Accepted { .. })),
        "r1 answered before its record was durable"
    );
    assert!(!c.unsynced[1].is_empty());
    c.sync(1);
    assert!(
        c.wire
            .iter()
            .any(|(f, _, m)| f.index() == 1 && matches!(m, Message::Accepted { .. }))
    );
}

#[test]
fn value_accepted_by_a_minority_survives_leader_failure() {
    // r0 leads and proposes; only r1 accepts (with r0 itself that is a quorum, so the value
    // may have been chosen); r0 fails before anyone learns it. The next leader must keep it.
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "minority"));
    c.sync(0);
    c.run(|from, to, m| {
        from.index() == 0 && to.index() == 1 && matches!(m, Message::Accept { .. })
    });
    c.sync(1);
    c.crash(0);
    c.wire.clear();
    // r2 (which never saw the value) becomes leader with r1's promise.
    c.elect(2);
    c.request(2, 2, 2, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(2),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from(
            "minority"
        )))))
    );
}

#[test]
fn dueling_proposers_agree() {
    let mut c = Cluster::new(3);
    // Both start elections at once; messages interleave.
    c.replicas[0].start_election(c.now);
    c.replicas[0].finish_step(c.now);
    c.collect(0);
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.run(|_, _, _| true);
    let leaders: Vec<_> = (0..3)
        .filter(|&i| c.replicas[i].leading().is_some())
        .collect();
    assert!(
        leaders.len() <= 1,
        "two leaders after the duel: {leaders:?}"
    );
    // Whoever wins (or a retry) gets writes through, and both agree afterwards.
    let winner = match leaders.first() {
        Some(&w) => w,
        None => {
            c.now += 10 * MS;
            c.elect(1);
            1
        }
    };
    c.request(winner, 1, 1, 1, set("k", "v"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    // The loser now proposes with a higher ballot; the old leader must step down.
    let loser = 1 - winner.min(1);
    c.now += 10 * MS;
    c.elect(loser);
    assert!(
        c.replicas[winner].leading().is_none(),
        "old leader kept leading"
    );
    c.request(loser, 2, 1, 2, get("k"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(2),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("v")))))
    );
}

#[test]
fn follower_far_behind_catches_up_in_chunks() {
    let mut c = Cluster::new(3);
    c.elect(0);
    // r2 hears nothing while 300 writes are chosen.
    for i in 0..300u64 {
        c.request(0, i + 1, 1, i + 1, set(&format!("k{i}"), &format!("v{i}")));
        c.run(|_, to, _| to.index() != 2);
    }
    c.wire.retain(|(_, to, _)| to.index() != 2);
    assert_eq!(c.replicas[2].commit_index(), 0);
    // A heartbeat reveals the commit index; r2 asks for the rest, chunk by chunk.
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    let mut catchups = 0;
    for _ in 0..1000 {
        c.sync_all();
        if c.wire.is_empty() {
            break;
        }
        let (from, to, msg) = c.wire.remove(0);
        if let Message::CatchUp { entries, .. } = &msg {
            assert!(entries.len() <= 16, "chunk over catchup_chunk_max");
            catchups += 1;
        }
        c.replicas[to.index()].on_message(c.now, from, msg);
        c.collect(to.index());
    }
    let leader_commit = c.replicas[0].commit_index();
    assert!(leader_commit >= 300);
    assert_eq!(c.replicas[2].commit_index(), leader_commit);
    assert!(catchups >= 300 / 16, "only {catchups} catch-up chunks");
    assert_eq!(c.replicas[2].kv().digest(), c.replicas[0].kv().digest());
}

#[test]
fn retried_write_takes_effect_once_across_a_leader_change() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 9, 1, Command::Del(vec![Bytes::from("x")]));
    c.request(0, 2, 9, 2, set("x", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(2), Some(&ClientReply::Done(Reply::Ok)));
    // Another client deletes x; then client 9 retries seq 2 at a new leader.
    c.request(0, 3, 5, 1, Command::Del(vec![Bytes::from("x")]));
    c.run(|_, _, _| true);
    c.now += 10 * MS;
    c.elect(1);
    c.request(1, 4, 9, 2, set("x", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(4), Some(&ClientReply::Done(Reply::Ok)));
    assert_eq!(value(&c, 1, "x"), None, "the retry was applied twice");
}

#[test]
fn restart_recovers_promise_and_accepted_values() {
    let mut c = Cluster::new(3);
    c.elect(0);
    for i in 0..10u64 {
        c.request(0, i + 1, 1, i + 1, set("k", &i.to_string()));
    }
    c.run(|_, _, _| true);
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    let promised = c.replicas[1].promised();
    c.crash(1);
    c.restart(1);
    assert_eq!(c.replicas[1].promised(), promised);
    assert!(c.replicas[1].commit_index() > 0, "commit index survived");
    // A stale leader at a lower ballot is refused by the restarted acceptor.
    let stale = Ballot {
        round: 0,
        node: ReplicaId(2),
    };
    c.replicas[1].on_message(
        c.now,
        ReplicaId(2),
        Message::Accept {
            ballot: stale,
            slot: 1,
            batch: Arc::from(vec![Request::noop()]),
            commit: 0,
        },
    );
    let out: Vec<_> = c.replicas[1].drain().collect();
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::Reject { .. },
            ..
        }
    )));
}

#[test]
fn pipeline_and_batch_limits_hold() {
    let mut c = Cluster::new(3);
    c.replicas[0].cfg.pipeline_depth = 2;
    c.replicas[0].cfg.batch_max = 4;
    c.elect(0);
    let before = c.replicas[0].stats().slots_proposed;
    for i in 0..20u64 {
        c.request(0, i + 1, 1, i + 1, set("k", "v"));
    }
    // Nothing delivered: at most 2 slots in flight, each with at most 4 commands.
    let accepts: Vec<usize> = c
        .wire
        .iter()
        .filter_map(|(_, to, m)| match m {
            Message::Accept { batch, .. } if to.index() == 1 => Some(batch.len()),
            _ => None,
        })
        .collect();
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 2);
    assert!(accepts.iter().all(|&n| n <= 4), "{accepts:?}");
    c.run(|_, _, _| true);
    for i in 0..20u64 {
        assert_eq!(c.reply_of(i + 1), Some(&ClientReply::Done(Reply::Ok)));
    }
    assert_eq!(c.replicas[0].stats().commands_proposed, 20);
}

#[test]
fn a_heartbeat_below_the_promise_deposes_its_sender() {
    // r0 leads ballot 1; r1 then promises r2's higher ballot, which r0 never hears of.
    let mut c = Cluster::new(3);
    c.elect(0);
    let old = c.replicas[0].leading().expect("r0 leads");
    let higher = Ballot {
        round: old.round + 1,
        node: ReplicaId(2),
    };
    let prepare = Message::Prepare {
        ballot: higher,
        from_slot: 1,
    };
    c.replicas[1].on_message(c.now, ReplicaId(2), prepare);
    c.collect(1);
    c.sync(1);
    c.wire.clear();
    // r0's heartbeat reaches r1, which answers with its promise: r0 steps down.
    let heartbeat = Message::Commit {
        ballot: old,
        commit: 0,
    };
    c.replicas[1].on_message(c.now, ReplicaId(0), heartbeat);
    c.collect(1);
    assert!(
        c.wire.iter().any(|(f, t, m)| f.index() == 1
            && t.index() == 0
            && matches!(m, Message::Reject { promised } if *promised == higher)),
        "{:?}",
        c.wire
    );
    c.run(|_, _, _| true);
    assert!(
        c.replicas[0].leading().is_none(),
        "r0 learned it was deposed"
    );
}
