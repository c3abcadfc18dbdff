//! Read-index reads (§6.4 of the Raft dissertation): the leader notes an index every
//! write acknowledged before the read is at or below, confirms with a round of probes a
//! quorum answers that it still leads, and answers from its state machine once it applied
//! that index. No log entry, no disk write; one round trip to a quorum, shared by every
//! read that arrived before the probe went out.

use std::collections::VecDeque;

use super::{Msg, Replica, Role};
use crate::protocol::kv::Request;
use crate::protocol::outbox::ClientReply;
use crate::protocol::types::{Nanos, ReplicaId, Slot, Token};

/// A read waiting for its leadership check and its index.
#[derive(Clone, Debug)]
struct PendingRead {
    /// The probe whose quorum of answers confirms it (sent after it arrived).
    seq: u64,
    /// Served once this index is applied.
    index: Slot,
    token: Token,
    req: Request,
}

/// The leader's read-index state.
#[derive(Clone, Debug)]
pub(super) struct ReadIndex {
    /// The last probe sent (0: none yet).
    sent: u64,
    /// When it was sent.
    sent_at: Nanos,
    /// Per replica, the highest probe it answered (ours: every probe we sent).
    acked: Vec<u64>,
    /// Reads in arrival order (so their `seq` never decreases).
    pending: VecDeque<PendingRead>,
}

impl ReadIndex {
    pub(super) fn new(replicas: usize) -> ReadIndex {
        ReadIndex {
            sent: 0,
            sent_at: 0,
            acked: vec![0; replicas],
            pending: VecDeque::new(),
        }
    }

    /// The highest probe a quorum answered.
    fn confirmed(&self, quorum: usize, me: ReplicaId) -> u64 {
        let mut acked = self.acked.clone();
        acked[me.index()] = self.sent;
        acked.sort_unstable_by(|a, b| b.cmp(a));
        acked[quorum - 1]
    }

    /// Whether a probe should go (again): reads wait for one not yet sent, or the one sent
    /// a heartbeat ago may have been lost.
    pub(super) fn probe_due(&self, now: Nanos, heartbeat: Nanos) -> bool {
        self.pending
            .back()
            .is_some_and(|r| r.seq > self.sent || now >= self.sent_at + heartbeat)
    }
}

impl Replica {
    /// A read-only command in read-index mode.
    pub(super) fn on_read(&mut self, now: Nanos, token: Token, req: Request) {
        let me = self.id;
        // Before an entry of its term commits, the leader's commit index may lag what
        // earlier leaders committed: wait for everything in its log instead.
        let index = if self.log.term_at(self.commit) == Some(self.term) {
            self.commit
        } else {
            self.log.last_index()
        };
        let Role::Leader(l) = &mut self.role else {
            let leader = self.leader.filter(|l| *l != me);
            self.reply(token, ClientReply::NotLeader { leader });
            return;
        };
        if l.reads.pending.len() >= self.cfg.proposal_queue_max {
            self.stats.requests_busy += 1;
            self.reply(token, ClientReply::Busy);
            return;
        }
        let in_flight = l.reads.sent > l.reads.confirmed(self.cfg.quorum(), me);
        // A probe already out may have left before this read arrived: the next one counts.
        let seq = l.reads.sent + 1;
        l.reads.pending.push_back(PendingRead {
            seq,
            index,
            token,
            req,
        });
        if !in_flight {
            self.send_read_probe(now);
        }
        self.serve_reads();
    }

    /// Sends the next probe to every follower (a group of one confirms at once).
    pub(super) fn send_read_probe(&mut self, now: Nanos) {
        let term = self.term;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let waiting = l.reads.pending.back().map_or(0, |r| r.seq);
        l.reads.sent = l.reads.sent.max(waiting);
        l.reads.sent_at = now;
        let seq = l.reads.sent;
        self.broadcast(&Msg::ReadProbe { term, seq });
    }

    /// A leader asks whether we still follow it.
    pub(super) fn on_read_probe(&mut self, now: Nanos, from: ReplicaId, term: u64, seq: u64) {
        if term < self.term {
            let term = self.term;
            self.send(from, Msg::ReadProbeAck { term, seq });
            return;
        }
        self.heard_leader(now, term, from);
        // After a term change, only once the new term is durable (it is a promise too).
        let term = self.term;
        self.send_when_durable(from, Msg::ReadProbeAck { term, seq });
    }

    /// A follower still follows us as of probe `seq`.
    pub(super) fn on_read_probe_ack(&mut self, now: Nanos, from: ReplicaId, term: u64, seq: u64) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        let current = self.term;
        let Role::Leader(l) = &mut self.role else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term < current {
            return;
        }
        let acked = &mut l.reads.acked[from.index()];
        *acked = (*acked).max(seq);
        let more = l.reads.pending.back().is_some_and(|r| r.seq > l.reads.sent);
        self.serve_reads();
        if more {
            self.send_read_probe(now);
        }
    }

    /// Answers the reads whose probe a quorum answered and whose index is applied.
    pub(super) fn serve_reads(&mut self) {
        let quorum = self.cfg.quorum();
        let me = self.id;
        loop {
            let Role::Leader(l) = &mut self.role else {
                return;
            };
            let confirmed = l.reads.confirmed(quorum, me);
            let ready = l
                .reads
                .pending
                .front()
                .is_some_and(|r| r.seq <= confirmed && r.index <= self.applied);
            if !ready {
                return;
            }
            let read = l.reads.pending.pop_front().expect("front checked");
            self.stats.reads_local += 1;
            let reply = self.kv.read(&read.req.cmd);
            self.reply(read.token, ClientReply::Done(reply));
        }
    }

    /// A leader stepping down tells its waiting readers.
    pub(super) fn refuse_reads(&mut self, reads: ReadIndex) {
        for read in reads.pending {
            let leader = self.leader;
            self.reply(read.token, ClientReply::NotLeader { leader });
        }
    }
}
