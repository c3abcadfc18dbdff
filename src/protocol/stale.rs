//! Detecting a data directory replaced by an older copy of itself (a restored backup, a
//! `cp -a` of last week's directory), for either protocol.
//!
//! Such a replica recovers without error: its records are whole, just old. But it may
//! have acknowledged promises, accepts, votes and appends after the copy was taken, and
//! a leader or candidate counted them; voting on the older state is the same hazard as
//! voting after storage lost records. So every replica remembers, in memory, the most
//! each peer showed it durably holds (Multi-Paxos: the highest ballot it promised and the
//! highest slot it acknowledged accepting; Raft: the highest term it announced in an
//! answer sent once durable, the term it voted for us in, and the last entry it
//! acknowledged storing), and a replica that restarts checks its storage against that:
//!
//! - After `recover`, it answers no vote, promise, accept or append and starts no
//!   election: it only asks every peer `RestartQuery` each heartbeat interval, and takes
//!   their reports, until every peer answered, or, after [`WAIT_ELECTION_TIMEOUTS`]
//!   election timeouts, enough peers to make a quorum with itself. Its state does not
//!   change meanwhile, so a report compares with what its storage held.
//! - A report showing more than its storage holds (a higher term or promise, a vote in
//!   its term for someone it has not recorded, an entry or slot it does not hold) means
//!   the copy is older than what it acknowledged: it treats itself as having lost records
//!   (the learner rule each core already has for WAL damage), counts it
//!   (`Stats::stale_data_detected`, INFO) and keeps a description for the node's log.
//!
//! Only what a peer saw *after the replica made it durable* counts (the cores' durability
//! contract: those answers leave once their record is durable), so a replica restarted
//! from its own, current storage is never taken for stale. What it cannot detect: a
//! peer's memory is lost when the peer restarts, and a peer that does not answer within
//! the wait (down, cut off) tells nothing, so a copy is detected only if a peer that saw
//! an acknowledgement made after the copy was taken stays up and answers the check;
//! every replica restored at once (or restarted before the stale one asks) leaves
//! nobody who remembers.

use super::types::{Nanos, ReplicaId};

/// After this many election timeouts without every peer's report, a quorum (with the
/// restarted replica) of reports ends the check: a peer that stays down must not keep a
/// restarted replica from voting forever.
pub const WAIT_ELECTION_TIMEOUTS: u64 = 2;

/// The state of a replica that restarted and has not heard enough peers yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestartCheck {
    /// When the check began (its first step), on the replica's clock.
    started_at: Option<Nanos>,
    /// When the last `RestartQuery` went out.
    query_sent_at: Option<Nanos>,
    /// Peers (bits) that reported.
    answered_mask: u8,
}

impl RestartCheck {
    /// What the restarted replica does at `now`: ends the check (see [`RestartCheck::done`]),
    /// asks every peer again (the first step, then every `interval`), or waits.
    pub fn step(&mut self, now: Nanos, group: &CheckGroup) -> CheckStep {
        self.started_at.get_or_insert(now);
        if self.done(now, group) {
            return CheckStep::Over;
        }
        if self.query_sent_at.is_some_and(|t| now < t + group.interval) {
            return CheckStep::Wait;
        }
        self.query_sent_at = Some(now);
        CheckStep::Ask
    }

    /// `from` reported.
    pub fn answered(&mut self, from: ReplicaId) {
        self.answered_mask |= from.bit();
    }

    /// Whether the check is over at `now`: every peer of the group but this replica
    /// reported, or `wait` passed and the reports make a quorum with this replica.
    fn done(&self, now: Nanos, group: &CheckGroup) -> bool {
        let answered = (self.answered_mask & !group.id.bit()).count_ones() as usize;
        if answered >= group.replicas - 1 {
            return true;
        }
        let waited = self.started_at.is_some_and(|t| now >= t + group.wait);
        waited && answered + 1 >= group.quorum
    }
}

/// The restarted replica's group and timing, as each protocol's core knows them.
#[derive(Clone, Copy, Debug)]
pub struct CheckGroup {
    pub id: ReplicaId,
    pub replicas: usize,
    pub quorum: usize,
    /// How long to wait for every peer before a quorum of reports ends the check
    /// ([`WAIT_ELECTION_TIMEOUTS`] election timeouts).
    pub wait: Nanos,
    /// Between queries (a heartbeat interval).
    pub interval: Nanos,
}

/// What [`RestartCheck::step`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStep {
    /// The check is over: the replica may vote, accept and campaign again.
    Over,
    /// Send `RestartQuery` to every peer.
    Ask,
    /// Nothing to do yet.
    Wait,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_ends_the_check_at_once_a_quorum_only_after_the_wait() {
        let three = CheckGroup {
            id: ReplicaId(0),
            replicas: 3,
            quorum: 2,
            wait: 50,
            interval: 10,
        };
        let five = CheckGroup {
            replicas: 5,
            quorum: 3,
            ..three
        };
        let mut c = RestartCheck::default();
        assert_eq!(c.step(100, &three), CheckStep::Ask);
        assert_eq!(
            c.step(105, &three),
            CheckStep::Wait,
            "one query per interval"
        );
        assert_eq!(c.step(110, &three), CheckStep::Ask);
        c.answered(ReplicaId(1));
        assert_eq!(
            c.step(115, &three),
            CheckStep::Wait,
            "one peer of two, before the wait"
        );
        assert!(!c.clone().done(149, &three));
        assert_eq!(
            c.clone().step(150, &three),
            CheckStep::Over,
            "a quorum once the wait passed"
        );
        assert_ne!(
            c.clone().step(150, &five),
            CheckStep::Over,
            "one peer of four is no quorum"
        );
        c.answered(ReplicaId(2));
        assert_eq!(c.step(115, &three), CheckStep::Over, "every peer: at once");
    }
}
