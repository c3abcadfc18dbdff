//! The acceptor: phase 1b (promise) and phase 2b (accept).

use super::{LogEntry, Replica, Role};
use crate::protocol::message::{Batch, Message, Record};
use crate::protocol::outbox::SyncStart;
use crate::protocol::types::{Ballot, Nanos, ReplicaId, Slot};

impl Replica {
    /// Phase 1a: promise `ballot` unless a higher one was promised.
    pub(super) fn on_prepare(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        ballot: Ballot,
        from_slot: Slot,
    ) {
        if self.refuse_stale(from, ballot) {
            return;
        }
        if ballot > self.promised && self.lease_blocks_promise(now, from) {
            // We granted another replica a leader lease: no new leader until it ran out.
            // Silence, not a reject: the candidate retries after its timeout.
            self.stats.promises_deferred += 1;
            return;
        }
        if ballot > self.promised {
            self.promise(now, ballot);
        }
        debug_assert_eq!(self.promised, ballot);
        if from != self.id {
            // A live candidate: give it time before competing.
            self.reset_election_deadline(now);
        }
        let first = from_slot.max(self.chosen_through + 1);
        let entries = self
            .log
            .range(first..)
            .map(|(slot, e)| (*slot, e.ballot, e.batch.clone()))
            .collect();
        let chosen_through = self.chosen_through;
        self.send_when_durable(
            from,
            Message::Promise {
                ballot,
                chosen_through,
                entries,
            },
        );
    }

    /// Phase 2a: accept the value unless a higher ballot was promised.
    pub(super) fn on_accept(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        ballot: Ballot,
        slot: Slot,
        batch: Batch,
        commit: Slot,
    ) {
        if self.ignore_accept_too_large(&batch) {
            return;
        }
        if self.refuse_stale(from, ballot) {
            return;
        }
        if ballot > self.promised {
            // The accept record carries the ballot, so it persists the promise too.
            self.step_down_for(now, ballot);
            self.promised = ballot;
        }
        self.follow(now, ballot);
        if slot <= self.log_base {
            // Chosen and compacted: the leader proposes the chosen value (Paxos), so this
            // vote cannot help choose anything else.
            let msg = self.accepted_msg(now, ballot, slot);
            self.send(from, msg);
            self.learn_commit(now, ballot, commit);
            return;
        }
        match self.log.get(&slot) {
            Some(e) if e.chosen && e.batch != batch => {
                // A leader proposes the chosen value at any ballot from the one it was chosen
                // at; a stale leader below that ballot (cut off while another was elected
                // and chose the slot) may propose another. It cannot gather a quorum: the
                // quorum that chose the slot promised the higher ballot. No vote for it here
                // either (this replica may have learned the slot without that promise).
                self.stats.messages_ignored += 1;
            }
            Some(e) if e.chosen => {
                let pid = e.persist_id;
                let msg = self.accepted_msg(now, ballot, slot);
                self.send_after(pid, from, msg);
            }
            Some(e) if e.ballot == ballot => {
                // A retransmission: answer again once the first copy is durable.
                let pid = e.persist_id;
                let msg = self.accepted_msg(now, ballot, slot);
                self.send_after(pid, from, msg);
            }
            _ => {
                self.accept_locally(slot, ballot, batch, SyncStart::Now);
                let msg = self.accepted_msg(now, ballot, slot);
                self.send_when_durable(from, msg);
            }
        }
        self.learn_commit(now, ballot, commit);
    }

    /// True (and counted) when `batch` cannot fit one WAL record: a leader that did not
    /// bound its batches sent it. Accepting would make the persist fail; leaving it
    /// unanswered only stalls that leader's slot, which it cannot get chosen anyway.
    fn ignore_accept_too_large(&mut self, batch: &Batch) -> bool {
        if super::batch_fits_record(batch) {
            return false;
        }
        self.stats.batches_too_large += 1;
        true
    }

    /// Notes `ballot`; if it is below our promise, tells the proposer so and returns true.
    fn refuse_stale(&mut self, from: ReplicaId, ballot: Ballot) -> bool {
        self.observe_ballot(ballot);
        if ballot >= self.promised {
            return false;
        }
        self.stats.messages_ignored += 1;
        self.send(
            from,
            Message::Reject {
                promised: self.promised,
            },
        );
        true
    }

    /// Accepts `batch` for `slot` at `ballot` here: logs it (its sync started as `sync`
    /// says; a leader's may start later or not at all, see `leader.rs`) and puts it into
    /// the log. The vote may be announced only once the record is durable.
    pub(super) fn accept_locally(
        &mut self,
        slot: Slot,
        ballot: Ballot,
        batch: Batch,
        sync: SyncStart,
    ) {
        let record = Record::Accept {
            ballot,
            slot,
            batch: batch.clone(),
        };
        let persist_id = self.persist_as(record, sync);
        if let Role::Leader(l) = &mut self.role {
            l.last_accept = persist_id;
        }
        self.insert_entry(
            slot,
            LogEntry {
                ballot,
                batch,
                chosen: false,
                persist_id,
            },
        );
    }

    /// Promises `ballot` durably; steps down if this replica was leading a lower one.
    pub(super) fn promise(&mut self, now: Nanos, ballot: Ballot) {
        debug_assert!(ballot > self.promised);
        self.step_down_for(now, ballot);
        self.promised = ballot;
        self.persist(Record::Promise { ballot });
    }

    /// A leader of `ballot` is active: follow it and give it a full timeout.
    pub(super) fn follow(&mut self, now: Nanos, ballot: Ballot) {
        if ballot.node == self.id {
            return;
        }
        if let Role::Candidate(c) = &self.role
            && c.ballot <= ballot
        {
            self.role = Role::Follower;
        }
        self.leader = Some(ballot.node);
        self.reset_election_deadline(now);
    }
}
