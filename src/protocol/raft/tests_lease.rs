//! Leader-lease reads of the Raft core: the leader answers reads alone while its lease
//! runs, and no other leader is elected before it ended, also when the old leader was
//! paused (it answers a read before its timers run) and when a grantor restarted.

use super::*;
use crate::config::ReadMode;
use crate::protocol::consensus::Core;

const LEASE_MS: u64 = 2_000;

fn lease_group(bugs: Bugs) -> Group {
    let cfg = ProtocolConfig {
        read_mode: ReadMode::LeaderLease,
        lease_ms: LEASE_MS,
        ..cfg(3)
    };
    Group::from(
        (0..3)
            .map(|i| {
                let mut r = Replica::new(cfg.clone(), ReplicaId(i), u64::from(i));
                r.set_bugs(bugs);
                r
            })
            .collect(),
    )
}

fn get_a() -> Command {
    Command::Get(Bytes::from_static(b"a"))
}

/// Runs the group until a leader holds its lease, writes `a = 1` and checks the leader
/// answers a read of it at once; returns the leader. Lease requests to `no_grant` are
/// dropped.
fn leader_with_lease(g: &mut Group, no_grant: Option<usize>) -> usize {
    let skip = |to: ReplicaId, m: &Msg| {
        no_grant == Some(to.index()) && matches!(m, Msg::LeaseRequest { .. })
    };
    for _ in 0..500 {
        let at = g.now + 10 * MS;
        for i in 0..3 {
            g.tick(i, at);
        }
        g.wire.retain(|(_, to, m)| !skip(*to, m));
        g.deliver_all();
        g.wire.retain(|(_, to, m)| !skip(*to, m));
        if let [(l, _)] = g.leaders()[..]
            && g.replicas[l].lease_read_ready(g.now)
        {
            g.request(l, 1, set("a", "1", 1));
            g.deliver_all();
            let now = g.now;
            let read = Core::read_now(&mut g.replicas[l], now, &get_a());
            assert_eq!(read, Some(Reply::Value(Some(Bytes::from_static(b"1")))));
            return l;
        }
    }
    panic!("no leader held a lease within 5 s");
}

/// The leader `l` is paused (no ticks, no messages) while the others run for `ms`.
/// Returns whether a new leader existed at a moment the paused one would still have
/// answered a read under its lease, and when the first new leader appeared.
fn pause_leader(g: &mut Group, l: usize, ms: u64) -> (bool, Option<Nanos>) {
    let start = g.now;
    let mut overlap = false;
    let mut elected = None;
    for _ in 0..ms / 10 {
        let at = g.now + 10 * MS;
        for i in (0..3).filter(|i| *i != l) {
            g.tick(i, at);
        }
        // Nothing reaches the paused leader or leaves it (clock probes are dropped too:
        // the others need no measure to grant or vote).
        let paused = ReplicaId(l as u8);
        g.clock_wire.clear();
        g.deliver_where(|from, to, _| from != paused && to != paused);
        g.drop_involving(l);
        let new_leader = g.leaders().iter().any(|(i, _)| *i != l);
        if new_leader && elected.is_none() {
            elected = Some(g.now - start);
        }
        let now = g.now;
        let serving = Core::read_now(&mut g.replicas[l], now, &get_a()).is_some();
        overlap |= new_leader && serving;
    }
    (overlap, elected)
}

#[test]
fn a_paused_leader_serves_reads_only_while_no_other_can_be_elected() {
    let mut g = lease_group(Bugs::default());
    let l = leader_with_lease(&mut g, None);
    assert!(g.replicas[l].stats().reads_local >= 1);
    let (overlap, elected) = pause_leader(&mut g, l, 4 * LEASE_MS);
    assert!(
        !overlap,
        "a new leader was elected inside the paused leader's lease"
    );
    let elected = elected.expect("the others elect a leader once the lease ran out");
    assert!(
        elected >= LEASE_MS * MS * 99 / 100,
        "elected after {elected} ns"
    );
}

#[test]
fn the_bug_votes_inside_the_lease_and_two_leaders_overlap() {
    let mut g = lease_group(Bugs {
        vote_inside_lease: true,
        ..Bugs::default()
    });
    let l = leader_with_lease(&mut g, None);
    let (overlap, elected) = pause_leader(&mut g, l, 4 * LEASE_MS);
    assert!(elected.is_some_and(|t| t < LEASE_MS * MS));
    assert!(overlap, "the bug elected no leader inside the lease");
}

/// The lease rests on the leader's own grant and one follower's; that follower restarts
/// (forgetting it granted) and the third replica, which granted nothing, campaigns.
fn restarted_grantor(bugs: Bugs) -> (bool, Option<Nanos>) {
    let mut g = lease_group(bugs);
    let l = leader_with_lease(&mut g, Some(2));
    assert_ne!(l, 2, "replica 2 leads: every follower got its requests");
    let f = 1 - l.min(1); // the follower other than 2
    let cfg = g.replicas[f].cfg.clone();
    let mut r = Replica::recover(
        cfg,
        ReplicaId(f as u8),
        99,
        None,
        g.records[f].clone(),
        false,
    );
    r.set_bugs(bugs);
    g.replicas[f] = r;
    pause_leader(&mut g, l, 4 * LEASE_MS)
}

#[test]
fn a_restarted_grantor_waits_out_the_grants_it_forgot() {
    let (overlap, elected) = restarted_grantor(Bugs::default());
    assert!(
        !overlap,
        "the restarted replica voted inside a lease it had granted"
    );
    let elected = elected.expect("a leader once the lease ran out");
    assert!(
        elected >= LEASE_MS * MS * 99 / 100,
        "elected after {elected} ns"
    );
    let (overlap, _) = restarted_grantor(Bugs {
        vote_inside_lease: true,
        ..Bugs::default()
    });
    assert!(
        overlap,
        "without the wait a leader is elected inside the lease"
    );
}

#[test]
fn the_leader_fills_its_latency_counters() {
    let mut g = lease_group(Bugs::default());
    let l = leader_with_lease(&mut g, None);
    let st = g.replicas[l].stats();
    assert!(st.slots_chosen_led >= 2, "the no-op and the write");
    assert!(st.slots_chosen_led <= st.slots_proposed);
}
