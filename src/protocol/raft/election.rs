//! Elections: randomised timeouts, pre-vote, RequestVote with the up-to-date check, and
//! stepping down when a higher term appears.

use super::{Msg, Replica, Role, replication::Leadership};
use crate::protocol::outbox::ClientReply;
use crate::protocol::raft::RaftRecord;
use crate::protocol::types::{Nanos, ReplicaId, Slot};

impl Replica {
    /// A follower or candidate whose timer ran out asks for pre-votes.
    pub(super) fn election_tick(&mut self, now: Nanos) {
        match self.election_deadline {
            None => self.reset_election_deadline(now),
            // A replica that cannot persist its vote, or that may have forgotten one
            // (`recovery.rs`), does not campaign.
            Some(deadline) if now >= deadline && (self.storage_full || self.recovering()) => {
                self.reset_election_deadline(now)
            }
            // A lease we granted another replica may still run: no campaign before it
            // ends (checked again every tick).
            Some(deadline) if now >= deadline && self.lease_blocks_election(now) => {}
            Some(deadline) if now >= deadline => self.start_pre_vote(now),
            Some(_) => {}
        }
    }

    /// Whether a leader of our term was heard within an election timeout: then this
    /// replica neither pre-votes nor votes for anyone else (a rejoining replica cannot
    /// depose a leader a quorum still hears).
    fn leader_is_fresh(&self, now: Nanos) -> bool {
        matches!(self.role, Role::Leader(_))
            || self
                .leader_heard_at
                .is_some_and(|t| now < t + self.election_timeout())
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date as
    /// ours (§5.4.1): a later last term, or the same and at least as long.
    fn log_up_to_date(&self, last_index: Slot, last_term: u64) -> bool {
        if self.bugs.vote_without_log_check {
            return true;
        }
        let (ours_index, ours_term) = (self.log.last_index(), self.log.last_term());
        last_term > ours_term || (last_term == ours_term && last_index >= ours_index)
    }

    /// Phase zero: asks whether a quorum would vote for us, without changing our term.
    fn start_pre_vote(&mut self, now: Nanos) {
        self.reset_election_deadline(now);
        self.leader = None;
        self.leader_heard_at = None;
        self.role = Role::PreCandidate {
            granted_mask: self.id.bit(),
        };
        if self.cfg.quorum() == 1 {
            self.start_election(now);
            return;
        }
        let msg = Msg::PreVote {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.broadcast(&msg);
    }

    pub(super) fn on_pre_vote(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        last_index: Slot,
        last_term: u64,
    ) {
        let blocked = self.lease_blocks_vote(now, from) || self.recovering();
        self.stats.votes_withheld += u64::from(blocked);
        let granted = term > self.term
            && !self.leader_is_fresh(now)
            && !blocked
            && self.log_up_to_date(last_index, last_term);
        let term = if granted { term } else { self.term };
        self.send(from, Msg::PreVoteReply { term, granted });
    }

    pub(super) fn on_pre_vote_reply(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        granted: bool,
    ) {
        if !granted {
            if term > self.term {
                self.become_follower(now, term, None);
            }
            return;
        }
        let quorum = self.cfg.quorum();
        let Role::PreCandidate { granted_mask } = &mut self.role else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term != self.term + 1 {
            self.stats.messages_ignored += 1;
            return;
        }
        *granted_mask |= from.bit();
        if granted_mask.count_ones() as usize >= quorum {
            self.start_election(now);
        }
    }

    /// A new term: vote for ourselves (durably), then ask everyone.
    fn start_election(&mut self, now: Nanos) {
        self.stats.elections_started += 1;
        self.term += 1;
        self.voted_for = Some(self.id);
        self.leader = None;
        self.role = Role::Candidate { granted_mask: 0 };
        self.reset_election_deadline(now);
        self.persist_vote();
        let term = self.term;
        let msg = Msg::RequestVote {
            term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.broadcast_when_durable(&msg);
        self.send_when_durable(
            self.id,
            Msg::VoteReply {
                term,
                granted: true,
            },
        );
    }

    pub(super) fn on_request_vote(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        last_index: Slot,
        last_term: u64,
    ) {
        if term > self.term && self.leader_is_fresh(now) {
            // §6: a replica that hears its leader disregards candidates (no term change).
            self.stats.messages_ignored += 1;
            return;
        }
        if self.lease_blocks_vote(now, from) || self.recovering() {
            // A lease we granted another replica may still run, or we may have forgotten
            // a vote: no vote, no term change.
            self.stats.votes_withheld += 1;
            return;
        }
        if term > self.term {
            self.become_follower(now, term, None);
        }
        let granted = term == self.term
            && self.voted_for.is_none_or(|v| v == from)
            && self.log_up_to_date(last_index, last_term);
        if granted && self.voted_for.is_none() {
            self.voted_for = Some(from);
            self.persist_vote();
        }
        if granted {
            self.reset_election_deadline(now);
        }
        let term = self.term;
        self.send_when_durable(from, Msg::VoteReply { term, granted });
    }

    pub(super) fn on_vote_reply(&mut self, now: Nanos, from: ReplicaId, term: u64, granted: bool) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        let quorum = self.cfg.quorum();
        let Role::Candidate { granted_mask } = &mut self.role else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term != self.term || !granted {
            return;
        }
        *granted_mask |= from.bit();
        if granted_mask.count_ones() as usize >= quorum {
            self.become_leader(now);
        }
    }

    /// Won the election: lead, starting the term with a no-op entry (it commits the
    /// entries of earlier terms before it, which the leader may not count itself).
    fn become_leader(&mut self, now: Nanos) {
        self.stats.became_leader += 1;
        self.leader = Some(self.id);
        self.election_deadline = None;
        self.role = Role::Leader(Box::new(Leadership::new(
            self.cfg.replicas,
            self.log.last_index(),
            now,
        )));
        self.append_noop(now);
        self.drop_lease();
        self.request_lease(now);
    }

    /// Adopts `term` (at least ours) as a follower of `leader` if known; a leader or
    /// candidate steps down, and the clients waiting at a leader are told.
    pub(super) fn become_follower(&mut self, now: Nanos, term: u64, leader: Option<ReplicaId>) {
        debug_assert!(term >= self.term);
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_vote();
        }
        let mut old = Role::Follower;
        if !matches!(self.role, Role::Follower) {
            old = std::mem::replace(&mut self.role, Role::Follower);
            self.reset_election_deadline(now);
        }
        self.leader = leader;
        if let Role::Leader(l) = old {
            self.drop_lease();
            self.refuse_reads(l.reads);
            self.refuse_waiting();
        }
    }

    /// Tells every client waiting here that this replica no longer leads.
    pub(super) fn refuse_waiting(&mut self) {
        let hint = ClientReply::NotLeader {
            leader: self.leader,
        };
        let (waiting, out) = (&mut self.waiting, &mut self.outbox);
        crate::protocol::waiting::refuse_all(waiting, &hint, out);
    }

    /// A message from the leader of `term` (at least ours): follow it.
    pub(super) fn heard_leader(&mut self, now: Nanos, term: u64, leader: ReplicaId) {
        if term > self.term || !matches!(self.role, Role::Follower) || self.leader != Some(leader) {
            self.become_follower(now, term, Some(leader));
        }
        self.leader_heard_at = Some(now);
        self.reset_election_deadline(now);
    }

    fn persist_vote(&mut self) {
        let record = RaftRecord::Vote {
            term: self.term,
            voted_for: self.voted_for,
        };
        self.persist(record);
    }
}
