//! A replica whose storage lost synced records (mid-log corruption, a lost write: the
//! WAL's recovery reports `forgot_records`) may have forgotten entries it acknowledged and
//! a vote it cast. Voting on that would let a leader that lacks a committed entry be
//! elected (its vote stands in for a copy it no longer has), or let two leaders share a
//! term (its forgotten vote and a new one). So it comes back as a learner, as under
//! Multi-Paxos (`paxos/recovery.rs`): it follows the leader, stores and acknowledges what
//! it receives (those acknowledgements are true), but grants no vote or pre-vote, grants no
//! lease and starts no election, until:
//!
//! 1. An election's worth of time passed since it restarted (three election timeouts, with
//!    the drift allowance, on its own clock): a candidacy that may have counted its
//!    forgotten vote has ended by then (a candidate gives up after at most two election
//!    timeouts on its clock), either won or abandoned for a later term.
//! 2. After that, a quorum of the other replicas that are not recovering themselves
//!    reported their terms (`RecoveryQuery`, `RecoveryReport`). A term it voted or
//!    acknowledged in was adopted before then by the rest of a quorum: the voters of the
//!    leader it acknowledged, or of the candidate that won with its vote. That rest (a
//!    quorum minus itself) meets any quorum of the others, so the highest term reported
//!    bounds every term it may have voted or acknowledged in.
//! 3. A leader of at least that term (and of at least its own) reported its last index,
//!    and this replica's commit index reached it. That leader holds every entry committed
//!    in earlier terms (its voters could not count on this replica's missing copies: it
//!    did not vote since it restarted), and every entry of its own term this replica may
//!    have acknowledged, so this replica's log now holds all it ever acknowledged.
//!
//! Then it adopts that leader's term and records a vote for it there (it cannot vote
//! again in that term, where its forgotten vote may lie), and asks the driver for a
//! snapshot, which makes the damaged records moot. Recovery keeps the snapshot's log and
//! ignores the entries of the WAL after it (a lost record may have been the one that
//! truncated a stale entry, so what follows could mix two leaders' logs); the leader sends
//! them again. A leader that hears a recovery query lowers what it believes the replica
//! holds to what it says it holds.

use super::{Msg, Replica, Role};
use crate::protocol::lease::surely_past;
use crate::protocol::outbox::Action;
use crate::protocol::types::{Nanos, ReplicaId, Slot};

/// What a replica that forgot records still has to learn before it votes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Recovering {
    /// Reports count only after this time on our clock (set at the first step).
    pub(super) wait_until: Option<Nanos>,
    /// Replicas (bits), not themselves recovering, that reported their term.
    pub(super) reported_mask: u8,
    /// The highest term they reported.
    pub(super) term_max: u64,
    /// The highest-term leader that reported: its term, id and last index.
    pub(super) leader: Option<(u64, ReplicaId, Slot)>,
    /// When the last `RecoveryQuery` went out.
    pub(super) query_sent_at: Option<Nanos>,
}

impl Replica {
    /// True while this replica recovers records its storage lost and so does not vote.
    pub fn recovering(&self) -> bool {
        self.recovering.is_some()
    }

    /// While recovering: once the wait is over, asks every other replica for its term
    /// (and its last index if it leads) each heartbeat interval.
    pub(super) fn recovery_tick(&mut self, now: Nanos) {
        let interval = self.heartbeat_interval();
        let wait = surely_past(3 * self.election_timeout(), self.cfg.max_clock_drift_ppm);
        let last_index = self.log.last_index();
        let Some(rec) = &mut self.recovering else {
            return;
        };
        let until = *rec.wait_until.get_or_insert(now + wait);
        if now < until || rec.query_sent_at.is_some_and(|t| now < t + interval) {
            return;
        }
        rec.query_sent_at = Some(now);
        self.broadcast(&Msg::RecoveryQuery { last_index });
    }

    /// A recovering peer asks for our term; a leader also sends it what it lacks.
    pub(super) fn on_recovery_query(&mut self, now: Nanos, from: ReplicaId, last_index: Slot) {
        let term = self.term;
        let recovering = self.recovering.is_some();
        let leading = match &mut self.role {
            Role::Leader(l) => {
                let p = &mut l.progress[from.index()];
                if p.matched > last_index {
                    // Its log lost entries we counted: resend from what it holds.
                    p.matched = last_index;
                    p.next = last_index + 1;
                    p.in_flight = 0;
                    p.snapshot_sent = false;
                    p.probing = true;
                }
                Some(self.log.last_index())
            }
            _ => None,
        };
        self.send(
            from,
            Msg::RecoveryReport {
                term,
                recovering,
                leading,
            },
        );
        if leading.is_some() {
            self.replicate(now, from);
        }
    }

    /// A peer's answer to our `RecoveryQuery`.
    pub(super) fn on_recovery_report(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        recovering: bool,
        leading: Option<Slot>,
    ) {
        let Some(rec) = &mut self.recovering else {
            self.stats.messages_ignored += 1;
            return;
        };
        if recovering {
            // Its own term may be among its lost records: it vouches for nothing.
            self.stats.messages_ignored += 1;
            return;
        }
        rec.reported_mask |= from.bit();
        rec.term_max = rec.term_max.max(term);
        if let Some(last) = leading
            && rec.leader.is_none_or(|(t, _, _)| t <= term)
        {
            let last = match rec.leader {
                Some((t, l, old)) if t == term && l == from => old.max(last),
                _ => last,
            };
            rec.leader = Some((term, from, last));
        }
        self.check_recovered(now);
    }

    /// Ends recovery when the conditions of the module doc hold: adopts the leader's term
    /// with a vote for it (durably) and asks for a snapshot.
    pub(super) fn check_recovered(&mut self, now: Nanos) {
        let Some(rec) = &self.recovering else {
            return;
        };
        if (rec.reported_mask.count_ones() as usize) < self.cfg.quorum() {
            return;
        }
        let Some((term, leader, last)) = rec.leader else {
            return;
        };
        if term < rec.term_max.max(self.term) || self.commit < last {
            return;
        }
        self.recovering = None;
        if term > self.term || self.leader != Some(leader) {
            self.become_follower(now, term, Some(leader));
        }
        if self.voted_for.is_none() {
            self.voted_for = Some(leader);
        }
        let record = super::RaftRecord::Vote {
            term: self.term,
            voted_for: self.voted_for,
        };
        self.persist(record);
        self.outbox.push(Action::SaveSnapshot);
    }
}
